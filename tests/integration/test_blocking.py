"""XEP-0191 Blocking Command (mod_blocking) with three users.

alice (two resources) blocks bob: bob's messages and iq requests come back
as <service-unavailable/> (§3.3) and reach no resource of alice's, his
presence vanishes, alice's own messages and iqs to him come back as
<not-acceptable/> with <blocked/>, her directed presence to him is turned
into <presence type='unavailable'/> at block time, and the block/unblock
pushes reach the sessions that retrieved the list.  Unblocking (one item or
all) restores delivery; carol is never affected.  Items may be full JIDs,
bare JIDs or domains (§6), including a component's domain.  mod_roster is
not loaded: presence is exchanged as directed presence."""
import os
import time
import unittest
import xml.etree.ElementTree as ET

from harness import (DOMAIN, NS_DISCO_INFO, NS_PING, NS_STANZAS, T_SHORT, TERN_MODULES,
                     ServerTestCase, SlixComponent, q, stanza_error)

NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"
BOTS = "bots.localhost"
BOTS_SECRET = "bots-secret"

BOB = "bob@localhost"
ALICE = "alice@localhost"
CAROL = "carol@localhost"


def items(xml):
    """The jids of the <item/>s of a blocking element (in document order)."""
    return [i.get("jid") for i in xml.iter(q(NS_BLOCKING, "item"))]


def push_of(stanza, what):
    """The <block/> or <unblock/> of a push iq, or None."""
    if stanza.name != "iq" or stanza["type"] != "set":
        return None
    return stanza.xml.find(q(NS_BLOCKING, what))


def is_blocked_error(xml):
    err = xml.find("{jabber:client}error")
    return (err is not None and err.get("type") == "cancel" and
            err.find(q(NS_STANZAS, "not-acceptable")) is not None and
            err.find(q(NS_BLOCKING_ERRORS, "blocked")) is not None)


class BlockingTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"},
                         components={BOTS: BOTS_SECRET},
                         config={"modules": {"blocking": {}}})

    def setUp(self):
        super().setUp()
        self.alice = self.slix("alice", resource="one")
        self.alice2 = self.slix("alice", resource="two")
        self.bob = self.slix("bob", resource="phone")
        self.carol = self.slix("carol", resource="pc")
        # Each test starts from an empty list (the store outlives sessions).
        self.command("unblock")

    # ---- helpers ---------------------------------------------------------

    def command(self, what, *jids, client=None):
        """Send <block/> or <unblock/> with these items; returns the answer."""
        client = client or self.alice
        inner = "".join("<item jid='%s'/>" % j for j in jids)
        answer = client.iq("<%s xmlns='%s'>%s</%s>" % (what, NS_BLOCKING, inner, what),
                           to=None, itype="set")
        return answer

    def block(self, *jids, client=None):
        answer = self.command("block", *jids, client=client)
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))

    def blocklist(self, client=None):
        answer = (client or self.alice).iq("<blocklist xmlns='%s'/>" % NS_BLOCKING, to=None)
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        blocklist = answer.find(q(NS_BLOCKING, "blocklist"))
        self.assertIsNotNone(blocklist)
        return items(blocklist)

    def assertNothing(self, client, mark, kinds=("message", "iq", "presence"), within=T_SHORT):
        time.sleep(within)
        got = client.received_since(mark, kinds)
        self.assertEqual(got, [], "unexpected for %s: %s" % (client.jid, [str(s) for s in got]))

    def assertDelivered(self, sender, recipient, body, to=None):
        mark = recipient.mark()
        sender.send_message(to or recipient.jid, body)
        msg = recipient.wait_message(body, since=mark)
        self.assertEqual(str(msg["from"]), sender.jid)

    def exchange_directed_presence(self):
        """alice/one and bob send each other directed presence (as a client
        does for a contact without a subscription)."""
        b, a = self.bob.mark(), self.alice.mark()
        self.alice.send_raw("<presence to='%s'/>" % BOB)
        self.bob.send_raw("<presence to='%s'/>" % ALICE)
        self.bob.wait_stanza(lambda s: s.name == "presence" and str(s["from"]) == self.alice.jid,
                             since=b)
        self.alice.wait_stanza(lambda s: s.name == "presence" and str(s["from"]) == self.bob.jid,
                               since=a)

    # ---- tests -------------------------------------------------------------

    def test_feature_is_advertised(self):
        answer = self.alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN)
        features = {f.get("var") for f in answer.iter(q(NS_DISCO_INFO, "feature"))}
        self.assertIn(NS_BLOCKING, features)

    def test_blocklist_lists_what_was_blocked(self):
        self.assertEqual(self.blocklist(), [])
        self.block(BOB, "Example.ORG", "carol@localhost/Work")
        self.block(BOB)  # again: no duplicate
        self.assertEqual(sorted(self.blocklist()),
                         sorted([BOB, "example.org", "carol@localhost/Work"]))
        self.assertEqual(self.blocklist(client=self.alice2), self.blocklist())
        self.assertEqual(self.blocklist(client=self.bob), [])

    def test_blocked_contact_messages_bounce_and_alice_gets_nothing(self):
        self.block(BOB)
        a1, a2, b = self.alice.mark(), self.alice2.mark(), self.bob.mark()
        self.bob.send_message(ALICE, "hello bare")
        err = self.bob.wait_message(mtype="error", since=b)
        self.assertEqual(stanza_error(err.xml), ("cancel", "service-unavailable"))
        self.assertEqual(str(err["from"]), ALICE)
        b = self.bob.mark()
        self.bob.send_message(self.alice2.jid, "hello full")
        err = self.bob.wait_message(mtype="error", since=b)
        self.assertEqual(stanza_error(err.xml), ("cancel", "service-unavailable"))
        answer = self.bob.iq("<ping xmlns='%s'/>" % NS_PING, to=self.alice.jid)
        self.assertEqual(stanza_error(answer), ("cancel", "service-unavailable"))
        self.assertNothing(self.alice, a1)
        self.assertNothing(self.alice2, a2)
        # carol still reaches alice, and bob still reaches carol
        self.assertDelivered(self.carol, self.alice, "carol to alice", to=self.alice.jid)
        self.assertDelivered(self.bob, self.carol, "bob to carol")

    def test_blocked_contact_presence_vanishes_without_error(self):
        self.block(BOB)
        a1, a2, b = self.alice.mark(), self.alice2.mark(), self.bob.mark()
        self.bob.send_raw("<presence to='%s'/>" % ALICE)
        self.bob.send_raw("<presence to='%s' type='subscribe'/>" % ALICE)
        self.bob.send_raw("<presence to='%s' type='probe'/>" % ALICE)
        self.bob.send_raw("<presence to='%s'><show>dnd</show></presence>" % self.alice2.jid)
        self.assertNothing(self.alice, a1)
        self.assertNothing(self.alice2, a2)
        self.assertNothing(self.bob, b, within=0)
        # carol's presence still reaches alice
        a1 = self.alice.mark()
        self.carol.send_raw("<presence to='%s'/>" % self.alice.jid)
        self.alice.wait_stanza(lambda s: s.name == "presence" and str(s["from"]) == self.carol.jid,
                               since=a1)

    def test_alice_cannot_reach_whom_she_blocked(self):
        self.block(BOB)
        a, b = self.alice.mark(), self.bob.mark()
        self.alice.send_message(BOB, "can you hear me")
        err = self.alice.wait_message(mtype="error", since=a)
        self.assertTrue(is_blocked_error(err.xml), str(err))
        self.assertEqual(str(err["from"]), BOB)
        self.assertEqual(err["body"], "can you hear me")
        answer = self.alice.iq("<ping xmlns='%s'/>" % NS_PING, to=self.bob.jid)
        self.assertEqual(answer.get("type"), "error")
        self.assertTrue(is_blocked_error(answer), ET.tostring(answer, encoding="unicode"))
        # presence is dropped without an error
        a = self.alice.mark()
        self.alice.send_raw("<presence to='%s'/>" % BOB)
        self.alice.send_raw("<presence to='%s' type='subscribe'/>" % BOB)
        self.assertNothing(self.bob, b)
        self.assertNothing(self.alice, a, within=0)
        # her other contacts are unaffected
        self.assertDelivered(self.alice, self.carol, "alice to carol")

    def test_block_sends_unavailable_to_who_saw_alice(self):
        self.exchange_directed_presence()
        b = self.bob.mark()
        self.block(BOB)
        unavailable = self.bob.wait_stanza(
            lambda s: s.name == "presence" and s["type"] == "unavailable", since=b)
        self.assertEqual(str(unavailable["from"]), self.alice.jid)
        # alice/two never sent bob presence: nothing from it; nothing else at all
        self.assertNothing(self.bob, b + 1)
        self.assertEqual([str(s["from"]) for s in self.bob.received_since(b, ("presence",))],
                         [self.alice.jid])

    def test_push_reaches_sessions_that_retrieved_the_list(self):
        self.blocklist(client=self.alice)
        self.blocklist(client=self.alice2)
        a1, a2 = self.alice.mark(), self.alice2.mark()
        self.block(BOB, "example.org")
        for client, mark in ((self.alice, a1), (self.alice2, a2)):
            push = client.wait_stanza(lambda s: push_of(s, "block") is not None, since=mark)
            self.assertEqual(sorted(items(push_of(push, "block"))), [BOB, "example.org"])
            self.assertEqual(str(push["to"]), client.jid)
        a1, a2 = self.alice.mark(), self.alice2.mark()
        answer = self.command("unblock", "example.org", client=self.alice2)
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        for client, mark in ((self.alice, a1), (self.alice2, a2)):
            push = client.wait_stanza(lambda s: push_of(s, "unblock") is not None, since=mark)
            self.assertEqual(items(push_of(push, "unblock")), ["example.org"])

    def test_no_push_to_sessions_that_did_not_ask(self):
        self.blocklist(client=self.alice)
        a2 = self.alice2.mark()
        a1 = self.alice.mark()
        self.block(BOB)
        self.alice.wait_stanza(lambda s: push_of(s, "block") is not None, since=a1)
        self.assertNothing(self.alice2, a2, kinds=("iq",))

    def test_unblock_all_restores_delivery(self):
        self.blocklist(client=self.alice2)
        self.block(BOB, CAROL)
        a2 = self.alice2.mark()
        answer = self.command("unblock")
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        push = self.alice2.wait_stanza(lambda s: push_of(s, "unblock") is not None, since=a2)
        self.assertEqual(items(push_of(push, "unblock")), [])
        self.assertEqual(self.blocklist(), [])
        self.assertDelivered(self.bob, self.alice, "bob again", to=self.alice.jid)
        self.assertDelivered(self.alice, self.bob, "alice again")
        self.assertDelivered(self.carol, self.alice, "carol again", to=self.alice.jid)

    def test_unblock_one_keeps_the_others(self):
        self.block(BOB, CAROL)
        answer = self.command("unblock", BOB)
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        self.assertEqual(self.blocklist(), [CAROL])
        self.assertDelivered(self.bob, self.alice, "bob is back", to=self.alice.jid)
        c = self.carol.mark()
        self.carol.send_message(ALICE, "still blocked")
        err = self.carol.wait_message(mtype="error", since=c)
        self.assertEqual(stanza_error(err.xml), ("cancel", "service-unavailable"))

    def test_full_jid_item_blocks_only_that_resource(self):
        bob2 = self.slix("bob", resource="tablet")
        self.block("bob@localhost/phone")
        b = self.bob.mark()
        self.bob.send_message(self.alice.jid, "from the phone")
        err = self.bob.wait_message(mtype="error", since=b)
        self.assertEqual(stanza_error(err.xml), ("cancel", "service-unavailable"))
        self.assertDelivered(bob2, self.alice, "from the tablet", to=self.alice.jid)

    def test_domain_item_blocks_a_component(self):
        bots = SlixComponent(self.server, BOTS, BOTS_SECRET).connect()
        self._clients.append(bots)
        a = self.alice.mark()
        self.block(BOTS)
        m = bots.mark()
        bots.send_message("r2@" + BOTS, self.alice.jid, "beep")
        err = bots.wait_stanza(lambda s: s.name == "message" and s["type"] == "error", since=m)
        self.assertEqual(stanza_error(err.xml), ("cancel", "service-unavailable"))
        bots.send_message(BOTS, ALICE, "from the domain itself", mtype="normal")
        bots.wait_stanza(lambda s: s.name == "message" and s["type"] == "error" and
                         s["body"] == "from the domain itself", since=m)
        self.assertNothing(self.alice, a, kinds=("message",))
        # bob does not block the bots
        b = self.bob.mark()
        bots.send_message("r2@" + BOTS, self.bob.jid, "beep bob")
        self.bob.wait_message("beep bob", since=b)

    def test_parent_domain_item_blocks_subdomains(self):
        bots = SlixComponent(self.server, BOTS, BOTS_SECRET).connect()
        self._clients.append(bots)
        self.block("localhost")  # covers bob, carol and bots.localhost
        m = bots.mark()
        bots.send_message("r2@" + BOTS, self.alice.jid, "beep")
        bots.wait_stanza(lambda s: s.name == "message" and s["type"] == "error", since=m)
        c = self.carol.mark()
        self.carol.send_message(ALICE, "hi")
        err = self.carol.wait_message(mtype="error", since=c)
        self.assertEqual(stanza_error(err.xml), ("cancel", "service-unavailable"))
        # but never her own account nor her server
        self.assertDelivered(self.alice2, self.alice, "to myself", to=self.alice.jid)
        self.assertEqual(self.alice.ping(DOMAIN), "result")

    def test_block_needs_items_and_valid_jids(self):
        answer = self.command("block")
        self.assertEqual(stanza_error(answer), ("modify", "bad-request"))
        answer = self.command("block", "a@b@c")
        self.assertEqual(stanza_error(answer), ("modify", "jid-malformed"))
        answer = self.command("block", BOB, "@nope")
        self.assertEqual(stanza_error(answer), ("modify", "jid-malformed"))
        self.assertEqual(self.blocklist(), [])

    def test_block_survives_reconnection(self):
        self.block(BOB)
        self.alice.disconnect()
        self.alice2.disconnect()
        again = self.slix("alice", resource="again")
        self.assertEqual(self.blocklist(client=again), [BOB])
        b = self.bob.mark()
        self.bob.send_message(again.jid, "still there?")
        err = self.bob.wait_message(mtype="error", since=b)
        self.assertEqual(stanza_error(err.xml), ("cancel", "service-unavailable"))


    def test_recreated_account_starts_with_no_blocks(self):
        self.server.add_user("dora", "dora-pw")
        dora = self.slix("dora", resource="d")
        self.block(BOB, client=dora)
        b = self.bob.mark()
        self.bob.send_message(dora.jid, "blocked")
        self.bob.wait_message(mtype="error", since=b)  # the list is in use (and in memory)
        self.server.ternctl_ok("deluser", "dora@localhost")
        dora.wait_disconnected()
        self.server.add_user("dora", "dora-pw2")
        self.server.users["dora"] = "dora-pw2"
        dora = self.slix("dora", resource="again")
        self.assertEqual(self.blocklist(client=dora), [])
        self.assertDelivered(self.bob, dora, "welcome back", to=dora.jid)

