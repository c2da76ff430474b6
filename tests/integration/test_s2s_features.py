"""What users have, with contacts on another server: alice@a.test and
bob@b.test (two Tern servers federated with SASL EXTERNAL, set up by
federation.py), slixmpp clients on both sides.

Subscriptions both ways and presence probes (RFC 6121 §4.3: a user logging
in gets the presence of remote contacts; a server answers probes for an
offline user with the last unavailable presence, §4.3.2), unavailable
presence at log-out, offline messages from remote senders, MAM on both
sides (XEP-0313, queried with a remote `with`), carbons of federated chats
(XEP-0280), blocking a remote JID (XEP-0191), vcard-temp, PEP nickname and
avatar (XEP-0163/0172/0084, notifications across to a subscribed contact),
disco#info, ping, version and time of the remote server and of a remote
full JID, a component of a.test reached from b.test (XEP-0114) and the
error of an iq to a remote user who does not exist.
"""
import time
import unittest
import xml.etree.ElementTree as ET

from federation import ENV, IPS, PORTS, FedCase, set_up, tear_down
from harness import (NS_DISCO_INFO, NS_PING, T_REPLY, T_SHORT, SlixClient,
                     SlixComponent, q, run_async, stanza_error)

NS_ROSTER = "jabber:iq:roster"
NS_MAM = "urn:xmpp:mam:2"
NS_XDATA = "jabber:x:data"
NS_FORWARD = "urn:xmpp:forward:0"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_BLOCKING = "urn:xmpp:blocking"
NS_VCARD = "vcard-temp"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_NICK = "http://jabber.org/protocol/nick"
NS_AVATAR_META = "urn:xmpp:avatar:metadata"
NS_VERSION = "jabber:iq:version"
NS_TIME = "urn:xmpp:time"
NS_DELAY = "urn:xmpp:delay"

COMP = "comp.a.test"
COMP_SECRET = "comp-secret"
MODULES = {"modules": {"roster": {}, "offline": {}, "mam": {}, "carbons": {}, "blocking": {},
                       "vcard": {}, "pep": {}, "disco": {}, "ping": {}, "version": {},
                       "time": {}}}


def comp_records():
    """comp.a.test is served by a.test's s2s listener."""
    return [("A", COMP, IPS["a.test"]),
            ("SRV", "_xmpp-server._tcp." + COMP, "a.test", PORTS["a.test"])]


def setUpModule():
    set_up(prefix="tern-s2s-features-", extra_records=comp_records)


def tearDownModule():
    tear_down()


def is_presence(frm, ptype="available", exact=True):
    def pred(s):
        f = str(s["from"])
        return (s.name == "presence" and s["type"] == ptype and
                (f == frm if exact else f.split("/")[0] == frm))
    return pred


def mam_query(with_jid):
    return ("<query xmlns='%s'><x xmlns='%s' type='submit'>"
            "<field var='FORM_TYPE' type='hidden'><value>%s</value></field>"
            "<field var='with'><value>%s</value></field></x></query>" %
            (NS_MAM, NS_XDATA, NS_MAM, with_jid))


def mam_bodies(client, with_jid):
    """Bodies of the archived messages the client gets for `with_jid`."""
    mark = client.mark()
    answer = client.iq(mam_query(with_jid), to=None, itype="set")
    assert answer.get("type") == "result", ET.tostring(answer, encoding="unicode")
    bodies = []
    for s in client.received_since(mark, kinds=("message",)):
        result = s.xml.find(q(NS_MAM, "result"))
        if result is None:
            continue
        body = result.find(".//{jabber:client}body")
        if body is None:
            body = result.find(".//{jabber:server}body")
        if body is not None:
            bodies.append(body.text)
    return bodies


def add_plugins(client, *plugins):
    async def go():
        for p in plugins:
            client.xmpp.register_plugin(p)
    run_async(go())


def answer_time(client):
    """The client answers XEP-0202 time queries (UTC) by hand."""
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatchXPath

    def on_time(iq):
        reply = iq.reply(clear=True)
        t = ET.SubElement(reply.xml, q(NS_TIME, "time"))
        ET.SubElement(t, q(NS_TIME, "tzo")).text = "Z"
        ET.SubElement(t, q(NS_TIME, "utc")).text = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                  time.gmtime())
        reply.send()

    async def go():
        client.xmpp.register_handler(Callback(
            "time", MatchXPath("{jabber:client}iq/%s" % q(NS_TIME, "time")), on_time))
    run_async(go())


