"""Contacts served by an external component (XEP-0114): what a user's own
server does with the user's stanzas to a component JID before they leave
(the outgoing filters run on the sender's host, whatever the destination),
and with the component's stanzas to the user.

comp.localhost is spoken by hand (RawComponent), so every test sees exactly
what the server sends it:
- roster (RFC 6121 §3.1.2-§3.1.6, §3.3.2): alice's subscribe gets a roster
  push with ask='subscribe' and leaves from her bare JID; the component's
  'subscribed' makes the item subscription='to'; her 'unsubscribe' too
  leaves bare and clears the item; a request from the component, once
  approved, makes it 'from' and brings it her presence;
- blocking (XEP-0191 §3.3): her messages and iqs to a blocked component JID
  come back as <not-acceptable/> with <blocked/>, her presence is dropped,
  and the component gets none of it, nor the presence the server sends for
  her (broadcasts, a new resource's probe); its iq to her bare JID is
  service-unavailable; unblocking restores all of it;
- carbons (XEP-0280 §8): her message to the component is copied as sent to
  her other enabled resource;
- MAM (XEP-0313): that message is in her archive, with the component JID
  as 'with', as is the component's message to her;
- vCard (XEP-0153 §4.1): her directed presence to the component carries
  the hash of her avatar.
"""
import base64
import hashlib
import time
import xml.etree.ElementTree as ET

from harness import NS_COMPONENT, NS_DISCO_INFO, NS_PING, T_SHORT, q, stanza_error
from test_carbons import carbon, set_carbons
from test_mam import mam, token
from test_roster import RosterCase

COMP = "comp.localhost"
SECRET = "comp-secret"
ALICE = "alice@localhost"
NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_SID = "urn:xmpp:sid:0"
NS_VCARD_UPDATE = "vcard-temp:x:update"
PHOTO = "iVBORw0KGgo="  # base64 of the 8-byte PNG signature


def is_blocked_error(xml):
    err = xml.find("{jabber:client}error")
    return (err is not None and err.get("type") == "cancel" and
            err.find(q(NS_STANZAS, "not-acceptable")) is not None and
            err.find(q(NS_BLOCKING_ERRORS, "blocked")) is not None)


def ctag(name):
    return q(NS_COMPONENT, name)


