"""mod_register: XEP-0077 In-Band Registration.

Closed unless allow_registration is set: then the stream feature is absent
and requests are refused.  Open: the form, account creation over STARTTLS
(then a login with slixmpp, or on the same stream), a real slixmpp
registration, conflicts, the password policy, bad usernames, and the
per-address throttle with its window.  Logged in (even with registration
closed): <registered/>, password change (the old password then fails) with
its refusals, which never echo the request, and cancellation, which ends
the sessions and deletes the account with its data."""
import os
import time
import unittest
from xml.sax.saxutils import escape

from harness import (DOMAIN, NS_CLIENT, NS_STREAM, T_SHORT, TERN_MODULES, LoginFailed,
                     ServerTestCase, SlixClient, q, run_async, stanza_error)

NS_REGISTER = "jabber:iq:register"
NS_FEATURE = "http://jabber.org/features/iq-register"
NS_DATA = "jabber:x:data"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_VCARD = "vcard-temp"

# Modules that keep per-user data, when built: the removal test checks that
# their data goes with the account.
HAVE_OFFLINE = os.path.exists(os.path.join(TERN_MODULES, "mod_offline.so"))
HAVE_VCARD = os.path.exists(os.path.join(TERN_MODULES, "mod_vcard.so"))


def reg_query(username=None, password=None, extra=""):
    parts = ["<query xmlns='%s'>" % NS_REGISTER]
    if username is not None:
        parts.append("<username>%s</username>" % escape(username))
    if password is not None:
        parts.append("<password>%s</password>" % escape(password))
    parts.append(extra + "</query>")
    return "".join(parts)


def reg_form(username, password):
    return ("<query xmlns='%s'><x xmlns='%s' type='submit'>"
            "<field var='FORM_TYPE' type='hidden'><value>%s</value></field>"
            "<field var='username'><value>%s</value></field>"
            "<field var='password'><value>%s</value></field></x></query>"
            % (NS_REGISTER, NS_DATA, NS_REGISTER, escape(username), escape(password)))


def error_text(el):
    t = el.find("%s/%s" % (q(NS_CLIENT, "error"), q(NS_STANZAS, "text")))
    return t.text if t is not None else None


class RegisterHelpers:
    """Registration over a raw stream, for the test classes below."""

    def unauth(self):
        """A raw client past STARTTLS, not logged in; its features are in .features."""
        c = self.raw()
        c.open_stream()
        c.starttls()
        return c

    def register(self, user, password, client=None, form=False):
        """Send the registration; returns the answer iq."""
        c = client or self.unauth()
        payload = reg_form(user, password) if form else reg_query(user, password)
        return c.iq(payload, type_="set")

    def assert_result(self, el):
        self.assertEqual(el.get("type"), "result", el.get("type") == "error" and stanza_error(el))

    def assert_error(self, el, etype, cond):
        self.assertEqual(el.get("type"), "error")
        self.assertEqual(stanza_error(el), (etype, cond))
        # Neither the request nor its password comes back (XEP-0077 §3.3).
        self.assertIsNone(el.find(q(NS_REGISTER, "query")))
        self.assertIsNone(el.get("to"))

    def users(self):
        return self.server.ternctl_ok("users", DOMAIN).stdout.split()

    def login_raw_same_stream(self, c, user, password):
        """Log in on a stream that just registered (XEP-0077 §3.1.1)."""
        self.assertEqual(c.auth_scram(user, password), ("success", None))
        c.restart()
        return c.bind("after-register")


