"""The five modules as a client sees them: disco#info and disco#items of the
host and of accounts (XEP-0030), ping (XEP-0199) including the keepalive of
idle clients, software version (XEP-0092), entity time (XEP-0202) and uptime
as last activity (XEP-0012), module options from the configuration; unknown
queries to the host get service-unavailable."""
import datetime
import time

from harness import (DOMAIN, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, ServerTestCase,
                     SlixClient, q, stanza_error)

NS_VERSION = "jabber:iq:version"
NS_TIME = "urn:xmpp:time"
NS_LAST = "jabber:iq:last"


class ModuleTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.alice = SlixClient(cls.server, "alice", resource="m").connect()

    @classmethod
    def tearDownClass(cls):
        cls.alice.disconnect()
        super().tearDownClass()

    def result(self, payload, to=DOMAIN):
        answer = self.alice.iq(payload, to=to)
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        self.assertEqual(answer.get("from"), to)
        return answer

    def test_disco_info_of_host_lists_module_features(self):
        answer = self.result("<query xmlns='%s'/>" % NS_DISCO_INFO)
        query = answer.find(q(NS_DISCO_INFO, "query"))
        features = {f.get("var") for f in query.findall(q(NS_DISCO_INFO, "feature"))}
        for ns in (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_VERSION, NS_TIME, NS_LAST):
            self.assertIn(ns, features)
        identities = {(i.get("category"), i.get("type"))
                      for i in query.findall(q(NS_DISCO_INFO, "identity"))}
        self.assertIn(("server", "im"), identities)

    def test_disco_info_with_a_node_is_item_not_found(self):
        answer = self.alice.iq("<query xmlns='%s' node='nope'/>" % NS_DISCO_INFO, to=DOMAIN)
        self.assertEqual(stanza_error(answer), ("cancel", "item-not-found"))

    def test_disco_items_of_host(self):
        answer = self.result("<query xmlns='%s'/>" % NS_DISCO_ITEMS)
        query = answer.find(q(NS_DISCO_ITEMS, "query"))
        self.assertIsNotNone(query)
        self.assertEqual(list(query), [], "items listed though the option is empty")

    def test_disco_info_of_an_account(self):
        answer = self.result("<query xmlns='%s'/>" % NS_DISCO_INFO, to="bob@localhost")
        query = answer.find(q(NS_DISCO_INFO, "query"))
        identities = {(i.get("category"), i.get("type"))
                      for i in query.findall(q(NS_DISCO_INFO, "identity"))}
        self.assertEqual(identities, {("account", "registered")})

    def test_disco_info_of_a_missing_account_is_service_unavailable(self):
        answer = self.alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to="nobody@localhost")
        self.assertEqual(stanza_error(answer), ("cancel", "service-unavailable"))

    def test_version(self):
        answer = self.result("<query xmlns='%s'/>" % NS_VERSION)
        query = answer.find(q(NS_VERSION, "query"))
        self.assertEqual(query.findtext(q(NS_VERSION, "name")), "Tern")
        self.assertRegex(query.findtext(q(NS_VERSION, "version")) or "", r"^\d+\.\d+")
        self.assertTrue(query.findtext(q(NS_VERSION, "os")))  # hide_os defaults to false

    def test_time(self):
        answer = self.result("<time xmlns='%s'/>" % NS_TIME)
        t = answer.find(q(NS_TIME, "time"))
        tzo = t.findtext(q(NS_TIME, "tzo"))
        utc = t.findtext(q(NS_TIME, "utc"))
        self.assertRegex(tzo, r"^([+-]\d\d:\d\d|Z)$")
        self.assertRegex(utc, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        when = datetime.datetime.strptime(utc[:19], "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=datetime.timezone.utc)
        self.assertLess(abs(when.timestamp() - time.time()), 30)

    def test_uptime_as_last_activity(self):
        answer = self.result("<query xmlns='%s'/>" % NS_LAST)
        seconds = answer.find(q(NS_LAST, "query")).get("seconds")
        self.assertRegex(seconds, r"^\d+$")
        elapsed = time.time() - self.server.started_at
        self.assertLessEqual(int(seconds), elapsed + 1)
        self.assertGreaterEqual(int(seconds), elapsed - 3)

    def test_ping_host_no_to_and_own_bare_jid(self):
        """XEP-0199 §4.2: to the host, without 'to', and to one's own bare JID."""
        self.assertEqual(self.alice.ping(DOMAIN), "result")
        self.assertEqual(self.alice.iq("<ping xmlns='%s'/>" % NS_PING, to=None).get("type"),
                         "result")
        self.assertEqual(self.alice.ping("alice@localhost"), "result")

    def test_unknown_query_to_host_is_service_unavailable(self):
        answer = self.alice.iq("<query xmlns='urn:example:unknown'/>", to=DOMAIN)
        self.assertEqual(answer.get("type"), "error")
        self.assertEqual(stanza_error(answer), ("cancel", "service-unavailable"))

    def test_module_queries_to_an_account_are_not_answered_by_the_server(self):
        """version/time/last to a bare JID are for the account's clients, not the
        server's modules (XEP-0092 and XEP-0202 are per entity)."""
        answer = self.alice.iq("<query xmlns='%s'/>" % NS_VERSION, to="bob@localhost")
        self.assertEqual(answer.get("type"), "error")
        self.assertEqual(stanza_error(answer)[1], "service-unavailable")


class ModuleOptionTests(ServerTestCase):
    """Module options from the configuration: version.hide_os leaves <os/>
    out (XEP-0092 §5); disco.items lists JIDs in the host's disco#items."""

    server_kwargs = dict(users={"alice": "alice-pw"},
                         config={"modules": {"version": {"hide_os": True},
                                             "disco": {"items": ["bots.localhost",
                                                                 "muc.localhost"]}}})

    def test_version_without_os(self):
        alice = self.slix("alice")
        answer = alice.iq("<query xmlns='%s'/>" % NS_VERSION)
        query = answer.find(q(NS_VERSION, "query"))
        self.assertEqual(query.findtext(q(NS_VERSION, "name")), "Tern")
        self.assertIsNone(query.find(q(NS_VERSION, "os")))

    def test_disco_items_lists_the_configured_jids(self):
        alice = self.slix("alice")
        answer = alice.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS)
        items = answer.find(q(NS_DISCO_ITEMS, "query")).findall(q(NS_DISCO_ITEMS, "item"))
        self.assertEqual([i.get("jid") for i in items], ["bots.localhost", "muc.localhost"])


class KeepaliveTests(ServerTestCase):
    """XEP-0199 §4.1 keepalive: an idle client is pinged by the server; one
    that answers stays, one that does not is closed with connection-timeout."""

    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"},
                         config={"limits": {"c2s_idle_timeout": "10s"},
                                 "modules": {"ping": {"ping_timeout": "1s"}}})

    def test_idle_clients_are_pinged_and_the_silent_one_is_closed(self):
        silent = self.raw(direct_tls=True)
        silent.login("alice", "alice-pw", "silent")
        answering = self.slix("bob", resource="answers")  # slixmpp answers pings
        mark = answering.mark()
        ping = silent.wait_for(lambda e: e.tag.endswith("}iq"), timeout=12)
        self.assertEqual(ping.get("type"), "get")
        self.assertEqual(ping.get("from"), DOMAIN)
        self.assertIsNotNone(ping.find(q(NS_PING, "ping")))
        t0 = time.monotonic()
        self.assertEqual(silent.stream_error(timeout=6), "connection-timeout")
        self.assertGreaterEqual(time.monotonic() - t0, 0.5)
        got = answering.wait_stanza(lambda s: s.name == "iq" and s["type"] == "get",
                                    since=mark, timeout=8)
        self.assertEqual(str(got["from"]), DOMAIN)
        time.sleep(1.5)  # longer than ping_timeout
        self.assertFalse(answering.disconnected, "a client that answered was closed")
        self.assertEqual(answering.ping(), "result")
