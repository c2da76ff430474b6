#!/usr/bin/python3
"""RSS per idle client session, with and without stream management.

Starts ternd (TERND, TERN_MODULES: use a build without sanitizers) through
the integration harness, logs N sessions in over STARTTLS with SCRAM, each
fetching its roster and sending presence (as tern-bench's connect
scenario does), with <enable resume='true'/> when --sm, and a few stanzas
left unacknowledged (--unacked, messages from a sender), then reads the
server's VmRSS: (RSS with the sessions - RSS before) / N.

Usage: TERND=build/rel/ternd TERNCTL=build/rel/ternctl \
       TERN_MODULES=build/rel/modules/.libs contrib/bench/sm_rss.py [--sm] [-n N]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "tests", "integration"))
from harness import NS_CLIENT, RawClient, Server, q  # noqa: E402

NS_SM = "urn:xmpp:sm:3"


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--sm", action="store_true")
    ap.add_argument("--unacked", type=int, default=3)
    a = ap.parse_args()
    users = {"u%d" % i: "pw%d" % i for i in range(a.n)}
    users["sender"] = "sender-pw"
    modules = {"roster": {}}
    if a.sm:
        modules["smacks"] = {}
    srv = Server(users=users, config={"modules": modules, "c2s": {"scram_iterations": 4096},
                                      "limits": {"max_connections_per_ip": 0,
                                                 "stanza_burst": 1000000}})
    srv.start()
    try:
        sender = RawClient(srv.c2s_port)
        sender.login("sender", users["sender"])
        time.sleep(1.0)
        before = rss_kib(srv.proc.pid)
        clients = []
        for i in range(a.n):
            c = RawClient(srv.c2s_port)
            c.login("u%d" % i, users["u%d" % i], presence=False)
            c.iq("<query xmlns='jabber:iq:roster'/>")
            if a.sm:
                c.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
                c.expect(q(NS_SM, "enabled"))
            c.send("<presence/>")
            clients.append(c)
        for i in range(a.n):
            for k in range(a.unacked):
                sender.send("<message to='u%d@localhost' type='chat'><body>hello %d</body>"
                            "</message>" % (i, k))
        assert sender.ping() == "result"
        time.sleep(3.0)
        after = rss_kib(srv.proc.pid)
        print("sessions %d, stream management %s, unacked per session %d" %
              (a.n, "on" if a.sm else "off", a.unacked if a.sm else 0))
        print("RSS before %d KiB, with the sessions %d KiB, per session %.1f KiB" %
              (before, after, (after - before) / a.n))
        for c in clients:
            c.close()
    finally:
        srv.stop(check=False)
        srv.remove()


if __name__ == "__main__":
    main()
