"""mod_bookmarks: XEP-0402 PEP Native Bookmarks kept in step with XEP-0048
(private XML storage through mod_private, and the PEP node
storage:bookmarks): a client of either kind sees what the other stored, only
changed rooms are notified (XEP-0402 §5.3.2), URL bookmarks and XEP-0402
<extensions/> survive the round trip.

Raw clients (test_pep.PepClient) throughout; each test uses its own account
so that no test sees another's bookmarks.  The private-XML cases are skipped
when mod_private.so is not built.
"""
import os
import unittest
import xml.etree.ElementTree as ET

import test_pep as tp
from harness import DOMAIN, NS_DISCO_INFO, TERN_MODULES, ServerTestCase, q, stanza_error

NS_B2 = "urn:xmpp:bookmarks:1"
NS_LEGACY = "storage:bookmarks"
NS_PRIVATE = "jabber:iq:private"
HAVE_PRIVATE = os.path.exists(os.path.join(TERN_MODULES, "mod_private.so"))
NEEDS_PRIVATE = "mod_private.so is not built"

# What Conversations and other XEP-0402 clients send (XEP-0402 §3.1).
B2_OPTIONS = {"pubsub#persist_items": "true", "pubsub#max_items": "max",
              "pubsub#send_last_published_item": "never", "pubsub#access_model": "whitelist"}


def conference_b2(name, autojoin, nick=None, extra=""):
    nick_el = "<nick>%s</nick>" % nick if nick else ""
    return "<conference xmlns='%s' name='%s' autojoin='%s'>%s%s</conference>" % (
        NS_B2, name, "true" if autojoin else "false", nick_el, extra)


def legacy_storage(*rooms, urls=()):
    """<storage xmlns='storage:bookmarks'/> with (jid, name, autojoin, nick) rooms."""
    out = ["<storage xmlns='%s'>" % NS_LEGACY]
    for jid, name, autojoin, nick in rooms:
        out.append("<conference jid='%s' name='%s' autojoin='%s'>%s</conference>" % (
            jid, name, "true" if autojoin else "false", "<nick>%s</nick>" % nick if nick else ""))
    for name, url in urls:
        out.append("<url name='%s' url='%s'/>" % (name, url))
    return "".join(out) + "</storage>"


def legacy_rooms(storage):
    """{jid: (name, autojoin, nick)} of a legacy <storage/> element."""
    out = {}
    for c in storage.findall(q(NS_LEGACY, "conference")):
        out[c.get("jid")] = (c.get("name"), c.get("autojoin") in ("true", "1"),
                             c.findtext(q(NS_LEGACY, "nick")))
    return out


def b2_rooms(answer):
    """{id: (name, autojoin, nick)} of an items result of urn:xmpp:bookmarks:1."""
    out = {}
    for item_id, conf in tp.result_items(answer):
        out[item_id] = (conf.get("name"), conf.get("autojoin") in ("true", "1"),
                        conf.findtext(q(NS_B2, "nick")))
    return out


