"""Flow control on client connections: a client that reads nothing while
others send to it holds them up once its queue passes half the output
limit (max_stanza_size x 4 + 1 MiB, here 1.25 MiB), and is disconnected
after limits.slow_reader_timeout (here 2 s), without hurting the senders;
a client that floods the server is read at 256 KiB/s after a 1 MiB burst,
while everybody else is still served at once; and many stanzas sent to one
client in one burst all arrive, in order, over TLS; a connection that
goes quiet gives back its TLS buffers and parser and is served as before
when it speaks again."""
import socket
import threading
import time

from harness import DOMAIN, NS_CLIENT, NS_PING, ServerTestCase, q

BODY = "x" * 60000  # under the 64K stanza limit of the test server


class FlowTests(ServerTestCase):
    server_kwargs = dict(users={u: u + "-pw" for u in
                                ("alice", "bob", "carol", "dave", "erin", "frank", "mallory")},
                         config={"limits": {"slow_reader_timeout": "2s"}})

    def test_reader_that_reads_nothing_is_disconnected_senders_unharmed(self):
        bob = self.raw_login("bob", "sleepy")
        # Keep bob's receive window small so the server's queue fills first.
        bob.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # 10 connections of 0.96 MB each: enough to fill the server's socket
        # buffer towards bob (up to 4 MB here) and then the 1.25 MiB queue.
        senders = [self.raw_login(u, "loud%d" % i)
                   for u in ("alice", "carol", "dave", "erin", "frank") for i in range(2)]
        stanza = ("<message to='bob@%s/sleepy' type='chat'><body>%s</body></message>"
                  % (DOMAIN, BODY)).encode()

        def flood(c):
            for _ in range(16):  # just under each sender's 1 MiB read burst
                c.send(stanza)

        threads = [threading.Thread(target=flood, args=(c,)) for c in senders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        deadline = time.monotonic() + 15
        while "reader too slow" not in self.server.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertIn("reader too slow", self.server.log_text())
        # bob's session is gone (his socket is closed; the kernel may still
        # be handing him what was already sent), and the senders are served,
        # the bounces of what bob did not get included.
        answer = senders[0].iq("<ping xmlns='%s'/>" % NS_PING, to="bob@%s/sleepy" % DOMAIN)
        self.assertEqual(answer.get("type"), "error")
        for c in senders:
            self.assertEqual(c.ping(), "result")

    def test_flood_is_read_at_the_rate_limit_others_served_at_once(self):
        mallory = self.raw_login("mallory", "flood")
        alice = self.raw_login("alice", "calm")
        # 1.75 MiB of whitespace between stanzas (allowed: keepalives), then
        # a ping: 1 MiB passes at once, the rest at 256 KiB/s, about 3 s.
        flood = b" " * (1792 * 1024) + (
            "<iq type='get' id='after-flood'><ping xmlns='%s'/></iq>" % NS_PING).encode()
        mallory.sock.settimeout(30)
        start = time.monotonic()
        # (One thread at a time on mallory's TLS socket: it is joined before reading.)
        sender = threading.Thread(target=mallory.send, args=(flood,))
        sender.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        self.assertEqual(alice.ping(), "result")
        self.assertLess(time.monotonic() - t0, 1.0, "a bystander waited for the flood")
        sender.join(30)
        pong = mallory.expect(q(NS_CLIENT, "iq"), timeout=20)
        took = time.monotonic() - start
        self.assertEqual(pong.get("id"), "after-flood")
        self.assertGreater(took, 2.0, "the flood was read faster than the rate limit")
        self.assertLess(took, 10.0, "the flood was read far slower than the rate limit")

    def test_burst_of_messages_arrives_complete_and_in_order(self):
        alice = self.raw_login("alice", "burst")
        bob = self.raw_login("bob", "burst")
        n = 500
        alice.send("".join("<message to='bob@%s/burst' type='chat'><body>m%d</body></message>"
                           % (DOMAIN, i) for i in range(n)))
        got = []
        while len(got) < n:
            el = bob.expect(q(NS_CLIENT, "message"))
            got.append(el.findtext(q(NS_CLIENT, "body")))
        self.assertEqual(got, ["m%d" % i for i in range(n)])
        self.assertEqual(bob.nothing_more(0.3), [])

    def status(self):
        r = self.server.ternctl_ok("status")
        return dict(line.split(": ", 1) for line in r.stdout.strip().splitlines())

    def test_quiet_connections_give_back_buffers_and_resume(self):
        alice = self.raw_login("alice", "quiet")
        bob = self.raw_login("bob", "quiet")
        for round_ in range(3):
            alice.send("<message to='bob@%s/quiet' type='chat'><body>r%d</body></message>"
                       % (DOMAIN, round_))
            el = bob.expect(q(NS_CLIENT, "message"))
            self.assertEqual(el.findtext(q(NS_CLIENT, "body")), "r%d" % round_)
            self.assertGreaterEqual(int(self.status()["busy connections"]), 2)
            # Quiet for over a second: both give their buffers back...
            deadline = time.monotonic() + 5
            while int(self.status()["busy connections"]) > 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            st = self.status()
            self.assertEqual(int(st["busy connections"]), 0)
            self.assertGreaterEqual(int(st["connections"]), 2)
            # ... and the next round reads and writes on both as before.
        self.assertEqual(bob.ping(), "result")
        self.assertEqual(alice.nothing_more(0.2), [])
