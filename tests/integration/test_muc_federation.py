"""Group chat across federation (XEP-0045 with RFC 6120 server links).

- TernPairMucTest: two Tern servers (federation.py).  A user of b.test
  enters a room on conference.a.test (served by the muc module; DNS has an
  SRV record for the service domain, the a.test certificate covers
  *.a.test): occupant list, subject, groupchat both ways, private messages
  between a local and a remote occupant, a kick every occupant sees.
- TernPairGoneTest: a remote occupant whose server goes away: the next
  message of the room bounces for it and the room removes it with status
  333 (XEP-0045 §7.14, §18), which the other occupants see.
- TernPairNoDomainTest: entering a room on a domain that does not exist
  (no DNS) gets an error whose <text> says why, in words.
- TernProsodyMucTest, TernEjabberdMucTest: a Prosody (ejabberd) user in a
  Tern room, and a Tern user in a room of the peer's MUC who changes
  nickname and leaves.
"""
import os
import secrets
import shutil
import tempfile
import unittest
import xml.etree.ElementTree as ET

import federation
from dns import Dnsmasq
from federation import ENV, FedCase
from harness import Server, SlixClient, free_port
from peers import EjabberdPeer, ProsodyPeer
from pki import TestCA

NS_MUC = "http://jabber.org/protocol/muc"
NS_USER = NS_MUC + "#user"
NS_ADMIN = NS_MUC + "#admin"
NS_OWNER = NS_MUC + "#owner"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
T_FEDERATE = 30  # a new link: DNS, TCP, TLS, authentication
T_ACROSS = 15    # over an established link

MUC_A = "conference.a.test"


def muc_records():
    """The service domain of a.test is reached like a.test itself."""
    return [("SRV", "_xmpp-server._tcp." + MUC_A, "a.test", federation.PORTS["a.test"])]


def setUpModule():
    federation.set_up(prefix="tern-mucfed-", extra_records=muc_records)


def tearDownModule():
    federation.tear_down()


def codes(stanza):
    x = stanza.xml.find("{%s}x" % NS_USER)
    return set() if x is None else {int(s.get("code")) for s in x.findall("{%s}status" % NS_USER)}


def error_of(stanza):
    """(condition, text) of an error stanza (slixmpp)."""
    err = stanza.xml.find("{jabber:client}error")
    if err is None:
        return None, None
    cond = [c.tag.split("}")[1] for c in err
            if c.tag.startswith("{%s}" % NS_STANZAS) and not c.tag.endswith("}text")]
    text = err.find("{%s}text" % NS_STANZAS)
    return (cond[0] if cond else None), (text.text if text is not None else None)


class MucHelpers:
    """Joining, speaking and waiting, with slixmpp clients."""

    def logs(self):
        return "\n".join(s.log_tail(40) for s in self.servers())

    def wait(self, client, pred, what, since, timeout=T_ACROSS):
        try:
            return client.wait_stanza(pred, timeout=timeout, since=since)
        except Exception as e:  # noqa: BLE001 - add the logs to any failure
            self.fail("%s: %s\n%s" % (what, e, self.logs()))

    def join(self, client, room, nick, timeout=T_FEDERATE):
        """Enter room as nick; the self-presence (status 110); a new room is
        given the default configuration (§10.1.2)."""
        mark = client.mark()
        client.send_raw("<presence to='%s/%s'><x xmlns='%s'/></presence>" % (room, nick, NS_MUC))
        p = self.wait(client, lambda s: s.name == "presence" and
                      str(s["from"]) == "%s/%s" % (room, nick) and
                      (110 in codes(s) or s.xml.get("type") == "error"),
                      "%s enters %s" % (nick, room), mark, timeout)
        if p.xml.get("type") == "error":
            self.fail("%s enters %s: %s\n%s" % (nick, room, error_of(p), self.logs()))
        if 201 in codes(p):
            el = client.iq("<query xmlns='%s'><x xmlns='jabber:x:data' type='submit'/></query>"
                           % NS_OWNER, to=room, itype="set", timeout=T_ACROSS)
            self.assertEqual(el.get("type"), "result", ET.tostring(el).decode())
        return p

    def presence_of(self, client, room, nick, since, unavailable=False, what=None):
        def pred(s):
            return (s.name == "presence" and str(s["from"]) == "%s/%s" % (room, nick) and
                    (s.xml.get("type") == "unavailable") == unavailable)
        return self.wait(client, pred, what or "presence of %s at %s" % (nick, client.jid),
                         since)

    def say(self, sender, receivers, room, text):
        marks = [r.mark() for r in receivers]
        sender.send_message(room, text, mtype="groupchat")
        got = []
        for r, mark in zip(receivers, marks):
            got.append(self.wait(r, lambda s: s.name == "message" and s["body"] == text,
                                 "%r at %s" % (text, r.jid), mark))
        return got


