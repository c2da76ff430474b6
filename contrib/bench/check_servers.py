#!/usr/bin/python3
"""contrib/bench/check_servers.py — pre-flight check of one XMPP server for
the comparison run (contrib/bench/compare.sh); also usable alone.

Owns the proof that a server under comparison is set up as the run
assumes, with a real client (slixmpp): two accounts log in over STARTTLS
with SCRAM-SHA-1 (no channel binding), the server must announce the
expected PBKDF2 iteration count in its SCRAM challenge, each client gets
its roster and sends available presence, and a chat message from the
first to the second account's bare JID arrives with its body intact.
Prints one line per login and "ok" at the end; exit status 0 when
everything held, 1 otherwise, 2 on bad arguments.

    check_servers.py --name tern --port 25222 --domain localhost \\
        --password benchpass --users u1 u2 [--iterations 4096]
"""

import argparse
import asyncio
import logging
import ssl
import sys
import uuid

try:
    import slixmpp
    from slixmpp.util.sasl import mechanisms
except ImportError:  # pragma: no cover - told to the user
    print("check_servers.py: python3-slixmpp is missing (apt-get install python3-slixmpp)",
          file=sys.stderr)
    sys.exit(2)

TIMEOUT = 20  # seconds for each step

# The iteration count each SCRAM server-first-message announced, in order.
SEEN_ITERATIONS = []
_orig_process_2 = mechanisms.SCRAM.process_2


def _process_2(self, challenge):
    try:
        SEEN_ITERATIONS.append(int(self.parse(challenge)[b"i"]))
    except (KeyError, ValueError):
        SEEN_ITERATIONS.append(None)
    return _orig_process_2(self, challenge)


mechanisms.SCRAM.process_2 = _process_2


class Client:
    """One logged-in slixmpp session, driven from the check's coroutine."""

    def __init__(self, args, user):
        self.args = args
        self.jid = "%s@%s/check-%s" % (user, args.domain, uuid.uuid4().hex[:8])
        self.x = slixmpp.ClientXMPP(self.jid, args.password, sasl_mech="SCRAM-SHA-1")
        x = self.x
        x.ssl_context.check_hostname = False
        x.ssl_context.verify_mode = ssl.CERT_NONE
        x.use_ipv6 = False
        x.default_domain = args.domain
        x.default_port = args.port  # what the name lookup of default_domain pairs with
        x.whitespace_keepalive = False
        x.register_plugin("xep_0030")
        x.register_plugin("xep_0199")
        x["xep_0199"].enable_keepalive = False
        mechs = x["feature_mechanisms"]
        default_creds = mechs._default_credentials

        def credentials(required, optional):
            creds = default_creds(required, optional)
            if "channel_binding" in creds:
                creds["channel_binding"] = None  # GS2 flag "n": no binding, no -PLUS
            return creds

        mechs.sasl_callback = credentials
        loop = asyncio.get_event_loop()
        self.started = loop.create_future()
        self.gone = loop.create_future()
        self.messages = asyncio.Queue()
        x.add_event_handler("session_start", self._on_start)
        x.add_event_handler("failed_auth", lambda _: self._fail("authentication failed"))
        x.add_event_handler("connection_failed", lambda e: self._fail("cannot connect: %s" % e))
        x.add_event_handler("stream_error", lambda e: self._fail("stream error %s" %
                                                                 e["condition"]))
        x.add_event_handler("disconnected", self._on_disconnected)
        x.add_event_handler("message", lambda m: self.messages.put_nowait(m))

    def _on_start(self, _event):
        if not self.started.done():
            self.started.set_result(True)

    def _fail(self, why):
        if not self.started.done():
            self.started.set_exception(RuntimeError(why))

    def _on_disconnected(self, _reason):
        self._fail("disconnected before the session started")
        if not self.gone.done():
            self.gone.set_result(True)

    def tls_info(self):
        t = self.x.transport
        obj = t.get_extra_info("ssl_object") if t is not None else None
        if obj is None:
            return None
        return "%s %s" % (obj.version(), obj.cipher()[0])

    async def login(self):
        self.x.connect((self.args.host, self.args.port), force_starttls=True)
        await asyncio.wait_for(self.started, TIMEOUT)

    async def close(self):
        if not self.gone.done():
            self.x.disconnect()
            try:
                await asyncio.wait_for(self.gone, TIMEOUT)
            except asyncio.TimeoutError:
                self.x.abort()


async def check(args):
    clients = []
    problems = []
    try:
        for user in args.users:
            c = Client(args, user)
            clients.append(c)
            before = len(SEEN_ITERATIONS)
            await c.login()
            tls = c.tls_info()
            if tls is None:
                problems.append("%s: the session is not encrypted" % user)
            iters = SEEN_ITERATIONS[before:]
            if iters != [args.iterations]:
                problems.append("%s: SCRAM iteration count %s, expected %d"
                                % (user, iters, args.iterations))
            roster = await asyncio.wait_for(c.x.get_roster(), TIMEOUT)
            if roster["type"] != "result":
                problems.append("%s: roster request answered %s" % (user, roster["type"]))
            c.x.send_presence()
            print("%s: %s logged in (SCRAM-SHA-1, i=%s, %s), roster of %d"
                  % (args.name, c.x.boundjid.full, iters[0] if iters else "?", tls,
                     len(roster["roster"])))
        # Presence has to be processed before a message to the bare JID
        # finds an available resource: wait for the reflection of the
        # receiver's own presence, or at worst a moment.
        await asyncio.sleep(0.5)
        if len(clients) >= 2:
            sender, receiver = clients[0], clients[1]
            body = "check " + uuid.uuid4().hex
            sender.x.send_message(mto=receiver.x.boundjid.bare, mbody=body, mtype="chat")
            while True:
                m = await asyncio.wait_for(receiver.messages.get(), TIMEOUT)
                if m["type"] == "error":
                    problems.append("message bounced: %s" % m["error"]["condition"])
                    break
                if m["body"] == body:
                    if m["from"].bare != sender.x.boundjid.bare:
                        problems.append("message from %s, expected %s"
                                        % (m["from"], sender.x.boundjid.bare))
                    print("%s: message %s -> %s delivered"
                          % (args.name, sender.x.boundjid.bare, receiver.x.boundjid.bare))
                    break
            # Nothing must come back to the sender (an error would).
            await asyncio.sleep(0.3)
            while not sender.messages.empty():
                m = sender.messages.get_nowait()
                problems.append("sender got an unexpected %s message" % m["type"])
    except asyncio.TimeoutError:
        problems.append("timed out after %d s" % TIMEOUT)
    except RuntimeError as e:
        problems.append(str(e))
    finally:
        for c in clients:
            await c.close()
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", default="server", help="label for the output")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5222)
    ap.add_argument("--domain", default="localhost")
    ap.add_argument("--password", required=True)
    ap.add_argument("--users", nargs="+", default=["u1", "u2"],
                    help="account localparts; the first sends to the second")
    ap.add_argument("--iterations", type=int, default=4096,
                    help="SCRAM iteration count the server must announce")
    ap.add_argument("--debug", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.CRITICAL)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    problems = loop.run_until_complete(check(args))
    pending = asyncio.all_tasks(loop)
    for t in pending:
        t.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()
    for p in problems:
        print("%s: FAILED: %s" % (args.name, p), file=sys.stderr)
    if problems:
        return 1
    print("%s: ok" % args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
