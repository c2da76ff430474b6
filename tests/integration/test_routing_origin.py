"""The router enforces the from/to rules of each origin in one place.

A client may only send from its own full JID: no 'from' is stamped, its
bare JID is replaced by its full JID, anything else ends its stream with
<invalid-from/> (RFC 6120 §8.1.2.1, §4.9.3.9) and nothing reaches the
target.  A component may send from its domain, JIDs at it and its
subdomains; anything else ends its stream with <invalid-from/> and nothing
reaches the target."""
from harness import DOMAIN, NS_CLIENT, ServerTestCase, q

COMP = "bots." + DOMAIN
SECRET = "bots-secret"


class RoutingOriginTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"},
                         components={COMP: SECRET})

    def bob(self):
        return self.raw_login("bob", resource="phone")

    def messages(self, client, within=1.5):
        return [e for e in client.nothing_more(within) if e.tag == q(NS_CLIENT, "message")]

    def test_client_spoofing_another_users_from_is_refused(self):
        bob = self.bob()
        alice = self.raw_login("alice", resource="desk")
        alice.send("<message from='bob@%s/phone' to='bob@%s/phone' type='chat'>"
                   "<body>forged</body></message>" % (DOMAIN, DOMAIN))
        self.assertEqual(alice.stream_error(), "invalid-from")
        self.assertEqual(self.messages(bob), [])

    def test_client_spoofing_another_resource_of_its_account_is_refused(self):
        bob = self.bob()
        alice = self.raw_login("alice", resource="desk")
        alice.send("<message from='alice@%s/other' to='bob@%s/phone' type='chat'>"
                   "<body>forged</body></message>" % (DOMAIN, DOMAIN))
        self.assertEqual(alice.stream_error(), "invalid-from")
        self.assertEqual(self.messages(bob), [])

    def test_client_from_absent_or_bare_is_stamped_with_the_full_jid(self):
        bob = self.bob()
        alice = self.raw_login("alice", resource="desk")
        for from_attr in ("", " from='alice@%s'" % DOMAIN, " from='alice@%s/desk'" % DOMAIN):
            alice.send("<message%s to='bob@%s/phone' type='chat'><body>hi</body></message>" %
                       (from_attr, DOMAIN))
            got = bob.wait_for(lambda e: e.tag == q(NS_CLIENT, "message"))
            self.assertEqual(got.get("from"), "alice@%s/desk" % DOMAIN)

    def test_component_spoofing_a_users_from_is_refused(self):
        bob = self.bob()
        comp = self.raw(component=True)
        comp.handshake(COMP, SECRET)
        comp.send("<message from='alice@%s/desk' to='bob@%s/phone' type='chat'>"
                  "<body>forged</body></message>" % (DOMAIN, DOMAIN))
        self.assertEqual(comp.stream_error(), "invalid-from")
        self.assertEqual(self.messages(bob), [])

    def test_component_spoofing_a_lookalike_domain_is_refused(self):
        bob = self.bob()
        comp = self.raw(component=True)
        comp.handshake(COMP, SECRET)
        comp.send("<message from='x@evil%s' to='bob@%s/phone'><body>forged</body></message>" %
                  (COMP, DOMAIN))
        self.assertEqual(comp.stream_error(), "invalid-from")
        self.assertEqual(self.messages(bob), [])

    def test_component_may_send_from_its_domain_and_subdomains(self):
        bob = self.bob()
        comp = self.raw(component=True)
        comp.handshake(COMP, SECRET)
        for sender in (COMP, "echo@%s" % COMP, "chan@irc.%s/nick" % COMP):
            comp.send("<message from='%s' to='bob@%s/phone' type='chat'><body>hi</body>"
                      "</message>" % (sender, DOMAIN))
            got = bob.wait_for(lambda e: e.tag == q(NS_CLIENT, "message"))
            self.assertEqual(got.get("from"), sender)
