"""Sizes: message bodies, attribute values and element names of every size
around the stanza tree's allocation sizes (each power of two from 1 KiB to
64 KiB, +-1) and around the configured stanza limit (64K in the harness).

Before login, on a raw socket without TLS, each one must get a sane answer
(a stream error, or the stream features for a stream header) and the server
must live on; after login a slixmpp client sends them to another one, who
receives them exactly.  A stanza of exactly max_stanza_size bytes is
delivered, one byte more is a policy-violation.  ternd runs under ASan in
CI, so an overrun anywhere fails the test class when the server stops."""
from harness import DOMAIN, NS_STREAM, ServerTestCase, StreamClosed

LIMIT = 64 * 1024  # limits.max_stanza_size in harness.py
SIZES = sorted({1, 2, 100, 2100, 3000, LIMIT - 1, LIMIT, LIMIT + 1} |
               {(1 << p) + d for p in range(10, 16) for d in (-1, 0, 1)})
NS_X = "urn:example:sizes"
# What a stream may end with before login for a stanza (RFC 6120 §4.9.3).
PRELOGIN_ERRORS = {"not-authorized", "policy-violation"}


def stanza(kind, n, to=None):
    """A message carrying n bytes as its body, an attribute value or an
    element name."""
    to_attr = " to='%s'" % to if to else ""
    if kind == "body":
        return "<message%s type='chat'><body>%s</body></message>" % (to_attr, "b" * n)
    if kind == "attr":
        return ("<message%s type='chat'><body>attr</body><x xmlns='%s' v='%s'/></message>" %
                (to_attr, NS_X, "v" * n))
    return ("<message%s type='chat'><body>name</body><%s xmlns='%s'/></message>" %
            (to_attr, "n" * n, NS_X))


class SizeTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw", "mallory": "mallory-pw"})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from harness import SlixClient
        cls.alice = SlixClient(cls.server, "alice", resource="a").connect()
        cls.bob = SlixClient(cls.server, "bob", resource="b").connect()

    @classmethod
    def tearDownClass(cls):
        for c in (cls.alice, cls.bob):
            c.disconnect()
        super().tearDownClass()

    def assertAlive(self):
        self.assertTrue(self.server.running(), "ternd died:\n" + self.server.log_tail())
        self.assertEqual(self.alice.ping(), "result")

    def prelogin_answer(self, data):
        """Open a plain stream, send `data`, return the stream error condition
        (None when the stream simply ends)."""
        c = self.raw()
        c.open_stream()
        c.send(data)
        try:
            cond = c.stream_error()
        except StreamClosed:
            cond = None
        self.assertTrue(c.wait_closed(), "connection still open")
        c.close()
        return cond

    def test_before_login(self):
        for kind in ("body", "attr", "name"):
            for n in SIZES:
                data = stanza(kind, n)
                cond = self.prelogin_answer(data)
                self.assertIn(cond, PRELOGIN_ERRORS, "%s of %d bytes" % (kind, n))
                if len(data) > LIMIT:
                    self.assertEqual(cond, "policy-violation", "%s of %d bytes" % (kind, n))
            self.assertAlive()

    def test_stream_header_attribute_before_login(self):
        for n in SIZES:
            c = self.raw()
            header = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                      "xmlns:stream='%s' to='%s' version='1.0' x='%s'>" % (NS_STREAM, DOMAIN,
                                                                           "h" * n))
            c.send(header)
            if len(header) - len("<?xml version='1.0'?>") > LIMIT:
                self.assertEqual(c.stream_error(), "policy-violation", "header attr %d" % n)
            else:
                c.features = c.expect("{%s}features" % NS_STREAM)
            c.close()
        self.assertAlive()

    def test_exact_limit_before_login(self):
        for extra in (-1, 0, 1):
            head, tail = "<message><body>", "</body></message>"
            data = head + "l" * (LIMIT + extra - len(head) - len(tail)) + tail
            cond = self.prelogin_answer(data)
            self.assertEqual(cond, "policy-violation" if extra > 0 else "not-authorized")
        self.assertAlive()

    def test_after_login_between_clients(self):
        to = "bob@%s/b" % DOMAIN
        for kind in ("body", "attr", "name"):
            for n in SIZES:
                if len(stanza(kind, n, to)) + 200 > LIMIT:
                    continue  # slixmpp adds an id and xml:lang; see test_exact_limit
                mark = self.bob.mark()
                if kind == "body":
                    body = "b" * n
                    self.alice.send_message(to, body)
                    msg = self.bob.wait_message(body, since=mark)
                    self.assertEqual(len(msg["body"]), n)
                    continue
                self.alice.send_raw(stanza(kind, n, to))

                def match(s, kind=kind, n=n):
                    if s.name != "message" or s["body"] != kind:
                        return False
                    if kind == "attr":
                        x = s.xml.find("{%s}x" % NS_X)
                        return x is not None and x.get("v") == "v" * n
                    return s.xml.find("{%s}%s" % (NS_X, "n" * n)) is not None
                self.bob.wait_stanza(match, since=mark)
        self.assertAlive()

    def test_exact_limit_after_login(self):
        """A stanza of exactly max_stanza_size bytes is delivered, one byte
        more ends the sender's stream with policy-violation."""
        to = "bob@%s/b" % DOMAIN
        head = "<message to='%s' type='chat'><body>" % to
        tail = "</body></message>"
        for extra in (-1, 0, 1):
            c = self.raw_login("mallory", "m%d" % (extra + 1))
            body = "e" * (LIMIT + extra - len(head) - len(tail))
            mark = self.bob.mark()
            c.send(head + body + tail)
            if extra > 0:
                self.assertEqual(c.stream_error(), "policy-violation")
            else:
                msg = self.bob.wait_message(body, since=mark)
                self.assertEqual(len(msg["body"]), len(body))
                self.assertEqual(c.ping(), "result")
        self.assertAlive()


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


