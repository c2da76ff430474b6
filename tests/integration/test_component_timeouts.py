"""Timeouts on component connections (XEP-0114): a connection that does not
complete its handshake within limits.component_handshake_timeout is closed
with connection-timeout; a connected component that stays silent gets an
XMPP ping (XEP-0199) at half of limits.component_idle_timeout and is
closed with connection-timeout if it still says nothing, while one that
answers stays connected."""
import time

from harness import (NS_COMPONENT, NS_PING, NS_STREAM, ServerTestCase, StreamClosed, q)

COMP = "bots.localhost"
SECRET = "s3cret-component"


class ComponentTimeoutTests(ServerTestCase):
    server_kwargs = dict(components={COMP: SECRET},
                         config={"limits": {"component_handshake_timeout": "1s",
                                            "component_idle_timeout": "2s"}})

    def assertTimedOut(self, c, within):
        started = time.monotonic()
        self.assertEqual(c.stream_error(timeout=within), "connection-timeout")
        self.assertTrue(c.wait_closed(timeout=3), "still open after the stream error")
        return time.monotonic() - started

    def test_no_handshake_is_closed(self):
        c = self.raw(component=True)
        c.send("<stream:stream xmlns='%s' xmlns:stream='%s' to='%s'>" %
               (NS_COMPONENT, NS_STREAM, COMP))
        # The header comes back; the handshake never goes out.
        self.assertLess(self.assertTimedOut(c, within=6), 5)
        self.assertIn("no handshake", self.server.log_text())

    def test_nothing_sent_is_closed(self):
        c = self.raw(component=True)
        self.assertLess(self.assertTimedOut(c, within=6), 5)

    def test_silent_component_is_pinged_then_closed(self):
        c = self.raw(component=True)
        self.assertEqual(c.handshake(COMP, SECRET).tag, q(NS_COMPONENT, "handshake"))
        ping = c.read_element(timeout=5)
        self.assertEqual(ping.tag, q(NS_COMPONENT, "iq"))
        self.assertEqual(ping.get("type"), "get")
        self.assertEqual(ping.get("to"), COMP)
        self.assertIsNotNone(ping.find(q(NS_PING, "ping")))
        self.assertTimedOut(c, within=5)

    def test_answering_component_stays(self):
        c = self.raw(component=True)
        self.assertEqual(c.handshake(COMP, SECRET).tag, q(NS_COMPONENT, "handshake"))
        pings = 0
        deadline = time.monotonic() + 4.5  # more than twice the idle timeout
        while time.monotonic() < deadline:
            try:
                el = c.read_element(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            except StreamClosed:
                self.fail("component closed: %r" % c.raw_in[-500:])
            if el.tag == q(NS_COMPONENT, "iq") and el.get("type") == "get":
                pings += 1
                c.send("<iq type='result' id='%s' from='%s' to='%s'/>" %
                       (el.get("id"), COMP, el.get("from")))
        self.assertGreaterEqual(pings, 2)
        self.assertFalse(c.eof or c.stream_ended, "component closed: %r" % c.raw_in[-500:])
