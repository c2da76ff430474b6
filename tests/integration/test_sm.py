"""Stream Management (XEP-0198) with mod_smacks: acknowledgements both ways,
resumption after a lost connection, and what happens to unacknowledged
messages when a session is not resumed.

Raw streams throughout (harness.RawClient), where the counts must be exact.
SmClient counts every stanza it reads (its 'h'), answers the server's <r/>
when told to, and keeps the bodies of the messages it got in order.
"""
import signal
import socket
import threading
import time
import xml.etree.ElementTree as ET

from harness import (DOMAIN, NS_CLIENT, T_SHORT, ServerTestCase, SlixClient, q)

NS_SM = "urn:xmpp:sm:3"
NS_ROSTER = "jabber:iq:roster"
NS_DELAY = "urn:xmpp:delay"
NS_MAM = "urn:xmpp:mam:2"
STANZAS = {q(NS_CLIENT, n) for n in ("message", "presence", "iq")}
USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}


def sm(name):
    return q(NS_SM, name)


class SmClient:
    """A RawClient that speaks stream management."""

    def __init__(self, case, user, resource=None, auto_ack=True):
        self.case = case
        self.user = user
        self.resource = resource
        self.auto_ack = auto_ack
        self.h = 0  # stanzas handled from the server
        self.bodies = []
        self.others = []
        self.raw = None

    def _connect(self):
        self.raw = self.case.raw()
        self.raw.open_stream()
        self.raw.starttls()
        status, cond = self.raw.auth_scram(self.user, USERS[self.user])
        assert status == "success", cond
        return self.raw.restart()

    def login(self, enable=True, resume=True, presence=True, max_=None):
        features = self._connect()
        self.features = features
        self.jid = self.raw.bind(self.resource)
        self.enabled = None
        if enable:
            self.raw.send("<enable xmlns='%s'%s%s/>" % (
                NS_SM, " resume='true'" if resume else "",
                " max='%d'" % max_ if max_ else ""))
            self.enabled = self.raw.expect(sm("enabled"))
        if presence:
            self.raw.send("<presence/>")
        return self

    def resume(self, previd, h=None):
        """A new connection that resumes previd; returns <resumed/> or <failed/>."""
        self._connect()
        self.raw.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (
            NS_SM, previd, self.h if h is None else h))
        return self.raw.wait_for(lambda e: e.tag in (sm("resumed"), sm("failed")))

    def next(self, timeout=None):
        """The next element; stanzas are counted and <r/> answered."""
        el = self.raw.read_element(timeout)
        if el.tag in STANZAS:
            self.h = (self.h + 1) % 2 ** 32
            body = el.find(q(NS_CLIENT, "body"))
            if el.tag == q(NS_CLIENT, "message") and body is not None:
                self.bodies.append(body.text)
            else:
                self.others.append(el)
        elif el.tag == sm("r") and self.auto_ack:
            self.ack()
        return el

    def ack(self):
        self.raw.send("<a xmlns='%s' h='%d'/>" % (NS_SM, self.h))

    def read_until(self, pred, timeout=8.0):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out; bodies so far: %d" % len(self.bodies))
            el = self.next(left)
            if pred(el):
                return el

    def read_bodies(self, n, timeout=20.0):
        """Read until n bodies in all arrived."""
        deadline = time.monotonic() + timeout
        while len(self.bodies) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("got %d of %d messages" % (len(self.bodies), n))
            self.next(left)

    def cut(self):
        """The network goes: no </stream:stream>, the TCP connection shut."""
        try:
            self.raw.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.raw.close()

    def request_ack(self):
        self.raw.send("<r xmlns='%s'/>" % NS_SM)
        return int(self.raw.wait_for(lambda e: e.tag == sm("a")).get("h"))


def send_burst(c, to, n, prefix="m", chunk=50, pause=0.0):
    for i in range(0, n, chunk):
        c.send("".join("<message to='%s' type='chat' id='%s%04d'><body>%s%04d</body></message>" %
                       (to, prefix, j, prefix, j) for j in range(i, min(n, i + chunk))))
        if pause:
            time.sleep(pause)


def sync(c):
    """All c sent before was handled (the server answers in order)."""
    assert c.ping() == "result"


def subscribe_both(case, a, b):
    """Mutual presence subscription between two logged-in raw clients."""
    roster = a.iq("<query xmlns='%s'/>" % NS_ROSTER)
    if any(i.get("subscription") == "both" for i in roster.iter(q(NS_ROSTER, "item"))):
        return
    for x, xu, y, yu in ((a, "alice", b, "carol"), (b, "carol", a, "alice")):
        x.send("<presence to='%s@%s' type='subscribe'/>" % (yu, DOMAIN))
        y.wait_for(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("type") == "subscribe")
        y.send("<presence to='%s@%s' type='subscribed'/>" % (xu, DOMAIN))
        sync(x)
        sync(y)


