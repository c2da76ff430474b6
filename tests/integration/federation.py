"""Two federated Tern servers for the tests: a.test on 127.0.0.2 and b.test
on 127.0.0.3, found through a private DNS server (dnsmasq, dns.py: SRV and A
records) and holding certificates from a private test CA (pki.py).

A test module calls set_up() in its setUpModule and tear_down() in its
tearDownModule; ENV then holds the work folder, the CA and the DNS server.
FedServer is a ternd serving one of the two domains with an s2s listener on
its own address; FedCase starts a.test (user alice) and b.test (user bob)
for a test class, each logged in with resource "r".
"""
import os
import shutil
import tempfile
import unittest

from dns import Dnsmasq
from harness import T_REPLY, Server, SlixClient, deep_merge, free_port
from pki import TestCA, self_signed

IPS = {"a.test": "127.0.0.2", "b.test": "127.0.0.3"}
PORTS = {}


class Env:
    """What set_up() made: work (a temporary folder), ca (TestCA), dns
    (Dnsmasq) and extra (DNS records a test module adds to the base ones)."""
    work = None
    ca = None
    dns = None
    extra = []


ENV = Env()


def base_records():
    """A and SRV (_xmpp-server) records of both domains, plus ENV.extra."""
    records = []
    for d, ip in IPS.items():
        records.append(("A", d, ip))
        records.append(("SRV", "_xmpp-server._tcp." + d, d, PORTS[d]))
    return records + list(ENV.extra)


def set_up(prefix="tern-s2s-", extra_records=()):
    """Make the CA, choose the s2s ports and start the DNS server.
    extra_records: more records, ("A", name, ip) or ("SRV", name, target,
    port); a callable is called once the ports are chosen."""
    ENV.work = tempfile.mkdtemp(prefix=prefix)
    ENV.ca = TestCA(os.path.join(ENV.work, "ca"))
    for d in IPS:
        PORTS[d] = free_port()
    ENV.extra = list(extra_records() if callable(extra_records) else extra_records)
    ENV.dns = Dnsmasq(base_records()).start()


def tear_down():
    if ENV.dns:
        ENV.dns.stop()
        ENV.dns.remove()
        ENV.dns = None
    if ENV.work:
        shutil.rmtree(ENV.work, ignore_errors=True)
        ENV.work = None


class FedServer(Server):
    """A ternd serving `domain`, with an s2s listener on its own loopback
    address (the port the DNS names), a certificate `leaf`, trusting the
    test CA for peers.  extra: config merged over the base one (modules,
    components, ...)."""

    def __init__(self, domain, leaf, s2s=None, users=None, extra=None):
        self.domain = domain
        self.leaf = leaf
        self.s2s_extra = s2s or {}
        super().__init__(users=users, name=domain, config=extra, domain=domain)

    def build_config(self):
        conf = super().build_config()
        conf["hosts"] = {self.domain: {}}
        conf["tls"] = {"certificate": self.leaf.chain_path, "key": self.leaf.key_path}
        conf["listeners"].append({"type": "s2s", "address": IPS[self.domain],
                                  "port": PORTS[self.domain]})
        conf["dns"] = {"servers": [ENV.dns.server]}
        s2s = {"ca_file": ENV.ca.cert_path, "connect_timeout": "2s"}
        s2s.update(self.s2s_extra)
        conf["s2s"] = s2s
        conf["modules"]["roster"] = {}
        return deep_merge(conf, self.extra_config)

    def add_user(self, user, password):
        self.ternctl_ok("adduser", "%s@%s" % (user, self.domain), "--password-stdin",
                        input=password + "\n")
        self.users[user] = password

    def start(self):
        self.write_config()
        for user, password in list(self.users.items()):
            self.add_user(user, password)
        return self._launch()

    def s2s_list(self):
        r = self.ternctl_ok("s2s")
        return r.stdout


def leaf(domain):
    """A certificate from the test CA for domain and its subdomains."""
    return ENV.ca.issue(domain, [domain, "*." + domain], stem=domain + "-trusted")


def untrusted(domain):
    """A self-signed certificate for domain, which no peer trusts."""
    return self_signed(ENV.work, domain, [domain])


class FedCase(unittest.TestCase):
    """a.test with alice, b.test with bob, both logged in (resource "r").
    Subclasses set the certificates, s2s options, extra config and users."""
    a_cert = staticmethod(leaf)
    b_cert = staticmethod(leaf)
    a_s2s = {}
    b_s2s = {}
    a_extra = None
    b_extra = None
    a_users = {"alice": "alice-pw"}
    b_users = {"bob": "bob-pw"}

    @classmethod
    def setUpClass(cls):
        cls.a = FedServer("a.test", cls.a_cert("a.test"), cls.a_s2s,
                          users=dict(cls.a_users), extra=cls.a_extra).start()
        cls.b = FedServer("b.test", cls.b_cert("b.test"), cls.b_s2s,
                          users=dict(cls.b_users), extra=cls.b_extra).start()
        cls.alice = SlixClient(cls.a, "alice", resource="r").connect()
        cls.bob = SlixClient(cls.b, "bob", resource="r").connect()

    @classmethod
    def tearDownClass(cls):
        for c in (cls.alice, cls.bob):
            try:
                c.disconnect()
            except Exception:
                pass
        for s in (cls.a, cls.b):
            if s.running():
                s.stop()
            s.remove()

    def send_and_receive(self, sender, receiver, to, body, timeout=T_REPLY):
        mark = receiver.mark()
        sender.send_message(to, body)
        return receiver.wait_message(body, since=mark, timeout=timeout)

    def bounce_of(self, client, to, body, timeout=T_REPLY):
        """Send `body` to `to`; the error that comes back: (condition, text)."""
        mark = client.mark()
        client.send_message(to, body)
        err = client.wait_stanza(lambda s: s.name == "message" and s["type"] == "error",
                                 timeout=timeout, since=mark)
        return err["error"]["condition"], err["error"]["text"]
