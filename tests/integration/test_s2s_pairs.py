"""Federation by domain pair (set-up imported from test_s2s.py): a.test on
127.0.0.2 and b.test on 127.0.0.3, certificates from the test CA naming
each domain and its subdomains.

- Inbound: a stanza is taken only for a (from, to) pair authenticated on
  its stream: after EXTERNAL for b.test -> a.test, a stanza to
  conference.a.test ends the stream with host-unknown, one from sub.b.test
  with invalid-from; a db:result for b.test -> conference.a.test on that
  stream is valid at once (the certificate names b.test, XEP-0344) and
  then the service domain is reachable.
- Outgoing piggybacking: users of two hosts of a.test (a.test, x.a.test)
  write to b.test: one stream carries both pairs (`ternctl s2s`).
- Bidi (XEP-0288): a second host of b.test writes to a.test on a.test's
  bidirectional stream: it asks with a db:result there, a.test checks it
  (with the certificate, or with y.b.test's authoritative server when the
  certificate does not name it) and answers instead of refusing.
- Reload: s2s.dialback_secret and s2s.ca_file apply at `ternctl reload`.
- Unused links are forgotten after s2s.idle_timeout (at most a minute).
"""
import os
import time
import unittest

from harness import NS_STANZAS, SlixClient, q
from federation import ENV, IPS, PORTS, base_records
from pki import TestCA
from test_s2s import (B_SECRET, NS_DB, FedCase, FedServer, RawPeer, dialback_key, leaf,
                      setUpModule, tearDownModule)  # noqa: F401  (module set-up)


