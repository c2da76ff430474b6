"""Configuration reload (SIGHUP / ternctl reload) keeps what users have.

Sessions opened before a reload keep their module state: their presence
(a contact who logs in after the reload sees them online), roster pushes,
their block list, carbons.  A module added by the reload answers, a removed
one stops answering, a changed option takes effect at once, a host added by
the reload serves logins and a removed one closes its sessions with
<host-gone/> (RFC 6120 §4.9.3.6).  A configuration whose module refuses to
load is refused as a whole and changes nothing.  Under a steady exchange of
messages, repeated reloads lose no message and no session."""
import copy
import signal
import threading
import time

from harness import (DOMAIN, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_STANZAS, T_REPLY,
                     T_SHORT, ServerTestCase, SlixClient, q, stanza_error)
from test_roster import RosterCase

NS_ROSTER = "jabber:iq:roster"
NS_BLOCKING = "urn:xmpp:blocking"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_VERSION = "jabber:iq:version"
NS_TIME = "urn:xmpp:time"
OTHER = "other.localhost"

USERS = {u: u + "-pw" for u in ("alice", "bob", "carol", "dave")}
MODULES = {"roster": {}, "blocking": {"max_items": 10}, "carbons": {}}


def error_condition(xml):
    """The defined condition of an error answer, or None."""
    err = xml.find("{jabber:client}error")
    if err is None:
        return None
    for child in err:
        if child.tag.startswith("{%s}" % NS_STANZAS) and not child.tag.endswith("}text"):
            return child.tag.split("}", 1)[1]
    return None


