"""DNS records for the integration tests: a dnsmasq from Debian on a free port.

Tests that make ternd look up domains (federation, the peer-server tests)
serve the records they need from their own DNS server and point ternd's
`dns.servers` at it:

    from dns import Dnsmasq

    records = [
        # SRV: name, target, port, priority (default 0), weight (default 0)
        ("SRV", "_xmpp-server._tcp.example.test", "xmpp.example.test", 5269, 10, 0),
        ("SRV", "_xmpps-server._tcp.example.test", "xmpp.example.test", 5270),
        # target "." alone: the domain says it offers no such service
        ("SRV", "_xmpp-server._tcp.nope.test", "."),   # or ("NOSRV", name)
        # addresses of a name (A and AAAA of one name may both be given)
        ("A", "xmpp.example.test", "127.0.0.1"),
        ("AAAA", "xmpp.example.test", "::1"),
        # the name and every name below it
        ("address", "wild.test", "127.0.0.1"),
    ]
    with Dnsmasq(records) as dns:
        server = Server(config={"dns": {"servers": [dns.server]}})
        ...
        rcode, answers = dns.query("_xmpp-server._tcp.example.test", "SRV")

Every name under the `local` domains (default: "test") that has no record
is answered "no such domain" (NXDOMAIN) instead of being asked further;
records are given the TTL `ttl` (seconds; default 1, so a test that
changes them with set_records(), which keeps the port, sees the change at
once; 0 means "do not cache").  start() returns once the server answers and raises
DnsmasqError when dnsmasq is missing or does not start; stop() ends it.
dnsmasq listens on 127.0.0.1 only (UDP and TCP of the same port) and
reads neither /etc/resolv.conf nor /etc/hosts nor /etc/dnsmasq.conf.
"""
import os
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import time

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "AAAA": 28, "SRV": 33}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


class DnsmasqError(AssertionError):
    """dnsmasq is missing, did not start, or does not answer."""


def find_dnsmasq():
    for path in ("/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/usr/local/sbin/dnsmasq"):
        if os.access(path, os.X_OK):
            return path
    return shutil.which("dnsmasq")


