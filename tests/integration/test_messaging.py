"""Messaging between two slixmpp clients, one on STARTTLS and one on direct
TLS: messages to bare and full JIDs (RFC 6121 §8.5 delivery rules: priority,
headlines, unavailable resources), the server-stamped 'from', JID case
rules, escaping and foreign payloads, a stanza trickled byte by byte, pings
to the server and between clients, the error bounces for offline, unknown,
malformed and remote recipients, and no bounce for errors and results."""
import time

from harness import DOMAIN, NS_PING, RawClient, ServerTestCase, SlixClient, q, stanza_error


class MessagingTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.alice = SlixClient(cls.server, "alice", resource="laptop").connect()
        cls.bob = SlixClient(cls.server, "bob", resource="phone", direct_tls=True).connect()

    @classmethod
    def tearDownClass(cls):
        for c in (cls.alice, cls.bob):
            c.disconnect()
        super().tearDownClass()

    def tearDown(self):
        super().tearDown()
        for c in (self.alice, self.bob):
            self.assertFalse(c.disconnected, "%s lost its connection" % c.jid)
            self.assertEqual(c.stream_errors, [])

    def assertNoMessages(self, client, mark, within=0.7):
        """Nothing but presence reached `client` after `mark`."""

        time.sleep(within)
        extra = client.received_since(mark, kinds=("message", "iq"))
        self.assertEqual(extra, [], "unexpected stanzas for %s" % client.jid)

    def test_bound_jids(self):
        self.assertEqual(self.alice.jid, "alice@localhost/laptop")
        self.assertEqual(self.bob.jid, "bob@localhost/phone")
        self.assertEqual(self.bob.alpn, "xmpp-client")

    def test_message_to_bare_jid(self):
        a, b = self.alice.mark(), self.bob.mark()
        self.alice.send_message("bob@localhost", "hello bare bob")
        msg = self.bob.wait_message("hello bare bob", since=b)
        self.assertEqual(str(msg["from"]), "alice@localhost/laptop")
        self.assertEqual(str(msg["to"]), "bob@localhost")
        self.assertEqual(msg["type"], "chat")
        self.assertNoMessages(self.alice, a)

    def test_message_to_full_jid(self):
        a, b = self.alice.mark(), self.bob.mark()
        self.bob.send_message("alice@localhost/laptop", "hello full alice")
        msg = self.alice.wait_message("hello full alice", since=a)
        self.assertEqual(str(msg["from"]), "bob@localhost/phone")
        self.assertEqual(str(msg["to"]), "alice@localhost/laptop")
        self.assertNoMessages(self.bob, b)

    def test_messages_both_ways_in_order(self):
        a, b = self.alice.mark(), self.bob.mark()
        for i in range(5):
            self.alice.send_message("bob@localhost/phone", "a2b %d" % i)
            self.bob.send_message("alice@localhost", "b2a %d" % i)
        self.bob.wait_message("a2b 4", since=b)
        self.alice.wait_message("b2a 4", since=a)
        got_b = [m["body"] for m in self.bob.received_since(b, ("message",))]
        got_a = [m["body"] for m in self.alice.received_since(a, ("message",))]
        self.assertEqual(got_b, ["a2b %d" % i for i in range(5)])
        self.assertEqual(got_a, ["b2a %d" % i for i in range(5)])

    def test_spoofed_own_bare_from_is_stamped_with_full_jid(self):
        """RFC 6120 §8.1.2.1: the server stamps the sender's full JID."""
        b = self.bob.mark()
        self.alice.send_raw("<message from='alice@localhost' to='bob@localhost' type='chat'>"
                            "<body>stamped</body></message>")
        msg = self.bob.wait_message("stamped", since=b)
        self.assertEqual(str(msg["from"]), "alice@localhost/laptop")

    def test_chat_to_unknown_resource_goes_to_the_bare_jid(self):
        """RFC 6121 §8.5.3.2.1: a chat to an offline resource is treated as
        addressed to the bare JID."""
        b = self.bob.mark()
        self.alice.send_message("bob@localhost/elsewhere", "via bare")
        msg = self.bob.wait_message("via bare", since=b)
        self.assertEqual(str(msg["from"]), "alice@localhost/laptop")

    def test_message_to_offline_account_bounces_service_unavailable(self):
        a = self.alice.mark()
        self.alice.send_message("carol@localhost", "are you there")
        err = self.alice.wait_message(mtype="error", since=a)
        self.assertEqual(str(err["from"]), "carol@localhost")
        self.assertEqual(stanza_error(err.xml), ("cancel", "service-unavailable"))

    def test_message_to_unknown_account_bounces_service_unavailable(self):
        a = self.alice.mark()
        self.alice.send_message("nobody@localhost", "hello?")
        err = self.alice.wait_message(mtype="error", since=a)
        self.assertEqual(str(err["from"]), "nobody@localhost")
        self.assertEqual(stanza_error(err.xml), ("cancel", "service-unavailable"))

    def test_message_to_remote_domain_bounces(self):
        """No server-to-server yet: a remote domain is unreachable."""
        a = self.alice.mark()
        self.alice.send_message("someone@remote.example", "far away")
        err = self.alice.wait_message(mtype="error", since=a)
        self.assertEqual(str(err["from"]), "someone@remote.example")
        self.assertEqual(stanza_error(err.xml), ("cancel", "remote-server-not-found"))

    def test_addresses_are_case_insensitive_except_the_resource(self):
        b = self.bob.mark()
        self.alice.send_message("BOB@LocalHost/phone", "shouting")
        msg = self.bob.wait_message("shouting", since=b)
        self.assertEqual(str(msg["from"]), "alice@localhost/laptop")
        answer = self.alice.iq("<ping xmlns='%s'/>" % NS_PING, to="bob@localhost/PHONE")
        self.assertEqual(stanza_error(answer), ("cancel", "service-unavailable"))

    def test_malformed_jid_bounces_jid_malformed(self):
        a = self.alice.mark()
        self.alice.send_raw("<message to='a@b@c' type='chat' id='bad'><body>?</body></message>")
        err = self.alice.wait_message(mtype="error", since=a)
        self.assertEqual(stanza_error(err.xml), ("modify", "jid-malformed"))
        self.assertEqual(err["id"], "bad")

    def test_stanza_trickled_byte_by_byte_is_delivered(self):
        """The stream parser copes with any split of the input."""

        c = RawClient(self.server.tls_port, direct_tls=True)
        try:
            c.login("carol", "carol-pw", "slow")
            stanza = ("<message to='bob@localhost/phone' type='chat'><body>tr\u00e9s "
                      "l\u00e9ntement &amp; s\u00fbrement</body></message>").encode()
            b = self.bob.mark()
            for i in range(len(stanza)):
                c.send(stanza[i:i + 1])
                if i % 10 == 0:
                    time.sleep(0.005)
            msg = self.bob.wait_message("tr\u00e9s l\u00e9ntement & s\u00fbrement", since=b)
            self.assertEqual(str(msg["from"]), "carol@localhost/slow")
        finally:
            c.end()

    def test_escaping_cdata_and_foreign_payloads_survive_routing(self):
        c = RawClient(self.server.c2s_port)
        try:
            c.login("carol", "carol-pw", "xml")
            b = self.bob.mark()
            c.send("<cl:message xmlns:cl='jabber:client' to='bob@localhost/phone' type='chat' "
                   "id='a&quot;b&apos;c&lt;'><cl:body>1 &lt;&gt;&amp;&quot; &#x263A;"
                   "<![CDATA[ <cdata & more>]]></cl:body>"
                   "<x xmlns='urn:example:ext' a='1'><y xmlns:p='urn:example:p' p:z='2'/></x>"
                   "</cl:message>")
            msg = self.bob.wait_message(since=b, sender="carol@localhost/xml")
            self.assertEqual(msg["id"], "a\"b'c<")
            self.assertEqual(msg["body"], "1 <>&\" \u263a <cdata & more>")
            x = msg.xml.find("{urn:example:ext}x")
            self.assertIsNotNone(x, "extension element lost")
            self.assertEqual(x.get("a"), "1")
            y = x.find("{urn:example:ext}y")
            self.assertEqual(y.get("{urn:example:p}z"), "2")
        finally:
            c.end()

    def test_errors_and_results_to_nowhere_are_not_bounced(self):
        """RFC 6120 §8.3.1: never answer an error with an error (no loops), and
        an unsolicited iq result/error is dropped."""
        a = self.alice.mark()
        for stanza in ("<message to='nobody@localhost' type='error' id='e1'><error type='cancel'>"
                       "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
                       "</message>",
                       "<iq to='nobody@localhost' type='result' id='r1'/>",
                       "<iq to='bob@localhost/elsewhere' type='error' id='r2'><error "
                       "type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:"
                       "xmpp-stanzas'/></error></iq>",
                       "<message to='someone@remote.example' type='error' id='e2'/>"):
            self.alice.send_raw(stanza)
        self.alice.sync()
        time.sleep(0.3)
        extra = [st for st in self.alice.received_since(a, ("message", "iq"))
                 if st.name == "message" or st["type"] == "error"]
        self.assertEqual(extra, [], "an error or result was answered")

    def test_ping_server(self):
        self.assertEqual(self.alice.ping(DOMAIN), "result")
        self.assertEqual(self.bob.ping(DOMAIN), "result")

    def test_ping_between_clients(self):
        b = self.bob.mark()
        self.assertEqual(self.alice.ping("bob@localhost/phone"), "result")
        ping = self.bob.wait_stanza(lambda s: s.name == "iq" and s["type"] == "get", since=b)
        self.assertEqual(str(ping["from"]), "alice@localhost/laptop")
        self.assertIsNotNone(ping.xml.find(q(NS_PING, "ping")))

    def test_iq_to_offline_full_jid_bounces_service_unavailable(self):
        answer = self.alice.iq("<ping xmlns='%s'/>" % NS_PING, to="bob@localhost/gone")
        self.assertEqual(answer.get("type"), "error")
        self.assertEqual(answer.get("from"), "bob@localhost/gone")
        self.assertEqual(stanza_error(answer), ("cancel", "service-unavailable"))

    def test_headline_to_bare_jid_reaches_all_available_resources(self):
        """RFC 6121 §8.5.2.1.1: headline goes to every non-negative resource."""
        second = self.slix("bob", resource="tablet")
        b1, b2 = self.bob.mark(), second.mark()
        self.alice.send_message("bob@localhost", "news", mtype="headline")
        self.bob.wait_message("news", since=b1)
        second.wait_message("news", since=b2)

    def test_chat_to_bare_jid_prefers_highest_priority(self):
        """RFC 6121 §8.5.2.1.1: a chat goes to the resource(s) of highest priority."""
        high = self.slix("bob", resource="desk", connect=False)
        high.connect(presence=False)
        high.send_presence(priority=10)
        b1, b2 = self.bob.mark(), high.mark()
        self.alice.send_message("bob@localhost", "to the desk")
        high.wait_message("to the desk", since=b2)
        self.assertNoMessages(self.bob, b1)


class NoPresenceTests(ServerTestCase):
    """A client that never sent presence is not available (RFC 6121 §4.2):
    a message to its bare JID is not delivered to it, but one to its full JID is."""

    server_kwargs = dict(users={"alice": "alice-pw", "dave": "dave-pw"})

    def test_bare_message_skips_unavailable_resource(self):
        alice = self.slix("alice", resource="a")
        dave = self.slix("dave", resource="quiet", connect=False)
        dave.connect(presence=False)
        a, d = alice.mark(), dave.mark()
        alice.send_message("dave@localhost", "to bare")
        err = alice.wait_message(mtype="error", since=a)
        self.assertEqual(stanza_error(err.xml), ("cancel", "service-unavailable"))
        alice.send_message("dave@localhost/quiet", "to full")
        msg = dave.wait_message("to full", since=d)
        self.assertEqual(str(msg["from"]), "alice@localhost/a")
        self.assertEqual([m["body"] for m in dave.received_since(d, ("message",))], ["to full"])
