"""XEP-0049 Private XML Storage (mod_private): store, retrieve and replace
per namespace, namespaces kept apart, the error cases of §2.3 and §3
(empty query, reserved namespace, another user's account, more than one
namespace in a get), data kept across sessions, and the per-user limit on
namespaces."""
from harness import (DOMAIN, NS_DISCO_INFO, ServerTestCase, SlixClient, q, stanza_error)

NS_PRIVATE = "jabber:iq:private"
NS_PREFS = "exodus:prefs"
NS_NOTES = "storage:rosternotes"
NS_BOOKMARKS = "storage:bookmarks"

MODULES = {"private": {}}


def private(inner=""):
    return "<query xmlns='%s'>%s</query>" % (NS_PRIVATE, inner)


class PrivateTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"},
                         config={"modules": MODULES})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.alice = SlixClient(cls.server, "alice", resource="desk").connect()
        cls.bob = SlixClient(cls.server, "bob", resource="phone").connect()

    @classmethod
    def tearDownClass(cls):
        for c in (cls.alice, cls.bob):
            c.disconnect()
        super().tearDownClass()

    def store(self, client, inner, to=None):
        answer = client.iq(private(inner), to=to, itype="set")
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        self.assertIsNone(answer.find(q(NS_PRIVATE, "query")))
        return answer

    def fetch(self, client, inner, to=None):
        """The <query/> of a successful get."""
        answer = client.iq(private(inner), to=to, itype="get")
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        query = answer.find(q(NS_PRIVATE, "query"))
        self.assertIsNotNone(query, "no <query/> in the result")
        return query

    def error(self, client, inner, itype, to=None):
        answer = client.iq(private(inner), to=to, itype=itype)
        self.assertEqual(answer.get("type"), "error")
        return stanza_error(answer)

    def test_feature_is_advertised(self):
        answer = self.alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN)
        features = {f.get("var") for f in answer.iter(q(NS_DISCO_INFO, "feature"))}
        self.assertIn(NS_PRIVATE, features)

    def test_store_then_retrieve(self):
        self.store(self.alice, "<exodus xmlns='%s'><defaultnick>Hamlet</defaultnick>"
                               "<colour shade='dark &amp; deep'>black</colour></exodus>" % NS_PREFS)
        query = self.fetch(self.alice, "<exodus xmlns='%s'/>" % NS_PREFS)
        children = list(query)
        self.assertEqual([c.tag for c in children], [q(NS_PREFS, "exodus")])
        self.assertEqual(children[0].findtext(q(NS_PREFS, "defaultnick")), "Hamlet")
        colour = children[0].find(q(NS_PREFS, "colour"))
        self.assertEqual((colour.text, colour.get("shade")), ("black", "dark & deep"))

    def test_nothing_stored_returns_the_empty_element(self):
        query = self.fetch(self.alice, "<nothing xmlns='urn:example:never-stored'/>")
        children = list(query)
        self.assertEqual([c.tag for c in children], [q("urn:example:never-stored", "nothing")])
        self.assertEqual(len(children[0]), 0)

    def test_retrieve_with_own_bare_jid_as_to(self):
        self.store(self.alice, "<n xmlns='urn:example:to-self'>v</n>", to="alice@localhost")
        query = self.fetch(self.alice, "<n xmlns='urn:example:to-self'/>", to="alice@localhost")
        self.assertEqual(query.findtext(q("urn:example:to-self", "n")), "v")

    def test_overwrite_replaces(self):
        ns = "urn:example:overwrite"
        self.store(self.alice, "<a xmlns='%s'><old/></a>" % ns)
        self.store(self.alice, "<a xmlns='%s'><new/></a>" % ns)
        query = self.fetch(self.alice, "<a xmlns='%s'/>" % ns)
        a = query.find(q(ns, "a"))
        self.assertIsNotNone(a.find(q(ns, "new")))
        self.assertIsNone(a.find(q(ns, "old")))
        self.assertEqual(len(list(query)), 1)

    def test_namespaces_are_independent(self):
        self.store(self.alice, "<notes xmlns='%s'><note jid='x@y'>one</note></notes>" % NS_NOTES)
        self.store(self.alice, "<storage xmlns='%s'><conference jid='r@c'/></storage>"
                   % NS_BOOKMARKS)
        self.store(self.alice, "<notes xmlns='%s'><note jid='x@y'>two</note></notes>" % NS_NOTES)
        bookmarks = self.fetch(self.alice, "<storage xmlns='%s'/>" % NS_BOOKMARKS)
        conf = bookmarks.find(q(NS_BOOKMARKS, "storage")).find(q(NS_BOOKMARKS, "conference"))
        self.assertEqual(conf.get("jid"), "r@c")
        notes = self.fetch(self.alice, "<notes xmlns='%s'/>" % NS_NOTES)
        self.assertEqual(notes.find(q(NS_NOTES, "notes")).findtext(q(NS_NOTES, "note")), "two")

    def test_one_set_with_two_namespaces_stores_each(self):
        ns1, ns2 = "urn:example:multi:1", "urn:example:multi:2"
        self.store(self.alice, "<one xmlns='%s'>1</one><two xmlns='%s'>2</two>"
                               "<more xmlns='%s'>1b</more>" % (ns1, ns2, ns1))
        first = self.fetch(self.alice, "<one xmlns='%s'/>" % ns1)
        self.assertEqual([(c.tag, c.text) for c in first],
                         [(q(ns1, "one"), "1"), (q(ns1, "more"), "1b")])
        second = self.fetch(self.alice, "<two xmlns='%s'/>" % ns2)
        self.assertEqual([(c.tag, c.text) for c in second], [(q(ns2, "two"), "2")])

    def test_users_do_not_share_data(self):
        ns = "urn:example:mine"
        self.store(self.alice, "<secret xmlns='%s'>alice's</secret>" % ns)
        query = self.fetch(self.bob, "<secret xmlns='%s'/>" % ns)
        self.assertIsNone(query.find(q(ns, "secret")).text)

    def test_another_users_account_is_forbidden(self):
        ns = "urn:example:forbidden"
        self.store(self.bob, "<x xmlns='%s'>bob's</x>" % ns)
        self.assertEqual(self.error(self.alice, "<x xmlns='%s'/>" % ns, "get", to="bob@localhost"),
                         ("cancel", "forbidden"))
        self.assertEqual(self.error(self.alice, "<x xmlns='%s'>mine now</x>" % ns, "set",
                                    to="bob@localhost"), ("cancel", "forbidden"))
        query = self.fetch(self.bob, "<x xmlns='%s'/>" % ns)
        self.assertEqual(query.findtext(q(ns, "x")), "bob's")

    def test_empty_set_is_not_acceptable(self):
        self.assertEqual(self.error(self.alice, "", "set"), ("modify", "not-acceptable"))

    def test_empty_get_is_bad_request(self):
        """XEP-0049 §3: "Bad Format" for a get without a child element."""
        self.assertEqual(self.error(self.alice, "", "get"), ("modify", "bad-request"))

    def test_get_with_two_namespaces_is_bad_request(self):
        two = "<a xmlns='urn:example:a'/><b xmlns='urn:example:b'/>"
        self.assertEqual(self.error(self.alice, two, "get"), ("modify", "bad-request"))

    def test_reserved_namespaces_are_not_acceptable(self):
        for inner in ("<body xmlns='jabber:client'>x</body>",
                      "<query xmlns='%s'/>" % NS_PRIVATE,
                      "<nested>no namespace of its own</nested>"):
            for itype in ("set", "get"):
                self.assertEqual(self.error(self.alice, inner, itype), ("modify", "not-acceptable"),
                                 "%s %s" % (itype, inner))

    def test_reserved_namespace_in_a_set_stores_nothing(self):
        ns = "urn:example:all-or-nothing"
        self.assertEqual(self.error(self.alice, "<ok xmlns='%s'>1</ok><body xmlns='jabber:client'/>"
                                    % ns, "set"), ("modify", "not-acceptable"))
        query = self.fetch(self.alice, "<ok xmlns='%s'/>" % ns)
        self.assertIsNone(query.find(q(ns, "ok")).text)

    def test_data_survives_reconnection(self):
        ns = "urn:example:persist"
        carol = self.slix("carol", resource="first")
        self.store(carol, "<p xmlns='%s' lang='en'>kept</p>" % ns)
        carol.disconnect()
        again = self.slix("carol", resource="second")
        query = self.fetch(again, "<p xmlns='%s'/>" % ns)
        p = query.find(q(ns, "p"))
        self.assertEqual((p.text, p.get("lang")), ("kept", "en"))


