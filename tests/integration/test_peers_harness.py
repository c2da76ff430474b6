"""The peer servers of peers.py federate with each other: Prosody <-> ejabberd.

This proves the harness the Tern federation tests stand on (test CA, private
DNS, both peers' configurations, the scenarios of s2s_scenarios.py) without
Tern: if it fails, the Tern <-> peer tests cannot mean anything.  Users on
each server exchange messages, subscribe to each other's presence, meet in a
room of each server's MUC service and fetch each other's vCard:

- with certificates from the test CA, which both trust (SASL EXTERNAL);
- with certificates nobody trusts, where both allow dialback for the other.
"""
import os
import re
import shutil
import tempfile
import time
import unittest

from dns import Dnsmasq
from peers import EjabberdPeer, ProsodyPeer
from pki import TestCA, self_signed
from s2s_scenarios import FederationScenarios, Side, register_users

P_DOMAIN, E_DOMAIN = "p.test", "e.test"


class _PeerPair(FederationScenarios, unittest.TestCase):
    """Prosody (side A) and ejabberd (side B), each with a MUC service."""

    trusted = True
    p_ip, e_ip = "127.0.0.12", "127.0.0.13"

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="peers-harness-")
        cls.ca = TestCA(os.path.join(cls.dir, "ca"))
        cls.dns = Dnsmasq()
        cls.all_servers = []
        try:
            p_names = [P_DOMAIN, "conference." + P_DOMAIN]
            e_names = [E_DOMAIN, "conference." + E_DOMAIN]
            if cls.trusted:
                p_leaf, e_leaf, insecure = cls.ca.issue(P_DOMAIN, p_names), \
                    cls.ca.issue(E_DOMAIN, e_names), ()
            else:
                p_leaf = self_signed(cls.dir, P_DOMAIN, p_names)
                e_leaf = self_signed(cls.dir, E_DOMAIN, e_names)
                insecure = e_names
            cls.prosody = ProsodyPeer(P_DOMAIN, cls.p_ip, cls.dns.port, cls.ca, p_leaf,
                                      muc="conference." + P_DOMAIN, insecure_domains=insecure,
                                      name=cls.__name__)
            cls.ejabberd = EjabberdPeer(E_DOMAIN, cls.e_ip, cls.dns.port, cls.ca, e_leaf,
                                        muc="conference." + E_DOMAIN, name=cls.__name__)
            cls.all_servers = [cls.prosody, cls.ejabberd]
            cls.dns.records = cls.prosody.dns_records() + cls.ejabberd.dns_records()
            cls.dns.start()
            register_users(cls.prosody)
            for p in cls.all_servers:
                p.start()
            register_users(cls.ejabberd)
            cls.side_a = Side(cls.prosody, "SCRAM-SHA-1", cls.prosody.muc)
            cls.side_b = Side(cls.ejabberd, "SCRAM-SHA-1", cls.ejabberd.muc)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for p in cls.all_servers:
            p.remove()
        cls.dns.remove()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_groupchat_in_room_of_a(self):
        self._groupchat(self.side_b, self.side_a)

    def test_authentication_method(self):
        """The links are authenticated the way the class means (ejabberd's log
        says how).  Without trusted certificates: dialback both ways.  With
        them: ejabberd -> Prosody with EXTERNAL, but Prosody -> ejabberd with
        dialback, because ejabberd 23.01 refuses EXTERNAL for a certificate
        without the clientAuth purpose ("unsupported certificate purpose")
        and Prosody falls back to dialback on the same connection."""
        self.test_first_message_both_ways()
        log = self.ejabberd.log_text()
        found = re.findall(r"Accepted (inbound|outbound) s2s (\S+) authentication (\S+ -> \S+)",
                           log)
        out_method = "EXTERNAL" if self.trusted else "dialback"
        self.assertIn(("outbound", out_method, "%s -> %s" % (E_DOMAIN, P_DOMAIN)), found)
        self.assertIn(("inbound", "dialback", "%s -> %s" % (P_DOMAIN, E_DOMAIN)), found)
        if self.trusted:
            self.assertIn("Failed inbound s2s EXTERNAL authentication %s -> %s" %
                          (P_DOMAIN, E_DOMAIN), log)
            self.assertIn("unsupported certificate purpose", log)


class ProsodyEjabberdExternalTest(_PeerPair):
    trusted = True

    def test_peer_freeze_and_restart(self):
        """freeze() holds a peer's traffic until thaw(); restart() brings it
        back with its accounts, and the other peer reaches it again."""
        a = self.client(self.side_a, "ann")
        b = self.client(self.side_b, "bea")
        ja, jb = self.bare(self.side_a, "ann"), self.bare(self.side_b, "bea")
        self.send_and_expect(a, b, jb, "before", timeout=30)
        self.prosody.freeze()
        try:
            mark = a.mark()
            b.send_message(ja, "while frozen")
            time.sleep(1.0)
            self.assertEqual(a.received_since(mark, ("message",)), [])
        finally:
            self.prosody.thaw()
        a.wait_message("while frozen", since=mark)
        self.ejabberd.restart()
        b = self.client(self.side_b, "bea")
        self.send_and_expect(a, b, jb, "after ejabberd restart", timeout=30)
        self.send_and_expect(b, a, ja, "back from ejabberd", timeout=30)


class ProsodyEjabberdDialbackTest(_PeerPair):
    trusted = False
    p_ip, e_ip = "127.0.0.14", "127.0.0.15"


del _PeerPair  # only its subclasses run
