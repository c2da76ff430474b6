"""TLS across a reload: a connection accepted before `ternctl reload` (or
SIGHUP) whose client has not yet sent its ClientHello still completes the
handshake, SNI included, on direct TLS (XEP-0368) and after STARTTLS
(RFC 6120 §5.4.3.3); a reload with a new certificate serves it to new
connections while connections made before keep working."""
import signal
import ssl
import time

from harness import (DOMAIN, NS_TLS, RawClient, ServerTestCase, T_REPLY, q)


class TlsReloadTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"})

    def accepted(self, before):
        """Wait until ternd logged one more new connection than `before`."""
        deadline = time.monotonic() + T_REPLY
        while time.monotonic() < deadline:
            if self.server.log_text().count(": new ") > before:
                return
            time.sleep(0.02)
        self.fail("ternd did not accept the connection\n" + self.server.log_tail())

    def reload(self, how):
        """Reload and wait until ternd says it is done."""
        before = self.server.log_text().count("configuration and certificates reloaded")
        if how == "sighup":
            self.server.signal(signal.SIGHUP)
        else:
            self.server.ternctl_ok("reload")
        deadline = time.monotonic() + T_REPLY
        while self.server.log_text().count("configuration and certificates reloaded") <= before:
            self.assertTrue(self.server.running(), "ternd died on reload\n" +
                            self.server.log_tail())
            self.assertLess(time.monotonic(), deadline, "no reload\n" + self.server.log_tail())
            time.sleep(0.02)

    def test_direct_tls_handshake_across_reload(self):
        for how in ("ternctl", "sighup"):
            with self.subTest(how=how):
                before = self.server.log_text().count(": new ")
                # TCP to the direct TLS port, no ClientHello yet.
                c = RawClient(self.server.tls_port, direct_tls=False)
                self._clients.append(c)
                self.accepted(before)
                self.reload(how)
                c._wrap_tls(("xmpp-client",), DOMAIN)  # ClientHello with SNI now
                c.login("alice", "alice-pw", "direct-" + how)
                self.assertEqual(c.ping(), "result")

    def test_starttls_handshake_across_reload(self):
        c = self.raw()
        c.open_stream()
        c.send("<starttls xmlns='%s'/>" % NS_TLS)
        c.expect(q(NS_TLS, "proceed"))
        self.reload("ternctl")
        c._wrap_tls(None, DOMAIN)
        c._new_parser()
        c.open_stream()
        status, cond = c.auth_scram("bob", "bob-pw")
        self.assertEqual(status, "success", cond)
        c.restart()
        c.bind("starttls")
        self.assertEqual(c.ping(), "result")

    def test_new_certificate_for_new_connections(self):
        old = self.raw_login("alice", "before-new-cert")
        first_cert = old.peer_cert
        r = self.server.ternctl("cert", DOMAIN, self.server.cert_path, self.server.key_path, "30")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.reload("ternctl")
        new = self.raw_login("bob", "after-new-cert", direct_tls=True)
        self.assertNotEqual(new.peer_cert, first_cert, "the old certificate is still served")
        with open(self.server.cert_path) as f:
            pem = f.read()
        self.assertEqual(new.peer_cert, ssl.PEM_cert_to_DER_cert(pem))
        # The connection made before the reload keeps working on its session.
        self.assertEqual(old.ping(), "result")
        self.assertEqual(new.ping(), "result")
        starttls = RawClient(self.server.c2s_port)
        self._clients.append(starttls)
        starttls.login("alice", "alice-pw", "after-new-cert-starttls")
        self.assertEqual(starttls.peer_cert, new.peer_cert)
