"""Group chat (XEP-0045) served by the muc module on conference.localhost:
entering rooms (with the errors of §7.2 and the status codes of §15.2),
messages, private messages, subject, nick changes, several sessions under
one nick, roles and affiliations (kick, ban, voice, members, admins,
owners), the owner's configuration form and its status codes, destroy,
disco, history on join with its limits, invitations, the creation
policies, persistent rooms across a restart, and a room of 200 occupants
where each gets every message once and in order."""
import signal
import unittest
import time
import uuid
import xml.etree.ElementTree as ET

from harness import (DOMAIN, NS_CLIENT, NS_DISCO_INFO, NS_DISCO_ITEMS, ServerTestCase, StreamClosed,
                     T_REPLY, q, stanza_error)

SERVICE = "conference." + DOMAIN
NS_MUC = "http://jabber.org/protocol/muc"
NS_USER = NS_MUC + "#user"
NS_ADMIN = NS_MUC + "#admin"
NS_OWNER = NS_MUC + "#owner"
NS_DATA = "jabber:x:data"
NS_DELAY = "urn:xmpp:delay"
USERS = {u: u + "-pw" for u in ("alice", "bob", "carol", "dave", "boss")}


def service_config(**opts):
    return {"admins": ["boss@" + DOMAIN],
            "services": {SERVICE: {"modules": {"muc": opts}}}}


def new_room():
    return "r" + uuid.uuid4().hex[:10]


def codes(el):
    x = el.find(q(NS_USER, "x"))
    return set() if x is None else {int(s.get("code")) for s in x.findall(q(NS_USER, "status"))}


def item(el):
    x = el.find(q(NS_USER, "x"))
    it = None if x is None else x.find(q(NS_USER, "item"))
    return {} if it is None else dict(it.attrib)


def item_reason(el):
    it = el.find("%s/%s/%s" % (q(NS_USER, "x"), q(NS_USER, "item"), q(NS_USER, "reason")))
    return None if it is None else it.text


def is_presence(el, frm=None, type_=None):
    return (el.tag == q(NS_CLIENT, "presence") and (frm is None or el.get("from") == frm) and
            el.get("type") == type_)


def is_subject(el):
    return el.tag == q(NS_CLIENT, "message") and el.find(q(NS_CLIENT, "subject")) is not None


def body(el):
    b = el.find(q(NS_CLIENT, "body"))
    return None if b is None else b.text


def form(fields, type_="submit", form_type="http://jabber.org/protocol/muc#roomconfig"):
    out = "<x xmlns='%s' type='%s'>" % (NS_DATA, type_)
    if form_type:
        out += ("<field var='FORM_TYPE' type='hidden'><value>%s</value></field>" % form_type)
    for k, v in fields.items():
        out += "<field var='%s'><value>%s</value></field>" % (k, v)
    return out + "</x>"


class MucCase(ServerTestCase):
    server_kwargs = dict(users=USERS, config=service_config())

    def login(self, user, resource=None):
        return self.raw_login(user, resource)

    def join(self, c, room, nick, x=""):
        """Enter room@SERVICE as nick; returns (self-presence, everything up
        to and including the subject message)."""
        frm = "%s@%s/%s" % (room, SERVICE, nick)
        c.send("<presence to='%s'><x xmlns='%s'>%s</x></presence>" % (frm, NS_MUC, x))
        got = []
        while True:
            el = c.read_element(T_REPLY)
            got.append(el)
            if el.get("type") == "error":
                raise AssertionError("join refused: %s" % ET.tostring(el))
            if is_subject(el):
                break
        selfp = [e for e in got if e.tag == q(NS_CLIENT, "presence") and 110 in codes(e)]
        self.assertEqual(len(selfp), 1, got)
        return selfp[0], got

    def join_error(self, c, room, nick, x=""):
        c.send("<presence to='%s@%s/%s'><x xmlns='%s'>%s</x></presence>"
               % (room, SERVICE, nick, NS_MUC, x))
        el = c.wait_for(lambda e: e.tag == q(NS_CLIENT, "presence"))
        self.assertEqual(el.get("type"), "error", ET.tostring(el))
        self.assertEqual(el.get("from"), "%s@%s/%s" % (room, SERVICE, nick))
        return stanza_error(el)

    def create(self, c, room, nick, config=None):
        """Create a room: 201, then the instant form or the given configuration."""
        selfp, _ = self.join(c, room, nick)
        self.assertTrue({110, 201} <= codes(selfp) <= {110, 201, 100}, codes(selfp))
        self.assertEqual(item(selfp).get("affiliation"), "owner")
        self.assertEqual(item(selfp).get("role"), "moderator")
        payload = form(config) if config else "<x xmlns='%s' type='submit'/>" % NS_DATA
        r = c.iq("<query xmlns='%s'>%s</query>" % (NS_OWNER, payload),
                 to="%s@%s" % (room, SERVICE), type_="set")
        self.assertEqual(r.get("type"), "result", ET.tostring(r))
        return selfp

    def admin(self, c, room, items, type_="set"):
        return c.iq("<query xmlns='%s'>%s</query>" % (NS_ADMIN, items),
                    to="%s@%s" % (room, SERVICE), type_=type_)

    def configure(self, c, room, fields):
        r = c.iq("<query xmlns='%s'>%s</query>" % (NS_OWNER, form(fields)),
                 to="%s@%s" % (room, SERVICE), type_="set")
        self.assertEqual(r.get("type"), "result", ET.tostring(r))

    def say(self, c, room, text):
        c.send("<message to='%s@%s' type='groupchat'><body>%s</body></message>"
               % (room, SERVICE, text))

    def wait_body(self, c, text):
        return c.wait_for(lambda e: e.tag == q(NS_CLIENT, "message") and body(e) == text)

    def wait_presence(self, c, frm, type_=None):
        return c.wait_for(lambda e: is_presence(e, "%s" % frm, type_))


