"""XEP-0114 external components: the handshake with the shared secret (a
slixmpp ComponentXMPP and a hand-made stream), a wrong secret, a wrong
digest or an unknown domain refused, messages and iqs both ways between a
component and a client, 'from' and 'to' checks on the component stream,
bounces to the component, one component per domain, a component added by
reload, one removed by reload, and service-unavailable bounces while the
component is not connected."""
import copy
import hashlib
import threading
import time

from harness import (DOMAIN, NS_COMPONENT, NS_PING, NS_STREAM, LoginFailed, ServerTestCase,
                     SlixClient, SlixComponent, deep_merge, q, stanza_error)

COMP = "bots.localhost"
SECRET = "s3cret-component"


class ComponentTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw"},
                         components={COMP: SECRET, "other.localhost": "other-secret"})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.alice = SlixClient(cls.server, "alice", resource="desk").connect()

    @classmethod
    def tearDownClass(cls):
        cls.alice.disconnect()
        super().tearDownClass()

    def tearDown(self):
        super().tearDown()
        self.assertFalse(self.alice.disconnected)
        self.assertEqual(self.alice.ping(), "result")

    def component(self):
        c = SlixComponent(self.server, COMP, SECRET)
        self._clients.append(c)
        return c.connect()

    def assertBounced(self, target, body):
        """A message from alice to `target` comes back as service-unavailable."""
        mark = self.alice.mark()
        self.alice.send_message(target, body)
        err = self.alice.wait_message(mtype="error", since=mark)
        self.assertEqual(str(err["from"]), target)
        self.assertEqual(stanza_error(err.xml), ("cancel", "service-unavailable"))

    def test_slixmpp_component_exchanges_messages_with_a_client(self):
        comp = self.component()
        cm, am = comp.mark(), self.alice.mark()
        self.alice.send_message("echo@%s" % COMP, "to the bot")
        got = comp.wait_stanza(lambda s: s.name == "message" and s["body"] == "to the bot",
                               since=cm)
        self.assertEqual(str(got["from"]), "alice@localhost/desk")
        self.assertEqual(str(got["to"]), "echo@%s" % COMP)
        comp.send_message("echo@%s" % COMP, "alice@localhost/desk", "from the bot")
        msg = self.alice.wait_message("from the bot", since=am)
        self.assertEqual(str(msg["from"]), "echo@%s" % COMP)
        # The component's domain itself is addressable too.
        self.alice.send_message(COMP, "to the domain")
        comp.wait_stanza(lambda s: s.name == "message" and s["body"] == "to the domain",
                         since=cm)

    def test_iq_from_client_reaches_component_and_answer_returns(self):
        comp = self.raw(component=True)
        self.assertEqual(comp.handshake(COMP, SECRET).tag, q(NS_COMPONENT, "handshake"))
        answers = []
        t = threading.Thread(target=lambda: answers.append(
            self.alice.iq("<ping xmlns='%s'/>" % NS_PING, to="svc@%s" % COMP)))
        t.start()
        iq = comp.wait_for(lambda e: e.tag.endswith("}iq"))
        self.assertEqual(iq.get("from"), "alice@localhost/desk")
        self.assertEqual(iq.get("type"), "get")
        comp.send("<iq type='result' id='%s' from='svc@%s' to='alice@localhost/desk'/>" %
                  (iq.get("id"), COMP))
        t.join(15)
        self.assertEqual(len(answers), 1)
        self.assertEqual(answers[0].get("type"), "result")
        self.assertEqual(answers[0].get("from"), "svc@%s" % COMP)

    def test_raw_handshake_and_wrong_secret(self):
        ok = self.raw(component=True)
        self.assertEqual(ok.handshake(COMP, SECRET).tag, q(NS_COMPONENT, "handshake"))
        self.assertEqual(ok.header.get("from"), COMP)
        ok.close()
        bad = self.raw(component=True)
        bad.handshake("other.localhost", "wrong-secret")
        self.assertEqual(bad.stream_error(), "not-authorized")
        self.assertTrue(bad.wait_closed())
        # A secret of another component does not work either.
        bad2 = self.raw(component=True)
        bad2.handshake("other.localhost", SECRET)
        self.assertEqual(bad2.stream_error(), "not-authorized")

    def test_slixmpp_component_with_wrong_secret_is_refused(self):
        comp = SlixComponent(self.server, COMP, "not-the-secret")
        self._clients.append(comp)
        with self.assertRaises(LoginFailed):
            comp.connect()
        self.assertIn("not-authorized", comp.stream_errors)
        self.assertBounced("echo@%s" % COMP, "after a failed handshake")

    def test_unknown_component_domain_is_host_unknown(self):
        c = self.raw(component=True)
        c.send("<stream:stream xmlns='%s' xmlns:stream='%s' to='nope.localhost'>" %
               (NS_COMPONENT, NS_STREAM))
        self.assertEqual(c.stream_error(), "host-unknown")
        c2 = self.raw(component=True)
        c2.send("<stream:stream xmlns='%s' xmlns:stream='%s' to='%s'>" %
                (NS_COMPONENT, NS_STREAM, DOMAIN))
        self.assertEqual(c2.stream_error(), "host-unknown")

    def test_handshake_digest_is_checked_not_just_present(self):
        c = self.raw(component=True)
        c.send("<stream:stream xmlns='%s' xmlns:stream='%s' to='%s'>" %
               (NS_COMPONENT, NS_STREAM, COMP))
        c.nothing_more(0.3)
        digest = hashlib.sha1(("not-the-id" + SECRET).encode()).hexdigest()
        c.send("<handshake>%s</handshake>" % digest)
        self.assertEqual(c.stream_error(), "not-authorized")

    def test_stanza_before_handshake_is_not_authorized(self):
        c = self.raw(component=True)
        c.send("<stream:stream xmlns='%s' xmlns:stream='%s' to='%s'>" %
               (NS_COMPONENT, NS_STREAM, COMP))
        c.nothing_more(0.3)
        c.send("<message from='x@%s' to='alice@localhost/desk'><body>early</body></message>"
               % COMP)
        self.assertEqual(c.stream_error(), "not-authorized")

    def test_disconnected_component_bounces_service_unavailable(self):
        self.assertBounced("echo@%s" % COMP, "nobody home")
        answer = self.alice.iq("<ping xmlns='%s'/>" % NS_PING, to=COMP)
        self.assertEqual(stanza_error(answer), ("cancel", "service-unavailable"))
        # After a component came and went, its domain bounces again.
        comp = self.component()
        comp.disconnect()
        self.assertBounced("echo@%s" % COMP, "gone again")

    def test_component_cannot_forge_a_foreign_from(self):
        comp = self.raw(component=True)
        comp.handshake(COMP, SECRET)
        mark = self.alice.mark()
        comp.send("<message from='bob@localhost' to='alice@localhost/desk'><body>forged</body>"
                  "</message>")
        self.assertEqual(comp.stream_error(), "invalid-from")
        self.assertTrue(comp.wait_closed())
        time.sleep(0.3)
        self.assertEqual(self.alice.received_since(mark, ("message",)), [])

    def test_component_gets_bounces_and_must_address_its_stanzas(self):
        comp = self.raw(component=True)
        comp.handshake(COMP, SECRET)
        comp.send("<message from='x@%s' to='nobody@localhost' id='c1'><body>hi</body></message>"
                  % COMP)
        err = comp.wait_for(lambda e: e.tag == q(NS_COMPONENT, "message"))
        self.assertEqual(err.get("type"), "error")
        self.assertEqual(err.get("to"), "x@%s" % COMP)
        self.assertEqual(stanza_error(err), ("cancel", "service-unavailable"))
        comp.send("<message from='x@%s' id='c2'><body>no to</body></message>" % COMP)
        self.assertEqual(comp.stream_error(), "improper-addressing")

    def test_second_component_for_the_same_domain_is_refused(self):
        first = self.component()
        second = self.raw(component=True)
        second.handshake(COMP, SECRET)
        self.assertEqual(second.stream_error(), "conflict")
        # The first one still works.
        mark = first.mark()
        self.alice.send_message("echo@%s" % COMP, "still first")
        first.wait_stanza(lambda s: s.name == "message" and s["body"] == "still first",
                          since=mark)

    def test_component_added_by_reload_can_connect(self):
        late = "late.localhost"
        conf = deep_merge(self.server.config, {"components": {late: {"secret": "late-secret"}}})
        self.server.write_config(conf)
        self.server.ternctl_ok("reload")
        comp = SlixComponent(self.server, late, "late-secret")
        self._clients.append(comp)
        comp.connect()
        mark = comp.mark()
        self.alice.send_message("bot@%s" % late, "hello late")
        got = comp.wait_stanza(lambda s: s.name == "message" and s["body"] == "hello late",
                               since=mark)
        self.assertEqual(str(got["from"]), "alice@localhost/desk")

    def test_component_removed_by_reload_keeps_its_link_until_it_leaves(self):
        """The admin guide's rule: a reload that drops a component refuses its
        new connections (host-unknown); the one already connected keeps
        receiving until it disconnects."""
        comp = self.component()
        before = self.server.config
        conf = copy.deepcopy(before)
        del conf["components"][COMP]
        self.server.write_config(conf)
        try:
            self.server.ternctl_ok("reload")
            mark = comp.mark()
            self.alice.send_message("echo@%s" % COMP, "still connected")
            comp.wait_stanza(lambda s: s.name == "message" and s["body"] == "still connected",
                             since=mark)
            c = self.raw(component=True)
            c.send("<stream:stream xmlns='%s' xmlns:stream='%s' to='%s'>" %
                   (NS_COMPONENT, NS_STREAM, COMP))
            self.assertEqual(c.stream_error(), "host-unknown")
        finally:
            self.server.write_config(before)
            self.server.ternctl_ok("reload")
