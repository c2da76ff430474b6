"""The web listeners: XMPP over WebSocket (RFC 7395) on https (wss://) and
http (ws://), XEP-0156 host-meta in both forms, and the HTTP server's edge
cases (unknown path, oversize headers, keep-alive, pipelining, slow clients).

WebSocket clients are python3-websockets (asyncio, driven synchronously
here); the chat partner is a TCP slixmpp client."""
import base64
import glob
import json
import os
import shutil
import tempfile
import re
import socket
import ssl
import time
import xml.etree.ElementTree as ET

import websockets

from harness import (TERN_MODULES, DOMAIN, NS_BIND, NS_CLIENT, NS_SASL, NS_STREAM, NS_STREAMS, ScramClient,
                     Server, ServerTestCase, T_REPLY, free_port, q, run_async)

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
OPEN = "<open xmlns='%s' to='%s' version='1.0'/>" % (NS_FRAMING, DOMAIN)


class WebServer(Server):
    """A Server with an http and an https listener."""

    def __init__(self, **kw):
        self.http_port = free_port()
        self.https_port = free_port()
        super().__init__(**kw)

    def build_config(self):
        conf = super().build_config()
        conf["listeners"] = conf["listeners"] + [
            {"type": "http", "address": "127.0.0.1", "port": self.http_port},
            {"type": "https", "address": "127.0.0.1", "port": self.https_port},
        ]
        return conf


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class WsClient:
    """One WebSocket connection on the harness's event loop (the one slixmpp
    clients use), driven synchronously."""

    def __init__(self, url, subprotocols=("xmpp",), secure=True, origin=None, max_size=None):
        kw = {"subprotocols": list(subprotocols) if subprotocols else None,
              "max_size": max_size, "open_timeout": T_REPLY, "ping_interval": None}
        if secure:
            kw["ssl"] = tls_context()
        if origin:
            kw["origin"] = origin
        async def go():  # made on the loop that runs it
            return await websockets.connect(url, **kw)
        self.ws = self.run(go())

    def run(self, coro, timeout=T_REPLY):
        return run_async(coro, timeout)

    def send(self, data):
        self.run(self.ws.send(data))

    def recv(self, timeout=T_REPLY):
        return self.run(self.ws.recv(), timeout)

    def recv_el(self, timeout=T_REPLY):
        return ET.fromstring(self.recv(timeout))

    def closed(self, timeout=T_REPLY):
        """Read until the server closes; returns (code, texts received)."""
        texts = []
        try:
            while True:
                texts.append(self.recv(timeout))
        except websockets.ConnectionClosed as e:
            return (e.rcvd.code if e.rcvd else None), texts

    def login(self, user, password, resource="ws"):
        self.send(OPEN)
        opened = self.recv_el()
        assert opened.tag == q(NS_FRAMING, "open"), opened.tag
        features = self.recv_el()
        assert features.tag == q(NS_STREAM, "features"), features.tag
        mechs = [m.text for m in features.iter(q(NS_SASL, "mechanism"))]
        assert "SCRAM-SHA-256" in mechs, mechs
        scram = ScramClient(user, password, "SCRAM-SHA-256")
        self.send("<auth xmlns='%s' mechanism='SCRAM-SHA-256'>%s</auth>" %
                  (NS_SASL, base64.b64encode(scram.client_first()).decode()))
        challenge = self.recv_el()
        assert challenge.tag == q(NS_SASL, "challenge"), ET.tostring(challenge)
        final = scram.client_final(base64.b64decode(challenge.text))
        self.send("<response xmlns='%s'>%s</response>" % (NS_SASL,
                                                        base64.b64encode(final).decode()))
        success = self.recv_el()
        assert success.tag == q(NS_SASL, "success"), ET.tostring(success)
        scram.verify_server_final(base64.b64decode(success.text))
        self.send(OPEN)
        assert self.recv_el().tag == q(NS_FRAMING, "open")
        features = self.recv_el()
        assert features.find(q(NS_BIND, "bind")) is not None
        self.send("<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='%s'>"
                  "<resource>%s</resource></bind></iq>" % (NS_BIND, resource))
        res = self.recv_el()
        self.jid = res.find(".//" + q(NS_BIND, "jid")).text
        self.send("<presence xmlns='jabber:client'/>")
        return self.jid

    def wait_for(self, pred, timeout=T_REPLY):
        deadline = time.monotonic() + timeout
        while True:
            el = self.recv_el(max(0.1, deadline - time.monotonic()))
            if pred(el):
                return el

    def close(self):
        try:
            self.run(self.ws.close(), 3)
        except Exception:
            pass


