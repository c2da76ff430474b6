"""mod_avatar_conversion: XEP-0398 User Avatar to vCard-Based Avatars
Conversion.

A XEP-0084 avatar published over PEP becomes the PHOTO of the user's
vcard-temp vCard (read by others at the bare JID, and as the XEP-0153 hash
in presence); a PHOTO stored by a vCard client is published to the avatar
data and metadata nodes and notified to contacts.  Disabling on one side
disables on the other, nothing is republished when nothing changed, a
conversion does not bounce back, and the account advertises
urn:xmpp:pep-vcard-conversion:0.

Contacts watching for notifications are raw streams with entity caps
(test_pep.PepClient, +notify); legacy vCard clients and presence watchers
are slixmpp clients.  bob shares presence with every avatar owner; carol is
a stranger.  Each test uses its own owner account so no test sees another's
avatar.  The tests that need subscriptions are skipped when mod_roster.so is
not built.
"""
import base64
import hashlib
import os
import struct
import unittest
import xml.etree.ElementTree as ET
import zlib

import test_pep as tp
from harness import (DOMAIN, NS_DISCO_INFO, T_SHORT, TERN_MODULES, ServerTestCase, q,
                     stanza_error)

NS_CONVERSION = "urn:xmpp:pep-vcard-conversion:0"
NS_META = "urn:xmpp:avatar:metadata"
NS_DATA = "urn:xmpp:avatar:data"
NS_VCARD = "vcard-temp"
NS_UPDATE = "vcard-temp:x:update"

HAVE_ROSTER = os.path.exists(os.path.join(TERN_MODULES, "mod_roster.so"))
NEEDS_ROSTER = "mod_roster.so is not built: no presence subscriptions"

OWNERS = ("alice", "dave", "erin", "frank", "gina", "hank", "ivan", "judy", "kate")


