"""mod_invites: XEP-0401 invitations and XEP-0445 pre-authenticated in-band
registration, with tokens made by `ternctl invite`.

`ternctl invite` prints the XEP-0401 URI and the token.  With registration
closed, a stream that presents a token (<preauth xmlns='urn:xmpp:pars:0'/>)
may create exactly one account: the token is used up by the account, not by
the preauth, so a second stream with the same token fails, and so does the
same token later.  Unknown and expired tokens get item-not-found; expiry is
checked at preauth only.  A token naming a username creates only that
account, and keeps the name from others until it expires.  When
registration is open, a token also bypasses the per-address throttle.

User invitations (`ternctl invite USER@HOST`) also make contacts: the
account created with one and the inviter end up with subscription 'both'
on both rosters (XEP-0401 §5.5), the inviter's online resources getting the
push; and a subscription request carrying the token (XEP-0379), from an
existing local account or from another server, is approved for the
inviter, who subscribes back, and uses the token up.  A bad token leaves a
plain request.  `--roster-only` tokens (no ibr=y) create no account."""
import re
import time
import unittest
from xml.sax.saxutils import escape

from harness import (DOMAIN, T_SHORT, LoginFailed, ServerTestCase, q, stanza_error)
from test_roster import RClient, RosterCase, bare, items_of

NS_REGISTER = "jabber:iq:register"
NS_FEATURE = "http://jabber.org/features/iq-register"
NS_IBR_TOKEN = "urn:xmpp:ibr-token:0"
NS_PARS = "urn:xmpp:pars:0"

TOKEN_RE = r"[A-Za-z0-9]{24,}"


def reg_query(username, password):
    return ("<query xmlns='%s'><username>%s</username><password>%s</password></query>"
            % (NS_REGISTER, escape(username), escape(password)))


class InviteHelpers:
    def invite(self, *args):
        """Run `ternctl invite ARGS`; returns (uri, token) from its two lines."""
        r = self.server.ternctl_ok("invite", *args)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 2, r.stdout)
        return lines[0], lines[1]

    def unauth(self):
        c = self.raw()
        c.open_stream()
        c.starttls()
        return c

    def preauth(self, c, token):
        return c.iq("<preauth xmlns='%s' token='%s'/>" % (NS_PARS, escape(token, {"'": "&apos;"})),
                    type_="set", to=DOMAIN)

    def register(self, c, user, password):
        return c.iq(reg_query(user, password), type_="set")

    def assert_result(self, el):
        self.assertEqual(el.get("type"), "result", stanza_error(el))

    def assert_error(self, el, etype, cond):
        self.assertEqual(el.get("type"), "error")
        self.assertEqual(stanza_error(el), (etype, cond))

    def users(self):
        return self.server.ternctl_ok("users", DOMAIN).stdout.split()

    def register_with(self, token, user, password):
        """A fresh stream: preauth with `token`, then register; returns the answer."""
        c = self.unauth()
        self.assert_result(self.preauth(c, token))
        return self.register(c, user, password)