class BlockingLimitTests(ServerTestCase):
    """max_items bounds a user's list; blocking what is already there is
    always allowed."""
    server_kwargs = dict(users={"alice": "alice-pw"},
                         config={"modules": {"blocking": {"max_items": 2}}})

    def test_list_is_bounded(self):
        alice = self.slix("alice")

        def block(*jids):
            inner = "".join("<item jid='%s'/>" % j for j in jids)
            return alice.iq("<block xmlns='%s'>%s</block>" % (NS_BLOCKING, inner), to=None,
                            itype="set")
        self.assertEqual(block("a@example.org", "b@example.org").get("type"), "result")
        self.assertEqual(stanza_error(block("c@example.org")), ("modify", "policy-violation"))
        self.assertEqual(block("a@example.org").get("type"), "result")
        answer = alice.iq("<blocklist xmlns='%s'/>" % NS_BLOCKING, to=None)
        self.assertEqual(sorted(items(answer)), ["a@example.org", "b@example.org"])


class BlockingWithRosterTests(ServerTestCase):
    """With mod_roster: a subscribed contact gets unavailable presence at
    block time, sees none of the user's broadcasts while blocked, and gets
    the current presence back on unblock (§3.3, §3.4)."""
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"},
                         config={"modules": {"roster": {}, "blocking": {}}})

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(os.path.join(TERN_MODULES, "mod_roster.so")):
            raise unittest.SkipTest("mod_roster is not built")
        super().setUpClass()

    def presence_from(self, client, sender, since, show=None, ptype=None):
        return client.wait_stanza(
            lambda s: (s.name == "presence" and str(s["from"]) == sender.jid and
                       (ptype is None or s["type"] == ptype) and
                       (show is None or s["show"] == show)), since=since)

    def test_subscribed_contact_loses_and_regains_presence(self):
        alice = self.slix("alice", resource="one")
        bob = self.slix("bob", resource="phone")
        a, b = alice.mark(), bob.mark()
        # slixmpp approves subscription requests and asks back: both ways.
        alice.send_raw("<presence to='%s' type='subscribe'/>" % BOB)
        self.presence_from(bob, alice, b)
        self.presence_from(alice, bob, a)
        time.sleep(0.3)  # let the subscription dance settle

        b = bob.mark()
        answer = alice.iq("<block xmlns='%s'><item jid='%s'/></block>" % (NS_BLOCKING, BOB),
                          to=None, itype="set")
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        self.presence_from(bob, alice, b, ptype="unavailable")

        a, b = alice.mark(), bob.mark()
        alice.send_raw("<presence><show>away</show></presence>")
        bob.send_raw("<presence><show>xa</show></presence>")
        alice.sync()
        bob.sync()
        time.sleep(T_SHORT)
        # RFC 6121 §4.2.2: each gets its own broadcast back, and nothing else
        for client, mark, own in ((alice, a, ALICE), (bob, b, BOB)):
            others = [str(s) for s in client.received_since(mark, ("presence", "message"))
                      if s["from"].bare != own]
            self.assertEqual(others, [], client.jid)

        b = bob.mark()
        answer = alice.iq("<unblock xmlns='%s'/>" % NS_BLOCKING, to=None, itype="set")
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))
        self.presence_from(bob, alice, b, show="away")
        a = alice.mark()
        bob.send_raw("<presence><show>chat</show></presence>")
        self.presence_from(alice, bob, a, show="chat")


