"""Flow control, limits and quotas (admin guide, "Limits").

- A fast sender to a client that does not read is held to the reader's
  pace: once the reader's queue passes half the output cap (here (64 KiB x 4
  + 1 MiB) / 2 = 640 KiB) the server stops reading the sender, so its own
  requests go unanswered; the reader is not disconnected, and when it
  reads it gets every message, in order, and the sender is served again.
- A reader that leaves its queue full past limits.slow_reader_timeout is
  disconnected, and its senders go on.
- A full archive page (250 messages, together far over the output cap)
  reaches a client that reads slowly, complete and in order, then <fin/>.
"""
import socket
import threading
import time

from harness import (DOMAIN, NS_BIND, NS_CLIENT, NS_PING, NS_STANZAS, NS_STREAM, NS_STREAMS,
                     RawClient, ServerTestCase, T_REPLY, q)

NS_MAM = "urn:xmpp:mam:2"
NS_FORWARD = "urn:xmpp:forward:0"
BODY = "x" * 60000  # under the 64K stanza limit of the test server


class SmallWindowClient(RawClient):
    """A RawClient whose socket has a small receive buffer from the start,
    so that what it does not read stays queued in the server."""

    def __init__(self, port, rcvbuf=8192, **kw):
        real = socket.create_connection

        def create_connection(addr, timeout=None):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.settimeout(timeout)
            s.connect(addr)
            return s

        socket.create_connection = create_connection
        try:
            super().__init__(port, **kw)
        finally:
            socket.create_connection = real


def message(to, body):
    return ("<message to='%s' type='chat'><body>%s</body></message>" % (to, body)).encode()


def wait_for_log(server, text, within):
    """Wait up to `within` s for `text` to appear in the server's log."""
    deadline = time.monotonic() + within
    while text not in server.log_text() and time.monotonic() < deadline:
        time.sleep(0.2)


NS_RSM = "http://jabber.org/protocol/rsm"
SENDERS = 5  # each stays within its connection's 1 MiB read burst


