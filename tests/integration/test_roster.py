"""Rosters (RFC 6121 §2, mod_roster): get, set and remove with their
error cases (§2.3.3, §2.5.3), roster pushes to every interested resource
and only to those (§2.1.6), versioning (§2.6: the same version answers an
empty result, pushes carry the new one), the item limit and length limits,
and the stream features (roster versioning, pre-approval).

The helpers at the top (RClient, RosterCase) are shared with
test_presence.py: clients that leave subscription answers to the test, and
raw readers of roster iqs and presence.
"""
import time
import xml.etree.ElementTree as ET

from harness import DOMAIN, T_SHORT, ServerTestCase, SlixClient, q, run_async

NS_ROSTER = "jabber:iq:roster"
NS_DELAY = "urn:xmpp:delay"
NS_LAST = "jabber:iq:last"
NS_CLIENT = "jabber:client"


def bare(user):
    return "%s@%s" % (user, DOMAIN)


class RClient(SlixClient):
    """A slixmpp client that leaves subscription answers to the test."""

    async def _a_create(self):
        await super()._a_create()
        self.xmpp.auto_authorize = None
        self.xmpp.auto_subscribe = False

    def kill(self):
        """Drop the TCP connection without </stream:stream> or unavailable presence."""
        async def go():
            self.xmpp.transport.abort()
        run_async(go())
        self.wait_disconnected()


def items_of(el):
    """{jid: dict(subscription, ask, approved, name, groups)} of a roster <query/>
    inside `el` (an iq element), or None when the iq has no query."""
    query = el.find(q(NS_ROSTER, "query"))
    if query is None:
        return None
    out = {}
    for item in query.findall(q(NS_ROSTER, "item")):
        out[item.get("jid")] = dict(subscription=item.get("subscription"), ask=item.get("ask"),
                                    approved=item.get("approved"), name=item.get("name"),
                                    groups=sorted(g.text or "" for g in
                                                  item.findall(q(NS_ROSTER, "group"))))
    return out


def error_condition(el):
    err = el.find(q(NS_CLIENT, "error"))
    if err is None:
        return None
    for child in err:
        if child.tag.startswith("{urn:ietf:params:xml:ns:xmpp-stanzas}") and \
                not child.tag.endswith("}text"):
            return child.tag.split("}")[1]
    return None