def png(width, height, seed):
    """A valid RGB PNG of width x height pixels (different bytes per seed)."""
    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data +
                struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff))
    rows = b"".join(b"\x00" + bytes((seed + 7 * x + 13 * y + c) % 256
                                    for x in range(width) for c in range(3))
                    for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def sha1(data):
    return hashlib.sha1(data).hexdigest()


def b64(data):
    return base64.b64encode(data).decode()


def vcard_xml(fn, photo=None, ptype="image/png"):
    """A vCard; the photo's base64 in 76-column lines, as RFC 2045 clients send it."""
    parts = ["<FN>%s</FN>" % fn]
    if photo is not None:
        text = b64(photo)
        lines = "\n".join(text[i:i + 76] for i in range(0, len(text), 76))
        type_el = "<TYPE>%s</TYPE>" % ptype if ptype else ""
        parts.append("<PHOTO>%s<BINVAL>\n%s\n</BINVAL></PHOTO>" % (type_el, lines))
    return "<vCard xmlns='%s'>%s</vCard>" % (NS_VCARD, "".join(parts))


def data_payload(image):
    return "<data xmlns='%s'>%s</data>" % (NS_DATA, b64(image))


def meta_payload(*infos):
    """<metadata/> with one <info/> per dict of attributes (none: disabled)."""
    body = "".join("<info %s/>" % " ".join("%s='%s'" % kv for kv in sorted(i.items()))
                   for i in infos)
    return "<metadata xmlns='%s'>%s</metadata>" % (NS_META, body)


def info_for(image, **extra):
    return dict({"id": sha1(image), "bytes": str(len(image)), "type": "image/png"}, **extra)


def photo_of_card(answer):
    """(TYPE, decoded BINVAL) of a vCard result, None without PHOTO."""
    card = answer.find(q(NS_VCARD, "vCard"))
    assert card is not None, ET.tostring(answer)
    photos = card.findall(q(NS_VCARD, "PHOTO"))
    if not photos:
        return None
    assert len(photos) == 1, ET.tostring(card)
    binval = photos[0].findtext(q(NS_VCARD, "BINVAL")) or ""
    return photos[0].findtext(q(NS_VCARD, "TYPE")), base64.b64decode("".join(binval.split()))


def fn_of_card(answer):
    return answer.find(q(NS_VCARD, "vCard")).findtext(q(NS_VCARD, "FN"))


def infos_of(payload):
    """[{attr: value}] of the <info/> children of a <metadata/> payload."""
    assert payload is not None and payload.tag == q(NS_META, "metadata"), payload
    return [dict(i.attrib) for i in payload.findall(q(NS_META, "info"))]


def update_photo(presence):
    """The text of the one vcard-temp:x:update <photo/> ('' when empty)."""
    xs = presence.xml.findall(q(NS_UPDATE, "x"))
    assert len(xs) == 1, str(presence)
    photo = xs[0].find(q(NS_UPDATE, "photo"))
    assert photo is not None, str(presence)
    return photo.text or ""


class ConversionTests(ServerTestCase):
    modules = {"pep": {}, "vcard": {"max_size": "32K"}, "avatar_conversion": {}}
    if HAVE_ROSTER:
        modules["roster"] = {}
    server_kwargs = dict(users={u: u + "-pw" for u in OWNERS + ("bob", "carol")},
                         config={"modules": modules})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if HAVE_ROSTER:
            setup = tp.Setup(cls.server)
            try:
                bob = tp.PepClient(setup, "bob", "setup").online(caps=False)
                for owner in OWNERS:
                    tp.subscribe_both(tp.PepClient(setup, owner, "setup").online(caps=False), bob)
            finally:
                setup.end()

    # ---- helpers --------------------------------------------------------

    def pep(self, user, resource, notify=(NS_META,)):
        """A raw client with caps asking for `notify` events."""
        return tp.PepClient(self, user, resource, notify=notify).online()

    def get_card(self, client, to):
        answer = client.iq("<vCard xmlns='%s'/>" % NS_VCARD, to=to)
        self.assertEqual(answer.get("type"), "result", ET.tostring(answer))
        return answer

    def set_card(self, client, card):
        answer = client.iq(card, to=None, itype="set")
        self.assertEqual(answer.get("type"), "result", ET.tostring(answer))

    def publish_avatar(self, owner, image, **info_extra):
        """XEP-0084 §4.1-4.2: the data, then the metadata."""
        owner.ok(tp.publish_xml(NS_DATA, data_payload(image), item_id=sha1(image)))
        owner.ok(tp.publish_xml(NS_META, meta_payload(info_for(image, **info_extra)),
                                item_id=sha1(image)))

    def events_from(self, client, owner, node=None, within=T_SHORT):
        """The live (not XEP-0203 delayed "last item") event messages of
        `node` (None: any) from `owner`'s account received within `within`;
        those from other accounts are dropped."""
        return [m for m in client.events(node, within)
                if m.get("from") == owner + "@" + DOMAIN and
                m.find(q(tp.NS_DELAY, "delay")) is None]

    def meta_events(self, client, owner, within=T_SHORT):
        """[(item id, [info attrs])] of `owner`'s metadata events received within `within`."""
        out = []
        for msg in self.events_from(client, owner, NS_META, within):
            _, items, _ = tp.event_items(msg)
            self.assertEqual(len(items), 1, ET.tostring(msg))
            out.append((items[0][0], infos_of(items[0][1])))
        return out

    def wait_meta_event(self, client, owner):
        msg = client.wait(lambda e: e.tag == q(tp.NS_CLIENT, "message") and
                          e.get("from") == owner + "@" + DOMAIN and
                          e.find(q(tp.NS_DELAY, "delay")) is None and
                          tp.event_items(e) is not None and tp.event_items(e)[0] == NS_META)
        _, items, _ = tp.event_items(msg)
        self.assertEqual(len(items), 1)
        return items[0][0], infos_of(items[0][1])

    def newest(self, client, owner_bare, node):
        """(id, payload) of the newest item of a node, read by `client`."""
        got = tp.result_items(client.ok(tp.items_xml(node, max_items=1), to=owner_bare,
                                        type_="get"))
        self.assertEqual(len(got), 1, got)
        return got[0]

    def assertCardPhoto(self, reader, owner_bare, expected):
        self.assertEqual(photo_of_card(self.get_card(reader, owner_bare)), expected)

    # ---- discovery --------------------------------------------------------

    def test_account_advertises_conversion(self):
        """XEP-0398 §2: the feature on the account, to its owner and to others."""
        for who in ("alice", "carol"):
            answer = self.slix(who).iq("<query xmlns='%s'/>" % NS_DISCO_INFO,
                                       to="alice@" + DOMAIN)
            self.assertEqual(answer.get("type"), "result", ET.tostring(answer))
            feats = {f.get("var") for f in answer.iter(q(NS_DISCO_INFO, "feature"))}
            self.assertIn(NS_CONVERSION, feats)
            self.assertIn(NS_VCARD, feats)

    # ---- PEP -> vCard -------------------------------------------------------

    @unittest.skipUnless(HAVE_ROSTER, NEEDS_ROSTER)
    def test_pep_avatar_becomes_the_vcard_photo_and_presence_hash(self):
        """XEP-0398 §3.1: the image of the data item named by the metadata goes
        into the vCard (other fields kept); the XEP-0153 hash follows."""
        image = png(4, 3, seed=1)
        legacy = self.slix("alice", resource="legacy")
        self.set_card(legacy, vcard_xml("Alice Liddell"))
        bob = self.slix("bob", resource="watch")
        owner = self.pep("alice", "modern")
        self.publish_avatar(owner, image)
        for reader, to in ((bob, "alice@" + DOMAIN), (legacy, None), (legacy, "alice@" + DOMAIN)):
            answer = self.get_card(reader, to)
            self.assertEqual(photo_of_card(answer), ("image/png", image))
            self.assertEqual(fn_of_card(answer), "Alice Liddell")
        # The owner re-sends presence: her contact sees the image's SHA-1.
        mark = bob.mark()
        owner.raw.send("<presence><status>new face</status></presence>")
        got = bob.wait_stanza(lambda s: s.name == "presence" and str(s["from"]) == owner.jid and
                              s["status"] == "new face", since=mark)
        self.assertEqual(update_photo(got), sha1(image))

    def test_metadata_without_info_removes_the_photo(self):
        """XEP-0084 disable (empty <metadata/>, or <stop/>): no PHOTO, fields kept."""
        owner = self.pep("erin", "modern")
        legacy = self.slix("erin", resource="legacy")
        self.set_card(legacy, vcard_xml("Erin"))
        for n, disable in enumerate((meta_payload(), "<metadata xmlns='%s'><stop/></metadata>" %
                                     NS_META)):
            image = png(2, 2, seed=10 + n)
            self.publish_avatar(owner, image)
            self.assertCardPhoto(legacy, None, ("image/png", image))
            owner.ok(tp.publish_xml(NS_META, disable))
            answer = self.get_card(legacy, None)
            self.assertIsNone(photo_of_card(answer))
            self.assertEqual(fn_of_card(answer), "Erin")
        # And the hash in presence says "no image".
        watcher = self.slix("carol", resource="watch")
        mark = watcher.mark()
        legacy.send_raw("<presence to='carol@%s'/>" % DOMAIN)
        got = watcher.wait_stanza(lambda s: s.name == "presence" and str(s["from"]) == legacy.jid,
                                  since=mark)
        self.assertEqual(update_photo(got), "")

    def test_metadata_before_its_data_is_converted_when_the_data_arrives(self):
        owner = self.pep("hank", "modern")
        image = png(3, 3, seed=20)
        owner.ok(tp.publish_xml(NS_META, meta_payload(info_for(image)), item_id=sha1(image)))
        self.assertCardPhoto(owner, None, None)
        owner.ok(tp.publish_xml(NS_DATA, data_payload(image), item_id=sha1(image)))
        self.assertCardPhoto(owner, None, ("image/png", image))

    def test_unusable_avatars_leave_the_vcard_alone(self):
        """Data that does not hash to its id (XEP-0398 §3.1 SHOULD verify), an
        avatar only at a URL, and one on a whitelist node (private: never put
        into the public vCard) keep the previous PHOTO."""
        owner = self.pep("ivan", "modern")
        first = png(2, 2, seed=30)
        self.publish_avatar(owner, first)
        self.assertCardPhoto(owner, None, ("image/png", first))
        # Wrong hash.
        other, fake = png(2, 2, seed=31), png(2, 2, seed=32)
        owner.ok(tp.publish_xml(NS_DATA, data_payload(fake), item_id=sha1(other)))
        owner.ok(tp.publish_xml(NS_META, meta_payload(info_for(other)), item_id=sha1(other)))
        self.assertCardPhoto(owner, None, ("image/png", first))
        # Only at a URL.
        owner.ok(tp.publish_xml(NS_META, meta_payload(info_for(
            other, url="https://example.org/a.png")), item_id=sha1(other)))
        self.assertCardPhoto(owner, None, ("image/png", first))
        # Whitelist data node (XEP-0060 §4.5): stays private.
        owner.ok("<pubsub xmlns='%s'><configure node='%s'>%s</configure></pubsub>" % (
            tp.NS_OWNER, NS_DATA, tp.form(tp.NS_PUBSUB + "#node_config",
                                          {"pubsub#access_model": "whitelist"})))
        secret = png(2, 2, seed=33)
        self.publish_avatar(owner, secret)
        self.assertCardPhoto(self.slix("carol"), "ivan@" + DOMAIN, ("image/png", first))

    # ---- vCard -> PEP -------------------------------------------------------

    @unittest.skipUnless(HAVE_ROSTER, NEEDS_ROSTER)
    def test_vcard_photo_is_published_to_pep(self):
        """XEP-0398 §3.2: data item (id = SHA-1 of the bytes), then one metadata
        notification to the contact; new nodes get the presence access model."""
        image = png(5, 7, seed=40)
        bob = self.pep("bob", "dave-watch")
        own = self.pep("dave", "modern")
        legacy = self.slix("dave", resource="legacy")
        self.set_card(legacy, vcard_xml("Dave", image))
        for watcher in (bob, own):
            item_id, infos = self.wait_meta_event(watcher, "dave")
            self.assertEqual(item_id, sha1(image))
            self.assertEqual(infos, [{"id": sha1(image), "bytes": str(len(image)),
                                      "type": "image/png", "width": "5", "height": "7"}])
            self.assertEqual(self.meta_events(watcher, "dave"), [],
                             "a second metadata notification")
        answer = bob.ok(tp.items_xml(NS_DATA, ids=[sha1(image)]), to="dave@" + DOMAIN,
                        type_="get")
        got = tp.result_items(answer)
        self.assertEqual([i for i, _ in got], [sha1(image)])
        self.assertEqual(got[0][1].tag, q(NS_DATA, "data"))
        self.assertEqual(base64.b64decode(got[0][1].text), image)
        # Default access model: a stranger may not read the avatar nodes.
        carol = self.pep("carol", "dave-stranger")
        for node in (NS_DATA, NS_META):
            denied = carol.iq(tp.items_xml(node), to="dave@" + DOMAIN)
            self.assertEqual(stanza_error(denied), ("auth", "not-authorized"))
        # The vCard itself is unchanged (no echo rewrote it).
        self.assertEqual(fn_of_card(self.get_card(legacy, None)), "Dave")
        self.assertCardPhoto(legacy, None, ("image/png", image))

    @unittest.skipUnless(HAVE_ROSTER, NEEDS_ROSTER)
    def test_vcard_without_photo_disables_the_pep_avatar(self):
        """A vCard without PHOTO publishes an empty <metadata/> once; a
        further photo-less vCard publishes nothing."""
        image = png(2, 3, seed=50)
        bob = self.pep("bob", "frank-watch")
        legacy = self.slix("frank", resource="legacy")
        self.set_card(legacy, vcard_xml("Frank", image))
        self.assertEqual(self.wait_meta_event(bob, "frank")[0], sha1(image))
        self.set_card(legacy, vcard_xml("Frank"))
        _, infos = self.wait_meta_event(bob, "frank")
        self.assertEqual(infos, [])
        _, payload = self.newest(bob, "frank@" + DOMAIN, NS_META)
        self.assertEqual(infos_of(payload), [])
        self.set_card(legacy, vcard_xml("Frank F."))
        self.set_card(legacy, "<vCard xmlns='%s'/>" % NS_VCARD)  # removed altogether
        self.assertEqual(self.meta_events(bob, "frank"), [])

    def test_existing_nodes_keep_their_configuration(self):
        """A vCard photo published into avatar nodes the user made open leaves
        them open (a stranger reads them)."""
        owner = self.pep("judy", "modern")
        first = png(2, 2, seed=60)
        opts = {"pubsub#access_model": "open"}
        owner.ok(tp.publish_xml(NS_DATA, data_payload(first), item_id=sha1(first), options=opts))
        owner.ok(tp.publish_xml(NS_META, meta_payload(info_for(first)), item_id=sha1(first),
                                options=opts))
        image = png(3, 2, seed=61)
        self.set_card(self.slix("judy", resource="legacy"), vcard_xml("Judy", image))
        carol = self.pep("carol", "judy-stranger")
        item_id, payload = self.newest(carol, "judy@" + DOMAIN, NS_META)
        self.assertEqual(item_id, sha1(image))
        self.assertEqual(infos_of(payload)[0]["id"], sha1(image))
        got = tp.result_items(carol.ok(tp.items_xml(NS_DATA, ids=[sha1(image)]),
                                       to="judy@" + DOMAIN, type_="get"))
        self.assertEqual(base64.b64decode(got[0][1].text), image)
        conf = owner.ok("<pubsub xmlns='%s'><configure node='%s'/></pubsub>" % (tp.NS_OWNER,
                                                                               NS_DATA),
                        type_="get")
        access = [f.findtext(q(tp.NS_DATA, "value")) for f in conf.iter(q(tp.NS_DATA, "field"))
                  if f.get("var") == "pubsub#access_model"]
        self.assertEqual(access, ["open"])

    # ---- no loops, no duplicates ----------------------------------------------

    @unittest.skipUnless(HAVE_ROSTER, NEEDS_ROSTER)
    def test_one_notification_per_change(self):
        """Each change gives exactly one metadata notification (the owner's
        own publish is not echoed back through the vCard), and a change that
        changes nothing publishes nothing."""
        bob = self.pep("bob", "gina-watch", notify=(NS_META, NS_DATA))
        owner = self.pep("gina", "modern")
        legacy = self.slix("gina", resource="legacy")
        # A PEP client publishes: one data, one metadata event, nothing more.
        image = png(2, 2, seed=70)
        self.publish_avatar(owner, image)
        self.assertEqual(self.meta_events(bob, "gina", within=T_SHORT * 1.5),
                         [(sha1(image), [info_for(image)])])
        self.assertEqual(len(self.events_from(bob, "gina", NS_DATA, within=0.1)), 1)
        self.assertCardPhoto(legacy, None, ("image/png", image))
        # The legacy client stores a vCard with the same photo (say a new FN):
        # nothing to publish.
        self.set_card(legacy, vcard_xml("Gina", image))
        self.assertEqual(self.events_from(bob, "gina"), [])
        # A new photo from the legacy client: one data, one metadata event.
        second = png(3, 3, seed=71)
        self.set_card(legacy, vcard_xml("Gina", second))
        events = self.meta_events(bob, "gina", within=T_SHORT * 1.5)
        self.assertEqual([i for i, _ in events], [sha1(second)])
        self.assertEqual(len(self.events_from(bob, "gina", NS_DATA, within=0.1)), 1)
        self.assertEqual(fn_of_card(self.get_card(legacy, None)), "Gina")
        # The PEP client sets the first image back: its publish only.
        self.publish_avatar(owner, image)
        self.assertEqual([i for i, _ in self.meta_events(bob, "gina", within=T_SHORT * 1.5)],
                         [sha1(image)])
        self.assertCardPhoto(legacy, None, ("image/png", image))

    def test_vcard_photo_without_type_is_sniffed(self):
        """A PHOTO without TYPE: the type comes from the image's signature."""
        owner = self.pep("kate", "modern")
        image = png(1, 1, seed=80)
        self.set_card(self.slix("kate", resource="legacy"), vcard_xml("Kate", image, ptype=None))
        item_id, payload = self.newest(owner, "kate@" + DOMAIN, NS_META)
        self.assertEqual(infos_of(payload), [{"id": sha1(image), "bytes": str(len(image)),
                                              "type": "image/png", "width": "1",
                                              "height": "1"}])


class RestrictedConversionTests(ServerTestCase):
    """pep_to_vcard: open (only open avatars become public), vcard_to_pep: false."""
    modules = {"pep": {}, "vcard": {},
               "avatar_conversion": {"pep_to_vcard": "open", "vcard_to_pep": False}}
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"},
                         config={"modules": modules})

    def test_only_open_avatars_reach_the_vcard(self):
        owner = tp.PepClient(self, "alice", "modern", notify=[NS_META]).online()
        private = png(2, 2, seed=90)
        owner.ok(tp.publish_xml(NS_DATA, data_payload(private), item_id=sha1(private)))
        owner.ok(tp.publish_xml(NS_META, meta_payload(info_for(private)), item_id=sha1(private)))
        bob = self.slix("bob")
        answer = bob.iq("<vCard xmlns='%s'/>" % NS_VCARD, to="alice@" + DOMAIN)
        self.assertIsNone(photo_of_card(answer))
        public = png(2, 2, seed=91)
        opts = {"pubsub#access_model": "open"}
        owner.ok("<pubsub xmlns='%s'><configure node='%s'>%s</configure></pubsub>" % (
            tp.NS_OWNER, NS_DATA, tp.form(tp.NS_PUBSUB + "#node_config", opts)))
        owner.ok(tp.publish_xml(NS_DATA, data_payload(public), item_id=sha1(public)))
        owner.ok(tp.publish_xml(NS_META, meta_payload(info_for(public)), item_id=sha1(public)))
        answer = bob.iq("<vCard xmlns='%s'/>" % NS_VCARD, to="alice@" + DOMAIN)
        self.assertEqual(photo_of_card(answer), ("image/png", public))

    def test_vcard_photo_is_not_published(self):
        owner = tp.PepClient(self, "bob", "modern", notify=[NS_META]).online()
        legacy = self.slix("bob", resource="legacy")
        answer = legacy.iq(vcard_xml("Bob", png(2, 2, seed=92)), to=None, itype="set")
        self.assertEqual(answer.get("type"), "result")
        self.assertEqual(owner.events(NS_META, within=T_SHORT), [])
        answer = owner.iq(tp.items_xml(NS_META), to="bob@" + DOMAIN)
        self.assertEqual(stanza_error(answer), ("cancel", "item-not-found"))


class BadOptionTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw"},
                         config={"modules": {"pep": {}, "vcard": {}}})

    def test_unknown_pep_to_vcard_value_is_refused(self):
        good = self.server.config
        try:
            from harness import deep_merge
            self.server.write_config(deep_merge(
                good, {"modules": {"avatar_conversion": {"pep_to_vcard": "everyone"}}}))
            r = self.server.ternctl("reload")
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("avatar_conversion", r.stderr)
            self.assertIn("pep_to_vcard", self.server.log_text())
        finally:
            self.server.write_config(good)
            self.server.ternctl_ok("reload")
        answer = self.slix("alice").iq("<query xmlns='%s'/>" % NS_DISCO_INFO,
                                       to="alice@" + DOMAIN)
        feats = {f.get("var") for f in answer.iter(q(NS_DISCO_INFO, "feature"))}
        self.assertNotIn(NS_CONVERSION, feats)


if __name__ == "__main__":
    unittest.main()
