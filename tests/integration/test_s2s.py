"""Federation between two Tern servers (RFC 6120 between servers, XEP-0178
SASL EXTERNAL, XEP-0220 Server Dialback): a.test on 127.0.0.2 and b.test on
127.0.0.3, found through a private DNS server (dnsmasq: SRV and A records),
certificates from a private test CA (pki.py), slixmpp clients as users.

- EXTERNAL: both certificates from the trusted test CA: messages both ways,
  mutual subscription with presence across, `ternctl s2s` says EXTERNAL,
  and the answers travel on the first server's stream (XEP-0288 bidi).
- Dialback: certificates the peer does not trust, each domain in the
  other's s2s.dialback_only: messages go through, authenticated by dialback.
- Refused: untrusted certificates, not listed: remote-server-not-found.
- Faults: peer stopped (remote-server-not-found at once), frozen with
  SIGSTOP (remote-server-timeout after connect_timeout), restarted (the next
  message goes through within a second).
- Attacks from a raw socket peer: a stanza from a domain it did not
  authenticate (invalid-from), to a domain not ours (host-unknown, nothing
  relayed), a dialback key that does not verify (db:result invalid, no
  stanza accepted).
"""
import hashlib
import hmac
import signal
import socket
import ssl
import threading
import time
import unittest

from federation import (ENV, IPS, PORTS, FedCase, FedServer, base_records, leaf, set_up,
                        tear_down, untrusted)
from harness import NS_STANZAS, NS_STREAM, NS_TLS, T_REPLY, RawClient, SlixClient, free_port, q

NS_SERVER = "jabber:server"
NS_DB = "jabber:server:dialback"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


def setUpModule():
    set_up()


def tearDownModule():
    tear_down()


class ExternalTests(FedCase):
    """Both certificates from the test CA: SASL EXTERNAL both ways."""

    def test_1_first_message_both_ways(self):
        msg = self.send_and_receive(self.alice, self.bob, "bob@b.test", "hello from a")
        self.assertEqual(str(msg["from"]), "alice@a.test/r")
        msg = self.send_and_receive(self.bob, self.alice, "alice@a.test", "hello from b")
        self.assertEqual(str(msg["from"]), "bob@b.test/r")
        for i in range(5):
            self.send_and_receive(self.alice, self.bob, "bob@b.test/r", "again %d" % i)

    def test_2_external_used(self):
        self.send_and_receive(self.alice, self.bob, "bob@b.test", "for the listing")
        out = self.a.s2s_list()
        line = [l for l in out.splitlines() if l.startswith("out") and "b.test" in l]
        self.assertTrue(line, out)
        self.assertIn("EXTERNAL", line[0])
        self.assertIn("TLSv1.", line[0])
        self.assertIn("valid", line[0])
        inb = [l for l in self.b.s2s_list().splitlines() if l.startswith("in") and "a.test" in l]
        self.assertTrue(inb)
        self.assertIn("EXTERNAL", inb[0])
        # XEP-0288: b.test answered on a.test's stream, opening none of its own.
        self.assertIn("EXTERNAL+bidi", line[0])
        self.assertIn("EXTERNAL+bidi", inb[0])
        self.assertEqual([l for l in self.a.s2s_list().splitlines() if l.startswith("in")], [])
        self.assertEqual([l for l in self.b.s2s_list().splitlines() if l.startswith("out")], [])

    def test_3_subscription_and_presence(self):
        a, b = self.alice.mark(), self.bob.mark()
        self.alice.send_raw("<presence to='bob@b.test' type='subscribe'/>")
        self.bob.wait_stanza(lambda s: s.name == "presence" and s["type"] == "subscribe" and
                             str(s["from"]) == "alice@a.test", since=b)
        self.bob.send_raw("<presence to='alice@a.test' type='subscribed'/>")
        self.bob.send_raw("<presence to='alice@a.test' type='subscribe'/>")
        self.alice.wait_stanza(lambda s: s.name == "presence" and s["type"] == "subscribed" and
                               str(s["from"]) == "bob@b.test", since=a)
        self.alice.wait_stanza(lambda s: s.name == "presence" and s["type"] == "subscribe" and
                               str(s["from"]) == "bob@b.test", since=a)
        self.alice.send_raw("<presence to='bob@b.test' type='subscribed'/>")
        # Each now has the other's presence: an update goes across.
        a, b = self.alice.mark(), self.bob.mark()
        self.alice.send_raw("<presence><status>away from a</status></presence>")
        p = self.bob.wait_stanza(lambda s: s.name == "presence" and
                                 str(s["from"]) == "alice@a.test/r" and
                                 s["status"] == "away from a", since=b)
        self.assertEqual(p["type"], "available")
        self.bob.send_raw("<presence><status>here at b</status></presence>")
        self.alice.wait_stanza(lambda s: s.name == "presence" and
                               str(s["from"]) == "bob@b.test/r" and
                               s["status"] == "here at b", since=a)