class ClosedRegistrationTests(RegisterHelpers, ServerTestCase):
    """The module loaded with its defaults: registration is closed."""
    server_kwargs = dict(users={"alice": "alice-password"},
                         config={"modules": {"register": {}}})

    def test_not_advertised(self):
        c = self.unauth()
        self.assertIsNone(c.features.find(q(NS_FEATURE, "register")))
        self.assertIsNotNone(c.features.find(q("urn:ietf:params:xml:ns:xmpp-sasl",
                                                "mechanisms")))

    def test_form_and_registration_refused(self):
        c = self.unauth()
        get = c.iq("<query xmlns='%s'/>" % NS_REGISTER)
        self.assert_error(get, "cancel", "service-unavailable")  # XEP-0077 §3.1
        r = self.register("mallory", "mallory-password", client=c)
        self.assert_error(r, "cancel", "not-allowed")
        self.assertNotIn("mallory@localhost", self.users())
        # The stream is still usable: the refusal was a stanza error.
        self.assertEqual(c.auth_scram("alice", "alice-password"), ("success", None))

    def test_disco_lists_the_feature(self):
        """Password change and cancellation work even when closed (XEP-0077 §10)."""
        c = self.slix("alice", resource="disco")
        info = c.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>")
        feats = [f.get("var") for f in info.iter(q("http://jabber.org/protocol/disco#info",
                                                    "feature"))]
        self.assertIn(NS_REGISTER, feats)


class OpenRegistrationTests(RegisterHelpers, ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-password"},
                         config={"modules": {"register": {"allow_registration": True,
                                                          "throttle_max": 0}}})

    def test_advertised_only_after_starttls(self):
        c = self.raw()
        before = c.open_stream()
        self.assertIsNone(before.find(q(NS_FEATURE, "register")))
        after = c.starttls()
        self.assertIsNotNone(after.find(q(NS_FEATURE, "register")))

    def test_no_registration_before_tls(self):
        """The core requires TLS before any iq (require_encryption)."""
        c = self.raw()
        c.open_stream()
        c.send("<iq type='set' id='early'>%s</iq>" % reg_query("early", "early-password"))
        self.assertEqual(c.stream_error(), "not-authorized")
        self.assertNotIn("early@localhost", self.users())

    def test_form(self):
        c = self.unauth()
        r = c.iq("<query xmlns='%s'/>" % NS_REGISTER, to=DOMAIN)
        self.assert_result(r)
        query = r.find(q(NS_REGISTER, "query"))
        self.assertIsNotNone(query.find(q(NS_REGISTER, "username")))
        self.assertIsNotNone(query.find(q(NS_REGISTER, "password")))
        self.assertIsNotNone(query.find(q(NS_REGISTER, "instructions")))
        self.assertIsNone(query.find(q(NS_REGISTER, "registered")))
        form = query.find(q(NS_DATA, "x"))
        self.assertEqual(form.get("type"), "form")
        fields = {f.get("var"): f for f in form.findall(q(NS_DATA, "field"))}
        self.assertEqual(fields["FORM_TYPE"].find(q(NS_DATA, "value")).text, NS_REGISTER)
        self.assertEqual(fields["password"].get("type"), "text-private")
        self.assertIn("username", fields)

    def test_register_then_log_in_with_slixmpp(self):
        r = self.register("newbie", "newbie-password")
        self.assert_result(r)
        self.assertIn("newbie@localhost", self.users())
        c = self.slix("newbie", password="newbie-password", resource="first")
        self.assertEqual(c.jid, "newbie@localhost/first")
        self.assertEqual(c.ping(), "result")

    def test_register_then_log_in_on_the_same_stream(self):
        c = self.unauth()
        self.assert_result(self.register("samestream", "samestream-pw", client=c))
        self.assertEqual(self.login_raw_same_stream(c, "samestream", "samestream-pw"),
                         "samestream@localhost/after-register")
        self.assertEqual(c.ping(), "result")

    def test_register_with_the_data_form(self):
        self.assert_result(self.register("former", "former-password", form=True))
        c = self.slix("former", password="former-password")
        self.assertEqual(c.ping(), "result")

    def test_username_is_prepared(self):
        self.assert_result(self.register("MixedCase", "mixedcase-password"))
        self.assertIn("mixedcase@localhost", self.users())
        self.assertNotIn("MixedCase@localhost", self.users())

    def test_slixmpp_registers_in_band(self):
        """A real client: slixmpp's XEP-0077 plugin on the register feature."""
        c = RegisteringClient(self.server, "slixreg", password="slixreg-password")
        self._clients.append(c)
        c.connect()
        self.assertEqual(c.jid.split("/")[0], "slixreg@localhost")
        self.assertEqual(c.ping(), "result")
        self.assertIn("slixreg@localhost", self.users())

    def test_duplicate_is_a_conflict(self):
        for name in ("alice", "ALICE"):
            with self.subTest(name=name):
                self.assert_error(self.register(name, "another-password"), "cancel", "conflict")
        # alice keeps her password.
        self.assertEqual(self.slix("alice", resource="still").ping(), "result")
        with self.assertRaises(LoginFailed):
            self.slix("alice", password="another-password", resource="hijack")

    def test_password_policy(self):
        for password, why in (("short", "at least 8"), ("", "required"), (None, "required")):
            with self.subTest(password=password):
                r = self.register("policy", password)
                self.assert_error(r, "modify", "not-acceptable")
                self.assertIn(why, error_text(r))
        # Eight characters are enough; length counts characters, not bytes.
        self.assert_result(self.register("policy", "\u00e9t\u00e9\u00e9t\u00e9\u00e9t"))
        self.assertIn("policy@localhost", self.users())

    def test_bad_usernames_not_acceptable(self):
        for name in ("two words", "", None, "a@b", "x" * 1100):
            with self.subTest(name=name):
                self.assert_error(self.register(name, "valid-password"), "modify",
                                  "not-acceptable")
        self.assertEqual(self.users(), ["alice@localhost"])

    def test_remove_before_login_is_unexpected(self):
        c = self.unauth()
        r = c.iq(reg_query(extra="<remove/>"), type_="set")
        self.assert_error(r, "cancel", "unexpected-request")
        self.assertIn("alice@localhost", self.users())


