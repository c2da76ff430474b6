"""Federation between Tern and real servers: Prosody 0.12 and ejabberd 23.01.

Each class starts a private DNS (dnsmasq), a test CA, one peer (peers.py) and
one ternd serving t.test with an s2s listener on its own loopback address,
then runs the scenarios of s2s_scenarios.py with Tern as side A and the peer
as side B: first message both ways, messages both ways in order, mutual
subscription with presence, a Tern user in a room of the peer's MUC service
with a peer user, vCard fetched both ways.

- *ExternalTest: every certificate comes from the test CA (serverAuth only)
  and both servers trust it: SASL EXTERNAL (ejabberd 23.01 refuses EXTERNAL
  for a serverAuth-only certificate, so Tern -> ejabberd must fall back to
  dialback on the same connection).
- *DialbackTest: neither trusts the other's certificate; Tern allows dialback
  for the peer's domains (s2s.dialback_only) and the peer for t.test.

The peer harness itself is proven by test_peers_harness.py (Prosody <->
ejabberd with the same settings).
"""
import os
import shutil
import tempfile
import unittest

from dns import Dnsmasq
from harness import Server, free_port
from peers import EjabberdPeer, ProsodyPeer
from pki import TestCA, self_signed
from s2s_scenarios import USERS, FederationScenarios, Side, register_users

T_DOMAIN = "t.test"


class _TernPeer(FederationScenarios, unittest.TestCase):
    """Tern (side A, t.test) and one peer (side B) with a MUC service."""

    peer_class = None
    peer_domain = None
    trusted = True
    tern_ip, peer_ip = "127.0.0.21", "127.0.0.22"

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="s2s-peers-")
        cls.ca = TestCA(os.path.join(cls.dir, "ca"))
        cls.dns = Dnsmasq()
        cls.peer = cls.tern = None
        cls.all_servers = []
        try:
            muc = "conference." + cls.peer_domain
            peer_names = [cls.peer_domain, muc]
            if cls.trusted:
                t_leaf = cls.ca.issue(T_DOMAIN)
                p_leaf = cls.ca.issue(cls.peer_domain, peer_names)
                insecure, s2s = (), {"ca_file": cls.ca.cert_path}
            else:
                t_leaf = self_signed(cls.dir, T_DOMAIN)
                p_leaf = self_signed(cls.dir, cls.peer_domain, peer_names)
                insecure = [T_DOMAIN]
                s2s = {"ca_file": cls.ca.cert_path, "dialback_only": peer_names}
            cls.peer = cls.peer_class(cls.peer_domain, cls.peer_ip, cls.dns.port, cls.ca, p_leaf,
                                      muc=muc, insecure_domains=insecure, name=cls.__name__)
            cls.all_servers = [cls.peer]
            s2s_port = free_port()
            cls.tern = Server(name=cls.__name__, domain=T_DOMAIN, users=USERS, config={
                "tls": {"certificate": t_leaf.chain_path, "key": t_leaf.key_path},
                "dns": {"servers": [cls.dns.server]},
                "s2s": s2s,
                "modules": {"roster": {}, "vcard": {}},
            })
            cls.tern.config["listeners"].append(
                {"type": "s2s", "address": cls.tern_ip, "port": s2s_port})
            cls.all_servers.append(cls.tern)
            cls.dns.records = cls.peer.dns_records() + [
                ("SRV", "_xmpp-server._tcp." + T_DOMAIN, cls.tern_ip, s2s_port),
                ("A", T_DOMAIN, cls.tern_ip),
            ]
            cls.dns.start()
            cls.peer.start()
            register_users(cls.peer)
            cls.tern.start()
            cls.side_a = Side(cls.tern, "SCRAM-SHA-256")
            cls.side_b = Side(cls.peer, "SCRAM-SHA-1", muc)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.peer is not None:
                cls.peer.remove()
            cls.dns.remove()
            if cls.tern is not None and cls.tern.proc is not None:
                cls.tern.stop()  # fails on a bad exit or a sanitizer report
                cls.tern.remove()
        finally:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def tearDown(self):
        super().tearDown()
        if not self.tern.running():
            self.fail("ternd died during the test\n" + self.tern.log_tail())


class TernProsodyExternalTest(_TernPeer):
    peer_class, peer_domain = ProsodyPeer, "p.test"


class TernEjabberdExternalTest(_TernPeer):
    peer_class, peer_domain = EjabberdPeer, "e.test"
    tern_ip, peer_ip = "127.0.0.23", "127.0.0.24"


class TernProsodyDialbackTest(_TernPeer):
    peer_class, peer_domain = ProsodyPeer, "p.test"
    trusted = False
    tern_ip, peer_ip = "127.0.0.25", "127.0.0.26"


class TernEjabberdDialbackTest(_TernPeer):
    peer_class, peer_domain = EjabberdPeer, "e.test"
    trusted = False
    tern_ip, peer_ip = "127.0.0.27", "127.0.0.28"


del _TernPeer  # only its subclasses run