def http_raw(port, data, secure=False, timeout=T_REPLY, read_all=True):
    """Send bytes, read until the server closes (or timeout); the bytes read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if secure:
        s = tls_context().wrap_socket(s)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if not read_all:
                break
    except socket.timeout:
        pass
    s.close()
    return out


def statuses(raw):
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


def body_of(raw):
    return raw.split(b"\r\n\r\n", 1)[1]


class WebSocketTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-secret", "bob": "bob-secret"})
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = WebServer(name=cls.__name__, **cls.server_kwargs)
        cls.server.start()

    def tearDown(self):
        for c in getattr(self, "_ws", []):
            c.close()
        super().tearDown()

    def wss(self, **kw):
        c = WsClient("wss://127.0.0.1:%d/xmpp-websocket" % self.server.https_port, **kw)
        self._ws = getattr(self, "_ws", []) + [c]
        return c

    def test_login_and_chat_with_tcp_client_both_ways(self):
        ws = self.wss()
        self.assertEqual(ws.login("alice", "alice-secret", "web"), "alice@localhost/web")
        self.assertEqual(ws.ws.subprotocol, "xmpp")
        bob = self.slix("bob")
        ws.send("<message xmlns='jabber:client' to='bob@localhost' type='chat'>"
                "<body>hello from the web</body></message>")
        m = bob.wait_message("hello from the web")
        self.assertEqual(str(m["from"]), "alice@localhost/web")
        bob.send_message("alice@localhost/web", "hello back over tcp")
        got = ws.wait_for(lambda el: el.tag == q(NS_CLIENT, "message"))
        self.assertEqual(got.find(q(NS_CLIENT, "body")).text, "hello back over tcp")
        self.assertEqual(got.get("from").split("/")[0], "bob@localhost")
        # iq round trip (ping) and a clean close: <close/> answered with <close/>
        ws.send("<iq xmlns='jabber:client' type='get' id='p1' to='localhost'>"
                "<ping xmlns='urn:xmpp:ping'/></iq>")
        r = ws.wait_for(lambda el: el.tag == q(NS_CLIENT, "iq"))
        self.assertEqual(r.get("type"), "result")
        ws.send("<close xmlns='%s'/>" % NS_FRAMING)
        code, texts = ws.closed()
        self.assertTrue(any(ET.fromstring(t).tag == q(NS_FRAMING, "close") for t in texts), texts)
        self.assertEqual(code, 1000)

    def test_reconnect(self):
        for i in range(3):
            ws = self.wss()
            self.assertEqual(ws.login("alice", "alice-secret", "again"), "alice@localhost/again")
            ws.send("<iq xmlns='jabber:client' type='get' id='p%d' to='localhost'>"
                    "<ping xmlns='urn:xmpp:ping'/></iq>" % i)
            r = ws.wait_for(lambda el: el.tag == q(NS_CLIENT, "iq"))
            self.assertEqual(r.get("type"), "result")
            ws.close()

    def test_quiet_session_goes_on(self):
        """A quiet connection drops its frame buffers (after a second) and
        makes them again: the session goes on both ways."""
        ws = self.wss()
        ws.login("alice", "alice-secret", "quiet")
        bob = self.slix("bob", resource="q")
        time.sleep(1.6)
        bob.send_message("alice@localhost/quiet", "while you were quiet")
        got = ws.wait_for(lambda el: el.tag == q(NS_CLIENT, "message"))
        self.assertEqual(got.find(q(NS_CLIENT, "body")).text, "while you were quiet")
        time.sleep(1.6)
        ws.send("<message xmlns='jabber:client' to='bob@localhost/q' type='chat'>"
                "<body>back</body></message>")
        bob.wait_message("back")

    def test_wrong_password(self):
        ws = self.wss()
        ws.send(OPEN)
        ws.recv_el()
        ws.recv_el()
        scram = ScramClient("alice", "wrong", "SCRAM-SHA-256")
        ws.send("<auth xmlns='%s' mechanism='SCRAM-SHA-256'>%s</auth>" %
                (NS_SASL, base64.b64encode(scram.client_first()).decode()))
        ch = ws.recv_el()
        final = scram.client_final(base64.b64decode(ch.text))
        ws.send("<response xmlns='%s'>%s</response>" % (NS_SASL, base64.b64encode(final).decode()))
        self.assertEqual(ws.recv_el().tag, q(NS_SASL, "failure"))

    def test_binary_message_closes_1003(self):
        ws = self.wss()
        ws.send(OPEN)
        ws.recv_el()
        ws.send(b"<presence/>")
        code, _ = ws.closed()
        self.assertEqual(code, 1003)

    def test_oversize_message_closes_1009(self):
        ws = self.wss()
        ws.send(OPEN)
        ws.send("<message xmlns='jabber:client'><body>%s</body></message>" % ("x" * 300000))
        code, _ = ws.closed()
        self.assertEqual(code, 1009)

    def test_not_xml_gets_stream_error_and_close(self):
        ws = self.wss()
        ws.send(OPEN)
        ws.recv_el()
        ws.recv_el()
        ws.send("this is not xml")
        code, texts = ws.closed()
        els = [ET.fromstring(t) for t in texts]
        self.assertEqual(els[0].tag, q(NS_STREAM, "error"))
        self.assertIsNotNone(els[0].find(q(NS_STREAMS, "not-well-formed")))
        self.assertEqual(els[-1].tag, q(NS_FRAMING, "close"))
        self.assertEqual(code, 1000)

    def test_stream_header_instead_of_open_is_refused(self):
        ws = self.wss()
        ws.send("<stream:stream xmlns:stream='%s' xmlns='jabber:client' to='localhost' "
                "version='1.0'>" % NS_STREAM)
        code, texts = ws.closed()
        self.assertTrue(texts, "no answer")
        self.assertIn("invalid-namespace", "".join(texts))

    def test_missing_subprotocol_refused(self):
        with self.assertRaises(websockets.InvalidStatusCode) as cm:
            self.wss(subprotocols=None)
        self.assertEqual(cm.exception.status_code, 400)

    def test_wrong_version_refused(self):
        key = base64.b64encode(os.urandom(16)).decode()
        raw = http_raw(self.server.https_port, (
            "GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 8\r\n"
            "Sec-WebSocket-Protocol: xmpp\r\n\r\n" % key).encode(), secure=True,
            read_all=False)
        self.assertEqual(statuses(raw), [426])
        self.assertIn(b"Sec-WebSocket-Version: 13", raw)

    def test_plain_ws_needs_tls(self):
        with self.assertRaises(websockets.InvalidStatusCode) as cm:
            WsClient("ws://127.0.0.1:%d/xmpp-websocket" % self.server.http_port, secure=False)
        self.assertEqual(cm.exception.status_code, 403)

    def test_websocket_ping_answered(self):
        ws = self.wss()
        ws.send(OPEN)
        ws.recv_el()
        pong = ws.run(ws.ws.ping(b"are you there"))
        ws.run(pong)  # the pong came

    # ---- XEP-0156 ----

    def test_host_meta_xrd(self):
        raw = http_raw(self.server.https_port,
                       b"GET /.well-known/host-meta HTTP/1.1\r\nHost: localhost\r\n"
                       b"Connection: close\r\n\r\n", secure=True)
        self.assertEqual(statuses(raw), [200])
        self.assertIn(b"Access-Control-Allow-Origin: *", raw)
        self.assertIn(b"Content-Type: application/xrd+xml", raw)
        xrd = ET.fromstring(body_of(raw))
        links = {ln.get("rel"): ln.get("href")
                 for ln in xrd.iter("{http://docs.oasis-open.org/ns/xri/xrd-1.0}Link")}
        self.assertEqual(links["urn:xmpp:alt-connections:websocket"],
                         "wss://localhost/xmpp-websocket")

    def test_host_meta_json(self):
        raw = http_raw(self.server.http_port,
                       b"GET /.well-known/host-meta.json HTTP/1.1\r\nHost: localhost\r\n"
                       b"Connection: close\r\n\r\n")
        self.assertEqual(statuses(raw), [200])
        self.assertIn(b"Access-Control-Allow-Origin: *", raw)
        doc = json.loads(body_of(raw))
        self.assertEqual(doc["links"], [{"rel": "urn:xmpp:alt-connections:websocket",
                                         "href": "wss://localhost:%d/xmpp-websocket" %
                                         self.server.https_port}])

    # ---- HTTP edge cases ----

    def test_unknown_path_404_and_wrong_method_405(self):
        """Both keep the connection: the next request is answered."""
        raw = http_raw(self.server.http_port,
                       b"GET /nothing-here HTTP/1.1\r\nHost: localhost\r\n\r\n"
                       b"POST /.well-known/host-meta HTTP/1.1\r\nHost: localhost\r\n"
                       b"Content-Length: 4\r\n\r\nbody"
                       b"GET /.well-known/host-meta HTTP/1.1\r\nHost: localhost\r\n"
                       b"Connection: close\r\n\r\n")
        self.assertEqual(statuses(raw), [404, 405, 200])

    def test_wrong_method_405(self):
        raw = http_raw(self.server.http_port,
                       b"POST /.well-known/host-meta HTTP/1.1\r\nHost: localhost\r\n"
                       b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        self.assertEqual(statuses(raw), [405])

    def test_oversize_headers_431(self):
        raw = http_raw(self.server.http_port,
                       b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n")
        self.assertEqual(statuses(raw), [431])

    def test_oversize_body_413(self):
        raw = http_raw(self.server.http_port,
                       b"POST /.well-known/host-meta HTTP/1.1\r\nHost: localhost\r\n"
                       b"Content-Length: 5000000\r\n\r\n")
        self.assertEqual(statuses(raw), [413])

    def test_garbage_400(self):
        raw = http_raw(self.server.http_port, b"HELLO THERE\r\n\r\n")
        self.assertEqual(statuses(raw), [400])

    def test_keep_alive_two_requests_one_connection(self):
        s = socket.create_connection(("127.0.0.1", self.server.http_port), timeout=T_REPLY)
        got = []
        for _ in range(2):
            s.sendall(b"GET /.well-known/host-meta.json HTTP/1.1\r\nHost: localhost\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                data += s.recv(65536)
            got.append(data)
        s.close()
        for data in got:
            self.assertEqual(statuses(data), [200])
            self.assertNotIn(b"Connection: close", data)

    def test_pipelined_requests_answered_in_order(self):
        raw = http_raw(self.server.http_port,
                       b"GET /.well-known/host-meta.json HTTP/1.1\r\nHost: localhost\r\n\r\n"
                       b"GET /missing HTTP/1.1\r\nHost: localhost\r\n\r\n"
                       b"GET /.well-known/host-meta HTTP/1.1\r\nHost: localhost\r\n"
                       b"Connection: close\r\n\r\n")
        self.assertEqual(statuses(raw), [200, 404, 200])

    def test_slow_client_408(self):
        cfg_timeout = 1.0
        s = socket.create_connection(("127.0.0.1", self.server.http_port), timeout=T_REPLY)
        s.sendall(b"GET /.well-known/host-meta HTTP/1.1\r\n")
        start = time.monotonic()
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            s.sendall(b"X-Slow: 1\r\n")  # trickling headers does not extend the deadline
        s.close()
        self.assertEqual(statuses(data), [408])
        self.assertGreaterEqual(time.monotonic() - start, cfg_timeout * 0.8)


# The slow-client test wants a short request deadline.
WebSocketTests.server_kwargs = dict(
    users={"alice": "alice-secret", "bob": "bob-secret"},
    config={"http": {"request_timeout": "1s"}, "websocket": {"max_message_size": "64K"}})


class WebSocketOptionsTests(ServerTestCase):
    """see-other-uri, origins and ws:// from loopback when allowed."""

    @classmethod
    def setUpClass(cls):
        cls.server = WebServer(name=cls.__name__, users={"alice": "alice-secret"}, config={
            "websocket": {"origins": ["https://chat.example.org"], "allow_insecure": True}})
        cls.server.start()

    def test_origin_refused(self):
        with self.assertRaises(websockets.InvalidStatusCode) as cm:
            WsClient("wss://127.0.0.1:%d/xmpp-websocket" % self.server.https_port,
                     origin="https://evil.example.net")
        self.assertEqual(cm.exception.status_code, 403)

    def test_plain_ws_from_loopback_allowed_and_logs_in(self):
        ws = WsClient("ws://127.0.0.1:%d/xmpp-websocket" % self.server.http_port, secure=False,
                      origin="https://chat.example.org")
        try:
            self.assertEqual(ws.login("alice", "alice-secret"), "alice@localhost/ws")
        finally:
            ws.close()