class ThrottleTests(RegisterHelpers, ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-password"},
                         config={"modules": {"register": {"allow_registration": True,
                                                          "throttle_max": 1,
                                                          "throttle_period": "1h"}}})

    def test_second_registration_from_the_same_address_refused(self):
        # Failed attempts do not count.
        self.assert_error(self.register("alice", "whatever-pw"), "cancel", "conflict")
        self.assert_error(self.register("first", "short"), "modify", "not-acceptable")
        self.assert_result(self.register("first", "first-password"))
        r = self.register("second", "second-password")
        self.assert_error(r, "wait", "resource-constraint")
        self.assertIn("try again later", error_text(r))
        users = self.users()
        self.assertIn("first@localhost", users)
        self.assertNotIn("second@localhost", users)
        self.assertEqual(self.slix("first", password="first-password").ping(), "result")


class ThrottleWindowTests(RegisterHelpers, ServerTestCase):
    PERIOD = 3.0
    server_kwargs = dict(config={"modules": {"register": {"allow_registration": True,
                                                          "throttle_max": 2,
                                                          "throttle_period": "3s"}}})

    def test_window_ends(self):
        start = time.monotonic()
        self.assert_result(self.register("w1", "w1-password"))
        self.assert_result(self.register("w2", "w2-password"))
        self.assert_error(self.register("w3", "w3-password"), "wait", "resource-constraint")
        self.assertLess(time.monotonic() - start, self.PERIOD, "too slow to test the window")
        time.sleep(self.PERIOD - (time.monotonic() - start) + 0.3)
        self.assert_result(self.register("w3", "w3-password"))
        self.assertEqual(set(self.users()), {"w1@localhost", "w2@localhost", "w3@localhost"})


MODULES = {"register": {}}
if HAVE_OFFLINE:
    MODULES["offline"] = {}
if HAVE_VCARD:
    MODULES["vcard"] = {}


