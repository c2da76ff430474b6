"""Stream errors for bad input: malformed XML, oversize stanzas, a
billion-laughs DTD, comments and processing instructions, wrong stream
headers, stanzas before authentication, a forged 'from', unknown elements
and iqs with the wrong number of payloads.  After every attack the attacker's
stream must end with the right <stream:error/> and be closed, and two
well-behaved slixmpp clients on the same server must still exchange a
message and ping the server, having received nothing else."""
import time

from harness import (DOMAIN, NS_CLIENT, NS_PING, NS_STREAM, ServerTestCase, SlixClient, q,
                     stanza_error)

BILLION_LAUGHS_DTD = (
    "<?xml version='1.0'?>\n<!DOCTYPE stream:stream [\n <!ENTITY lol 'lol'>\n" +
    "".join(" <!ENTITY lol%d '%s'>\n" % (i, ("&lol%s;" % ("" if i == 1 else i - 1)) * 10)
            for i in range(1, 10)) +
    "]>\n")


class StreamErrorTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw", "mallory": "mallory-pw"})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.alice = SlixClient(cls.server, "alice", resource="good").connect()
        cls.bob = SlixClient(cls.server, "bob", resource="good", direct_tls=True).connect()
        cls.counter = 0

    @classmethod
    def tearDownClass(cls):
        for c in (cls.alice, cls.bob):
            c.disconnect()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.marks = (self.alice.mark(), self.bob.mark())

    def tearDown(self):
        super().tearDown()
        self.assertBystandersFine()

    def assertBystandersFine(self):
        """alice and bob are connected, can talk and ping, and got nothing
        but what they said to each other since the test began."""
        for c in (self.alice, self.bob):
            self.assertFalse(c.disconnected, "%s was disconnected" % c.jid)
            self.assertEqual(c.stream_errors, [])
        type(self).counter += 1
        body = "still here %d" % self.counter
        self.alice.send_message("bob@localhost", body)
        self.bob.wait_message(body, since=self.marks[1])
        self.assertEqual(self.bob.ping(), "result")
        self.assertEqual(self.alice.ping("bob@localhost/good"), "result")
        extra_b = [s for s in self.bob.received_since(self.marks[1], ("message",))
                   if s["body"] != body]
        extra_a = self.alice.received_since(self.marks[0], ("message",))
        self.assertEqual(extra_b, [], "bob received something from the attack")
        self.assertEqual(extra_a, [], "alice received something from the attack")

    def attacker(self, login=False, tls=True, resource="attack"):
        """A raw connection; logged in as mallory when login, else with the
        stream opened (over STARTTLS when tls)."""
        if login:
            return self.raw_login("mallory", resource)
        c = self.raw()
        c.open_stream()
        if tls:
            c.starttls()
        return c

    def assertStreamError(self, c, condition):
        self.assertEqual(c.stream_error(), condition)
        self.assertTrue(c.stream_ended, "no </stream:stream> after the stream error")
        self.assertTrue(c.wait_closed(), "connection still open after the stream error")

    # ---- malformed XML ---------------------------------------------------

    def test_malformed_xml_before_auth(self):
        c = self.attacker(tls=False)
        c.send("<message><body>unclosed</message>")
        self.assertStreamError(c, "not-well-formed")

    def test_malformed_xml_after_login(self):
        c = self.attacker(login=True)
        c.send("<message to='bob@localhost/good' type='chat'><body>x</body></mess age>")
        self.assertStreamError(c, "not-well-formed")

    def test_garbage_bytes_instead_of_a_stream(self):
        c = self.raw()
        c.send(b"\x16\x03\x01\x02\x00GET / HTTP/1.1\r\n\r\n")
        self.assertStreamError(c, "not-well-formed")

    def test_invalid_utf8_after_login(self):
        c = self.attacker(login=True)
        c.send(b"<message to='bob@localhost/good'><body>\xff\xfe</body></message>")
        self.assertStreamError(c, "not-well-formed")

    def test_undefined_entity_after_login(self):
        c = self.attacker(login=True)
        c.send("<message to='bob@localhost/good'><body>&undefined;</body></message>")
        self.assertIn(c.stream_error(), ("not-well-formed", "restricted-xml"))
        self.assertTrue(c.wait_closed())

    # ---- size limits -----------------------------------------------------

    def test_oversize_stanza_after_login(self):
        """max_stanza_size is 64K here: a 100 KB message is a policy-violation
        and is not delivered."""
        c = self.attacker(login=True)
        c.send("<message to='bob@localhost/good' type='chat'><body>%s</body></message>" %
               ("A" * 100000))
        self.assertStreamError(c, "policy-violation")

    def test_oversize_stanza_before_auth(self):
        c = self.attacker(tls=False)
        c.send("<message><body>%s</body></message>" % ("B" * 100000))
        self.assertStreamError(c, "policy-violation")

    def test_oversize_attribute_in_stream_header(self):
        c = self.raw()
        c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='%s' "
               "to='localhost' version='1.0' x='%s'>" % (NS_STREAM, "C" * 100000))
        self.assertStreamError(c, "policy-violation")

    def test_stanza_just_under_the_limit_is_delivered(self):
        """The limit is not off by a lot: a 60 KB message still goes through."""
        c = self.attacker(login=True)
        body = "D" * 60000
        c.send("<message to='bob@localhost/good' type='chat'><body>%s</body></message>" % body)
        msg = self.bob.wait_message(body, since=self.marks[1])
        self.assertEqual(str(msg["from"]), "mallory@localhost/attack")
        self.marks = (self.marks[0], self.bob.mark())  # expected delivery
        self.assertEqual(c.ping(), "result")

    def test_too_deep_nesting_after_login(self):
        c = self.attacker(login=True)
        c.send("<message to='bob@localhost/good'>" + "<x>" * 200 + "</x>" * 200 + "</message>")
        self.assertStreamError(c, "policy-violation")

    # ---- restricted XML (RFC 6120 §11.1) ----------------------------------

    def test_billion_laughs_in_first_stream(self):
        c = self.raw()
        t0 = time.monotonic()
        c.send(BILLION_LAUGHS_DTD + "<stream:stream xmlns='jabber:client' xmlns:stream='%s' "
               "to='localhost' version='1.0'><message><body>&lol9;</body></message>" % NS_STREAM)
        self.assertStreamError(c, "restricted-xml")
        self.assertLess(time.monotonic() - t0, 5.0, "the entity expansion took long")

    def test_billion_laughs_after_sasl_restart(self):
        """The DTD arrives in the stream restarted after authentication."""
        c = self.raw()
        c.open_stream()
        c.starttls()
        self.assertEqual(c.auth_scram("mallory", "mallory-pw"), ("success", None))
        c._new_parser()
        c.send(BILLION_LAUGHS_DTD + "<stream:stream xmlns='jabber:client' xmlns:stream='%s' "
               "to='localhost' version='1.0'>&lol9;" % NS_STREAM)
        self.assertStreamError(c, "restricted-xml")

    def test_comment_after_login(self):
        c = self.attacker(login=True)
        c.send("<!-- a comment -->")
        self.assertStreamError(c, "restricted-xml")

    def test_processing_instruction_after_login(self):
        c = self.attacker(login=True)
        c.send("<?evil instruction?>")
        self.assertStreamError(c, "restricted-xml")

    # ---- stream headers ---------------------------------------------------

    def test_unknown_host_in_stream_header(self):
        c = self.raw()
        c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='%s' "
               "to='unknown.example' version='1.0'>" % NS_STREAM)
        self.assertStreamError(c, "host-unknown")

    def test_missing_to_without_sni_is_refused(self):
        """No 'to' and no SNI: the server cannot tell which host is meant."""
        c = self.raw()
        c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='%s' "
               "version='1.0'>" % NS_STREAM)
        self.assertIn(c.stream_error(), ("host-unknown", "improper-addressing"))
        self.assertTrue(c.wait_closed())

    def test_wrong_stream_namespace(self):
        c = self.raw()
        c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
               "xmlns:stream='urn:wrong' to='localhost' version='1.0'>")
        self.assertStreamError(c, "invalid-namespace")

    def test_unsupported_version(self):
        c = self.raw()
        c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='%s' "
               "to='localhost' version='2.0'>" % NS_STREAM)
        self.assertStreamError(c, "unsupported-version")

    def test_header_to_other_host_after_tls(self):
        """After STARTTLS the client may not switch to another host."""
        c = self.raw()
        c.open_stream()
        c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        c.read_element()
        c.sock.settimeout(5)
        c._wrap_tls(None, DOMAIN)
        c._new_parser()
        c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='%s' "
               "to='unknown.example' version='1.0'>" % NS_STREAM)
        self.assertStreamError(c, "host-unknown")

    # ---- stanzas the stream state does not allow --------------------------

    def test_stanza_before_auth_over_tls(self):
        c = self.attacker(tls=True)
        c.send("<message to='bob@localhost/good' type='chat'><body>early</body></message>")
        self.assertStreamError(c, "not-authorized")

    def test_iq_before_bind(self):
        c = self.raw()
        c.open_stream()
        c.starttls()
        self.assertEqual(c.auth_scram("mallory", "mallory-pw"), ("success", None))
        c.restart()
        c.send("<message to='bob@localhost/good' type='chat'><body>unbound</body></message>")
        self.assertStreamError(c, "not-authorized")

    def test_forged_from_is_invalid_from(self):
        c = self.attacker(login=True)
        c.send("<message from='alice@localhost/good' to='bob@localhost/good' type='chat'>"
               "<body>I am alice</body></message>")
        self.assertStreamError(c, "invalid-from")

    def test_forged_from_other_domain_is_invalid_from(self):
        c = self.attacker(login=True)
        c.send("<iq from='mallory@elsewhere.example/attack' to='localhost' type='get' id='f'>"
               "<ping xmlns='%s'/></iq>" % NS_PING)
        self.assertStreamError(c, "invalid-from")

    def test_unknown_top_level_element_after_login(self):
        c = self.attacker(login=True)
        c.send("<foo xmlns='jabber:client'/>")
        self.assertStreamError(c, "unsupported-stanza-type")

    def test_iq_with_two_payloads_is_bad_request(self):
        """RFC 6120 §8.2.3: a get/set iq has exactly one payload.  A stanza
        error, not a stream error: the stream stays usable."""
        c = self.attacker(login=True)
        answer = c.iq("<ping xmlns='%s'/><query xmlns='jabber:iq:version'/>" % NS_PING,
                      to="bob@localhost/good")
        self.assertEqual(answer.get("type"), "error")
        self.assertEqual(stanza_error(answer), ("modify", "bad-request"))
        answer = c.iq("<ping xmlns='%s'/><ping xmlns='%s'/>" % (NS_PING, NS_PING), to=DOMAIN)
        self.assertEqual(stanza_error(answer), ("modify", "bad-request"))
        self.assertEqual(c.ping(), "result")
        self.assertEqual(self.bob.received_since(self.marks[1], ("iq",)), [],
                         "the bad iq reached bob")

    def test_iq_without_payload_is_bad_request(self):
        c = self.attacker(login=True)
        answer = c.iq("", to="bob@localhost/good")
        self.assertEqual(stanza_error(answer), ("modify", "bad-request"))
        answer = c.iq("<ping xmlns='%s'/>" % NS_PING, type_="fetch")
        self.assertEqual(stanza_error(answer), ("modify", "bad-request"))
        self.assertEqual(c.ping(), "result")
        self.assertEqual(self.bob.received_since(self.marks[1], ("iq",)), [])

    def test_iq_without_id_is_bad_request(self):
        c = self.attacker(login=True)
        c.send("<iq type='get' to='localhost'><ping xmlns='%s'/></iq>" % NS_PING)
        err = c.wait_for(lambda e: e.tag == q(NS_CLIENT, "iq"))
        self.assertEqual(err.get("type"), "error")
        self.assertEqual(stanza_error(err), ("modify", "bad-request"))
        self.assertEqual(c.ping(), "result")

    def test_two_attackers_at_once(self):
        """Several bad streams in flight do not disturb each other or others."""
        bad = [self.attacker(login=True, resource="a%d" % i) for i in range(3)]
        bad[0].send("<message><body>%s</body></message>" % ("E" * 100000))
        bad[1].send("<!-- c -->")
        bad[2].send("<message></wrong>")
        self.assertStreamError(bad[0], "policy-violation")
        self.assertStreamError(bad[1], "restricted-xml")
        self.assertStreamError(bad[2], "not-well-formed")
