"""mod_search: the user directory over jabber:iq:search (XEP-0055) with
XEP-0004 forms.

Users opt in by publishing a vCard with a name or nickname (mod_vcard);
others (and avatar-only vCards) stay out unless list_all_users is set.
Searches match substrings ignoring case, every given field must match,
results are capped by max_results, the answer has the style of the request
(legacy items or a result form), and only users of the server may search.
A found JID is then usable for the "add friend" flow (a subscription
request reaches the found user).  vCards stored before mod_search was
loaded are listed once it loads."""
import os
import sqlite3
import time
import xml.etree.ElementTree as ET

from harness import (DOMAIN, NS_DISCO_INFO, T_REPLY, ServerTestCase, SlixClient, deep_merge,
                     q, stanza_error)

NS_SEARCH = "jabber:iq:search"
NS_DATA = "jabber:x:data"
NS_VCARD = "vcard-temp"
COMP = "bots.localhost"
SECRET = "bots-secret"

PEOPLE = {
    # user: vCard body
    "carol": "<FN>Carol Jones</FN><N><FAMILY>Jones</FAMILY><GIVEN>Carol</GIVEN></N>"
             "<NICKNAME>cj</NICKNAME><EMAIL><INTERNET/><USERID>carol@example.org</USERID></EMAIL>",
    "dave": "<FN>Dave Smith</FN><NICKNAME>ds</NICKNAME>",
    "erin": "<FN>Erin Smith</FN>",
    "gina": "<FN>Gina Smithers</FN><NICKNAME>gigi</NICKNAME>",
    "ivan": "<FN>Ivan Petrov</FN><NICKNAME>ivp</NICKNAME>",
    # An avatar only, as clients publish on their own: not an opt-in.
    "frank": "<PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgo=</BINVAL></PHOTO>",
}
PASSWORDS = {u: u + "-pw" for u in ["alice", "bob", "hank"] + list(PEOPLE)}


def publish(server, user, body):
    c = SlixClient(server, user, resource="publish").connect(presence=False)
    try:
        answer = c.iq("<vCard xmlns='%s'>%s</vCard>" % (NS_VCARD, body), to=None, itype="set")
        assert answer.get("type") == "result", ET.tostring(answer)
    finally:
        c.disconnect()


def form_submit(**values):
    fields = ["<field var='FORM_TYPE' type='hidden'><value>%s</value></field>" % NS_SEARCH]
    fields += ["<field var='%s'><value>%s</value></field>" % kv for kv in values.items()]
    return ("<query xmlns='%s'><x xmlns='%s' type='submit'>%s</x></query>" %
            (NS_SEARCH, NS_DATA, "".join(fields)))


def legacy_submit(**values):
    return "<query xmlns='%s'>%s</query>" % (
        NS_SEARCH, "".join("<%s>%s</%s>" % (k, v, k) for k, v in values.items()))


def form_items(answer):
    """[{var: value}] of the items of a result form."""
    x = answer.find("%s/%s" % (q(NS_SEARCH, "query"), q(NS_DATA, "x")))
    assert x is not None and x.get("type") == "result", ET.tostring(answer)
    out = []
    for item in x.findall(q(NS_DATA, "item")):
        out.append({f.get("var"): (f.findtext(q(NS_DATA, "value")) or "")
                    for f in item.findall(q(NS_DATA, "field"))})
    return out


def legacy_items(answer):
    """{jid: {first, last, nick, email}} of a legacy answer."""
    query = answer.find(q(NS_SEARCH, "query"))
    assert query is not None, ET.tostring(answer)
    assert query.find(q(NS_DATA, "x")) is None
    return {item.get("jid"): {c.tag.split("}")[1]: (c.text or "") for c in item}
            for item in query.findall(q(NS_SEARCH, "item"))}


