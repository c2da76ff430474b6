"""mod_vcard: vcard-temp (XEP-0054) and the avatar hash in presence (XEP-0153).

A user stores and reads back their own vCard, another user reads it at the
bare JID (answered by the server, never forwarded to the owner's client), a
new vCard replaces the old one whole, an oversized one is refused with
not-acceptable, nobody sets another's vCard, an address that is no account
gets service-unavailable; the avatar's SHA-1 rides on every available
presence a user sends (directed presence; broadcast presence too when
mod_roster is built); vCards and hashes survive a reconnect and a restart."""
import base64
import hashlib
import os
import time
import unittest
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from harness import (DOMAIN, NS_DISCO_INFO, T_SHORT, TERN_MODULES, ServerTestCase, q,
                     stanza_error)

NS_VCARD = "vcard-temp"
NS_UPDATE = "vcard-temp:x:update"
HAVE_ROSTER = os.path.exists(os.path.join(TERN_MODULES, "mod_roster.so"))

# A small "image": the hash is over these bytes, not over their base64.
IMAGE = bytes(range(256)) * 3
IMAGE_SHA1 = hashlib.sha1(IMAGE).hexdigest()


def b64_lines(data):
    """Base64 broken into 76-column lines, as RFC 2045 clients send it."""
    text = base64.b64encode(data).decode()
    return "\n".join(text[i:i + 76] for i in range(0, len(text), 76))


def vcard_xml(fn=None, nick=None, desc=None, photo=None):
    parts = []
    if fn is not None:
        parts.append("<FN>%s</FN>" % fn)
    if nick is not None:
        parts.append("<NICKNAME>%s</NICKNAME>" % nick)
    if desc is not None:
        parts.append("<DESC>%s</DESC>" % escape(desc))
    if photo is not None:
        parts.append("<PHOTO><TYPE>image/png</TYPE><BINVAL>\n%s\n</BINVAL></PHOTO>" %
                     b64_lines(photo))
    return "<vCard xmlns='%s'>%s</vCard>" % (NS_VCARD, "".join(parts))


def card_of(answer):
    """The <vCard/> of a result, as {TAG: text} of its direct children."""
    card = answer.find(q(NS_VCARD, "vCard"))
    assert card is not None, ET.tostring(answer)
    return {child.tag.split("}", 1)[1]: (child.text or "") for child in card}


def update_x(presence):
    """The vcard-temp:x:update children of a presence stanza (slixmpp)."""
    return presence.xml.findall(q(NS_UPDATE, "x"))


def photo_of(presence):
    """The <photo/> text ('' when empty) of the only x:update, None when absent."""
    xs = update_x(presence)
    assert len(xs) == 1, "expected one x:update, got %d: %s" % (len(xs), presence)
    photo = xs[0].find(q(NS_UPDATE, "photo"))
    return None if photo is None else (photo.text or "")


def vcard_config(**extra):
    modules = {"vcard": dict({"max_size": "8K"}, **extra)}
    if HAVE_ROSTER:
        modules["roster"] = {}
    return {"modules": modules}


class VCardTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw",
                                "erin": "erin-pw"},
                         config=vcard_config())

    def set_card(self, client, card, to=None):
        return client.iq(card, to=to, itype="set")

    def get_card(self, client, to=None):
        return client.iq("<vCard xmlns='%s'/>" % NS_VCARD, to=to)

    def assertResult(self, answer):
        self.assertEqual(answer.get("type"), "result", ET.tostring(answer))

    def directed_presence(self, sender, receiver, extra=""):
        """`sender` sends available presence to `receiver`'s bare JID; returns
        what `receiver` got."""
        mark = receiver.mark()
        sender.send_raw("<presence to='%s@%s'>%s</presence>" % (receiver.user, DOMAIN, extra))
        return receiver.wait_stanza(
            lambda s: s.name == "presence" and str(s["from"]) == sender.jid, since=mark)

    def test_own_vcard_is_empty_before_one_is_stored(self):
        carol = self.slix("carol")
        answer = self.get_card(carol)
        self.assertResult(answer)
        self.assertEqual(card_of(answer), {})

    def test_store_and_read_own_vcard(self):
        alice = self.slix("alice")
        self.assertResult(self.set_card(alice, vcard_xml("Alice Liddell", "ally")))
        for to in (None, "alice@localhost"):  # no 'to', or her own bare JID
            answer = self.get_card(alice, to=to)
            self.assertResult(answer)
            self.assertEqual(card_of(answer), {"FN": "Alice Liddell", "NICKNAME": "ally"})

    def test_another_user_reads_the_vcard_from_the_server(self):
        alice = self.slix("alice", resource="home")
        bob = self.slix("bob")
        self.assertResult(self.set_card(alice, vcard_xml("Alice Liddell", desc="a & <b>")))
        mark = alice.mark()
        answer = self.get_card(bob, to="alice@localhost")
        self.assertResult(answer)
        self.assertEqual(answer.get("from"), "alice@localhost")
        self.assertEqual(card_of(answer), {"FN": "Alice Liddell", "DESC": "a & <b>"})
        time.sleep(T_SHORT / 2)
        self.assertEqual(alice.received_since(mark, ("iq",)), [],
                         "the vCard request was forwarded to the owner's client")

    def test_a_new_vcard_replaces_the_old_one(self):
        erin = self.slix("erin")
        self.assertResult(self.set_card(erin, vcard_xml("Erin One", "e1", desc="old")))
        self.assertResult(self.set_card(erin, vcard_xml("Erin Two")))
        self.assertEqual(card_of(self.get_card(erin)), {"FN": "Erin Two"})
        # An empty vCard removes it.
        self.assertResult(self.set_card(erin, "<vCard xmlns='%s'/>" % NS_VCARD))
        self.assertEqual(card_of(self.get_card(self.slix("bob"), to="erin@localhost")), {})

    def test_oversized_vcard_is_refused_and_the_old_one_kept(self):
        bob = self.slix("bob")
        self.assertResult(self.set_card(bob, vcard_xml("Bob Small")))
        answer = self.set_card(bob, vcard_xml("Bob Big", desc="x" * 9000))  # max_size 8K
        self.assertEqual(stanza_error(answer), ("modify", "not-acceptable"))
        text = answer.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}text")
        self.assertIsNotNone(text)
        self.assertIn("8192", text.text)
        self.assertEqual(card_of(self.get_card(bob)), {"FN": "Bob Small"})

    def test_nobody_sets_another_users_vcard(self):
        bob = self.slix("bob")
        alice = self.slix("alice")
        self.assertResult(self.set_card(bob, vcard_xml("Bob Real")))
        answer = self.set_card(alice, vcard_xml("Bob Fake"), to="bob@localhost")
        self.assertEqual(stanza_error(answer), ("auth", "forbidden"))
        answer = self.set_card(alice, vcard_xml("Server Fake"), to=DOMAIN)
        self.assertEqual(stanza_error(answer), ("auth", "forbidden"))
        self.assertEqual(card_of(self.get_card(alice, to="bob@localhost")), {"FN": "Bob Real"})

    def test_unknown_account_gets_service_unavailable(self):
        answer = self.get_card(self.slix("alice"), to="nobody@localhost")
        self.assertEqual(answer.get("from"), "nobody@localhost")
        self.assertEqual(stanza_error(answer), ("cancel", "service-unavailable"))

    def test_host_vcard_is_empty(self):
        answer = self.get_card(self.slix("alice"), to=DOMAIN)
        self.assertResult(answer)
        self.assertEqual(answer.get("from"), DOMAIN)
        self.assertEqual(card_of(answer), {})

    def test_disco_advertises_vcard_temp_on_the_host(self):
        """XEP-0054 §4.  (The feature is also registered for accounts with
        tern_add_account_feature; mod_disco does not list those yet.)"""
        answer = self.slix("alice").iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN)
        self.assertResult(answer)
        features = {f.get("var") for f in answer.iter(q(NS_DISCO_INFO, "feature"))}
        self.assertIn(NS_VCARD, features)

    def test_avatar_hash_in_directed_presence(self):
        """XEP-0153 §3.1, §4.1: the SHA-1 of the decoded image, replacing
        whatever the client put there; an empty <photo/> without an image."""
        alice = self.slix("alice", resource="cam")
        bob = self.slix("bob")
        self.assertResult(self.set_card(alice, vcard_xml("Alice", photo=IMAGE)))
        got = self.directed_presence(alice, bob)
        self.assertEqual(photo_of(got), IMAGE_SHA1)
        # A client's own (stale) update element is replaced, not duplicated.
        got = self.directed_presence(alice, bob, "<x xmlns='%s'><photo>%s</photo></x>" %
                                     (NS_UPDATE, "0" * 40))
        self.assertEqual(photo_of(got), IMAGE_SHA1)
        # The vCard loses its photo: the next presence says so.
        self.assertResult(self.set_card(alice, vcard_xml("Alice")))
        got = self.directed_presence(alice, bob, "<status>no face</status>")
        self.assertEqual(photo_of(got), "")
        self.assertEqual(got["status"], "no face")

    def test_clients_empty_photo_is_kept(self):
        """XEP-0398 §4: a presence in which the client put an empty <photo/>
        is left alone; an <x/> without <photo/> gets the hash."""
        alice = self.slix("alice", resource="shy")
        bob = self.slix("bob")
        self.assertResult(self.set_card(alice, vcard_xml("Alice", photo=IMAGE)))
        got = self.directed_presence(alice, bob, "<x xmlns='%s'><photo/></x>" % NS_UPDATE)
        self.assertEqual(photo_of(got), "")
        got = self.directed_presence(alice, bob, "<x xmlns='%s'/>" % NS_UPDATE)
        self.assertEqual(photo_of(got), IMAGE_SHA1)

    def test_user_without_vcard_advertises_an_empty_photo(self):
        carol = self.slix("carol", resource="x")
        bob = self.slix("bob")
        self.assertEqual(photo_of(self.directed_presence(carol, bob)), "")

    def test_unavailable_presence_is_left_alone(self):
        alice = self.slix("alice", resource="leaving")
        bob = self.slix("bob")
        mark = bob.mark()
        alice.send_raw("<presence to='bob@localhost' type='unavailable'/>")
        got = bob.wait_stanza(lambda s: s.name == "presence" and str(s["from"]) == alice.jid,
                              since=mark)
        self.assertEqual(got["type"], "unavailable")
        self.assertEqual(update_x(got), [])

    @unittest.skipUnless(HAVE_ROSTER, "mod_roster.so is not built: broadcast presence has no "
                         "subscribers to reach (directed presence is tested above)")
    def test_avatar_hash_in_broadcast_presence_to_a_subscriber(self):
        alice = self.slix("alice", resource="bcast")
        bob = self.slix("bob", resource="watcher")
        # RFC 6121 §3.1: bob subscribes to alice, alice approves.
        bob.send_raw("<presence to='alice@localhost' type='subscribe'/>")
        alice.wait_stanza(lambda s: s.name == "presence" and s["type"] == "subscribe")
        alice.send_raw("<presence to='bob@localhost' type='subscribed'/>")
        alice.sync()
        self.assertResult(self.set_card(alice, vcard_xml("Alice", photo=IMAGE)))
        mark = bob.mark()
        alice.send_raw("<presence><status>with hash</status></presence>")
        got = bob.wait_stanza(lambda s: s.name == "presence" and str(s["from"]) == alice.jid and
                              s["status"] == "with hash", since=mark)
        self.assertEqual(photo_of(got), IMAGE_SHA1)