class FeaturesTests(FedCase):
    a_extra = dict(MODULES, components={COMP: {"secret": COMP_SECRET}})
    b_extra = MODULES
    b_users = {"bob": "bob-pw", "dave": "dave-pw", "eve": "eve-pw"}

    # ---- helpers -------------------------------------------------------

    def login(self, server, user, resource):
        c = SlixClient(server, user, resource=resource)
        self.addCleanup(c.disconnect)
        return c

    def roster_item(self, client, jid):
        answer = client.iq("<query xmlns='%s'/>" % NS_ROSTER, to=None)
        for item in answer.iter(q(NS_ROSTER, "item")):
            if item.get("jid") == jid:
                return item
        return None

    def assertNoStanza(self, client, pred, mark, within=T_SHORT):
        time.sleep(within)
        got = [s for s in client.received[mark:] if pred(s)]
        self.assertEqual(got, [], "unexpected: %s" % [str(s) for s in got])

    # ---- subscriptions and presence ------------------------------------

    def test_01_subscriptions_both_ways(self):
        a, b = self.alice.mark(), self.bob.mark()
        self.alice.send_raw("<presence to='bob@b.test' type='subscribe'/>")
        self.bob.wait_stanza(is_presence("alice@a.test", "subscribe"), since=b)
        self.bob.send_raw("<presence to='alice@a.test' type='subscribed'/>")
        self.alice.wait_stanza(is_presence("bob@b.test", "subscribed"), since=a)
        # The contact's available presence follows the approval.
        self.alice.wait_stanza(is_presence("bob@b.test/r"), since=a)
        self.bob.send_raw("<presence to='alice@a.test' type='subscribe'/>")
        self.alice.wait_stanza(is_presence("bob@b.test", "subscribe"), since=a)
        self.alice.send_raw("<presence to='bob@b.test' type='subscribed'/>")
        self.bob.wait_stanza(is_presence("alice@a.test", "subscribed"), since=b)
        self.bob.wait_stanza(is_presence("alice@a.test/r"), since=b)
        self.assertEqual(self.roster_item(self.alice, "bob@b.test").get("subscription"), "both")
        self.assertEqual(self.roster_item(self.bob, "alice@a.test").get("subscription"), "both")

    def test_02_probe_at_login_gets_remote_presence(self):
        self.bob.send_raw("<presence><status>at b</status></presence>")
        self.bob.sync()
        alice2 = self.login(self.a, "alice", "r2")
        alice2.connect()
        p = alice2.wait_stanza(is_presence("bob@b.test/r"))
        self.assertEqual(p["status"], "at b")

    def test_03_logout_sends_unavailable_to_remote_contacts(self):
        a = self.alice.mark()
        bob2 = self.login(self.b, "bob", "r2").connect()
        self.alice.wait_stanza(is_presence("bob@b.test/r2"), since=a)
        bob2.disconnect()
        self.alice.wait_stanza(is_presence("bob@b.test/r2", "unavailable"), since=a)
        # A client that vanishes without closing its stream: b.test says it.
        bob3 = self.login(self.b, "bob", "r3").connect()
        self.alice.wait_stanza(is_presence("bob@b.test/r3"), since=a)

        async def abort():
            bob3.xmpp.abort()
        run_async(abort())
        self.alice.wait_stanza(is_presence("bob@b.test/r3", "unavailable"), since=a)

    def test_04_probe_of_offline_user_gets_last_unavailable(self):
        """RFC 6121 §4.3.2: bob is offline; alice logging in gets his last
        unavailable presence (with its status) from b.test."""
        a = self.alice.mark()
        self.bob.send_raw("<presence type='unavailable'><status>gone fishing</status></presence>")
        self.alice.wait_stanza(is_presence("bob@b.test/r", "unavailable"), since=a)
        self.bob.disconnect()
        try:
            alice3 = self.login(self.a, "alice", "r3")
            alice3.connect()
            p = alice3.wait_stanza(is_presence("bob@b.test", "unavailable", exact=False))
            self.assertEqual(p["status"], "gone fishing")
        finally:
            type(self).bob = SlixClient(self.b, "bob", resource="r").connect()

    # ---- messages --------------------------------------------------------

    def test_05_offline_message_from_remote_sender(self):
        self.alice.send_message("dave@b.test", "while you were away")
        self.alice.sync()
        time.sleep(0.5)
        dave = self.login(self.b, "dave", "d")
        dave.connect()
        msg = dave.wait_message("while you were away")
        self.assertEqual(str(msg["from"]), "alice@a.test/r")
        self.assertIsNotNone(msg.xml.find(q(NS_DELAY, "delay")))

    def test_06_mam_archives_federated_chats_on_both_sides(self):
        self.send_and_receive(self.alice, self.bob, "bob@b.test", "archived a to b")
        self.send_and_receive(self.bob, self.alice, "alice@a.test", "archived b to a")
        for client, other in ((self.alice, "bob@b.test"), (self.bob, "alice@a.test")):
            bodies = mam_bodies(client, other)
            self.assertIn("archived a to b", bodies, client.jid)
            self.assertIn("archived b to a", bodies, client.jid)

    def test_07_carbons_of_federated_chats(self):
        alice2 = self.login(self.a, "alice", "c2")
        alice2.connect()
        for c in (self.alice, alice2):
            answer = c.iq("<enable xmlns='%s'/>" % NS_CARBONS, to=None, itype="set")
            self.assertEqual(answer.get("type"), "result")
        # Received: bob writes to alice's first client; the second gets a copy.
        m = alice2.mark()
        self.bob.send_message("alice@a.test/r", "carbon in")
        self.alice.wait_message("carbon in")
        copy = alice2.wait_stanza(lambda s: s.name == "message" and
                                  s.xml.find(q(NS_CARBONS, "received")) is not None, since=m)
        fwd = copy.xml.find(q(NS_CARBONS, "received")).find(q(NS_FORWARD, "forwarded"))
        inner = list(fwd)[-1]
        self.assertEqual(inner.get("from"), "bob@b.test/r")
        self.assertEqual(inner.find("{jabber:client}body").text, "carbon in")
        # Sent: alice's first client writes to bob; the second gets a copy.
        m = alice2.mark()
        self.send_and_receive(self.alice, self.bob, "bob@b.test/r", "carbon out")
        copy = alice2.wait_stanza(lambda s: s.name == "message" and
                                  s.xml.find(q(NS_CARBONS, "sent")) is not None, since=m)
        inner = list(copy.xml.find(q(NS_CARBONS, "sent")).find(q(NS_FORWARD, "forwarded")))[-1]
        self.assertEqual(inner.get("to"), "bob@b.test/r")

    def test_08_blocking_a_remote_jid(self):
        eve = self.login(self.b, "eve", "e")
        eve.connect()
        answer = self.alice.iq("<block xmlns='%s'><item jid='eve@b.test'/></block>" %
                               NS_BLOCKING, to=None, itype="set")
        self.assertEqual(answer.get("type"), "result")
        try:
            a, e = self.alice.mark(), eve.mark()
            eve.send_message("alice@a.test", "you blocked me")
            err = eve.wait_stanza(lambda s: s.name == "message" and s["type"] == "error",
                                  since=e)
            self.assertEqual(stanza_error(err.xml), ("cancel", "service-unavailable"))
            eve.send_raw("<presence to='alice@a.test' type='subscribe'/>")
            answer = eve.iq("<query xmlns='%s'/>" % NS_VERSION, to="alice@a.test/r")
            self.assertEqual(stanza_error(answer), ("cancel", "service-unavailable"))
            self.assertNoStanza(self.alice, lambda s: str(s["from"]).startswith("eve@"), a)
            # And alice cannot write to whom she blocked (XEP-0191 §3.4).
            a = self.alice.mark()
            self.alice.send_message("eve@b.test", "to the blocked")
            err = self.alice.wait_stanza(lambda s: s.name == "message" and
                                         s["type"] == "error", since=a)
            self.assertEqual(stanza_error(err.xml), ("cancel", "not-acceptable"))
            self.assertNoStanza(eve, lambda s: s.name == "message" and
                                s["body"] == "to the blocked", e)
        finally:
            self.alice.iq("<unblock xmlns='%s'/>" % NS_BLOCKING, to=None, itype="set")
        self.send_and_receive(eve, self.alice, "alice@a.test", "unblocked now")

    # ---- profile data ----------------------------------------------------

    def test_09_vcard_of_a_remote_user(self):
        answer = self.bob.iq("<vCard xmlns='%s'><FN>Bob of B</FN></vCard>" % NS_VCARD,
                             to=None, itype="set")
        self.assertEqual(answer.get("type"), "result")
        answer = self.alice.iq("<vCard xmlns='%s'/>" % NS_VCARD, to="bob@b.test")
        self.assertEqual(answer.get("type"), "result", ET.tostring(answer, encoding="unicode"))
        self.assertEqual(answer.find(".//" + q(NS_VCARD, "FN")).text, "Bob of B")

    def pep_client(self, resource, notify):
        """alice on a client that asks for notifications of the `notify`
        nodes (NODE+notify in its XEP-0115 caps) and is online."""
        c = self.login(self.a, "alice", resource)
        c.connect(presence=False)

        async def interest():
            x = c.xmpp
            x.register_plugin("xep_0115")
            for node in notify:
                x["xep_0030"].add_feature(node + "+notify")
            await x["xep_0115"].update_caps()
        run_async(interest())
        c.send_presence()
        return c

    @staticmethod
    def is_event(node):
        return lambda s: (s.name == "message" and str(s["from"]) == "bob@b.test" and
                          s.xml.find("%s/%s[@node='%s']" % (q(NS_EVENT, "event"),
                                                            q(NS_EVENT, "items"), node))
                          is not None)

    def test_10_pep_nickname_and_avatar_across(self):
        # alice's client asks for nickname and avatar notifications (caps +notify).
        alice2 = self.pep_client("pep", (NS_NICK, NS_AVATAR_META))
        time.sleep(1.0)  # b.test asks alice's client for its caps across
        m = alice2.mark()
        publish = ("<pubsub xmlns='%s'><publish node='%s'><item id='current'>"
                   "<nick xmlns='%s'>Bobby</nick></item></publish></pubsub>" %
                   (NS_PUBSUB, NS_NICK, NS_NICK))
        self.assertEqual(self.bob.iq(publish, to=None, itype="set").get("type"), "result")
        meta = ("<pubsub xmlns='%s'><publish node='%s'><item id='abc123'>"
                "<metadata xmlns='%s'><info id='abc123' bytes='10' type='image/png'/>"
                "</metadata></item></publish></pubsub>" %
                (NS_PUBSUB, NS_AVATAR_META, NS_AVATAR_META))
        self.assertEqual(self.bob.iq(meta, to=None, itype="set").get("type"), "result")
        for node in (NS_NICK, NS_AVATAR_META):
            alice2.wait_stanza(self.is_event(node), since=m)
        # A client of alice's that arrives later gets the last items of the
        # nodes it asks for, and only those (XEP-0163 §4.3.4).
        alice3 = self.pep_client("pep3", (NS_NICK,))
        ev = alice3.wait_stanza(self.is_event(NS_NICK))
        self.assertEqual(ev.xml.find(".//" + q(NS_NICK, "nick")).text, "Bobby")
        self.assertIsNotNone(ev.xml.find(q(NS_DELAY, "delay")))
        self.assertNoStanza(alice3, self.is_event(NS_AVATAR_META), 0)
        # And fetched with an iq to bob's bare JID.
        answer = self.alice.iq("<pubsub xmlns='%s'><items node='%s'/></pubsub>" %
                               (NS_PUBSUB, NS_NICK), to="bob@b.test")
        self.assertEqual(answer.get("type"), "result", ET.tostring(answer, encoding="unicode"))
        self.assertEqual(answer.find(".//" + q(NS_NICK, "nick")).text, "Bobby")
        answer = self.alice.iq("<pubsub xmlns='%s'><items node='%s'/></pubsub>" %
                               (NS_PUBSUB, NS_AVATAR_META), to="bob@b.test")
        self.assertEqual(answer.get("type"), "result", ET.tostring(answer, encoding="unicode"))
        self.assertEqual(answer.find(".//" + q(NS_AVATAR_META, "info")).get("id"), "abc123")

    # ---- services of the remote server and of a remote client -----------

    def test_11_remote_server_services(self):
        answer = self.alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to="b.test")
        self.assertEqual(answer.get("type"), "result", ET.tostring(answer, encoding="unicode"))
        features = {f.get("var") for f in answer.iter(q(NS_DISCO_INFO, "feature"))}
        self.assertIn(NS_PING, features)
        self.assertEqual(self.alice.ping("b.test"), "result")
        answer = self.alice.iq("<query xmlns='%s'/>" % NS_VERSION, to="b.test")
        self.assertEqual(answer.get("type"), "result")
        self.assertIsNotNone(answer.find(".//" + q(NS_VERSION, "name")))
        answer = self.alice.iq("<time xmlns='%s'/>" % NS_TIME, to="b.test")
        self.assertEqual(answer.get("type"), "result")
        self.assertIsNotNone(answer.find(".//" + q(NS_TIME, "utc")))

    def test_12_remote_client_services(self):
        add_plugins(self.bob, "xep_0092")
        answer_time(self.bob)
        answer = self.alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to="bob@b.test/r")
        self.assertEqual(answer.get("type"), "result", ET.tostring(answer, encoding="unicode"))
        self.assertEqual(answer.get("from"), "bob@b.test/r")
        self.assertEqual(self.alice.ping("bob@b.test/r"), "result")
        answer = self.alice.iq("<query xmlns='%s'/>" % NS_VERSION, to="bob@b.test/r")
        self.assertEqual(answer.get("type"), "result", ET.tostring(answer, encoding="unicode"))
        self.assertIsNotNone(answer.find(".//" + q(NS_VERSION, "name")))
        answer = self.alice.iq("<time xmlns='%s'/>" % NS_TIME, to="bob@b.test/r")
        self.assertEqual(answer.get("type"), "result", ET.tostring(answer, encoding="unicode"))
        self.assertIsNotNone(answer.find(".//" + q(NS_TIME, "utc")))

    # ---- a component of a.test, from b.test -------------------------------

    def test_13_component_reached_from_remote_user(self):
        comp = SlixComponent(self.a, COMP, COMP_SECRET).connect()
        self.addCleanup(comp.disconnect)
        m = comp.mark()
        self.bob.send_message("echo@" + COMP, "to the component")
        msg = comp.wait_stanza(lambda s: s.name == "message" and s["body"] == "to the component",
                               since=m)
        self.assertEqual(str(msg["from"]), "bob@b.test/r")
        b = self.bob.mark()
        comp.send_message("echo@" + COMP, "bob@b.test/r", "from the component")
        msg = self.bob.wait_message("from the component", since=b)
        self.assertEqual(str(msg["from"]), "echo@" + COMP)
        # The link to comp.a.test authenticated that domain on its own: the
        # certificate of a.test covers *.a.test.
        link = [l for l in self.b.s2s_list().splitlines()
                if l.startswith("out") and COMP in l.split()[1:3]]
        self.assertTrue(link, self.b.s2s_list())
        self.assertIn("EXTERNAL", link[0])

    # ---- errors ----------------------------------------------------------

    def test_14_iq_to_missing_remote_user_gets_remote_error(self):
        answer = self.alice.iq("<query xmlns='%s'/>" % NS_VERSION, to="nobody@b.test")
        self.assertEqual(answer.get("type"), "error")
        self.assertEqual(answer.get("from"), "nobody@b.test")
        self.assertEqual(stanza_error(answer), ("cancel", "service-unavailable"))
        answer = self.alice.iq("<vCard xmlns='%s'/>" % NS_VCARD, to="nobody@b.test/x")
        self.assertEqual(answer.get("type"), "error")
        self.assertEqual(answer.get("from"), "nobody@b.test/x")

    def test_99_removing_a_remote_contact_cancels_both_ways(self):
        """RFC 6121 §2.5.2: alice removes bob; b.test hears unsubscribe and
        unsubscribed, bob's roster says none and he sees alice go."""
        b = self.bob.mark()
        answer = self.alice.iq("<query xmlns='%s'><item jid='bob@b.test' subscription='remove'/>"
                               "</query>" % NS_ROSTER, to=None, itype="set")
        self.assertEqual(answer.get("type"), "result")
        self.bob.wait_stanza(is_presence("alice@a.test/r", "unavailable"), since=b)
        deadline = time.monotonic() + T_REPLY
        while True:
            item = self.roster_item(self.bob, "alice@a.test")
            if item is None or item.get("subscription") == "none" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertTrue(item is None or item.get("subscription") == "none",
                        item is not None and item.attrib)
        self.assertIsNone(self.roster_item(self.alice, "bob@b.test"))


