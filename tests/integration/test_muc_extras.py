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


NS_MOD0 = "urn:xmpp:message-moderate:0"
NS_MOD1 = "urn:xmpp:message-moderate:1"
NS_RETR1 = "urn:xmpp:message-retract:1"
NS_FASTEN = "urn:xmpp:fasten:0"


class MucModerationTests(MucCase):
    def setup_room(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob = self.login("alice"), self.login("bob")
        self.create(alice, room, "Alice")
        self.join(bob, room, "Bob")
        self.say(bob, room, "spam spam")
        sid = sids(self.wait_body(bob, "spam spam"))[0].get("id")
        self.wait_body(alice, "spam spam")
        return room, rj, alice, bob, sid

    def test_moderator_retracts_a_message_everyone_hears_and_history_keeps_a_tombstone(self):
        room, rj, alice, bob, sid = self.setup_room()
        # bob is a participant: forbidden, even for his own message.
        r = bob.iq("<moderate xmlns='%s' id='%s'><retract xmlns='%s'/></moderate>"
                   % (NS_MOD1, sid, NS_RETR1), to=rj, type_="set")
        self.assertEqual(stanza_error(r), ("auth", "forbidden"))
        # An id the room never gave: item-not-found.
        r = alice.iq("<moderate xmlns='%s' id='nope'><retract xmlns='%s'/></moderate>"
                     % (NS_MOD1, NS_RETR1), to=rj, type_="set")
        self.assertEqual(stanza_error(r), ("cancel", "item-not-found"))
        r = alice.iq("<moderate xmlns='%s' id='%s'><retract xmlns='%s'/><reason>Spam</reason>"
                     "</moderate>" % (NS_MOD1, sid, NS_RETR1), to=rj, type_="set")
        self.assertEqual(r.get("type"), "result", ET.tostring(r))
        alice_oid = None
        for c in (alice, bob):
            m = c.wait_for(lambda e: e.find(q(NS_RETR1, "retract")) is not None)
            self.assertEqual((m.get("from"), m.get("type")), (rj, "groupchat"))
            rt = m.find(q(NS_RETR1, "retract"))
            self.assertEqual(rt.get("id"), sid)
            md = rt.find(q(NS_MOD1, "moderated"))
            self.assertEqual(md.get("by"), rj + "/Alice")
            alice_oid = md.find(q(NS_OID, "occupant-id")).get("id")
            self.assertEqual(rt.find(q(NS_RETR1, "reason")).text, "Spam")
            # XEP-0424 fallback for clients that know nothing of it.
            self.assertTrue(body(m))
            self.assertEqual(m.find(q("urn:xmpp:fallback:0", "fallback")).get("for"), NS_RETR1)
            # The older form, for clients of XEP-0425 v0.2.
            ap = m.find(q(NS_FASTEN, "apply-to"))
            self.assertEqual(ap.get("id"), sid)
            self.assertEqual(ap.find(q(NS_MOD0, "moderated")).get("by"), rj + "/Alice")
        self.assertTrue(alice_oid)
        carol = self.login("carol")
        _, got = self.join(carol, room, "Carol")
        self.assertNotIn("spam spam", [body(e) for e in got])
        stones = [e for e in got if e.find(q(NS_RETR1, "retracted")) is not None]
        self.assertEqual(len(stones), 1)
        self.assertEqual(stones[0].get("from"), rj + "/Bob")
        self.assertEqual(sids(stones[0])[0].get("id"), sid)
        self.assertIsNone(stones[0].find(q(NS_CLIENT, "body")))
        md = stones[0].find("%s/%s" % (q(NS_RETR1, "retracted"), q(NS_MOD1, "moderated")))
        self.assertEqual(md.get("by"), rj + "/Alice")
        r = alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=rj)
        feats = {f.get("var") for f in r.iter(q(NS_DISCO_INFO, "feature"))}
        self.assertTrue({NS_MOD0, NS_MOD1} <= feats, feats)

    def test_older_request_form_is_understood(self):
        room, rj, alice, bob, sid = self.setup_room()
        req = ("<apply-to xmlns='%s' id='%s'><moderate xmlns='%s'>"
               "<retract xmlns='urn:xmpp:message-retract:0'/></moderate></apply-to>"
               % (NS_FASTEN, sid, NS_MOD0))
        r = bob.iq(req, to=rj, type_="set")
        self.assertEqual(stanza_error(r), ("auth", "forbidden"))
        r = alice.iq(req, to=rj, type_="set")
        self.assertEqual(r.get("type"), "result", ET.tostring(r))
        m = bob.wait_for(lambda e: e.find(q(NS_FASTEN, "apply-to")) is not None)
        self.assertEqual(m.get("from"), rj)
        self.assertEqual(m.find(q(NS_RETR1, "retract")).get("id"), sid)


NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FWD = "urn:xmpp:forward:0"
PERSISTENT = {"muc#roomconfig_persistentroom": "1"}


class MucArchiveTests(MucCase):
    def mam(self, c, rj, rsm="", form="", qid="q1"):
        """Query the room's archive: (results as (stanza-id, message), fin or error iq)."""
        c.send("<iq type='set' id='mam-%s' to='%s'><query xmlns='%s' queryid='%s'>%s%s</query></iq>"
               % (qid, rj, NS_MAM, qid, form, ("<set xmlns='%s'>%s</set>" % (NS_RSM, rsm))
                  if rsm else ""))
        got = []
        while True:
            el = c.read_element(T_REPLY)
            if el.tag == q(NS_CLIENT, "iq") and el.get("id") == "mam-" + qid:
                return got, el
            res = el.find(q(NS_MAM, "result"))
            if res is not None and res.get("queryid") == qid:
                self.assertEqual(el.get("from"), rj)
                fwd = res.find(q(NS_FWD, "forwarded"))
                self.assertIsNotNone(fwd.find(q("urn:xmpp:delay", "delay")))
                got.append((res.get("id"), fwd.find(q(NS_CLIENT, "message"))))

    def fin(self, iq):
        self.assertEqual(iq.get("type"), "result", ET.tostring(iq))
        f = iq.find(q(NS_MAM, "fin"))
        s = f.find(q(NS_RSM, "set"))
        txt = lambda n: None if s.find(q(NS_RSM, n)) is None else s.find(q(NS_RSM, n)).text
        return f.get("complete"), txt("first"), txt("last"), txt("count")

    def test_occupants_page_through_the_archive_with_the_same_ids(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob = self.login("alice"), self.login("bob")
        self.create(alice, room, "Alice", PERSISTENT)
        self.join(bob, room, "Bob")
        ids = []
        for i in range(5):
            self.say(alice if i % 2 == 0 else bob, room, "m%d" % i)
            ids.append(sids(self.wait_body(bob, "m%d" % i))[0].get("id"))
        r = bob.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=rj)
        self.assertIn(NS_MAM, {f.get("var") for f in r.iter(q(NS_DISCO_INFO, "feature"))})
        got, iq = self.mam(bob, rj, "<max>2</max>")
        self.assertEqual([g[0] for g in got], ids[:2])
        self.assertEqual([body(g[1]) for g in got], ["m0", "m1"])
        self.assertEqual(got[0][1].get("from"), rj + "/Alice")
        self.assertEqual(sids(got[0][1])[0].get("id"), ids[0])
        self.assertIsNotNone(oid(got[0][1]))
        self.assertEqual(self.fin(iq), ("false", ids[0], ids[1], "5"))
        got, iq = self.mam(bob, rj, "<max>2</max><after>%s</after>" % ids[1], qid="q2")
        self.assertEqual([g[0] for g in got], ids[2:4])
        got, iq = self.mam(bob, rj, "<max>2</max><after>%s</after>" % ids[3], qid="q3")
        self.assertEqual([g[0] for g in got], ids[4:])
        self.assertEqual(self.fin(iq)[0], "true")
        # The last page, then the one before it.
        got, iq = self.mam(bob, rj, "<max>2</max><before/>", qid="q4")
        self.assertEqual([g[0] for g in got], ids[3:])
        got, iq = self.mam(bob, rj, "<max>2</max><before>%s</before>" % ids[3], qid="q5")
        self.assertEqual([g[0] for g in got], ids[1:3])
        # An unknown id: item-not-found.
        _, iq = self.mam(bob, rj, "<after>nope</after>", qid="q6")
        self.assertEqual(stanza_error(iq)[1], "item-not-found")
        # Someone who is not in the room (an open one) may not read it.
        carol = self.login("carol")
        _, iq = self.mam(carol, rj, qid="q7")
        self.assertEqual(stanza_error(iq), ("auth", "forbidden"))
        # A moderated message is a tombstone in the archive too.
        r = alice.iq("<moderate xmlns='%s' id='%s'><retract xmlns='%s'/></moderate>"
                     % (NS_MOD1, ids[1], NS_RETR1), to=rj, type_="set")
        self.assertEqual(r.get("type"), "result")
        got, _ = self.mam(bob, rj, "<max>2</max>", qid="q8")
        self.assertEqual([g[0] for g in got], ids[:2])
        self.assertIsNone(got[1][1].find(q(NS_CLIENT, "body")))
        self.assertIsNotNone(got[1][1].find(q(NS_RETR1, "retracted")))

    def test_members_only_archive_and_temporary_rooms(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob, carol = self.login("alice"), self.login("bob"), self.login("carol")
        self.create(alice, room, "Alice", dict(PERSISTENT, **{"muc#roomconfig_membersonly": "1"}))
        r = self.admin(alice, room, "<item jid='bob@%s' affiliation='member'/>" % DOMAIN)
        self.assertEqual(r.get("type"), "result")
        self.say(alice, room, "members only")
        self.wait_body(alice, "members only")
        # bob is a member, not in the room: he may read it; carol may not.
        got, iq = self.mam(bob, rj)
        self.assertEqual([body(g[1]) for g in got], ["members only"])
        _, iq = self.mam(carol, rj, qid="q2")
        self.assertEqual(stanza_error(iq), ("auth", "forbidden"))
        # A temporary room keeps no archive.
        temp = new_room()
        self.create(alice, temp, "Alice")
        _, iq = self.mam(alice, "%s@%s" % (temp, SERVICE), qid="q3")
        self.assertEqual(stanza_error(iq)[1], "feature-not-implemented")

    def test_archive_and_history_survive_a_restart(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice = self.login("alice")
        self.create(alice, room, "Alice", PERSISTENT)
        ids = []
        for i in range(3):
            self.say(alice, room, "kept %d" % i)
            ids.append(sids(self.wait_body(alice, "kept %d" % i))[0].get("id"))
        self.server.signal(signal.SIGTERM)
        try:
            while True:
                alice.read_element(T_REPLY)
        except StreamClosed:
            pass
        self.server.stop()
        self.server._launch()
        alice, bob = self.login("alice"), self.login("bob")
        _, got = self.join(bob, room, "Bob")
        hist = [e for e in got if body(e) and body(e).startswith("kept")]
        self.assertEqual([body(e) for e in hist], ["kept 0", "kept 1", "kept 2"])
        self.assertEqual([sids(e)[0].get("id") for e in hist], ids)
        self.assertTrue(all(e.find(q("urn:xmpp:delay", "delay")) is not None for e in hist))
        got, iq = self.mam(bob, rj)
        self.assertEqual([g[0] for g in got], ids)
        self.assertEqual(self.fin(iq)[0], "true")


NS_VCARD = "vcard-temp"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


class MucAvatarTests(MucCase):
    def test_owners_set_the_room_vcard_everyone_gets_it(self):
        import base64
        import hashlib
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob = self.login("alice"), self.login("bob")
        self.create(alice, room, "Alice", PERSISTENT)
        self.join(bob, room, "Bob")
        # None yet: an empty vCard.
        r = bob.iq("<vCard xmlns='%s'/>" % NS_VCARD, to=rj)
        self.assertEqual(r.get("type"), "result", ET.tostring(r))
        v = r.find(q(NS_VCARD, "vCard"))
        self.assertIsNotNone(v)
        self.assertEqual(len(list(v)), 0)
        card = ("<vCard xmlns='%s'><PHOTO><TYPE>image/png</TYPE><BINVAL>%s</BINVAL></PHOTO>"
                "</vCard>" % (NS_VCARD, PNG))
        r = bob.iq(card, to=rj, type_="set")
        self.assertEqual(stanza_error(r), ("auth", "forbidden"))
        r = alice.iq(card, to=rj, type_="set")
        self.assertEqual(r.get("type"), "result", ET.tostring(r))
        digest = hashlib.sha1(base64.b64decode(PNG)).hexdigest()
        p = bob.wait_for(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("from") == rj)
        self.assertEqual(p.find("%s/%s" % (q("vcard-temp:x:update", "x"),
                                           q("vcard-temp:x:update", "photo"))).text, digest)
        carol = self.login("carol")
        r = carol.iq("<vCard xmlns='%s'/>" % NS_VCARD, to=rj)
        self.assertEqual(r.find("%s/%s/%s" % (q(NS_VCARD, "vCard"), q(NS_VCARD, "PHOTO"),
                                              q(NS_VCARD, "BINVAL"))).text, PNG)
        r = carol.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=rj)
        feats = {f.get("var") for f in r.iter(q(NS_DISCO_INFO, "feature"))}
        self.assertIn(NS_VCARD, feats)
        vals = [f.find(q("jabber:x:data", "value")).text
                for f in r.iter(q("jabber:x:data", "field"))
                if f.get("var") == "muc#roominfo_avatarhash"]
        self.assertEqual(vals, [digest])