class SearchTests(ServerTestCase):
    server_kwargs = dict(users=PASSWORDS, components={COMP: SECRET},
                         config={"modules": {"vcard": {}, "search": {"max_results": 2}}})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for user, body in PEOPLE.items():
            publish(cls.server, user, body)
        cls.alice = SlixClient(cls.server, "alice", resource="finder").connect()

    @classmethod
    def tearDownClass(cls):
        cls.alice.disconnect()
        super().tearDownClass()

    def search(self, payload, client=None):
        answer = (client or self.alice).iq(payload, to=DOMAIN, itype="set")
        self.assertEqual(answer.get("type"), "result", ET.tostring(answer))
        self.assertEqual(answer.get("from"), DOMAIN)
        return answer

    def test_disco_lists_the_search_feature_and_directory_identity(self):
        answer = self.alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN)
        features = {f.get("var") for f in answer.iter(q(NS_DISCO_INFO, "feature"))}
        self.assertIn(NS_SEARCH, features)
        identities = {(i.get("category"), i.get("type"))
                      for i in answer.iter(q(NS_DISCO_INFO, "identity"))}
        self.assertIn(("directory", "user"), identities)
        # The directory is one more identity of the host, which stays an IM server.
        self.assertIn(("server", "im"), identities)

    def test_search_fields_legacy_and_form(self):
        answer = self.alice.iq("<query xmlns='%s'/>" % NS_SEARCH, to=DOMAIN)
        self.assertEqual(answer.get("type"), "result")
        query = answer.find(q(NS_SEARCH, "query"))
        self.assertTrue(query.findtext(q(NS_SEARCH, "instructions")))
        for legacy in ("first", "last", "nick", "email"):
            self.assertIsNotNone(query.find(q(NS_SEARCH, legacy)), legacy)
        x = query.find(q(NS_DATA, "x"))
        self.assertEqual(x.get("type"), "form")
        fields = {f.get("var"): f for f in x.findall(q(NS_DATA, "field"))}
        self.assertEqual(fields["FORM_TYPE"].get("type"), "hidden")
        self.assertEqual(fields["FORM_TYPE"].findtext(q(NS_DATA, "value")), NS_SEARCH)
        for var in ("fn", "nick", "jid", "first", "last", "email"):
            self.assertEqual(fields[var].get("type"), "text-single", var)

    def test_form_search_by_name_and_by_nickname_finds_carol(self):
        for values in ({"fn": "jones"}, {"nick": "cj"}, {"fn": "CAROL J"}):
            items = form_items(self.search(form_submit(**values)))
            self.assertEqual(len(items), 1, values)
            self.assertEqual(items[0]["jid"], "carol@localhost")
            self.assertEqual(items[0]["fn"], "Carol Jones")
            self.assertEqual(items[0]["nick"], "cj")
            self.assertEqual(items[0]["email"], "carol@example.org")
        x = self.search(form_submit(fn="jones")).find(
            "%s/%s" % (q(NS_SEARCH, "query"), q(NS_DATA, "x")))
        reported = [f.get("var") for f in x.find(q(NS_DATA, "reported"))]
        self.assertIn("jid", reported)
        self.assertIn("fn", reported)

    def test_users_without_a_named_vcard_are_not_listed(self):
        for values in ({"jid": "bob"}, {"jid": "frank"}, {"jid": "alice"}):
            self.assertEqual(form_items(self.search(form_submit(**values))), [], values)
        # jid matches the localpart; with '@', the whole JID.
        self.assertEqual([i["jid"] for i in form_items(self.search(form_submit(jid="car")))],
                         ["carol@localhost"])
        self.assertEqual(
            [i["jid"] for i in form_items(self.search(form_submit(jid="carol@localhost")))],
            ["carol@localhost"])
        self.assertEqual(form_items(self.search(form_submit(jid="@elsewhere"))), [])

    def test_legacy_search_gets_legacy_items(self):
        items = legacy_items(self.search(legacy_submit(last="jones")))
        self.assertEqual(items, {"carol@localhost": {"first": "Carol", "last": "Jones",
                                                     "nick": "cj",
                                                     "email": "carol@example.org"}})
        self.assertEqual(legacy_items(self.search(legacy_submit(first="nobody"))), {})

    def test_every_given_field_must_match(self):
        items = form_items(self.search(form_submit(fn="smith", nick="ds")))
        self.assertEqual([i["jid"] for i in items], ["dave@localhost"])

    def test_results_are_capped_by_max_results(self):
        """Three users have "smith" in their name; max_results is 2."""
        items = form_items(self.search(form_submit(fn="smith")))
        self.assertEqual([i["jid"] for i in items], ["dave@localhost", "erin@localhost"])
        self.assertEqual(len(legacy_items(self.search(legacy_submit(nick="g")))), 1)

    def test_empty_search_is_not_acceptable(self):
        for payload in (form_submit(), legacy_submit(), form_submit(fn="  ")):
            answer = self.alice.iq(payload, to=DOMAIN, itype="set")
            self.assertEqual(stanza_error(answer), ("modify", "not-acceptable"), payload)

    def test_foreign_form_type_is_a_bad_request(self):
        payload = ("<query xmlns='%s'><x xmlns='%s' type='submit'><field var='FORM_TYPE'>"
                   "<value>urn:example:other</value></field><field var='fn'><value>jones"
                   "</value></field></x></query>" % (NS_SEARCH, NS_DATA))
        answer = self.alice.iq(payload, to=DOMAIN, itype="set")
        self.assertEqual(stanza_error(answer), ("modify", "bad-request"))

    def test_directory_follows_vcard_changes(self):
        hank = self.slix("hank", resource="h")

        def find():
            return [i["jid"] for i in form_items(self.search(form_submit(nick="hanky")))]

        self.assertEqual(find(), [])
        set_card = "<vCard xmlns='%s'>%%s</vCard>" % NS_VCARD
        hank.iq(set_card % "<NICKNAME>hanky</NICKNAME>", to=None, itype="set")
        self.assertEqual(find(), ["hank@localhost"])
        hank.iq(set_card % "<NICKNAME>hankypanky</NICKNAME><FN>Hank</FN>", to=None, itype="set")
        self.assertEqual(find(), ["hank@localhost"])
        hank.iq(set_card % "<FN>Hank</FN>", to=None, itype="set")  # nickname dropped
        self.assertEqual(find(), [])
        self.assertEqual([i["jid"] for i in form_items(self.search(form_submit(fn="hank")))],
                         ["hank@localhost"])
        hank.iq(set_card % "", to=None, itype="set")  # opts out
        self.assertEqual(form_items(self.search(form_submit(fn="hank"))), [])

    def test_found_user_receives_a_subscription_request(self):
        """The "add friend" flow: search, then subscribe to the JID found."""
        carol = self.slix("carol", resource="phone")
        items = form_items(self.search(form_submit(nick="cj")))
        self.assertEqual(len(items), 1)
        found = items[0]["jid"]
        mark = carol.mark()
        self.alice.send_raw("<presence to='%s' type='subscribe'/>" % found)
        req = carol.wait_stanza(lambda s: s.name == "presence" and s["type"] == "subscribe",
                                since=mark)
        self.assertEqual(req["from"].bare, "alice@localhost")

    def test_component_may_not_search(self):
        """Only users of the server: an entity that is none (here a
        component, as a remote server would be) gets forbidden."""
        comp = self.raw(component=True)
        comp.handshake(COMP, SECRET)
        comp.send("<iq type='set' id='comp-search' from='%s' to='%s'>%s</iq>" %
                  (COMP, DOMAIN, form_submit(fn="jones")))
        answer = comp.wait_for(lambda e: e.tag.endswith("}iq") and e.get("id") == "comp-search")
        self.assertEqual(answer.get("type"), "error")
        self.assertEqual(stanza_error(answer), ("auth", "forbidden"))
        self.assertEqual(answer.findall(".//" + q(NS_DATA, "item")), [])

    def test_deleted_account_leaves_the_directory(self):
        self.assertEqual(len(form_items(self.search(form_submit(nick="ivp")))), 1)
        self.server.ternctl_ok("deluser", "ivan@localhost")
        self.assertEqual(form_items(self.search(form_submit(nick="ivp"))), [])

    def test_unauthenticated_client_gets_no_results(self):
        """Before login only registration is served: the core answers
        service-unavailable for jabber:iq:search, and nothing leaks."""
        c = self.raw()
        c.open_stream()
        c.starttls()
        answer = c.iq(form_submit(fn="jones"), type_="set")
        self.assertEqual(answer.get("type"), "error")
        self.assertEqual(stanza_error(answer), ("cancel", "service-unavailable"))
        self.assertEqual(answer.findall(".//" + q(NS_DATA, "item")), [])


class ListAllUsersTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"},
                         config={"modules": {"vcard": {}, "search": {"list_all_users": True}}})

    def test_every_account_is_listed_by_jid(self):
        publish(self.server, "carol", PEOPLE["carol"])
        alice = self.slix("alice")
        answer = alice.iq(form_submit(jid="b"), to=DOMAIN, itype="set")
        self.assertEqual(form_items(answer),
                         [{"jid": "bob@localhost", "fn": "", "first": "", "last": "",
                           "nick": "", "email": ""}])
        answer = alice.iq(form_submit(fn="jones"), to=DOMAIN, itype="set")
        self.assertEqual([i["jid"] for i in form_items(answer)], ["carol@localhost"])
        # A name search cannot find who has no name.
        answer = alice.iq(legacy_submit(nick="b"), to=DOMAIN, itype="set")
        self.assertEqual(legacy_items(answer), {})


class DirectoryCatchUpTests(ServerTestCase):
    """vCards stored while mod_search was not loaded are listed when it
    loads (here through a configuration reload)."""
    server_kwargs = dict(users={"alice": "alice-pw", "carol": "carol-pw", "dave": "dave-pw"},
                         config={"modules": {"vcard": {}}})

    def test_vcards_from_before_the_module_loaded_are_listed(self):
        publish(self.server, "carol", PEOPLE["carol"])
        publish(self.server, "dave", PEOPLE["dave"])
        alice = self.slix("alice")
        answer = alice.iq(form_submit(fn="jones"), to=DOMAIN, itype="set")
        self.assertEqual(stanza_error(answer), ("cancel", "service-unavailable"))

        conf = deep_merge(self.server.config, {"modules": {"search": {}}})
        self.server.write_config(conf)
        self.server.ternctl_ok("reload")
        deadline = time.monotonic() + T_REPLY
        while True:
            answer = alice.iq(form_submit(fn="s"), to=DOMAIN, itype="set")
            if answer.get("type") == "result" and len(form_items(answer)) == 2:
                break
            self.assertLess(time.monotonic(), deadline, ET.tostring(answer))
            time.sleep(0.1)
        self.assertEqual([i["jid"] for i in form_items(answer)],
                         ["carol@localhost", "dave@localhost"])


