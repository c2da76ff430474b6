"""mod_invites: XEP-0401 invitations and XEP-0445 pre-authenticated in-band
registration, with tokens made by `ternctl invite`.

`ternctl invite` prints the XEP-0401 URI and the token.  With registration
closed, a stream that presents a token (<preauth xmlns='urn:xmpp:pars:0'/>)
may create exactly one account: the token is used up by the account, not by
the preauth, so a second stream with the same token fails, and so does the
same token later.  Unknown and expired tokens get item-not-found; expiry is
checked at preauth only.  A token naming a username creates only that
account, and keeps the name from others until it expires.  When
registration is open, a token also bypasses the per-address throttle."""
import re
import time
import unittest
from xml.sax.saxutils import escape

from harness import DOMAIN, LoginFailed, ServerTestCase, q, stanza_error

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
                ((), 2, "arguments")):
            with self.subTest(args=args):
                r = self.server.ternctl("invite", *args)
                self.assertEqual(r.returncode, code, r.stderr)
                self.assertIn(text, r.stderr)
                self.assertEqual(r.stdout, "")
        r = self.server.ternctl("users", "--expires", "1h")
        self.assertEqual(r.returncode, 2)

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
