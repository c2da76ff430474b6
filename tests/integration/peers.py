"""peers.py — real XMPP servers from Debian beside Tern, for the federation tests.

A peer is a Prosody 0.12 or an ejabberd 23.01 process started in its own
temporary folder (its configuration, data, log), listening on its own
loopback address with free ports, trusting the test CA of pki.py and
resolving names through the private dnsmasq of dns.py.  Nothing of the
system's own Prosody or ejabberd service is used or touched.

    dns = Dnsmasq()                                   # port chosen, not started
    ca = TestCA(folder)
    p = ProsodyPeer("p.test", "127.0.0.2", dns.port, ca,
                    ca.issue("p.test", ["p.test", "conference.p.test"]), muc="conference.p.test")
    dns.records += p.dns_records()                   # SRV for c2s and s2s, A records
    dns.start(); p.start(); p.register("alice", "pw")
    SlixClient(p, "alice").connect()                  # a peer stands in for a Server
    p.freeze(); p.thaw(); p.restart(); p.stop(); p.remove()

SRV targets are IP literals: ejabberd resolves an SRV target outside the
DNS servers it is given, so only an address works for it everywhere; Prosody
and Tern accept one as well.  Every wait has a timeout; a peer that does not
come up fails with the end of its log.

Pitfalls met (and how this file avoids them):
- prosody and prosodyctl started as root switch to the user prosody, who
  cannot read the temporary folder: `run_as_root = true`.
- Prosody without lua-unbound falls back to a resolver that reads
  /etc/resolv.conf; libunbound answers NXDOMAIN for the special-use name
  .test by itself unless told `local-zone: "test. transparent"`.
- Prosody sends subscription requests and approvals only to resources that
  fetched the roster (RFC 6121 §2.1.6): the scenarios fetch it first.
- Prosody locks a new room until it is configured (muc_room_locking, off
  here); the scenarios accept the default configuration anyway, as a client
  does (XEP-0045 §10.1.2), which ejabberd accepts too.
- Prosody 0.12 stores SCRAM-SHA-1 only: peer accounts log in with it.
- ejabberdctl as root runs everything through `su ejabberd` with the
  system's spool, node name and cookie; its listeners accept connections
  before the account tables exist (`register` then fails with
  {aborted,{no_exists,passwd,storage_type}}): wait for "is started in the
  node" in the log.
- ejabberd 23.01 refuses incoming SASL EXTERNAL for a certificate without
  clientAuth ("unsupported certificate purpose"); the other server must
  fall back to dialback on the same connection (Prosody does).  Its own
  outgoing EXTERNAL works.  It warns about a chain it does not trust
  ("Invalid certificate ... self-signed certificate") but presents it.
- ejabberd bounces a chat message to a bare JID with no available resource
  (service-unavailable, no mod_offline here): clients send presence first.
- dnsmasq will not give an A record to a name that looks like an address,
  hence IP literals as SRV targets rather than names.
"""
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import T_START, free_port

PROSODY = shutil.which("prosody") or "/usr/bin/prosody"
PROSODYCTL = shutil.which("prosodyctl") or "/usr/bin/prosodyctl"
ERL = shutil.which("erl") or "/usr/bin/erl"
EJABBERD_LIBS = "/usr/lib/x86_64-linux-gnu"  # where Debian puts ejabberd's Erlang applications


class PeerError(AssertionError):
    """A peer server did not start, or a command on it failed."""