def _free_udp_tcp_port():
    """A port of 127.0.0.1 free for both UDP and TCP right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                    t.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise DnsmasqError("no free port for dnsmasq")


def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def _read_name(msg, pos):
    """(name, position after it) of the possibly compressed name at pos."""
    labels = []
    end = None
    for _ in range(128):
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = pos + 2
            pos = ((n & 0x3F) << 8) | msg[pos + 1]
            continue
        pos += 1
        if n == 0:
            break
        labels.append(msg[pos:pos + n].decode("ascii", "replace"))
        pos += n
    return ".".join(labels) or ".", (end if end is not None else pos)


def query(server, port, name, qtype="A", timeout=2.0):
    """Ask `server`:`port` over UDP.  Returns (rcode name, answers): each
    answer (type name, ttl, data) with data an address text for A/AAAA,
    (priority, weight, port, target) for SRV, the raw bytes otherwise."""
    qid = random.randrange(65536)
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    packet += _encode_name(name) + struct.pack(">HH", TYPES[qtype], 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, (server, port))
        while True:
            msg, _ = s.recvfrom(4096)
            if len(msg) >= 12 and struct.unpack(">H", msg[:2])[0] == qid:
                break
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    pos = 12
    for _ in range(qd):
        _, pos = _read_name(msg, pos)
        pos += 4
    answers = []
    names = {v: k for k, v in TYPES.items()}
    for _ in range(an):
        _, pos = _read_name(msg, pos)
        rtype, _, ttl, rlen = struct.unpack(">HHIH", msg[pos:pos + 10])
        pos += 10
        rdata = msg[pos:pos + rlen]
        if rtype == 1:
            data = socket.inet_ntop(socket.AF_INET, rdata)
        elif rtype == 28:
            data = socket.inet_ntop(socket.AF_INET6, rdata)
        elif rtype == 33:
            prio, weight, sport = struct.unpack(">HHH", rdata[:6])
            data = (prio, weight, sport, _read_name(msg, pos + 6)[0])
        else:
            data = rdata
        answers.append((names.get(rtype, str(rtype)), ttl, data))
        pos += rlen
    return RCODES.get(flags & 0xF, str(flags & 0xF)), answers


class Dnsmasq:
    """A dnsmasq serving `records` (see the module's docstring) on a free
    port of 127.0.0.1.  `server` is "127.0.0.1:PORT" for dns.servers."""

    def __init__(self, records=(), ttl=1, local=("test",)):
        self.records = list(records)
        self.ttl = ttl
        self.local = list(local)
        # Chosen now, so configs can name it before start(); start() takes
        # another only if this one was taken meanwhile.
        self.port = _free_udp_tcp_port()
        self.proc = None
        self.dir = None

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port

    def _record_args(self):
        args, hosts = [], {}
        for r in self.records:
            kind = r[0]
            if kind == "NOSRV":  # the same as ("SRV", name, ".")
                args.append("--srv-host=%s" % r[1])
            elif kind == "SRV":
                name, target = r[1], r[2]
                if target == ".":
                    args.append("--srv-host=%s" % name)
                    continue
                port = r[3] if len(r) > 3 else 0
                prio = r[4] if len(r) > 4 else 0
                weight = r[5] if len(r) > 5 else 0
                args.append("--srv-host=%s,%s,%d,%d,%d" % (name, target, port, prio, weight))
            elif kind in ("A", "AAAA"):
                hosts.setdefault(r[1], []).append(r[2])
            elif kind == "address":
                args.append("--address=/%s/%s" % (r[1], r[2]))
            else:
                raise ValueError("unknown record kind %r" % (kind,))
        for name, addrs in hosts.items():
            args.append("--host-record=%s,%s" % (name, ",".join(addrs)))
        return args

    def start(self):
        exe = find_dnsmasq()
        if not exe:
            raise DnsmasqError("dnsmasq is not installed (apt-get install dnsmasq; "
                               "contrib/deps.sh --test installs it)")
        self.dir = self.dir or tempfile.mkdtemp(prefix="dnsmasq-")
        keep_port = self.port
        for attempt in range(3):
            # set_records() keeps the port the servers under test were given
            self.port = keep_port if keep_port and attempt == 0 else _free_udp_tcp_port()
            cmd = [exe, "--no-daemon", "--no-resolv", "--no-hosts", "--port=%d" % self.port,
                   "--listen-address=127.0.0.1", "--bind-interfaces", "--conf-file=/dev/null",
                   "--pid-file=%s" % os.path.join(self.dir, "dnsmasq.pid"),
                   "--local-ttl=%d" % self.ttl]
            cmd += ["--local=/%s/" % d for d in self.local]
            cmd += self._record_args()
            if shutil.which("setpriv"):  # ended with the test run
                cmd = ["setpriv", "--pdeathsig", "TERM"] + cmd
            self._log = open(os.path.join(self.dir, "dnsmasq.log"), "wb")
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT)
            if self._wait_ready():
                return self
            self.stop()
            if attempt == 2:
                raise DnsmasqError("dnsmasq did not start: %s" % self.log_text())

    def _wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                self.query("ready.%s" % (self.local[0] if self.local else "test"), timeout=0.2)
                return True
            except OSError:  # refused or timed out: not listening yet
                time.sleep(0.05)
        return False

    def query(self, name, qtype="A", timeout=2.0):
        """(rcode, answers) from this server; see query()."""
        return query("127.0.0.1", self.port, name, qtype, timeout)

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "dnsmasq.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    log = log_text

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def set_records(self, records):
        """Serve `records` instead, on the same port (a restart)."""
        self.stop()
        self.records = list(records)
        return self.start()

    def remove(self):
        self.stop()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.remove()