class MucTests(MucCase):
    def test_create_instant_room_then_others_enter(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob = self.login("alice"), self.login("bob")
        selfp, got = self.join(alice, room, "Alice")
        self.assertEqual(codes(selfp), {110, 201})
        # Locked until configured: others get item-not-found.
        self.assertEqual(self.join_error(bob, room, "Bob"), ("cancel", "item-not-found"))
        r = alice.iq("<query xmlns='%s'><x xmlns='%s' type='submit'/></query>"
                     % (NS_OWNER, NS_DATA), to=rj, type_="set")
        self.assertEqual(r.get("type"), "result")
        selfp, got = self.join(bob, room, "Bob")
        self.assertEqual(codes(selfp), {110})
        self.assertEqual(item(selfp), {"affiliation": "none", "role": "participant",
                                       "jid": bob.jid})
        # bob first got alice's presence, without her real JID (semi-anonymous).
        first = got[0]
        self.assertEqual(first.get("from"), rj + "/Alice")
        self.assertEqual(item(first), {"affiliation": "owner", "role": "moderator"})
        # The subject comes last, empty.
        self.assertTrue(is_subject(got[-1]))
        self.assertEqual(got[-1].get("from"), rj)
        # alice, a moderator, sees bob's real JID.
        p = self.wait_presence(alice, rj + "/Bob")
        self.assertEqual(item(p).get("jid"), bob.jid)
        self.assertEqual(codes(p), set())
        # No nickname: jid-malformed.
        alice.send("<presence to='%s'/>" % rj)
        err = alice.wait_for(lambda e: e.get("type") == "error")
        self.assertEqual(stanza_error(err), ("modify", "jid-malformed"))

    def test_messages_private_messages_and_errors(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob, carol = self.login("alice"), self.login("bob"), self.login("carol")
        self.create(alice, room, "Alice")
        self.join(bob, room, "Bob")
        self.say(alice, room, "hello room")
        for c in (alice, bob):
            m = self.wait_body(c, "hello room")
            self.assertEqual(m.get("from"), rj + "/Alice")
            self.assertEqual(m.get("type"), "groupchat")
        bob.send("<message to='%s/Alice' type='chat'><body>psst</body></message>" % rj)
        m = self.wait_body(alice, "psst")
        self.assertEqual(m.get("from"), rj + "/Bob")
        self.assertIsNotNone(m.find(q(NS_USER, "x")))
        # Not an occupant: not-acceptable.
        self.say(carol, room, "let me in")
        err = carol.wait_for(lambda e: e.get("type") == "error")
        self.assertEqual(stanza_error(err), ("modify", "not-acceptable"))
        # No such nick: item-not-found.
        bob.send("<message to='%s/Nobody' type='chat'><body>?</body></message>" % rj)
        err = bob.wait_for(lambda e: e.get("type") == "error")
        self.assertEqual(stanza_error(err), ("cancel", "item-not-found"))
        # No such room.
        carol.send("<message to='nosuchroom@%s' type='groupchat'><body>x</body></message>"
                   % SERVICE)
        err = carol.wait_for(lambda e: e.get("type") == "error")
        self.assertEqual(stanza_error(err), ("cancel", "item-not-found"))

    def test_nick_change_conflict_and_leave(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob, carol = self.login("alice"), self.login("bob"), self.login("carol")
        self.create(alice, room, "Alice")
        self.join(bob, room, "Bob")
        self.assertEqual(self.join_error(carol, room, "Bob"), ("cancel", "conflict"))
        bob.send("<presence to='%s/Alice'/>" % rj)
        err = bob.wait_for(lambda e: e.get("type") == "error")
        self.assertEqual(stanza_error(err), ("cancel", "conflict"))
        bob.send("<presence to='%s/Robert'/>" % rj)
        p = self.wait_presence(alice, rj + "/Bob", "unavailable")
        self.assertEqual(codes(p), {303})
        self.assertEqual(item(p).get("nick"), "Robert")
        p = self.wait_presence(alice, rj + "/Robert")
        self.assertEqual(item(p).get("role"), "participant")
        p = self.wait_presence(bob, rj + "/Bob", "unavailable")
        self.assertEqual(codes(p), {303, 110})
        p = self.wait_presence(bob, rj + "/Robert")
        self.assertEqual(codes(p), {110})
        # Leaving.
        bob.send("<presence to='%s/Robert' type='unavailable'/>" % rj)
        p = self.wait_presence(bob, rj + "/Robert", "unavailable")
        self.assertEqual(codes(p), {110})
        self.assertEqual(item(p).get("role"), "none")
        p = self.wait_presence(alice, rj + "/Robert", "unavailable")
        self.assertEqual(codes(p), set())
        # The nick is free again.
        self.join(carol, room, "Robert")

    def test_nick_prepared_by_the_service_gives_210(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob = self.login("alice"), self.login("bob")
        self.create(alice, room, "Alice")
        # "Cafe" + COMBINING ACUTE ACCENT is normalised (NFC) to "Caf\u00e9".
        selfp, _ = self.join(bob, room, "Cafe\u0301")
        self.assertEqual(selfp.get("from"), rj + "/Caf\u00e9")
        self.assertEqual(codes(selfp), {110, 210})

    def test_presence_updates_reach_occupants_and_newcomers(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob, carol, dave = (self.login(u) for u in ("alice", "bob", "carol", "dave"))
        self.create(alice, room, "Alice")
        self.join(bob, room, "Bob")
        self.join(carol, room, "Carol")  # carol's copy of bob's presence is now kept
        bob.send("<presence to='%s/Bob'><show>away</show><status>lunch</status></presence>" % rj)
        for c in (alice, carol, bob):
            p = c.wait_for(lambda e: is_presence(e, rj + "/Bob") and
                           e.find(q(NS_CLIENT, "show")) is not None)
            self.assertEqual((p.findtext(q(NS_CLIENT, "show")),
                              p.findtext(q(NS_CLIENT, "status"))), ("away", "lunch"))
            self.assertEqual(codes(p), {110} if c is bob else set())
        r = self.admin(alice, room, "<item nick='Bob' role='visitor'/>")
        self.assertEqual(r.get("type"), "result")
        # A newcomer sees the latest show, status and role.
        _, got = self.join(dave, room, "Dave")
        p = [e for e in got if e.get("from") == rj + "/Bob"][0]
        self.assertEqual(p.findtext(q(NS_CLIENT, "show")), "away")
        self.assertEqual(item(p), {"affiliation": "none", "role": "visitor"})

    def test_subject(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob, carol = self.login("alice"), self.login("bob"), self.login("carol")
        self.create(alice, room, "Alice")
        self.join(bob, room, "Bob")
        alice.send("<message to='%s' type='groupchat'><subject>Plans</subject></message>" % rj)
        for c in (alice, bob):
            m = c.wait_for(is_subject)
            self.assertEqual(m.find(q(NS_CLIENT, "subject")).text, "Plans")
            self.assertEqual(m.get("from"), rj + "/Alice")
        # A participant may not change it (muc#roomconfig_changesubject is off).
        bob.send("<message to='%s' type='groupchat'><subject>Mine</subject></message>" % rj)
        err = bob.wait_for(lambda e: e.get("type") == "error")
        self.assertEqual(stanza_error(err), ("auth", "forbidden"))
        _, got = self.join(carol, room, "Carol")
        self.assertEqual(got[-1].find(q(NS_CLIENT, "subject")).text, "Plans")
        self.assertEqual(got[-1].get("from"), rj + "/Alice")

    def test_several_sessions_under_one_nick(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice = self.login("alice")
        desk, phone = self.login("bob", "desk"), self.login("bob", "phone")
        self.create(alice, room, "Alice")
        self.join(desk, room, "Bob")
        self.wait_presence(alice, rj + "/Bob")
        self.join(phone, room, "Bob")
        self.say(alice, room, "to both")
        self.wait_body(desk, "to both")
        self.wait_body(phone, "to both")
        alice.send("<message to='%s/Bob' type='chat'><body>pm both</body></message>" % rj)
        self.wait_body(desk, "pm both")
        self.wait_body(phone, "pm both")
        # desk leaves: bob is still there.
        desk.send("<presence to='%s/Bob' type='unavailable'/>" % rj)
        p = self.wait_presence(desk, rj + "/Bob", "unavailable")
        self.assertIn(110, codes(p))
        self.assertEqual([e for e in alice.nothing_more() if is_presence(e, rj + "/Bob",
                                                                         "unavailable")], [])
        phone.send("<presence to='%s/Bob' type='unavailable'/>" % rj)
        self.wait_presence(alice, rj + "/Bob", "unavailable")

    def test_affiliation_changes_reach_every_nick_of_the_user(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice = self.login("alice")
        desk, phone = self.login("bob", "desk"), self.login("bob", "phone")
        self.create(alice, room, "Alice")
        self.join(desk, room, "Bob")
        self.join(phone, room, "Bobby")
        r = self.admin(alice, room, "<item jid='bob@%s' affiliation='admin'/>" % DOMAIN)
        self.assertEqual(r.get("type"), "result")
        # The iq's answer comes after the presences; each session sees its own.
        for c, nick in ((desk, "Bob"), (phone, "Bobby")):
            p = c.wait_for(lambda e: is_presence(e, "%s/%s" % (rj, nick)) and
                           item(e).get("affiliation") == "admin")
            self.assertEqual((item(p)["role"], codes(p)), ("moderator", {110}))
        r = self.admin(alice, room, "<item jid='bob@%s' affiliation='outcast'/>" % DOMAIN)
        self.assertEqual(r.get("type"), "result")
        for c, nick in ((desk, "Bob"), (phone, "Bobby")):
            p = self.wait_presence(c, "%s/%s" % (rj, nick), "unavailable")
            self.assertEqual(codes(p), {301, 110})

    def test_kick_ban_and_outcast_list(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob, carol = self.login("alice"), self.login("bob"), self.login("carol")
        self.create(alice, room, "Alice")
        self.join(bob, room, "Bob")
        self.join(carol, room, "Carol")
        # A participant may not kick.
        r = self.admin(bob, room, "<item nick='Carol' role='none'/>")
        self.assertEqual(stanza_error(r), ("auth", "forbidden"))
        # Kick with a reason: 307.
        r = self.admin(alice, room, "<item nick='Bob' role='none'><reason>Too loud</reason></item>")
        self.assertEqual(r.get("type"), "result")
        p = self.wait_presence(bob, rj + "/Bob", "unavailable")
        self.assertEqual(codes(p), {307, 110})
        self.assertEqual(item_reason(p), "Too loud")
        p = self.wait_presence(carol, rj + "/Bob", "unavailable")
        self.assertEqual(codes(p), {307})
        self.assertEqual(item(p).get("role"), "none")
        # Ban with a reason: 301, affiliation outcast, and no way back in.
        r = self.admin(alice, room, "<item jid='carol@%s' affiliation='outcast'><reason>Spam"
                       "</reason></item>" % DOMAIN)
        self.assertEqual(r.get("type"), "result")
        p = self.wait_presence(carol, rj + "/Carol", "unavailable")
        self.assertEqual(codes(p), {301, 110})
        self.assertEqual(item(p).get("affiliation"), "outcast")
        self.assertEqual(item_reason(p), "Spam")
        self.assertEqual(self.join_error(carol, room, "Carol"), ("auth", "forbidden"))
        r = self.admin(alice, room, "<item affiliation='outcast'/>", type_="get")
        items = r.findall("%s/%s" % (q(NS_ADMIN, "query"), q(NS_ADMIN, "item")))
        self.assertEqual([(i.get("jid"), i.get("affiliation")) for i in items],
                         [("carol@" + DOMAIN, "outcast")])
        # An owner cannot be kicked.
        self.join(bob, room, "Bob")
        r = self.admin(alice, room, "<item jid='bob@%s' affiliation='admin'/>" % DOMAIN)
        self.assertEqual(r.get("type"), "result")
        p = self.wait_presence(bob, rj + "/Bob")
        self.assertEqual((item(p)["affiliation"], item(p)["role"]), ("admin", "moderator"))
        r = self.admin(bob, room, "<item nick='Alice' role='none'/>")
        self.assertEqual(stanza_error(r), ("cancel", "not-allowed"))
        # An admin cannot make owners.
        r = self.admin(bob, room, "<item jid='dave@%s' affiliation='owner'/>" % DOMAIN)
        self.assertEqual(stanza_error(r), ("cancel", "not-allowed"))

    def test_voice_in_a_moderated_room(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob = self.login("alice"), self.login("bob")
        self.create(alice, room, "Alice", {"muc#roomconfig_moderatedroom": "1"})
        selfp, _ = self.join(bob, room, "Bob")
        self.assertEqual(item(selfp)["role"], "visitor")
        self.say(bob, room, "can I speak")
        err = bob.wait_for(lambda e: e.get("type") == "error")
        self.assertEqual(stanza_error(err), ("auth", "forbidden"))
        # Voice request: the moderators get the form.
        bob.send("<message to='%s'>%s</message>" % (rj, form(
            {"muc#role": "participant"}, form_type="http://jabber.org/protocol/muc#request")))
        m = alice.wait_for(lambda e: e.tag == q(NS_CLIENT, "message") and
                           e.find(q(NS_DATA, "x")) is not None)
        fields = {f.get("var"): f.findtext(q(NS_DATA, "value"))
                  for f in m.find(q(NS_DATA, "x")).findall(q(NS_DATA, "field"))}
        self.assertEqual(fields["muc#roomnick"], "Bob")
        self.assertEqual(fields["muc#jid"], bob.jid)
        # Grant voice.
        r = self.admin(alice, room, "<item nick='Bob' role='participant'/>")
        self.assertEqual(r.get("type"), "result")
        p = self.wait_presence(bob, rj + "/Bob")
        self.assertEqual(item(p)["role"], "participant")
        self.say(bob, room, "thanks")
        self.wait_body(alice, "thanks")
        # Revoke it.
        r = self.admin(alice, room, "<item nick='Bob' role='visitor'/>")
        self.assertEqual(r.get("type"), "result")
        p = self.wait_presence(bob, rj + "/Bob")
        self.assertEqual(item(p)["role"], "visitor")
        r = self.admin(alice, room, "<item role='visitor'/>", type_="get")
        items = r.findall("%s/%s" % (q(NS_ADMIN, "query"), q(NS_ADMIN, "item")))
        self.assertEqual([i.get("nick") for i in items], ["Bob"])

    def test_members_only_and_affiliation_changes(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob, carol, dave = (self.login(u) for u in ("alice", "bob", "carol", "dave"))
        self.create(alice, room, "Alice")
        self.join(carol, room, "Carol")
        r = self.admin(alice, room, "<item jid='bob@%s' affiliation='member'/>" % DOMAIN)
        self.assertEqual(r.get("type"), "result")
        self.join(bob, room, "Bob")
        # Becoming members-only: 104 to all, and 322 for carol who is no member.
        self.configure(alice, room, {"muc#roomconfig_membersonly": "1"})
        m = bob.wait_for(lambda e: e.tag == q(NS_CLIENT, "message") and codes(e))
        self.assertEqual(codes(m), {104})
        p = self.wait_presence(carol, rj + "/Carol", "unavailable")
        self.assertEqual(codes(p), {322, 110})
        p = self.wait_presence(bob, rj + "/Carol", "unavailable")
        self.assertEqual(codes(p), {322})
        self.assertEqual(self.join_error(dave, room, "Dave"), ("auth", "registration-required"))
        r = self.admin(alice, room, "<item affiliation='member'/>", type_="get")
        items = r.findall("%s/%s" % (q(NS_ADMIN, "query"), q(NS_ADMIN, "item")))
        self.assertEqual([i.get("jid") for i in items], ["bob@" + DOMAIN])
        # A participant may not see the list.
        r = self.admin(bob, room, "<item affiliation='member'/>", type_="get")
        self.assertEqual(stanza_error(r), ("auth", "forbidden"))
        # Membership revoked while present: 321.
        r = self.admin(alice, room, "<item jid='bob@%s' affiliation='none'/>" % DOMAIN)
        self.assertEqual(r.get("type"), "result")
        p = self.wait_presence(bob, rj + "/Bob", "unavailable")
        self.assertEqual(codes(p), {321, 110})
        # The last owner cannot step down.
        r = self.admin(alice, room, "<item jid='alice@%s' affiliation='admin'/>" % DOMAIN)
        self.assertEqual(stanza_error(r), ("cancel", "conflict"))
        # A second owner, then the owner list.
        r = self.admin(alice, room, "<item jid='dave@%s' affiliation='owner'/>" % DOMAIN)
        self.assertEqual(r.get("type"), "result")
        r = self.admin(alice, room, "<item affiliation='owner'/>", type_="get")
        items = r.findall("%s/%s" % (q(NS_ADMIN, "query"), q(NS_ADMIN, "item")))
        self.assertEqual(sorted(i.get("jid") for i in items),
                         ["alice@" + DOMAIN, "dave@" + DOMAIN])

    def test_password_and_max_occupants(self):
        room = new_room()
        alice, bob, carol = self.login("alice"), self.login("bob"), self.login("carol")
        self.create(alice, room, "Alice", {"muc#roomconfig_passwordprotectedroom": "1",
                                           "muc#roomconfig_roomsecret": "s3cret",
                                           "muc#roomconfig_maxusers": "2"})
        self.assertEqual(self.join_error(bob, room, "Bob"), ("auth", "not-authorized"))
        self.assertEqual(self.join_error(bob, room, "Bob", "<password>nope</password>"),
                         ("auth", "not-authorized"))
        self.join(bob, room, "Bob", "<password>s3cret</password>")
        self.assertEqual(self.join_error(carol, room, "Carol", "<password>s3cret</password>"),
                         ("wait", "service-unavailable"))

    def test_configuration_form_and_anonymity_codes(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob = self.login("alice"), self.login("bob")
        self.create(alice, room, "Alice")
        r = alice.iq("<query xmlns='%s'/>" % NS_OWNER, to=rj)
        x = r.find("%s/%s" % (q(NS_OWNER, "query"), q(NS_DATA, "x")))
        fields = {f.get("var"): f.findtext(q(NS_DATA, "value")) for f in
                  x.findall(q(NS_DATA, "field"))}
        self.assertEqual(fields["FORM_TYPE"], "http://jabber.org/protocol/muc#roomconfig")
        self.assertEqual(fields["muc#roomconfig_whois"], "moderators")
        self.assertEqual(fields["muc#roomconfig_persistentroom"], "0")
        # Only owners.
        self.join(bob, room, "Bob")
        r = bob.iq("<query xmlns='%s'/>" % NS_OWNER, to=rj)
        self.assertEqual(stanza_error(r), ("auth", "forbidden"))
        self.configure(alice, room, {"muc#roomconfig_whois": "anyone"})
        m = bob.wait_for(lambda e: e.tag == q(NS_CLIENT, "message") and codes(e))
        self.assertEqual(codes(m), {104, 172})
        self.configure(alice, room, {"muc#roomconfig_whois": "moderators"})
        m = bob.wait_for(lambda e: e.tag == q(NS_CLIENT, "message") and codes(e))
        self.assertEqual(codes(m), {104, 173})
        self.configure(alice, room, {"muc#roomconfig_whois": "anyone"})
        # Entering a non-anonymous room: 100, and everyone sees real JIDs.
        carol = self.login("carol")
        selfp, got = self.join(carol, room, "Carol")
        self.assertEqual(codes(selfp), {110, 100})
        alice_p = [e for e in got if e.get("from") == rj + "/Alice"][0]
        self.assertEqual(item(alice_p).get("jid"), alice.jid)
        r = alice.iq("<query xmlns='%s'>%s</query>" % (NS_OWNER, form(
            {"muc#roomconfig_whois": "everybody"})), to=rj, type_="set")
        self.assertEqual(stanza_error(r), ("modify", "not-acceptable"))

    def test_destroy_with_alternate_venue(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob = self.login("alice"), self.login("bob")
        self.create(alice, room, "Alice")
        self.join(bob, room, "Bob")
        r = bob.iq("<query xmlns='%s'><destroy/></query>" % NS_OWNER, to=rj, type_="set")
        self.assertEqual(stanza_error(r), ("auth", "forbidden"))
        r = alice.iq("<query xmlns='%s'><destroy jid='new@%s'><reason>Moved</reason></destroy>"
                     "</query>" % (NS_OWNER, SERVICE), to=rj, type_="set")
        self.assertEqual(r.get("type"), "result")
        p = self.wait_presence(bob, rj + "/Bob", "unavailable")
        d = p.find("%s/%s" % (q(NS_USER, "x"), q(NS_USER, "destroy")))
        self.assertEqual(d.get("jid"), "new@" + SERVICE)
        self.assertEqual(d.findtext(q(NS_USER, "reason")), "Moved")
        self.assertEqual(item(p), {"affiliation": "none", "role": "none", "jid": bob.jid})
        self.assertEqual([e for e in bob.nothing_more() if is_presence(e, rj + "/Alice",
                                                                       "unavailable")], [])
        r = bob.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=rj)
        self.assertEqual(stanza_error(r), ("cancel", "item-not-found"))

    def test_disco(self):
        pub, hidden = new_room(), new_room()
        alice = self.login("alice")
        self.create(alice, pub, "Alice", {"muc#roomconfig_roomname": "The Pub",
                                          "muc#roomconfig_roomdesc": "Drinks"})
        self.create(alice, hidden, "Alice", {"muc#roomconfig_publicroom": "0",
                                             "muc#roomconfig_membersonly": "1"})
        alice.send("<message to='%s@%s' type='groupchat'><subject>Beer</subject></message>"
                   % (pub, SERVICE))
        r = alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=SERVICE)
        qry = r.find(q(NS_DISCO_INFO, "query"))
        ids = [(i.get("category"), i.get("type")) for i in qry.findall(q(NS_DISCO_INFO,
                                                                           "identity"))]
        self.assertEqual(ids, [("conference", "text")])
        feats = {f.get("var") for f in qry.findall(q(NS_DISCO_INFO, "feature"))}
        self.assertIn(NS_MUC, feats)
        r = alice.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=SERVICE)
        items = {i.get("jid"): i.get("name") for i in
                 r.find(q(NS_DISCO_ITEMS, "query")).findall(q(NS_DISCO_ITEMS, "item"))}
        self.assertEqual(items.get("%s@%s" % (pub, SERVICE)), "The Pub")
        self.assertNotIn("%s@%s" % (hidden, SERVICE), items)
        r = alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to="%s@%s" % (pub, SERVICE))
        qry = r.find(q(NS_DISCO_INFO, "query"))
        feats = {f.get("var") for f in qry.findall(q(NS_DISCO_INFO, "feature"))}
        for f in (NS_MUC, "muc_public", "muc_open", "muc_unsecured", "muc_unmoderated",
                  "muc_semianonymous", "muc_temporary"):
            self.assertIn(f, feats)
        x = qry.find(q(NS_DATA, "x"))
        fields = {f.get("var"): f.findtext(q(NS_DATA, "value")) for f in
                  x.findall(q(NS_DATA, "field"))}
        self.assertEqual(fields["FORM_TYPE"], "http://jabber.org/protocol/muc#roominfo")
        self.assertEqual(fields["muc#roominfo_occupants"], "1")
        self.assertEqual(fields["muc#roominfo_subject"], "Beer")
        self.assertEqual(fields["muc#roominfo_description"], "Drinks")
        r = alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to="%s@%s" % (hidden, SERVICE))
        feats = {f.get("var") for f in r.find(q(NS_DISCO_INFO, "query")).findall(
            q(NS_DISCO_INFO, "feature"))}
        self.assertTrue({"muc_hidden", "muc_membersonly"} <= feats)

    def test_history_on_join_and_its_limits(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob = self.login("alice"), self.login("bob")
        self.create(alice, room, "Alice")
        for i in range(5):
            self.say(alice, room, "m%d" % i)
        self.wait_body(alice, "m4")

        def history(x):
            c = self.login("bob")
            _, got = self.join(c, room, "Bob", x)
            msgs = [e for e in got if e.tag == q(NS_CLIENT, "message") and body(e)]
            c.send("<presence to='%s/Bob' type='unavailable'/>" % rj)
            self.wait_presence(c, rj + "/Bob", "unavailable")
            return msgs

        got = history("")
        self.assertEqual([body(m) for m in got], ["m0", "m1", "m2", "m3", "m4"])
        d = got[0].find(q(NS_DELAY, "delay"))
        self.assertEqual(d.get("from"), rj)
        self.assertTrue(d.get("stamp").endswith("Z"))
        self.assertEqual(got[0].get("from"), rj + "/Alice")
        self.assertEqual([body(m) for m in history("<history maxstanzas='2'/>")], ["m3", "m4"])
        self.assertEqual(history("<history maxstanzas='0'/>"), [])
        self.assertEqual(history("<history maxchars='0'/>"), [])
        one = len(ET.tostring(got[-1]))
        limited = history("<history maxchars='%d'/>" % (2 * one + one // 2))
        self.assertTrue(1 <= len(limited) < 5, limited)
        self.assertEqual(body(limited[-1]), "m4")
        self.assertEqual(history("<history since='2099-01-01T00:00:00Z'/>"), [])
        self.assertEqual(len(history("<history since='2000-01-01T00:00:00Z'/>")), 5)
        time.sleep(2.2)
        self.say(alice, room, "m5")
        self.wait_body(alice, "m5")
        self.assertEqual([body(m) for m in history("<history seconds='1'/>")], ["m5"])
        # The room keeps only its history length.
        self.configure(alice, room, {"muc#maxhistoryfetch": "2"})
        for i in range(6, 9):
            self.say(alice, room, "m%d" % i)
        self.wait_body(alice, "m8")
        self.assertEqual([body(m) for m in history("")], ["m7", "m8"])
        del bob

    def test_invitations(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, carol = self.login("alice"), self.login("carol")
        self.create(alice, room, "Alice", {"muc#roomconfig_membersonly": "1"})
        self.assertEqual(self.join_error(carol, room, "Carol"), ("auth", "registration-required"))
        alice.send("<message to='%s'><x xmlns='%s'><invite to='carol@%s'><reason>Join us"
                   "</reason></invite></x></message>" % (rj, NS_USER, DOMAIN))
        m = carol.wait_for(lambda e: e.tag == q(NS_CLIENT, "message"))
        self.assertEqual(m.get("from"), rj)
        inv = m.find("%s/%s" % (q(NS_USER, "x"), q(NS_USER, "invite")))
        self.assertEqual(inv.get("from"), "alice@" + DOMAIN)
        self.assertEqual(inv.findtext(q(NS_USER, "reason")), "Join us")
        # The invitee of an admin became a member: she gets in.
        selfp, _ = self.join(carol, room, "Carol")
        self.assertEqual(item(selfp)["affiliation"], "member")
        # Decline goes back to the inviter.
        dave = self.login("dave")
        dave.send("<message to='%s'><x xmlns='%s'><decline to='alice@%s'><reason>Busy</reason>"
                  "</decline></x></message>" % (rj, NS_USER, DOMAIN))
        m = alice.wait_for(lambda e: e.tag == q(NS_CLIENT, "message") and
                           e.find("%s/%s" % (q(NS_USER, "x"), q(NS_USER, "decline"))) is not None)
        self.assertEqual(m.find("%s/%s" % (q(NS_USER, "x"), q(NS_USER, "decline"))).get("from"),
                         "dave@" + DOMAIN)
        # XEP-0249 direct invitations go from user to user, untouched.
        alice.send("<message to='%s' id='d1'><x xmlns='jabber:x:conference' jid='%s' "
                   "reason='come'/></message>" % (dave.jid, rj))
        m = dave.wait_for(lambda e: e.tag == q(NS_CLIENT, "message") and e.get("id") == "d1")
        x = m.find(q("jabber:x:conference", "x"))
        self.assertEqual((x.get("jid"), x.get("reason")), (rj, "come"))

    def test_an_occupant_whose_client_went_away_is_removed(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob = self.login("alice"), self.login("bob")
        self.create(alice, room, "Alice")
        self.join(bob, room, "Bob")
        self.wait_presence(alice, rj + "/Bob")
        bob.close()  # no unavailable presence, and no roster module to send one
        time.sleep(0.3)
        # The next message to it bounces: the room takes it out with 333.
        self.say(alice, room, "anyone there?")
        p = self.wait_presence(alice, rj + "/Bob", "unavailable")
        self.assertEqual(codes(p), {333})
        self.assertEqual(item(p)["role"], "none")

    def test_server_admins_own_every_room(self):
        room = new_room()
        alice, boss = self.login("alice"), self.login("boss")
        self.create(alice, room, "Alice", {"muc#roomconfig_membersonly": "1"})
        selfp, _ = self.join(boss, room, "Boss")
        self.assertEqual((item(selfp)["affiliation"], item(selfp)["role"]),
                         ("owner", "moderator"))


class MucPolicyTests(MucCase):
    server_kwargs = dict(users=USERS, config=service_config(create="admins",
                                                            default_persistent=True,
                                                            default_moderated=True))

    def test_only_admins_create_rooms_and_defaults_apply(self):
        room = new_room()
        alice, boss = self.login("alice"), self.login("boss")
        self.assertEqual(self.join_error(alice, room, "Alice"), ("cancel", "not-allowed"))
        self.create(boss, room, "Boss")
        r = boss.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to="%s@%s" % (room, SERVICE))
        feats = {f.get("var") for f in r.find(q(NS_DISCO_INFO, "query")).findall(
            q(NS_DISCO_INFO, "feature"))}
        self.assertTrue({"muc_persistent", "muc_moderated"} <= feats)
        selfp, _ = self.join(alice, room, "Alice")
        self.assertEqual(item(selfp)["role"], "visitor")


class MucRoomLimitTests(MucCase):
    server_kwargs = dict(users=USERS, config=service_config(create="anyone",
                                                            max_rooms_per_user=1))

    def test_max_rooms_per_user(self):
        alice = self.login("alice")
        self.create(alice, new_room(), "Alice")
        self.assertEqual(self.join_error(alice, new_room(), "Alice"), ("cancel", "not-allowed"))


class MucReloadTests(MucCase):
    def test_reload_changes_the_defaults_of_new_rooms(self):
        from harness import deep_merge
        alice = self.login("alice")
        old = new_room()
        self.create(alice, old, "Alice")
        good = self.server.config
        try:
            self.server.write_config(deep_merge(good, service_config(
                default_persistent=True, default_anonymity="non")))
            self.server.ternctl_ok("reload")
            room = new_room()
            selfp = self.create(alice, room, "Alice")
            self.assertEqual(codes(selfp), {110, 201, 100})
            feats = {}
            for r in (old, room):
                res = alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to="%s@%s" % (r, SERVICE))
                feats[r] = {f.get("var") for f in res.find(q(NS_DISCO_INFO, "query")).findall(
                    q(NS_DISCO_INFO, "feature"))}
            self.assertTrue({"muc_persistent", "muc_nonanonymous"} <= feats[room], feats[room])
            # Rooms that exist keep their configuration; so does the old room's state.
            self.assertTrue({"muc_temporary", "muc_semianonymous"} <= feats[old], feats[old])
            # A wrong value is refused and the running configuration stays.
            self.server.write_config(deep_merge(good, service_config(create="nobody")))
            r = self.server.ternctl("reload")
            self.assertNotEqual(r.returncode, 0)
            selfp, _ = self.join(alice, new_room(), "Alice")
            self.assertIn(201, codes(selfp))
        finally:
            self.server.write_config(good)


class MucWithRosterTests(MucCase):
    """With the roster module on the host (as in a real deployment), a
    client that goes away without leaving has its unavailable presence
    sent to the rooms it was in (its directed presence, RFC 6121 §4.6)."""
    server_kwargs = dict(users=USERS, config=dict(service_config(),
                                                  modules={"roster": {}}))

    def test_a_client_that_disconnects_leaves_its_rooms(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob = self.login("alice"), self.login("bob")
        self.create(alice, room, "Alice")
        self.join(bob, room, "Bob")
        self.wait_presence(alice, rj + "/Bob")
        bob.close()
        p = self.wait_presence(alice, rj + "/Bob", "unavailable")
        self.assertEqual(item(p)["role"], "none")
        self.assertNotIn(333, codes(p))


class MucPersistenceTests(MucCase):
    def test_persistent_room_survives_a_restart(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob = self.login("alice"), self.login("bob")
        self.create(alice, room, "Alice", {"muc#roomconfig_persistentroom": "1",
                                           "muc#roomconfig_membersonly": "1",
                                           "muc#roomconfig_roomname": "Kept"})
        r = self.admin(alice, room, "<item jid='bob@%s' affiliation='member'/>" % DOMAIN)
        self.assertEqual(r.get("type"), "result")
        alice.send("<message to='%s' type='groupchat'><subject>Still here</subject></message>"
                   % rj)
        alice.wait_for(is_subject)
        temp = new_room()
        self.create(alice, temp, "Alice")
        bob.end()
        # Shutting down: occupants hear 332 before their streams close.
        self.server.signal(signal.SIGTERM)
        got = []
        try:
            while True:
                got.append(alice.read_element(T_REPLY))
        except StreamClosed:
            pass
        gone = [e for e in got if is_presence(e, type_="unavailable")]
        self.assertEqual(sorted(e.get("from") for e in gone),
                         sorted([rj + "/Alice", "%s@%s/Alice" % (temp, SERVICE)]))
        for e in gone:
            self.assertEqual(codes(e), {332, 110})
        self.server.stop()
        self.server._launch()
        alice, bob, carol = self.login("alice"), self.login("bob"), self.login("carol")
        # The member rejoins; the owner is still owner; others are still kept out.
        selfp, got = self.join(bob, room, "Bob")
        self.assertEqual(item(selfp)["affiliation"], "member")
        self.assertEqual(got[-1].find(q(NS_CLIENT, "subject")).text, "Still here")
        selfp, _ = self.join(alice, room, "Alice")
        self.assertEqual((item(selfp)["affiliation"], item(selfp)["role"]),
                         ("owner", "moderator"))
        self.assertNotIn(201, codes(selfp))
        self.assertEqual(self.join_error(carol, room, "Carol"), ("auth", "registration-required"))
        r = alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=rj)
        qry = r.find(q(NS_DISCO_INFO, "query"))
        self.assertEqual(qry.find(q(NS_DISCO_INFO, "identity")).get("name"), "Kept")
        # The temporary room is gone: entering it creates it anew.
        selfp, _ = self.join(carol, temp, "Carol")
        self.assertIn(201, codes(selfp))
        # Made temporary again, it goes when its last occupant leaves.
        self.configure(alice, room, {"muc#roomconfig_persistentroom": "0"})
        for c, nick in ((alice, "Alice"), (bob, "Bob")):
            c.send("<presence to='%s/%s' type='unavailable'/>" % (rj, nick))
            self.wait_presence(c, "%s/%s" % (rj, nick), "unavailable")
        r = carol.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=rj)
        self.assertEqual(stanza_error(r), ("cancel", "item-not-found"))


class MucFanoutTests(MucCase):
    """200 occupants (ACCOUNTS accounts with PER sessions each, each session
    under its own nick, logged in cheaply as in test_fanout.py): every
    occupant gets every message exactly once and in order, and each message
    is serialized once however many occupants get it."""
    ACCOUNTS, PER, PW = 20, 10, "pw-muc-fanout"
    server_kwargs = dict(
        users=dict(USERS, **{"f%d" % i: "pw-muc-fanout" for i in range(20)}),
        config=dict(service_config(), c2s={"require_encryption": False, "allow_plain": True},
                    limits={"max_sessions_per_user": 10}))

    def tearDown(self):
        for c in getattr(self, "conns", []):
            try:
                c.sock.close()
            except OSError:
                pass
        super().tearDown()

    def test_200_occupants_each_get_every_message_once_in_order(self):
        import re
        import test_fanout
        from test_fanout import Conn, login_all, pump_until, status_counters
        test_fanout.PW = self.PW
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice = self.login("alice")
        self.create(alice, room, "Alice")
        conns = [Conn(self.server.c2s_port, "f%d" % i, "r%d" % k)
                 for i in range(self.ACCOUNTS) for k in range(self.PER)]
        self.conns = conns
        left = login_all(conns, lambda c: False, T_REPLY * 6)
        self.assertEqual(left, [], "%d sessions did not bind" % len(left))
        for n, c in enumerate(conns):
            c.send(("<presence to='%s/n%d'><x xmlns='%s'><history maxstanzas='0'/></x>"
                    "</presence>" % (rj, n, NS_MUC)).encode())
        left = pump_until(conns, lambda c: b"<subject" in c.data, T_REPLY * 6)
        self.assertEqual(left, [], "%d occupants did not get in" % len(left))
        # alice saw all 200 arrive (their joins race each other: any order).
        seen, want_seen = set(), {"%s/n%d" % (rj, n) for n in range(len(conns))}
        while seen != want_seen:
            seen.add(alice.wait_for(lambda e: is_presence(e) and e.get("from") in want_seen)
                     .get("from"))
        marks = [len(c.data) for c in conns]
        before = status_counters(self.server)[0]
        count = 30
        for k in range(count):
            self.say(alice, room, "msg-%d" % k)
        last = ("<body>msg-%d</body>" % (count - 1)).encode()
        left = pump_until(conns, lambda c: last in c.data, T_REPLY * 6)
        self.assertEqual(left, [], "%d occupants missed messages" % len(left))
        pump_until(conns, lambda c: False, 0.5)
        want = ["msg-%d" % k for k in range(count)]
        for c, mark in zip(conns, marks):
            got = [m.decode() for m in re.findall(rb"<body>(msg-\d+)</body>", bytes(c.data[mark:]))]
            self.assertEqual(got, want, "%s/%s" % (c.user, c.resource))
        self.wait_body(alice, "msg-%d" % (count - 1))
        serialized = status_counters(self.server)[0] - before
        self.assertLess(serialized, count * 3, "each message is serialized once, not per occupant")


class MucSlixmppTests(MucCase):
    """The same flows driven by slixmpp's own XEP-0045 plugin, as a client
    application would use it."""

    def test_slixmpp_creates_configures_chats_and_kicks(self):
        from harness import run_async
        from slixmpp import JID
        room = JID("%s@%s" % (new_room(), SERVICE))
        alice, bob = self.slix("alice"), self.slix("bob")

        async def plugins():
            for c in (alice, bob):
                c.xmpp.register_plugin("xep_0045")
        run_async(plugins())
        a, b = alice.xmpp["xep_0045"], bob.xmpp["xep_0045"]

        async def scenario():
            selfp, subject, occupants, history = await a.join_muc_wait(room, "Alice", timeout=8)
            got = {int(s) for s in selfp["muc"]["status_codes"]}
            assert got == {110, 201}, got
            config = await a.get_room_config(room)
            values = config.get_values()
            assert values["muc#roomconfig_whois"] == "moderators", values
            config.set_values({"muc#roomconfig_roomname": "Slix room",
                               "muc#roomconfig_moderatedroom": True})
            await a.set_room_config(room, config)
            selfp, subject, occupants, history = await b.join_muc_wait(room, "Bob", timeout=8)
            assert selfp["muc"]["role"] == "visitor", selfp
            await a.set_role(room, "Bob", "participant")
            a.xmpp.send_message(mto=room, mbody="hi from slixmpp", mtype="groupchat")
            return [str(j) for j in await a.get_affiliation_list(room, "owner")]

        owners = run_async(scenario(), T_REPLY * 3)
        self.assertEqual(owners, ["alice@" + DOMAIN])
        m = bob.wait_message(body="hi from slixmpp", mtype="groupchat")
        self.assertEqual(str(m["from"]), "%s/Alice" % room)
        self.assertEqual(str(m["mucnick"]), "Alice")

        async def kick():
            await a.set_role(room, "Bob", "none", reason="bye")
        run_async(kick())
        p = bob.wait_stanza(lambda s: s.name == "presence" and s["type"] == "unavailable")
        self.assertEqual({int(s) for s in p["muc"]["status_codes"]}, {307, 110})
        self.assertEqual(a.get_roster(room), ["Alice"])


class MucBadOptionTests(unittest.TestCase):
    def test_bad_options_refuse_to_start(self):
        from harness import Server, ServerError
        for options, text in (({"create": "everyone"}, "create must be anyone, local or admins"),
                              ({"default_anonymity": "full"},
                               "default_anonymity must be semi or non"),
                              ({"history_length": 5000}, "history_length")):
            with self.subTest(options=options):
                server = Server(name="MucBadOption", config=service_config(**options))
                try:
                    with self.assertRaises(ServerError):
                        server.start()
                    self.assertIn(text, server.log_text())
                finally:
                    server.stop(check=False)
                    server.remove()


class MucWatcherTests(MucCase):
    """A module beside muc on the service domain (tests/modules/
    mod_muc_watch.c) watches groupchat messages through the muc service and
    adds a <stanza-id/>: every occupant gets it, and so does the history."""

    @classmethod
    def setUpClass(cls):
        import glob
        import os
        import tempfile
        from harness import TERN_MODULES
        test_modules = os.path.abspath(os.environ.get(
            "TERN_TEST_MODULES",
            os.path.join(os.path.dirname(os.path.dirname(TERN_MODULES)), "tests/modules/.libs")))
        watch = os.path.join(test_modules, "mod_muc_watch.so")
        if not os.path.exists(watch):
            raise AssertionError("%s not built: make tests/modules/mod_muc_watch.la" % watch)
        cls.module_dir = tempfile.mkdtemp(prefix="tern-modules-")
        for so in glob.glob(os.path.join(TERN_MODULES, "mod_*.so")) + [watch]:
            os.symlink(so, os.path.join(cls.module_dir, os.path.basename(so)))
        config = service_config()
        config["services"][SERVICE]["modules"]["muc_watch"] = {}
        config["module_path"] = cls.module_dir
        cls.server_kwargs = dict(users=USERS, config=config)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        import shutil
        super().tearDownClass()
        shutil.rmtree(cls.module_dir, ignore_errors=True)

    def test_a_watcher_adds_ids_that_occupants_and_history_get(self):
        room = new_room()
        rj = "%s@%s" % (room, SERVICE)
        alice, bob = self.login("alice"), self.login("bob")
        self.create(alice, room, "Alice")
        self.join(bob, room, "Bob")
        self.say(alice, room, "with an id")
        ids = []
        for c in (alice, bob):
            m = self.wait_body(c, "with an id")
            # The room adds its own id too; the watcher's is the one it made.
            sid = [s for s in m.findall(q("urn:xmpp:sid:0", "stanza-id"))
                   if s.get("id").startswith("watch-")][0]
            self.assertEqual(sid.get("by"), rj)
            ids.append(sid.get("id"))
        self.assertEqual(ids[0], ids[1])
        self.assertTrue(ids[0].startswith("watch-"))
        carol = self.login("carol")
        _, got = self.join(carol, room, "Carol")
        hist = [e for e in got if body(e) == "with an id"][0]
        self.assertIn(ids[0], [s.get("id") for s in hist.findall(q("urn:xmpp:sid:0", "stanza-id"))])
        self.assertIsNotNone(hist.find(q(NS_DELAY, "delay")))