class TernctlInviteTests(InviteHelpers, ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-password"},
                         config={"modules": {"register": {}, "invites": {}}})

    def test_host_invitation(self):
        r = self.server.ternctl_ok("invite", DOMAIN)
        uri, token = r.stdout.splitlines()
        self.assertRegex(token, "^%s$" % TOKEN_RE)
        self.assertEqual(uri, "xmpp:localhost?register;preauth=%s" % token)  # XEP-0401 §5.4
        self.assertIn("valid until", r.stderr)
        self.assertNotEqual(self.invite(DOMAIN)[1], token)

    def test_host_invitation_with_username(self):
        uri, token = self.invite(DOMAIN, "--username", "Juliet", "--expires", "1h")
        self.assertEqual(uri, "xmpp:juliet@localhost?register;preauth=%s" % token)

    def test_user_invitation(self):
        uri, token = self.invite("alice@localhost")
        self.assertEqual(uri, "xmpp:alice@localhost?roster;preauth=%s;ibr=y" % token)  # §5.1

    def test_roster_only_invitation(self):
        """XEP-0401 §5.1: no ibr=y when the token creates no account."""
        uri, token = self.invite("alice@localhost", "--roster-only")
        self.assertEqual(uri, "xmpp:alice@localhost?roster;preauth=%s" % token)

    def test_refusals(self):
        for args, code, text in (
                (("unknown.example",), 1, "unknown host"),
                (("nobody@localhost",), 1, "no such account"),
                ((DOMAIN, "--username", "alice"), 1, "account exists"),
                ((DOMAIN, "--username", "two words"), 1, "invalid username"),
                (("alice@localhost", "--username", "x"), 2, "--username"),
                ((DOMAIN, "--expires", "soon"), 2, "duration"),
                ((DOMAIN, "--expires", "0"), 2, "duration"),
                ((DOMAIN, "--expires", "99999d"), 2, "duration"),
                ((DOMAIN, "--roster-only"), 2, "--roster-only"),
                (("nobody@localhost", "--roster-only"), 1, "no such account"),
                ((), 2, "arguments")):
            with self.subTest(args=args):
                r = self.server.ternctl("invite", *args)
                self.assertEqual(r.returncode, code, r.stderr)
                self.assertIn(text, r.stderr)
                self.assertEqual(r.stdout, "")
        for flag in (("--expires", "1h"), ("--roster-only",)):
            r = self.server.ternctl("users", *flag)
            self.assertEqual(r.returncode, 2)
            self.assertIn("takes no --expires", r.stderr)

    def test_warns_when_the_module_is_off(self):
        conf = self.server.config
        self.server.write_config(dict(conf, modules={"register": {}}))
        try:
            r = self.server.ternctl_ok("invite", DOMAIN)
        finally:
            self.server.write_config(conf)
        self.assertIn("module 'invites' is not enabled", r.stderr)


