"""The peer servers of peers.py federate with each other: Prosody <-> ejabberd.

This proves the harness the Tern federation tests stand on (test CA, private
DNS, both peers' configurations) without Tern: if it fails, the Tern <-> peer
tests cannot mean anything.  A user on each server sends a message to the
other, and both messages arrive.
"""
import os
import shutil
import tempfile
import unittest

from dns import Dnsmasq
from harness import SlixClient
from peers import EjabberdPeer, ProsodyPeer
from pki import TestCA

P_DOMAIN, P_IP = "p.test", "127.0.0.12"
E_DOMAIN, E_IP = "e.test", "127.0.0.13"
T_FEDERATE = 30  # the first message opens the s2s connections (DNS, TLS, auth both ways)


class ProsodyEjabberdTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="peers-harness-")
        cls.ca = TestCA(os.path.join(cls.dir, "ca"))
        cls.dns = Dnsmasq()
        cls.peers = []
        try:
            cls.prosody = ProsodyPeer(P_DOMAIN, P_IP, cls.dns.port, cls.ca,
                                      cls.ca.issue(P_DOMAIN), name="harness")
            cls.ejabberd = EjabberdPeer(E_DOMAIN, E_IP, cls.dns.port, cls.ca,
                                        cls.ca.issue(E_DOMAIN), name="harness")
            cls.peers = [cls.prosody, cls.ejabberd]
            cls.dns.records = cls.prosody.dns_records() + cls.ejabberd.dns_records()
            cls.dns.start()
            cls.prosody.register("alice", "alice-pw")
            for p in cls.peers:
                p.start()
            cls.ejabberd.register("bob", "bob-pw")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for p in cls.peers:
            p.stop()
        cls.dns.remove()
        shutil.rmtree(cls.dir, ignore_errors=True)
        for p in cls.peers:
            p.remove()

    def setUp(self):
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.disconnect()

    def client(self, peer, user):
        c = SlixClient(peer, user, mech="SCRAM-SHA-1")
        self.clients.append(c)
        return c.connect()

    def logs(self):
        return "\n".join(p.log_tail(40) for p in self.peers) + "\n---- dnsmasq ----\n" + \
            self.dns.log()[-3000:]

    def test_messages_both_ways(self):
        alice = self.client(self.prosody, "alice")
        bob = self.client(self.ejabberd, "bob")
        alice.send_message("bob@" + E_DOMAIN, "hello from prosody")
        try:
            m = bob.wait_message("hello from prosody", timeout=T_FEDERATE)
            self.assertEqual(m["from"].bare, "alice@" + P_DOMAIN)
            bob.send_message("alice@" + P_DOMAIN, "hello from ejabberd")
            m = alice.wait_message("hello from ejabberd", timeout=T_FEDERATE)
            self.assertEqual(m["from"].bare, "bob@" + E_DOMAIN)
        except Exception as e:
            raise AssertionError("%s\n%s" % (e, self.logs())) from e
        for c in (alice, bob):
            errors = [s for s in c.received if s["type"] == "error"]
            self.assertEqual(errors, [], "error stanzas received")
