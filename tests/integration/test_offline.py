"""mod_offline: XEP-0160 offline messages with XEP-0203 delay stamps and
XEP-0334 hints.

A message to an account with no available resource of non-negative
priority is stored and handed, with <delay/>, to the first session that
becomes available with non-negative priority; then it is gone.  What is not
stored (no-store hint, full queue) bounces with service-unavailable; what is
worthless later (chat states alone) is dropped without an error; headlines
are never stored.  A stored message survives kill -9 of the server, and
so do its archive copies (mod_mam) on both sides."""
import datetime
import shutil
import time
import unittest

from harness import (DOMAIN, NS_CLIENT, NS_DISCO_INFO, T_REPLY, T_SHORT, Server,
                     ServerTestCase, SlixClient, q, stanza_error)

NS_DELAY = "urn:xmpp:delay"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_RECEIPTS = "urn:xmpp:receipts"
NS_MARKERS = "urn:xmpp:chat-markers:0"
NS_HINTS = "urn:xmpp:hints"
NS_OMEMO = "eu.siacs.conversations.axolotl"
NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_FORWARD = "urn:xmpp:forward:0"

MAX_MESSAGES = 3
USERS = {u: u + "-pw" for u in ("alice", "bob", "carol", "dave", "erin", "frank", "gina",
                                "hank", "ivy", "judy", "kim")}


def parse_stamp(stamp):
    """XEP-0082 UTC date-time with optional fraction -> aware datetime."""
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if "." in stamp else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.datetime.strptime(stamp, fmt).replace(tzinfo=datetime.timezone.utc)


def delay_of(msg):
    return msg.xml.find(q(NS_DELAY, "delay"))


def messages_since(client, mark):
    return client.received_since(mark, kinds=("message",))


def restart_after_kill(server):
    """Start ternd again on the same directory, configuration and ports after
    Server.kill() (Server.start() would recreate the accounts).  The killed
    run's log is kept as ternd.log.killed."""
    if server.log_file:
        server.log_file.close()
        server.log_file = None
    shutil.copy(server.log_path, server.log_path + ".killed")
    server._launch()
    return server