class RosterCase(ServerTestCase):
    """Clients made with self.client(user) leave subscriptions to the test."""

    def client(self, user, resource=None, presence=True, roster=True):
        c = RClient(self.server, user, resource=resource)
        self._clients.append(c)
        c.connect(presence=False)
        if roster:
            self.roster_get(c)
        if presence:
            c.send_presence()
        return c

    # ---- roster iqs ----

    def roster_get(self, c, ver=None):
        attr = "" if ver is None else " ver='%s'" % ver
        return c.iq("<query xmlns='%s'%s/>" % (NS_ROSTER, attr), to=None)

    def roster_set(self, c, jid, name=None, groups=(), subscription=None, raw_item=None):
        if raw_item is None:
            attrs = " jid='%s'" % jid
            if name is not None:
                attrs += " name='%s'" % name
            if subscription is not None:
                attrs += " subscription='%s'" % subscription
            raw_item = "<item%s>%s</item>" % (attrs, "".join("<group>%s</group>" % g
                                                             for g in groups))
        return c.iq("<query xmlns='%s'>%s</query>" % (NS_ROSTER, raw_item), to=None,
                    itype="set")

    def roster_items(self, c):
        r = self.roster_get(c)
        self.assertEqual(r.get("type"), "result")
        return items_of(r)

    def wait_push(self, c, jid, since=0, **expect):
        """The first roster push after `since` for `jid` whose item has the
        `expect` fields (subscription=..., ask=None...)."""
        def pred(s):
            if not (s.name == "iq" and s["type"] == "set" and
                    s.xml.find(q(NS_ROSTER, "query")) is not None):
                return False
            item = (items_of(s.xml) or {}).get(jid)
            return item is not None and all(item[k] == v for k, v in expect.items())
        try:
            s = c.wait_stanza(pred, since=since)
        except TimeoutError:
            got = [items_of(p.xml) for p in self.pushes(c, since)]
            self.fail("no push %s %s for %s; got %s" % (jid, expect, c.jid, got))
        self.assertIn(str(s["from"]), ("", c.jid.split("/")[0]))
        return s

    def pushes(self, c, since):
        return [s for s in c.received_since(since, ("iq",))
                if s["type"] == "set" and s.xml.find(q(NS_ROSTER, "query")) is not None]

    # ---- presence ----

    def wait_presence(self, c, since=0, ptype=None, frm=None):
        """The first presence after `since` of this type ('available' for none)
        from this JID."""
        def pred(s):
            if s.name != "presence":
                return False
            t = s.xml.get("type") or "available"
            return (ptype is None or t == ptype) and (frm is None or str(s["from"]) == frm)
        return c.wait_stanza(pred, since=since)

    def presences(self, c, since, ptype=None, frm=None):
        out = []
        for s in c.received_since(since, ("presence",)):
            t = s.xml.get("type") or "available"
            if (ptype is None or t == ptype) and (frm is None or str(s["from"]) == frm):
                out.append(s)
        return out

    def quiet(self, clients_marks, within=T_SHORT, kinds=("message", "iq", "presence"),
              allow=None):
        """Nothing (but what `allow(stanza)` accepts) reaches these clients
        after their marks within `within` seconds."""
        time.sleep(within)
        for c, mark in clients_marks:
            extra = [s for s in c.received_since(mark, kinds) if not (allow and allow(s))]
            self.assertEqual([ET.tostring(s.xml).decode() for s in extra], [],
                             "unexpected stanzas for %s" % c.jid)

    def send(self, c, xml):
        c.send_raw(xml)

    def subscribe_both(self, a, b):
        """Make a and b subscribed to each other (the full handshake), both online
        and interested; returns when both have seen the final pushes."""
        ua, ub = a.jid.split("/")[0], b.jid.split("/")[0]
        for x, y in ((a, b), (b, a)):
            ux, uy = x.jid.split("/")[0], y.jid.split("/")[0]
            my = y.mark()
            self.send(x, "<presence to='%s' type='subscribe'/>" % uy)
            self.wait_presence(y, my, "subscribe", ux)
            self.send(y, "<presence to='%s' type='subscribed'/>" % ux)
        mx, my = a.mark(), b.mark()
        # Sync both so that every push is out.
        a.sync()
        b.sync()
        self.assertEqual(self.roster_items(a)[ub]["subscription"], "both")
        self.assertEqual(self.roster_items(b)[ua]["subscription"], "both")


USERS = ["alice", "bob", "pat", "quinn", "rita", "sam"]