class TernPairMucTest(MucHelpers, FedCase):
    a_extra = {"services": {MUC_A: {"modules": {"muc": {}}}}}
    a_users = {"alice": "alice-pw", "carol": "carol-pw"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.carol = SlixClient(cls.a, "carol", resource="r").connect()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.carol.disconnect()
        except Exception:
            pass
        super().tearDownClass()

    def servers(self):
        return (self.a, self.b)

    def test_remote_user_in_local_room(self):
        room = "team-%s@%s" % (secrets.token_hex(3), MUC_A)
        self.join(self.alice, room, "alice")
        self.alice.send_raw("<message to='%s' type='groupchat'><subject>Plans</subject></message>"
                            % room)
        self.join(self.carol, room, "carol")
        mark_a, mark_c, mark_b = self.alice.mark(), self.carol.mark(), self.bob.mark()
        self.join(self.bob, room, "bob")
        # The remote user sees the occupant list before its own presence,
        # then the subject (§7.2.3, §7.2.15); the others see it enter.
        for nick in ("alice", "carol"):
            self.presence_of(self.bob, room, nick, mark_b)
        subj = self.wait(self.bob, lambda s: s.name == "message" and
                         s.xml.find("{jabber:client}subject") is not None, "subject at bob",
                         mark_b)
        self.assertEqual(subj["subject"], "Plans")
        self.presence_of(self.alice, room, "bob", mark_a)
        self.presence_of(self.carol, room, "bob", mark_c)
        # Groupchat both ways.
        for m in self.say(self.bob, [self.alice, self.carol, self.bob], room, "hi from b.test"):
            self.assertEqual(str(m["from"]), room + "/bob")
        for m in self.say(self.alice, [self.bob], room, "welcome"):
            self.assertEqual(str(m["from"]), room + "/alice")
        # A subject change reaches the remote occupant.
        mark_b = self.bob.mark()
        self.alice.send_raw("<message to='%s' type='groupchat'><subject>New plans</subject>"
                            "</message>" % room)
        subj = self.wait(self.bob, lambda s: s.name == "message" and
                         s["subject"] == "New plans", "new subject at bob", mark_b)
        self.assertEqual(str(subj["from"]), room + "/alice")
        # Private messages between a remote and a local occupant (§7.5).
        mark_c = self.carol.mark()
        self.bob.send_message(room + "/carol", "psst carol")
        m = self.wait(self.carol, lambda s: s.name == "message" and s["body"] == "psst carol",
                      "private message at carol", mark_c)
        self.assertEqual(str(m["from"]), room + "/bob")
        mark_b = self.bob.mark()
        self.carol.send_message(room + "/bob", "psst bob")
        m = self.wait(self.bob, lambda s: s.name == "message" and s["body"] == "psst bob",
                      "private message at bob", mark_b)
        self.assertEqual(str(m["from"]), room + "/carol")
        # The owner kicks the remote occupant: everyone sees 307 (§8.2).
        mark_a, mark_c, mark_b = self.alice.mark(), self.carol.mark(), self.bob.mark()
        el = self.alice.iq("<query xmlns='%s'><item nick='bob' role='none'><reason>bye</reason>"
                           "</item></query>" % NS_ADMIN, to=room, itype="set")
        self.assertEqual(el.get("type"), "result", ET.tostring(el).decode())
        p = self.presence_of(self.bob, room, "bob", mark_b, unavailable=True)
        self.assertEqual(codes(p), {307, 110})
        for c, mark in ((self.alice, mark_a), (self.carol, mark_c)):
            p = self.presence_of(c, room, "bob", mark, unavailable=True)
            self.assertEqual(codes(p), {307})
        # Gone: its messages are refused (§7.4: not an occupant).
        mark_b = self.bob.mark()
        self.bob.send_message(room, "still here?", mtype="groupchat")
        err = self.wait(self.bob, lambda s: s.name == "message" and s["type"] == "error",
                        "error to the kicked occupant", mark_b)
        self.assertEqual(error_of(err)[0], "not-acceptable")


class TernPairGoneTest(MucHelpers, FedCase):
    """b.test stops while bob is in a room of conference.a.test."""
    a_extra = {"services": {MUC_A: {"modules": {"muc": {}}}}}
    a_users = {"alice": "alice-pw", "carol": "carol-pw", "dave": "dave-pw"}

    def servers(self):
        return (self.a, self.b)

    def test_occupant_of_a_stopped_server_leaves_with_333(self):
        carol = SlixClient(self.a, "carol", resource="r").connect()
        room = "gone-%s@%s" % (secrets.token_hex(3), MUC_A)
        self.join(self.alice, room, "alice")
        self.join(carol, room, "carol")
        self.join(self.bob, room, "bob")
        self.say(self.alice, [self.bob], room, "before")
        mark_a, mark_c = self.alice.mark(), carol.mark()
        # Gone without a word (a crash, a lost network): a shut-down server
        # would have sent bob's unavailable presence itself.
        self.b.kill()
        self.alice.send_message(room, "after the stop", mtype="groupchat")
        for c, mark in ((self.alice, mark_a), (carol, mark_c)):
            p = self.presence_of(c, room, "bob", mark, unavailable=True,
                                 what="bob's removal seen by %s" % c.jid)
            self.assertIn(333, codes(p))
        # Whoever enters now is told of alice and carol only (§7.2.3).
        dave = SlixClient(self.a, "dave", resource="r").connect()
        mark = dave.mark()
        self.join(dave, room, "dave")
        nicks = {str(s["from"]).split("/", 1)[1] for s in dave.received[mark:]
                 if s.name == "presence" and str(s["from"]).startswith(room + "/")}
        self.assertEqual(nicks, {"alice", "carol", "dave"})
        dave.disconnect()
        self.assertFalse(any(s.name == "message" and s["type"] == "error"
                             for s in self.alice.received[mark_a:]),
                         "the sender got the bounce meant for the room")
        carol.disconnect()


class TernPairNoDomainTest(MucHelpers, FedCase):
    def servers(self):
        return (self.a, self.b)

    def test_room_on_unknown_domain_says_why(self):
        room = "room@conference.nowhere.test"
        mark = self.alice.mark()
        self.alice.send_raw("<presence to='%s/alice'><x xmlns='%s'/></presence>" % (room, NS_MUC))
        p = self.wait(self.alice, lambda s: s.name == "presence" and s.xml.get("type") == "error",
                      "error on entering a room of an unknown domain", mark, T_FEDERATE)
        cond, text = error_of(p)
        self.assertEqual(cond, "remote-server-not-found")
        self.assertIsNotNone(text, ET.tostring(p.xml).decode())
        self.assertIn("conference.nowhere.test", text)
        self.assertIn("does not exist", text)
        # The same for a message.
        mark = self.alice.mark()
        self.alice.send_message(room, "anyone?", mtype="groupchat")
        m = self.wait(self.alice, lambda s: s.name == "message" and s["type"] == "error",
                      "error for a message to an unknown domain", mark, T_FEDERATE)
        cond, text = error_of(m)
        self.assertEqual(cond, "remote-server-not-found")
        self.assertIn("does not exist", text or "")


# ---- with Prosody --------------------------------------------------------

T_DOMAIN = "t.test"
P_DOMAIN = "p.test"
MUC_T = "conference." + T_DOMAIN


class TernProsodyMucTest(MucHelpers, unittest.TestCase):
    tern_ip, peer_ip = "127.0.0.31", "127.0.0.32"
    peer_class, p_domain = ProsodyPeer, P_DOMAIN

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="muc-peers-")
        cls.ca = TestCA(os.path.join(cls.dir, "ca"))
        cls.dns = Dnsmasq()
        cls.peer = cls.tern = None
        cls.clients = []
        try:
            p_muc = "conference." + cls.p_domain
            t_leaf = cls.ca.issue(T_DOMAIN, [T_DOMAIN, MUC_T])
            p_leaf = cls.ca.issue(cls.p_domain, [cls.p_domain, p_muc])
            cls.peer = cls.peer_class(cls.p_domain, cls.peer_ip, cls.dns.port, cls.ca, p_leaf,
                                      muc=p_muc, name=cls.__name__)
            s2s_port = free_port()
            users = {u: u + "-pw" for u in ("tina", "tom")}
            cls.tern = Server(name=cls.__name__, domain=T_DOMAIN, users=users, config={
                "tls": {"certificate": t_leaf.chain_path, "key": t_leaf.key_path},
                "dns": {"servers": [cls.dns.server]},
                "s2s": {"ca_file": cls.ca.cert_path, "connect_timeout": "2s"},
                "modules": {"roster": {}},
                "services": {MUC_T: {"modules": {"muc": {}}}},
            })
            cls.tern.config["listeners"].append(
                {"type": "s2s", "address": cls.tern_ip, "port": s2s_port})
            cls.dns.records = cls.peer.dns_records() + [
                ("SRV", "_xmpp-server._tcp." + T_DOMAIN, cls.tern_ip, s2s_port),
                ("SRV", "_xmpp-server._tcp." + MUC_T, cls.tern_ip, s2s_port),
                ("A", T_DOMAIN, cls.tern_ip),
            ]
            cls.dns.start()
            cls.peer.start()
            for u in ("pia", "pat"):
                cls.peer.register(u, u + "-pw")
            cls.tern.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for c in cls.clients:
                try:
                    c.disconnect()
                except Exception:
                    pass
            if cls.peer is not None:
                cls.peer.remove()
            cls.dns.remove()
            if cls.tern is not None:
                if cls.tern.proc is not None:
                    cls.tern.stop()
                cls.tern.remove()
        finally:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def servers(self):
        return (self.tern, self.peer)

    def client(self, server, user, mech):
        c = SlixClient(server, user, mech=mech)
        self.clients.append(c)
        return c.connect()

    def test_peer_user_in_tern_room(self):
        tina = self.client(self.tern, "tina", "SCRAM-SHA-256")
        pia = self.client(self.peer, "pia", "SCRAM-SHA-1")
        room = "lounge-%s@%s" % (secrets.token_hex(3), MUC_T)
        self.join(tina, room, "tina")
        tina.send_raw("<message to='%s' type='groupchat'><subject>Welcome</subject></message>"
                      % room)
        mark_p, mark_t = pia.mark(), tina.mark()
        self.join(pia, room, "pia")
        self.presence_of(pia, room, "tina", mark_p)
        subj = self.wait(pia, lambda s: s.name == "message" and s["subject"] == "Welcome",
                         "subject at the peer's user", mark_p)
        self.assertEqual(str(subj["from"]), room + "/tina")
        self.presence_of(tina, room, "pia", mark_t)
        m = self.say(pia, [tina, pia], room, "hello from the peer")[0]
        self.assertEqual(str(m["from"]), room + "/pia")
        m = self.say(tina, [pia], room, "hello from Tern")[0]
        self.assertEqual(str(m["from"]), room + "/tina")

    def test_tern_user_in_peer_room_changes_nick_and_leaves(self):
        tom = self.client(self.tern, "tom", "SCRAM-SHA-256")
        pat = self.client(self.peer, "pat", "SCRAM-SHA-1")
        room = "hall-%s@conference.%s" % (secrets.token_hex(3), self.p_domain)
        self.join(pat, room, "pat")
        self.join(tom, room, "tom")
        self.say(tom, [pat], room, "tom here")
        self.say(pat, [tom], room, "hi tom")
        # Nickname change (§7.6): 303 with the new nick, then the new presence.
        mark_t, mark_p = tom.mark(), pat.mark()
        tom.send_raw("<presence to='%s/thomas'/>" % room)
        for c, mark in ((tom, mark_t), (pat, mark_p)):
            p = self.presence_of(c, room, "tom", mark, unavailable=True)
            self.assertIn(303, codes(p))
            item = p.xml.find("{%s}x/{%s}item" % (NS_USER, NS_USER))
            self.assertEqual(item.get("nick"), "thomas")
            self.presence_of(c, room, "thomas", mark)
        m = self.say(tom, [pat], room, "renamed")[0]
        self.assertEqual(str(m["from"]), room + "/thomas")
        # Leaving (§7.14): everyone, the leaver too, gets the unavailable presence.
        mark_t, mark_p = tom.mark(), pat.mark()
        tom.send_raw("<presence to='%s/thomas' type='unavailable'/>" % room)
        p = self.presence_of(tom, room, "thomas", mark_t, unavailable=True)
        self.assertIn(110, codes(p))
        self.presence_of(pat, room, "thomas", mark_p, unavailable=True)


class TernEjabberdMucTest(TernProsodyMucTest):
    """The same with an ejabberd user and room."""
    tern_ip, peer_ip = "127.0.0.33", "127.0.0.34"
    peer_class, p_domain = EjabberdPeer, "e.test"


if __name__ == "__main__":
    unittest.main()