class SmTests(ServerTestCase):
    server_kwargs = dict(users=USERS, config={"modules": {
        "roster": {}, "offline": {}, "mam": {"default_policy": "always"},
        "smacks": {"resumption_timeout": "2s", "max_unacked": 2000}}})

    def test_feature_enable_and_acks(self):
        c = SmClient(self, "alice")
        features = c._connect()
        self.assertIsNotNone(features.find(sm("sm")), ET.tostring(features))
        c.raw.bind()
        c.raw.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
        en = c.raw.expect(sm("enabled"))
        self.assertEqual(en.get("resume"), "true")
        self.assertTrue(en.get("id"))
        self.assertEqual(en.get("max"), "2")
        # <r/> -> <a h/>: the server counts what it handled from us.
        self.assertEqual(c.request_ack(), 0)
        c.raw.ping()
        c.raw.ping()
        self.assertEqual(c.request_ack(), 2)
        # A second <enable/> is refused.
        c.raw.send("<enable xmlns='%s'/>" % NS_SM)
        self.assertIsNotNone(c.raw.expect(sm("failed")).find(
            q("urn:ietf:params:xml:ns:xmpp-stanzas", "unexpected-request")))

    def test_enable_before_bind_fails(self):
        c = SmClient(self, "alice")
        c._connect()
        c.raw.send("<enable xmlns='%s'/>" % NS_SM)
        self.assertEqual(c.raw.expect(sm("failed")).tag, sm("failed"))

    def test_server_requests_acks_and_drops_acked(self):
        a = SmClient(self, "alice", auto_ack=False).login(presence=False)
        b = self.raw()
        b.login("bob", USERS["bob"])
        send_burst(b, a.jid, 12, prefix="r")
        sync(b)
        # <r/> after every 5 stanzas.
        a.read_bodies(5)
        el = a.next()
        self.assertEqual(el.tag, sm("r"))
        a.read_bodies(12)
        a.ack()
        # An h of more than was sent: undefined-condition (XEP-0198 §4).
        a.raw.send("<a xmlns='%s' h='%d'/>" % (NS_SM, a.h + 1))
        self.assertEqual(a.raw.stream_error(), "undefined-condition")

    def test_h_too_high_across_the_wrap(self):
        a = SmClient(self, "alice").login(presence=False)
        a.raw.send("<a xmlns='%s' h='4294967295'/>" % NS_SM)
        self.assertEqual(a.raw.stream_error(), "undefined-condition")

    def test_resume_unknown_id(self):
        c = SmClient(self, "alice")
        failed = c.resume("no-such-session", h=0)
        self.assertEqual(failed.tag, sm("failed"))
        self.assertIsNotNone(failed.find(q("urn:ietf:params:xml:ns:xmpp-stanzas",
                                           "item-not-found")), ET.tostring(failed))
        # The stream goes on: the client may bind instead.
        self.assertTrue(c.raw.bind())

    def test_resume_of_another_accounts_session_fails(self):
        a = SmClient(self, "alice").login()
        previd = a.enabled.get("id")
        c = SmClient(self, "bob")
        failed = c.resume(previd, h=0)
        self.assertEqual(failed.tag, sm("failed"))
        self.assertIsNotNone(a.raw.ping())

    def test_cut_mid_burst_then_resume_every_message_once_in_order(self):
        n = 1000
        a = SmClient(self, "alice").login()
        previd = a.enabled.get("id")
        b = self.raw()
        b.login("bob", USERS["bob"])
        sender = threading.Thread(target=send_burst, args=(b, a.jid, n, "m", 50, 0.02))
        sender.start()
        a.read_bodies(300)
        a.cut()
        sender.join()
        sync(b)
        got_before = list(a.bodies)
        self.assertIn("detached sessions: 1", self.server.ternctl_ok("status").stdout)
        resumed = a.resume(previd)
        self.assertEqual(resumed.tag, sm("resumed"), ET.tostring(resumed))
        self.assertEqual(resumed.get("previd"), previd)
        a.read_bodies(n, timeout=60)
        expected = ["m%04d" % i for i in range(n)]
        self.assertEqual(a.bodies[:len(got_before)], got_before)
        self.assertEqual(a.bodies, expected)
        a.raw.nothing_more(T_SHORT)
        self.assertEqual(a.raw.ping(), "result")
        self.assertIn("detached sessions: 0", self.server.ternctl_ok("status").stdout)
        log = self.server.log_text()
        self.assertIn("detached", log)
        self.assertIn("resumed", log)

    def test_timeout_messages_go_offline_once_and_presence_stays(self):
        a = SmClient(self, "alice", resource="phone", auto_ack=False).login()
        carol = self.raw()
        carol.login("carol", USERS["carol"])
        subscribe_both(self, a.raw, carol)
        b = self.raw()
        b.login("bob", USERS["bob"])
        send_burst(b, a.jid, 20, prefix="t")
        sync(b)
        a.read_bodies(20)  # read, never acknowledged
        mark = len(carol.raw_in)
        a.cut()
        # While detached, contacts see no unavailable presence.
        time.sleep(1.0)
        self.assertNotIn(b"unavailable", carol.raw_in[mark:] + self._drain(carol))
        # After the timeout they do.
        carol.wait_for(lambda e: e.tag == q(NS_CLIENT, "presence") and
                       e.get("type") == "unavailable" and
                       e.get("from", "").startswith("alice@"), timeout=8)
        self.assertIn("not resumed", self.server.log_text())
        # Every unacknowledged message is in offline storage, once, marked.
        a2 = SmClient(self, "alice", resource="laptop").login(enable=False)
        a2.read_bodies(20)
        self.assertEqual(a2.bodies, ["t%04d" % i for i in range(20)])
        a2.raw.nothing_more(T_SHORT)
        # ... and the archive has each once.
        self.assertEqual(self._mam_count(a2.raw, "t"), 20)

    def _drain(self, c):
        try:
            c.nothing_more(0.2)
        except AssertionError:
            pass
        return c.raw_in

    def _mam_count(self, c, prefix):
        qid = "q" + str(time.monotonic_ns())
        # The last page: the newest 50 items.
        c.send("<iq type='set' id='%s'><query xmlns='%s' queryid='%s'>"
               "<set xmlns='http://jabber.org/protocol/rsm'><max>50</max><before/></set>"
               "</query></iq>" % (qid, NS_MAM, qid))
        bodies = []
        while True:
            el = c.read_element()
            if el.tag == q(NS_CLIENT, "iq") and el.get("id") == qid:
                assert el.get("type") == "result", ET.tostring(el)
                break
            for body in el.iter(q(NS_CLIENT, "body")):
                if body.text and body.text.startswith(prefix):
                    bodies.append(body.text)
        return len(bodies)

    def test_timeout_second_resource_gets_them(self):
        desk = self.raw()
        desk.login("alice", USERS["alice"], resource="desk")
        a = SmClient(self, "alice", resource="phone", auto_ack=False).login()
        b = self.raw()
        b.login("bob", USERS["bob"])
        send_burst(b, a.jid, 10, prefix="s")
        sync(b)
        a.read_bodies(10)
        a.cut()
        time.sleep(0.3)
        send_burst(b, a.jid, 5, prefix="w")  # these wait in the detached session
        sync(b)
        got = []
        deadline = time.monotonic() + 10
        while len(got) < 15 and time.monotonic() < deadline:
            el = desk.read_element(timeout=deadline - time.monotonic())
            body = el.find(q(NS_CLIENT, "body"))
            if el.tag == q(NS_CLIENT, "message") and body is not None:
                got.append(body.text)
                if body.text.startswith("s"):  # it reached the phone once
                    delay = el.find(q(NS_DELAY, "delay"))
                    self.assertIsNotNone(delay, ET.tostring(el))
                    self.assertEqual(delay.get("from"), DOMAIN)
        # Unacknowledged first, then what waited while detached, in order.
        self.assertEqual(got, ["s%04d" % i for i in range(10)] + ["w%04d" % i for i in range(5)])
        desk.nothing_more(T_SHORT)

    def test_replaced_session_then_resume_fails_with_h(self):
        a = SmClient(self, "alice", resource="tab").login()
        previd = a.enabled.get("id")
        a.raw.ping()
        a.cut()
        time.sleep(0.3)
        fresh = self.raw()
        fresh.login("alice", USERS["alice"], resource="tab")
        c = SmClient(self, "alice")
        failed = c.resume(previd)
        self.assertEqual(failed.tag, sm("failed"))
        self.assertIsNotNone(failed.find(q("urn:ietf:params:xml:ns:xmpp-stanzas",
                                           "item-not-found")))
        self.assertEqual(failed.get("h"), "2")  # presence and the ping

    def test_clean_close_ends_the_session(self):
        a = SmClient(self, "alice", resource="clean").login()
        previd = a.enabled.get("id")
        a.raw.end()
        c = SmClient(self, "alice")
        self.assertEqual(c.resume(previd).tag, sm("failed"))


