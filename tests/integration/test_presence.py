"""Presence subscriptions and presence (RFC 6121 §3, §4, mod_roster), with
two and three slixmpp clients that never answer subscriptions by
themselves: the full handshake both ways, pre-approval (§3.4), denial,
cancellation and unsubscription (§3.2, §3.3), removal of a subscribed
contact (§2.5.2), a request to an offline user delivered at each of its
next logins (§3.1.3), a request to an unknown user, initial presence,
probes and broadcast (§4.2-§4.5), unavailable presence when a connection
drops, directed presence and its unavailable at logout (§4.6), the probe
of an offline contact answered with its last unavailable presence and
<delay/> (§4.3.2, XEP-0203), and the last activity of an account
(XEP-0012 §3); and what a deleted account (XEP-0077 §3.2, through
mod_register when it is built) leaves in its contacts' rosters."""
import os
import time
import unittest

from harness import DOMAIN, T_SHORT, TERN_MODULES
from test_roster import (NS_DELAY, NS_LAST, NS_ROSTER, RosterCase, bare, error_condition,
                         items_of, q)

NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank", "ivan", "judy",
         "kate", "leo", "mike", "nina", "oscar", "paul", "rose", "sid", "tina", "uma", "vic",
         "walt", "xena", "yuri"]
USERS = {u: u + "-pw" for u in NAMES}
CONFIG = {"modules": {"roster": {}}}


def ptype(s):
    return s.xml.get("type") or "available"