class FreshNameTests(ServerTestCase):
    """A busy stream whose every stanza uses new element names, attribute
    names and namespace prefixes: the parser keeps each name it has seen,
    so without a bound the server's memory grew by about 7 bytes for each
    byte of such input (41 MB for 6 MB)."""
    server_kwargs = dict(users={"mallory": "mallory-pw"})
    INPUT = 3 * 1024 * 1024
    BOUND_KIB = 4 * 1024

    @classmethod
    def setUpClass(cls):
        # ASan keeps freed memory in quarantine (256 MB by default), which
        # would hide whether the parser's memory is given back.
        import os
        saved = os.environ.get("ASAN_OPTIONS")
        os.environ["ASAN_OPTIONS"] = ((saved + ":") if saved else "") + "quarantine_size_mb=1"
        try:
            super().setUpClass()
        finally:
            if saved is None:
                del os.environ["ASAN_OPTIONS"]
            else:
                os.environ["ASAN_OPTIONS"] = saved

    def send_fresh_names(self, c, start, nbytes):
        """Stanzas with new names (to nobody: no answer) until nbytes are sent."""
        sent, i, batch = 0, start, []
        while sent < nbytes:
            t = "%08x%d" % (i * 2654435761 % (1 << 32), i)
            s = ("<message type='error' to='nobody@localhost/x'><e%s xmlns='urn:e%s' "
                 "xmlns:p%s='urn:p%s' p%s:a%s='1' b%s='2'/></message>" % ((t,) * 7))
            batch.append(s)
            sent += len(s)
            i += 1
            if len(batch) == 500:
                c.send("".join(batch))
                batch = []
        c.send("".join(batch))
        self.assertEqual(c.ping(timeout=60), "result")  # all of it parsed
        return i

    def test_fresh_names_keep_memory_bounded(self):
        """The first 512 KiB warm the server up; the 3 MiB that follow must
        not grow it by more than BOUND_KIB (7 976 KiB before the fix, 348 after)."""
        c = self.raw_login("mallory", "names")
        pid = self.server.proc.pid
        i = self.send_fresh_names(c, 0, 512 * 1024)
        before = vm_rss_kib(pid)
        rss = []
        for part in range(3):
            i = self.send_fresh_names(c, i, self.INPUT // 3)
            rss.append(vm_rss_kib(pid) - before)
        print("\n  RSS grew by %s KiB after each 1 MiB of fresh names (%d stanzas)" % (rss, i))
        self.assertLess(rss[-1], self.BOUND_KIB)