class InboundPairTests(FedCase):
    """A raw peer authenticated as b.test towards a.test only."""
    b_s2s = {"dialback_secret": B_SECRET}
    a_extra = {"services": {"conference.a.test": {"modules": {"disco": {}}}}}

    def test_to_unauthenticated_domain_of_ours(self):
        peer = RawPeer(self.a, leaf("b.test"))
        try:
            peer.external("a.test", "b.test")
            peer.send("<iq type='get' id='p1' from='bob@b.test/r' to='conference.a.test'>"
                      "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
            self.assertEqual(peer.stream_error(), "host-unknown")
            self.assertNotIn("id=\"p1\"", peer.raw_in.decode(errors="replace"))
            self.assertIn("b.test to conference.a.test, a domain pair not authenticated",
                          self.a.log_text())
        finally:
            peer.close()

    def test_from_unauthenticated_subdomain(self):
        peer = RawPeer(self.a, leaf("b.test"))
        try:
            peer.external("a.test", "b.test")
            mark = self.alice.mark()
            peer.send("<message from='eve@sub.b.test' to='alice@a.test'><body>sub</body>"
                      "</message>")
            self.assertEqual(peer.stream_error(), "invalid-from")
            time.sleep(0.3)
            self.assertEqual(self.alice.received_since(mark, kinds=("message",)), [])
        finally:
            peer.close()

    def test_pair_added_with_certificate(self):
        # EXTERNAL authenticated b.test -> a.test; the same certificate names
        # b.test, so a db:result for b.test -> conference.a.test is valid at
        # once, whatever the key (XEP-0344 §2.4), and the pair is usable.
        peer = RawPeer(self.a, leaf("b.test"))
        try:
            peer.external("a.test", "b.test")
            peer.send("<db:result from='b.test' to='conference.a.test'>%s</db:result>" %
                      ("ab" * 32))
            el = peer.wait_for(lambda e: e.tag == q(NS_DB, "result"))
            self.assertEqual(el.get("type"), "valid")
            self.assertEqual(el.get("from"), "conference.a.test")
            lines = [l for l in self.a.s2s_list().splitlines() if l.startswith("in")]
            self.assertTrue(any("b.test->a.test b.test->conference.a.test" in l
                                for l in lines), lines)
            mark = self.bob.mark()
            peer.send("<iq type='get' id='p2' from='bob@b.test/r' to='conference.a.test'>"
                      "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
            got = self.bob.wait_stanza(lambda s: s.name == "iq" and s["id"] == "p2", since=mark)
            self.assertEqual(got["type"], "result")
            # The pair of EXTERNAL itself, asked again, is valid too.
            peer.send("<db:result from='b.test' to='a.test'>%s</db:result>" % ("cd" * 32))
            el = peer.wait_for(lambda e: e.tag == q(NS_DB, "result") and e.get("from") == "a.test")
            self.assertEqual(el.get("type"), "valid")
        finally:
            peer.close()


class TwoHostServer(FedServer):
    """a.test with a second host x.a.test (its certificate names *.a.test)."""

    def build_config(self):
        conf = super().build_config()
        conf["hosts"]["x.a.test"] = {}
        return conf


class HostClient(SlixClient):
    """A user of another host of `server` than its main domain."""

    def __init__(self, server, user, domain, password, resource=None):
        self._domain = domain
        super().__init__(server, user, password=password, resource=resource)

    @property
    def domain(self):
        return self._domain


class PiggybackTests(FedCase):
    """Users of a.test and x.a.test, both on server A, write to bob@b.test."""

    @classmethod
    def setUpClass(cls):
        cls.a = TwoHostServer("a.test", leaf("a.test"), users={"alice": "alice-pw"}).start()
        cls.a.ternctl_ok("adduser", "carol@x.a.test", "--password-stdin", input="carol-pw\n")
        cls.b = FedServer("b.test", leaf("b.test"), users={"bob": "bob-pw"}).start()
        cls.alice = SlixClient(cls.a, "alice", resource="r").connect()
        cls.bob = SlixClient(cls.b, "bob", resource="r").connect()

    def test_one_stream_two_pairs(self):
        self.send_and_receive(self.alice, self.bob, "bob@b.test", "from the first host")
        carol = HostClient(self.a, "carol", "x.a.test", "carol-pw", resource="r").connect()
        try:
            msg = self.send_and_receive(carol, self.bob, "bob@b.test", "from the second host")
            self.assertEqual(str(msg["from"]), "carol@x.a.test/r")
            # The answer comes back on the same stream (bidi).
            self.send_and_receive(self.bob, carol, "carol@x.a.test/r", "back to the second")
        finally:
            carol.disconnect()
        out = [l for l in self.a.s2s_list().splitlines() if l.startswith("out")]
        self.assertEqual(len(out), 1, out)
        self.assertIn("pairs: a.test->b.test x.a.test->b.test", out[0])
        inb = [l for l in self.b.s2s_list().splitlines() if l.startswith("in")]
        self.assertEqual(len(inb), 1, inb)
        self.assertIn("a.test->b.test x.a.test->b.test", inb[0])
        self.assertEqual([l for l in self.b.s2s_list().splitlines() if l.startswith("out")], [])


class TwoHostB(FedServer):
    """b.test with a second host y.b.test."""

    def build_config(self):
        conf = super().build_config()
        conf["hosts"]["y.b.test"] = {}
        return conf


class BidiPairTests(FedCase):
    """yolanda@y.b.test writes to alice@a.test after a.test opened its
    bidirectional stream to b.test (certificates from the test CA)."""
    b_cert = staticmethod(leaf)

    @classmethod
    def setUpClass(cls):
        cls.a = FedServer("a.test", cls.a_cert("a.test"), cls.a_s2s,
                          users={"alice": "alice-pw"}).start()
        cls.b = TwoHostB("b.test", cls.b_cert("b.test"), cls.b_s2s,
                         users={"bob": "bob-pw"}).start()
        cls.b.ternctl_ok("adduser", "yolanda@y.b.test", "--password-stdin", input="yo-pw\n")
        cls.alice = SlixClient(cls.a, "alice", resource="r").connect()
        cls.bob = SlixClient(cls.b, "bob", resource="r").connect()

    def test_peer_pair_on_our_stream(self):
        self.send_and_receive(self.alice, self.bob, "bob@b.test", "opens the stream")
        yolanda = HostClient(self.b, "yolanda", "y.b.test", "yo-pw", resource="r").connect()
        try:
            msg = self.send_and_receive(yolanda, self.alice, "alice@a.test", "from y.b.test")
            self.assertEqual(str(msg["from"]), "yolanda@y.b.test/r")
            self.send_and_receive(self.alice, yolanda, "yolanda@y.b.test/r", "answer to y")
        finally:
            yolanda.disconnect()
        deadline = time.monotonic() + 4
        while True:  # (with dialback, the check may end after the message went)
            out = [l for l in self.a.s2s_list().splitlines() if l.startswith("out")]
            to_b = [l for l in out if l.startswith("out b.test ")]
            if time.monotonic() > deadline or (to_b and "y.b.test->a.test" in to_b[0]):
                break
            time.sleep(0.1)
        self.assertEqual(len(to_b), 1, out)
        self.assertIn("pairs: a.test->b.test y.b.test->a.test", to_b[0])
        self.check_other_streams([l for l in out if l not in to_b])
        self.assertEqual([l for l in self.b.s2s_list().splitlines() if l.startswith("out")], [])
        inb = [l for l in self.b.s2s_list().splitlines() if l.startswith("in")]
        self.assertTrue(any("y.b.test->a.test" in l for l in inb), inb)  # B's pair, riding
        self.assertNotIn("feature-not-implemented", self.b.log_text())

    def check_other_streams(self, lines):
        # The certificate proved y.b.test: no other stream was needed.
        self.assertEqual(lines, [])


def b_only(domain):
    """A trusted certificate naming `domain` alone (not its subdomains)."""
    return ENV.ca.issue(domain, [domain], stem=domain + "-alone")


class BidiPairVerifyTests(BidiPairTests):
    """The same, but b.test's certificate does not name y.b.test (allowed
    dialback on a.test): a.test asks y.b.test's authoritative server (found
    in DNS) about the key, then answers valid."""
    b_cert = staticmethod(b_only)
    a_s2s = {"dialback_only": ["y.b.test"]}

    @classmethod
    def setUpClass(cls):
        records = base_records()
        records += [("A", "y.b.test", IPS["b.test"]),
                    ("SRV", "_xmpp-server._tcp.y.b.test", "y.b.test", PORTS["b.test"])]
        ENV.dns.set_records(records)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        ENV.dns.set_records(base_records())

    def check_other_streams(self, lines):
        # a.test asked y.b.test's authoritative server on a stream of its own.
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("out y.b.test a.test "), lines)
        self.assertIn("y.b.test authenticated with dialback (to a.test) on our bidirectional "
                      "stream", self.a.log_text())


class ReloadSecretTests(FedCase):
    """b.test's dialback secret changes with a reload: keys made with the
    new secret verify at once, keys made with the old one still do (until
    the next change)."""
    b_s2s = {"dialback_secret": B_SECRET}

    def claim(self, secret):
        """A raw peer claims b.test towards a.test with a key from `secret`;
        a.test asks b.test (the authoritative server): its answer."""
        peer = RawPeer(self.a, leaf("b.test"))
        try:
            peer.secure("a.test", "b.test")
            peer.send("<db:result from='b.test' to='a.test'>%s</db:result>" %
                      dialback_key(secret, "a.test", "b.test", peer.header["id"]))
            el = peer.wait_for(lambda e: e.tag == q(NS_DB, "result"))
            return el.get("type")
        finally:
            peer.close()

    def test_secret_reloaded(self):
        self.assertEqual(self.claim(B_SECRET), "valid")
        new = "a new secret of b.test, reloaded"
        self.b.s2s_extra["dialback_secret"] = new
        self.b.config = self.b.build_config()
        self.b.write_config()
        self.b.ternctl_ok("reload")
        self.assertEqual(self.claim(new), "valid")
        self.assertEqual(self.claim(B_SECRET), "valid")  # given before the reload
        self.assertEqual(self.claim("not the secret of b.test at all"), "invalid")


class ReloadTrustTests(FedCase):
    """a.test first trusts another authority than the one of b.test's
    certificate, then the right one after a reload: the next message goes."""

    @classmethod
    def setUpClass(cls):
        cls.other_ca = TestCA(os.path.join(ENV.work, "other-ca"))
        cls.a_s2s = {"ca_file": cls.other_ca.cert_path}
        super().setUpClass()

    def test_ca_file_reloaded(self):
        cond, text = self.bounce_of(self.alice, "bob@b.test", "not trusted yet")
        self.assertEqual(cond, "remote-server-not-found")
        self.assertIn("certificate", text)
        self.a.s2s_extra["ca_file"] = ENV.ca.cert_path
        self.a.config = self.a.build_config()
        self.a.write_config()
        self.a.ternctl_ok("reload")
        time.sleep(1.2)  # the first backoff has passed
        self.send_and_receive(self.alice, self.bob, "bob@b.test", "trusted now")
        line = [l for l in self.a.s2s_list().splitlines() if l.startswith("out")]
        self.assertIn("EXTERNAL", line[0])


class SweepTests(FedCase):
    """A link closed for idleness is forgotten at the next sweep, which
    runs every s2s.idle_timeout when that is under a minute."""
    a_s2s = {"idle_timeout": "1s"}
    a_extra = {"log_level": "debug"}

    def test_unused_link_forgotten(self):
        self.send_and_receive(self.alice, self.bob, "bob@b.test", "then silence")
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and \
                "a.test -> b.test: unused, forgotten" not in self.a.log_text():
            time.sleep(0.2)
        self.assertIn("a.test -> b.test: unused, forgotten", self.a.log_text())
        self.send_and_receive(self.alice, self.bob, "bob@b.test", "after the sweep")


if __name__ == "__main__":
    unittest.main()