class ReloadTests(RosterCase):
    server_kwargs = dict(users=USERS, config={"modules": MODULES})

    subscribed = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.base_config = copy.deepcopy(cls.server.config)

    def setUp(self):
        super().setUp()
        if not type(self).subscribed:
            # alice and bob are subscribed to each other (RFC 6121 §3).
            a = self.client("alice", "setup")
            b = self.client("bob", "setup")
            self.subscribe_both(a, b)
            a.disconnect()
            b.disconnect()
            type(self).subscribed = True

    def tearDown(self):
        # Every test starts from the class's configuration.
        if self.server.config != self.base_config and self.server.running():
            self.server.write_config(copy.deepcopy(self.base_config))
            self.server.ternctl("reload")
        super().tearDown()

    # ---- helpers ---------------------------------------------------------

    def reload(self, config=None, ok=True):
        """Write `config` (or the current one) and run ternctl reload; returns
        the CompletedProcess after checking it succeeded (or failed)."""
        if config is not None:
            self.server.write_config(config)
        r = self.server.ternctl("reload")
        if ok:
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        else:
            self.assertNotEqual(r.returncode, 0, "the reload was accepted")
        return r

    def config_with(self, change):
        conf = copy.deepcopy(self.base_config)
        change(conf)
        return conf

    def carbons(self, client):
        answer = client.iq("<enable xmlns='%s'/>" % NS_CARBONS, to=None, itype="set")
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))

    def blocking(self, client, what, *jids):
        inner = "".join("<item jid='%s'/>" % j for j in jids)
        return client.iq("<%s xmlns='%s'>%s</%s>" % (what, NS_BLOCKING, inner, what), to=None,
                         itype="set")

    def blocklist(self, client):
        answer = client.iq("<blocklist xmlns='%s'/>" % NS_BLOCKING, to=None)
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        return [i.get("jid") for i in answer.iter(q(NS_BLOCKING, "item"))]

    def assert_carbon_copy(self, sender, original, copy_to, body):
        """sender's message to original's full JID reaches it, and copy_to
        (same account, carbons on) gets a <received/> carbon (XEP-0280 §6)."""
        m1, m2 = original.mark(), copy_to.mark()
        sender.send_message(original.jid, body)
        original.wait_message(body=body, since=m1)

        def is_carbon(s):
            fwd = s.xml.find("%s/%s/{jabber:client}message" % (q(NS_CARBONS, "received"),
                                                              q(NS_FORWARD, "forwarded")))
            return s.name == "message" and fwd is not None and fwd.findtext(
                "{jabber:client}body") == body
        copy_to.wait_stanza(is_carbon, since=m2)

    # ---- sessions opened before the reload keep their state ---------------

    def test_presence_of_earlier_session_seen_by_later_contact(self):
        alice = self.slix("alice", resource="before")
        self.reload()
        bob = self.slix("bob", resource="after", connect=False)
        bob.connect(presence=False)
        mark = bob.mark()
        bob.send_presence()
        # RFC 6121 §4.3.2: the server answers bob's probe with alice's presence.
        bob.wait_stanza(lambda s: s.name == "presence" and str(s["from"]) == alice.jid and
                        s["type"] in ("available", ""), since=mark)

    def test_roster_push_reaches_earlier_session(self):
        alice = self.slix("alice", resource="before")
        answer = alice.iq("<query xmlns='%s'/>" % NS_ROSTER, to=None)
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        self.reload()
        mark = alice.mark()
        answer = alice.iq("<query xmlns='%s'><item jid='dave@%s' name='Dave'/></query>"
                          % (NS_ROSTER, DOMAIN), to=None, itype="set")
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        # RFC 6121 §2.1.6: the push goes to every interested resource.
        alice.wait_stanza(lambda s: s.name == "iq" and s["type"] == "set" and s.xml.find(
            "%s/%s" % (q(NS_ROSTER, "query"), q(NS_ROSTER, "item"))) is not None, since=mark)
        answer = alice.iq("<query xmlns='%s'><item jid='dave@%s' subscription='remove'/>"
                          "</query>" % (NS_ROSTER, DOMAIN), to=None, itype="set")
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))

    def test_blocking_after_reload_is_listed_and_removable(self):
        alice = self.slix("alice", resource="before")
        other = self.slix("alice", resource="other")
        self.blocking(alice, "unblock")  # an empty list, whatever a failed test left
        self.assertEqual(self.blocklist(alice), [])
        self.assertEqual(self.blocklist(other), [])  # XEP-0191 §3.3: now gets pushes
        self.reload()
        carol = "carol@" + DOMAIN
        for what in ("block", "unblock"):
            mark = other.mark()
            answer = self.blocking(alice, what, carol)
            self.assertEqual(answer.get("type"), "result", stanza_error(answer))
            push = other.wait_stanza(lambda s: s.name == "iq" and s["type"] == "set" and
                                     s.xml.find(q(NS_BLOCKING, what)) is not None, since=mark)
            self.assertEqual([i.get("jid") for i in push.xml.iter(q(NS_BLOCKING, "item"))],
                             [carol])
            self.assertEqual(self.blocklist(alice), [carol] if what == "block" else [])

    def test_carbons_enabled_before_reload_still_copy(self):
        laptop = self.slix("alice", resource="laptop")
        phone = self.slix("alice", resource="phone")
        bob = self.slix("bob", resource="desk")
        self.carbons(laptop)
        self.carbons(phone)
        self.reload()
        self.assert_carbon_copy(bob, laptop, phone, "after one reload")
        self.server.signal(signal.SIGHUP)
        bob.sync()
        laptop.sync()
        self.assert_carbon_copy(bob, laptop, phone, "after SIGHUP")

    # ---- modules and options changed by the reload ------------------------

    def test_module_added_and_removed(self):
        laptop = self.slix("alice", resource="laptop")
        phone = self.slix("alice", resource="phone")
        bob = self.slix("bob", resource="desk")
        self.carbons(laptop)
        self.carbons(phone)
        without_time = self.config_with(lambda c: c["modules"].pop("time"))
        self.reload(without_time)
        answer = laptop.iq("<time xmlns='%s'/>" % NS_TIME)
        self.assertEqual(answer.get("type"), "error")
        self.assertIn(error_condition(answer), ("service-unavailable", "feature-not-implemented"))
        self.assert_carbon_copy(bob, laptop, phone, "time removed")
        self.reload(copy.deepcopy(self.base_config))
        answer = laptop.iq("<time xmlns='%s'/>" % NS_TIME)
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        self.assertIsNotNone(answer.find(q(NS_TIME, "time")))
        # Only the added and removed modules changed: the others kept their state.
        self.assert_carbon_copy(bob, laptop, phone, "time added")

    def test_changed_option_takes_effect_and_keeps_sessions(self):
        alice = self.slix("alice", resource="one")
        alice2 = self.slix("alice", resource="two")
        self.blocking(alice, "unblock")
        self.assertEqual(self.blocklist(alice2), [])  # alice2 now gets block pushes
        answer = alice.iq("<query xmlns='%s'/>" % NS_VERSION)
        self.assertIsNotNone(answer.find("%s/%s" % (q(NS_VERSION, "query"), q(NS_VERSION, "os"))))

        def change(c):
            c["modules"]["version"] = {"hide_os": True}
            c["modules"]["blocking"] = {"max_items": 1}
            c["modules"]["disco"] = {"items": ["pubsub." + DOMAIN],
                                     "contact_admin": ["mailto:admin@example.org"]}
        self.reload(self.config_with(change))
        # mod_disco: the new items (XEP-0030 §4.1) and contact form (XEP-0157).
        answer = alice.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS)
        self.assertEqual([i.get("jid") for i in answer.iter(q(NS_DISCO_ITEMS, "item"))],
                         ["pubsub." + DOMAIN])
        answer = alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO)
        values = [v.text for v in answer.iter("{jabber:x:data}value")]
        self.assertIn("mailto:admin@example.org", values)
        answer = alice.iq("<query xmlns='%s'/>" % NS_VERSION)
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        self.assertIsNone(answer.find("%s/%s" % (q(NS_VERSION, "query"), q(NS_VERSION, "os"))))
        # max_items 1: two items are refused, one is taken and pushed.
        answer = self.blocking(alice, "block", "carol@" + DOMAIN, "dave@" + DOMAIN)
        self.assertEqual(answer.get("type"), "error")
        mark = alice2.mark()
        answer = self.blocking(alice, "block", "carol@" + DOMAIN)
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        alice2.wait_stanza(lambda s: s.name == "iq" and s["type"] == "set" and
                           s.xml.find(q(NS_BLOCKING, "block")) is not None, since=mark)
        self.blocking(alice, "unblock")

    def test_refused_reload_changes_nothing(self):
        laptop = self.slix("alice", resource="laptop")
        phone = self.slix("alice", resource="phone")
        bob = self.slix("bob", resource="desk")
        self.carbons(laptop)
        self.carbons(phone)

        def change(c):  # mod_mam refuses to load: expiry without an interval
            c["modules"]["mam"] = {"expire_after": "1d", "expire_interval": 0}
            c["modules"].pop("version")
        r = self.reload(self.config_with(change), ok=False)
        self.assertIn("mam", r.stdout + r.stderr)
        self.assert_carbon_copy(bob, laptop, phone, "after a refused reload")
        answer = laptop.iq("<query xmlns='%s'/>" % NS_VERSION)
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))

        def refused_options(c):  # mod_ping refuses its new options; version's go back
            c["modules"]["version"] = {"hide_os": True}
            c["modules"]["ping"] = {"ping_timeout": 0}
            c["modules"].pop("time")
        r = self.reload(self.config_with(refused_options), ok=False)
        self.assertIn("ping", r.stdout + r.stderr)
        answer = laptop.iq("<query xmlns='%s'/>" % NS_VERSION)
        self.assertIsNotNone(answer.find("%s/%s" % (q(NS_VERSION, "query"), q(NS_VERSION, "os"))))
        answer = laptop.iq("<time xmlns='%s'/>" % NS_TIME)
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        self.assertEqual(laptop.ping(), "result")
        self.assert_carbon_copy(bob, laptop, phone, "after refused options")

    # ---- hosts added and removed ------------------------------------------

    def test_host_added_then_removed(self):
        def add(c):
            c["hosts"][OTHER] = {}
        conf = self.config_with(add)
        self.reload(conf)
        self.server.ternctl_ok("adduser", "erin@" + OTHER, "--password-stdin",
                               input="erin-pw\n")
        erin = SlixClient(self.server, "erin", password="erin-pw", resource="x")
        self._clients.append(erin)
        run_domain(erin, OTHER)
        erin.connect()
        self.assertEqual(erin.ping(OTHER), "result")
        alice = self.slix("alice", resource="host")
        self.reload(copy.deepcopy(self.base_config))
        erin.wait_disconnected()
        self.assertIn("host-gone", erin.stream_errors)
        self.assertEqual(alice.ping(DOMAIN), "result")

    # ---- reload under load ------------------------------------------------

    def test_reload_under_load(self):
        alice = self.slix("alice", resource="load")
        alice2 = self.slix("alice", resource="copy")
        bob = self.slix("bob", resource="load")
        self.carbons(alice2)
        n = 150
        stop = threading.Event()

        def send_all():
            for i in range(n):
                bob.send_message(alice.jid, "b%d" % i)
                alice.send_message(bob.jid, "a%d" % i)
                time.sleep(0.01)
            stop.set()
        sender = threading.Thread(target=send_all)
        sender.start()
        reloads = 0
        try:
            while not stop.is_set() or reloads < 3:
                self.reload()
                reloads += 1
                time.sleep(0.15)
        finally:
            sender.join()
        bob.sync()
        alice.sync()
        deadline = time.monotonic() + T_REPLY

        def bodies(client, prefix, kinds=None):
            got = set()
            for s in client.received:
                if s.name != "message":
                    continue
                fwd = s.xml.find("%s/%s/{jabber:client}message" % (
                    q(NS_CARBONS, "received"), q(NS_FORWARD, "forwarded")))
                text = fwd.findtext("{jabber:client}body") if fwd is not None else s["body"]
                if (fwd is not None) == (kinds == "carbon") and text.startswith(prefix):
                    got.add(text)
            return got
        want_a = {"b%d" % i for i in range(n)}
        want_b = {"a%d" % i for i in range(n)}
        while time.monotonic() < deadline and (
                bodies(alice, "b") != want_a or bodies(bob, "a") != want_b or
                bodies(alice2, "b", "carbon") != want_a):
            time.sleep(0.1)
        self.assertGreaterEqual(reloads, 3)
        self.assertEqual(sorted(want_a - bodies(alice, "b")), [])
        self.assertEqual(sorted(want_b - bodies(bob, "a")), [])
        self.assertEqual(sorted(want_a - bodies(alice2, "b", "carbon")), [])
        for c in (alice, alice2, bob):
            self.assertFalse(c.disconnected)
        time.sleep(T_SHORT / 4)


