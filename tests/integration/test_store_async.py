"""Reads off the event loop: big archive queries (XEP-0313 with XEP-0059
counts) and a long offline queue (XEP-0160) are read on the server's
worker threads, so that the other users, chatting meanwhile, are answered
promptly.  Before, every count read its whole range on the event loop, and
nobody else was served until it was over.

The archives are written straight into the database while the server is
stopped (writing them through the server would take minutes)."""
import os
import sqlite3
import threading
import time
import xml.etree.ElementTree as ET

from harness import DOMAIN, NS_CLIENT, ServerTestCase, q
import test_storage as storage_tests

NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_DELAY = "urn:xmpp:delay"

ARCHIVE = 400000   # items in alice's archive
OFFLINE = 500      # messages waiting for carol (the default cap)
QUERIES = 12       # archive queries alice sends at once
PING_BOUND = 0.25  # seconds a ping round trip may take meanwhile


def fill(db_path):
    """ARCHIVE items for alice (MAM), OFFLINE for carol (offline store)."""
    db = sqlite3.connect(db_path)
    try:
        rid = db.execute("SELECT ifnull(max(rid), 0) FROM archive").fetchone()[0]
        t0 = int(time.time() * 1e6) - ARCHIVE * 1000
        rows = []
        for i in range(ARCHIVE):
            rid += 1
            rows.append((rid, rid, DOMAIN, "archive", "alice", "a%d" % i, t0 + i * 1000,
                         "bob@" + DOMAIN,
                         ("<message xmlns='jabber:client' from='bob@%s/x' to='alice@%s'"
                          " type='chat'><body>old %d</body></message>" % (DOMAIN, DOMAIN, i))
                         .encode()))
        for i in range(OFFLINE):
            rid += 1
            rows.append((rid, rid, DOMAIN, "offline", "carol", "o%d" % i, t0 + i, "bob@" + DOMAIN,
                         ("<message xmlns='jabber:client' from='bob@%s/x' to='carol@%s'"
                          " type='chat' id='o%d'><body>waiting %d</body><delay xmlns='%s'"
                          " from='%s' stamp='2020-01-01T00:00:00Z'/></message>"
                          % (DOMAIN, DOMAIN, i, i, NS_DELAY, DOMAIN)).encode()))
        db.executemany("INSERT INTO archive (rid, seq, host, store, user, id, when_us, with_jid,"
                       " value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.commit()
    finally:
        db.close()


class AsyncReadTests(ServerTestCase):
    server_kwargs = dict(
        users={u: u + "-pw" for u in ("alice", "bob", "carol", "dave")},
        config={"modules": {"mam": {"max_count": 1000000}, "offline": {"max_messages": 100000},
                            "roster": {}}})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server.stop()
        fill(os.path.join(cls.server.dir, "tern.db"))
        cls.server._launch()

    def read_until(self, client, pred, n, timeout, out):
        """Read elements on `client` until n of them satisfy pred (in a thread)."""
        deadline = time.monotonic() + timeout
        try:
            while len(out) < n and time.monotonic() < deadline:
                el = client.read_element(timeout=deadline - time.monotonic())
                if pred(el):
                    out.append(el)
        except Exception as e:  # reported by the test through `out` being short
            out.append(e)

    def test_pings_stay_prompt_during_big_reads(self):
        alice = self.raw_login("alice", resource="desk")
        carol = self.raw_login("carol", resource="phone")
        bob = self.raw_login("bob", resource="x")
        dave = self.raw_login("dave", resource="y")
        dave.send("<presence/>")
        self.assertEqual(bob.ping(), "result")
        self.assertEqual(dave.ping(), "result")

        fins, results, offline = [], [], []
        is_fin = lambda el: el.tag == q(NS_CLIENT, "iq") and el.get("id", "").startswith("mq")
        is_msg = lambda el: el.tag == q(NS_CLIENT, "message")
        readers = [
            threading.Thread(target=self.read_until, args=(alice, is_fin, QUERIES, 120, fins)),
            threading.Thread(target=self.read_until, args=(carol, is_msg, OFFLINE, 120, offline)),
        ]
        # Every query counts the whole archive (RSM <count/>) and the index
        # of its page; each asks for another page from the middle.
        alice.send("".join(
            "<iq type='set' id='mq%d'><query xmlns='%s' queryid='q%d'><set xmlns='%s'>"
            "<max>20</max><after>a%d</after></set></query></iq>"
            % (i, NS_MAM, i, NS_RSM, ARCHIVE // 2 + i * 100) for i in range(QUERIES)))
        carol.send("<presence/>")
        for t in readers:
            t.start()

        # Meanwhile bob chats with dave and pings the server.
        rtts, chats = [], 0
        start = time.monotonic()
        while any(t.is_alive() for t in readers) and time.monotonic() - start < 120:
            bob.send("<message to='dave@%s/y' type='chat'><body>hi %d</body></message>"
                     % (DOMAIN, chats))
            chats += 1
            t0 = time.monotonic()
            self.assertEqual(bob.ping(timeout=30), "result")
            rtts.append(time.monotonic() - t0)
            time.sleep(0.01)
        busy = time.monotonic() - start
        for t in readers:
            t.join(5)

        self.assertEqual(len(fins), QUERIES, "archive answers: %s" % fins[-1:])
        for fin_iq in fins:
            self.assertEqual(fin_iq.get("type"), "result")
            fin = fin_iq.find(q(NS_MAM, "fin"))
            self.assertEqual(fin.findtext("{%s}set/{%s}count" % (NS_RSM, NS_RSM)), str(ARCHIVE))
            i = int(fin_iq.get("id")[2:])
            first = fin.find("{%s}set/{%s}first" % (NS_RSM, NS_RSM))
            self.assertEqual(first.text, "a%d" % (ARCHIVE // 2 + i * 100 + 1))
            self.assertEqual(first.get("index"), str(ARCHIVE // 2 + i * 100 + 1))
        self.assertEqual(len(offline), OFFLINE, "offline messages: %s" % offline[-1:])
        self.assertEqual([m.findtext(q(NS_CLIENT, "body")) for m in offline[:3]],
                         ["waiting 0", "waiting 1", "waiting 2"])
        got = [el for el in dave.nothing_more(within=1.0) if el.tag == q(NS_CLIENT, "message")]
        self.assertEqual(len(got), chats)
        self.assertGreater(len(rtts), 0)
        print("  [%d pings over %.2fs of reads; slowest %s]"
              % (len(rtts), busy, ", ".join("%.3f" % r for r in sorted(rtts)[-5:])))
        self.assertLess(max(rtts), PING_BOUND,
                        "a ping took %.3fs while the server read (%d pings over %.2fs)"
                        % (max(rtts), len(rtts), busy))
        for c in (alice, carol, bob, dave):
            c.close()

    def test_pipelined_queries_are_answered_in_order(self):
        """A client that sends many roster gets and archive queries at once
        gets every answer, in order; it is paced, not disconnected as a
        slow reader (it was, when the answers came back all at once).  A
        stanza read in the same chunk as a pending query waits for it: the
        ping's answer comes last (RFC 6120 §10.1, in-order processing)."""
        alice = self.raw_login("alice", resource="pipe")
        for i in range(100):  # answers of 15 kB: 150 of them are over the output cap
            alice.iq("<query xmlns='jabber:iq:roster'><item jid='c%d@%s' name='%s'/></query>"
                     % (i, DOMAIN, "contact %d " % i + "x" * 100), type_="set")
        n = 150
        alice.send("".join(
            "<iq type='get' id='r%d'><query xmlns='jabber:iq:roster'/></iq>" % i
            for i in range(n)) + "".join(
            "<iq type='set' id='m%d'><query xmlns='%s'><set xmlns='%s'><max>5</max>"
            "<after>a%d</after></set></query></iq>" % (i, NS_MAM, NS_RSM, i)
            for i in range(n)) + "<iq type='get' id='last'><ping xmlns='urn:xmpp:ping'/></iq>")
        expected = ["r%d" % i for i in range(n)] + ["m%d" % i for i in range(n)]
        ids = []
        while len(ids) < len(expected) + 1:
            el = alice.read_element(timeout=60)
            if el.tag == q(NS_CLIENT, "iq"):
                self.assertEqual(el.get("type"), "result", el.get("id"))
                ids.append(el.get("id"))
        self.assertEqual(ids, expected + ["last"])
        self.assertEqual(alice.ping(), "result")
        alice.close()


class ReadsBesideKeyDerivationTests(ServerTestCase):
    """Store reads never wait behind key derivation (seconds of PBKDF2 for
    registrations, on the same worker threads): they have a queue and a
    thread of their own."""
    server_kwargs = dict(config={"c2s": {"scram_iterations": 400000},
                                 "modules": {"roster": {},
                                             "register": {"allow_registration": True,
                                                          "throttle_max": 0}}})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        storage_tests.add_user_with_iterations(cls.server, "alice", "alice-pw", 4096)

    def test_roster_answered_during_registrations(self):
        alice = self.raw_login("alice")
        regs = []
        for i in range(3):  # more than the worker threads for long jobs
            c = self.raw(timeout=60)
            c.open_stream()
            c.starttls()
            c.send("<iq type='set' id='reg'>%s</iq>" % (storage_tests.REG % ("new%d" % i, "password-%d" % i)))
            regs.append(c)
        time.sleep(0.2)  # the derivations have started
        worst = 0.0
        for _ in range(5):
            t0 = time.monotonic()
            got = alice.iq("<query xmlns='jabber:iq:roster'/>", timeout=30)
            worst = max(worst, time.monotonic() - t0)
            self.assertEqual(got.get("type"), "result", ET.tostring(got))
        for c in regs:
            answer = c.wait_for(lambda e: e.tag == q(NS_CLIENT, "iq"), timeout=120)
            self.assertEqual(answer.get("type"), "result", ET.tostring(answer))
        self.assertLess(worst, 0.5, "a roster get took %.0f ms during registrations"
                        % (worst * 1000))


class PresenceBroadcastOrderTests(ServerTestCase):
    """Initial presence reads the roster off the event loop; the broadcast,
    the probes and the requests waiting for the user go out once it is in,
    and what the client sent right after its presence (in the same write)
    is handled after them (RFC 6120 §10.1 in-order processing): contacts
    see the presence before the message that follows it, and the probe
    answers reach the client before the answer to its next iq."""
    server_kwargs = dict(users={u: u + "-pw" for u in ("alice", "bob", "carol")},
                         config={"modules": {"roster": {}}})

    def test_broadcast_and_probes_come_before_the_next_stanza(self):
        alice = self.raw_login("alice", resource="desk", presence=False)
        bob = self.raw_login("bob", resource="phone", presence=False)
        carol = self.raw_login("carol", resource="pc", presence=False)
        # A roster big enough that reading it takes a moment.
        alice.send("".join(
            "<iq type='set' id='set%d'><query xmlns='jabber:iq:roster'><item jid='c%d@%s'/>"
            "</query></iq>" % (i, i, DOMAIN) for i in range(200)))
        # alice and bob subscribed both ways (pre-approved, then asked).
        alice.send("<presence type='subscribed' to='bob@%s'/>" % DOMAIN)
        bob.send("<presence type='subscribed' to='alice@%s'/>" % DOMAIN)
        self.assertEqual(alice.ping(), "result")
        self.assertEqual(bob.ping(), "result")
        alice.send("<presence type='subscribe' to='bob@%s'/>" % DOMAIN)
        bob.send("<presence type='subscribe' to='alice@%s'/>" % DOMAIN)
        # carol's request waits for alice (she is not available yet).
        carol.send("<presence type='subscribe' to='alice@%s'/>" % DOMAIN)
        for c in (alice, bob, carol):
            self.assertEqual(c.ping(), "result")
        bob.send("<presence><status>bob here</status></presence>")
        self.assertEqual(bob.ping(), "result")
        alice.nothing_more(within=0.3)
        bob.nothing_more(within=0.3)

        for round_ in range(3):
            alice.send("<presence><status>round %d</status></presence>"
                       "<message to='bob@%s' type='chat' id='m%d'><body>after presence</body>"
                       "</message><iq type='get' id='p%d'><ping xmlns='urn:xmpp:ping'/></iq>"
                       % (round_, DOMAIN, round_, round_))
            seen_bob = []
            while True:
                el = bob.read_element(timeout=10)
                seen_bob.append(el)
                if el.tag == q(NS_CLIENT, "message"):
                    break
            kinds = [(el.tag.split("}")[1], el.get("from"), el.get("type")) for el in seen_bob]
            self.assertIn(("presence", alice.jid, None), kinds,
                          "bob got the message before alice's presence: %s" % kinds)
            self.assertEqual(kinds[-1], ("message", alice.jid, "chat"))
            seen_alice = []
            while True:
                el = alice.read_element(timeout=10)
                seen_alice.append(el)
                if el.tag == q(NS_CLIENT, "iq") and el.get("id") == "p%d" % round_:
                    break
            kinds = [(el.tag.split("}")[1], el.get("from"), el.get("type")) for el in seen_alice]
            if round_ == 0:
                # §4.3: the probe answer (bob's presence) and carol's waiting
                # request (§3.1.3), both before the ping's answer.
                self.assertIn(("presence", bob.jid, None), kinds)
                self.assertIn(("presence", "carol@%s" % DOMAIN, "subscribe"), kinds)
            # §4.2.2: her own presence comes back to her, before the ping too.
            self.assertIn(("presence", alice.jid, None), kinds)
            self.assertEqual((kinds[-1][0], kinds[-1][2]), ("iq", "result"))
        for c in (alice, bob, carol):
            c.close()


class FullJidQueryTests(ServerTestCase):
    """An archive query whose 'with' names a full JID (XEP-0313 §4.1.1)
    matches the stanzas' addresses, so it walks that conversation; the walk
    is read off the event loop in bounded steps, and its answers (page,
    <count/>, index of <first/>, complete) are those of a walk on the loop.
    The archive's first and last items (§5, metadata) are read off the loop
    too."""
    N = 1200  # items from bob: even ones from bob/a, odd ones from bob/b
    server_kwargs = dict(users={"alice": "alice-pw"},
                         config={"modules": {"mam": {"max_count": 1000000}}})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server.stop()
        db = sqlite3.connect(os.path.join(cls.server.dir, "tern.db"))
        try:
            rid = db.execute("SELECT ifnull(max(rid), 0) FROM archive").fetchone()[0]
            t0 = int(time.time() * 1e6) - cls.N * 1000
            rows = []
            for i in range(cls.N):
                rid += 1
                rows.append((rid, rid, DOMAIN, "archive", "alice", "f%d" % i, t0 + i * 1000,
                             "bob@" + DOMAIN,
                             ("<message xmlns='jabber:client' from='bob@%s/%s' to='alice@%s'"
                              " type='chat'><body>m%d</body></message>"
                              % (DOMAIN, "ab"[i % 2], DOMAIN, i)).encode()))
            db.executemany("INSERT INTO archive (rid, seq, host, store, user, id, when_us,"
                           " with_jid, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            db.commit()
        finally:
            db.close()
        cls.server._launch()

    def query(self, c, with_, rsm):
        from test_mam import raw_mam
        r, _ = raw_mam(c, form={"with": with_}, rsm=rsm, timeout=30)
        self.assertIsNone(r.error)
        return r

    def test_pages_counts_and_index_of_a_full_jid(self):
        alice = self.raw_login("alice", resource="desk")
        a = "bob@%s/a" % DOMAIN
        half = self.N // 2
        r = self.query(alice, a, {"max": 10})
        self.assertEqual(r.bodies, ["m%d" % i for i in range(0, 20, 2)])
        self.assertEqual((r.count, r.index, r.complete), (half, 0, "false"))
        r = self.query(alice, a, {"max": 10, "before": ""})  # the last page
        self.assertEqual(r.bodies, ["m%d" % i for i in range(self.N - 20, self.N, 2)])
        self.assertEqual((r.count, r.index, r.complete), (half, half - 10, "false"))  # older ones remain
        # From the middle, past several steps of the walk.
        r = self.query(alice, a, {"max": 5, "after": "f801"})
        self.assertEqual(r.bodies, ["m%d" % i for i in range(802, 812, 2)])
        self.assertEqual((r.count, r.index, r.first, r.last), (half, 401, "f802", "f810"))
        r = self.query(alice, a, {"max": 3, "before": "f701"})
        self.assertEqual(r.bodies, ["m694", "m696", "m698", "m700"][1:])
        self.assertEqual(r.index, 348)
        r = self.query(alice, a, {"max": 0})  # the count alone
        self.assertEqual((r.bodies, r.count), ([], half))
        r = self.query(alice, "bob@%s/c" % DOMAIN, {"max": 10})
        self.assertEqual((r.bodies, r.count, r.complete), ([], 0, "true"))
        # The same session's next stanza comes after the whole answer.
        self.assertEqual(alice.ping(), "result")

    def test_metadata_first_and_last(self):
        alice = self.raw_login("alice", resource="meta")
        answer = alice.iq("<metadata xmlns='%s'/>" % NS_MAM)
        md = answer.find(q(NS_MAM, "metadata"))
        self.assertEqual(md.find(q(NS_MAM, "start")).get("id"), "f0")
        self.assertEqual(md.find(q(NS_MAM, "end")).get("id"), "f%d" % (self.N - 1))