def _lua(v):
    """A Lua literal for a Python value (str, bool, int, list, dict)."""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "{ " + "; ".join(_lua(x) for x in v) + " }"
    if isinstance(v, dict):
        return "{ " + "; ".join("[%s] = %s" % (_lua(k), _lua(x)) for k, x in v.items()) + " }"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _yaml(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


class Peer:
    """What Prosody and ejabberd peers share: addresses, ports, DNS records,
    the process and its signals.  Subclasses write the configuration
    (_configure), give the command (_command) and make accounts (register)."""

    kind = "peer"

    def __init__(self, domain, ip, dns_port, ca, leaf, dialback=True, muc=None,
                 insecure_domains=(), name=None):
        self.domain = domain
        self.ip = ip
        self.dns_port = int(str(dns_port).rsplit(":", 1)[-1])
        self.ca = ca
        self.leaf = leaf
        self.dialback = dialback
        self.muc = muc
        self.insecure_domains = list(insecure_domains)
        self.c2s_port = free_port()
        self.s2s_port = free_port()
        self.tls_port = self.c2s_port  # SlixClient asks for it with direct_tls only
        self.dir = tempfile.mkdtemp(prefix="%s-%s-" % (name or self.kind, domain))
        self.log_path = os.path.join(self.dir, self.kind + ".log")
        self.out_path = os.path.join(self.dir, "stdout.log")
        self.users = {}
        self.proc = None
        self._out = None

    # ---- DNS -----------------------------------------------------------

    def domains(self):
        return [self.domain] + ([self.muc] if self.muc else [])

    def dns_records(self):
        """Records for dns.Dnsmasq: SRV for c2s (the domain) and s2s (the
        domain and its MUC domain), targets as IP literals, and A records."""
        recs = [("SRV", "_xmpp-client._tcp." + self.domain, self.ip, self.c2s_port)]
        for d in self.domains():
            recs.append(("SRV", "_xmpp-server._tcp." + d, self.ip, self.s2s_port))
            recs.append(("A", d, self.ip))
        return recs

    # ---- life cycle ----------------------------------------------------

    def _configure(self):
        raise NotImplementedError

    def _command(self):
        raise NotImplementedError

    def _env(self):
        return dict(os.environ)

    def start(self):
        """Write the configuration, start the process, wait for both ports."""
        self._configure()
        self._out = open(self.out_path, "ab")
        cmd = self._command()
        if shutil.which("setpriv"):  # SIGTERM to the peer if the test run dies
            cmd = ["setpriv", "--pdeathsig", "TERM"] + cmd
        self.proc = subprocess.Popen(cmd, cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT,
                                     env=self._env())
        self.wait_ready()
        return self

    def wait_ready(self, timeout=T_START):
        deadline = time.monotonic() + timeout
        pending = [self.c2s_port, self.s2s_port]
        while pending:
            if self.proc.poll() is not None:
                raise PeerError("%s %s exited with %s during start-up\n%s" %
                                (self.kind, self.domain, self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                self.stop()
                raise PeerError("%s %s did not listen on %s within %ss\n%s" %
                                (self.kind, self.domain, self.ip, timeout, self.log_tail()))
            try:
                with socket.create_connection((self.ip, pending[0]), timeout=1):
                    pass
                pending.pop(0)
            except OSError:
                time.sleep(0.1)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def freeze(self):
        """SIGSTOP: the ports stay open, nothing answers."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self, timeout=15):
        """SIGTERM (after SIGCONT, in case it is frozen), SIGKILL if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        if self._out:
            self._out.close()
            self._out = None

    def restart(self):
        self.stop()
        return self.start()

    def remove(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.remove()

    # ---- logs ----------------------------------------------------------

    def log_text(self):
        text = ""
        for path in (self.out_path, self.log_path):
            try:
                with open(path, "rb") as f:
                    text += f.read().decode("utf-8", "replace")
            except OSError:
                pass
        return text

    def log_tail(self, n=60):
        lines = self.log_text().splitlines()
        return "---- %s %s log (%s), last %d lines ----\n%s" % (
            self.kind, self.domain, self.dir, n, "\n".join(lines[-n:]))


class ProsodyPeer(Peer):
    """Prosody 0.12 (Debian package prosody, DNS through lua-unbound).

    Runs as root with run_as_root (prosody and prosodyctl would otherwise
    switch to the user prosody, who cannot read the temporary folder), in the
    foreground (daemonize = false).  s2s_secure_auth is on: a remote server
    must present a certificate valid for its domain under the test CA, except
    the domains in insecure_domains, which may authenticate with dialback.
    dialback=False unloads mod_dialback (EXTERNAL only).
    """

    kind = "prosody"

    def _configure(self):
        self.conf_path = os.path.join(self.dir, "prosody.cfg.lua")
        data = os.path.join(self.dir, "data")
        os.makedirs(data, exist_ok=True)
        ssl = {"certificate": self.leaf.chain_path, "key": self.leaf.key_path,
               "cafile": self.ca.cert_path}
        modules = ["roster", "saslauth", "tls", "disco", "ping", "vcard", "posix"]
        if self.dialback:
            modules.append("dialback")
        lines = [
            "-- generated by tests/integration/peers.py",
            "run_as_root = true",
            "daemonize = false",
            "pidfile = %s" % _lua(os.path.join(self.dir, "prosody.pid")),
            "data_path = %s" % _lua(data),
            "log = { debug = %s }" % _lua(self.log_path),
            "interfaces = { %s }" % _lua(self.ip),
            "local_interfaces = { %s }" % _lua(self.ip),
            "c2s_ports = { %d }" % self.c2s_port,
            "s2s_ports = { %d }" % self.s2s_port,
            "c2s_direct_tls_ports = { }",
            "s2s_direct_tls_ports = { }",
            "legacy_ssl_ports = { }",
            "component_ports = { }",
            "http_ports = { }",
            "https_ports = { }",
            "modules_enabled = %s" % _lua(modules),
            'modules_disabled = { "offline" }',
            'authentication = "internal_hashed"',
            'storage = "internal"',
            "c2s_require_encryption = true",
            "s2s_require_encryption = true",
            "s2s_secure_auth = true",
            "s2s_insecure_domains = %s" % _lua(self.insecure_domains),
            "s2s_timeout = 10",
            "ssl = %s" % _lua(ssl),
            # libunbound, told to ask dnsmasq only; without the local-zone it
            # answers NXDOMAIN for the special-use name .test by itself.
            "unbound = { resolvconf = false; hoststxt = false; forward = %s; "
            'options = { ["local-zone:"] = "test. transparent" } }' %
            _lua("127.0.0.1@%d" % self.dns_port),
            "",
            "VirtualHost %s" % _lua(self.domain),
            "  ssl = %s" % _lua(ssl),
        ]
        if self.muc:
            lines += [
                "",
                "Component %s \"muc\"" % _lua(self.muc),
                "  ssl = %s" % _lua(ssl),
                "  muc_room_locking = false",
                "  restrict_room_creation = false",
            ]
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _command(self):
        return [PROSODY, "--config", self.conf_path, "-F"]

    def prosodyctl(self, *args, input=None, timeout=30):
        self._configure()
        r = subprocess.run([PROSODYCTL, "--config", self.conf_path] + list(args), input=input,
                           capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        if r.returncode != 0:
            raise PeerError("prosodyctl %s failed (%d): %s%s" % (" ".join(args), r.returncode,
                                                                r.stdout, r.stderr))
        return r

    def register(self, user, password):
        """An account user@domain (works before start and while running)."""
        self.prosodyctl("register", user, self.domain, password)
        self.users[user] = password


class EjabberdPeer(Peer):
    """ejabberd 23.01 (Debian package ejabberd), run with erl directly as root.

    ejabberdctl would switch to the user ejabberd (su) and expects the
    system's folders; instead the node is started the way ejabberdctl
    starts it, with its own node name and cookie, and without epmd: the
    node listens for its control connections on a free port of 127.0.0.1
    (-erl_epmd_port), so it clashes with no other node nor with the
    system's ejabberd (ports 4369, 5222, 5269, 5280 are never used).
    Accounts are made through the same control connection (ejabberd_ctl
    register).  DNS: an inetrc (ERL_INETRC) naming dnsmasq as the only
    name server.  s2s: STARTTLS required, certificates checked against the
    test CA (s2s_cafile), dialback offered unless dialback=False, retry
    delay 1 s (the default keeps bouncing for up to 300 s after a failure).
    """

    kind = "ejabberd"

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        tag = secrets.token_hex(4)
        self.node = "tern-peer-%s@localhost" % tag
        self.cookie = "tern" + secrets.token_hex(12)
        self.dist_port = free_port()

    def start(self):
        self._started_before = self.log_text().count(self._started_line())
        return super().start()

    def _started_line(self):
        return "is started in the node '%s'" % self.node

    def wait_ready(self, timeout=T_START):
        """The ports, then the log line saying ejabberd has started: its
        listeners accept before the account tables exist."""
        deadline = time.monotonic() + timeout
        super().wait_ready(timeout)
        while self.log_text().count(self._started_line()) <= self._started_before:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise PeerError("ejabberd %s did not finish starting\n%s" % (self.domain,
                                                                            self.log_tail()))
            time.sleep(0.1)

    def _configure(self):
        self.conf_path = os.path.join(self.dir, "ejabberd.yml")
        self.inetrc_path = os.path.join(self.dir, "inetrc")
        self.spool = os.path.join(self.dir, "spool")
        os.makedirs(self.spool, exist_ok=True)
        with open(self.inetrc_path, "w") as f:
            f.write('{resolv_conf, ""}.\n{hosts_file, ""}.\n'
                    "{nameserver, {127,0,0,1}, %d}.\n"
                    '{host, {127,0,0,1}, ["localhost"]}.\n' % self.dns_port)
        ip = self.ip
        modules = {
            "mod_disco": {},
            "mod_ping": {},
            "mod_roster": {},
            "mod_vcard": {},
            "mod_version": {},
        }
        if self.dialback:
            modules["mod_s2s_dialback"] = {}
        if self.muc:
            modules["mod_muc"] = {"host": self.muc, "access": "all", "access_create": "all",
                                  "access_persistent": "all", "access_admin": "none"}
        lines = [
            "# generated by tests/integration/peers.py",
            "hosts:",
            "  - %s" % _yaml(self.domain),
            "loglevel: debug",
            "log_rotate_count: 0",
            "certfiles:",
            "  - %s" % _yaml(self.leaf.chain_path),
            "  - %s" % _yaml(self.leaf.key_path),
            "ca_file: %s" % _yaml(self.ca.cert_path),
            "s2s_cafile: %s" % _yaml(self.ca.cert_path),
            "s2s_use_starttls: required",
            "s2s_max_retry_delay: 1",
            "s2s_timeout: 300",
            "s2s_dns_timeout: 3",
            "s2s_dns_retries: 1",
            "s2s_access: all",
            "auth_method: internal",
            "auth_password_format: scram",
            "listen:",
            "  - port: %d" % self.c2s_port,
            "    ip: %s" % _yaml(ip),
            "    module: ejabberd_c2s",
            "    starttls_required: true",
            "  - port: %d" % self.s2s_port,
            "    ip: %s" % _yaml(ip),
            "    module: ejabberd_s2s_in",
            "acl:",
            "  local:",
            "    user_regexp: \"\"",
            "access_rules:",
            "  local:",
            "    allow: local",
            "  c2s:",
            "    allow: all",
            "modules:",
        ]
        for name, opts in modules.items():
            if not opts:
                lines.append("  %s: {}" % name)
                continue
            lines.append("  %s:" % name)
            for k, v in opts.items():
                lines.append("    %s: %s" % (k, _yaml(v)))
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _env(self):
        env = dict(os.environ)
        env.update({
            "HOME": self.dir,
            "ERL_LIBS": EJABBERD_LIBS,
            "EJABBERD_CONFIG_PATH": self.conf_path,
            "EJABBERD_LOG_PATH": self.log_path,
            "ERL_INETRC": self.inetrc_path,
            "ERL_CRASH_DUMP": os.path.join(self.dir, "erl_crash.dump"),
            "ERL_MAX_PORTS": "32000",
        })
        return env

    def _erl_args(self, node):
        return [ERL, "-sname", node, "-setcookie", self.cookie,
                "-erl_epmd_port", str(self.dist_port), "-start_epmd", "false",
                "-kernel", "inet_dist_use_interface", "{127,0,0,1}"]

    def _command(self):
        return self._erl_args(self.node) + [
            "+K", "true", "-noinput", "-mnesia", "dir", '"%s"' % self.spool, "-s", "ejabberd"]

    def ctl(self, *args, timeout=60):
        """ejabberdctl's command line (ejabberd_ctl) against this node."""
        ctl_node = "tern-ctl-%s@localhost" % secrets.token_hex(4)
        cmd = self._erl_args(ctl_node) + ["-hidden", "-noinput", "-dist_listen", "false",
                                          "-s", "ejabberd_ctl", "-extra", self.node] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.dir,
                           env=self._env())
        if r.returncode != 0:
            raise PeerError("ejabberdctl %s failed (%d): %s%s\n%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr, self.log_tail(20)))
        return r

    def register(self, user, password):
        """An account user@domain (the node must be running)."""
        self.ctl("register", user, self.domain, password)
        self.users[user] = password
