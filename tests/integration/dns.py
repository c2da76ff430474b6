"""dns.py — a private DNS server for the integration tests (dnsmasq).

Federation needs DNS: SRV records that say where a domain's XMPP server
listens, and addresses.  Tests run dnsmasq from Debian on a free port of
127.0.0.1 with no upstream (`--no-resolv`), answering only the records the
test gives, and point the servers under test at it (`dns.servers` for
Tern; the peers have their own ways, see peers.py).

    with Dnsmasq([
        ("A", "a.test", "127.0.0.2"),
        ("AAAA", "a.test", "::1"),
        ("SRV", "_xmpp-server._tcp.a.test", "a.test", 5269),          # prio 0, weight 0
        ("SRV", "_xmpps-server._tcp.a.test", "a.test", 5270, 5, 10),  # prio 5, weight 10
        ("NOSRV", "_xmpp-server._tcp.nope.test"),                     # target "." : no service
    ]) as dns:
        dns.port, dns.server ("127.0.0.1:PORT")
        dns.set_records([...])   # replace every record and restart

Every answer has a TTL of `ttl` seconds (default 1, so a test that changes
records sees the change quickly).  dnsmasq must be installed (CI installs
it); without it the tests that need it fail with a clear message.
"""
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time

from harness import free_port

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


def _query(port, name, qtype=1, timeout=0.5):
    """One UDP query; the answer's rcode, or None without an answer."""
    qid = os.getpid() & 0xFFFF
    msg = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        msg += bytes([len(label)]) + label.encode()
    msg += b"\0" + struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(msg, ("127.0.0.1", port))
        data = s.recv(4096)
        return data[3] & 0x0F
    except OSError:
        return None
    finally:
        s.close()


class Dnsmasq:
    def __init__(self, records=(), ttl=1):
        if not os.path.exists(DNSMASQ):
            raise AssertionError("dnsmasq is not installed (Debian package dnsmasq)")
        self.records = list(records)
        self.ttl = ttl
        self.port = free_port()
        self.server = "127.0.0.1:%d" % self.port
        self.dir = tempfile.mkdtemp(prefix="tern-dns-")
        self.proc = None

    def _args(self):
        a = [
            DNSMASQ,
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--conf-file=/dev/null",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--port=%d" % self.port,
            "--pid-file=" + os.path.join(self.dir, "pid"),
            "--user=root",
            "--local-ttl=%d" % self.ttl,
            "--auth-ttl=%d" % self.ttl,
            "--log-facility=" + os.path.join(self.dir, "log"),
            "--log-queries",
            # Names under .test that have no record get NXDOMAIN, not REFUSED.
            "--local=/test/",
        ]
        hosts = {}
        for r in self.records:
            kind = r[0]
            if kind in ("A", "AAAA"):
                hosts.setdefault(r[1], []).append(r[2])
            elif kind == "SRV":
                name, target, port = r[1], r[2], r[3]
                prio = r[4] if len(r) > 4 else 0
                weight = r[5] if len(r) > 5 else 0
                a.append("--srv-host=%s,%s,%d,%d,%d" % (name, target, port, prio, weight))
            elif kind == "NOSRV":
                a.append("--srv-host=%s" % r[1])
            else:
                raise ValueError("unknown record kind " + kind)
        for name, addrs in hosts.items():
            a.append("--host-record=%s,%s" % (name, ",".join(addrs)))
        return a

    def start(self):
        self.proc = subprocess.Popen(
            self._args(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("dnsmasq failed: " + self.proc.stderr.read().decode())
            if _query(self.port, "tern-dns-ready.invalid", timeout=0.2) is not None:
                return self
            time.sleep(0.05)
        self.stop()
        raise AssertionError("dnsmasq did not answer on port %d" % self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.proc.stderr.close()
        self.proc = None

    def set_records(self, records):
        self.stop()
        self.records = list(records)
        self.start()

    def log(self):
        try:
            with open(os.path.join(self.dir, "log")) as f:
                return f.read()
        except OSError:
            return ""

    def remove(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.remove()