class ComponentContactTests(RosterCase):
    server_kwargs = dict(users={"alice": "alice-pw"}, components={COMP: SECRET},
                         config={"modules": {"roster": {}, "blocking": {}, "carbons": {},
                                             "mam": {}, "vcard": {}}})

    def setUp(self):
        super().setUp()
        self.comp = self.raw(component=True)
        self.assertEqual(self.comp.handshake(COMP, SECRET).tag, ctag("handshake"))

    # ---- helpers ---------------------------------------------------------

    def comp_wait(self, to, name, ptype=None):
        """The next stanza the component gets for `to` of this kind (and
        type: 'available' for presence without one)."""
        def pred(e):
            t = e.get("type") or ("available" if name == "presence" else None)
            return (e.tag == ctag(name) and e.get("to") == to and
                    (ptype is None or t == ptype))
        return self.comp.wait_for(pred)

    def comp_quiet(self, to, within=T_SHORT):
        """Nothing reaches the component for `to` within `within` seconds
        (stanzas for its other JIDs, like probes for earlier tests'
        contacts, do not count)."""
        got = [e for e in self.comp.nothing_more(within) if e.get("to") == to]
        self.assertEqual([ET.tostring(e).decode() for e in got], [])

    def blocking(self, alice, what, jid):
        answer = alice.iq("<%s xmlns='%s'><item jid='%s'/></%s>" % (what, NS_BLOCKING, jid, what),
                          to=None, itype="set")
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))

    def approve_component_request(self, alice, x):
        """x asks for alice's presence and she approves: subscription 'from';
        the component gets 'subscribed' and her presence (§3.1.5)."""
        a = alice.mark()
        self.comp.send("<presence from='%s' to='%s' type='subscribe'/>" % (x, ALICE))
        self.wait_presence(alice, a, "subscribe", x)
        alice.send_raw("<presence to='%s' type='subscribed'/>" % x)
        self.wait_push(alice, x, since=a, subscription="from")
        self.assertEqual(self.comp_wait(x, "presence", "subscribed").get("from"), ALICE)
        self.assertEqual(self.comp_wait(x, "presence", "available").get("from"), alice.jid)

    # ---- roster ------------------------------------------------------------

    def test_subscription_to_a_component_contact(self):
        x = "x1@" + COMP
        alice = self.client("alice", "one")
        a = alice.mark()
        alice.send_raw("<presence to='%s' type='subscribe'/>" % x)
        self.wait_push(alice, x, since=a, subscription="none", ask="subscribe")
        sub = self.comp_wait(x, "presence", "subscribe")
        self.assertEqual(sub.get("from"), ALICE, "RFC 6121 §3.1.2: from the bare JID")
        a = alice.mark()
        self.comp.send("<presence from='%s' to='%s' type='subscribed'/>" % (x, ALICE))
        self.wait_push(alice, x, since=a, subscription="to", ask=None)
        self.wait_presence(alice, a, "subscribed", x)
        self.assertEqual(self.roster_items(alice)[x]["subscription"], "to")
        self.assertIsNone(self.roster_items(alice)[x]["ask"])
        self.comp_quiet(x)
        # §3.3.2: unsubscribe leaves bare too, and ends the subscription.
        a = alice.mark()
        alice.send_raw("<presence to='%s' type='unsubscribe'/>" % x)
        self.wait_push(alice, x, since=a, subscription="none", ask=None)
        self.assertEqual(self.comp_wait(x, "presence", "unsubscribe").get("from"), ALICE)

    def test_request_from_a_component_contact_approved(self):
        x = "x2@" + COMP
        alice = self.client("alice", "one")
        self.approve_component_request(alice, x)
        self.assertEqual(self.roster_items(alice)[x]["subscription"], "from")
        # Her broadcast presence now reaches the component.
        alice.send_raw("<presence><show>away</show></presence>")
        got = self.comp_wait(x, "presence", "available")
        self.assertEqual(got.get("from"), alice.jid)
        self.assertEqual(got.findtext(ctag("show")), "away")

    # ---- blocking ----------------------------------------------------------

    def test_stanzas_to_a_blocked_component_contact_are_not_sent(self):
        x = "x3@" + COMP
        alice = self.client("alice", "one")
        self.blocking(alice, "block", x)
        a = alice.mark()
        alice.send_message(x, "can you hear me")
        err = alice.wait_message(mtype="error", since=a)
        self.assertTrue(is_blocked_error(err.xml), str(err))
        self.assertEqual(str(err["from"]), x)
        self.assertEqual(err["body"], "can you hear me")
        answer = alice.iq("<ping xmlns='%s'/>" % NS_PING, to=x)
        self.assertEqual(answer.get("type"), "error")
        self.assertTrue(is_blocked_error(answer), ET.tostring(answer))
        a = alice.mark()
        alice.send_raw("<presence to='%s'/>" % x)
        alice.send_raw("<presence to='%s' type='subscribe'/>" % x)
        self.comp_quiet(x)
        # Presence is dropped without an answer, and the roster is untouched.
        self.quiet([(alice, a)], within=0)
        self.assertNotIn(x, self.roster_items(alice))
        # The component's iq to her account is refused; she gets nothing.
        a = alice.mark()
        self.comp.send("<iq type='get' id='d1' from='%s' to='%s'><query xmlns='%s'/></iq>" %
                       (x, ALICE, NS_DISCO_INFO))
        answer = self.comp.wait_for(lambda e: e.tag == ctag("iq") and e.get("id") == "d1")
        self.assertEqual(stanza_error(answer), ("cancel", "service-unavailable"))
        self.quiet([(alice, a)])
        # Unblocked: everything goes through again.
        self.blocking(alice, "unblock", x)
        alice.send_message(x, "now you do")
        self.assertEqual(self.comp_wait(x, "message").findtext(ctag("body")), "now you do")
        self.comp.send("<iq type='get' id='d2' from='%s' to='%s'><query xmlns='%s'/></iq>" %
                       (x, ALICE, NS_DISCO_INFO))
        answer = self.comp.wait_for(lambda e: e.tag == ctag("iq") and e.get("id") == "d2")
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))

    def test_blocked_component_contact_gets_no_presence_from_the_server(self):
        """XEP-0191 §3.3: unavailable at block time, then nothing the server
        sends for her (broadcasts, a new resource's probes); §3.4: her
        presence again at unblock."""
        x, y = "x4@" + COMP, "y4@" + COMP
        alice = self.client("alice", "one")
        self.approve_component_request(alice, x)
        # She is subscribed to y as well, so that logins probe it.
        alice.send_raw("<presence to='%s' type='subscribe'/>" % y)
        self.comp_wait(y, "presence", "subscribe")
        a = alice.mark()
        self.comp.send("<presence from='%s' to='%s' type='subscribed'/>" % (y, ALICE))
        self.wait_push(alice, y, since=a, subscription="to")

        self.blocking(alice, "block", x)
        self.assertEqual(self.comp_wait(x, "presence", "unavailable").get("from"), alice.jid)
        self.blocking(alice, "block", y)
        alice.send_raw("<presence><show>dnd</show></presence>")
        alice.sync()
        two = self.client("alice", "two")
        two.sync()
        self.comp_quiet(x)
        self.comp_quiet(y, within=0)

        self.blocking(alice, "unblock", x)
        shown = {self.comp_wait(x, "presence", "available").get("from") for _ in range(2)}
        self.assertEqual(shown, {alice.jid, two.jid})
        self.blocking(alice, "unblock", y)
        three = self.client("alice", "three")
        self.assertEqual(self.comp_wait(y, "presence", "probe").get("from"), ALICE)
        three.sync()

    # ---- carbons and MAM -----------------------------------------------------

    def test_message_to_a_component_is_copied_and_archived(self):
        x = "x5@" + COMP
        one = self.client("alice", "one")
        two = self.client("alice", "two")
        self.assertEqual(set_carbons(two, True), "result")
        body = "to the bot " + token()
        m1, m2 = one.mark(), two.mark()
        one.send_message(x, body)
        got = self.comp_wait(x, "message")
        self.assertEqual(got.get("from"), one.jid)
        self.assertEqual(got.findtext(ctag("body")), body)
        self.assertEqual(got.findall(q(NS_SID, "stanza-id")), [],
                         "XEP-0313 §3.5: no stanza-id to a JID that cannot read the archive")
        # XEP-0280 §8: the other enabled resource gets a sent copy.
        copy = two.wait_stanza(lambda s: s.name == "message" and
                               carbon(s, "sent") is not None, since=m2)
        inner = carbon(copy, "sent")
        self.assertEqual(str(copy["from"]), ALICE)
        self.assertEqual(inner.get("to"), x)
        self.assertEqual(inner.findtext("{jabber:client}body"), body)
        time.sleep(T_SHORT)
        self.assertEqual(len([s for s in two.received_since(m2, ("message",))]), 1)
        self.assertEqual(one.received_since(m1, ("message",)), [])
        # XEP-0313: in her archive, with the component JID as the other party.
        found = mam(one, form={"with": x})
        self.assertEqual(found.iq.get("type"), "result", stanza_error(found.iq))
        self.assertEqual(found.bodies, [body])
        self.assertEqual(found.items[0][2].get("to"), x)
        # The component's answer lands there too, with its stanza-id.
        reply = "from the bot " + token()
        m1 = one.mark()
        self.comp.send("<message from='%s' to='%s' type='chat'><body>%s</body></message>" %
                       (x, one.jid, reply))
        msg = one.wait_message(reply, since=m1)
        ids = [e.get("by") for e in msg.xml.findall(q(NS_SID, "stanza-id"))]
        self.assertEqual(ids, [ALICE])
        self.assertEqual(mam(one, form={"with": x}).bodies, [body, reply])


    # ---- vCard -----------------------------------------------------------------

    def test_directed_presence_to_a_component_carries_the_avatar_hash(self):
        x = "x6@" + COMP
        alice = self.client("alice", "one")
        vcard = ("<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>%s</BINVAL>"
                 "</PHOTO></vCard>" % PHOTO)
        answer = alice.iq(vcard, to=None, itype="set")
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        # Whatever the client says, the server's hash replaces it.
        alice.send_raw("<presence to='%s'><x xmlns='%s'><photo>forged</photo></x></presence>" %
                       (x, NS_VCARD_UPDATE))
        got = self.comp_wait(x, "presence", "available")
        photos = [p.text for p in got.iter(q(NS_VCARD_UPDATE, "photo"))]
        self.assertEqual(photos, [hashlib.sha1(base64.b64decode(PHOTO)).hexdigest()])
