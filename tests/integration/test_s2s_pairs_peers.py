"""Domain pairs with Prosody 0.12 and ejabberd 23.01 (peers.py): Tern
serves t.test and a second host x.t.test; a user of each writes to a user
of the peer.

- Prosody offers dialback: the pair x.t.test -> p.test goes on the stream
  t.test opened (a db:result on it, XEP-0220 piggybacking): one outgoing
  stream carries both pairs, and both messages arrive.
- Prosody without dialback (SASL EXTERNAL only): x.t.test gets a stream of
  its own.
- ejabberd (dialback after it refuses EXTERNAL): one stream, both pairs.
"""
import os
import shutil
import tempfile
import time
import unittest

from dns import Dnsmasq
from harness import Server, SlixClient, free_port
from peers import EjabberdPeer, ProsodyPeer
from pki import TestCA
from s2s_scenarios import USERS, register_users

T_DOMAIN, X_DOMAIN, P_DOMAIN = "t.test", "x.t.test", "p.test"


class HostClient(SlixClient):
    def __init__(self, server, user, domain, password):
        self._domain = domain
        super().__init__(server, user, password=password, resource="r")

    @property
    def domain(self):
        return self._domain


class _TwoHostsToPeer:
    dialback = True
    peer_class = ProsodyPeer
    tern_ip, peer_ip = "127.0.0.23", "127.0.0.24"

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="s2s-pairs-peers-")
        cls.ca = TestCA(os.path.join(cls.dir, "ca"))
        cls.dns = Dnsmasq()
        cls.peer = cls.tern = None
        try:
            t_leaf = cls.ca.issue(T_DOMAIN, [T_DOMAIN, X_DOMAIN])
            p_leaf = cls.ca.issue(P_DOMAIN, [P_DOMAIN])
            cls.peer = cls.peer_class(P_DOMAIN, cls.peer_ip, cls.dns.port, cls.ca, p_leaf,
                                   dialback=cls.dialback, name=cls.__name__)
            s2s_port = free_port()
            cls.tern = Server(name=cls.__name__, domain=T_DOMAIN, users={"ann": "ann-pw"},
                              config={
                                  "tls": {"certificate": t_leaf.chain_path,
                                          "key": t_leaf.key_path},
                                  "dns": {"servers": [cls.dns.server]},
                                  "s2s": {"ca_file": cls.ca.cert_path,
                                          "connect_timeout": "3s"},
                                  "hosts": {X_DOMAIN: {}},
                              })
            cls.tern.config["listeners"].append(
                {"type": "s2s", "address": cls.tern_ip, "port": s2s_port})
            cls.dns.records = cls.peer.dns_records() + [
                ("SRV", "_xmpp-server._tcp." + d, cls.tern_ip, s2s_port)
                for d in (T_DOMAIN, X_DOMAIN)] + [
                ("A", d, cls.tern_ip) for d in (T_DOMAIN, X_DOMAIN)]
            cls.dns.start()
            cls.peer.start()
            register_users(cls.peer)
            cls.tern.start()
            cls.tern.ternctl_ok("adduser", "xan@" + X_DOMAIN, "--password-stdin",
                                input="xan-pw\n")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.peer is not None:
                cls.peer.remove()
            cls.dns.remove()
            if cls.tern is not None:
                if cls.tern.proc is not None:
                    cls.tern.stop()
                cls.tern.remove()
        finally:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def out_lines(self):
        return [l for l in self.tern.ternctl_ok("s2s").stdout.splitlines()
                if l.startswith("out")]

    def test_two_hosts_write_to_peer(self):
        ann = SlixClient(self.tern, "ann", resource="r").connect()
        xan = HostClient(self.tern, "xan", X_DOMAIN, "xan-pw").connect()
        bea = SlixClient(self.peer, "bea", password=USERS["bea"], resource="r",
                         mech="SCRAM-SHA-1").connect()
        try:
            for sender, body in ((ann, "from t.test"), (xan, "from x.t.test")):
                mark = bea.mark()
                sender.send_message("bea@" + P_DOMAIN, body)
                msg = bea.wait_message(body, since=mark, timeout=10)
                self.assertEqual(str(msg["from"]).split("@")[1].split("/")[0],
                                 sender.domain)
            mark = xan.mark()
            bea.send_message("xan@%s/r" % X_DOMAIN, "back to x")
            xan.wait_message("back to x", since=mark, timeout=10)
            self.check_streams(self.out_lines())
        finally:
            for c in (ann, xan, bea):
                c.disconnect()


class PiggybackOnProsodyTest(_TwoHostsToPeer, unittest.TestCase):
    dialback = True

    def check_streams(self, out):
        mine = [l for l in out if l.split()[1] == P_DOMAIN]
        self.assertEqual(len(mine), 1, out)
        self.assertIn("pairs: t.test->p.test x.t.test->p.test", mine[0])


class ExternalOnlyProsodyTest(_TwoHostsToPeer, unittest.TestCase):
    dialback = False

    def check_streams(self, out):
        mine = sorted(l.split()[2] for l in out if l.split()[1] == P_DOMAIN)
        self.assertEqual(mine, [T_DOMAIN, X_DOMAIN], out)
        self.assertTrue(all("EXTERNAL" in l for l in out), out)


class PiggybackOnEjabberdTest(_TwoHostsToPeer, unittest.TestCase):
    """ejabberd 23.01 refuses EXTERNAL for our serverAuth-only certificate:
    dialback on the same stream, then the second pair rides on it too."""
    peer_class = EjabberdPeer
    tern_ip, peer_ip = "127.0.0.25", "127.0.0.26"

    def check_streams(self, out):
        mine = [l for l in out if l.split()[1] == P_DOMAIN]
        self.assertEqual(len(mine), 1, out)
        self.assertIn("pairs: t.test->p.test x.t.test->p.test", mine[0])


if __name__ == "__main__":
    unittest.main()