class LoggedInTests(RegisterHelpers, ServerTestCase):
    """Registration closed: what a logged-in user may do still works."""
    server_kwargs = dict(users={"alice": "alice-password"}, config={"modules": MODULES})

    def change(self, client, payload, to=None):
        return client.iq(payload, to=to, itype="set")

    def test_registered(self):
        c = self.slix("alice", resource="registered")
        r = c.iq("<query xmlns='%s'/>" % NS_REGISTER, to=None)
        self.assertEqual(r.get("type"), "result")
        query = r.find(q(NS_REGISTER, "query"))
        self.assertIsNotNone(query.find(q(NS_REGISTER, "registered")))
        self.assertEqual(query.find(q(NS_REGISTER, "username")).text, "alice")
        self.assertIsNone(query.find(q(NS_REGISTER, "password")))

    def test_password_change(self):
        self.server.add_user("carol", "carol-old-pw")
        c = self.slix("carol", resource="changer")
        r = self.change(c, reg_query("carol", "carol-new-pw"))
        self.assertEqual(r.get("type"), "result")
        self.server.users["carol"] = "carol-new-pw"
        # This session goes on; new logins need the new password.
        self.assertEqual(c.ping(), "result")
        with self.assertRaises(LoginFailed):
            self.slix("carol", password="carol-old-pw", resource="old")
        raw = self.raw(direct_tls=True)
        raw.open_stream()
        self.assertEqual(raw.auth_scram("carol", "carol-old-pw"), ("failure", "not-authorized"))
        self.assertEqual(self.slix("carol", resource="new").ping(), "result")

    def test_password_change_addressed_to_the_host(self):
        """XEP-0077 §3.3 example: to='host'; the bare JID as username works too;
        slixmpp's own change_password (username only) as well."""
        self.server.add_user("hank", "hank-old-pw")
        c = self.slix("hank", resource="host")
        r = self.change(c, reg_query("hank@localhost", "hank-new-pw"), to=DOMAIN)
        self.assertEqual(r.get("type"), "result")
        self.assertEqual(self.slix("hank", password="hank-new-pw", resource="n1").ping(),
                         "result")

        async def go():
            c.xmpp.register_plugin("xep_0077")
            await c.xmpp["xep_0077"].change_password("hank-third-pw")
        run_async(go())
        self.assertEqual(self.slix("hank", password="hank-third-pw", resource="n2").ping(),
                         "result")
        with self.assertRaises(LoginFailed):
            self.slix("hank", password="hank-new-pw", resource="n3")

    def test_password_change_refusals(self):
        self.server.add_user("dave", "dave-password")
        c = self.slix("dave", resource="refusals")
        cases = (
            (reg_query("dave", "short"), "modify", "not-acceptable"),
            (reg_query("dave", ""), "modify", "not-acceptable"),  # §3.3: never empty
            (reg_query("alice", "alice-stolen-pw"), "auth", "forbidden"),
            (reg_query(None, "no-username-pw"), "modify", "bad-request"),
            (reg_query("dave", None), "modify", "bad-request"),
            ("<query xmlns='%s'><x xmlns='%s' type='submit'>"
             "<field var='FORM_TYPE'><value>jabber:iq:register:changepassword</value></field>"
             "<field var='username'><value>dave</value></field>"
             "<field var='old_password'><value>not-the-old-one</value></field>"
             "<field var='password'><value>dave-new-password</value></field></x></query>"
             % (NS_REGISTER, NS_DATA), "modify", "not-authorized"),
        )
        for payload, etype, cond in cases:
            with self.subTest(payload=payload):
                r = self.change(c, payload)
                self.assertEqual(r.get("type"), "error")
                self.assertEqual(stanza_error(r), (etype, cond))
                self.assertIsNone(r.find(q(NS_REGISTER, "query")))  # §3.3: no echo
        # Nothing changed: the old passwords still work.
        self.assertEqual(self.slix("dave", resource="still").ping(), "result")
        self.assertEqual(self.slix("alice", resource="still").ping(), "result")
        # The form with the right old password works.
        r = self.change(c, cases[-1][0].replace("not-the-old-one", "dave-password"))
        self.assertEqual(r.get("type"), "result")
        self.assertEqual(self.slix("dave", password="dave-new-password",
                                   resource="new").ping(), "result")

    def test_remove_needs_remove_alone(self):
        self.server.add_user("ed", "ed-password")
        c = self.slix("ed", resource="x")
        r = self.change(c, reg_query("ed", None, extra="<remove/>"))
        self.assertEqual(stanza_error(r), ("modify", "bad-request"))
        self.assertIn("ed@localhost", self.users())

    def test_remove_deletes_the_account_and_its_data(self):
        self.server.add_user("dora", "dora-password")
        dora = self.slix("dora", resource="leaving", connect=False)
        dora.connect(presence=False)  # not available: messages to her are stored
        other = self.slix("dora", resource="other", connect=False)  # it ends too
        other.connect(presence=False)
        alice = self.slix("alice", resource="sender")
        if HAVE_VCARD:
            r = self.change(dora, "<vCard xmlns='%s'><FN>Dora Explorer</FN></vCard>" % NS_VCARD)
            self.assertEqual(r.get("type"), "result")
            got = alice.iq("<vCard xmlns='%s'/>" % NS_VCARD, to="dora@localhost")
            self.assertEqual(got.find("%s/%s" % (q(NS_VCARD, "vCard"), q(NS_VCARD, "FN"))).text,
                             "Dora Explorer")
        if HAVE_OFFLINE:
            alice.send_message("dora@localhost", "kept for later")
            alice.sync()

        r = self.change(dora, reg_query(extra="<remove/>"))
        self.assertEqual(r.get("type"), "result")  # the answer comes before the end
        dora.wait_disconnected()
        other.wait_disconnected()
        self.assertEqual(dora.stream_errors, ["not-authorized"])
        self.assertEqual(other.stream_errors, ["not-authorized"])
        self.assertNotIn("dora@localhost", self.users())
        with self.assertRaises(LoginFailed):
            self.slix("dora", password="dora-password", resource="again")
        # A message to her now bounces: the account is gone for routing too.
        mark = alice.mark()
        alice.send_message("dora@localhost", "anyone there?")
        err = alice.wait_stanza(lambda s: s.name == "message" and s["type"] == "error",
                                since=mark)
        self.assertEqual(err["error"]["condition"], "service-unavailable")

        # A new account of the same name starts empty.
        self.server.add_user("dora", "dora-password-2")
        again = self.slix("dora", resource="reborn", connect=False)
        again.connect(presence=False)
        mark = again.mark()
        again.send_presence()
        time.sleep(T_SHORT)
        self.assertEqual([s["body"] for s in again.received_since(mark, kinds=("message",))],
                         [])
        if HAVE_VCARD:
            got = alice.iq("<vCard xmlns='%s'/>" % NS_VCARD, to="dora@localhost")
            self.assertEqual(got.get("type"), "result")
            self.assertIsNone(got.find("%s/%s" % (q(NS_VCARD, "vCard"), q(NS_VCARD, "FN"))))


class RegisteringClient(SlixClient):
    """A slixmpp client that creates its account in-band (XEP-0077) before
    logging in, as real clients do on the register stream feature."""

    async def _a_create(self):
        await super()._a_create()
        x = self.xmpp
        x.register_plugin("xep_0077")
        x["xep_0077"].force_registration = False  # the server must advertise it
        # slixmpp 1.8.3 holds back every iq before the session starts, its own
        # registration iqs included; let them through until registered.
        x._always_send_everything = True

        async def on_register(form):
            query = form.xml.find(q(NS_REGISTER, "query"))
            assert query is not None and query.find(q(NS_REGISTER, "username")) is not None
            iq = x.Iq()
            iq["type"] = "set"
            iq["register"]["username"] = x.boundjid.user
            iq["register"]["password"] = x.password
            await iq.send()
            x._always_send_everything = False
        x.add_event_handler("register", on_register)


if __name__ == "__main__":
    unittest.main()