class PrivateLimitTests(ServerTestCase):
    """max_namespaces bounds how many namespaces one user fills; replacing
    the data of a namespace already stored is always allowed."""
    server_kwargs = dict(users={"alice": "alice-pw"},
                         config={"modules": {"private": {"max_namespaces": 2}}})

    def test_third_namespace_is_refused(self):
        alice = self.slix("alice")
        for ns in ("urn:example:1", "urn:example:2"):
            answer = alice.iq(private("<a xmlns='%s'/>" % ns), to=None, itype="set")
            self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        answer = alice.iq(private("<a xmlns='urn:example:3'/>"), to=None, itype="set")
        self.assertEqual(stanza_error(answer), ("modify", "policy-violation"))
        answer = alice.iq(private("<a xmlns='urn:example:2'>again</a>"), to=None, itype="set")
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        answer = alice.iq(private("<a xmlns='urn:example:3'/>"), to=None, itype="get")
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))

    def test_one_set_cannot_overshoot_the_limit(self):
        bob_ns = ("urn:example:b1", "urn:example:b2", "urn:example:b3")
        self.server.add_user("bob", "bob-pw")
        bob = self.slix("bob")
        inner = "".join("<a xmlns='%s'>x</a>" % ns for ns in bob_ns)
        answer = bob.iq(private(inner), to=None, itype="set")
        self.assertEqual(stanza_error(answer), ("modify", "policy-violation"))
        for ns in bob_ns:  # nothing of the refused set was stored
            answer = bob.iq(private("<a xmlns='%s'/>" % ns), to=None, itype="get")
            self.assertIsNone(answer.find(q(NS_PRIVATE, "query")).find(q(ns, "a")).text)
        answer = bob.iq(private(inner.replace("b3", "b1")), to=None, itype="set")
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