class VCardPersistenceTests(ServerTestCase):
    server_kwargs = dict(users={"dave": "dave-pw", "frank": "frank-pw"}, config=vcard_config())

    def test_vcard_and_hash_survive_reconnect_and_restart(self):
        dave = self.slix("dave", resource="one")
        card = vcard_xml("Dave Persistent", "dp", photo=IMAGE)
        self.assertEqual(dave.iq(card, to=None, itype="set").get("type"), "result")
        dave.disconnect()

        dave = self.slix("dave", resource="two")
        answer = dave.iq("<vCard xmlns='%s'/>" % NS_VCARD, to=None)
        self.assertEqual(answer.get("type"), "result", ET.tostring(answer))
        self.assertEqual(card_of(answer),
                         {"FN": "Dave Persistent", "NICKNAME": "dp", "PHOTO": ""})
        dave.disconnect()

        self.server.stop()
        self.server._launch()
        frank = self.slix("frank")
        answer = frank.iq("<vCard xmlns='%s'/>" % NS_VCARD, to="dave@localhost")
        self.assertEqual(answer.get("type"), "result", ET.tostring(answer))
        card = answer.find(q(NS_VCARD, "vCard"))
        binval = card.find("%s/%s" % (q(NS_VCARD, "PHOTO"), q(NS_VCARD, "BINVAL")))
        self.assertEqual(base64.b64decode("".join(binval.text.split())), IMAGE)
        self.assertEqual(card.find(q(NS_VCARD, "FN")).text, "Dave Persistent")
        dave = self.slix("dave", resource="three")
        mark = frank.mark()
        dave.send_raw("<presence to='frank@localhost'/>")
        got = frank.wait_stanza(lambda s: s.name == "presence" and str(s["from"]) == dave.jid,
                                since=mark)
        self.assertEqual(photo_of(got), IMAGE_SHA1)
