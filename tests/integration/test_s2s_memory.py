"""Memory of idle server-to-server links (doc/performance.md): a.test
(127.0.0.2) reaches N remote domains h1.m.test .. hN.m.test, all hosts of
one server B (127.0.0.3, SRV records of each naming b.test), with SASL
EXTERNAL and XEP-0288 bidi: N streams, each outgoing on A and incoming on B.
Once they are idle (the transport frees the TLS buffers of a connection
quiet for a second, as for clients) the growth of each process's RSS over
N is the memory of one idle link.

The figure is printed; with a build without sanitizers (whose allocator
keeps freed memory) it must stay under 64 KiB per link on each side (about
50 KiB measured; TLS buffers kept by idle links would add 33 KiB).
Set TERN_S2S_LINKS for another N (default 50; doc/performance.md used 100).
"""
import os
import subprocess
import time
import unittest

from federation import ENV, IPS, PORTS, base_records
from harness import TERND, SlixClient
from federation import FedServer, leaf
from test_s2s import setUpModule as s2s_setup, tearDownModule as s2s_teardown

N = int(os.environ.get("TERN_S2S_LINKS", "50"))
DOMAINS = ["h%d.m.test" % i for i in range(1, N + 1)]


def setUpModule():
    s2s_setup()
    records = base_records()
    for d in DOMAINS:
        records.append(("SRV", "_xmpp-server._tcp." + d, "b.test", PORTS["b.test"]))
    ENV.dns.set_records(records)


def tearDownModule():
    s2s_teardown()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sanitized(exe):
    out = subprocess.run(["nm", "-D", exe], capture_output=True, text=True).stdout
    return "__asan_init" in out


class ManyHostsB(FedServer):
    def build_config(self):
        conf = super().build_config()
        for d in DOMAINS:
            conf["hosts"][d] = {}
        conf["log_level"] = "warn"
        return conf


class IdleLinkMemoryTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = FedServer("a.test", leaf("a.test"), users={"alice": "alice-pw"},
                          extra={"log_level": "warn"}).start()
        cert = ENV.ca.issue("b.test", ["b.test", "*.m.test"], stem="b-many")
        cls.b = ManyHostsB("b.test", cert, users={"bob": "bob-pw"}).start()
        cls.alice = SlixClient(cls.a, "alice", resource="r").connect()

    @classmethod
    def tearDownClass(cls):
        cls.alice.disconnect()
        for s in (cls.a, cls.b):
            if s.running():
                s.stop()
            s.remove()

    def ping(self, domain):
        el = self.alice.iq("<ping xmlns='urn:xmpp:ping'/>", to=domain, timeout=15)
        self.assertEqual(el.get("type"), "result", domain)

    def test_idle_link_memory(self):
        self.ping("b.test")  # TLS, the trust store and the first link are warm
        time.sleep(3)
        a0, b0 = rss_kib(self.a.proc.pid), rss_kib(self.b.proc.pid)
        for d in DOMAINS:
            self.ping(d)
        out = [l for l in self.a.s2s_list().splitlines() if l.startswith("out")]
        self.assertEqual(len(out), N + 1)
        self.assertTrue(all("EXTERNAL+bidi" in l for l in out), out[:3])
        time.sleep(5)  # idle: TLS buffers released
        a1, b1 = rss_kib(self.a.proc.pid), rss_kib(self.b.proc.pid)
        per_a, per_b = (a1 - a0) / N, (b1 - b0) / N
        print("\n%d idle s2s links: RSS of the connecting server %d -> %d KiB (%.1f KiB a link), "
              "of the accepting one %d -> %d KiB (%.1f KiB a link)" %
              (N, a0, a1, per_a, b0, b1, per_b))
        if not sanitized(TERND):
            self.assertLess(per_a, 64)
            self.assertLess(per_b, 64)


if __name__ == "__main__":
    unittest.main()
