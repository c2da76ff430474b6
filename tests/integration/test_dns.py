"""DNS for the server: the `dns` section and the test DNS server (dns.py).

The Dnsmasq helper serves the records the federation tests build on (SRV
records of both kinds, a "." target, A and AAAA, NXDOMAIN for unknown
names).  ternd starts with `dns.servers` pointing at it; `ternd
--check-config` and `ternctl check-config` accept IP, IP:PORT and
[IPv6]:PORT and refuse anything else with file and line; a reload that
changes the servers is applied (and logged), one with a bad server is
refused as a whole and leaves the server running as before."""
import os
import shutil
import subprocess

from dns import Dnsmasq
from harness import (DOMAIN, NS_PING, TERND, ServerTestCase, deep_merge, q, sanitizer_env)

RECORDS = [
    ("SRV", "_xmpp-server._tcp.example.test", "xmpp.example.test", 5269, 10, 5),
    ("SRV", "_xmpps-server._tcp.example.test", "xmpp.example.test", 5270, 10, 5),
    ("SRV", "_xmpp-server._tcp.nope.test", "."),
    ("A", "xmpp.example.test", "127.0.0.1"),
    ("AAAA", "xmpp.example.test", "::1"),
    ("address", "wild.test", "127.0.0.2"),
]


class DnsTests(ServerTestCase):
    dns = None

    @classmethod
    def setUpClass(cls):
        cls.dns = Dnsmasq(RECORDS, ttl=30).start()
        cls.server_kwargs = dict(users={"alice": "alice-pw"},
                                 config={"dns": {"servers": [cls.dns.server]}})
        try:
            super().setUpClass()
        except Exception:
            cls.dns.remove()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.dns.remove()

    def test_dnsmasq_serves_the_records(self):
        rcode, answers = self.dns.query("_xmpp-server._tcp.example.test", "SRV")
        self.assertEqual(rcode, "NOERROR")
        self.assertEqual([(a[0], a[1], a[2]) for a in answers],
                         [("SRV", 30, (10, 5, 5269, "xmpp.example.test"))])
        rcode, answers = self.dns.query("_xmpps-server._tcp.example.test", "SRV")
        self.assertEqual(answers[0][2], (10, 5, 5270, "xmpp.example.test"))
        rcode, answers = self.dns.query("_xmpp-server._tcp.nope.test", "SRV")
        self.assertEqual(rcode, "NOERROR")
        self.assertEqual(answers[0][2][3], ".")
        self.assertEqual(self.dns.query("xmpp.example.test", "A")[1][0][2], "127.0.0.1")
        self.assertEqual(self.dns.query("xmpp.example.test", "AAAA")[1][0][2], "::1")
        self.assertEqual(self.dns.query("a.b.wild.test", "A")[1][0][2], "127.0.0.2")
        self.assertEqual(self.dns.query("nowhere.test", "A"), ("NXDOMAIN", []))

    def check_config(self, extra, tool="ternd"):
        """--check-config (ternd) or check-config (ternctl) on the server's
        configuration with `extra` merged in."""
        path = os.path.join(self.server.dir, "check.yml")
        saved = self.server.config
        try:
            self.server.write_config(deep_merge(saved, extra))
            shutil.copy(self.server.conf_path, path)
        finally:
            self.server.write_config(saved)
        if tool == "ternctl":
            return self.server.ternctl("check-config", config=path)
        return subprocess.run([TERND, "--check-config", "-c", path], capture_output=True,
                              text=True, timeout=60, env=sanitizer_env())

    def test_check_config_validates_dns_servers(self):
        for tool in ("ternd", "ternctl"):
            with self.subTest(tool=tool):
                good = {"dns": {"servers": ["192.0.2.53", "127.0.0.1:5353",
                                            "[2001:db8::53]:53", "::1"]}}
                r = self.check_config(good, tool)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                r = self.check_config({"dns": {"servers": []}}, tool)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                r = self.check_config({"dns": {"servers": ["dns.example.org"]}}, tool)
                self.assertNotEqual(r.returncode, 0)
                self.assertRegex(r.stdout + r.stderr,
                                 r"check\.yml:\d+: section 'dns': server 'dns.example.org' "
                                 r"must be an IP address, IP:PORT or \[IPv6\]:PORT")
                r = self.check_config({"dns": {"servers": ["127.0.0.1:0"]}}, tool)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("server '127.0.0.1:0'", r.stdout + r.stderr)
                r = self.check_config({"dns": {"server": "127.0.0.1"}}, tool)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("section 'dns': unknown option 'server' (known: servers)",
                              r.stdout + r.stderr)

    def ping_ok(self, client):
        got = client.iq('<ping xmlns="%s"/>' % NS_PING, to=DOMAIN)
        self.assertEqual(got.get("type"), "result")

    def test_reload_with_other_dns_servers(self):
        good = self.server.config
        alice = self.raw()
        alice.login("alice", "alice-pw")
        try:
            # Other servers: applied (logged), sessions untouched.
            other = deep_merge(good, {"dns": {"servers": [self.dns.server, "[::1]:53"]}})
            self.server.write_config(other)
            self.server.ternctl_ok("reload")
            self.assertEqual(self.server.log_text().count("DNS servers changed"), 1)
            self.ping_ok(alice)
            # The same servers again: nothing to change.
            self.server.ternctl_ok("reload")
            self.assertEqual(self.server.log_text().count("DNS servers changed"), 1)
            # A bad server: the whole reload is refused.
            self.server.write_config(deep_merge(good, {"dns": {"servers": ["resolver"]}}))
            r = self.server.ternctl("reload")
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("server 'resolver' must be an IP address", r.stdout + r.stderr)
            self.ping_ok(alice)
        finally:
            self.server.write_config(good)
            self.server.ternctl_ok("reload")
        self.assertEqual(self.server.log_text().count("DNS servers changed"), 2)
        self.ping_ok(alice)
