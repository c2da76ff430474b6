"""Client State Indication (XEP-0352, mod_csi).

- <csi/> is offered after login, not before; <inactive/> and <active/>
  get no answer;
- a client with 200 contacts goes inactive, the contacts change presence
  several times each: it receives nothing (0 bytes) until a message with a
  body arrives, which arrives at once, after one presence per contact (the
  latest); <active/> then writes nothing more; a second resource of the
  same user gets every change as it happens; `ternctl status` counts what
  was held, coalesced and flushed;
- chat states are held, the latest per sender; an iq goes through at once,
  after what was held.

The 200 contacts log in over plain TCP with SCRAM pipelined (test_fanout's
cheap sessions)."""
import re
import time
import xml.etree.ElementTree as ET

from harness import DOMAIN, NS_CLIENT, T_REPLY, ServerTestCase, q
from test_fanout import Conn, login_all, pump_until

NS_CSI = "urn:xmpp:csi:0"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
PW = "pw-fanout"  # test_fanout's logins use it
CONTACTS = 200
ROUNDS = 3


def counters(server):
    out = server.ternctl_ok("status").stdout
    get = lambda name: int((re.search(r"^%s: (\d+)$" % name, out, re.M) or [0, 0])[1])
    return {k: get("csi stanzas " + k) for k in ("held", "coalesced", "flushed")}