class FlowControlTests(ServerTestCase):
    server_kwargs = dict(users={u: u + "-pw" for u in ("alice", "bob", "carol", "dave", "erin")},
                         config={"limits": {"slow_reader_timeout": "4s"},
                                 "modules": {"mam": {}, "offline": {}}})

    def small_window_login(self, user, resource):
        c = SmallWindowClient(self.server.c2s_port)
        self._clients.append(c)
        c.login(user, self.server.users[user], resource)
        return c

    def flood(self, to, n, body_size=60000, user="alice"):
        """SENDERS connections of `user` each send n messages of body_size
        bytes to `to` (bodies "s<sender>-<i> xxx"), then a ping with id
        "after<sender>"; the senders, once all sent (or stuck: a sender
        the server no longer reads may block in sendall)."""
        senders = [self.raw_login(user, "fast%d" % k) for k in range(SENDERS)]
        filler = "x" * body_size
        threads = []
        for k, c in enumerate(senders):
            data = b"".join(message(to, "s%d-%d %s" % (k, i, filler)) for i in range(n))
            data += ("<iq type='get' id='after%d'><ping xmlns='%s'/></iq>" % (k, NS_PING)).encode()
            t = threading.Thread(target=c.send, args=(data,), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(3)
        return senders

    def pongs(self, senders, within):
        """Which senders got their "after" ping answered within `within` s."""
        deadline = time.monotonic() + within
        got = set()
        for k, c in enumerate(senders):
            for el in c.nothing_more(max(0.05, deadline - time.monotonic())):
                if el.tag == q(NS_CLIENT, "iq") and el.get("id") == "after%d" % k:
                    got.add(k)
        return got

    def test_fast_senders_are_held_to_the_pace_of_a_slow_reader(self):
        bob = self.small_window_login("bob", "slow")
        n = 20  # 5 x 1.2 MB: over what the kernel (~3.5 MB) and the soft mark hold
        senders = self.flood("bob@%s/slow" % DOMAIN, n)
        # While bob reads nothing, the senders are no longer read: their
        # pings, sent after their messages, stay unanswered.
        held = set(range(SENDERS)) - self.pongs(senders, 2.0)
        self.assertTrue(held, "no sender was held back while bob read nothing")
        # bob was not disconnected and gets every message, in order per sender.
        got = self.read_bodies(bob, SENDERS * n)
        self.assertEqual(len(got), SENDERS * n)
        for k in range(SENDERS):
            self.assertEqual([b for b in got if b.startswith("s%d-" % k)],
                             ["s%d-%d" % (k, i) for i in range(n)])
        self.assertFalse(bob.stream_ended or bob.eof)
        self.assertEqual(bob.ping(), "result")
        # Once bob has read, the held senders are read again.
        self.assertEqual(held - self.answered(senders, held), set())
        self.assertNotIn("reader too slow", self.server.log_text())

    def answered(self, senders, which):
        got = set()
        for k in which:
            try:
                senders[k].wait_for(lambda e: e.get("id") == "after%d" % k, T_REPLY)
                got.add(k)
            except Exception:
                pass
        return got

    def read_bodies(self, client, n, timeout=60, pause=0.0):
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < n and time.monotonic() < deadline:
            el = client.read_element(timeout=max(0.1, deadline - time.monotonic()))
            if el.tag == q(NS_CLIENT, "message"):
                got.append(el.findtext(q(NS_CLIENT, "body")).split(" ", 1)[0])
            if pause:
                time.sleep(pause)
        return got

    def test_reader_that_never_reads_is_dropped_after_the_timeout(self):
        self.small_window_login("carol", "asleep")
        senders = self.flood("carol@%s/asleep" % DOMAIN, 20, user="dave")
        wait_for_log(self.server, "reader too slow", 20)
        self.assertIn("reader too slow", self.server.log_text())
        self.assertIn("slow reader timeout", self.server.log_text())
        # The senders are read again and served.
        self.assertEqual(self.answered(senders, range(SENDERS)), set(range(SENDERS)))

    def test_offline_messages_and_a_full_archive_page_reach_a_slow_reader(self):
        # 250 messages of 20 KB (5 MB) stored offline and archived for erin
        # while she is away: far over the 1.25 MiB output cap at once.
        n = 50
        senders = self.flood("erin@%s" % DOMAIN, n, body_size=20000, user="alice")
        self.assertEqual(self.answered(senders, range(SENDERS)), set(range(SENDERS)))
        # Her initial presence brings the offline messages; then she asks
        # for a page of 250 from the archive.
        erin = self.small_window_login("erin", "sync")
        erin.send("<iq type='set' id='page'><query xmlns='%s' queryid='all'>"
                  "<set xmlns='%s'><max>250</max></set></query></iq>" % (NS_MAM, NS_RSM))
        offline, archived = [], []
        fin = None
        deadline = time.monotonic() + 90
        while fin is None and time.monotonic() < deadline:
            el = erin.read_element(timeout=T_REPLY)
            if el.tag == q(NS_CLIENT, "message"):
                res = el.find(q(NS_MAM, "result"))
                if res is None:
                    offline.append(el.findtext(q(NS_CLIENT, "body")).split(" ", 1)[0])
                else:
                    self.assertEqual(res.get("queryid"), "all")
                    fwd = res.find(q(NS_FORWARD, "forwarded"))
                    body = fwd.find(q(NS_CLIENT, "message")).findtext(q(NS_CLIENT, "body"))
                    archived.append(body.split(" ", 1)[0])
                time.sleep(0.002)  # a slow reader
            elif el.tag == q(NS_CLIENT, "iq") and el.get("id") == "page":
                fin = el
        self.assertIsNotNone(fin, "no <fin/>")
        self.assertEqual(fin.get("type"), "result")
        self.assertEqual(fin.find(q(NS_MAM, "fin")).get("complete"), "true")
        for got in (offline, archived):
            self.assertEqual(len(got), SENDERS * n)
            for k in range(SENDERS):
                self.assertEqual([b for b in got if b.startswith("s%d-" % k)],
                                 ["s%d-%d" % (k, i) for i in range(n)])
        self.assertFalse(erin.stream_ended or erin.eof)
        self.assertEqual(erin.ping(), "result")
        self.assertNotIn("reader too slow", self.server.log_text())


class ComponentFlowTests(ServerTestCase):
    """A component serves many users: it is never held back for one slow
    client (that client keeps the output cap alone)."""
    server_kwargs = dict(users={"frank": "frank-pw"},
                         components={"svc%d.localhost" % k: "s3cret" for k in range(SENDERS)})

    def test_component_is_not_held_for_a_slow_client(self):
        frank = SmallWindowClient(self.server.c2s_port)
        self._clients.append(frank)
        frank.login("frank", "frank-pw", "slow")
        comps = []
        for k in range(SENDERS):
            c = self.raw(component=True)
            self.assertEqual(c.handshake("svc%d.localhost" % k, "s3cret").tag,
                             q("jabber:component:accept", "handshake"))
            comps.append(c)
        threads = []
        for k, c in enumerate(comps):
            data = b"".join(("<message from='svc%d.localhost' to='frank@%s/slow'><body>c%d %s"
                             "</body></message>" % (k, DOMAIN, i, BODY)).encode()
                            for i in range(20))
            data += ("<iq from='svc%d.localhost' to='%s' type='get' id='after%d'>"
                     "<ping xmlns='%s'/></iq>" % (k, DOMAIN, k, NS_PING)).encode()
            t = threading.Thread(target=c.send, args=(data,), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(T_REPLY)
        # Every component is still read: its ping is answered although
        # frank reads nothing.
        for k, c in enumerate(comps):
            el = c.wait_for(lambda e, k=k: e.get("id") == "after%d" % k, T_REPLY)
            self.assertEqual(el.get("type"), "result")


class LimitTests(ServerTestCase):
    """limits.max_connections_per_ip, max_sessions_per_user and the
    per-account stanza rate (max_stanzas_per_second, stanza_burst)."""
    server_kwargs = dict(users={u: u + "-pw" for u in ("alice", "bob", "carol")},
                         config={"limits": {"max_connections_per_ip": 4,
                                            "max_sessions_per_user": 2,
                                            "max_stanzas_per_second": 10,
                                            "stanza_burst": 10}})

    def test_connections_per_address_over_the_limit_are_refused(self):
        # (The other tests' connections are gone once the server saw them close.)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "connections: 0" not in self.server.ternctl_ok(
                "status").stdout:
            time.sleep(0.1)
        first = [self.raw() for _ in range(4)]
        for c in first:
            c.open_stream()
        extra = self.raw()
        extra.send("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' "
                   "to='%s' version='1.0'>" % (NS_CLIENT, NS_STREAM, DOMAIN))
        el = extra.wait_for(lambda e: e.tag == q(NS_STREAM, "error"))
        self.assertIsNotNone(el.find(q(NS_STREAMS, "policy-violation")))
        self.assertIn("too many connections", el.findtext(q(NS_STREAMS, "text")))
        self.assertTrue(extra.wait_closed())
        # One goes: there is room for one again.
        first[0].close()
        time.sleep(0.3)
        again = self.raw()
        self.assertIsNotNone(again.open_stream())

    def test_sessions_per_account_over_the_limit_are_refused(self):
        self.raw_login("alice", "one")
        self.raw_login("alice", "two")
        third = self.raw()
        third.open_stream()
        third.starttls()
        self.assertEqual(third.auth_scram("alice", "alice-pw")[0], "success")
        third.restart()
        third.send("<iq type='set' id='b3'><bind xmlns='%s'><resource>three</resource>"
                   "</bind></iq>" % NS_BIND)
        el = third.expect(q(NS_CLIENT, "iq"))
        self.assertEqual(el.get("type"), "error")
        err = el.find(q(NS_CLIENT, "error"))
        self.assertEqual(err.get("type"), "wait")
        self.assertIsNotNone(err.find(q(NS_STANZAS, "resource-constraint")))  # RFC 6120 §7.6.2.1
        self.assertIn("too many sessions", err.findtext(q(NS_STANZAS, "text")))
        # Taking over one of the two resources is still allowed.
        self.raw_login("alice", "two")

    def test_stanza_rate_pauses_reading(self):
        bob = self.raw_login("bob", "rate")
        carol = self.raw_login("carol", "calm")
        # 30 at once: the burst of 10 is handled at once; each later stanza,
        # though it came in the same read, waits for the bucket (10/s), in
        # order: the last answer comes about 2 s after the first.
        t0 = time.monotonic()
        bob.send("".join("<iq type='get' id='p%d'><ping xmlns='%s'/></iq>" % (i, NS_PING)
                           for i in range(30)))
        for i in range(30):
            bob.wait_for(lambda e, i=i: e.get("id") == "p%d" % i)
        waited = time.monotonic() - t0
        self.assertGreater(waited, 1.5, "the stanza rate limit did not hold bob back")
        self.assertLess(waited, 5.0)
        self.assertEqual(bob.ping(), "result")
        # Another account is not held back.
        t0 = time.monotonic()
        self.assertEqual(carol.ping(), "result")
        self.assertLess(time.monotonic() - t0, 1.0)


NS_PRIVATE = "jabber:iq:private"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"


class QuotaTests(ServerTestCase):
    """Storage quotas: private.max_bytes (XEP-0049 data per user),
    pep.max_item_size (one item's payload) and mam.max_items (messages one
    archive keeps)."""
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"},
                         config={"modules": {"private": {"max_bytes": "4K"},
                                             "pep": {"max_item_size": "2K"},
                                             "mam": {"max_items": 20}}})

    def error_of(self, el):
        self.assertEqual(el.get("type"), "error")
        err = el.find(q(NS_CLIENT, "error"))
        conds = [c.tag.split("}", 1)[1] for c in err if c.tag.startswith("{%s}" % NS_STANZAS)
                 and not c.tag.endswith("}text")]
        return err.get("type"), conds[0], err.findtext(q(NS_STANZAS, "text")), err

    def private_set(self, c, ns, size):
        return c.iq("<query xmlns='%s'><data xmlns='%s'>%s</data></query>"
                    % (NS_PRIVATE, ns, "y" * size), type_="set")

    def test_private_storage_over_the_quota_is_refused(self):
        alice = self.raw_login("alice", "quota")
        self.assertEqual(self.private_set(alice, "urn:example:a", 2000).get("type"), "result")
        # 2000 more in another namespace would pass 4 KiB in all.
        etype, cond, text, _ = self.error_of(self.private_set(alice, "urn:example:b", 2500))
        self.assertEqual((etype, cond), ("modify", "not-acceptable"))
        self.assertIn("quota", text)
        # Replacing the first one counts its new size only.
        self.assertEqual(self.private_set(alice, "urn:example:a", 3500).get("type"), "result")
        # Nothing of the refused set was stored.
        got = alice.iq("<query xmlns='%s'><data xmlns='urn:example:b'/></query>" % NS_PRIVATE)
        data = got.find(q(NS_PRIVATE, "query")).find(q("urn:example:b", "data"))
        self.assertFalse((data.text or "").strip())

    def test_pep_item_over_the_size_limit_is_refused(self):
        bob = self.raw_login("bob", "quota")
        pub = ("<pubsub xmlns='%s'><publish node='urn:example:n'><item id='i'>"
               "<entry xmlns='urn:example:n'>%%s</entry></item></publish></pubsub>" % NS_PUBSUB)
        self.assertEqual(bob.iq(pub % ("z" * 1000), type_="set").get("type"), "result")
        etype, cond, _, err = self.error_of(bob.iq(pub % ("z" * 3000), type_="set"))
        self.assertEqual((etype, cond), ("modify", "not-acceptable"))  # XEP-0060 §7.1.3.4
        self.assertIsNotNone(err.find(q(NS_PUBSUB_ERRORS, "payload-too-big")))

    def test_archive_keeps_at_most_max_items_the_oldest_go(self):
        carol = self.raw_login("carol", "quota")
        bob = self.raw_login("bob", "reader")
        for i in range(30):
            carol.send("<message to='bob@%s' type='chat'><body>q%d</body></message>"
                       % (DOMAIN, i))
        self.assertEqual(carol.ping(), "result")
        carol.send("<iq type='set' id='arch'><query xmlns='%s'><set xmlns='%s'><max>100</max>"
                   "</set></query></iq>" % (NS_MAM, NS_RSM))
        bodies = []
        while True:
            el = carol.read_element()
            if el.tag == q(NS_CLIENT, "message"):
                fwd = el.find(q(NS_MAM, "result")).find(q(NS_FORWARD, "forwarded"))
                bodies.append(fwd.find(q(NS_CLIENT, "message")).findtext(q(NS_CLIENT, "body")))
            elif el.get("id") == "arch":
                break
        # Counted every tenth of the quota (2 here): at most 21 kept, the
        # newest, in order, none of the oldest.
        self.assertIn(len(bodies), (20, 21))
        self.assertEqual(bodies, ["q%d" % i for i in range(30 - len(bodies), 30)])
        self.assertEqual(bob.ping(), "result")


