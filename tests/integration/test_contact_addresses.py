"""XEP-0157 contact addresses in the host's disco#info (mod_disco): the
contact_* options become one XEP-0128 form with FORM_TYPE
http://jabber.org/network/serverinfo; no form when none is set; an address
that is not a URI keeps the module from loading (a reload is refused)."""
from harness import DOMAIN, NS_DISCO_INFO, ServerTestCase, deep_merge, q, stanza_error

NS_DATA = "jabber:x:data"
SERVERINFO = "http://jabber.org/network/serverinfo"

CONTACTS = {
    "contact_abuse": ["mailto:abuse@example.org", "xmpp:abuse@example.org"],
    "contact_admin": ["xmpp:admin@example.org"],
    "contact_security": ["https://example.org/security.txt"],
    "contact_status": ["https://status.example.org/"],
    "contact_support": ["xmpp:support@conference.example.org?join"],
}


def forms(client):
    """{FORM_TYPE: {var: [values]}} of the host's disco#info."""
    answer = client.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN)
    assert answer.get("type") == "result", stanza_error(answer)
    query = answer.find(q(NS_DISCO_INFO, "query"))
    out = {}
    for x in query.findall(q(NS_DATA, "x")):
        fields = {f.get("var"): [v.text for v in f.findall(q(NS_DATA, "value"))]
                  for f in x.findall(q(NS_DATA, "field"))}
        assert x.get("type") == "result"
        out[fields.get("FORM_TYPE", [None])[0]] = fields
    return out


class ContactAddressTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw"}, config={"modules": {"disco": CONTACTS}})

    def test_form_lists_the_configured_addresses(self):
        alice = self.slix("alice")
        info = forms(alice)
        self.assertIn(SERVERINFO, info)
        fields = info[SERVERINFO]
        expected = {"FORM_TYPE": [SERVERINFO],
                    "abuse-addresses": CONTACTS["contact_abuse"],
                    "admin-addresses": CONTACTS["contact_admin"],
                    "security-addresses": CONTACTS["contact_security"],
                    "status-addresses": CONTACTS["contact_status"],
                    "support-addresses": CONTACTS["contact_support"]}
        self.assertEqual(fields, expected)

    def test_form_type_comes_first_and_is_hidden(self):
        alice = self.slix("alice")
        answer = alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN)
        x = answer.find(q(NS_DISCO_INFO, "query")).find(q(NS_DATA, "x"))
        first = x.find(q(NS_DATA, "field"))
        self.assertEqual((first.get("var"), first.get("type")), ("FORM_TYPE", "hidden"))

    def test_accounts_do_not_carry_the_form(self):
        alice = self.slix("alice")
        answer = alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to="alice@localhost")
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        query = answer.find(q(NS_DISCO_INFO, "query"))
        self.assertEqual(query.findall(q(NS_DATA, "x")), [])
        identities = [(i.get("category"), i.get("type"))
                      for i in query.findall(q(NS_DISCO_INFO, "identity"))]
        self.assertEqual(identities, [("account", "registered")])
        features = {f.get("var") for f in query.findall(q(NS_DISCO_INFO, "feature"))}
        self.assertEqual(features, {NS_DISCO_INFO, "http://jabber.org/protocol/disco#items"})


class NoContactAddressTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw"})

    def test_no_form_without_addresses(self):
        alice = self.slix("alice")
        self.assertNotIn(SERVERINFO, forms(alice))

    def test_address_without_scheme_is_refused_and_a_fixed_one_applies(self):
        """An address that is not a URI keeps the module from loading: a
        reload with it fails and the running set stays; a reload with a
        proper URI publishes the form."""
        alice = self.slix("alice")
        good = self.server.config
        try:
            self.server.write_config(deep_merge(
                good, {"modules": {"disco": {"contact_abuse": ["abuse@example.org"]}}}))
            r = self.server.ternctl("reload")
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("disco", r.stderr)
            self.assertIn("contact_abuse", self.server.log_text())
            self.assertNotIn(SERVERINFO, forms(alice))
            self.server.write_config(deep_merge(
                good, {"modules": {"disco": {"contact_abuse": ["mailto:abuse@example.org"]}}}))
            self.server.ternctl_ok("reload")
            self.assertEqual(forms(alice).get(SERVERINFO),
                             {"FORM_TYPE": [SERVERINFO],
                              "abuse-addresses": ["mailto:abuse@example.org"]})
        finally:
            self.server.write_config(good)
            self.server.ternctl_ok("reload")
        self.assertNotIn(SERVERINFO, forms(alice))