class BigDirectoryTests(ServerTestCase):
    """Searches that read a directory of 150 000 entries do it a slice per
    turn of the loop: other users are served meanwhile (eight of them at
    once held everyone up for as long as they all took)."""
    N = 150000
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"},
                         config={"modules": {"vcard": {}, "search": {}}})

    def test_search_of_a_big_directory_does_not_stall_others(self):
        db = sqlite3.connect(os.path.join(self.server.dir, "tern.db"), timeout=30)
        try:
            # Entries whose accounts do not exist match nothing and are
            # skipped, but every one of them is read.
            db.executemany("INSERT INTO map (host, store, user, mkey, value) VALUES"
                           " (?, 'directory', '', ?, ?)",
                           ((DOMAIN, "p%06d" % i, b"Person %d\0\0\0p%d" % (i, i))
                            for i in range(self.N)))
            db.commit()
        finally:
            db.close()
        alice = self.raw_login("alice", "s")
        bob = self.raw_login("bob", "p")
        alice.send("".join("<iq type='set' id='big%d' to='%s'><query xmlns='%s'>"
                           "<nick>nobody</nick></query></iq>" % (i, DOMAIN, NS_SEARCH)
                           for i in range(8)))
        worst, answered = 0.0, None
        deadline = time.monotonic() + 60
        while answered is None and time.monotonic() < deadline:
            t0 = time.monotonic()
            self.assertEqual(bob.ping(), "result")
            worst = max(worst, time.monotonic() - t0)
            alice._recv_some(time.monotonic() + 0.001)
            answered = next((e for e in alice.queue if e.get("id") == "big7"), None)
        self.assertIsNotNone(answered, "no answer to the search")
        self.assertEqual(answered.get("type"), "result")
        self.assertEqual(list(answered.iter(q(NS_SEARCH, "item"))), [])
        self.assertLess(worst, 0.2, "a ping took %.0f ms during the search" % (worst * 1000))


class EmptyDirectoryTests(ServerTestCase):
    """A new server with the directory on and no account yet starts cleanly
    (its first sync has nothing to sort) and takes accounts made later."""
    server_kwargs = {"config": {"modules": {"vcard": {}, "search": {}}}}

    def test_first_account_after_an_empty_start(self):
        self.server.add_user("alice", "alice-pw")
        c = SlixClient(self.server, "alice").connect()
        try:
            answer = c.iq(legacy_submit(nick="nobody"), to="localhost")
            self.assertEqual(answer.get("type"), "result")
        finally:
            c.disconnect()
