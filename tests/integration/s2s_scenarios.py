"""s2s_scenarios.py — what users on two federated servers do, as test methods.

FederationScenarios is a mixin for unittest.TestCase classes that start two
servers, side A and side B (a harness.Server or a peer of peers.py), able to
reach each other through the test DNS.  The class sets:

    cls.side_a, cls.side_b   Side(server, mech, muc) for each server
    cls.all_servers          everything whose log helps when a test fails
    cls.dns                  the Dnsmasq (its query log is shown on failure)

and registers every name of USERS on both sides (register_users()).  Each
test uses its own pair of users, so rosters never mix between tests.

The scenarios: first message both ways, messages both ways in order, mutual
subscription with presence, a user of one side in a room of the other
side's MUC service with a user of that side, vCard fetched across.
A stanza error the sender gets instead of the expected stanza (such as
remote-server-not-found) fails the test with its condition and text.
"""
import secrets
import time
import xml.etree.ElementTree as ET

from harness import SlixClient, run_async

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_MUC_OWNER = NS_MUC + "#owner"
NS_VCARD = "vcard-temp"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

T_FEDERATE = 30  # a new link: DNS, TCP, TLS, authentication both ways
T_ACROSS = 15    # a stanza over an established link, through the other server

# Users made on both sides: one pair per scenario.
USERS = {u: u + "-pw" for u in ("ann", "bea", "cat", "dan", "eve", "fay", "gil", "hal",
                                "ivy", "jon")}


class Side:
    """One server of the pair: the server (Server or peer), the SASL mechanism
    its accounts log in with, and its MUC service domain (or None)."""

    def __init__(self, server, mech, muc=None):
        self.server = server
        self.mech = mech
        self.muc = muc

    @property
    def domain(self):
        return self.server.domain


def register_users(server):
    for user, pw in USERS.items():
        if hasattr(server, "register"):
            server.register(user, pw)
        else:
            server.add_user(user, pw)


def _error_of(stanza):
    """'condition: text' of an error stanza."""
    err = stanza.xml.find("{jabber:client}error")
    if err is None:
        return "error without <error/>"
    cond = [c.tag.split("}")[1] for c in err if c.tag.startswith("{%s}" % NS_STANZAS) and
            not c.tag.endswith("}text")]
    text = err.find("{%s}text" % NS_STANZAS)
    return "%s%s" % (",".join(cond) or "?", (": " + text.text) if text is not None else "")