class RosterTests(RosterCase):
    server_kwargs = dict(users={u: u + "-pw" for u in USERS},
                         config={"modules": {"roster": {}}})

    def test_stream_features(self):
        """§2.6.1 and §3.4: versioning and pre-approval are advertised after login."""
        c = self.raw()
        c.login("alice", "alice-pw", presence=False)
        self.assertIsNotNone(c.features.find(q("urn:xmpp:features:rosterver", "ver")))
        self.assertIsNotNone(c.features.find(q("urn:xmpp:features:pre-approval", "sub")))

    def test_empty_roster(self):
        c = self.client("bob", presence=False, roster=False)
        r = self.roster_get(c)
        self.assertEqual(r.get("type"), "result")
        self.assertEqual(items_of(r), {})
        # No 'ver' unless the client asked with one (§2.6.2).
        self.assertIsNone(r.find(q(NS_ROSTER, "query")).get("ver"))

    def test_set_update_remove_pushes_to_interested_resources(self):
        one = self.client("pat", "one")
        two = self.client("pat", "two")
        three = self.client("pat", "three", roster=False)  # never asked: not interested
        m1, m2, m3 = one.mark(), two.mark(), three.mark()

        r = self.roster_set(one, "zed@example.org", name="Zed", groups=["Friends", "Work"])
        self.assertEqual(r.get("type"), "result")
        self.assertEqual(list(r), [])  # an empty result
        fields = dict(subscription="none", ask=None, name="Zed", groups=["Friends", "Work"])
        p1 = self.wait_push(one, "zed@example.org", m1, **fields)
        p2 = self.wait_push(two, "zed@example.org", m2, **fields)
        # §2.1.6: a push per resource, each with its own id, to its full JID.
        self.assertNotEqual(p1["id"], p2["id"])
        self.assertNotEqual(p1["id"], r.get("id"))
        self.assertEqual(str(p1["to"]), one.jid)
        self.assertEqual(str(p2["to"]), two.jid)
        self.quiet([(one, m1), (two, m2), (three, m3)], kinds=("iq", "message"),
                   allow=lambda s: s in (p1, p2) or s["id"] == r.get("id"))
        self.assertEqual(self.roster_items(two)["zed@example.org"]["groups"],
                         ["Friends", "Work"])

        # Update: name and groups are replaced.
        m1, m2 = one.mark(), two.mark()
        self.assertEqual(self.roster_set(two, "zed@example.org", name="Zedd").get("type"),
                         "result")
        self.wait_push(one, "zed@example.org", m1, name="Zedd", groups=[])
        self.wait_push(two, "zed@example.org", m2, name="Zedd", groups=[])

        # Remove (§2.5): pushes with subscription='remove', then gone.
        m1, m2, m3 = one.mark(), two.mark(), three.mark()
        r = self.roster_set(one, "zed@example.org", subscription="remove")
        self.assertEqual(r.get("type"), "result")
        for c, m in ((one, m1), (two, m2)):
            p = self.wait_push(c, "zed@example.org", m, subscription="remove")
            item = p.xml.find(q(NS_ROSTER, "query")).find(q(NS_ROSTER, "item"))
            self.assertEqual(sorted(item.keys()), ["jid", "subscription"])
        self.assertNotIn("zed@example.org", self.roster_items(one))
        self.quiet([(three, m3)], kinds=("iq",))
        self.assertEqual(len(self.pushes(one, m1)), 1)
        self.assertEqual(len(self.pushes(two, m2)), 1)

    def test_empty_name_is_no_name(self):
        """name='' (profanity's /roster add without a nickname) stores no name:
        pushes and gets carry no name attribute, and it clears an old name."""
        one = self.client("pat", "empty-one")
        two = self.client("pat", "empty-two")
        for name in ("", "Yan", ""):  # added without a name, named, name cleared
            m1, m2 = one.mark(), two.mark()
            self.assertEqual(self.roster_set(one, "yan@example.org", name=name).get("type"),
                             "result")
            expect = name or None
            p1 = self.wait_push(one, "yan@example.org", m1, name=expect)
            self.wait_push(two, "yan@example.org", m2, name=expect)
            item = p1.xml.find(q(NS_ROSTER, "query")).find(q(NS_ROSTER, "item"))
            self.assertEqual("name" in item.keys(), bool(name), ET.tostring(item))
            self.assertEqual(self.roster_items(two)["yan@example.org"]["name"], expect)
        self.roster_set(one, "yan@example.org", subscription="remove")

    def test_versioning(self):
        c = self.client("quinn")
        r = self.roster_get(c, ver="")
        v1 = r.find(q(NS_ROSTER, "query")).get("ver")
        self.assertTrue(v1)
        # §2.6.3: the client's version is current: an empty result.
        r = self.roster_get(c, ver=v1)
        self.assertEqual(r.get("type"), "result")
        self.assertEqual(list(r), [])

        m = c.mark()
        self.assertEqual(self.roster_set(c, "x@example.org", name="X").get("type"), "result")
        push = self.wait_push(c, "x@example.org", m)
        v2 = push.xml.find(q(NS_ROSTER, "query")).get("ver")
        self.assertTrue(v2)
        self.assertNotEqual(v2, v1)
        self.assertEqual(list(self.roster_get(c, ver=v2)), [])
        # An old version gets the whole roster with the current version.
        r = self.roster_get(c, ver=v1)
        self.assertEqual(r.find(q(NS_ROSTER, "query")).get("ver"), v2)
        self.assertEqual(list(items_of(r)), ["x@example.org"])

        # A remove is a change too.
        m = c.mark()
        self.roster_set(c, "x@example.org", subscription="remove")
        v3 = self.wait_push(c, "x@example.org", m, subscription="remove") \
            .xml.find(q(NS_ROSTER, "query")).get("ver")
        self.assertNotIn(v3, (v1, v2))
        r = self.roster_get(c, ver=v2)
        self.assertEqual(r.find(q(NS_ROSTER, "query")).get("ver"), v3)
        self.assertEqual(items_of(r), {})

    def test_set_errors(self):
        """§2.3.3 and §2.5.3; none of these changes the roster or pushes."""
        c = self.client("rita")
        m = c.mark()
        cases = [
            ("<item jid='a@example.org'/><item jid='b@example.org'/>", "bad-request"),
            ("", "bad-request"),
            ("<item name='no jid'/>", "bad-request"),
            ("<item jid='a@b@c'/>", "bad-request"),
            ("<item jid='a@example.org/res'/>", "bad-request"),
            ("<item jid='a@example.org'><group/></item>", "not-acceptable"),
            ("<item jid='a@example.org'><group>G</group><group>G</group></item>",
             "bad-request"),
            ("<item jid='nobody@example.org' subscription='remove'/>", "item-not-found"),
        ]
        for raw, cond in cases:
            r = self.roster_set(c, None, raw_item=raw)
            self.assertEqual(r.get("type"), "error", raw)
            self.assertEqual(error_condition(r), cond, raw)
        self.assertEqual(self.roster_items(c), {})
        self.quiet([(c, m)], kinds=("iq",), within=0.3,
                   allow=lambda s: s["type"] != "set")

    def test_client_cannot_set_subscription_state(self):
        """§2.1.2.5, §2.3.2: 'subscription' (but remove), 'ask' and 'approved'
        from the client are ignored."""
        c = self.client("sam")
        m = c.mark()
        r = self.roster_set(c, None, raw_item="<item jid='y@example.org' subscription='both' "
                                              "ask='subscribe' approved='true'/>")
        self.assertEqual(r.get("type"), "result")
        self.wait_push(c, "y@example.org", m, subscription="none", ask=None, approved=None)
        self.assertEqual(self.roster_items(c)["y@example.org"]["subscription"], "none")

    def test_roster_of_someone_else_is_not_served(self):
        alice = self.client("alice")
        r = alice.iq("<query xmlns='%s'/>" % NS_ROSTER, to=bare("bob"))
        self.assertEqual(r.get("type"), "error")