class InviteRegistrationTests(InviteHelpers, ServerTestCase):
    """Registration closed: only invitations create accounts."""
    server_kwargs = dict(users={"alice": "alice-password"},
                         config={"modules": {"register": {}, "invites": {}}})

    def test_stream_features(self):
        c = self.unauth()
        self.assertIsNotNone(c.features.find(q(NS_IBR_TOKEN, "register")))  # XEP-0445 §3
        self.assertIsNone(c.features.find(q(NS_FEATURE, "register")))

    def test_register_with_a_token(self):
        uri, token = self.invite(DOMAIN)
        c = self.unauth()
        self.assert_error(self.register(c, "juliet", "juliet-password"), "cancel", "not-allowed")
        self.assert_result(self.preauth(c, token))
        form = c.iq("<query xmlns='%s'/>" % NS_REGISTER)
        self.assert_result(form)
        self.assertIsNotNone(form.find("%s/%s" % (q(NS_REGISTER, "query"),
                                                  q(NS_REGISTER, "username"))))
        self.assert_result(self.register(c, "juliet", "juliet-password"))
        self.assertIn("juliet@localhost", self.users())
        # One account per token, even on the same stream.
        self.assert_error(self.register(c, "juliet2", "juliet2-password"), "cancel",
                          "not-allowed")
        self.assertEqual(c.auth_scram("juliet", "juliet-password"), ("success", None))
        c.restart()
        c.bind("invited")
        self.assertEqual(c.ping(), "result")
        self.assertEqual(self.slix("juliet", password="juliet-password").ping(), "result")
        # The same token a second time fails.
        again = self.unauth()
        err = self.preauth(again, token)
        self.assert_error(err, "cancel", "item-not-found")
        self.assert_error(self.register(again, "romeo", "romeo-password"), "cancel",
                          "not-allowed")
        self.assertNotIn("romeo@localhost", self.users())

    def test_token_is_used_by_the_account_not_by_preauth(self):
        """XEP-0445 §4: two streams may present the same token; the first
        account uses it up and the other stream creates none."""
        _, token = self.invite(DOMAIN)
        first, second = self.unauth(), self.unauth()
        self.assert_result(self.preauth(first, token))
        self.assert_result(self.preauth(second, token))
        self.assert_result(self.register(second, "winner", "winner-password"))
        self.assert_error(self.register(first, "loser", "loser-password"), "cancel",
                          "not-allowed")
        users = self.users()
        self.assertIn("winner@localhost", users)
        self.assertNotIn("loser@localhost", users)

    def test_failed_registration_keeps_the_token(self):
        _, token = self.invite(DOMAIN)
        c = self.unauth()
        self.assert_result(self.preauth(c, token))
        self.assert_error(self.register(c, "alice", "some-password"), "cancel", "conflict")
        self.assert_error(self.register(c, "shorty", "short"), "modify", "not-acceptable")
        self.assert_result(self.register(c, "patient", "patient-password"))

    def test_unknown_and_malformed_tokens(self):
        c = self.unauth()
        for token in ("A" * 32, "not a token", "x" * 500, "<&>'\"", ""):
            with self.subTest(token=token):
                err = self.preauth(c, token)
                self.assert_error(err, "cancel", "item-not-found")
        self.assert_error(c.iq("<preauth xmlns='%s'/>" % NS_PARS, type_="set"), "modify",
                          "bad-request")
        self.assert_error(self.register(c, "guesser", "guesser-password"), "cancel",
                          "not-allowed")

    def test_expired_token(self):
        _, token = self.invite(DOMAIN, "--expires", "1s")
        time.sleep(1.3)
        c = self.unauth()
        self.assert_error(self.preauth(c, token), "cancel", "item-not-found")
        self.assert_error(self.register(c, "late", "late-password"), "cancel", "not-allowed")
        self.assertNotIn("late@localhost", self.users())

    def test_expiry_is_checked_at_preauth_only(self):
        _, token = self.invite(DOMAIN, "--expires", "2s")
        c = self.unauth()
        self.assert_result(self.preauth(c, token))
        time.sleep(2.3)
        self.assert_result(self.register(c, "slow", "slow-password"))
        self.assertIn("slow@localhost", self.users())

    def test_token_for_one_username(self):
        uri, token = self.invite(DOMAIN, "--username", "mercutio")
        c = self.unauth()
        self.assert_result(self.preauth(c, token))
        form = c.iq("<query xmlns='%s'/>" % NS_REGISTER)
        self.assertEqual(form.find("%s/%s" % (q(NS_REGISTER, "query"),
                                              q(NS_REGISTER, "username"))).text, "mercutio")
        r = self.register(c, "tybalt", "tybalt-password")
        self.assert_error(r, "modify", "not-acceptable")
        self.assertNotIn("tybalt@localhost", self.users())
        # The name is reserved for this token: another invitation cannot take it.
        _, other = self.invite(DOMAIN)
        self.assert_error(self.register_with(other, "Mercutio", "thief-password"), "cancel",
                          "conflict")
        self.assert_result(self.register(c, "MERCUTIO", "mercutio-password"))
        self.assertIn("mercutio@localhost", self.users())
        # The other token was not used by the refusal.
        self.assert_result(self.register_with(other, "benvolio", "benvolio-password"))

    def test_user_invitation_allows_registration(self):
        """XEP-0401 §5.1: ibr=y, the roster token creates an account too."""
        _, token = self.invite("alice@localhost")
        self.assert_result(self.register_with(token, "nurse", "nurse-password"))
        self.assertEqual(self.slix("nurse", password="nurse-password").ping(), "result")

    def test_preauth_then_leave(self):
        """A stream that presented a token and went away uses nothing up."""
        _, token = self.invite(DOMAIN)
        c = self.unauth()
        self.assert_result(self.preauth(c, token))
        c.end()
        self.assert_result(self.register_with(token, "returning", "returning-password"))


NS_PARS_PREAUTH = "<preauth xmlns='%s' token='%%s'/>" % NS_PARS
EXT = "ext.localhost"        # another server, played by a component
EXT_SECRET = "ext-secret"
CONTACT_USERS = ["romeo", "paris", "capulet", "friar", "lady", "prince", "escalus",
                 "mercutio", "benvolio", "tybalt", "sampson", "gregory", "abram", "peter",
                 "balthasar"]


def ptype(s):
    return s.xml.get("type") or "available"