class OfflineTests(ServerTestCase):
    server_kwargs = dict(users=USERS, config={"modules": {"offline": {
        "max_messages": MAX_MESSAGES}}})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.alice = SlixClient(cls.server, "alice", resource="desk").connect()

    @classmethod
    def tearDownClass(cls):
        cls.alice.disconnect()
        super().tearDownClass()

    def tearDown(self):
        super().tearDown()
        self.assertFalse(self.alice.disconnected, "alice lost her connection")

    # ---- helpers ---------------------------------------------------------

    def login(self, user, resource=None, priority=None, presence=True):
        c = self.slix(user, connect=False, resource=resource)
        c.connect(presence=False)
        if presence:
            c.send_presence(priority=priority)
        return c

    def send_and_sync(self, raw):
        """alice sends raw XML, then a ping round trip: the server has handled it."""
        self.alice.send_raw(raw)
        self.alice.sync()

    def assert_no_errors(self, mark, within=T_SHORT):
        time.sleep(within)
        errors = [m for m in messages_since(self.alice, mark) if m["type"] == "error"]
        self.assertEqual(errors, [], "alice got errors: %s" % [str(e) for e in errors])

    def assert_no_messages(self, client, mark, within=T_SHORT):
        time.sleep(within)
        got = messages_since(client, mark)
        self.assertEqual(got, [], "unexpected messages for %s: %s" %
                         (client.jid, [str(m) for m in got]))

    def wait_bounce(self, mark, msg_id):
        return self.alice.wait_stanza(
            lambda s: s.name == "message" and s["type"] == "error" and s["id"] == msg_id,
            since=mark)

    # ---- tests -------------------------------------------------------------

    def test_disco_advertises_msgoffline(self):
        """XEP-0160 §4."""
        info = self.alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN)
        features = [f.get("var") for f in info.iter(q(NS_DISCO_INFO, "feature"))]
        self.assertIn("msgoffline", features)

    def test_stored_and_delivered_with_delay(self):
        """XEP-0160 §2: stored while bob is away, delivered in order with a
        XEP-0203 delay from the server; original from, to, type, id, body."""
        a = self.alice.mark()
        before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
        self.alice.send_raw("<message to='bob@localhost' type='chat' id='m1'>"
                            "<body>first while away</body></message>")
        self.alice.send_raw("<message to='bob@localhost/gone' id='m2'>"
                            "<body>second, to a resource that is not there</body></message>")
        self.alice.sync()
        after = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
        self.assert_no_errors(a)

        bob = self.login("bob", resource="phone")
        second = bob.wait_message("second, to a resource that is not there")
        got = messages_since(bob, 0)
        self.assertEqual([m["body"] for m in got],
                         ["first while away", "second, to a resource that is not there"])
        first = got[0]
        self.assertEqual(str(first["from"]), "alice@localhost/desk")
        self.assertEqual(str(first["to"]), "bob@localhost")
        self.assertEqual(first["type"], "chat")
        self.assertEqual(first["id"], "m1")
        self.assertEqual(str(second["to"]), "bob@localhost/gone")
        self.assertEqual(second["id"], "m2")
        self.assertEqual(second["type"], "normal")
        for m in got:
            delay = delay_of(m)
            self.assertIsNotNone(delay, "no <delay/> on %s" % m)
            self.assertEqual(delay.get("from"), DOMAIN)
            stamp = parse_stamp(delay.get("stamp"))
            self.assertTrue(before <= stamp <= after, "stamp %s not in [%s, %s]" %
                            (stamp, before, after))

        # Now that bob is online, messages go straight to him, without delay.
        b = bob.mark()
        self.alice.send_message("bob@localhost", "live")
        live = bob.wait_message("live", since=b)
        self.assertIsNone(delay_of(live))

    def test_delivered_only_once(self):
        self.alice.send_message("carol@localhost", "just once")
        self.alice.sync()
        one = self.login("carol", resource="one")
        one.wait_message("just once")
        # The same session saying available again, with another priority: nothing again.
        m1 = one.mark()
        one.send_presence(priority=5)
        # A second session, and a later one after everything closed: nothing.
        two = self.login("carol", resource="two")
        self.assert_no_messages(two, 0)
        self.assert_no_messages(one, m1, within=0)
        one.disconnect()
        two.disconnect()
        three = self.login("carol", resource="three")
        self.assert_no_messages(three, 0)

    def test_negative_priority_does_not_trigger_delivery(self):
        """RFC 6121 §8.5.2.2, XEP-0160 §2: a negative priority gets nothing;
        when the same session turns non-negative it gets everything."""
        self.alice.send_message("dave@localhost", "before login")
        self.alice.sync()
        dave = self.login("dave", resource="shy", priority=-1)
        self.alice.send_message("dave@localhost", "while negative")
        self.alice.sync()
        self.assert_no_messages(dave, 0)
        dave.send_presence(priority=0)
        dave.wait_message("while negative")
        self.assertEqual([m["body"] for m in messages_since(dave, 0)],
                         ["before login", "while negative"])

    def test_unavailable_session_gets_nothing_until_available(self):
        """A bound session without presence is not available (RFC 6121 §4.2)."""
        judy = self.login("judy", resource="quiet", presence=False)
        self.alice.send_message("judy@localhost", "for later")
        self.alice.sync()
        self.assert_no_messages(judy, 0)
        judy.send_presence()
        judy.wait_message("for later")

    def test_full_queue_bounces_service_unavailable(self):
        """XEP-0160 §2 step 3: beyond max_messages the sender gets an error."""
        a = self.alice.mark()
        for i in range(MAX_MESSAGES + 1):
            self.alice.send_raw("<message to='erin@localhost' type='chat' id='q%d'>"
                                "<body>queued %d</body></message>" % (i, i))
        self.alice.sync()
        err = self.wait_bounce(a, "q%d" % MAX_MESSAGES)
        self.assertEqual(str(err["from"]), "erin@localhost")
        self.assertEqual(stanza_error(err.xml), ("cancel", "service-unavailable"))
        time.sleep(T_SHORT)
        errors = [m["id"] for m in messages_since(self.alice, a) if m["type"] == "error"]
        self.assertEqual(errors, ["q%d" % MAX_MESSAGES])

        erin = self.login("erin")
        erin.wait_message("queued %d" % (MAX_MESSAGES - 1))
        time.sleep(T_SHORT)
        self.assertEqual([m["body"] for m in messages_since(erin, 0)],
                         ["queued %d" % i for i in range(MAX_MESSAGES)])

    def test_chat_states_alone_are_dropped_silently(self):
        """XEP-0085 §5.8, XEP-0160 §3: standalone chat states are not stored,
        and the sender gets no error for them."""
        a = self.alice.mark()
        self.send_and_sync("<message to='frank@localhost' type='chat'>"
                           "<composing xmlns='%s'/></message>" % NS_CHATSTATES)
        self.send_and_sync("<message to='frank@localhost' type='chat'><thread>t1</thread>"
                           "<paused xmlns='%s'/></message>" % NS_CHATSTATES)
        self.send_and_sync("<message to='frank@localhost' type='chat'>"
                           "<body>with a state</body><active xmlns='%s'/></message>"
                           % NS_CHATSTATES)
        self.assert_no_errors(a)
        frank = self.login("frank")
        msg = frank.wait_message("with a state")
        self.assertIsNotNone(msg.xml.find(q(NS_CHATSTATES, "active")))
        time.sleep(T_SHORT)
        self.assertEqual(len(messages_since(frank, 0)), 1,
                         [str(m) for m in messages_since(frank, 0)])

    def test_receipts_markers_and_encrypted_payloads_are_stored(self):
        """Messages without a body that still matter are kept: a XEP-0184
        receipt, a XEP-0333 marker, a bodiless encrypted payload, and chat
        states forced with the XEP-0334 <store/> hint."""
        a = self.alice.mark()
        self.alice.send_raw("<message to='gina@localhost' type='chat' id='r1'>"
                            "<received xmlns='%s' id='orig1'/></message>" % NS_RECEIPTS)
        self.alice.send_raw("<message to='hank@localhost' type='chat' id='r2'>"
                            "<displayed xmlns='%s' id='orig2'/></message>" % NS_MARKERS)
        self.alice.send_raw("<message to='hank@localhost' type='chat' id='r3'>"
                            "<encrypted xmlns='%s'><header sid='1'/></encrypted>"
                            "<store xmlns='%s'/></message>" % (NS_OMEMO, NS_HINTS))
        self.alice.send_raw("<message to='hank@localhost' type='chat' id='r4'>"
                            "<gone xmlns='%s'/><store xmlns='%s'/></message>"
                            % (NS_CHATSTATES, NS_HINTS))
        self.alice.sync()
        self.assert_no_errors(a)

        gina = self.login("gina")
        r1 = gina.wait_stanza(lambda s: s.name == "message" and s["id"] == "r1")
        self.assertEqual(r1.xml.find(q(NS_RECEIPTS, "received")).get("id"), "orig1")
        self.assertIsNotNone(delay_of(r1))

        hank = self.login("hank")
        hank.wait_stanza(lambda s: s.name == "message" and s["id"] == "r4")
        got = messages_since(hank, 0)
        self.assertEqual([m["id"] for m in got], ["r2", "r3", "r4"])
        self.assertIsNotNone(got[0].xml.find(q(NS_MARKERS, "displayed")))
        self.assertIsNotNone(got[1].xml.find(q(NS_OMEMO, "encrypted") + "/" +
                                             q(NS_OMEMO, "header")))
        self.assertIsNotNone(got[2].xml.find(q(NS_CHATSTATES, "gone")))

    def test_no_store_hint_bounces_and_is_not_stored(self):
        """XEP-0334 §4.2: not stored, and the sender learns it."""
        a = self.alice.mark()
        self.alice.send_raw("<message to='ivy@localhost' type='chat' id='ns1'>"
                            "<body>do not keep</body><no-store xmlns='%s'/></message>" % NS_HINTS)
        err = self.wait_bounce(a, "ns1")
        self.assertEqual(stanza_error(err.xml), ("cancel", "service-unavailable"))
        self.assertEqual(str(err["from"]), "ivy@localhost")
        self.assertIsNone(err.xml.find(q(NS_DELAY, "delay")), "the bounce carries our delay")
        ivy = self.login("ivy")
        self.assert_no_messages(ivy, 0)

    def test_headline_and_groupchat_are_not_stored(self):
        """XEP-0160 §3: a headline to an offline user is dropped (RFC 6121
        §8.5.2.1.2); a groupchat bounces; neither is stored."""
        a = self.alice.mark()
        self.send_and_sync("<message to='kim@localhost' type='headline'>"
                           "<body>news flash</body></message>")
        self.alice.send_raw("<message to='kim@localhost' type='groupchat' id='gc1'>"
                            "<body>room talk</body></message>")
        err = self.wait_bounce(a, "gc1")
        self.assertEqual(stanza_error(err.xml), ("cancel", "service-unavailable"))
        time.sleep(T_SHORT)
        errors = [m["id"] for m in messages_since(self.alice, a) if m["type"] == "error"]
        self.assertEqual(errors, ["gc1"])
        kim = self.login("kim")
        self.assert_no_messages(kim, 0)