NS_VCARD = "vcard-temp"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_LAST = "jabber:iq:last"
PEP_NODE = "urn:xmpp:test:blocking"

# Requests the server answers on alice's behalf at her bare JID.
ACCOUNT_IQS = {
    "disco#info": ("get", "<query xmlns='%s'/>" % NS_DISCO_INFO),
    "vCard": ("get", "<vCard xmlns='%s'/>" % NS_VCARD),
    "PEP items": ("get", "<pubsub xmlns='%s'><items node='%s'/></pubsub>" % (NS_PUBSUB, PEP_NODE)),
    "last activity": ("get", "<query xmlns='%s'/>" % NS_LAST),
}


class BlockingAccountIqTests(ServerTestCase):
    """XEP-0191 §3.3: an iq get/set from a blocked JID to the user gets
    service-unavailable, also when the server answers it for the user's
    bare JID (disco#info of the account, vCard, PEP items, last activity),
    and the user sees nothing; unblocked, each is answered again.  The
    user's own requests to her account are never filtered."""
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"},
                         config={"modules": {"roster": {}, "blocking": {}, "vcard": {},
                                             "pep": {}}})

    @classmethod
    def setUpClass(cls):
        for mod in ("roster", "vcard", "pep"):
            if not os.path.exists(os.path.join(TERN_MODULES, "mod_%s.so" % mod)):
                raise unittest.SkipTest("mod_%s is not built" % mod)
        super().setUpClass()

    def setUp(self):
        super().setUp()
        self.alice = self.slix("alice", resource="one")
        self.bob = self.slix("bob", resource="phone")
        if not type(self).prepared:
            self.prepare()
            type(self).prepared = True

    prepared = False

    def prepare(self):
        """bob may read what the server answers for alice: he is subscribed
        to her presence (slixmpp approves and asks back), and she has a vCard
        and a PEP item.  Kept in the server's database for every test."""
        b = self.bob.mark()
        self.alice.send_raw("<presence to='%s' type='subscribe'/>" % BOB)
        self.bob.wait_stanza(lambda s: s.name == "presence" and s["type"] == "subscribed",
                             since=b)
        time.sleep(0.3)  # let the subscription dance settle
        for payload in ("<vCard xmlns='%s'><FN>Alice</FN></vCard>" % NS_VCARD,
                        "<pubsub xmlns='%s'><publish node='%s'><item id='i1'>"
                        "<x xmlns='urn:xmpp:test'/></item></publish></pubsub>" %
                        (NS_PUBSUB, PEP_NODE)):
            answer = self.alice.iq(payload, to=None, itype="set")
            self.assertEqual(answer.get("type"), "result", stanza_error(answer))

    def command(self, what, jid):
        answer = self.alice.iq("<%s xmlns='%s'><item jid='%s'/></%s>" %
                               (what, NS_BLOCKING, jid, what), to=None, itype="set")
        self.assertEqual(answer.get("type"), "result", stanza_error(answer))

    def answers(self, client, to=ALICE):
        return {name: client.iq(payload, to=to, itype=itype)
                for name, (itype, payload) in ACCOUNT_IQS.items()}

    def assertAnswered(self, client, to=ALICE):
        for name, answer in self.answers(client, to).items():
            self.assertEqual(answer.get("type"), "result",
                             "%s: %s" % (name, ET.tostring(answer, encoding="unicode")))
            self.assertEqual(answer.get("from"), to, name)

    def test_account_iqs_from_a_blocked_jid_are_refused(self):
        self.assertAnswered(self.bob)
        self.command("block", BOB)
        a = self.alice.mark()
        for name, answer in self.answers(self.bob).items():
            self.assertEqual(answer.get("type"), "error", name)
            self.assertEqual(stanza_error(answer), ("cancel", "service-unavailable"), name)
            self.assertEqual(answer.get("from"), ALICE, name)
        # An iq set the server would answer for her is refused the same way.
        answer = self.bob.iq("<vCard xmlns='%s'><FN>Mallory</FN></vCard>" % NS_VCARD, to=ALICE,
                             itype="set")
        self.assertEqual(stanza_error(answer), ("cancel", "service-unavailable"))
        time.sleep(T_SHORT)
        self.assertEqual([str(s) for s in self.alice.received_since(a)], [])
        self.command("unblock", BOB)
        self.assertAnswered(self.bob)

    def test_domain_item_refuses_them_too(self):
        self.command("block", DOMAIN)  # covers bob, never alice's own account
        for name, answer in self.answers(self.bob).items():
            self.assertEqual(stanza_error(answer), ("cancel", "service-unavailable"), name)
        # Her own requests to her account (another session too) are answered.
        self.assertAnswered(self.alice)
        self.assertAnswered(self.slix("alice", resource="two"))
        self.command("unblock", DOMAIN)
        self.assertAnswered(self.bob)