class SmSlixClient(SlixClient):
    """slixmpp with its own XEP-0198 plugin."""

    async def _a_create(self):
        await super()._a_create()
        self.xmpp.register_plugin("xep_0198")


class SmSlixTests(ServerTestCase):
    server_kwargs = dict(users=USERS, config={"modules": {"roster": {}, "smacks": {}}})

    def wait(self, pred, what, timeout=8.0):
        deadline = time.monotonic() + timeout
        while not pred():
            self.assertLess(time.monotonic(), deadline, what)
            time.sleep(0.05)

    def test_slixmpp_enables_and_both_sides_ack(self):
        a = SmSlixClient(self.server, "alice")
        self._clients.append(a)
        a.connect()
        sm_plugin = a.xmpp["xep_0198"]
        self.wait(lambda: sm_plugin.sm_id, "no <enabled/> with an id")
        b = self.raw()
        b.login("bob", USERS["bob"])
        # Server to client: 12 messages, <r/> every 5, slixmpp answers.
        send_burst(b, a.jid, 12, prefix="x")
        for i in range(12):
            a.wait_message(body="x%04d" % i)
        self.wait(lambda: sm_plugin.handled >= 12, "slixmpp counted %d" % sm_plugin.handled)
        # Client to server: the server acknowledges what slixmpp sent.
        for i in range(7):
            a.send_message("bob@" + DOMAIN, "y%d" % i)
        a.send_raw("<r xmlns='%s'/>" % NS_SM)
        self.wait(lambda: not sm_plugin.unacked_queue and sm_plugin.last_ack == sm_plugin.seq,
                  "unacked %d, last ack %d, sent %d" % (len(sm_plugin.unacked_queue),
                                                       sm_plugin.last_ack, sm_plugin.seq))
        b.wait_for(lambda e: e.tag == q(NS_CLIENT, "message") and
                   e.findtext(q(NS_CLIENT, "body")) == "y6")