def run_domain(client, domain):
    """Make a SlixClient log in to `domain` instead of the test domain."""
    import harness
    orig = client._a_create

    async def create():
        saved = harness.DOMAIN
        harness.DOMAIN = domain
        try:
            await orig()
        finally:
            harness.DOMAIN = saved
        client.xmpp.default_domain = domain
    client._a_create = create


class ReloadKeepaliveTests(ServerTestCase):
    """mod_ping's keepalive (XEP-0199 §4.1) turned on by a reload reaches a
    session opened while it was off: the module hooks idle sessions from its
    reconfigure callback."""

    server_kwargs = dict(users={"alice": "alice-pw"},
                         config={"limits": {"c2s_idle_timeout": "10s"},
                                 "modules": {"ping": {"keepalive": False}}})

    def test_keepalive_turned_on_by_reload(self):
        silent = self.raw(direct_tls=True)
        silent.login("alice", "alice-pw", "silent")
        conf = copy.deepcopy(self.server.config)
        conf["modules"]["ping"] = {"keepalive": True, "ping_timeout": "1s"}
        self.server.write_config(conf)
        r = self.server.ternctl("reload")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # Idle for half of c2s_idle_timeout: pinged, then closed unanswered.
        ping = silent.wait_for(lambda e: e.tag.endswith("}iq"), timeout=12)
        self.assertEqual(ping.get("type"), "get")
        self.assertIsNotNone(ping.find(q(NS_PING, "ping")))
        self.assertEqual(silent.stream_error(timeout=6), "connection-timeout")