class UserInvitationContactTests(InviteHelpers, RosterCase):
    """User invitations with mod_roster: XEP-0401 §5.5 and XEP-0379.  Each
    test has its own inviter, so that no test sees another's contacts."""
    server_kwargs = dict(users={u: u + "-password" for u in CONTACT_USERS},
                         components={EXT: EXT_SECRET},
                         config={"modules": {"register": {}, "invites": {}, "roster": {}}})

    def login(self, user, password, resource=None):
        """A logged-in client that asked for its roster and is available."""
        c = RClient(self.server, user, password=password, resource=resource)
        self._clients.append(c)
        c.connect(presence=False)
        self.roster_get(c)
        c.send_presence()
        return c

    def request(self, c, to, token=None):
        payload = NS_PARS_PREAUTH % escape(token, {"'": "&apos;"}) if token is not None else ""
        self.send(c, "<presence to='%s' type='subscribe'>%s</presence>" % (to, payload))

    def kinds(self, c, since, frm=None):
        """(type, from) of every presence `c` got since the mark."""
        return [(ptype(s), str(s["from"])) for s in self.presences(c, since, frm=frm)]

    # ---- XEP-0401 §5.5: an account made with a user invitation ----

    def test_registration_makes_the_inviter_a_contact(self):
        romeo = self.login("romeo", "romeo-password", "home")
        away = self.login("romeo", "romeo-password", "away")
        self.wait_presence(romeo, 0, "available", away.jid)
        mr, ma = romeo.mark(), away.mark()
        _, token = self.invite("romeo@localhost")
        self.assert_result(self.register_with(token, "juliet", "juliet-password"))
        # The inviter learns of the new contact at once, by a push (§5.5).
        for c, m in ((romeo, mr), (away, ma)):
            self.wait_push(c, bare("juliet"), m, subscription="both", ask=None, approved=None,
                           name=None, groups=[])
        self.quiet([(romeo, mr), (away, ma)], allow=lambda s: s.name == "iq")
        self.assertEqual(len(self.pushes(romeo, mr)), 1)
        self.assertEqual(self.kinds(romeo, mr), [])  # no subscription stanzas to answer

        # The new user has the inviter in her roster and sees his presence...
        mr = romeo.mark()
        juliet = RClient(self.server, "juliet", password="juliet-password", resource="balcony")
        self._clients.append(juliet)
        juliet.connect(presence=False)
        items = self.roster_items(juliet)
        self.assertEqual(items, {bare("romeo"): dict(subscription="both", ask=None,
                                                     approved=None, name=None, groups=[])})
        mj = juliet.mark()
        juliet.send_presence()
        self.wait_presence(juliet, mj, "available", romeo.jid)
        self.wait_presence(juliet, mj, "available", away.jid)
        # ... and he sees hers.
        self.wait_presence(romeo, mr, "available", juliet.jid)
        self.wait_presence(away, ma, "available", juliet.jid)
        self.assertEqual(self.roster_items(romeo)[bare("juliet")]["subscription"], "both")
        self.quiet([(juliet, mj)], allow=lambda s: s.name == "iq" or (
            ptype(s) == "available" and str(s["from"]) in (romeo.jid, away.jid, juliet.jid)))
        # The token is used up.
        self.assert_error(self.preauth(self.unauth(), token), "cancel", "item-not-found")

    def test_inviter_offline_at_registration(self):
        _, token = self.invite("capulet@localhost")
        self.assert_result(self.register_with(token, "rosaline", "rosaline-password"))
        rosaline = self.login("rosaline", "rosaline-password")
        self.assertEqual(self.roster_items(rosaline)[bare("capulet")]["subscription"], "both")
        mr = rosaline.mark()
        capulet = self.login("capulet", "capulet-password")
        self.assertEqual(self.roster_items(capulet)[bare("rosaline")]["subscription"], "both")
        self.wait_presence(rosaline, mr, "available", capulet.jid)
        self.wait_presence(capulet, 0, "available", rosaline.jid)

    def test_host_invitation_makes_no_contact(self):
        _, token = self.invite(DOMAIN)
        self.assert_result(self.register_with(token, "stranger", "stranger-password"))
        self.assertEqual(self.roster_items(self.login("stranger", "stranger-password")), {})

    def test_roster_only_token_creates_no_account(self):
        _, token = self.invite("prince@localhost", "--roster-only")
        c = self.unauth()
        self.assert_error(self.preauth(c, token), "cancel", "item-not-found")
        self.assert_error(self.register(c, "potpan", "potpan-password"), "cancel",
                          "not-allowed")
        self.assertNotIn("potpan@localhost", self.users())

    # ---- XEP-0379: a subscription request with the token ----

    def test_preauth_request_from_an_existing_account(self):
        """§3.3-§3.5: the requester pre-approves the inviter and asks with the
        token; the inviter's server approves and asks back, which the
        pre-approval answers: both at once, nobody asked anything."""
        friar = self.login("friar", "friar-password")
        merc = self.login("mercutio", "mercutio-password")
        _, token = self.invite("friar@localhost", "--roster-only")
        mf, mm = friar.mark(), merc.mark()
        self.send(merc, "<presence to='friar@localhost' type='subscribed'/>")
        self.wait_push(merc, bare("friar"), mm, approved="true")
        self.request(merc, "friar@localhost", token)
        ok = self.wait_presence(merc, mm, "subscribed", bare("friar"))
        self.assertEqual(str(ok["to"]), bare("mercutio"))
        self.wait_presence(merc, mm, "available", friar.jid)
        self.wait_push(merc, bare("friar"), mm, subscription="both", ask=None)
        self.wait_push(friar, bare("mercutio"), mf, subscription="both", ask=None,
                       approved=None, name=None)
        self.wait_presence(friar, mf, "subscribed", bare("mercutio"))
        self.wait_presence(friar, mf, "available", merc.jid)
        self.quiet([])
        self.assertEqual(self.roster_items(friar)[bare("mercutio")]["subscription"], "both")
        self.assertEqual(self.roster_items(merc)[bare("friar")]["subscription"], "both")
        # The inviter's client never saw a request; the requester's never one either.
        self.assertEqual(self.kinds(friar, mf), [("subscribed", bare("mercutio")),
                                                 ("available", merc.jid)])
        self.assertEqual(self.kinds(merc, mm), [("subscribed", bare("friar")),
                                                ("available", friar.jid)])

        # The token is used up: a second request with it is a plain one.
        ben = self.login("benvolio", "benvolio-password")
        mf, mb = friar.mark(), ben.mark()
        self.request(ben, "friar@localhost", token)
        req = self.wait_presence(friar, mf, "subscribe", bare("benvolio"))
        self.assertEqual(str(req["to"]), bare("friar"))
        self.wait_push(ben, bare("friar"), mb, subscription="none", ask="subscribe")
        self.quiet([(ben, mb)], allow=lambda s: s.name == "iq")
        self.assertNotIn(bare("benvolio"), self.roster_items(friar))
        self.assertEqual(self.roster_items(ben)[bare("friar")],
                         dict(subscription="none", ask="subscribe", approved=None, name=None,
                              groups=[]))

    def test_preauth_request_without_pre_approval(self):
        """§3.5: without the requester's pre-approval, the inviter's request
        back reaches the requester's client, which answers it."""
        lady = self.login("lady", "lady-password")
        tyb = self.login("tybalt", "tybalt-password")
        _, token = self.invite("lady@localhost")  # with ibr=y: serves both ways
        ml, mt = lady.mark(), tyb.mark()
        self.request(tyb, "lady@localhost", token)
        self.wait_presence(tyb, mt, "subscribed", bare("lady"))
        self.wait_presence(tyb, mt, "available", lady.jid)
        self.wait_presence(tyb, mt, "subscribe", bare("lady"))
        self.wait_push(tyb, bare("lady"), mt, subscription="to", ask=None)
        self.wait_push(lady, bare("tybalt"), ml, subscription="from", ask="subscribe")
        self.quiet([(lady, ml)], allow=lambda s: s.name == "iq" or (
            ptype(s) == "available" and str(s["from"]) == tyb.jid))
        self.assertEqual(self.kinds(tyb, mt), [("subscribed", bare("lady")),
                                               ("available", lady.jid),
                                               ("subscribe", bare("lady"))])
        # tybalt agrees.
        ml, mt = lady.mark(), tyb.mark()
        self.send(tyb, "<presence to='lady@localhost' type='subscribed'/>")
        self.wait_push(lady, bare("tybalt"), ml, subscription="both", ask=None)
        self.wait_presence(lady, ml, "subscribed", bare("tybalt"))
        self.wait_presence(lady, ml, "available", tyb.jid)
        self.wait_push(tyb, bare("lady"), mt, subscription="both")
        # The token was used by the request: it creates no account.
        self.assert_error(self.preauth(self.unauth(), token), "cancel", "item-not-found")

    def test_bad_tokens_leave_a_plain_request(self):
        """§4.1: an unknown, expired or someone else's token is ignored."""
        prince = self.login("prince", "prince-password")
        _, others = self.invite("paris@localhost", "--roster-only")
        _, expired = self.invite("prince@localhost", "--expires", "1s", "--roster-only")
        time.sleep(1.2)
        for user, token in (("sampson", "A" * 32), ("gregory", others), ("abram", expired),
                            ("peter", "<bad token>")):
            with self.subTest(token=token):
                c = self.login(user, user + "-password")
                mp, mc = prince.mark(), c.mark()
                self.request(c, "prince@localhost", token)
                req = self.wait_presence(prince, mp, "subscribe", bare(user))
                self.wait_push(c, bare("prince"), mc, subscription="none", ask="subscribe")
                self.quiet([(c, mc)], allow=lambda s: s.name == "iq")
                self.assertEqual(self.kinds(c, mc), [])
                self.assertNotIn(bare(user), self.roster_items(prince))
                self.assertIsNotNone(req.xml.find(q(NS_PARS, "preauth")))
        # paris's token was not used by the request to prince.
        paris = self.login("paris", "paris-password")
        bal = self.login("balthasar", "balthasar-password")
        mp, mb = paris.mark(), bal.mark()
        self.request(bal, "paris@localhost", others)
        self.wait_push(paris, bare("balthasar"), mp, subscription="from", ask="subscribe")
        self.wait_presence(bal, mb, "subscribed", bare("paris"))
        self.assertEqual(self.kinds(paris, mp), [])

    def test_preauth_request_from_another_server(self):
        """XEP-0379 between servers: the answer and the request back go out
        as stanzas (here to a component standing for the other server)."""
        escalus = self.login("escalus", "escalus-password", "palace")
        _, token = self.invite("escalus@localhost", "--roster-only")
        ext = self.raw(component=True)
        self.assertEqual(ext.handshake(EXT, EXT_SECRET).tag.split("}")[1], "handshake")
        rosa = "rosa@" + EXT
        mr = escalus.mark()
        ext.send("<presence from='%s/phone' to='escalus@localhost' type='subscribe'>%s</presence>"
                 % (rosa, NS_PARS_PREAUTH % token))
        got = []
        for _ in range(3):
            el = ext.wait_for(lambda e: e.tag.endswith("}presence"))
            got.append((el.get("type") or "available", el.get("from"), el.get("to")))
        self.assertEqual(got, [("subscribed", bare("escalus"), rosa),
                               ("available", escalus.jid, rosa),
                               ("subscribe", bare("escalus"), rosa)])
        self.assertEqual(ext.nothing_more(), [])
        self.wait_push(escalus, rosa, mr, subscription="from", ask="subscribe")
        # The other server answers the request back.
        ext.send("<presence from='%s' to='escalus@localhost' type='subscribed'/>" % rosa)
        self.wait_push(escalus, rosa, mr, subscription="both", ask=None)
        self.wait_presence(escalus, mr, "subscribed", rosa)
        self.assertEqual(self.kinds(escalus, mr), [("subscribed", rosa)])
        self.assertEqual(self.roster_items(escalus)[rosa]["subscription"], "both")

    def test_deleted_inviter_takes_its_invitations(self):
        self.server.ternctl_ok("adduser", "montague@localhost", "--password-stdin",
                               input="montague-password\n")
        _, token = self.invite("montague@localhost")
        self.server.ternctl_ok("deluser", "montague@localhost")
        self.assert_error(self.preauth(self.unauth(), token), "cancel", "item-not-found")