class BookmarksTests(ServerTestCase):
    modules = {"pep": {}, "bookmarks": {}}
    if HAVE_PRIVATE:
        modules["private"] = {}
    server_kwargs = dict(users={u: u + "-pw" for u in ("alice", "bob", "carol", "dave", "erin",
                                                       "frank")},
                         config={"modules": modules})

    def client(self, user, resource, notify=()):
        return tp.PepClient(self, user, resource, notify=notify).online()

    def private_get(self, c):
        answer = c.ok("<query xmlns='%s'><storage xmlns='%s'/></query>" % (NS_PRIVATE, NS_LEGACY),
                      type_="get")
        storage = answer.find("%s/%s" % (q(NS_PRIVATE, "query"), q(NS_LEGACY, "storage")))
        self.assertIsNotNone(storage, ET.tostring(answer))
        return storage

    def private_set(self, c, storage_xml):
        c.ok("<query xmlns='%s'>%s</query>" % (NS_PRIVATE, storage_xml))

    def b2_items(self, c):
        return b2_rooms(c.ok(tp.items_xml(NS_B2), type_="get"))

    def legacy_pep(self, c):
        got = tp.result_items(c.ok(tp.items_xml(NS_LEGACY), type_="get"))
        self.assertEqual([i for i, _ in got], ["current"])
        return got[0][1]

    def test_account_advertises_compat(self):
        c = self.client("frank", "disco")
        answer = c.ok("<query xmlns='%s'/>" % NS_DISCO_INFO, to="frank@" + DOMAIN, type_="get")
        feats = {f.get("var") for f in answer.iter(q(NS_DISCO_INFO, "feature"))}
        self.assertIn(NS_B2 + "#compat", feats)
        self.assertIn(NS_B2 + "#compat-pep", feats)

    @unittest.skipUnless(HAVE_PRIVATE, NEEDS_PRIVATE)
    def test_xep0048_private_client_sees_xep0402_bookmarks(self):
        new = self.client("alice", "b2")
        old = self.client("alice", "legacy")
        new.ok(tp.publish_xml(NS_B2, conference_b2("The Play", True, "JC"),
                              "theplay@conference.example.org", B2_OPTIONS))
        new.ok(tp.publish_xml(NS_B2, conference_b2("Orchard", False),
                              "orchard@conference.example.org", B2_OPTIONS))
        want = {"theplay@conference.example.org": ("The Play", True, "JC"),
                "orchard@conference.example.org": ("Orchard", False, None)}
        self.assertEqual(legacy_rooms(self.private_get(old)), want)
        self.assertEqual(legacy_rooms(self.legacy_pep(old)), want)  # XEP-0048 in PEP too
        new.ok("<pubsub xmlns='%s'><retract node='%s' notify='true'><item id='%s'/></retract>"
               "</pubsub>" % (tp.NS_PUBSUB, NS_B2, "orchard@conference.example.org"))
        self.assertEqual(legacy_rooms(self.private_get(old)),
                         {"theplay@conference.example.org": ("The Play", True, "JC")})

    @unittest.skipUnless(HAVE_PRIVATE, NEEDS_PRIVATE)
    def test_xep0402_client_sees_private_xml_bookmarks_and_only_changes(self):
        watcher = self.client("bob", "b2", notify=[NS_B2])
        old = self.client("bob", "legacy")
        self.private_set(old, legacy_storage(("a@muc.example.org", "A", True, "bobby"),
                                             ("b@muc.example.org", "B", False, None),
                                             ("c@muc.example.org", "C", False, None)))
        self.assertEqual(self.b2_items(watcher), {"a@muc.example.org": ("A", True, "bobby"),
                                                  "b@muc.example.org": ("B", False, None),
                                                  "c@muc.example.org": ("C", False, None)})
        first = watcher.events(NS_B2)
        self.assertEqual(sorted(tp.event_items(m)[1][0][0] for m in first),
                         ["a@muc.example.org", "b@muc.example.org", "c@muc.example.org"])
        # a unchanged, b renamed, c removed: one publish, one retraction.
        self.private_set(old, legacy_storage(("a@muc.example.org", "A", True, "bobby"),
                                             ("b@muc.example.org", "Bee", False, None)))
        events = [tp.event_items(m) for m in watcher.events(NS_B2)]
        published = [i[0] for _, items, _ in events for i in items]
        retracted = [r for _, _, rs in events for r in rs]
        self.assertEqual((published, retracted), (["b@muc.example.org"], ["c@muc.example.org"]))
        self.assertEqual(self.b2_items(watcher), {"a@muc.example.org": ("A", True, "bobby"),
                                                  "b@muc.example.org": ("Bee", False, None)})
        # The XEP-0048 PEP view follows the private one.
        self.assertEqual(legacy_rooms(self.legacy_pep(old)),
                         {"a@muc.example.org": ("A", True, "bobby"),
                          "b@muc.example.org": ("Bee", False, None)})

    @unittest.skipUnless(HAVE_PRIVATE, NEEDS_PRIVATE)
    def test_url_bookmarks_and_extensions_survive(self):
        """XEP-0402 has no URLs and XEP-0048 no extensions: neither is lost."""
        c = self.client("carol", "both")
        self.private_set(c, legacy_storage(("r@muc.example.org", "R", False, None),
                                           urls=[("Site", "https://example.org/")]))
        c.ok(tp.publish_xml(NS_B2, conference_b2(
            "S", True, None, "<extensions><x xmlns='urn:example:client'>keep</x></extensions>"),
            "s@muc.example.org", B2_OPTIONS))
        storage = self.private_get(c)
        self.assertEqual(set(legacy_rooms(storage)), {"r@muc.example.org", "s@muc.example.org"})
        self.assertEqual([u.get("url") for u in storage.findall(q(NS_LEGACY, "url"))],
                         ["https://example.org/"])
        # A legacy client renames s: the extensions stay on the XEP-0402 item.
        self.private_set(c, legacy_storage(("r@muc.example.org", "R", False, None),
                                           ("s@muc.example.org", "S2", True, None),
                                           urls=[("Site", "https://example.org/")]))
        got = dict(tp.result_items(c.ok(tp.items_xml(NS_B2, ids=["s@muc.example.org"]),
                                        type_="get")))
        conf = got["s@muc.example.org"]
        self.assertEqual(conf.get("name"), "S2")
        self.assertEqual(conf.findtext("%s/%s" % (q(NS_B2, "extensions"),
                                                  q("urn:example:client", "x"))), "keep")

    def test_xep0048_pep_node_converts_both_ways(self):
        """XEP-0048 stored in PEP (storage:bookmarks, item 'current')."""
        c = self.client("dave", "pep", notify=[NS_B2])
        c.ok(tp.publish_xml(NS_LEGACY, legacy_storage(("p@muc.example.org", "P", True, "d")),
                            "current", {"pubsub#persist_items": "true",
                                        "pubsub#access_model": "whitelist"}))
        self.assertEqual(self.b2_items(c), {"p@muc.example.org": ("P", True, "d")})
        node, items, _ = tp.event_items(c.wait_event(NS_B2))
        self.assertEqual(items[0][0], "p@muc.example.org")
        if HAVE_PRIVATE:
            self.assertEqual(legacy_rooms(self.private_get(c)),
                             {"p@muc.example.org": ("P", True, "d")})
        c.ok(tp.publish_xml(NS_B2, conference_b2("Q", False), "q@muc.example.org", B2_OPTIONS))
        self.assertEqual(legacy_rooms(self.legacy_pep(c)),
                         {"p@muc.example.org": ("P", True, "d"),
                          "q@muc.example.org": ("Q", False, None)})

    def test_bookmarks_stay_private(self):
        """XEP-0223 whitelist: another account reads none of the three views."""
        owner = self.client("erin", "own")
        owner.ok(tp.publish_xml(NS_B2, conference_b2("E", True), "e@muc.example.org",
                                B2_OPTIONS))
        stranger = self.client("frank", "peek")
        for node in (NS_B2, NS_LEGACY):
            denied = stranger.iq(tp.items_xml(node), to="erin@" + DOMAIN)
            self.assertEqual(stanza_error(denied), ("cancel", "not-allowed"), node)
