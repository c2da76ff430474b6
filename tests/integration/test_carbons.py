"""mod_carbons: XEP-0280 Message Carbons.

alice is online three times: laptop (priority 5) and phone (priority 1) with
carbons enabled, tablet (priority 1) without; bob once.  Every test checks
what each of them receives, and that nothing else arrives: the session that
gets the original never gets a copy, a session without carbons gets none,
and <private/>, <no-copy/> and ineligible messages are never copied."""
import time

from harness import DOMAIN, NS_CLIENT, NS_DISCO_INFO, T_SHORT, ServerTestCase, SlixClient, q

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_HINTS = "urn:xmpp:hints"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"

USERS = {u: u + "-pw" for u in ("alice", "bob", "carol", "dave")}


def set_carbons(client, on):
    """XEP-0280 §4/§5; returns the answer's type."""
    el = "enable" if on else "disable"
    return client.iq("<%s xmlns='%s'/>" % (el, NS_CARBONS), to=None, itype="set").get("type")


def carbon(msg, direction):
    """The forwarded original inside a <received/> or <sent/> carbon, or None."""
    return msg.xml.find("%s/%s/%s" % (q(NS_CARBONS, direction), q(NS_FORWARD, "forwarded"),
                                      q(NS_CLIENT, "message")))


def body_of(el):
    b = el.find(q(NS_CLIENT, "body"))
    return b.text if b is not None else None