class OpenRegistrationInviteTests(InviteHelpers, ServerTestCase):
    """Registration open and throttled: a token does not count against it."""
    server_kwargs = dict(config={"modules": {"register": {"allow_registration": True,
                                                          "throttle_max": 1},
                                             "invites": {}}})

    def test_token_bypasses_the_throttle(self):
        self.assert_result(self.register(self.unauth(), "open1", "open1-password"))
        self.assert_error(self.register(self.unauth(), "open2", "open2-password"), "wait",
                          "resource-constraint")
        _, token = self.invite(DOMAIN)
        self.assert_result(self.register_with(token, "invited", "invited-password"))
        self.assert_error(self.register(self.unauth(), "open3", "open3-password"), "wait",
                          "resource-constraint")
        self.assertEqual(set(self.users()), {"open1@localhost", "invited@localhost"})


class DependencyTests(unittest.TestCase):
    def test_invites_needs_register(self):
        from harness import Server, ServerError
        s = Server(name="InvitesAlone", config={"modules": {"invites": {}}})
        try:
            with self.assertRaises(ServerError) as cm:
                s.start()
            self.assertIn("needs module 'register'", str(cm.exception))
        finally:
            s.stop(check=False)
            s.remove()


if __name__ == "__main__":
    unittest.main()
