"""Stream restarts (RFC 6120 §5.4.3.3 after STARTTLS, §6.4.6 after SASL
success) when the client sends whitespace, such as a newline, before the
new stream header and that header starts with an XML declaration, as
go-sendxmpp does.  The client must get the new stream's features and be
able to log in, bind and ping."""
from harness import NS_STREAM, NS_TLS, ServerTestCase, q

PROLOGS = ["\n<?xml version='1.0'?>", "\r\n<?xml version='1.0' encoding='UTF-8'?>",
           " \t\n<?xml version='1.0'?>", "\n"]


class StreamRestartTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw"})

    def login_with(self, prolog, after_tls=True, after_sasl=True):
        c = self.raw()
        c.open_stream()
        c.send("<starttls xmlns='%s'/>" % NS_TLS)
        c.expect(q(NS_TLS, "proceed"))
        c._wrap_tls(None, "localhost")
        c._new_parser()
        c.open_stream(prolog=prolog if after_tls else "<?xml version='1.0'?>")
        status, cond = c.auth_scram("alice", "alice-pw")
        self.assertEqual(status, "success", cond)
        c._new_parser()
        c.open_stream(prolog=prolog if after_sasl else "<?xml version='1.0'?>")
        self.assertIsNotNone(c.features)
        self.assertTrue(c.bind("restart").startswith("alice@localhost/"))
        self.assertEqual(c.ping(), "result")
        c.end()

    def test_whitespace_before_header_after_sasl(self):
        for prolog in PROLOGS:
            with self.subTest(prolog=prolog):
                self.login_with(prolog, after_tls=False)

    def test_whitespace_before_header_after_starttls(self):
        for prolog in PROLOGS:
            with self.subTest(prolog=prolog):
                self.login_with(prolog, after_sasl=False)

    def test_whitespace_before_first_header(self):
        c = self.raw()
        features = c.open_stream(prolog="\n<?xml version='1.0'?>")
        self.assertEqual(features.tag, q(NS_STREAM, "features"))
        c.end()

    def test_text_before_header_is_refused(self):
        c = self.raw()
        c.send("x<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
               "xmlns:stream='%s' to='localhost' version='1.0'>" % NS_STREAM)
        self.assertEqual(c.stream_error(), "not-well-formed")