class SimultaneousTests(FedCase):
    """Both servers open their first link to each other at the same moment,
    each with stanzas waiting: neither side's bidirectional use of the
    other's stream may write them before that stream has restarted after
    SASL, and every message arrives once, in order."""

    def test_messages_both_ways_at_once_on_new_links(self):
        mark_a, mark_b = self.alice.mark(), self.bob.mark()
        for i in range(20):
            self.alice.send_message("bob@b.test/r", "from-a-%d" % i)
            self.bob.send_message("alice@a.test/r", "from-b-%d" % i)
        self.bob.wait_message("from-a-19", since=mark_b)
        self.alice.wait_message("from-b-19", since=mark_a)
        got_b = [m["body"] for m in self.bob.received_since(mark_b, ("message",)) if m["body"].startswith("from-a-")]
        got_a = [m["body"] for m in self.alice.received_since(mark_a, ("message",))
                 if m["body"].startswith("from-b-")]
        self.assertEqual(got_b, ["from-a-%d" % i for i in range(20)])
        self.assertEqual(got_a, ["from-b-%d" % i for i in range(20)])
        for srv in (self.a, self.b):
            self.assertNotIn("not-well-formed", srv.log_text())


class DialbackTests(FedCase):
    """Certificates the peer does not trust, allowed for dialback."""
    a_cert = staticmethod(untrusted)
    b_cert = staticmethod(untrusted)
    a_s2s = {"dialback_only": ["b.test"]}
    b_s2s = {"dialback_only": ["a.test"]}

    def test_dialback(self):
        self.send_and_receive(self.alice, self.bob, "bob@b.test", "dialback a to b")
        self.send_and_receive(self.bob, self.alice, "alice@a.test", "dialback b to a")
        line = [l for l in self.a.s2s_list().splitlines()
                if l.startswith("out") and "b.test" in l]
        self.assertTrue(line)
        self.assertIn("dialback", line[0])
        self.assertNotIn(" valid", line[0])  # the certificate column says what is wrong


class RefusedTests(FedCase):
    """Certificates the peer does not trust and no dialback_only: refused."""
    a_cert = staticmethod(untrusted)
    b_cert = staticmethod(untrusted)

    def test_refused(self):
        t0 = time.monotonic()
        cond, text = self.bounce_of(self.alice, "bob@b.test", "never delivered")
        self.assertEqual(cond, "remote-server-not-found")
        self.assertIn("certificate", text)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn("dialback_only", self.a.log_text())


class Redirector:
    """A server at 127.0.0.4 that answers every stream with the stream error
    see-other-host naming `target` (RFC 6120 §4.9.3.19)."""

    def __init__(self, target):
        self.target = target
        self.port = free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.4", self.port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.seen = 0
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.seen += 1
            try:
                c.settimeout(5)
                data = b""
                while b"<stream:stream" not in data or not data.rstrip().endswith(b">"):
                    got = c.recv(4096)
                    if not got:
                        break
                    data += got
                c.sendall(("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' "
                           "id='redir1' from='b.test' version='1.0'><stream:error>"
                           "<see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>%s"
                           "</see-other-host></stream:error></stream:stream>" %
                           (NS_SERVER, NS_STREAM, self.target)).encode())
                time.sleep(0.2)
            except OSError:
                pass
            finally:
                c.close()

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