class CarbonsTests(ServerTestCase):
    server_kwargs = dict(users=USERS, config={"modules": {"carbons": {}}})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.laptop = SlixClient(cls.server, "alice", resource="laptop").connect(presence=False)
        cls.phone = SlixClient(cls.server, "alice", resource="phone").connect(presence=False)
        cls.tablet = SlixClient(cls.server, "alice", resource="tablet").connect(presence=False)
        cls.bob = SlixClient(cls.server, "bob", resource="desk").connect()
        cls.laptop.send_presence(priority=5)
        cls.phone.send_presence(priority=1)
        cls.tablet.send_presence(priority=1)
        for c in (cls.laptop, cls.phone):
            assert set_carbons(c, True) == "result"

    @classmethod
    def tearDownClass(cls):
        for c in (cls.laptop, cls.phone, cls.tablet, cls.bob):
            c.disconnect()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.all = {"laptop": self.laptop, "phone": self.phone, "tablet": self.tablet,
                    "bob": self.bob}
        self.marks = {k: c.mark() for k, c in self.all.items()}

    def tearDown(self):
        super().tearDown()
        for c in self.all.values():
            self.assertFalse(c.disconnected, "%s lost its connection" % c.jid)

    # ---- helpers ---------------------------------------------------------

    def got(self, name):
        return self.all[name].received_since(self.marks[name], kinds=("message",))

    def assert_received(self, expected, wait_for=None):
        """After `wait_for` (name -> predicate) arrived and a quiet spell,
        every client got exactly expected[name] (a list of checks, one per
        message, in order; missing names: nothing)."""
        for name, pred in (wait_for or {}).items():
            self.all[name].wait_stanza(lambda s: s.name == "message" and pred(s),
                                       since=self.marks[name])
        time.sleep(T_SHORT)
        for name in self.all:
            msgs = self.got(name)
            checks = expected.get(name, [])
            self.assertEqual(len(msgs), len(checks), "%s got %s" % (name,
                                                                   [str(m) for m in msgs]))
            for m, check in zip(msgs, checks):
                check(m)

    def original(self, body, frm, to):
        def check(m):
            self.assertEqual(m["body"], body)
            self.assertEqual(str(m["from"]), frm)
            self.assertEqual(str(m["to"]), to)
            self.assertIsNone(carbon(m, "received"))
            self.assertIsNone(carbon(m, "sent"))
            self.assertIsNone(m.xml.find(q(NS_CARBONS, "private")), "<private/> not removed")
        return check

    def copy(self, direction, body, frm, to, copy_to, mtype="chat"):
        def check(m):
            self.assertEqual(str(m["from"]), "alice@localhost", "a carbon must come from "
                             "the bare JID (XEP-0280 §7, §8)")
            self.assertEqual(str(m["to"]), copy_to)
            self.assertEqual(m["type"], mtype)
            inner = carbon(m, direction)
            self.assertIsNotNone(inner, "not a <%s/> carbon: %s" % (direction, m))
            self.assertEqual(body_of(inner), body)
            self.assertEqual(inner.get("from"), frm)
            self.assertEqual(inner.get("to"), to)
        return check

    @staticmethod
    def has_body(body):
        return lambda s: s["body"] == body

    @staticmethod
    def carbon_of(direction, body):
        return lambda s: (carbon(s, direction) is not None and
                          body_of(carbon(s, direction)) == body)

    # ---- tests -------------------------------------------------------------

    def test_feature_advertised(self):
        info = self.laptop.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN)
        self.assertIn(NS_CARBONS, [f.get("var") for f in info.iter(q(NS_DISCO_INFO, "feature"))])

    def test_enable_and_disable_are_idempotent(self):
        """XEP-0280 §10.1: repeated requests are answered with a result."""
        for on in (True, True, False, False):
            self.assertEqual(set_carbons(self.tablet, on), "result")
        self.assertEqual(set_carbons(self.laptop, True), "result")

    def test_to_bare_jid_highest_priority_gets_original_other_a_received_copy(self):
        self.bob.send_message("alice@localhost", "to the bare jid")
        self.assert_received(
            {"laptop": [self.original("to the bare jid", "bob@localhost/desk",
                                      "alice@localhost")],
             "phone": [self.copy("received", "to the bare jid", "bob@localhost/desk",
                                 "alice@localhost", "alice@localhost/phone")]},
            wait_for={"laptop": self.has_body("to the bare jid"),
                      "phone": self.carbon_of("received", "to the bare jid")})

    def test_to_full_jid_other_enabled_resource_gets_a_received_copy(self):
        self.bob.send_message("alice@localhost/phone", "to the phone")
        self.assert_received(
            {"phone": [self.original("to the phone", "bob@localhost/desk",
                                     "alice@localhost/phone")],
             "laptop": [self.copy("received", "to the phone", "bob@localhost/desk",
                                  "alice@localhost/phone", "alice@localhost/laptop")]},
            wait_for={"phone": self.has_body("to the phone"),
                      "laptop": self.carbon_of("received", "to the phone")})

    def test_to_missing_resource_follows_bare_jid_rules(self):
        """RFC 6121 §8.5.3.2.1: treated as to the bare JID; copies likewise."""
        self.bob.send_message("alice@localhost/gone", "to nobody there")
        self.assert_received(
            {"laptop": [self.original("to nobody there", "bob@localhost/desk",
                                      "alice@localhost/gone")],
             "phone": [self.copy("received", "to nobody there", "bob@localhost/desk",
                                 "alice@localhost/gone", "alice@localhost/phone")]},
            wait_for={"phone": self.carbon_of("received", "to nobody there")})

    def test_sent_message_is_copied_to_other_enabled_resources(self):
        self.laptop.send_message("bob@localhost", "from the laptop")
        self.assert_received(
            {"bob": [self.original("from the laptop", "alice@localhost/laptop",
                                   "bob@localhost")],
             "phone": [self.copy("sent", "from the laptop", "alice@localhost/laptop",
                                 "bob@localhost", "alice@localhost/phone")]},
            wait_for={"bob": self.has_body("from the laptop"),
                      "phone": self.carbon_of("sent", "from the laptop")})

    def test_sent_by_a_resource_without_carbons_is_copied_too(self):
        """XEP-0280 §8: irrespective of whether the sending client enabled."""
        self.tablet.send_message("bob@localhost/desk", "from the tablet")
        copy_laptop = self.copy("sent", "from the tablet", "alice@localhost/tablet",
                                "bob@localhost/desk", "alice@localhost/laptop")
        copy_phone = self.copy("sent", "from the tablet", "alice@localhost/tablet",
                               "bob@localhost/desk", "alice@localhost/phone")
        self.assert_received(
            {"bob": [self.original("from the tablet", "alice@localhost/tablet",
                                   "bob@localhost/desk")],
             "laptop": [copy_laptop], "phone": [copy_phone]},
            wait_for={"bob": self.has_body("from the tablet"),
                      "laptop": self.carbon_of("sent", "from the tablet"),
                      "phone": self.carbon_of("sent", "from the tablet")})

    def test_normal_with_body_is_copied_and_keeps_its_type(self):
        """XEP-0280 §6: type normal with a body is eligible."""
        self.bob.send_message("alice@localhost", "a normal one", mtype="normal")
        self.assert_received(
            {"laptop": [self.original("a normal one", "bob@localhost/desk", "alice@localhost")],
             "phone": [self.copy("received", "a normal one", "bob@localhost/desk",
                                 "alice@localhost", "alice@localhost/phone", mtype="normal")]},
            wait_for={"phone": self.carbon_of("received", "a normal one")})

    def test_disabled_resource_gets_nothing(self):
        self.assertEqual(set_carbons(self.phone, False), "result")
        try:
            self.marks = {k: c.mark() for k, c in self.all.items()}
            self.bob.send_message("alice@localhost", "phone opted out")
            self.laptop.send_message("bob@localhost", "laptop speaks")
            self.assert_received(
                {"laptop": [self.original("phone opted out", "bob@localhost/desk",
                                          "alice@localhost")],
                 "bob": [self.original("laptop speaks", "alice@localhost/laptop",
                                       "bob@localhost")]},
                wait_for={"laptop": self.has_body("phone opted out"),
                          "bob": self.has_body("laptop speaks")})
        finally:
            self.assertEqual(set_carbons(self.phone, True), "result")

    def test_private_is_not_copied_and_is_removed(self):
        """XEP-0280 §9: no copies either way; the receiving server removes
        <private/> before delivery."""
        self.bob.send_raw("<message to='alice@localhost/laptop' type='chat'>"
                          "<body>private in</body><private xmlns='%s'/></message>" % NS_CARBONS)
        self.laptop.send_raw("<message to='bob@localhost' type='chat'>"
                             "<body>private out</body><private xmlns='%s'/>"
                             "<no-copy xmlns='%s'/></message>" % (NS_CARBONS, NS_HINTS))
        self.assert_received(
            {"laptop": [self.original("private in", "bob@localhost/desk",
                                      "alice@localhost/laptop")],
             "bob": [self.original("private out", "alice@localhost/laptop", "bob@localhost")]},
            wait_for={"laptop": self.has_body("private in"), "bob": self.has_body("private out")})

    def test_no_copy_hint_is_not_copied(self):
        """XEP-0334 §4.3."""
        self.bob.send_raw("<message to='alice@localhost/laptop' type='chat'>"
                          "<body>no-copy in</body><no-copy xmlns='%s'/></message>" % NS_HINTS)
        self.phone.send_raw("<message to='bob@localhost/desk' type='chat'>"
                            "<body>no-copy out</body><no-copy xmlns='%s'/></message>" % NS_HINTS)
        self.assert_received(
            {"laptop": [self.original("no-copy in", "bob@localhost/desk",
                                      "alice@localhost/laptop")],
             "bob": [self.original("no-copy out", "alice@localhost/phone",
                                   "bob@localhost/desk")]},
            wait_for={"laptop": self.has_body("no-copy in"), "bob": self.has_body("no-copy out")})

    def test_ineligible_messages_are_not_copied(self):
        """XEP-0280 §6: headline, groupchat, error, normal without a body,
        MUC private messages and carbons themselves are not copied."""
        self.bob.send_raw("<message to='alice@localhost/laptop' type='headline'>"
                          "<body>headline</body></message>")
        self.bob.send_raw("<message to='alice@localhost/laptop' type='groupchat'>"
                          "<body>groupchat</body></message>")
        self.bob.send_raw("<message to='alice@localhost/laptop' type='error'>"
                          "<body>error</body><error type='cancel'><item-not-found "
                          "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
        self.bob.send_raw("<message to='alice@localhost/laptop'><subject>no body</subject>"
                          "</message>")
        self.bob.send_raw("<message to='alice@localhost/laptop' type='chat'><body>via a room"
                          "</body><x xmlns='%s'/></message>" % NS_MUC_USER)
        self.bob.send_raw("<message to='alice@localhost/laptop' type='chat'><received "
                          "xmlns='%s'><forwarded xmlns='%s'><message xmlns='jabber:client' "
                          "type='chat'><body>fake carbon</body></message></forwarded>"
                          "</received></message>" % (NS_CARBONS, NS_FORWARD))
        self.bob.send_message("alice@localhost/laptop", "the end")

        def kind(mtype):
            return lambda m: self.assertEqual(m["type"], mtype)
        self.assert_received(
            {"laptop": [kind("headline"), kind("groupchat"), kind("error"), kind("normal"),
                        kind("chat"), kind("chat"), kind("chat")],
             "phone": [self.copy("received", "the end", "bob@localhost/desk",
                                 "alice@localhost/laptop", "alice@localhost/phone")]},
            wait_for={"laptop": self.has_body("the end"),
                      "phone": self.carbon_of("received", "the end")})

    def test_message_to_own_other_resource(self):
        """Sent to oneself: the target gets the original, other enabled
        resources a received copy, the sender nothing."""
        self.laptop.send_message("alice@localhost/tablet", "note to self")
        self.assert_received(
            {"tablet": [self.original("note to self", "alice@localhost/laptop",
                                      "alice@localhost/tablet")],
             "phone": [self.copy("received", "note to self", "alice@localhost/laptop",
                                 "alice@localhost/tablet", "alice@localhost/phone")]},
            wait_for={"tablet": self.has_body("note to self"),
                      "phone": self.carbon_of("received", "note to self")})


class CarbonsPriorityTests(ServerTestCase):
    """Copies follow the RFC 6121 delivery of the original exactly."""
    server_kwargs = dict(users=USERS, config={"modules": {"carbons": {}}})

    def login(self, user, resource, priority, carbons=True):
        c = self.slix(user, connect=False, resource=resource)
        c.connect(presence=False)
        c.send_presence(priority=priority)
        if carbons:
            self.assertEqual(set_carbons(c, True), "result")
        return c

    def quiet(self, *clients, marks):
        time.sleep(T_SHORT)
        for c, m in zip(clients, marks):
            got = c.received_since(m, kinds=("message",))
            self.assertEqual(got, [], "%s got %s" % (c.jid, [str(s) for s in got]))

    def test_equal_priorities_all_get_the_original_and_no_copy(self):
        a = self.login("dave", "a", 2)
        b = self.login("dave", "b", 2)
        carol = self.login("carol", "x", 0, carbons=False)
        ma, mb = a.mark(), b.mark()
        carol.send_message("dave@localhost", "to both")
        for c, m in ((a, ma), (b, mb)):
            msg = c.wait_message("to both", since=m)
            self.assertIsNone(carbon(msg, "received"))
        time.sleep(T_SHORT)
        self.assertEqual(len(a.received_since(ma, kinds=("message",))), 1)
        self.assertEqual(len(b.received_since(mb, kinds=("message",))), 1)

    def test_negative_priority_and_unavailable_sessions(self):
        """A negative-priority session never gets a bare-JID message
        (RFC 6121 §8.5.2.1.1), so it gets a copy; a session that sent no
        presence is not available and gets nothing."""
        top = self.login("carol", "top", 0)
        low = self.login("carol", "low", -1)
        silent = self.slix("carol", connect=False, resource="silent")
        silent.connect(presence=False)
        self.assertEqual(set_carbons(silent, True), "result")
        dave = self.login("dave", "d", 0, carbons=False)
        mt, ml, ms = top.mark(), low.mark(), silent.mark()
        dave.send_message("carol@localhost", "hello carol")
        top.wait_message("hello carol", since=mt)
        copy = low.wait_stanza(lambda s: s.name == "message" and carbon(s, "received")
                               is not None, since=ml)
        self.assertEqual(str(copy["to"]), "carol@localhost/low")
        self.assertEqual(body_of(carbon(copy, "received")), "hello carol")
        time.sleep(T_SHORT)
        self.assertEqual(len(top.received_since(mt, kinds=("message",))), 1)
        self.assertEqual(len(low.received_since(ml, kinds=("message",))), 1)
        self.quiet(silent, marks=[ms])

    def test_enable_is_per_session_and_ends_with_it(self):
        """A new session starts with carbons off, even on a resource that
        had them."""
        one = self.login("carol", "re", 1)
        one.disconnect()
        again = self.login("carol", "re", 1, carbons=False)
        top = self.login("carol", "main", 5, carbons=False)
        dave = self.login("dave", "d2", 0, carbons=False)
        m_again, m_top = again.mark(), top.mark()
        dave.send_message("carol@localhost", "who gets it")
        top.wait_message("who gets it", since=m_top)
        self.quiet(again, marks=[m_again])
