"""mod_pep: Personal Eventing Protocol (XEP-0163) on a per-account pubsub
service (XEP-0060 subset), with notifications filtered by entity
capabilities (XEP-0115) and the caps cache, publish-options and the access
models presence / open / whitelist (XEP-0223, OMEMO XEP-0384), User Avatar
(XEP-0084), User Nickname (XEP-0172) and vCard4 (XEP-0292) nodes.

Most clients here are raw streams (PepClient) that announce caps whose
'ver' they computed, answer the server's disco#info query for it and count
those queries.  alice and bob share presence (mutual subscription made with
raw subscribe/subscribed through mod_roster); carol is a stranger.  The
tests that need subscriptions are skipped when mod_roster.so is not built.
"""
import base64
import hashlib
import os
import secrets
import time
import unittest
import xml.etree.ElementTree as ET

from harness import (DOMAIN, NS_CLIENT, NS_DISCO_INFO, NS_DISCO_ITEMS, T_REPLY, T_SHORT,
                     TERN_MODULES, RawClient, ServerTestCase, SlixClient, q, stanza_error)

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_OWNER = NS_PUBSUB + "#owner"
NS_EVENT = NS_PUBSUB + "#event"
NS_ERRORS = NS_PUBSUB + "#errors"
NS_CAPS = "http://jabber.org/protocol/caps"
NS_DATA = "jabber:x:data"
NS_DELAY = "urn:xmpp:delay"
NS_ROSTER = "jabber:iq:roster"
NS_AVATAR_META = "urn:xmpp:avatar:metadata"
NS_AVATAR_DATA = "urn:xmpp:avatar:data"
NS_NICK = "http://jabber.org/protocol/nick"
NS_VCARD4 = "urn:ietf:params:xml:ns:vcard-4.0"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
OMEMO_DEVICES = "eu.siacs.conversations.axolotl.devicelist"
OMEMO_BUNDLE = "eu.siacs.conversations.axolotl.bundles:31415"

HAVE_ROSTER = os.path.exists(os.path.join(TERN_MODULES, "mod_roster.so"))
NEEDS_ROSTER = "mod_roster.so is not built: no presence subscriptions"

ALICE, BOB, CAROL = "alice@" + DOMAIN, "bob@" + DOMAIN, "carol@" + DOMAIN


def caps_ver(identities, features, forms=()):
    """XEP-0115 §5.1 verification string, SHA-1, base64.  identities:
    (category, type, lang, name); forms: {var: [values]} with FORM_TYPE."""
    s = "".join(sorted("%s/%s/%s/%s<" % i for i in identities))
    s += "".join(f + "<" for f in sorted(set(features)))
    for f in sorted(forms, key=lambda f: f["FORM_TYPE"][0]):
        s += f["FORM_TYPE"][0] + "<"
        for var in sorted(k for k in f if k != "FORM_TYPE"):
            s += var + "<" + "".join(v + "<" for v in sorted(f[var]))
    return base64.b64encode(hashlib.sha1(s.encode()).digest()).decode()


def test_caps_ver_matches_xep0115_example():
    """Our reference implementation against the example of XEP-0115 §5.3."""
    assert caps_ver([("client", "pc", "en", "Psi 0.11"), ("client", "pc", "el", "\u03a8 0.11")],
                    ["http://jabber.org/protocol/caps", NS_DISCO_INFO, NS_DISCO_ITEMS,
                     "http://jabber.org/protocol/muc"],
                    [{"FORM_TYPE": ["urn:xmpp:dataforms:softwareinfo"],
                      "ip_version": ["ipv4", "ipv6"], "os": ["Mac"], "os_version": ["10.5.1"],
                      "software": ["Psi"], "software_version": ["0.11"]}]) == \
        "q07IKJEyjvHSyhy//CH0CxmKi8w="


def form(form_type, fields):
    """A submitted data form (XEP-0004) as XML text."""
    out = ["<x xmlns='%s' type='submit'>" % NS_DATA,
           "<field var='FORM_TYPE' type='hidden'><value>%s</value></field>" % form_type]
    for var, value in fields.items():
        out.append("<field var='%s'><value>%s</value></field>" % (var, value))
    return "".join(out) + "</x>"


def publish_xml(node, payload, item_id=None, options=None):
    item = "<item id='%s'>" % item_id if item_id else "<item>"
    opts = ""
    if options:
        opts = "<publish-options>%s</publish-options>" % form(NS_PUBSUB + "#publish-options",
                                                              options)
    return ("<pubsub xmlns='%s'><publish node='%s'>%s%s</item></publish>%s</pubsub>" %
            (NS_PUBSUB, node, item, payload, opts))