class RedirectTests(FedCase):
    """b.test's DNS names a server that sends see-other-host to b.test's
    real address: the stanza goes there and is delivered."""

    @classmethod
    def setUpClass(cls):
        cls.redirector = Redirector("%s:%d" % (IPS["b.test"], PORTS["b.test"]))
        records = [r for r in base_records() if r[1] != "_xmpp-server._tcp.b.test"]
        records += [("A", "redir.test", "127.0.0.4"),
                    ("SRV", "_xmpp-server._tcp.b.test", "redir.test", cls.redirector.port)]
        ENV.dns.set_records(records)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.redirector.stop()
        ENV.dns.set_records(base_records())

    def test_see_other_host(self):
        self.send_and_receive(self.alice, self.bob, "bob@b.test", "via another host")
        self.assertGreaterEqual(self.redirector.seen, 1)
        self.assertIn("redirected to %s port %d" % (IPS["b.test"], PORTS["b.test"]),
                      self.a.log_text())


class PolicyTests(FedCase):
    """s2s.deny on a.test, s2s.enabled off on b.test: stanzas bounce at
    once and no connection is made."""
    a_s2s = {"deny": ["b.test"]}
    b_s2s = {"enabled": False}

    def test_denied_and_disabled(self):
        cond, text = self.bounce_of(self.alice, "bob@b.test", "denied")
        self.assertEqual(cond, "remote-server-not-found")
        self.assertIn("federate", text)
        cond, _ = self.bounce_of(self.bob, "alice@a.test", "disabled")
        self.assertEqual(cond, "remote-server-not-found")
        self.assertNotIn("out", self.a.s2s_list())
        self.assertNotIn("out", self.b.s2s_list())


class FaultTests(FedCase):
    """The peer stops, freezes and comes back."""

    def test_stopped_frozen_restarted(self):
        self.send_and_receive(self.alice, self.bob, "bob@b.test", "before the faults")
        # Stopped: the next message bounces at once.
        self.bob.disconnect()
        self.b.stop()
        time.sleep(0.3)
        t0 = time.monotonic()
        cond, text = self.bounce_of(self.alice, "bob@b.test", "to a stopped server")
        self.assertEqual(cond, "remote-server-not-found")
        self.assertTrue(text)
        self.assertLess(time.monotonic() - t0, 1.5)
        # Restarted: the next message goes through within a second.
        time.sleep(1.2)  # the first backoff has passed
        type(self).b = FedServer("b.test", leaf("b.test"), users={"bob": "bob-pw"}).start()
        type(self).bob = SlixClient(self.b, "bob", resource="r").connect()
        t0 = time.monotonic()
        self.send_and_receive(self.alice, self.bob, "bob@b.test", "back again", timeout=3)
        self.assertLess(time.monotonic() - t0, 1.0)
        # Frozen: remote-server-timeout after connect_timeout (2 s).
        self.a.ternctl_ok("s2s", "close", "b.test")
        time.sleep(0.3)
        self.b.signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            cond, text = self.bounce_of(self.alice, "bob@b.test", "to a frozen server",
                                        timeout=8)
            took = time.monotonic() - t0
            self.assertEqual(cond, "remote-server-timeout")
            self.assertGreater(took, 1.5)
            self.assertLess(took, 5)
        finally:
            self.b.signal(signal.SIGCONT)


class QueueTests(FedCase):
    """While the connection is set up at most queue_max_stanzas wait; the
    others bounce at once, and those waiting bounce when it times out."""
    a_s2s = {"queue_max_stanzas": 2}

    def test_queue_bound(self):
        self.b.signal(signal.SIGSTOP)
        try:
            mark = self.alice.mark()
            for i in range(3):
                self.alice.send_message("bob@b.test", "queued %d" % i)

            def errors():
                return [(m["body"], m["error"]["condition"])
                        for m in self.alice.received_since(mark, kinds=("message",))
                        if m["type"] == "error"]
            self.alice.wait_stanza(lambda m: m.name == "message" and m["type"] == "error",
                                   since=mark)
            self.assertEqual(errors(), [("queued 2", "resource-constraint")])
            deadline = time.monotonic() + 8
            while len(errors()) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertEqual(sorted(errors()), [("queued 0", "remote-server-timeout"),
                                                ("queued 1", "remote-server-timeout"),
                                                ("queued 2", "resource-constraint")])
        finally:
            self.b.signal(signal.SIGCONT)