class SubscriptionTests(RosterCase):
    server_kwargs = dict(users=USERS, config=CONFIG)

    def test_full_handshake_both_ways(self):
        a = self.client("alice", "home")
        b = self.client("bob", "work")
        ma, mb = a.mark(), b.mark()

        # §3.1.1-§3.1.3: alice asks; her server stamps her bare JID.
        self.send(a, "<presence to='bob@localhost' type='subscribe'><status>hi</status>"
                     "</presence>")
        self.wait_push(a, bare("bob"), ma, subscription="none", ask="subscribe")
        req = self.wait_presence(b, mb, "subscribe", bare("alice"))
        self.assertEqual(str(req["to"]), bare("bob"))
        self.assertEqual(req["status"], "hi")
        # Pending in is not a roster item of bob's yet.
        self.assertNotIn(bare("alice"), self.roster_items(b))

        # §3.1.5: bob approves.
        self.send(b, "<presence to='alice@localhost' type='subscribed'/>")
        self.wait_push(b, bare("alice"), mb, subscription="from", ask=None)
        self.wait_push(a, bare("bob"), ma, subscription="to", ask=None)
        ok = self.wait_presence(a, ma, "subscribed", bare("bob"))
        self.assertEqual(str(ok["to"]), bare("alice"))
        self.wait_presence(a, ma, "available", b.jid)  # §3.1.6: bob's presence follows

        # The reverse.
        self.send(b, "<presence to='alice@localhost' type='subscribe'/>")
        self.wait_push(b, bare("alice"), mb, subscription="from", ask="subscribe")
        self.wait_presence(a, ma, "subscribe", bare("bob"))
        self.send(a, "<presence to='bob@localhost' type='subscribed'/>")
        self.wait_push(a, bare("bob"), ma, subscription="both")
        self.wait_push(b, bare("alice"), mb, subscription="both", ask=None)
        self.wait_presence(b, mb, "subscribed", bare("alice"))
        self.wait_presence(b, mb, "available", a.jid)

        self.quiet([], within=T_SHORT)
        self.assertEqual(self.roster_items(a)[bare("bob")]["subscription"], "both")
        self.assertEqual(self.roster_items(b)[bare("alice")]["subscription"], "both")
        # Exactly what each side should have seen, nothing more.
        self.assertEqual([(ptype(s), str(s["from"])) for s in self.presences(a, ma)],
                         [("subscribed", bare("bob")), ("available", b.jid),
                          ("subscribe", bare("bob"))])
        self.assertEqual([(ptype(s), str(s["from"])) for s in self.presences(b, mb)],
                         [("subscribe", bare("alice")), ("subscribed", bare("alice")),
                          ("available", a.jid)])
        self.assertEqual(len(self.pushes(a, ma)), 3)
        self.assertEqual(len(self.pushes(b, mb)), 3)

    def test_pre_approval(self):
        """§3.4: a subscribed before any request is kept and answers it at once."""
        c = self.client("carol")
        d = self.client("dave")
        mc, md = c.mark(), d.mark()
        self.send(c, "<presence to='dave@localhost' type='subscribed'/>")
        self.wait_push(c, bare("dave"), mc, subscription="none", approved="true")
        self.quiet([(d, md)])

        mc = c.mark()
        self.send(d, "<presence to='carol@localhost' type='subscribe'/>")
        self.wait_push(d, bare("carol"), md, subscription="none", ask="subscribe")
        self.wait_presence(d, md, "subscribed", bare("carol"))
        self.wait_push(d, bare("carol"), md, subscription="to", ask=None)
        self.wait_presence(d, md, "available", c.jid)
        self.wait_push(c, bare("dave"), mc, subscription="from", approved=None)
        # carol's client never sees the request.
        self.quiet([(c, mc)], allow=lambda s: s.name == "iq")
        self.assertEqual(self.presences(c, mc), [])

    def test_denial_and_cancelled_request(self):
        e = self.client("erin")
        f = self.client("frank")
        me, mf = e.mark(), f.mark()
        # §3.2.1: frank denies.
        self.send(e, "<presence to='frank@localhost' type='subscribe'/>")
        self.wait_presence(f, mf, "subscribe", bare("erin"))
        me = e.mark()
        self.send(f, "<presence to='erin@localhost' type='unsubscribed'/>")
        self.wait_push(e, bare("frank"), me, subscription="none", ask=None)
        self.wait_presence(e, me, "unsubscribed", bare("frank"))
        self.assertNotIn(bare("erin"), self.roster_items(f))
        self.quiet([(f, mf)], allow=lambda s: ptype(s) == "subscribe" or s.name == "iq")
        self.assertEqual(self.pushes(f, mf), [])

        # §3.3.1: erin asks again, then withdraws before frank answers.
        mf = f.mark()
        self.send(e, "<presence to='frank@localhost' type='subscribe'/>")
        self.wait_presence(f, mf, "subscribe", bare("erin"))
        me = e.mark()
        self.send(e, "<presence to='frank@localhost' type='unsubscribe'/>")
        self.wait_push(e, bare("frank"), me, subscription="none", ask=None)
        self.wait_presence(f, mf, "unsubscribe", bare("erin"))
        # The withdrawn request is not delivered again at frank's next login.
        f.disconnect()
        f2 = self.client("frank", "again")
        self.quiet([(f2, 0)], allow=lambda s: s.name == "iq" or
                   (ptype(s) == "available" and str(s["from"]) == f2.jid))

    def test_unsubscribe_and_unsubscribed_after_both(self):
        g = self.client("gina")
        h = self.client("hank")
        self.subscribe_both(g, h)
        mg, mh = g.mark(), h.mark()
        # §3.3: gina stops receiving hank's presence.
        self.send(g, "<presence to='hank@localhost' type='unsubscribe'/>")
        self.wait_push(g, bare("hank"), mg, subscription="from")
        self.wait_presence(h, mh, "unsubscribe", bare("gina"))
        self.wait_push(h, bare("gina"), mh, subscription="to")
        self.wait_presence(g, mg, "unavailable", h.jid)
        # §3.2: gina cancels hank's subscription to her.
        mg, mh = g.mark(), h.mark()
        self.send(g, "<presence to='hank@localhost' type='unsubscribed'/>")
        self.wait_push(g, bare("hank"), mg, subscription="none")
        self.wait_presence(h, mh, "unavailable", g.jid)
        self.wait_presence(h, mh, "unsubscribed", bare("gina"))
        self.wait_push(h, bare("gina"), mh, subscription="none")
        self.quiet([])
        self.assertEqual([ptype(s) for s in self.presences(h, mh)],
                         ["unavailable", "unsubscribed"])
        self.assertEqual(self.presences(g, mg), [])
        # Presence no longer flows either way.
        mg, mh = g.mark(), h.mark()
        self.send(g, "<presence><show>away</show></presence>")
        self.send(h, "<presence><show>away</show></presence>")
        self.quiet([(g, mg), (h, mh)],
                   allow=lambda s: str(s["from"]) in (g.jid, h.jid) and
                   str(s["to"]) in (g.jid, h.jid) and
                   str(s["from"]).split("/")[0] == str(s["to"]).split("/")[0])

    def test_remove_cancels_both_ways(self):
        """§2.5.2: removing a contact sends unsubscribe and unsubscribed."""
        i = self.client("ivan")
        j = self.client("judy")
        self.subscribe_both(i, j)
        mi, mj = i.mark(), j.mark()
        r = self.roster_set(i, bare("judy"), subscription="remove")
        self.assertEqual(r.get("type"), "result")
        self.wait_push(i, bare("judy"), mi, subscription="remove")
        self.wait_presence(j, mj, "unsubscribe", bare("ivan"))
        self.wait_presence(j, mj, "unavailable", i.jid)
        self.wait_presence(j, mj, "unsubscribed", bare("ivan"))
        self.wait_push(j, bare("ivan"), mj, subscription="none", ask=None)
        self.quiet([])
        self.assertEqual(sorted(ptype(s) for s in self.presences(j, mj)),
                         ["unavailable", "unsubscribe", "unsubscribed"])
        self.assertNotIn(bare("judy"), self.roster_items(i))
        self.assertEqual(self.roster_items(j)[bare("ivan")]["subscription"], "none")

    def test_request_to_offline_user_delivered_at_login(self):
        """§3.1.3: stored, delivered at each login until answered."""
        k = self.client("kate")
        mk = k.mark()
        self.send(k, "<presence to='leo@localhost' type='subscribe'>"
                     "<status>let me in</status></presence>")
        self.wait_push(k, bare("leo"), mk, subscription="none", ask="subscribe")
        for resource in ("first", "second"):
            leo = self.client("leo", resource)
            req = self.wait_presence(leo, 0, "subscribe", bare("kate"))
            self.assertEqual(req["status"], "let me in")
            if resource == "first":
                leo.disconnect()
        self.assertEqual(len(self.presences(leo, 0, "subscribe")), 1)
        mk = k.mark()
        self.send(leo, "<presence to='kate@localhost' type='subscribed'/>")
        self.wait_presence(k, mk, "subscribed", bare("leo"))
        self.wait_push(k, bare("leo"), mk, subscription="to")
        self.wait_presence(k, mk, "available", leo.jid)
        leo.disconnect()
        leo = self.client("leo", "third")
        self.quiet([(leo, 0)], allow=lambda s: s.name == "iq" or ptype(s) == "available")

    def test_subscribe_to_unknown_user(self):
        """§3.1.3: the unknown contact's server answers unsubscribed."""
        m = self.client("mike")
        mm = m.mark()
        self.send(m, "<presence to='nobody@localhost' type='subscribe'/>")
        self.wait_push(m, "nobody@localhost", mm, ask="subscribe")
        self.wait_presence(m, mm, "unsubscribed", "nobody@localhost")
        self.wait_push(m, "nobody@localhost", mm, subscription="none", ask=None)
        # Other presence to an unknown user goes nowhere, silently (§8.5.1).
        mm = m.mark()
        self.send(m, "<presence to='nobody@localhost'/>")
        self.send(m, "<presence to='nobody@localhost' type='probe'/>")
        self.send(m, "<presence to='nobody@localhost/res' type='unavailable'/>")
        self.quiet([(m, mm)])


