"""TLS streams end with a TLS close_notify alert (RFC 8446 §6.1, RFC 5246
§7.2.1) before the server closes the socket, whichever side ends the
stream: the client sees a clean TLS close, never "EOF occurred in
violation of protocol" (a truncation attack looks just like that)."""
import ssl
import time

from harness import DOMAIN, NS_STREAM, RawClient, ServerTestCase, T_REPLY, q, tls_context


class StrictTlsClient(RawClient):
    """A RawClient whose TLS layer reports an end without close_notify as
    an error instead of hiding it (suppress_ragged_eofs=False)."""

    def _wrap_tls(self, alpn, sni):
        ctx = tls_context(alpn)
        ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF  # Python sets it by default
        self.sock = ctx.wrap_socket(self.sock, server_hostname=sni, suppress_ragged_eofs=False)
        self.tls = True
        self.peer_cert = self.sock.getpeercert(binary_form=True)

    def tls_end(self, timeout=T_REPLY):
        """Read until the connection ends: "close_notify" for a clean TLS
        close, else the exception's name."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except ssl.SSLZeroReturnError:
                return "close_notify"
            except (OSError, ssl.SSLError) as e:
                return "%s: %s" % (type(e).__name__, e)
            if not data:
                return "close_notify"
            self._feed(data)
        return "still open"


class TlsCloseTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw"})

    def client(self, direct_tls):
        port = self.server.tls_port if direct_tls else self.server.c2s_port
        c = StrictTlsClient(port, direct_tls=direct_tls)
        self._clients.append(c)
        return c

    def test_client_ends_the_stream(self):
        for direct_tls in (True, False):
            with self.subTest(direct_tls=direct_tls):
                c = self.client(direct_tls)
                c.login("alice", "alice-pw", "bye-%d" % direct_tls)
                c.send("</stream:stream>")
                self.assertEqual(c.tls_end(), "close_notify")
                self.assertTrue(c.stream_ended, "no </stream:stream> before the close")

    def test_server_ends_the_stream(self):
        for direct_tls in (True, False):
            with self.subTest(direct_tls=direct_tls):
                c = self.client(direct_tls)
                c.login("alice", "alice-pw", "err-%d" % direct_tls)
                c.send("<message><unclosed></message>")  # not well-formed
                self.assertEqual(c.tls_end(), "close_notify")
                self.assertIn(b"<not-well-formed", c.raw_in)

    def test_server_ends_the_stream_before_login(self):
        c = self.client(True)
        c.send("<stream:stream xmlns='jabber:client' xmlns:stream='%s' to='%s' "
               "version='1.0'>" % (NS_STREAM, DOMAIN))
        c.expect(q(NS_STREAM, "features"))
        c.send("<message><unclosed></message>")  # not well-formed, before authentication
        self.assertEqual(c.tls_end(), "close_notify")