class IdleTests(FedCase):
    """A server connection without traffic for s2s.idle_timeout is closed;
    the next stanza opens a new one."""
    a_s2s = {"idle_timeout": "2s"}

    def test_idle_closed(self):
        self.send_and_receive(self.alice, self.bob, "bob@b.test", "before idling")
        self.assertIn("b.test", self.a.s2s_list())
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and any(
                l.startswith("out") for l in self.a.s2s_list().splitlines()):
            time.sleep(0.2)
        self.assertFalse([l for l in self.a.s2s_list().splitlines() if l.startswith("out")])
        self.send_and_receive(self.alice, self.bob, "bob@b.test", "after idling")


class RawPeer(RawClient):
    """A server peer spoken by hand: TLS with a client certificate."""

    def __init__(self, server, leaf):
        self.leaf = leaf
        super().__init__(PORTS[server.domain], host=IPS[server.domain])

    def open(self, to, frm):
        self.send("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:db='%s' "
                  "xmlns:stream='%s' to='%s' from='%s' version='1.0'>" %
                  (NS_SERVER, NS_DB, NS_STREAM, to, frm))
        self.features = self.expect(q(NS_STREAM, "features"))
        return self.features

    def secure(self, to, frm):
        self.open(to, frm)
        self.send("<starttls xmlns='%s'/>" % NS_TLS)
        self.expect(q(NS_TLS, "proceed"))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(self.leaf.chain_path, self.leaf.key_path)
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=to)
        self.tls = True
        self._new_parser()
        return self.open(to, frm)

    def external(self, to, frm):
        f = self.secure(to, frm)
        mechs = [m.text for m in f.iter(q(NS_SASL, "mechanism"))]
        assert "EXTERNAL" in mechs, mechs
        self.send("<auth xmlns='%s' mechanism='EXTERNAL'>=</auth>" % NS_SASL)
        self.expect(q(NS_SASL, "success"))
        self._new_parser()
        return self.open(to, frm)


def dialback_key(secret, receiving, originating, stream_id):
    """XEP-0185 §3."""
    key = hashlib.sha256(secret.encode()).hexdigest().encode()
    data = ("%s %s %s" % (receiving, originating, stream_id)).encode()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


B_SECRET = "the dialback secret of b.test"


