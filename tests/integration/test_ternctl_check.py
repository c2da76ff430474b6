"""`ternctl check [HOST]`: DNS records, where they point, the certificate.

A private DNS server (dns.py) serves the records of example.test; the
host's certificate comes from a test CA (pki.py) that ternctl is told to
trust through SSL_CERT_FILE (OpenSSL's default trust store).  With correct
records and a good certificate the check passes and says where each record
leads; with broken records or a bad certificate it exits 1 and names each
problem with what to fix."""
import os
import shutil
import subprocess
import tempfile
import unittest

from dns import Dnsmasq
from harness import TERNCTL, Server, check_sanitizer_text, sanitizer_env
from pki import TestCA, self_signed

HOST = "example.test"


class TernctlCheckTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="tern-check-")
        cls.ca = TestCA(os.path.join(cls.dir, "pki"))
        cls.good = cls.ca.issue(HOST, [HOST, "*." + HOST])
        cls.dns = Dnsmasq([]).start()

    @classmethod
    def tearDownClass(cls):
        cls.dns.remove()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def make_server(self, leaf, s2s=False):
        config = {
            "dns": {"servers": [self.dns.server]},
            "tls": {"certificate": leaf.chain_path, "key": leaf.key_path},
            "hosts": {HOST: {}},
            "services": {"conference." + HOST: {}},
        }
        srv = Server(config=config)
        self.addCleanup(srv.remove)
        if s2s:
            srv.config["listeners"].append({"type": "s2s", "address": "127.0.0.1", "port": 5269})
        srv.write_config()
        return srv

    def check(self, srv, host=HOST):
        env = dict(sanitizer_env(), SSL_CERT_FILE=self.ca.cert_path)
        r = subprocess.run([TERNCTL, "-c", srv.conf_path, "check", host], capture_output=True,
                           text=True, timeout=60, env=env)
        check_sanitizer_text(r.stderr, "ternctl check")
        return r

    def good_records(self, srv):
        return [
            ("SRV", "_xmpp-client._tcp." + HOST, "xmpp." + HOST, srv.c2s_port),
            ("SRV", "_xmpps-client._tcp." + HOST, "xmpp." + HOST, srv.tls_port),
            ("A", "xmpp." + HOST, "127.0.0.1"),
            ("A", HOST, "127.0.0.1"),
        ]

    def test_correct_records_and_certificate_pass(self):
        srv = self.make_server(self.good)
        self.dns.set_records(self.good_records(srv))
        r = self.check(srv)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = r.stdout
        self.assertIn("_xmpp-client._tcp.%s: xmpp.%s port %d (127.0.0.1) reaches a c2s listener"
                      % (HOST, HOST, srv.c2s_port), out)
        self.assertIn("_xmpps-client._tcp.%s: xmpp.%s port %d (127.0.0.1) reaches a c2s_tls "
                      "listener" % (HOST, HOST, srv.tls_port), out)
        self.assertIn("names %s." % HOST, out)
        self.assertIn("names conference.%s." % HOST, out)  # the service domain, by wildcard
        self.assertIn("chains to a CA this machine trusts", out)
        self.assertIn("federation is off", out)
        self.assertIn("no problems found", out)
        self.assertNotIn("PROBLEM", out)

    def test_broken_records_are_each_reported(self):
        srv = self.make_server(self.good)
        wrong_port = srv.c2s_port + 1 if srv.c2s_port + 1 not in (srv.tls_port,) else srv.c2s_port + 2
        self.dns.set_records([
            ("SRV", "_xmpp-client._tcp." + HOST, "xmpp." + HOST, wrong_port),
            ("SRV", "_xmpps-client._tcp." + HOST, "ghost." + HOST, srv.tls_port),
            ("A", "xmpp." + HOST, "127.0.0.1"),
        ])
        r = self.check(srv)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        out = r.stdout
        self.assertIn("PROBLEM  _xmpp-client._tcp.%s: xmpp.%s port %d (127.0.0.1) has no c2s "
                      "listener" % (HOST, HOST, wrong_port), out)
        self.assertIn("PROBLEM  _xmpps-client._tcp.%s points at ghost.%s port %d, but ghost.%s "
                      "has no address" % (HOST, HOST, srv.tls_port, HOST), out)
        self.assertIn("2 problems found", out)

    def test_no_records_and_no_address(self):
        srv = self.make_server(self.good)
        self.dns.set_records([("A", "other." + HOST, "127.0.0.1")])
        r = self.check(srv)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("no _xmpp-client._tcp or _xmpps-client._tcp records", r.stdout)
        self.assertIn("PROBLEM  %s (no SRV) points at %s port 5222, but %s has no address"
                      % (HOST, HOST, HOST), r.stdout)

    def test_service_refused_by_dot_target(self):
        srv = self.make_server(self.good)
        self.dns.set_records(self.good_records(srv)[2:] + [
            ("NOSRV", "_xmpp-client._tcp." + HOST), ("NOSRV", "_xmpps-client._tcp." + HOST)])
        r = self.check(srv)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("PROBLEM  _xmpp-client._tcp.%s: the domain says it offers no such service"
                      % HOST, r.stdout)

    def test_s2s_listener_without_server_records_is_noted(self):
        srv = self.make_server(self.good, s2s=True)
        self.dns.set_records(self.good_records(srv))
        r = self.check(srv)
        self.assertIn("_xmpp-server._tcp or _xmpps-server._tcp records: other servers try %s "
                      "port 5269" % HOST, r.stdout)
        self.assertIn("(no SRV): %s port 5269 (127.0.0.1) reaches a s2s listener here" % HOST,
                      r.stdout)

    def test_bad_certificates(self):
        cases = [
            (self.ca.issue("wrong.test", stem="wrong"), "does not name %s" % HOST),
            (self.ca.issue(HOST, [HOST, "*." + HOST], days_valid=(-10, -1), stem="expired"),
             "has expired"),
            (self.ca.issue(HOST, [HOST, "*." + HOST], days_valid=(-10, 5), stem="soon"),
             "expires in"),
            (self_signed(self.dir, HOST, [HOST, "*." + HOST]), "does not chain to a trusted CA"),
        ]
        for leaf, problem in cases:
            with self.subTest(problem=problem):
                srv = self.make_server(leaf)
                self.dns.set_records(self.good_records(srv))
                r = self.check(srv)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertRegex(r.stdout, r"PROBLEM  the certificate \S+ " + problem)

    def test_unknown_host_is_refused(self):
        srv = self.make_server(self.good)
        r = self.check(srv, "nowhere.test")
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a host or service domain", r.stderr)


if __name__ == "__main__":
    unittest.main()