class OfflineDurabilityTests(unittest.TestCase):
    """A message the server has taken survives kill -9 of the server: once
    the sender's next iq is answered, the offline copy and both archive
    copies (XEP-0313) are on disk."""

    def mam_items(self, client, with_jid):
        """(archive id, forwarded message) of client's archive with with_jid."""
        queryid = "k" + str(time.monotonic_ns())
        mark = client.mark()
        iq = client.iq("<query xmlns='%s' queryid='%s'><x xmlns='jabber:x:data' type='submit'>"
                       "<field var='FORM_TYPE' type='hidden'><value>%s</value></field>"
                       "<field var='with'><value>%s</value></field></x></query>"
                       % (NS_MAM, queryid, NS_MAM, with_jid), to=None, itype="set")
        self.assertEqual(iq.get("type"), "result")
        items = []
        for m in client.received_since(mark, kinds=("message",)):
            res = m.xml.find(q(NS_MAM, "result"))
            if res is not None and res.get("queryid") == queryid:
                items.append((res.get("id"), res.find("%s/%s" % (q(NS_FORWARD, "forwarded"),
                                                                  q(NS_CLIENT, "message")))))
        return items

    def test_stored_message_survives_kill_9(self):
        server = Server(name="OfflineKill", users={"alice": "alice-pw", "bob": "bob-pw"},
                        config={"modules": {"offline": {}, "mam": {}}})
        server.start()
        clients = []
        ids = ["k1", "k2", "k3"]
        try:
            alice = SlixClient(server, "alice", resource="desk").connect()
            clients.append(alice)
            a = alice.mark()
            for i in ids:
                alice.send_raw("<message to='bob@localhost' type='chat' id='%s'>"
                               "<body>survive this %s</body></message>" % (i, i))
            alice.sync()  # the server answered an iq sent after the messages
            # A bounce would have come before the ping's answer.
            self.assertEqual([m for m in messages_since(alice, a) if m["type"] == "error"], [])
            server.kill()  # at once: nothing more happens between the answer and the kill
            alice.wait_disconnected()

            restart_after_kill(server)
            bob = SlixClient(server, "bob", resource="phone")
            clients.append(bob)
            bob.connect()
            bob.wait_message("survive this k3", timeout=T_REPLY)
            got = messages_since(bob, 0)
            self.assertEqual([m["id"] for m in got], ids)
            delivered_sids = []
            for m in got:
                self.assertEqual(str(m["from"]), "alice@localhost/desk")
                self.assertEqual(m["body"], "survive this " + m["id"])
                self.assertEqual(delay_of(m).get("from"), DOMAIN)
                sids = m.xml.findall(q(NS_SID, "stanza-id"))
                self.assertEqual([s.get("by") for s in sids], ["bob@localhost"])
                delivered_sids.append(sids[0].get("id"))

            # The recipient's archive has them, under the stanza-ids he got.
            items = self.mam_items(bob, "alice@localhost")
            self.assertEqual([fwd.get("id") for _, fwd in items], ids)
            self.assertEqual([aid for aid, _ in items], delivered_sids)
            # The sender's archive has her outgoing copies.
            alice = SlixClient(server, "alice", resource="desk2")
            clients.append(alice)
            alice.connect()
            items = self.mam_items(alice, "bob@localhost")
            self.assertEqual([fwd.get("id") for _, fwd in items], ids)
            self.assertEqual([fwd.get("to") for _, fwd in items], ["bob@localhost"] * 3)
            self.assertEqual([fwd.find(q(NS_CLIENT, "body")).text for _, fwd in items],
                             ["survive this " + i for i in ids])

            # Delivered means deleted: another session gets nothing.
            bob2 = SlixClient(server, "bob", resource="tablet")
            clients.append(bob2)
            bob2.connect()
            time.sleep(T_SHORT)
            self.assertEqual(messages_since(bob2, 0), [])
        finally:
            for c in clients:
                c.disconnect()
            server.stop()
        server.remove()