def leaf_without_subdomains(domain):
    """A certificate from the test CA that names `domain` only."""
    return ENV.ca.issue(domain, [domain], stem=domain + "-only")


class ComponentDialbackTests(FedCase):
    """a.test's certificate does not name comp.a.test: b.test, which allows
    dialback for it, authenticates the component's domain with dialback
    (a.test answers for the domains of its components)."""
    a_cert = staticmethod(leaf_without_subdomains)
    a_extra = dict(MODULES, components={COMP: {"secret": COMP_SECRET}})
    b_s2s = {"dialback_only": [COMP]}

    def test_component_reached_with_dialback(self):
        comp = SlixComponent(self.a, COMP, COMP_SECRET).connect()
        self.addCleanup(comp.disconnect)
        m = comp.mark()
        self.bob.send_message("echo@" + COMP, "dialback to the component")
        comp.wait_stanza(lambda s: s.name == "message" and
                         s["body"] == "dialback to the component", since=m)
        b = self.bob.mark()
        comp.send_message("echo@" + COMP, "bob@b.test/r", "dialback from the component")
        self.bob.wait_message("dialback from the component", since=b)
        link = [l for l in self.b.s2s_list().splitlines() if COMP in l.split()[1:3]]
        self.assertTrue(link, self.b.s2s_list())
        self.assertIn("dialback", " ".join(link))


if __name__ == "__main__":
    unittest.main()
