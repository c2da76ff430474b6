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
import re
import shutil
import tempfile
import time
import unittest

from dns import Dnsmasq
from harness import Server, free_port
from peers import EjabberdPeer, ProsodyPeer
from pki import TestCA, self_signed
from s2s_scenarios import USERS, FederationScenarios, Side, _error_of, register_users

T_DOMAIN = "t.test"
CONNECT_TIMEOUT = 2.0  # s2s.connect_timeout given to Tern


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
            s2s["connect_timeout"] = "%dms" % (CONNECT_TIMEOUT * 1000)
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
            if cls.tern is not None:
                if cls.tern.proc is not None:
                    cls.tern.stop()  # fails on a bad exit or a sanitizer report
                cls.tern.remove()
        finally:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def tearDown(self):
        super().tearDown()
        if not self.tern.running():
            self.fail("ternd died during the test\n" + self.tern.log_tail())

    def test_authentication_method(self):
        """The links authenticated the way the class means, as the peer's log
        tells.  With trusted certificates: EXTERNAL, except Tern -> ejabberd,
        which must fall back to dialback when ejabberd 23.01 refuses EXTERNAL
        ("unsupported certificate purpose" for a serverAuth-only
        certificate).  Without: dialback both ways."""
        self.test_first_message_both_ways()
        log = self.peer.log_text()
        t, p = T_DOMAIN, self.peer_domain
        why = "\n" + self.logs()
        if self.peer_class is EjabberdPeer:
            found = re.findall(r"Accepted (inbound|outbound) s2s (\S+) authentication "
                               r"(\S+ -> \S+)", log)
            out = "EXTERNAL" if self.trusted else "dialback"
            self.assertIn(("outbound", out, "%s -> %s" % (p, t)), found, why)
            self.assertIn(("inbound", "dialback", "%s -> %s" % (t, p)), found, why)
        elif self.trusted:
            self.assertIn("Accepting SASL EXTERNAL identity from " + t, log, why)
            self.assertIn("SASL EXTERNAL with %s succeeded" % t, log, why)
        else:
            self.assertNotIn("Accepting SASL EXTERNAL identity from " + t, log, why)
            self.assertIn("connection %s->%s is now authenticated for %s" % (t, p, t), log, why)
            self.assertIn("sent dialback key on outgoing s2s stream", log, why)


class _Faults:
    """The peer stops, freezes and comes back (issue: federation faults).
    Each test ends with the peer running and its users able to log in."""

    def _error_within(self, client, since, low, high, what):
        """The first error message at client after `since`: its condition,
        and the seconds it took from now (between low and high)."""
        start = time.monotonic()
        deadline = start + high
        while time.monotonic() < deadline:
            errors = [s for s in client.received[since:] if s.name == "message" and
                      s["type"] == "error"]
            if errors:
                took = time.monotonic() - start
                self.assertGreaterEqual(took, low, "%s: the error came too soon (%.1fs)" %
                                        (what, took))
                return _error_of(errors[0]), took
            time.sleep(0.05)
        self.fail("%s: no error within %ss\n%s" % (what, high, self.logs()))

    def test_fault_peer_stopped_then_restarted(self):
        """Stopped: the sender gets remote-server-not-found at once.
        Restarted: the next message goes through within a second (plus a
        loaded machine's margin)."""
        a = self.client(self.side_a, "ann")
        b = self.client(self.side_b, "bea")
        jb = self.bare(self.side_b, "bea")
        self.send_and_expect(a, b, jb, "before the stop", timeout=30)
        self.peer.stop()
        mark = a.mark()
        a.send_message(jb, "while stopped")
        cond, took = self._error_within(a, mark, 0, 5, "message to a stopped peer")
        self.assertTrue(cond.startswith("remote-server-not-found"), cond)
        self.assertLess(took, 2.0, "remote-server-not-found took %.1fs" % took)
        self.peer.start()
        b = self.client(self.side_b, "bea")
        start = time.monotonic()
        self.send_and_expect(a, b, jb, "after the restart", timeout=10)
        took = time.monotonic() - start
        self.assertLess(took, 3.0, "the first message after the restart took %.1fs" % took)
        self.send_and_expect(b, a, self.bare(self.side_a, "ann"), "back", timeout=10)

    def test_fault_peer_frozen(self):
        """A frozen peer (SIGSTOP: it accepts TCP, answers nothing): what
        waits for it bounces with remote-server-timeout after
        s2s.connect_timeout; once thawed and restarted it is reachable again."""
        self.peer.restart()  # no link left from an earlier test
        a = self.client(self.side_a, "cat")
        jb = self.bare(self.side_b, "dan")
        self.peer.freeze()
        try:
            mark = a.mark()
            a.send_message(jb, "while frozen")
            cond, took = self._error_within(a, mark, CONNECT_TIMEOUT * 0.75,
                                            CONNECT_TIMEOUT + 8, "message to a frozen peer")
            self.assertTrue(cond.startswith("remote-server-timeout"), cond)
        finally:
            self.peer.thaw()
        self.peer.restart()
        b = self.client(self.side_b, "dan")
        self.send_and_expect(a, b, jb, "after the thaw", timeout=15)


class TernProsodyExternalTest(_Faults, _TernPeer):
    peer_class, peer_domain = ProsodyPeer, "p.test"


class TernEjabberdExternalTest(_Faults, _TernPeer):
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