def items_xml(node, max_items=None, ids=()):
    attr = " max_items='%d'" % max_items if max_items else ""
    inner = "".join("<item id='%s'/>" % i for i in ids)
    return "<pubsub xmlns='%s'><items node='%s'%s>%s</items></pubsub>" % (NS_PUBSUB, node, attr,
                                                                           inner)


def pubsub_error(el):
    """The pubsub#errors condition of an error stanza, or None."""
    err = el.find(q(NS_CLIENT, "error"))
    if err is None:
        return None
    for child in err:
        if child.tag.startswith("{%s}" % NS_ERRORS):
            return child.tag.split("}", 1)[1]
    return None


def event_items(msg):
    """(node, [(item id, payload element or None)], [retracted ids]) of a
    pubsub#event message, or None."""
    ev = msg.find(q(NS_EVENT, "event"))
    items = ev.find(q(NS_EVENT, "items")) if ev is not None else None
    if items is None:
        return None
    got = [(i.get("id"), next(iter(i), None)) for i in items.findall(q(NS_EVENT, "item"))]
    retracted = [r.get("id") for r in items.findall(q(NS_EVENT, "retract"))]
    return items.get("node"), got, retracted


def result_items(answer):
    """[(id, payload element)] of an items result."""
    items = answer.find("%s/%s" % (q(NS_PUBSUB, "pubsub"), q(NS_PUBSUB, "items")))
    assert items is not None, ET.tostring(answer)
    return [(i.get("id"), next(iter(i), None)) for i in items.findall(q(NS_PUBSUB, "item"))]


