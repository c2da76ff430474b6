"""Logging in: STARTTLS and direct TLS (with ALPN), SCRAM-SHA-1/256/512 and
their -PLUS variants with tls-server-end-point (slixmpp and by hand), wrong
passwords and the failure delay, what is offered before TLS (no PLAIN, no
SASL at all), PLAIN when allowed, the SCRAM downgrade, channel-binding and
authzid checks, SASLprep'd Unicode credentials, STARTTLS injection, the
limit on failed attempts, the handshake timeout, resource binding and both
resource-conflict policies."""
import base64
import ssl
import time

from harness import (DOMAIN, NS_BIND, NS_CLIENT, NS_SASL, NS_STREAM, NS_TLS, LoginFailed,
                     RawClient, ScramClient, ServerTestCase, b64, q, stanza_error, unb64)


class LoginTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-secret", "bob": "bob-secret",
                                "carol": "carol-secret"})

    # ---- slixmpp ----------------------------------------------------------

    def test_slixmpp_starttls_scram_sha256(self):
        c = self.slix("alice", resource="starttls")
        self.assertEqual(c.jid, "alice@localhost/starttls")
        self.assertEqual(c.xmpp["feature_mechanisms"].mech.name, "SCRAM-SHA-256")
        self.assertEqual(c.ping(), "result")

    def test_slixmpp_direct_tls_scram_sha256(self):
        c = self.slix("alice", resource="direct", direct_tls=True)
        self.assertEqual(c.jid, "alice@localhost/direct")
        self.assertEqual(c.alpn, "xmpp-client")
        self.assertEqual(c.ping(), "result")

    def test_slixmpp_starttls_scram_sha256_plus(self):
        c = self.slix("bob", resource="plus", plus=True)
        self.assertEqual(c.xmpp["feature_mechanisms"].mech.name, "SCRAM-SHA-256-PLUS")
        self.assertEqual(c.jid, "bob@localhost/plus")
        self.assertEqual(c.ping(), "result")

    def test_slixmpp_direct_tls_scram_sha256_plus(self):
        c = self.slix("bob", resource="plus-direct", plus=True, direct_tls=True)
        self.assertEqual(c.xmpp["feature_mechanisms"].mech.name, "SCRAM-SHA-256-PLUS")
        self.assertEqual(c.ping(), "result")

    def test_slixmpp_wrong_password_refused(self):
        c = self.slix("alice", connect=False, password="not-the-password")
        with self.assertRaises(LoginFailed):
            c.connect()
        # The account still works with the right password.
        ok = self.slix("alice", resource="after-wrong")
        self.assertEqual(ok.ping(), "result")

    # ---- raw SCRAM ----------------------------------------------------------

    def test_raw_scram_mechanisms_over_direct_tls(self):
        """Every SCRAM variant logs in; the server's signature (v=) and the
        XEP-0474 downgrade-protection hash (h=) are verified by the client."""
        for mech in ("SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512", "SCRAM-SHA-1-PLUS",
                     "SCRAM-SHA-256-PLUS", "SCRAM-SHA-512-PLUS"):
            with self.subTest(mech=mech):
                c = self.raw(direct_tls=True)
                c.open_stream()
                self.assertIn(mech, c.mechanisms())
                self.assertEqual(c.auth_scram("carol", "carol-secret", mech), ("success", None))
                self.assertIn("h", c.scram.server_attrs, "no XEP-0474 downgrade protection")
                c.restart()
                self.assertTrue(c.bind("m").startswith("carol@localhost/m"))
                self.assertEqual(c.ping(), "result")
                c.close()

    def test_raw_scram_sha256_plus_over_starttls(self):
        c = self.raw()
        c.open_stream()
        c.starttls()
        self.assertIn("tls-server-end-point", c.cb_types())
        self.assertEqual(c.auth_scram("carol", "carol-secret", "SCRAM-SHA-256-PLUS"),
                         ("success", None))
        c.restart()
        self.assertEqual(c.bind("plus"), "carol@localhost/plus")

    def test_wrong_password_gets_not_authorized_and_stream_stays_usable(self):
        c = self.raw()
        c.open_stream()
        c.starttls()
        t0 = time.monotonic()
        self.assertEqual(c.auth_scram("alice", "wrong", "SCRAM-SHA-256"),
                         ("failure", "not-authorized"))
        self.assertGreaterEqual(time.monotonic() - t0, 0.09, "no auth_failure_delay")
        # RFC 6120 §6.4.5: the client may try again on the same stream.
        self.assertEqual(c.auth_scram("alice", "alice-secret", "SCRAM-SHA-256"),
                         ("success", None))
        c.restart()
        self.assertEqual(c.bind("retry"), "alice@localhost/retry")

    def test_unknown_user_gets_not_authorized(self):
        c = self.raw(direct_tls=True)
        c.open_stream()
        self.assertEqual(c.auth_scram("nobody", "whatever", "SCRAM-SHA-256"),
                         ("failure", "not-authorized"))

    def test_scram_y_flag_when_plus_offered_is_refused(self):
        """RFC 5802 §6: 'y' says the client thinks the server lacks channel
        binding; since the server advertised -PLUS, that is a downgrade."""
        c = self.raw(direct_tls=True)
        c.open_stream()
        self.assertIn("SCRAM-SHA-256-PLUS", c.mechanisms())
        status, cond = c.auth_scram("alice", "alice-secret", "SCRAM-SHA-256", gs2_flag="y")
        self.assertEqual((status, cond), ("failure", "not-authorized"))

    def test_scram_plus_with_wrong_binding_data_is_refused(self):
        c = self.raw(direct_tls=True)
        c.open_stream()
        scram = ScramClient("alice", "alice-secret", "SCRAM-SHA-256-PLUS", c)
        scram.cb_data = b"\x00" * 32  # not the hash of the server's certificate
        c.send("<auth xmlns='%s' mechanism='SCRAM-SHA-256-PLUS'>%s</auth>" %
               (NS_SASL, b64(scram.client_first())))
        challenge = c.expect(q(NS_SASL, "challenge"))
        c.send("<response xmlns='%s'>%s</response>" %
               (NS_SASL, b64(scram.client_final(unb64(challenge.text)))))
        failure = c.expect(q(NS_SASL, "failure"))
        self.assertIsNotNone(failure.find(q(NS_SASL, "not-authorized")))

    def test_max_auth_failures_closes_the_stream(self):
        c = self.raw(direct_tls=True)
        c.open_stream()
        for attempt in (1, 2):
            self.assertEqual(c.auth_scram("alice", "bad%d" % attempt),
                             ("failure", "not-authorized"))
        self.assertFalse(c.stream_ended or c.eof, "closed before max_auth_failures")
        self.assertEqual(c.auth_scram("alice", "bad3"), ("failure", "not-authorized"))
        self.assertEqual(c.stream_error(), "policy-violation")
        self.assertTrue(c.wait_closed(), "connection not closed after max_auth_failures")

    def test_username_is_case_insensitive(self):
        """The SASL username is a localpart: ALICE is alice (RFC 7613 UsernameCaseMapped)."""
        c = self.raw(direct_tls=True)
        self.assertEqual(c.login("ALICE", "alice-secret", "Case"), "alice@localhost/Case")

    def test_unicode_username_and_password(self):
        """Localparts are prepared (case-folded), passwords SASLprep'd, both UTF-8."""
        self.server.add_user("j\u00fcrgen", "p\u00e4ssw\u00f6rd \u00fcn\u00efcode")
        c = self.raw(direct_tls=True)
        self.assertEqual(c.login("J\u00fcrgen", "p\u00e4ssw\u00f6rd \u00fcn\u00efcode", "u"),
                         "j\u00fcrgen@localhost/u")
        s = self.slix("j\u00fcrgen", resource="slix")
        self.assertEqual(s.ping(), "result")

    def test_authzid_must_name_the_authenticated_account(self):
        for authzid, expected in (("alice@localhost", "success"), ("bob@localhost", "failure")):
            with self.subTest(authzid=authzid):
                c = self.raw(direct_tls=True)
                c.open_stream()
                scram = ScramClient("alice", "alice-secret", "SCRAM-SHA-256", c)
                scram.gs2 = "n,a=%s," % authzid
                c.send("<auth xmlns='%s' mechanism='SCRAM-SHA-256'>%s</auth>" %
                       (NS_SASL, b64(scram.client_first())))
                challenge = c.expect(q(NS_SASL, "challenge"))
                c.send("<response xmlns='%s'>%s</response>" %
                       (NS_SASL, b64(scram.client_final(unb64(challenge.text)))))
                answer = c.read_element()
                self.assertEqual(answer.tag, q(NS_SASL, expected))
                if expected == "failure":
                    self.assertIsNotNone(answer.find(q(NS_SASL, "invalid-authzid")))
                else:
                    c.restart()
                    self.assertEqual(c.bind("authz"), "alice@localhost/authz")

    def test_client_closing_its_stream_gets_the_servers_close(self):
        c = self.raw(direct_tls=True)
        c.login("alice", "alice-secret", "bye")
        c.send("</stream:stream>")
        self.assertTrue(c.wait_closed(), "server did not close the connection")
        self.assertTrue(c.stream_ended, "server did not answer with </stream:stream>")

    def test_sasl_abort_and_stray_response(self):
        c = self.raw(direct_tls=True)
        c.open_stream()
        c.send("<response xmlns='%s'>biws</response>" % NS_SASL)
        failure = c.expect(q(NS_SASL, "failure"))
        self.assertIsNotNone(failure.find(q(NS_SASL, "malformed-request")))
        scram = ScramClient("alice", "alice-secret", "SCRAM-SHA-256", c)
        c.send("<auth xmlns='%s' mechanism='SCRAM-SHA-256'>%s</auth>" %
               (NS_SASL, b64(scram.client_first())))
        c.expect(q(NS_SASL, "challenge"))
        c.send("<abort xmlns='%s'/>" % NS_SASL)
        failure = c.expect(q(NS_SASL, "failure"))
        self.assertIsNotNone(failure.find(q(NS_SASL, "aborted")))
        c.send("<auth xmlns='%s' mechanism='NO-SUCH-MECH'/>" % NS_SASL)
        failure = c.expect(q(NS_SASL, "failure"))
        self.assertIsNotNone(failure.find(q(NS_SASL, "invalid-mechanism")))
        # None of these counted as failed logins, and the stream still works.
        self.assertEqual(c.auth_scram("alice", "alice-secret"), ("success", None))

    def test_bytes_pipelined_after_starttls_are_discarded(self):
        """RFC 6120 §5.4.3.3: nothing sent in clear after <starttls/> may be
        processed inside the TLS session (STARTTLS command injection)."""
        bob = self.raw_login("bob", "injection-target")
        c = self.raw()
        c.open_stream()
        c.send("<starttls xmlns='%s'/><stream:stream xmlns='jabber:client' xmlns:stream='%s' "
               "to='localhost' version='1.0'><message to='bob@localhost/injection-target'>"
               "<body>injected</body></message>" % (NS_TLS, NS_STREAM))
        c.expect(q(NS_TLS, "proceed"))
        c._wrap_tls(None, DOMAIN)
        c._new_parser()
        features = c.open_stream()
        self.assertIn("SCRAM-SHA-256", c.mechanisms(features))
        self.assertEqual(c.auth_scram("alice", "alice-secret"), ("success", None))
        self.assertEqual(bob.nothing_more(0.5), [], "pipelined plaintext was processed")

    def test_pipelined_restart_and_bind_after_sasl_success(self):
        """Clients often send the new stream header and the bind request in
        one write right after <success/>; both must be processed."""
        c = self.raw(direct_tls=True)
        c.open_stream()
        self.assertEqual(c.auth_scram("alice", "alice-secret"), ("success", None))
        c._new_parser()
        c.send("<stream:stream xmlns='jabber:client' xmlns:stream='%s' to='localhost' "
               "version='1.0'><iq type='set' id='pb'><bind xmlns='%s'><resource>pipe"
               "</resource></bind></iq><iq type='get' id='pp' to='localhost'>"
               "<ping xmlns='urn:xmpp:ping'/></iq>" % (NS_STREAM, NS_BIND))
        c.expect(q(NS_STREAM, "features"))
        bound = c.expect(q(NS_CLIENT, "iq"))
        self.assertEqual((bound.get("id"), bound.get("type")), ("pb", "result"))
        pong = c.expect(q(NS_CLIENT, "iq"))
        self.assertEqual((pong.get("id"), pong.get("type")), ("pp", "result"))

    # ---- what is offered before and after TLS ------------------------------

    def test_plain_and_scram_not_offered_before_tls(self):
        c = self.raw()
        features = c.open_stream()
        starttls = features.find(q(NS_TLS, "starttls"))
        self.assertIsNotNone(starttls, "STARTTLS not offered")
        self.assertIsNotNone(starttls.find(q(NS_TLS, "required")), "TLS not required")
        self.assertNotIn("PLAIN", c.mechanisms())
        self.assertEqual(c.mechanisms(), [], "SASL offered before TLS")
        features = c.starttls()
        mechs = c.mechanisms()
        self.assertIsNone(features.find(q(NS_TLS, "starttls")), "STARTTLS offered twice")
        self.assertNotIn("PLAIN", mechs)  # allow_plain is false
        for mech in ("SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1", "SCRAM-SHA-512"):
            self.assertIn(mech, mechs)
        self.assertIn("tls-server-end-point", c.cb_types())

    def test_auth_before_tls_is_refused(self):
        c = self.raw()
        c.open_stream()
        for mech in ("PLAIN", "SCRAM-SHA-256"):
            c.send("<auth xmlns='%s' mechanism='%s'>%s</auth>" %
                   (NS_SASL, mech, "AGFsaWNlAGFsaWNlLXNlY3JldA=="))
            failure = c.expect(q(NS_SASL, "failure"))
            self.assertIsNotNone(failure.find(q(NS_SASL, "encryption-required")),
                                 "auth with %s before TLS" % mech)
        # The stream is still good for STARTTLS and a proper login.
        c.starttls()
        self.assertEqual(c.auth_scram("alice", "alice-secret"), ("success", None))

    def test_stanza_before_auth_gets_not_authorized(self):
        bob = self.raw_login("bob", "victim")
        for tls in (False, True):
            with self.subTest(tls=tls):
                c = self.raw()
                c.open_stream()
                if tls:
                    c.starttls()
                c.send("<message to='bob@localhost/victim' type='chat'><body>hi</body></message>")
                self.assertEqual(c.stream_error(), "not-authorized")
                self.assertTrue(c.wait_closed())
        self.assertEqual(bob.nothing_more(0.5), [], "a stanza before auth was delivered")

    def test_bind_before_auth_is_refused(self):
        """An iq before authentication is either a not-authorized stream error
        or (since XEP-0077 registration iqs are allowed then) an iq error; it
        never binds a resource."""
        c = self.raw(direct_tls=True)
        c.open_stream()
        c.send("<iq type='set' id='b'><bind xmlns='%s'><resource>r</resource></bind></iq>" %
               NS_BIND)
        el = c.read_element()
        if el.tag == q(NS_STREAM, "error"):
            c.queue.insert(0, el)
            self.assertEqual(c.stream_error(), "not-authorized")
            return
        self.assertEqual(el.tag, q(NS_CLIENT, "iq"))
        self.assertEqual(el.get("type"), "error", "bind before authentication succeeded")
        # Still unauthenticated: a message is refused with a stream error.
        c.send("<message to='alice@localhost' type='chat'><body>x</body></message>")
        self.assertEqual(c.stream_error(), "not-authorized")

    # ---- direct TLS and ALPN ----------------------------------------------

    def test_direct_tls_selects_alpn_xmpp_client(self):
        c = self.raw(direct_tls=True, alpn=("xmpp-client",))
        self.assertEqual(c.sock.selected_alpn_protocol(), "xmpp-client")
        self.assertEqual(c.login("alice", "alice-secret", "alpn"), "alice@localhost/alpn")

    def test_direct_tls_without_alpn_is_accepted(self):
        c = self.raw(direct_tls=True, alpn=None)
        self.assertIsNone(c.sock.selected_alpn_protocol())
        self.assertEqual(c.login("alice", "alice-secret", "noalpn"), "alice@localhost/noalpn")

    def test_direct_tls_with_foreign_alpn_is_refused(self):
        """XEP-0368 / RFC 7301 §3.2: only xmpp-client; another protocol is a
        fatal no_application_protocol alert."""
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            c = RawClient(self.server.tls_port, direct_tls=True, alpn=("http/1.1",))
            c.open_stream()  # in case the alert only shows on first read
        ok = self.raw(direct_tls=True)
        self.assertEqual(ok.login("alice", "alice-secret", "after-alpn"),
                         "alice@localhost/after-alpn")

    # ---- binding ---------------------------------------------------------

    def test_bind_without_resource_gets_a_generated_one(self):
        c = self.raw(direct_tls=True)
        jid = c.login("alice", "alice-secret", None)
        self.assertRegex(jid, r"^alice@localhost/.+$")

    def test_resource_conflict_kicks_the_old_session(self):
        """Default policy kick_old (RFC 6120 §7.7.2.2): the older stream gets
        a conflict stream error, the new one is bound and receives."""
        old = self.raw_login("alice", "dup")
        sender = self.raw_login("bob", "sender")
        new = self.raw(direct_tls=True)
        self.assertEqual(new.login("alice", "alice-secret", "dup"), "alice@localhost/dup")
        self.assertEqual(old.stream_error(), "conflict")
        self.assertTrue(old.wait_closed())
        sender.send("<message to='alice@localhost/dup' type='chat'><body>to new</body></message>")
        msg = new.wait_for(lambda e: e.tag == q(NS_CLIENT, "message"))
        self.assertEqual(msg.findtext(q(NS_CLIENT, "body")), "to new")
        self.assertEqual(msg.get("from"), "bob@localhost/sender")
        self.assertEqual(new.ping(), "result")