class AttackTests(FedCase):
    """A peer that breaks the rules is refused; one that keeps them may
    authenticate several domain pairs on one stream."""
    b_s2s = {"dialback_secret": B_SECRET}
    a_extra = {"services": {"conference.a.test": {"modules": {"disco": {}}}}}

    def test_piggybacked_pairs(self):
        # A raw peer that knows b.test's secret speaks for b.test: dialback
        # for (b.test, a.test) and then (b.test, conference.a.test) on the
        # same stream, each checked with b.test itself.
        peer = RawPeer(self.a, leaf("b.test"))
        try:
            peer.secure("a.test", "b.test")
            sid = peer.header["id"]
            for to in ("a.test", "conference.a.test"):
                peer.send("<db:result from='b.test' to='%s'>%s</db:result>" %
                          (to, dialback_key(B_SECRET, to, "b.test", sid)))
                el = peer.wait_for(lambda e: e.tag == q(NS_DB, "result") and
                                   e.get("to") == "b.test" and e.get("from") == to)
                self.assertEqual(el.get("type"), "valid")
            # A stanza to the service domain is taken; its answer goes to
            # bob through a.test's own stream to b.test.
            mark = self.bob.mark()
            peer.send("<iq type='get' id='pig1' from='bob@b.test/r' to='conference.a.test'>"
                      "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
            got = self.bob.wait_stanza(lambda s: s.name == "iq" and s["id"] == "pig1",
                                       since=mark)
            self.assertEqual(got["type"], "result")
            self.assertEqual(str(got["from"]), "conference.a.test")
            # A pair with a domain that is not ours: item-not-found.
            peer.send("<db:result from='b.test' to='c.test'>%s</db:result>" %
                      dialback_key(B_SECRET, "c.test", "b.test", sid))
            el = peer.wait_for(lambda e: e.tag == q(NS_DB, "result") and
                               e.get("from") == "c.test")
            self.assertEqual(el.get("type"), "error")
            self.assertIsNotNone(el.find(".//" + q(NS_STANZAS, "item-not-found")))
        finally:
            peer.close()

    def test_invalid_from(self):
        peer = RawPeer(self.a, leaf("b.test"))
        try:
            peer.external("a.test", "b.test")
            mark = self.alice.mark()
            peer.send("<message from='eve@evil.test' to='alice@a.test'><body>spoofed</body>"
                      "</message>")
            self.assertEqual(peer.stream_error(), "invalid-from")
            time.sleep(0.5)
            self.assertEqual(self.alice.received_since(mark, kinds=("message",)), [])
        finally:
            peer.close()

    def test_not_relayed(self):
        peer = RawPeer(self.a, leaf("b.test"))
        try:
            peer.external("a.test", "b.test")
            peer.send("<message from='bob@b.test' to='carol@c.test'><body>relay me</body>"
                      "</message>")
            self.assertEqual(peer.stream_error(), "host-unknown")
            time.sleep(0.5)
            self.assertNotIn("-> c.test", self.a.log_text())  # never even tried
            self.assertNotIn("c.test", self.a.s2s_list())
        finally:
            peer.close()

    def test_bad_dialback_key(self):
        # The peer claims b.test; b.test (the authoritative server) says no.
        peer = RawPeer(self.a, leaf("b.test"))
        try:
            peer.secure("a.test", "b.test")
            peer.send("<db:result from='b.test' to='a.test'>%s</db:result>" % ("ab" * 32))
            el = peer.wait_for(lambda e: e.tag == q(NS_DB, "result"), timeout=T_REPLY)
            self.assertEqual(el.get("type"), "invalid")
            mark = self.alice.mark()
            peer.send("<message from='bob@b.test' to='alice@a.test'><body>sneaky</body>"
                      "</message>")
            self.assertEqual(peer.stream_error(), "not-authorized")
            time.sleep(0.5)
            self.assertEqual(self.alice.received_since(mark, kinds=("message",)), [])
        finally:
            peer.close()

    def test_wrong_name_certificate(self):
        # A trusted certificate, but for c.test: neither EXTERNAL nor
        # dialback authenticates b.test with it.
        peer = RawPeer(self.a, leaf("c.test"))
        try:
            f = peer.secure("a.test", "b.test")
            self.assertIn("EXTERNAL", [m.text for m in f.iter(q(NS_SASL, "mechanism"))])
            peer.send("<auth xmlns='%s' mechanism='EXTERNAL'>=</auth>" % NS_SASL)
            el = peer.expect(q(NS_SASL, "failure"))
            self.assertIsNotNone(el.find(q(NS_SASL, "not-authorized")))
            peer.send("<db:result from='b.test' to='a.test'>%s</db:result>" % ("ab" * 32))
            el = peer.wait_for(lambda e: e.tag == q(NS_DB, "result"))
            self.assertEqual(el.get("type"), "error")
            self.assertIsNotNone(el.find(".//" + q(NS_STANZAS, "not-authorized")))
        finally:
            peer.close()

    def test_stanza_before_authentication(self):
        peer = RawPeer(self.a, leaf("b.test"))
        try:
            peer.secure("a.test", "b.test")
            peer.send("<message from='bob@b.test' to='alice@a.test'><body>early</body>"
                      "</message>")
            self.assertEqual(peer.stream_error(), "not-authorized")
        finally:
            peer.close()


class FloodTests(FedCase):
    """A peer's stanzas count against the same rate as an account's: over
    it the stream is read more slowly, nothing is lost."""
    a_extra = {"limits": {"max_stanzas_per_second": 10, "stanza_burst": 5}}

    def test_flood_slowed(self):
        peer = RawPeer(self.a, leaf("b.test"))
        try:
            peer.external("a.test", "b.test")
            mark = self.alice.mark()
            t0 = time.monotonic()
            peer.send("".join("<message from='bob@b.test/r' to='alice@a.test/r'>"
                              "<body>flood %d</body></message>" % i for i in range(25)))
            self.alice.wait_message("flood 24", since=mark, timeout=15)
            took = time.monotonic() - t0
            got = [m["body"] for m in self.alice.received_since(mark, kinds=("message",))]
            self.assertEqual(got, ["flood %d" % i for i in range(25)])
            self.assertGreater(took, 1.5)  # 20 over the burst at 10 a second
        finally:
            peer.close()


if __name__ == "__main__":
    unittest.main()