class SeeOtherUriTests(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = WebServer(name=cls.__name__, config={
            "websocket": {"see_other_uri": "wss://other.example.org/xmpp-websocket"}})
        cls.server.start()

    def test_see_other_uri(self):
        ws = WsClient("wss://127.0.0.1:%d/xmpp-websocket" % self.server.https_port)
        try:
            ws.send(OPEN)
            code, texts = ws.closed()
            el = ET.fromstring(texts[0])
            self.assertEqual(el.tag, q(NS_FRAMING, "close"))
            self.assertEqual(el.get("see-other-uri"), "wss://other.example.org/xmpp-websocket")
        finally:
            ws.close()


TEST_MODULES = os.environ.get("TERN_TEST_MODULES", os.path.abspath(
    os.path.join(os.path.dirname(os.path.dirname(TERN_MODULES)), "tests/modules/.libs")))


class ModulePathTests(ServerTestCase):
    """Paths a module registers (tests/modules/mod_httptest.c): a body held
    in memory, a body streamed in chunks with an early refusal, an answer
    given later while a pipelined request waits, and the limits."""

    @classmethod
    def setUpClass(cls):
        so = os.path.join(TEST_MODULES, "mod_httptest.so")
        if not os.path.exists(so):
            raise AssertionError("%s not built: make tests/modules/mod_httptest.la" % so)
        cls.modules = tempfile.mkdtemp(prefix="tern-modules-")
        for path in glob.glob(os.path.join(TERN_MODULES, "mod_*.so")) + [so]:
            os.symlink(path, os.path.join(cls.modules, os.path.basename(path)))
        cls.server = WebServer(name=cls.__name__, config={
            "module_path": cls.modules, "modules": {"disco": {}, "httptest": {}},
            "hosts": {DOMAIN: {}, "other.test": {}},  # the module on both: its paths too
            "http": {"max_body_size": "64K", "trusted_proxies": ["127.0.0.1"]}})
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.modules, ignore_errors=True)

    def test_buffered_body_and_proxy_named_client(self):
        raw = http_raw(self.server.https_port,
                       b"POST /test/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n"
                       b"X-Forwarded-For: 198.51.100.9\r\nConnection: close\r\n\r\nhello world",
                       secure=True)
        self.assertEqual(statuses(raw), [200])
        self.assertEqual(body_of(raw), b"hello world")
        self.assertIn(b"X-Client: 198.51.100.9", raw)
        self.assertIn("198.51.100.9", self.server.log_tail())

    def test_module_on_two_hosts(self):
        for host in (b"localhost", b"other.test"):
            raw = http_raw(self.server.http_port,
                           b"POST /test/echo HTTP/1.1\r\nHost: " + host + b"\r\n"
                           b"Content-Length: 2\r\nConnection: close\r\n\r\nhi")
            self.assertEqual(statuses(raw), [200])
            self.assertEqual(body_of(raw), b"hi")

    def test_chunked_body(self):
        raw = http_raw(self.server.http_port,
                       b"POST /test/echo HTTP/1.1\r\nHost: localhost\r\n"
                       b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                       b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        self.assertEqual(statuses(raw), [200])
        self.assertEqual(body_of(raw), b"hello world")

    def test_buffered_body_over_limit_413(self):
        raw = http_raw(self.server.http_port,
                       b"POST /test/echo HTTP/1.1\r\nHost: localhost\r\n"
                       b"Content-Length: 70000\r\n\r\n" + b"x" * 70000)
        self.assertEqual(statuses(raw), [413])

    def test_streamed_body(self):
        data = bytes(range(256)) * 300  # 76800 bytes
        raw = http_raw(self.server.http_port,
                       b"PUT /test/upload/file.bin HTTP/1.1\r\nHost: localhost\r\n"
                       b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(data) + data)
        self.assertEqual(statuses(raw), [201])
        self.assertEqual(body_of(raw), b"%d bytes, sum %d" % (len(data), sum(data)))

    def test_streamed_body_refused_before_it_comes(self):
        raw = http_raw(self.server.http_port,
                       b"PUT /test/upload/x HTTP/1.1\r\nHost: localhost\r\nX-Refuse: 1\r\n"
                       b"Content-Length: 50000\r\n\r\n" + b"y" * 50000)
        self.assertEqual(statuses(raw), [403])

    def test_streamed_body_over_route_limit_413(self):
        raw = http_raw(self.server.http_port,
                       b"PUT /test/upload/x HTTP/1.1\r\nHost: localhost\r\n"
                       b"Content-Length: 200000\r\n\r\n")
        self.assertEqual(statuses(raw), [413])

    def test_later_answer_keeps_pipelined_order(self):
        raw = http_raw(self.server.http_port,
                       b"GET /test/later HTTP/1.1\r\nHost: localhost\r\n\r\n"
                       b"GET /.well-known/host-meta.json HTTP/1.1\r\nHost: localhost\r\n"
                       b"Connection: close\r\n\r\n")
        self.assertEqual(statuses(raw), [200, 200])
        first = raw.split(b"HTTP/1.1 ")[1]
        self.assertTrue(first.endswith(b"later"), raw)

    def test_client_gone_before_later_answer(self):
        s = socket.create_connection(("127.0.0.1", self.server.http_port), timeout=T_REPLY)
        s.sendall(b"GET /test/later HTTP/1.1\r\nHost: localhost\r\n\r\n")
        s.close()
        time.sleep(0.6)  # the timer fires after the request went away
        raw = http_raw(self.server.http_port,
                       b"GET /test/later HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        self.assertEqual(statuses(raw), [200])


class RateLimitTests(ServerTestCase):
    """http.requests_per_second: a burst of ten times the rate, then 429."""

    @classmethod
    def setUpClass(cls):
        cls.server = WebServer(name=cls.__name__, config={"http": {"requests_per_second": 1}})
        cls.server.start()

    def test_burst_then_429(self):
        one = (b"GET /.well-known/host-meta.json HTTP/1.1\r\nHost: localhost\r\n\r\n")
        raw = http_raw(self.server.http_port, one * 12)
        got = statuses(raw)
        self.assertEqual(got[:10], [200] * 10)
        self.assertEqual(got[10:], [429])  # and the connection closes