class SlowReaderTimeoutReloadTests(ServerTestCase):
    """limits.slow_reader_timeout is one setting for the whole server: a
    reload applies it at once to the connections already open, not only to
    those accepted after it."""
    server_kwargs = dict(users={u: u + "-pw" for u in ("alice", "bob")},
                         config={"limits": {"slow_reader_timeout": "60s"}})

    def test_reload_applies_the_timeout_to_open_connections(self):
        bob = SmallWindowClient(self.server.c2s_port)
        self._clients.append(bob)
        bob.login("bob", "bob-pw", "asleep")
        senders = [self.raw_login("alice", "fast%d" % k) for k in range(SENDERS)]
        conf = dict(self.server.config)
        conf["limits"] = dict(conf.get("limits", {}), slow_reader_timeout="2s")
        self.server.write_config(conf)
        r = self.server.ternctl("reload")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # No connection is accepted after the reload: bob, who reads
        # nothing, is dropped after the new 2 s, not the old 60 s.
        filler = "x" * 60000
        threads = []
        for k, c in enumerate(senders):
            data = b"".join(message("bob@%s/asleep" % DOMAIN, "s%d-%d %s" % (k, i, filler))
                            for i in range(20))
            t = threading.Thread(target=c.send, args=(data,), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(3)
        wait_for_log(self.server, "reader too slow", 15)
        self.assertIn("reader too slow", self.server.log_text())
        for c in senders:
            self.assertEqual(c.ping(), "result")