class RosterLimitTests(RosterCase):
    server_kwargs = dict(users={"lim": "lim-pw", "other": "other-pw"},
                         config={"modules": {"roster": {"max_items": 2, "max_name_length": 8,
                                                        "max_group_length": 5}}})

    def test_item_and_length_limits(self):
        c = self.client("lim")
        for jid in ("a@example.org", "b@example.org"):
            self.assertEqual(self.roster_set(c, jid).get("type"), "result")
        r = self.roster_set(c, "c@example.org")
        self.assertEqual(r.get("type"), "error")
        self.assertEqual(error_condition(r), "not-allowed")
        # An existing item can still change.
        self.assertEqual(self.roster_set(c, "a@example.org", name="Anna").get("type"), "result")
        r = self.roster_set(c, "a@example.org", name="Anna-Maria")  # 10 bytes > 8
        self.assertEqual(error_condition(r), "not-acceptable")
        r = self.roster_set(c, "a@example.org", groups=["Family"])  # 6 bytes > 5
        self.assertEqual(error_condition(r), "not-acceptable")
        self.assertEqual(self.roster_set(c, "a@example.org", name="Anna",
                                         groups=["Fam"]).get("type"), "result")
        # A subscription request or a pre-approval would add a third item.
        m = c.mark()
        for ptype in ("subscribe", "subscribed"):
            self.send(c, "<presence to='other@localhost' type='%s'/>" % ptype)
            err = self.wait_presence(c, m, "error")
            self.assertEqual(err["error"]["condition"], "resource-constraint")
            m = c.mark()
        items = self.roster_items(c)
        self.assertEqual(sorted(items), ["a@example.org", "b@example.org"])
        self.assertEqual(items["a@example.org"]["name"], "Anna")
