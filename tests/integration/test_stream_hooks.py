"""Stream-level module events: what stream management (XEP-0198) and client
state indication (XEP-0352) modules will stand on.

- a top-level element that is no stanza, after login, fires
  "stream/NS:NAME" before and after bind, and the module's answer
  (tern_stream_send) arrives on that stream;
- with no module taking it, the stream ends as before: <not-authorized/>
  before bind, <unsupported-stanza-type/> after;
- "session/out" sees every stanza written to a session once, may keep one
  back and hand it on later (tern_session_release), in order;
- "session/in" sees every stanza the client sends;
- "stream-features/auth" tells the handler who logged in.

Uses tests/modules/mod_streamtest.c, built only for the tests
(`make tests/modules/mod_streamtest.la`, or `make check`), found in
TERN_TEST_MODULES (default: tests/modules/.libs beside TERN_MODULES's
build directory)."""
import glob
import os
import shutil
import tempfile
import unittest

from harness import (DOMAIN, NS_CLIENT, NS_STREAM, T_SHORT, TERN_MODULES, ServerTestCase, q)

TERN_TEST_MODULES = os.path.abspath(os.environ.get(
    "TERN_TEST_MODULES",
    os.path.join(os.path.dirname(os.path.dirname(TERN_MODULES)), "tests/modules/.libs")))
NS_TEST = "urn:tern:test:stream"
MODULES = None


def module_dir():
    """A temporary directory with the server's modules and mod_streamtest.so."""
    global MODULES
    if MODULES is None:
        so = os.path.join(TERN_TEST_MODULES, "mod_streamtest.so")
        if not os.path.exists(so):
            raise AssertionError("%s not built: make tests/modules/mod_streamtest.la" % so)
        MODULES = tempfile.mkdtemp(prefix="tern-modules-")
        for f in glob.glob(os.path.join(TERN_MODULES, "mod_*.so")) + [so]:
            os.symlink(f, os.path.join(MODULES, os.path.basename(f)))
    return MODULES


def tearDownModule():
    if MODULES:
        shutil.rmtree(MODULES, ignore_errors=True)


def t(name):
    return q(NS_TEST, name)


class StreamHookTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"},
                         config={"module_path": module_dir(),
                                 "modules": {"streamtest": {}}})

    def authed(self, user="alice"):
        """A client that logged in and restarted the stream, not yet bound;
        returns (client, features after login)."""
        c = self.raw()
        c.open_stream()
        c.starttls()
        status, cond = c.auth_scram(user, self.server.users[user])
        self.assertEqual(status, "success", cond)
        return c, c.restart()

    def send_test(self, c, name):
        c.send("<%s xmlns='%s'/>" % (name, NS_TEST))

    def count(self, c):
        self.send_test(c, "count")
        el = c.wait_for(lambda e: e.tag == t("counted"))
        return int(el.get("in")), int(el.get("out")), int(el.get("held"))

    def test_features_after_login_name_the_account(self):
        c, features = self.authed()
        f = features.find(t("streamtest"))
        self.assertIsNotNone(f, "module's feature missing after login")
        self.assertEqual(f.get("user"), "alice")
        self.assertEqual(f.get("jid"), "alice@%s" % DOMAIN)

    def test_element_before_bind_reaches_the_module(self):
        c, _ = self.authed()
        self.send_test(c, "ping")
        pong = c.expect(t("pong"))
        self.assertEqual(pong.get("bound"), "no")
        self.assertEqual(pong.get("jid"), "alice@%s" % DOMAIN)
        self.send_test(c, "count")  # needs a session: refused, stream goes on
        c.expect(t("failed"))
        jid = c.bind("phone")  # the stream still binds and works
        self.assertEqual(jid, "alice@%s/phone" % DOMAIN)
        self.assertEqual(c.ping(), "result")

    def test_element_after_bind_reaches_the_module(self):
        c = self.raw_login("alice", "laptop")
        self.send_test(c, "ping")
        pong = c.wait_for(lambda e: e.tag == t("pong"))
        self.assertEqual(pong.get("bound"), "yes")
        self.assertEqual(pong.get("jid"), "alice@%s/laptop" % DOMAIN)
        self.assertEqual(c.ping(), "result")

    def test_unhandled_before_bind_is_not_authorized(self):
        for name, ns in (("pass", NS_TEST), ("enable", "urn:xmpp:sm:3")):
            c, _ = self.authed()
            c.send("<%s xmlns='%s'/>" % (name, ns))
            self.assertEqual(c.stream_error(), "not-authorized", name)

    def test_unhandled_after_bind_is_unsupported_stanza_type(self):
        for name, ns in (("pass", NS_TEST), ("active", "urn:xmpp:csi:0"),
                         ("foo", NS_CLIENT)):
            c = self.raw_login("alice")
            c.send("<%s xmlns='%s'/>" % (name, ns))
            self.assertEqual(c.stream_error(), "unsupported-stanza-type", name)

    def test_not_before_login(self):
        c = self.raw()
        c.open_stream()
        c.starttls()
        self.send_test(c, "ping")
        self.assertEqual(c.stream_error(), "not-authorized")

    def test_every_stanza_counted_once(self):
        alice = self.raw_login("alice", "a1")
        alice2 = self.raw_login("alice", "a2")
        bob = self.raw_login("bob")
        for c in (alice, alice2, bob):
            self.assertEqual(c.ping(), "result")
        alice.nothing_more(T_SHORT)
        alice2.nothing_more(T_SHORT)
        in1, out1, _ = self.count(alice)
        in2, out2, _ = self.count(alice2)
        # One headline to the bare JID goes to both resources; one chat to
        # a full JID to one; one iq answered by the server.
        bob.send("<message to='alice@%s' type='headline' id='h1'><body>all</body></message>"
                 % DOMAIN)
        bob.send("<message to='alice@%s/a1' type='chat' id='c1'><body>one</body></message>"
                 % DOMAIN)
        alice.wait_for(lambda e: e.get("id") == "c1")
        alice2.wait_for(lambda e: e.get("id") == "h1")
        self.assertEqual(alice.ping(), "result")
        alice.nothing_more(T_SHORT)
        alice2.nothing_more(T_SHORT)
        self.assertEqual(self.count(alice), (in1 + 1, out1 + 3, 0))
        self.assertEqual(self.count(alice2), (in2, out2 + 1, 0))

    def test_hold_and_release_in_order(self):
        alice = self.raw_login("alice", "held")
        bob = self.raw_login("bob")
        self.assertEqual(alice.ping(), "result")
        alice.nothing_more(T_SHORT)
        in0, out0, _ = self.count(alice)
        self.send_test(alice, "hold")
        alice.expect(t("holding"))
        for i in range(3):
            bob.send("<message to='alice@%s/held' type='chat' id='m%d'><body>%d</body>"
                     "</message>" % (DOMAIN, i, i))
        self.assertEqual(bob.ping(), "result")  # bob's messages were routed
        got = alice.nothing_more(T_SHORT)
        self.assertEqual([e.tag for e in got], [], "held stanzas arrived")
        # Stream-level answers still flow while stanzas are held.
        self.assertEqual(self.count(alice), (in0, out0, 3))
        self.send_test(alice, "release")
        ids = []
        while True:
            el = alice.read_element()
            if el.tag == t("released"):
                self.assertEqual(el.get("n"), "3")
                break
            self.assertEqual(el.tag, q(NS_CLIENT, "message"))
            ids.append(el.get("id"))
        self.assertEqual(ids, ["m0", "m1", "m2"])
        self.assertEqual(self.count(alice), (in0, out0 + 3, 0))
        # Not held any more: the next stanza comes at once.
        bob.send("<message to='alice@%s/held' type='chat' id='m3'><body>3</body></message>"
                 % DOMAIN)
        self.assertEqual(alice.wait_for(lambda e: e.tag == q(NS_CLIENT, "message")).get("id"),
                         "m3")

    def test_held_stanzas_freed_when_the_session_ends(self):
        alice = self.raw_login("alice", "gone")
        bob = self.raw_login("bob")
        self.send_test(alice, "hold")
        alice.wait_for(lambda e: e.tag == t("holding"))
        bob.send("<message to='alice@%s/gone' type='chat' id='x'><body>x</body></message>"
                 % DOMAIN)
        self.assertEqual(bob.ping(), "result")
        alice.end()
        self.assertEqual(bob.ping(), "result")  # leaks would show at ternd's exit


class WithoutModuleTests(ServerTestCase):
    """Today's behaviour when no module hooks anything."""
    server_kwargs = dict(users={"alice": "alice-pw"})

    def test_stream_management_before_bind(self):
        c = self.raw()
        c.open_stream()
        c.starttls()
        self.assertEqual(c.auth_scram("alice", "alice-pw")[0], "success")
        c.restart()
        c.send("<resume xmlns='urn:xmpp:sm:3' previd='x' h='0'/>")
        self.assertEqual(c.stream_error(), "not-authorized")

    def test_client_state_after_bind(self):
        c = self.raw_login("alice")
        c.send("<inactive xmlns='urn:xmpp:csi:0'/>")
        self.assertEqual(c.stream_error(), "unsupported-stanza-type")


if __name__ == "__main__":
    unittest.main()
