"""Channel-binding negotiation with the clients users have: slixmpp 1.8
(Debian 12) tries every SCRAM -PLUS mechanism with tls-unique, which TLS 1.3
leaves undefined, then falls back to SCRAM with the 'y' flag.  Such an
attempt is no wrong password: it gets a failure naming the supported types,
does not count toward max_auth_failures, and the client's later 'y' is
accepted on that stream.  A 'y' with no -PLUS attempt before stays refused
(RFC 5802 §6, XEP-0474)."""
import xml.etree.ElementTree as ET

from harness import NS_SASL, ScramClient, ServerTestCase, b64, failure_condition, q


class ChannelBindingTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-secret", "bob": "bob-secret"})

    def plus_with_tls_unique(self, c, mech="SCRAM-SHA-256-PLUS"):
        """One -PLUS <auth/> with p=tls-unique; returns the server's answer."""
        scram = ScramClient("alice", "alice-secret", mech, c, cb_type="tls-unique")
        c.send("<auth xmlns='%s' mechanism='%s'>%s</auth>" % (NS_SASL, mech,
                                                              b64(scram.client_first())))
        return c.read_element()

    def test_slixmpp_default_configuration_logs_in(self):
        """No mechanism pinned, slixmpp's own channel-binding data: it must end
        up logged in on its first connection."""
        c = self.slix("bob", resource="default", mech="default")
        self.assertEqual(c.jid, "bob@localhost/default")
        self.assertEqual(c.ping(), "result")
        self.assertFalse(c.xmpp["feature_mechanisms"].mech.name.endswith("-PLUS"))

    def test_tls_unique_gets_failure_naming_supported_types(self):
        c = self.raw(direct_tls=True)
        c.open_stream()
        supported = c.cb_types()
        self.assertIn("tls-server-end-point", supported)
        el = self.plus_with_tls_unique(c)
        self.assertEqual(el.tag, q(NS_SASL, "failure"), ET.tostring(el))
        self.assertNotEqual(failure_condition(el), "not-authorized")
        text = el.find(q(NS_SASL, "text"))
        self.assertIsNotNone(text, "no <text/> in %s" % ET.tostring(el))
        for t in supported:
            self.assertIn(t, text.text)
        self.assertIn("tls-unique", text.text)
        self.assertIn("not counted as a failed login", self.server.log_text())

    def test_tls_unique_attempts_do_not_count_as_failed_logins(self):
        """More -PLUS attempts than max_auth_failures (3): the stream stays and
        the right password still works on it."""
        c = self.raw(direct_tls=True)
        c.open_stream()
        for mech in ("SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS",
                     "SCRAM-SHA-256-PLUS"):
            el = self.plus_with_tls_unique(c, mech)
            self.assertEqual(el.tag, q(NS_SASL, "failure"), ET.tostring(el))
        self.assertFalse(c.stream_ended or c.eof, "stream closed after -PLUS attempts")
        self.assertEqual(c.auth_scram("alice", "alice-secret", "SCRAM-SHA-256"),
                         ("success", None))

    def test_y_after_a_plus_attempt_is_accepted(self):
        c = self.raw(direct_tls=True)
        c.open_stream()
        self.assertEqual(self.plus_with_tls_unique(c).tag, q(NS_SASL, "failure"))
        self.assertEqual(c.auth_scram("alice", "alice-secret", "SCRAM-SHA-512", gs2_flag="y"),
                         ("success", None))
        c.restart()
        self.assertEqual(c.bind("y"), "alice@localhost/y")

    def test_y_without_a_plus_attempt_is_still_refused(self):
        c = self.raw(direct_tls=True)
        c.open_stream()
        self.assertIn("SCRAM-SHA-256-PLUS", c.mechanisms())
        self.assertEqual(c.auth_scram("alice", "alice-secret", "SCRAM-SHA-256", gs2_flag="y"),
                         ("failure", "not-authorized"))