def sync(conn, tag):
    """Send a ping with id `tag` and read until its answer."""
    conn.send(("<iq type='get' id='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % tag).encode())
    return pump_until([conn], lambda c: ("id='%s'" % tag).encode() in c.data, T_REPLY * 2) == []


def top_level(data, tag):
    pat = re.compile(rb"<%s[ />](?:[^>]*/>|.*?</%s>)" % (tag, tag), re.S)
    return pat.findall(bytes(data))


class CsiStormTests(ServerTestCase):
    server_kwargs = dict(
        users=dict({"alice": PW}, **{"c%d" % i: PW for i in range(CONTACTS)}),
        config={"modules": {"roster": {}, "csi": {}},
                "c2s": {"require_encryption": False, "allow_plain": True}})

    def tearDown(self):
        for c in getattr(self, "conns", []):
            c.sock.close()
        super().tearDown()

    def test_inactive_client_gets_nothing_during_a_presence_storm(self):
        contacts = [Conn(self.server.c2s_port, "c%d" % i, "r") for i in range(CONTACTS)]
        phone = Conn(self.server.c2s_port, "alice", "phone")
        laptop = Conn(self.server.c2s_port, "alice", "laptop")
        self.conns = contacts + [phone, laptop]
        self.assertEqual(login_all(self.conns, lambda c: False, T_REPLY * 6), [])
        # alice subscribes to every contact, pre-approved (RFC 6121 §3.4).
        for c in contacts:
            c.send(("<presence type='subscribed' to='alice@%s'/>" % DOMAIN).encode())
        for i, c in enumerate(contacts):
            self.assertTrue(sync(c, "pre%d" % i))
        phone.send("".join("<presence type='subscribe' to='c%d@%s'/>" % (i, DOMAIN)
                           for i in range(CONTACTS)).encode())
        self.assertTrue(sync(phone, "subs"))
        for c in (phone, laptop):
            c.send(b"<presence/>")
        for c in contacts:
            c.send(b"<presence/>")
        want = lambda c: len(top_level(c.data, b"presence")) >= CONTACTS
        self.assertEqual(pump_until([phone, laptop], want, T_REPLY * 3), [])
        time.sleep(0.5)
        # The phone goes inactive; the ping's answer says it was handled.
        phone.send(("<inactive xmlns='%s'/>" % NS_CSI).encode())
        self.assertTrue(sync(phone, "inactive"))
        time.sleep(0.3)
        for c in (phone, laptop):
            c.pump()
        mark_phone, mark_laptop = len(phone.data), len(laptop.data)
        before = counters(self.server)

        # The storm: every contact changes its status ROUNDS times.
        for k in range(ROUNDS):
            for i, c in enumerate(contacts):
                c.send(("<presence><show>away</show><status>c%d round %d</status></presence>"
                        % (i, k)).encode())
        last = ("round %d</status>" % (ROUNDS - 1)).encode()
        done = lambda c: bytes(c.data[mark_laptop:]).count(last) >= CONTACTS
        self.assertEqual(pump_until([laptop], done, T_REPLY * 3), [], "laptop missed changes")
        time.sleep(0.5)
        phone.pump()
        storm_laptop = len(laptop.data) - mark_laptop
        self.assertEqual(len(phone.data) - mark_phone, 0,
                         "inactive client got %r" % bytes(phone.data[mark_phone:])[:300])
        print("\n  presence storm (%d contacts x %d): active %d bytes, inactive 0 bytes"
              % (CONTACTS, ROUNDS, storm_laptop))

        # A message with a body arrives at once, after the latest presence
        # of every contact.
        contacts[7].send(("<message type='chat' to='alice@%s/phone' id='wake'><body>wake up"
                          "</body></message>" % DOMAIN).encode())
        self.assertEqual(pump_until([phone], lambda c: b"wake up" in c.data, T_REPLY), [])
        got = bytes(phone.data[mark_phone:])
        self.assertTrue(got.rstrip().endswith(b"</message>"), got[-300:])
        pres = top_level(got, b"presence")
        print("  at the message: %d bytes (%d presence stanzas, then the message)"
              % (len(got), len(pres)))
        self.assertEqual(len(pres), CONTACTS, "one presence per contact")
        self.assertLess(got.rfind(b"</presence>"), got.find(b"<message"))
        senders = set()
        for p in pres:
            self.assertIn(last, p)
            senders.add(re.search(rb"from='(c\d+)@", p).group(1))
        self.assertEqual(len(senders), CONTACTS)
        after = counters(self.server)
        self.assertEqual(after["held"] - before["held"], CONTACTS * ROUNDS)
        self.assertEqual(after["coalesced"] - before["coalesced"], CONTACTS * (ROUNDS - 1))
        self.assertEqual(after["flushed"] - before["flushed"], CONTACTS)

        # <active/>: all was flushed, nothing more comes but the ping's answer.
        mark_phone = len(phone.data)
        phone.send(("<active xmlns='%s'/>" % NS_CSI).encode())
        self.assertTrue(sync(phone, "active"))
        self.assertEqual(top_level(phone.data[mark_phone:], b"presence"), [])
        self.assertEqual(top_level(phone.data[mark_phone:], b"message"), [])


class CsiTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"},
                         config={"modules": {"roster": {}, "csi": {}}})

    def test_offered_after_login_not_before(self):
        c = self.raw()
        features = c.open_stream()
        self.assertIsNone(features.find(q(NS_CSI, "csi")))
        c.starttls()
        self.assertIsNone(c.features.find(q(NS_CSI, "csi")))
        status, cond = c.auth_scram("alice", "alice-pw")
        self.assertEqual(status, "success", cond)
        self.assertIsNotNone(c.restart().find(q(NS_CSI, "csi")))
        c.bind("phone")
        c.send("<inactive xmlns='%s'/>" % NS_CSI)
        c.send("<active xmlns='%s'/>" % NS_CSI)
        self.assertEqual(c.ping(), "result")  # no answer to either, stream goes on
        self.assertEqual(c.nothing_more(0.3), [])

    def test_chat_states_held_and_coalesced_iq_goes_at_once(self):
        a = self.raw_login("alice", "phone")
        a2 = self.raw_login("alice", "laptop")
        b = self.raw_login("bob", "pc")
        a.send("<inactive xmlns='%s'/>" % NS_CSI)
        self.assertEqual(a.ping(), "result")
        a.nothing_more(0.3)
        for state in ("composing", "paused", "active"):
            b.send("<message type='chat' to='alice@%s/phone'><%s xmlns='%s'/></message>"
                   % (DOMAIN, state, NS_CHATSTATES))
            b.send("<message type='chat' to='alice@%s/laptop'><%s xmlns='%s'/></message>"
                   % (DOMAIN, state, NS_CHATSTATES))
        self.assertEqual(b.ping(), "result")
        # The active resource gets all three, the inactive one nothing.
        got2 = [a2.wait_for(lambda e: e.tag == q(NS_CLIENT, "message")) for _ in range(3)]
        self.assertEqual([list(m)[0].tag.split("}")[1] for m in got2],
                         ["composing", "paused", "active"])
        self.assertEqual(a.nothing_more(0.5), [])
        # An iq goes through at once, after the latest chat state.
        a.send("<iq type='get' id='v1' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % DOMAIN)
        first = a.read_element()
        self.assertEqual(first.tag, q(NS_CLIENT, "message"))
        self.assertIsNotNone(first.find(q(NS_CHATSTATES, "active")))
        second = a.read_element()
        self.assertEqual((second.tag, second.get("id")), (q(NS_CLIENT, "iq"), "v1"))
        self.assertEqual(a.nothing_more(0.3), [])


NS_PUBSUB_EV = "http://jabber.org/protocol/pubsub#event"
NS_JMI = "urn:xmpp:jingle-message:0"
COMP = "svc.localhost"


class CsiSortingTests(ServerTestCase):
    """What a component sends an inactive client: PEP-style notifications
    held per publisher, node and item; calls at once; the bound."""
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"},
                         components={COMP: "svc-secret"},
                         config={"modules": {"roster": {}, "csi": {"max_held": 5,
                                                                   "immediate_nodes": ["urgent"]}}})

    def setUp(self):
        super().setUp()
        self.comp = self.raw(component=True)
        self.comp.handshake(COMP, "svc-secret")
        self.a = self.raw_login("alice", "phone")
        self.a.send("<inactive xmlns='%s'/>" % NS_CSI)
        self.assertEqual(self.a.ping(), "result")
        self.a.nothing_more(0.2)

    def event(self, frm, node, item, text):
        self.comp.send("<message from='%s' to='alice@%s/phone'><event xmlns='%s'><items node='%s'>"
                       "<item id='%s'><v xmlns='urn:test'>%s</v></item></items></event></message>"
                       % (frm, DOMAIN, NS_PUBSUB_EV, node, item, text))

    def texts(self, els):
        return [e.find(".//{urn:test}v").text for e in els if e.find(".//{urn:test}v") is not None]

    def test_pep_latest_per_publisher_node_item_then_call_at_once(self):
        self.event("p1@" + COMP, "nick", "current", "one")
        self.event("p1@" + COMP, "nick", "current", "two")
        self.event("p2@" + COMP, "nick", "current", "other publisher")
        self.event("p1@" + COMP, "bookmarks", "room1", "b1")
        self.event("p1@" + COMP, "bookmarks", "room2", "b2")
        self.event("p1@" + COMP, "nick", "current", "three")
        self.assertEqual(self.a.nothing_more(0.5), [])
        # A call proposal (XEP-0353) goes at once, after what was held.
        self.comp.send("<message from='caller@%s/x' to='alice@%s/phone' type='chat' id='call'>"
                       "<propose xmlns='%s' id='c1'/></message>" % (COMP, DOMAIN, NS_JMI))
        got = []
        while not any(e.get("id") == "call" for e in got):
            got.append(self.a.read_element())
        self.assertEqual(self.texts(got), ["other publisher", "b1", "b2", "three"])
        self.assertEqual(got[-1].get("id"), "call")
        self.assertEqual(self.a.nothing_more(0.3), [])

    def test_immediate_node_and_subscription_request_go_at_once(self):
        self.event("p1@" + COMP, "nick", "current", "held")
        self.event("p1@" + COMP, "urgent", "x", "now")
        got = [self.a.read_element(), self.a.read_element()]
        self.assertEqual(self.texts(got), ["held", "now"])
        b = self.raw_login("bob", "pc")
        b.send("<presence type='subscribe' to='alice@%s'/>" % DOMAIN)
        p = self.a.wait_for(lambda e: e.tag == q(NS_CLIENT, "presence"))
        self.assertEqual(p.get("type"), "subscribe")

    def test_bound_flushes_everything(self):
        for i in range(5):  # max_held: 5
            self.event("p%d@%s" % (i, COMP), "nick", "current", "n%d" % i)
        self.assertEqual(self.a.nothing_more(0.4), [])
        self.event("p9@" + COMP, "nick", "current", "n9")
        got = [self.a.read_element() for _ in range(6)]
        self.assertEqual(self.texts(got), ["n0", "n1", "n2", "n3", "n4", "n9"])

    def test_session_end_drops_what_is_held(self):
        out = lambda: self.server.ternctl_ok("status").stdout
        count = lambda text: int((re.search(r"^csi stanzas dropped: (\d+)$", text, re.M)
                                  or [0, 0])[1])
        before = count(out())
        self.event("p1@" + COMP, "nick", "current", "x")
        self.event("p2@" + COMP, "nick", "current", "y")
        self.assertEqual(self.a.nothing_more(0.3), [])
        self.a.end()
        deadline = time.monotonic() + T_REPLY
        while count(out()) - before < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(count(out()) - before, 2)
        # A new session of the same resource starts active.
        a = self.raw_login("alice", "phone")
        self.event("p1@" + COMP, "nick", "current", "z")
        # (its own available presence may come first: RFC 6121 §4.2.2)
        got = a.wait_for(lambda e: e.tag != q(NS_CLIENT, "presence"))
        self.assertEqual(self.texts([got]), ["z"], ET.tostring(got))