class FederationScenarios:
    side_a = side_b = None
    all_servers = ()
    dns = None

    def setUp(self):
        self._clients = []

    def tearDown(self):
        for c in reversed(self._clients):
            try:
                c.disconnect()
            except Exception:
                pass

    # ---- helpers -------------------------------------------------------

    def logs(self):
        parts = [s.log_tail(50) for s in self.all_servers]
        if self.dns is not None:
            parts.append("---- dnsmasq queries ----\n" + "\n".join(
                self.dns.log().splitlines()[-30:]))
        return "\n".join(parts)

    def client(self, side, user, presence=True):
        c = SlixClient(side.server, user, mech=side.mech)
        self._clients.append(c)
        c.connect(presence=presence)

        async def manual():  # answer subscription requests by hand (the test does)
            c.xmpp.auto_authorize = None
            c.xmpp.auto_subscribe = False
        run_async(manual())
        return c

    def await_across(self, receiver, sender, pred, what, timeout=T_ACROSS, since=0,
                     sender_since=None):
        """The first stanza at `receiver` (from index `since` on) for which
        pred holds; fails at once (with the condition) when `sender` gets an
        error stanza (from index `sender_since` on; default: from now)
        instead, or after timeout with the servers' logs."""
        mark = len(sender.received) if sender_since is None else sender_since
        deadline = time.monotonic() + timeout
        while True:
            for s in receiver.received[since:]:
                if pred(s):
                    return s
            errors = [s for s in sender.received[mark:] if s["type"] == "error"]
            if errors:
                self.fail("%s: the sender got an error instead: %s\n%s\n%s" % (
                    what, _error_of(errors[0]), errors[0], self.logs()))
            if time.monotonic() > deadline:
                self.fail("%s: nothing arrived within %ss\n%s" % (what, timeout, self.logs()))
            time.sleep(0.05)

    def send_and_expect(self, sender, receiver, to, body, timeout=T_ACROSS, mtype="chat"):
        mark, sender_mark = len(receiver.received), len(sender.received)
        sender.send_message(to, body, mtype=mtype)

        def pred(s):
            return s.name == "message" and s["body"] == body
        return self.await_across(receiver, sender, pred, "message %r to %s" % (body, to),
                                 timeout, since=mark, sender_since=sender_mark)

    def send_raw_and_expect(self, sender, receiver, xml, pred, what, timeout=T_ACROSS):
        """Send raw XML; the first stanza at receiver (after sending) for which
        pred holds (an error at the sender fails at once)."""
        mark, sender_mark = len(receiver.received), len(sender.received)
        sender.send_raw(xml)
        return self.await_across(receiver, sender, pred, what, timeout, since=mark,
                                 sender_since=sender_mark)

    def bare(self, side, user):
        return "%s@%s" % (user, side.domain)

    def iq_across(self, client, payload, to, what):
        """An iq answered across the link; fails with the error's condition."""
        el = client.iq(payload, to=to, itype="get", timeout=T_ACROSS)
        if el.get("type") != "result":
            err = el.find("{jabber:client}error")
            cond = [c.tag for c in err] if err is not None else []
            self.fail("%s: answer type %s %s\n%s\n%s" % (what, el.get("type"), cond,
                                                        ET.tostring(el).decode(), self.logs()))
        return el

    # ---- scenarios -----------------------------------------------------

    def test_first_message_both_ways(self):
        a = self.client(self.side_a, "ann")
        b = self.client(self.side_b, "bea")
        m = self.send_and_expect(a, b, self.bare(self.side_b, "bea"), "first from A",
                                 timeout=T_FEDERATE)
        self.assertEqual(m["from"].bare, self.bare(self.side_a, "ann"))
        m = self.send_and_expect(b, a, self.bare(self.side_a, "ann"), "first from B",
                                 timeout=T_FEDERATE)
        self.assertEqual(m["from"].bare, self.bare(self.side_b, "bea"))

    def test_messages_both_ways_in_order(self):
        a = self.client(self.side_a, "cat")
        b = self.client(self.side_b, "dan")
        to_b, to_a = self.bare(self.side_b, "dan"), self.bare(self.side_a, "cat")
        self.send_and_expect(a, b, to_b, "hello B", timeout=T_FEDERATE)
        self.send_and_expect(b, a, to_a, "hello A", timeout=T_FEDERATE)
        mark_a, mark_b = a.mark(), b.mark()
        for i in range(10):
            a.send_message(to_b, "a%d" % i)
            b.send_message(to_a, "b%d" % i)
        self.send_and_expect(a, b, to_b, "a-end")
        self.send_and_expect(b, a, to_a, "b-end")
        got_b = [s["body"] for s in b.received_since(mark_b, ("message",)) if s["body"]]
        got_a = [s["body"] for s in a.received_since(mark_a, ("message",)) if s["body"]]
        self.assertEqual(got_b, ["a%d" % i for i in range(10)] + ["a-end"])
        self.assertEqual(got_a, ["b%d" % i for i in range(10)] + ["b-end"])

    def test_mutual_subscription_with_presence(self):
        a = self.client(self.side_a, "eve")
        b = self.client(self.side_b, "fay")
        ja, jb = self.bare(self.side_a, "eve"), self.bare(self.side_b, "fay")
        for c in (a, b):  # an interested resource gets subscription requests (RFC 6121 §2.1.6)
            el = c.iq("<query xmlns='jabber:iq:roster'/>", to=None)
            self.assertEqual(el.get("type"), "result", ET.tostring(el).decode())

        def presence_from(bare, ptype):
            return lambda s: (s.name == "presence" and s["from"].bare == bare and
                              s["type"] == ptype)

        def available_from(bare):
            # slixmpp's presence["type"] is the <show/> when there is one: read the attribute.
            return lambda s: (s.name == "presence" and s["from"].bare == bare and
                              s.xml.get("type") is None and s["from"].resource)

        # A asks, B approves and asks back, A approves (RFC 6121 §3.1).
        self.send_raw_and_expect(a, b, "<presence to='%s' type='subscribe'/>" % jb,
                                 presence_from(ja, "subscribe"), "subscribe A->B", T_FEDERATE)
        mark = a.mark()
        self.send_raw_and_expect(b, a, "<presence to='%s' type='subscribed'/>" % ja,
                                 presence_from(jb, "subscribed"), "subscribed B->A", T_FEDERATE)
        # B is online, so A gets B's presence once subscribed (§3.1.6 probe).
        self.await_across(a, b, available_from(jb), "B's presence at A", since=mark)
        self.send_raw_and_expect(b, a, "<presence to='%s' type='subscribe'/>" % ja,
                                 presence_from(jb, "subscribe"), "subscribe B->A")
        mark = b.mark()
        self.send_raw_and_expect(a, b, "<presence to='%s' type='subscribed'/>" % jb,
                                 presence_from(ja, "subscribed"), "subscribed A->B")
        self.await_across(b, a, available_from(ja), "A's presence at B", since=mark)
        # A presence change reaches the contact; going offline too.
        self.send_raw_and_expect(a, b, "<presence><show>away</show><status>out</status></presence>",
                                 lambda s: available_from(ja)(s) and s["show"] == "away",
                                 "A's away at B")
        mark = a.mark()
        b.disconnect()
        self.await_across(a, b, presence_from(jb, "unavailable"), "B's unavailable at A",
                          since=mark)

    def _join(self, client, room, nick, what):
        mark = client.mark()
        client.send_raw("<presence to='%s/%s'><x xmlns='%s'/></presence>" % (room, nick, NS_MUC))

        def self_presence(s):
            if s.name != "presence" or str(s["from"]) != "%s/%s" % (room, nick):
                return False
            x = s.xml.find("{%s}x" % NS_MUC_USER)
            return x is not None and any(st.get("code") == "110" for st in
                                         x.findall("{%s}status" % NS_MUC_USER))
        p = self.await_across(client, client, self_presence, what, T_FEDERATE, since=mark,
                              sender_since=mark)
        if p["type"] == "error":
            self.fail("%s: %s\n%s" % (what, _error_of(p), self.logs()))
        x = p.xml.find("{%s}x" % NS_MUC_USER)
        if any(st.get("code") == "201" for st in x.findall("{%s}status" % NS_MUC_USER)):
            # A new room: accept the default configuration (XEP-0045 §10.1.2).
            el = client.iq("<query xmlns='%s'><x xmlns='jabber:x:data' type='submit'/></query>"
                           % NS_MUC_OWNER, to=room, itype="set", timeout=T_ACROSS)
            self.assertEqual(el.get("type"), "result", ET.tostring(el).decode())

    def _groupchat(self, guest_side, host_side):
        """A user of guest_side makes a room on host_side's MUC; a user of
        host_side joins; each sends a groupchat message the other receives."""
        if not host_side.muc:
            self.skipTest("no MUC service on " + host_side.domain)
        room = "room-%s@%s" % (secrets.token_hex(3), host_side.muc)
        guest = self.client(guest_side, "gil")
        local = self.client(host_side, "hal")
        self._join(guest, room, "gil", "guest %s joins %s" % (guest_side.domain, room))
        self._join(local, room, "hal", "local user joins " + room)
        self.await_across(guest, local, lambda s: s.name == "presence" and
                          str(s["from"]) == room + "/hal", "hal's presence in the room at gil")
        m = self.send_and_expect(guest, local, room, "from the guest", mtype="groupchat")
        self.assertEqual(str(m["from"]), room + "/gil")
        self.assertEqual(m["type"], "groupchat")
        m = self.send_and_expect(local, guest, room, "from the host's user", mtype="groupchat")
        self.assertEqual(str(m["from"]), room + "/hal")

    def test_groupchat_in_room_of_b(self):
        self._groupchat(self.side_a, self.side_b)

    def test_vcard_fetched_across(self):
        a = self.client(self.side_a, "ivy")
        b = self.client(self.side_b, "jon")
        for c, name in ((a, "Ivy of A"), (b, "Jon of B")):
            el = c.iq("<vCard xmlns='%s'><FN>%s</FN></vCard>" % (NS_VCARD, name), to=None,
                      itype="set")
            self.assertEqual(el.get("type"), "result", ET.tostring(el).decode())
        for c, side, user, name in ((a, self.side_b, "jon", "Jon of B"),
                                    (b, self.side_a, "ivy", "Ivy of A")):
            el = self.iq_across(c, "<vCard xmlns='%s'/>" % NS_VCARD, self.bare(side, user),
                                "vCard of %s" % self.bare(side, user))
            fn = el.find("{%s}vCard/{%s}FN" % (NS_VCARD, NS_VCARD))
            self.assertIsNotNone(fn, ET.tostring(el).decode())
            self.assertEqual(fn.text, name)