class PlainAllowedTests(ServerTestCase):
    """With c2s.allow_plain: true, PLAIN is offered only once TLS is up."""

    server_kwargs = dict(users={"alice": "alice-secret"},
                         config={"c2s": {"allow_plain": True}})

    def test_plain_not_offered_before_tls_but_after(self):
        c = self.raw()
        c.open_stream()
        self.assertNotIn("PLAIN", c.mechanisms())
        c.starttls()
        self.assertIn("PLAIN", c.mechanisms())

    def test_plain_before_tls_refused_and_after_tls_works(self):
        creds = base64.b64encode(b"\0alice\0alice-secret").decode()
        c = self.raw()
        c.open_stream()
        c.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, creds))
        failure = c.expect(q(NS_SASL, "failure"))
        self.assertIsNotNone(failure.find(q(NS_SASL, "encryption-required")))
        c.starttls()
        bad = base64.b64encode(b"\0alice\0wrong").decode()
        c.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, bad))
        failure = c.expect(q(NS_SASL, "failure"))
        self.assertIsNotNone(failure.find(q(NS_SASL, "not-authorized")))
        c.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, creds))
        c.expect(q(NS_SASL, "success"))
        c.restart()
        self.assertEqual(c.bind("plain"), "alice@localhost/plain")


class HandshakeTimeoutTests(ServerTestCase):
    """limits.handshake_timeout: a connection that does not log in and bind in
    time gets connection-timeout; a bound session is not affected by it."""

    server_kwargs = dict(users={"alice": "alice-secret"},
                         config={"limits": {"handshake_timeout": "1s"}})

    def test_idle_unauthenticated_connection_times_out(self):
        c = self.raw(direct_tls=True)
        c.open_stream()
        t0 = time.monotonic()
        self.assertEqual(c.stream_error(timeout=6), "connection-timeout")
        self.assertGreaterEqual(time.monotonic() - t0, 0.5)
        self.assertTrue(c.wait_closed())

    def test_bound_session_outlives_the_handshake_timeout(self):
        c = self.raw(direct_tls=True)
        c.login("alice", "alice-secret", "stays")
        time.sleep(1.6)
        self.assertEqual(c.ping(), "result")
        self.assertEqual(c.nothing_more(0.2), [])


class RefuseConflictTests(ServerTestCase):
    """c2s.resource_conflict: refuse turns the new session away and keeps the old."""

    server_kwargs = dict(users={"alice": "alice-secret"},
                         config={"c2s": {"resource_conflict": "refuse"}})

    def test_second_bind_of_a_resource_is_refused(self):
        old = self.raw_login("alice", "dup")
        new = self.raw(direct_tls=True)
        new.open_stream()
        self.assertEqual(new.auth_scram("alice", "alice-secret"), ("success", None))
        new.restart()
        new.send("<iq type='set' id='b2'><bind xmlns='%s'><resource>dup</resource></bind></iq>"
                 % NS_BIND)
        answer = new.expect(q(NS_CLIENT, "iq"))
        self.assertEqual(answer.get("type"), "error")
        self.assertEqual(stanza_error(answer), ("cancel", "conflict"))
        self.assertEqual(old.ping(), "result")
        self.assertEqual(old.nothing_more(0.3), [])
        # Another resource still binds on the same stream.
        self.assertEqual(new.bind("other"), "alice@localhost/other")