class PepClient:
    """A raw client that keeps what it receives, answers the server's caps
    queries (disco#info to NODE#VER) and counts them.

    notify: node names it wants notifications for (NODE+notify features).
    lie: answer caps queries with other features than the 'ver' claims.
    """

    CAPS_NODE = "https://tern.invalid/test-client"

    def __init__(self, test, user, resource, notify=(), lie=False, extra=(), identities=None,
                 forms=()):
        self.test = test
        self.raw = test.raw_login(user, resource, presence=False)
        self.jid = self.raw.jid
        self.bare = self.jid.split("/")[0]
        self.identities = identities or [("client", "pc", "", "tern test")]
        self.forms = list(forms)
        self.features = sorted({NS_DISCO_INFO, NS_CAPS} | set(extra) |
                               {n + "+notify" for n in notify})
        self.ver = caps_ver(self.identities, self.features, self.forms)
        self.lie = lie
        self.inbox = []
        self.caps_queries = []

    # ---- receiving ------------------------------------------------------

    def _handle(self, el):
        """Answer what a client must answer; True when `el` was consumed."""
        if el.tag != q(NS_CLIENT, "iq") or el.get("type") not in ("get", "set"):
            return False
        query = el.find(q(NS_DISCO_INFO, "query"))
        if el.get("type") == "get" and query is not None and query.get("node"):
            self.caps_queries.append(query.get("node"))
            feats = self.features + (["urn:xmpp:lie"] if self.lie else [])
            body = "".join("<identity category='%s' type='%s'%s name='%s'/>" % (
                c, t, " xml:lang='%s'" % lang if lang else "", n)
                for c, t, lang, n in self.identities)
            body += "".join("<feature var='%s'/>" % f for f in feats)
            for f in self.forms:  # XEP-0128, fields in an order of their own
                body += "<x xmlns='%s' type='result'>" % NS_DATA
                for var in reversed(sorted(f)):
                    body += "<field var='%s'%s>%s</field>" % (
                        var, " type='hidden'" if var == "FORM_TYPE" else "",
                        "".join("<value>%s</value>" % v for v in reversed(f[var])))
                body += "</x>"
            self.raw.send("<iq type='result' id='%s' to='%s'><query xmlns='%s' node='%s'>%s"
                          "</query></iq>" % (el.get("id"), el.get("from"), NS_DISCO_INFO,
                                             query.get("node"), body))
            return True
        if el.get("type") == "set" and el.find(q(NS_ROSTER, "query")) is not None:
            self.raw.send("<iq type='result' id='%s'/>" % el.get("id"))  # roster push
            return True
        return False

    def _read(self, timeout):
        try:
            el = self.raw.read_element(timeout=max(timeout, 0.01))
        except TimeoutError:
            return None
        if not self._handle(el):
            self.inbox.append(el)
        return el

    def pump(self, within=T_SHORT):
        """Read for `within` seconds; returns the new (unconsumed) elements."""
        start = len(self.inbox)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self._read(deadline - time.monotonic())
        return self.inbox[start:]

    def wait(self, pred, timeout=T_REPLY):
        """The first kept element matching pred (removed from the inbox)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, el in enumerate(self.inbox):
                if pred(el):
                    return self.inbox.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: nothing matching within %ss; inbox: %s" % (
                    self.jid, timeout, [ET.tostring(e)[:300] for e in self.inbox]))
            self._read(left)

    def events(self, node=None, within=T_SHORT):
        """The pubsub event messages received within `within` seconds."""
        self.pump(within)
        out = []
        for el in list(self.inbox):
            ev = event_items(el) if el.tag == q(NS_CLIENT, "message") else None
            if ev is not None and (node is None or ev[0] == node):
                out.append(el)
                self.inbox.remove(el)
        return out

    def wait_event(self, node, timeout=T_REPLY):
        return self.wait(lambda e: e.tag == q(NS_CLIENT, "message") and
                         event_items(e) is not None and event_items(e)[0] == node, timeout)

    # ---- sending --------------------------------------------------------

    def iq(self, payload, to=None, type_="get"):
        id_ = "pep" + secrets.token_hex(4)
        to_attr = " to='%s'" % to if to else ""
        self.raw.send("<iq type='%s' id='%s'%s>%s</iq>" % (type_, id_, to_attr, payload))
        return self.wait(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == id_)

    def ok(self, payload, to=None, type_="set"):
        answer = self.iq(payload, to, type_)
        self.test.assertEqual(answer.get("type"), "result",
                              "%s: %s" % (stanza_error(answer), ET.tostring(answer)[:400]))
        return answer

    def sync(self):
        """A ping round trip: the server has handled all we sent before."""
        self.ok("<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN, type_="get")

    def online(self, caps=True, priority=None):
        """Available presence (with caps), then two round trips so that the
        server asked for our caps, got the answer and acted on it."""
        c = ("<c xmlns='%s' hash='sha-1' node='%s' ver='%s'/>" % (NS_CAPS, self.CAPS_NODE,
                                                                 self.ver)) if caps else ""
        p = "<priority>%d</priority>" % priority if priority is not None else ""
        self.raw.send("<presence>%s%s</presence>" % (p, c))
        self.sync()
        self.sync()
        return self

    def publish(self, node, payload, item_id=None, options=None):
        return self.iq(publish_xml(node, payload, item_id, options), type_="set")


def subscribe_both(a, b):
    """Mutual presence subscription between two online PepClients (RFC 6121 §3)."""
    for x, y in ((a, b), (b, a)):
        x.raw.send("<presence to='%s' type='subscribe'/>" % y.bare)
        y.wait(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("type") == "subscribe" and
               e.get("from", "").startswith(x.bare))
        y.raw.send("<presence to='%s' type='subscribed'/>" % x.bare)
        x.sync()
        y.sync()
    roster = a.ok("<query xmlns='%s'/>" % NS_ROSTER, type_="get")
    subs = {i.get("jid"): i.get("subscription")
            for i in roster.iter(q(NS_ROSTER, "item"))}
    assert subs.get(b.bare) == "both", "roster of %s: %s" % (a.bare, subs)


class Setup:
    """Just enough of a test case for PepClient outside a test (class set-up)."""

    def __init__(self, server):
        self.server = server
        self.clients = []

    def raw_login(self, user, resource=None, **kw):
        c = RawClient(self.server.c2s_port)
        self.clients.append(c)
        c.login(user, self.server.users[user], resource, **kw)
        return c

    def assertEqual(self, a, b, msg=None):
        assert a == b, msg

    def end(self):
        for c in self.clients:
            c.end()


class PepTests(ServerTestCase):
    modules = {"pep": {"max_items_limit": 50}}
    if HAVE_ROSTER:
        modules["roster"] = {}
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"},
                         config={"modules": modules})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if HAVE_ROSTER:
            setup = Setup(cls.server)
            try:
                a = PepClient(setup, "alice", "setup").online(caps=False)
                b = PepClient(setup, "bob", "setup").online(caps=False)
                subscribe_both(a, b)
            finally:
                setup.end()

    def client(self, user, resource, notify=(), caps=True, **kw):
        return PepClient(self, user, resource, notify=notify, **kw).online(caps=caps)

    def assertNoEvents(self, client, node=None, within=T_SHORT):
        got = client.events(node, within)
        self.assertEqual(got, [], "%s got %s" % (client.jid, [ET.tostring(e) for e in got]))

    # ---- discovery ------------------------------------------------------

    def test_account_disco_lists_pep_identity_and_features(self):
        """XEP-0163 §9.1: identity pubsub/pep and the pubsub features on the account."""
        a = self.client("alice", "disco")
        answer = a.ok("<query xmlns='%s'/>" % NS_DISCO_INFO, to=ALICE, type_="get")
        query = answer.find(q(NS_DISCO_INFO, "query"))
        ids = {(i.get("category"), i.get("type")) for i in query.findall(q(NS_DISCO_INFO,
                                                                           "identity"))}
        feats = {f.get("var") for f in query.findall(q(NS_DISCO_INFO, "feature"))}
        self.assertIn(("account", "registered"), ids)
        self.assertIn(("pubsub", "pep"), ids)
        for f in ("publish", "publish-options", "auto-create", "access-presence", "access-open",
                  "access-whitelist", "persistent-items", "retrieve-items", "last-published",
                  "filtered-notifications"):
            self.assertIn(NS_PUBSUB + "#" + f, feats)

    # ---- notifications and caps ----------------------------------------

    def test_owner_sessions_notified_by_their_caps(self):
        """XEP-0163 §4.3: the owner's sessions get an event only with NODE+notify."""
        node = "urn:xmpp:test:owner-notify"
        wants = self.client("alice", "wants", notify=[node])
        silent = self.client("alice", "silent", notify=["urn:xmpp:other"])
        nocaps = self.client("alice", "nocaps", caps=False)
        answer = wants.publish(node, "<v xmlns='urn:xmpp:test'>1</v>", item_id="one")
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        pub = answer.find("%s/%s/%s" % (q(NS_PUBSUB, "pubsub"), q(NS_PUBSUB, "publish"),
                                        q(NS_PUBSUB, "item")))
        self.assertEqual(pub.get("id"), "one")
        msg = wants.wait_event(node)
        self.assertEqual(msg.get("from"), ALICE)
        self.assertEqual(msg.get("to"), wants.jid)
        self.assertEqual(msg.get("type"), "headline")
        ev_node, items, _ = event_items(msg)
        self.assertEqual(items[0][0], "one")
        self.assertEqual(items[0][1].text, "1")
        self.assertNoEvents(silent)
        self.assertNoEvents(nocaps)

    @unittest.skipUnless(HAVE_ROSTER, NEEDS_ROSTER)
    def test_avatar_metadata_reaches_interested_contact_only(self):
        """XEP-0084 metadata: bob (subscribed, +notify) gets the event; carol
        (+notify but not subscribed) and a bob session without +notify do not."""
        bob = self.client("bob", "avatar", notify=[NS_AVATAR_META])
        bob_plain = self.client("bob", "plain", notify=[NS_NICK])
        carol = self.client("carol", "avatar", notify=[NS_AVATAR_META])
        alice = self.client("alice", "avatar")
        data = base64.b64encode(b"\x89PNG fake image").decode()
        sha = hashlib.sha1(b"\x89PNG fake image").hexdigest()
        alice.ok(publish_xml(NS_AVATAR_DATA, "<data xmlns='%s'>%s</data>" % (NS_AVATAR_DATA, data),
                             item_id=sha))
        meta = ("<metadata xmlns='%s'><info bytes='15' id='%s' height='1' width='1' "
                "type='image/png'/></metadata>" % (NS_AVATAR_META, sha))
        alice.ok(publish_xml(NS_AVATAR_META, meta, item_id=sha))
        msg = bob.wait_event(NS_AVATAR_META)
        self.assertEqual(msg.get("from"), ALICE)
        self.assertEqual(msg.get("to"), bob.jid)
        node, items, _ = event_items(msg)
        self.assertEqual(items[0][0], sha)
        self.assertEqual(items[0][1].find(q(NS_AVATAR_META, "info")).get("id"), sha)
        self.assertNoEvents(bob, NS_AVATAR_DATA, within=0.1)  # no +notify for the data node
        self.assertNoEvents(bob_plain)
        self.assertNoEvents(carol)
        # bob fetches the data by id (XEP-0084 §4.2); carol may not.
        answer = bob.ok(items_xml(NS_AVATAR_DATA, ids=[sha]), to=ALICE, type_="get")
        self.assertEqual(result_items(answer)[0][1].text, data)
        denied = carol.iq(items_xml(NS_AVATAR_DATA, ids=[sha]), to=ALICE)
        self.assertEqual(stanza_error(denied), ("auth", "not-authorized"))
        self.assertEqual(pubsub_error(denied), "presence-subscription-required")

    @unittest.skipUnless(HAVE_ROSTER, NEEDS_ROSTER)
    def test_nickname_and_vcard4_for_contacts(self):
        """XEP-0172 nick and XEP-0292 vCard4 as ordinary presence-access nodes."""
        bob = self.client("bob", "nick", notify=[NS_NICK])
        alice = self.client("alice", "nick")
        alice.ok(publish_xml(NS_NICK, "<nick xmlns='%s'>Alice A.</nick>" % NS_NICK))
        node, items, _ = event_items(bob.wait_event(NS_NICK))
        self.assertEqual(items[0][1].text, "Alice A.")
        vcard = ("<vcard xmlns='%s'><fn><text>Alice</text></fn></vcard>" % NS_VCARD4)
        alice.ok(publish_xml(NS_VCARD4, vcard, item_id="current"))
        answer = bob.ok(items_xml(NS_VCARD4), to=ALICE, type_="get")
        got = result_items(answer)
        self.assertEqual([i for i, _ in got], ["current"])
        self.assertEqual(got[0][1].find("%s/%s" % (q(NS_VCARD4, "fn"), q(NS_VCARD4, "text"))).text,
                         "Alice")

    def test_stranger_cannot_read_presence_node(self):
        """XEP-0060 §6.5.9.3: default access model presence."""
        alice = self.client("alice", "pres")
        alice.ok(publish_xml("urn:xmpp:test:pres", "<p xmlns='urn:xmpp:test'/>"))
        carol = self.client("carol", "pres")
        denied = carol.iq(items_xml("urn:xmpp:test:pres"), to=ALICE)
        self.assertEqual(stanza_error(denied), ("auth", "not-authorized"))
        self.assertEqual(pubsub_error(denied), "presence-subscription-required")
        missing = carol.iq(items_xml("urn:xmpp:test:none"), to=ALICE)
        self.assertEqual(stanza_error(missing), ("cancel", "item-not-found"))

    def test_only_the_owner_publishes(self):
        carol = self.client("carol", "pub")
        answer = carol.iq(publish_xml("urn:xmpp:test:x", "<x xmlns='urn:xmpp:test'/>"), to=ALICE,
                          type_="set")
        self.assertEqual(stanza_error(answer), ("auth", "forbidden"))

    # ---- items ------------------------------------------------------------

    def test_items_by_id_and_max_items(self):
        """XEP-0060 §6.5.7 max_items, §6.5.8 by id, §7.1.2 same id replaces."""
        node = "urn:xmpp:test:many"
        alice = self.client("alice", "many")
        opts = {"pubsub#max_items": "5"}
        for i in range(4):
            alice.ok(publish_xml(node, "<n xmlns='urn:xmpp:test'>%d</n>" % i, "i%d" % i, opts))
        alice.ok(publish_xml(node, "<n xmlns='urn:xmpp:test'>1b</n>", "i1", opts))
        everything = result_items(alice.ok(items_xml(node), type_="get"))
        self.assertEqual([i for i, _ in everything], ["i0", "i2", "i3", "i1"])
        last2 = result_items(alice.ok(items_xml(node, max_items=2), type_="get"))
        self.assertEqual([(i, p.text) for i, p in last2], [("i3", "3"), ("i1", "1b")])
        by_id = result_items(alice.ok(items_xml(node, ids=["i2", "nope"]), type_="get"))
        self.assertEqual([(i, p.text) for i, p in by_id], [("i2", "2")])
        for i in range(4, 8):  # past max_items 5: the oldest go
            alice.ok(publish_xml(node, "<n xmlns='urn:xmpp:test'>%d</n>" % i, "i%d" % i, opts))
        everything = result_items(alice.ok(items_xml(node), type_="get"))
        self.assertEqual([i for i, _ in everything], ["i1", "i4", "i5", "i6", "i7"])

    def test_default_node_keeps_one_item(self):
        """XEP-0163 §8 smart defaults: max_items 1; a generated id is returned."""
        node = "urn:xmpp:test:one"
        alice = self.client("alice", "one")
        first = alice.ok(publish_xml(node, "<a xmlns='urn:xmpp:test'/>"))
        gen = first.find("%s/%s/%s" % (q(NS_PUBSUB, "pubsub"), q(NS_PUBSUB, "publish"),
                                       q(NS_PUBSUB, "item"))).get("id")
        self.assertTrue(gen)
        alice.ok(publish_xml(node, "<b xmlns='urn:xmpp:test'/>", "second"))
        got = result_items(alice.ok(items_xml(node), type_="get"))
        self.assertEqual([(i, p.tag) for i, p in got], [("second", q("urn:xmpp:test", "b"))])

    def test_retract_notifies_and_removes(self):
        node = "urn:xmpp:test:retract"
        alice = self.client("alice", "retract", notify=[node])
        alice.ok(publish_xml(node, "<r xmlns='urn:xmpp:test'/>", "gone"))
        alice.wait_event(node)
        alice.ok("<pubsub xmlns='%s'><retract node='%s' notify='true'><item id='gone'/></retract>"
                 "</pubsub>" % (NS_PUBSUB, node))
        _, items, retracted = event_items(alice.wait_event(node))
        self.assertEqual((items, retracted), ([], ["gone"]))
        self.assertEqual(result_items(alice.ok(items_xml(node), type_="get")), [])
        again = alice.iq("<pubsub xmlns='%s'><retract node='%s'><item id='gone'/></retract>"
                         "</pubsub>" % (NS_PUBSUB, node), type_="set")
        self.assertEqual(stanza_error(again), ("cancel", "item-not-found"))

    # ---- publish-options and access models -------------------------------

    def test_omemo_open_access_lets_a_stranger_fetch(self):
        """XEP-0384 via publish-options access_model=open: device list and bundle
        fetched by a stranger (a slixmpp client), the bundle by item id."""
        alice = self.client("alice", "omemo")
        devices = ("<list xmlns='eu.siacs.conversations.axolotl'><device id='31415'/></list>")
        bundle = ("<bundle xmlns='eu.siacs.conversations.axolotl'><signedPreKeyPublic "
                  "signedPreKeyId='1'>BQ==</signedPreKeyPublic><identityKey>BQ==</identityKey>"
                  "</bundle>")
        opts = {"pubsub#access_model": "open"}
        alice.ok(publish_xml(OMEMO_DEVICES, devices, "current", opts))
        alice.ok(publish_xml(OMEMO_BUNDLE, bundle, "current", opts))
        alice.ok(publish_xml("urn:xmpp:omemo:2:devices",
                             "<devices xmlns='urn:xmpp:omemo:2'><device id='7'/></devices>",
                             "current", {"pubsub#access_model": "open",
                                         "pubsub#max_items": "max"}))
        carol = SlixClient(self.server, "carol", resource="omemo")
        self._clients.append(carol)
        carol.connect()
        got = carol.iq(items_xml(OMEMO_DEVICES), to=ALICE)
        self.assertEqual(got.get("type"), "result", stanza_error(got))
        self.assertEqual(result_items(got)[0][1].find(
            "{eu.siacs.conversations.axolotl}device").get("id"), "31415")
        got = carol.iq(items_xml(OMEMO_BUNDLE, ids=["current"]), to=ALICE)
        self.assertEqual(result_items(got)[0][1].tag, "{eu.siacs.conversations.axolotl}bundle")
        got = carol.iq(items_xml("urn:xmpp:omemo:2:devices", max_items=1), to=ALICE)
        self.assertEqual(result_items(got)[0][0], "current")
        # The node is listed to a stranger, since the stranger may read it.
        listed = carol.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=ALICE)
        nodes = {i.get("node") for i in listed.iter(q(NS_DISCO_ITEMS, "item"))}
        self.assertIn(OMEMO_DEVICES, nodes)

    def test_whitelist_private_node_is_invisible_to_others(self):
        """XEP-0223: persist_items + whitelist; others cannot read, list or
        disco it; the owner can, and can whitelist someone (XEP-0060 §8.9)."""
        node = "urn:xmpp:test:private"
        opts = {"pubsub#persist_items": "true", "pubsub#access_model": "whitelist"}
        alice = self.client("alice", "private")
        alice.ok(publish_xml(node, "<secret xmlns='urn:xmpp:test'>s3</secret>", "current",
                             opts))
        for user in ("bob", "carol"):
            other = self.client(user, "private")
            denied = other.iq(items_xml(node), to=ALICE)
            self.assertEqual(stanza_error(denied), ("cancel", "not-allowed"))
            self.assertEqual(pubsub_error(denied), "closed-node")
            self.assertNotIn(b"s3", ET.tostring(denied))
            listed = other.ok("<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=ALICE, type_="get")
            self.assertNotIn(node, {i.get("node") for i in listed.iter(q(NS_DISCO_ITEMS,
                                                                         "item"))})
            info = other.iq("<query xmlns='%s' node='%s'/>" % (NS_DISCO_INFO, node), to=ALICE)
            self.assertEqual(stanza_error(info), ("cancel", "item-not-found"))
        got = result_items(alice.ok(items_xml(node), type_="get"))
        self.assertEqual(got[0][1].text, "s3")
        # Owner whitelists carol: now she reads it.
        alice.ok("<pubsub xmlns='%s'><affiliations node='%s'><affiliation jid='%s' "
                 "affiliation='member'/></affiliations></pubsub>" % (NS_OWNER, node, CAROL))
        affs = alice.ok("<pubsub xmlns='%s'><affiliations node='%s'/></pubsub>" % (NS_OWNER, node),
                        type_="get")
        listed = {(a.get("jid"), a.get("affiliation")) for a in affs.iter(q(NS_OWNER,
                                                                            "affiliation"))}
        self.assertEqual(listed, {(ALICE, "owner"), (CAROL, "member")})
        carol = self.client("carol", "member")
        got = result_items(carol.ok(items_xml(node), to=ALICE, type_="get"))
        self.assertEqual(got[0][1].text, "s3")

    def test_publish_options_mismatch_is_precondition_not_met(self):
        """XEP-0060 §7.1.5: an existing node whose configuration differs."""
        node = "urn:xmpp:test:precondition"
        alice = self.client("alice", "precondition")
        alice.ok(publish_xml(node, "<a xmlns='urn:xmpp:test'/>", "first"))  # presence model
        answer = alice.publish(node, "<b xmlns='urn:xmpp:test'/>", "second",
                               {"pubsub#access_model": "open"})
        self.assertEqual(stanza_error(answer), ("cancel", "conflict"))
        self.assertEqual(pubsub_error(answer), "precondition-not-met")
        got = result_items(alice.ok(items_xml(node), type_="get"))
        self.assertEqual([i for i, _ in got], ["first"], "the refused item was stored")
        # Matching options publish; then the owner reconfigures and it matches.
        alice.ok(publish_xml(node, "<c xmlns='urn:xmpp:test'/>", "third",
                             {"pubsub#access_model": "presence"}))
        alice.ok("<pubsub xmlns='%s'><configure node='%s'>%s</configure></pubsub>" % (
            NS_OWNER, node, form(NS_PUBSUB + "#node_config", {"pubsub#access_model": "open"})))
        alice.ok(publish_xml(node, "<d xmlns='urn:xmpp:test'/>", "fourth",
                             {"pubsub#access_model": "open"}))
        conf = alice.ok("<pubsub xmlns='%s'><configure node='%s'/></pubsub>" % (NS_OWNER, node),
                        type_="get")
        values = {f.get("var"): f.findtext(q(NS_DATA, "value"))
                  for f in conf.iter(q(NS_DATA, "field"))}
        self.assertEqual(values["pubsub#access_model"], "open")

    def test_delete_node(self):
        node = "urn:xmpp:test:delete"
        alice = self.client("alice", "delete", notify=[node])
        alice.ok(publish_xml(node, "<a xmlns='urn:xmpp:test'/>"))
        alice.wait_event(node)
        alice.ok("<pubsub xmlns='%s'><delete node='%s'/></pubsub>" % (NS_OWNER, node))
        msg = alice.wait(lambda e: e.find("%s/%s" % (q(NS_EVENT, "event"),
                                                     q(NS_EVENT, "delete"))) is not None)
        self.assertEqual(msg.find("%s/%s" % (q(NS_EVENT, "event"), q(NS_EVENT, "delete")))
                         .get("node"), node)
        gone = alice.iq(items_xml(node))
        self.assertEqual(stanza_error(gone), ("cancel", "item-not-found"))

    # ---- last published item and the caps cache --------------------------

    def test_last_item_sent_on_login(self):
        """XEP-0163 §4.3.4: a new session with +notify gets the last item,
        delayed (XEP-0203); one without +notify gets nothing."""
        node = "urn:xmpp:test:last"
        alice = self.client("alice", "last-pub")
        alice.ok(publish_xml(node, "<m xmlns='urn:xmpp:test'>old</m>", "a"))
        alice.ok(publish_xml(node, "<m xmlns='urn:xmpp:test'>newest</m>", "b"))
        fresh = self.client("alice", "last-new", notify=[node])
        msg = fresh.wait_event(node)
        _, items, _ = event_items(msg)
        self.assertEqual([(i, p.text) for i, p in items], [("b", "newest")])
        self.assertIsNotNone(msg.find(q(NS_DELAY, "delay")))
        self.assertNoEvents(fresh, node)  # once only
        plain = self.client("alice", "last-plain", notify=["urn:xmpp:test:else"])
        self.assertNoEvents(plain, node)
        if HAVE_ROSTER:  # and a contact's new session gets alice's last item too
            bob = self.client("bob", "last", notify=[node])
            msg = bob.wait_event(node)
            self.assertEqual(msg.get("from"), ALICE)
            carol = self.client("carol", "last", notify=[node])
            self.assertNoEvents(carol, node)

    def test_caps_cache_one_query_per_ver(self):
        """XEP-0115 §6.1: a second session with the same ver is not queried,
        and still gets its notifications."""
        node = "urn:xmpp:test:cache-" + secrets.token_hex(3)  # a ver nobody used yet
        first = self.client("alice", "cache1", notify=[node])
        self.assertEqual(first.caps_queries, ["%s#%s" % (PepClient.CAPS_NODE, first.ver)])
        second = self.client("alice", "cache2", notify=[node])
        self.assertEqual(second.ver, first.ver)
        second.pump(T_SHORT)
        self.assertEqual(second.caps_queries, [], "the cached ver was queried again")
        first.ok(publish_xml(node, "<c xmlns='urn:xmpp:test'/>"))
        second.wait_event(node)
        first.wait_event(node)

    def test_caps_with_languages_and_extension_forms(self):
        """XEP-0115 §5.1 with identities in two languages and an XEP-0128 form
        (the §5.3 example plus a +notify feature) is verified and used."""
        node = "urn:xmpp:test:forms-" + secrets.token_hex(3)
        test_caps_ver_matches_xep0115_example()
        c = PepClient(self, "alice", "forms", notify=[node],
                      identities=[("client", "pc", "en", "Psi 0.11"),
                                  ("client", "pc", "el", "\u03a8 0.11")],
                      forms=[{"FORM_TYPE": ["urn:xmpp:dataforms:softwareinfo"],
                              "ip_version": ["ipv4", "ipv6"], "os": ["Mac"],
                              "os_version": ["10.5.1"], "software": ["Psi"],
                              "software_version": ["0.11"]}]).online()
        self.assertEqual(len(c.caps_queries), 1)
        c.ok(publish_xml(node, "<f xmlns='urn:xmpp:test'/>"))
        c.wait_event(node)

    def test_caps_answer_that_does_not_hash_to_ver_is_not_used(self):
        """XEP-0115 §5.4: a forged answer is neither trusted nor cached."""
        node = "urn:xmpp:test:forged-" + secrets.token_hex(3)
        liar = self.client("alice", "liar", notify=[node], lie=True)
        self.assertEqual(len(liar.caps_queries), 1)
        honest = self.client("alice", "honest", notify=[node])
        self.assertEqual(honest.ver, liar.ver)
        self.assertEqual(len(honest.caps_queries), 1, "the forged answer was cached")
        honest.ok(publish_xml(node, "<f xmlns='urn:xmpp:test'/>"))
        honest.wait_event(node)
        self.assertNoEvents(liar, node)

    def test_reload_keeps_items_and_forgets_pending_caps_queries(self):
        """ternctl reload: stored items stay; a caps query still out at the
        reload is dropped cleanly (the sanitizer checks the rest)."""
        node = "urn:xmpp:test:reload"
        alice = self.client("alice", "reload")
        alice.ok(publish_xml(node, "<r xmlns='urn:xmpp:test'>kept</r>", "k"))
        waiting = PepClient(self, "alice", "pending",
                            notify=["urn:xmpp:test:pending-" + secrets.token_hex(3)])
        waiting.raw.send("<presence><c xmlns='%s' hash='sha-1' node='%s' ver='%s'/></presence>" %
                         (NS_CAPS, PepClient.CAPS_NODE, waiting.ver))
        alice.sync()  # the query to `waiting` is out and unanswered
        self.server.ternctl_ok("reload")
        waiting.pump(0.3)  # its late answer goes nowhere
        fresh = self.client("alice", "after-reload", notify=[node])
        _, items, _ = event_items(fresh.wait_event(node))
        self.assertEqual(items[0][1].text, "kept")
        self.assertEqual(result_items(fresh.ok(items_xml(node), type_="get"))[0][0], "k")
