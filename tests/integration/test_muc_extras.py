"""Group chat extras on conference.localhost: stanza ids (XEP-0359) on
every groupchat message and in history, occupant ids (XEP-0421) on
messages and presence, and self-ping (XEP-0410), also after a restart."""
import signal
import xml.etree.ElementTree as ET

from harness import DOMAIN, NS_CLIENT, NS_DISCO_INFO, StreamClosed, T_REPLY, q, stanza_error
from test_muc import SERVICE, MucCase, body, new_room

NS_SID = "urn:xmpp:sid:0"
NS_OID = "urn:xmpp:occupant-id:0"
NS_PING = "urn:xmpp:ping"
SELF_PING = "http://jabber.org/protocol/muc#self-ping-optimization"


def sids(el):
    return el.findall(q(NS_SID, "stanza-id"))


def oid(el):
    o = el.findall(q(NS_OID, "occupant-id"))
    assert len(o) <= 1, ET.tostring(el)
    return o[0].get("id") if o else None


class MucIdsTests(MucCase):
    def test_stanza_id_on_messages_and_history_origin_id_kept(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob = self.login("alice"), self.login("bob")
        self.create(alice, room, "Alice")
        self.join(bob, room, "Bob")
        # A forged stanza-id claiming to be the room's is dropped; origin-id stays.
        alice.send("<message to='%s' type='groupchat'><body>one</body>"
                   "<origin-id xmlns='%s' id='o-1'/>"
                   "<stanza-id xmlns='%s' by='%s' id='forged'/></message>" % (rj, NS_SID, NS_SID, rj))
        self.say(alice, room, "two")
        seen = {}
        for c in (alice, bob):
            for text in ("one", "two"):
                m = self.wait_body(c, text)
                ids = sids(m)
                self.assertEqual(len(ids), 1, ET.tostring(m))
                self.assertEqual(ids[0].get("by"), rj)
                self.assertNotEqual(ids[0].get("id"), "forged")
                seen.setdefault(text, set()).add(ids[0].get("id"))
                if text == "one":
                    self.assertEqual(m.find(q(NS_SID, "origin-id")).get("id"), "o-1")
        self.assertEqual(len(seen["one"]), 1)
        self.assertEqual(len(seen["two"]), 1)
        self.assertNotEqual(seen["one"], seen["two"])
        carol = self.login("carol")
        _, got = self.join(carol, room, "Carol")
        for text in ("one", "two"):
            hist = [e for e in got if body(e) == text][0]
            self.assertEqual({s.get("id") for s in sids(hist)}, seen[text])

    def test_occupant_id_stable_per_user_and_in_disco(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob = self.login("alice"), self.login("bob")
        self.create(alice, room, "Alice")
        selfp, _ = self.join(bob, room, "Bob")
        bob_id = oid(selfp)
        self.assertTrue(bob_id)
        p = self.wait_presence(alice, rj + "/Bob")
        self.assertEqual(oid(p), bob_id)
        # A forged occupant id in the client's message is replaced.
        bob.send("<message to='%s' type='groupchat'><body>hi</body>"
                 "<occupant-id xmlns='%s' id='fake'/></message>" % (rj, NS_OID))
        self.assertEqual(oid(self.wait_body(alice, "hi")), bob_id)
        self.say(alice, room, "hey")
        alice_id = oid(self.wait_body(bob, "hey"))
        self.assertTrue(alice_id)
        self.assertNotEqual(alice_id, bob_id)
        # Another session of bob under another nick: the same id.
        bob2 = self.login("bob", "second")
        bob.send("<presence to='%s/Bob' type='unavailable'/>" % rj)
        self.wait_presence(alice, rj + "/Bob", "unavailable")
        selfp, _ = self.join(bob2, room, "Robert")
        self.assertEqual(oid(selfp), bob_id)
        # Another room: another id.
        other = new_room()
        self.create(alice, other, "Alice")
        selfp, _ = self.join(bob2, other, "Bob")
        self.assertNotEqual(oid(selfp), bob_id)
        r = alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=rj)
        feats = {f.get("var") for f in r.iter(q(NS_DISCO_INFO, "feature"))}
        self.assertTrue({NS_OID, NS_SID, SELF_PING} <= feats, feats)


class MucSelfPingTests(MucCase):
    def ping(self, c, to):
        return c.iq("<ping xmlns='%s'/>" % NS_PING, to=to)

    def test_self_ping_answers_joined_and_refuses_others(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob, carol = self.login("alice"), self.login("bob"), self.login("carol")
        self.create(alice, room, "Alice")
        self.join(bob, room, "Bob")
        self.assertEqual(self.ping(bob, rj + "/Bob").get("type"), "result")
        # carol is not joined: not-acceptable, whoever she names.
        for nick in ("Bob", "Carol"):
            r = self.ping(carol, rj + "/" + nick)
            self.assertEqual(r.get("type"), "error", ET.tostring(r))
            self.assertEqual(stanza_error(r), ("cancel", "not-acceptable"))
        # bob names a nick that is nobody's: not-acceptable.
        r = self.ping(bob, rj + "/Nobody")
        self.assertEqual(stanza_error(r), ("cancel", "not-acceptable"))
        # Another session of bob that did not join: not-acceptable.
        bob2 = self.login("bob", "other")
        r = self.ping(bob2, rj + "/Bob")
        self.assertEqual(stanza_error(r), ("cancel", "not-acceptable"))
        # After leaving: not-acceptable.
        bob.send("<presence to='%s/Bob' type='unavailable'/>" % rj)
        self.wait_presence(bob, rj + "/Bob", "unavailable")
        r = self.ping(bob, rj + "/Bob")
        self.assertEqual(stanza_error(r), ("cancel", "not-acceptable"))

    def test_self_ping_after_restart_tells_the_client_to_rejoin(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice = self.login("alice")
        self.create(alice, room, "Alice", {"muc#roomconfig_persistentroom": "1"})
        self.say(alice, room, "before")
        before = sids(self.wait_body(alice, "before"))[0].get("id")
        selfp, _ = self.join(self.login("bob"), room, "Bob")
        bob_id = oid(selfp)
        self.server.signal(signal.SIGTERM)
        try:
            while True:
                alice.read_element(T_REPLY)
        except StreamClosed:
            pass
        self.server.stop()
        self.server._launch()
        alice, bob = self.login("alice"), self.login("bob")
        r = self.ping(alice, rj + "/Alice")
        self.assertEqual(stanza_error(r), ("cancel", "not-acceptable"))
        self.join(alice, room, "Alice")
        self.assertEqual(self.ping(alice, rj + "/Alice").get("type"), "result")
        # Occupant ids survive the restart.
        selfp, _ = self.join(bob, room, "Bob")
        self.assertEqual(oid(selfp), bob_id)
        self.say(alice, room, "after")
        self.assertNotEqual(sids(self.wait_body(alice, "after"))[0].get("id"), before)