class PresenceTests(RosterCase):
    server_kwargs = dict(users=USERS, config=CONFIG)

    def test_initial_presence_probes_and_other_resources(self):
        n = self.client("nina", "desk")
        o = self.client("oscar", "r1")
        self.subscribe_both(n, o)
        mn = n.mark()
        o.disconnect()
        self.wait_presence(n, mn, "unavailable", o.jid)

        # §4.2, §4.3: oscar comes back: nina's presence (the probe's answer)
        # reaches him, his reaches her.
        mn = n.mark()
        o2 = self.client("oscar", "r2")
        p = self.wait_presence(o2, 0, "available", n.jid)
        self.assertEqual(str(p["to"]).split("/")[0], bare("oscar"))
        self.wait_presence(n, mn, "available", o2.jid)
        self.wait_presence(o2, 0, "available", o2.jid)  # §4.2.2: to itself too
        # A second resource gets the first one's presence (§4.2.2) and
        # nina's; the first one gets the second's.
        m2 = o2.mark()
        o3 = self.client("oscar", "r3")
        self.wait_presence(o3, 0, "available", o2.jid)
        self.wait_presence(o3, 0, "available", n.jid)
        self.wait_presence(o2, m2, "available", o3.jid)
        self.quiet([(n, mn)], allow=lambda s: ptype(s) == "available" and
                   str(s["from"]) in (o2.jid, o3.jid))
        self.assertEqual(len(self.presences(n, mn)), 2)

    def test_updates_and_unavailable_broadcast(self):
        p = self.client("paul")
        r = self.client("rose")
        self.subscribe_both(p, r)
        mr, mp = r.mark(), p.mark()
        self.send(p, "<presence><show>away</show><status>lunch</status></presence>")
        upd = self.wait_presence(r, mr, "available", p.jid)
        self.assertEqual(upd["show"], "away")
        self.assertEqual(upd["status"], "lunch")
        self.send(p, "<presence type='unavailable'><status>bye</status></presence>")
        un = self.wait_presence(r, mr, "unavailable", p.jid)
        self.assertEqual(un["status"], "bye")
        self.quiet([(r, mr)], allow=lambda s: str(s["from"]) == p.jid)
        self.assertEqual([ptype(s) for s in self.presences(r, mr)],
                         ["available", "unavailable"])
        # Available again: a new initial presence, so rose's presence comes back.
        mr, mp = r.mark(), p.mark()
        self.send(p, "<presence/>")
        self.wait_presence(r, mr, "available", p.jid)
        self.wait_presence(p, mp, "available", r.jid)

    def test_unavailable_when_the_connection_drops(self):
        """§4.5.2: no unavailable from the client: the server sends it."""
        s = self.client("sid")
        t = self.client("tina")
        self.subscribe_both(s, t)
        ms = s.mark()
        tina = t.jid
        t.kill()
        self.wait_presence(s, ms, "unavailable", tina)
        self.quiet([(s, ms)], allow=lambda x: ptype(x) == "unavailable")
        self.assertEqual(len(self.presences(s, ms)), 1)

    def test_directed_presence(self):
        """§4.6: directed presence to a non-contact, its unavailable at logout."""
        u = self.client("uma", "one")
        v = self.client("vic", "res")
        mv = v.mark()
        self.send(u, "<presence to='vic@localhost/res'><status>psst</status></presence>")
        p = self.wait_presence(v, mv, "available", u.jid)
        self.assertEqual(p["status"], "psst")
        uma = u.jid
        u.kill()
        self.wait_presence(v, mv, "unavailable", uma)

        # Directed unavailable takes the JID off the list: nothing at logout.
        u2 = self.client("uma", "two")
        mv = v.mark()
        self.send(u2, "<presence to='vic@localhost'/>")
        self.wait_presence(v, mv, "available", u2.jid)
        self.send(u2, "<presence to='vic@localhost' type='unavailable'/>")
        self.wait_presence(v, mv, "unavailable", u2.jid)
        u2.kill()
        self.quiet([(v, mv)], allow=lambda s: str(s["from"]) == u2.jid)
        self.assertEqual(len(self.presences(v, mv)), 2)

        # Broadcast unavailable reaches the directed JIDs too.
        u3 = self.client("uma", "three")
        mv = v.mark()
        self.send(u3, "<presence to='vic@localhost'/>")
        self.wait_presence(v, mv, "available", u3.jid)
        self.send(u3, "<presence type='unavailable'/>")
        self.wait_presence(v, mv, "unavailable", u3.jid)
        # Presence to an unavailable resource or an unknown user: dropped.
        mu = u3.mark()
        self.send(u3, "<presence to='vic@localhost/gone'/>")
        self.send(u3, "<presence to='nobody@localhost'/>")
        self.quiet([(u3, mu)])

    def test_offline_contact_and_last_activity(self):
        """§4.3.2: the probe of an offline contact is answered with its last
        unavailable presence and XEP-0203 <delay/>; XEP-0012 §3 last activity."""
        w = self.client("walt")
        x = self.client("xena")
        y = self.client("yuri")
        self.subscribe_both(w, x)
        # Online: last activity 0.
        r = w.iq("<query xmlns='%s'/>" % NS_LAST, to=bare("xena"))
        self.assertEqual(r.get("type"), "result")
        self.assertEqual(r.find(q(NS_LAST, "query")).get("seconds"), "0")

        self.send(x, "<presence type='unavailable'><status>gone fishing</status></presence>")
        x.sync()
        x.disconnect()
        w.disconnect()
        time.sleep(1.1)
        w2 = self.client("walt", "back")
        p = self.wait_presence(w2, 0, "unavailable", bare("xena"))
        self.assertEqual(p["status"], "gone fishing")
        delay = p.xml.find(q(NS_DELAY, "delay"))
        self.assertIsNotNone(delay)
        self.assertEqual(delay.get("from"), DOMAIN)
        self.assertRegex(delay.get("stamp"), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

        r = w2.iq("<query xmlns='%s'/>" % NS_LAST, to=bare("xena"))
        self.assertEqual(r.get("type"), "result")
        query = r.find(q(NS_LAST, "query"))
        self.assertGreaterEqual(int(query.get("seconds")), 1)
        self.assertLess(int(query.get("seconds")), 60)
        self.assertEqual(query.text, "gone fishing")
        # Not subscribed to xena's presence: forbidden (XEP-0012 §3).
        r = y.iq("<query xmlns='%s'/>" % NS_LAST, to=bare("xena"))
        self.assertEqual(r.get("type"), "error")
        self.assertEqual(error_condition(r), "forbidden")
        # A probe from someone not subscribed reveals nothing (§4.3.2: the
        # unsubscribed answer changes nothing in yuri's roster, so his
        # server does not deliver it either, A.3.4).
        my = y.mark()
        self.send(y, "<presence to='xena@localhost' type='probe'/>")
        self.quiet([(y, my)])


@unittest.skipUnless(os.path.exists(os.path.join(TERN_MODULES, "mod_register.so")),
                     "mod_register is not built")
class AccountDeletionTests(RosterCase):
    server_kwargs = dict(users={"zack": "zack-pw", "amy": "amy-pw"},
                         config={"modules": {"roster": {}, "register": {}}})

    def test_deleted_contact_loses_its_subscriptions(self):
        z = self.client("zack")
        a = self.client("amy")
        self.subscribe_both(z, a)
        ma = a.mark()
        zack = z.jid
        r = z.iq("<query xmlns='jabber:iq:register'><remove/></query>", to=None, itype="set")
        self.assertEqual(r.get("type"), "result")
        # The session ends without unavailable: the server sends it (§4.5.2)...
        self.wait_presence(a, ma, "unavailable", zack)
        # ...and amy's roster keeps zack without any subscription.
        self.wait_push(a, bare("zack"), ma, subscription="none", ask=None)
        self.assertEqual(self.roster_items(a)[bare("zack")]["subscription"], "none")
        # A new account with the same name starts with an empty roster and
        # no subscription to amy.
        self.server.add_user("zack", "zack-pw2")
        self.server.users["zack"] = "zack-pw2"
        z2 = self.client("zack", "new")
        self.assertEqual(self.roster_items(z2), {})
        ma = a.mark()
        self.send(z2, "<presence/>")
        self.quiet([(a, ma)], allow=lambda s: s.name == "iq")
        self.assertEqual(self.presences(a, ma), [])

    def test_ternctl_deluser_on_a_running_server_cancels_subscriptions(self):
        z = self.client("zack")
        a = self.client("amy")
        self.subscribe_both(z, a)
        ma = a.mark()
        zack = z.jid
        self.server.ternctl_ok("deluser", "zack@localhost")
        del self.server.users["zack"]
        self.wait_presence(a, ma, "unavailable", zack)
        self.wait_push(a, bare("zack"), ma, subscription="none", ask=None)
        self.assertEqual(self.roster_items(a)[bare("zack")]["subscription"], "none")