class SmBoundTests(ServerTestCase):
    server_kwargs = dict(users=USERS, config={"modules": {
        "roster": {}, "offline": {}, "smacks": {"max_unacked": 10, "request_every": 100}}})

    def test_unacked_queue_bound_ends_stream_and_nothing_is_lost(self):
        a = SmClient(self, "alice", auto_ack=False).login()
        b = self.raw()
        b.login("bob", USERS["bob"])
        send_burst(b, "alice@" + DOMAIN, 30, prefix="q")
        sync(b)
        self.assertEqual(a.raw.stream_error(), "resource-constraint")
        a2 = SmClient(self, "alice").login(enable=False)
        a2.read_bodies(30)
        self.assertEqual(sorted(set(a2.bodies)), ["q%04d" % i for i in range(30)])


class SmCrashTests(ServerTestCase):
    """The rule for a crash (kill -9) while a session is detached: what the
    server acknowledged to a sender is in the archive (MAM) at once."""
    server_kwargs = dict(users=USERS, config={"modules": {
        "roster": {}, "offline": {}, "mam": {"default_policy": "always"},
        "smacks": {"resumption_timeout": "60s"}}})

    def test_kill_9_while_detached_keeps_acknowledged_messages(self):
        a = SmClient(self, "alice", auto_ack=False).login()
        b = SmClient(self, "bob").login()
        send_burst(b.raw, a.jid, 10, prefix="k")
        # The server acknowledged all ten to the sender.
        self.assertEqual(b.request_ack(), 11)  # presence + 10 messages
        a.cut()
        time.sleep(0.3)
        send_burst(b.raw, "alice@" + DOMAIN, 5, prefix="d")  # while detached
        self.assertEqual(b.request_ack(), 16)
        self.server.signal(signal.SIGKILL)
        self.server.wait_exit()
        self.server._launch()
        a2 = SmClient(self, "alice").login(enable=False)
        self.assertEqual(self._archived(a2.raw), ["k%04d" % i for i in range(10)] +
                         ["d%04d" % i for i in range(5)])

    def _archived(self, c):
        qid = "crash"
        c.send("<iq type='set' id='%s'><query xmlns='%s' queryid='%s'/></iq>" %
               (qid, NS_MAM, qid))
        bodies = []
        while True:
            el = c.read_element()
            if el.tag == q(NS_CLIENT, "iq") and el.get("id") == qid:
                return bodies
            for body in el.iter(q(NS_CLIENT, "body")):
                bodies.append(body.text)
