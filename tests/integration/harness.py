"""Test harness for the integration tests: a live ternd and clients to drive it.

- Server: a ternd in a temporary directory on free loopback ports (c2s,
  c2s_tls, component), with a self-signed certificate made by
  `ternctl cert`, a generated YAML configuration, accounts made with
  `ternctl adduser --password-stdin`, stderr captured to a log file.
  stop() sends SIGTERM and fails the test unless ternd exits 0 and its log
  has no sanitizer report.
- RawClient: a plain or TLS socket speaking XMPP by hand (STARTTLS,
  SCRAM-SHA-1/256/512 and -PLUS with tls-server-end-point, bind), for the
  protocol tests that need exact control over the bytes.
- SlixClient: a slixmpp 1.8.3 ClientXMPP run on one shared asyncio loop in
  a background thread; every call waits with a timeout.

Environment: TERND, TERNCTL, TERN_MODULES (default: build/asan under the
source tree).  Every wait in here has a timeout, so no test can hang.
"""
import asyncio
import base64
import hashlib
import hmac
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Relative paths are taken relative to the current directory, as a shell would.
TERND = os.path.abspath(os.environ.get("TERND", os.path.join(TOP, "build/asan/ternd")))
TERNCTL = os.path.abspath(os.environ.get("TERNCTL", os.path.join(TOP, "build/asan/ternctl")))
TERN_MODULES = os.path.abspath(os.environ.get("TERN_MODULES",
                                              os.path.join(TOP, "build/asan/modules/.libs")))

NS_STREAM = "http://etherx.jabber.org/streams"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_CLIENT = "jabber:client"
NS_COMPONENT = "jabber:component:accept"
NS_PING = "urn:xmpp:ping"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"

DOMAIN = "localhost"
_DEFAULT_DOMAIN = DOMAIN  # DOMAIN itself may be changed by a test for one login
SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "LeakSanitizer",
                      "runtime error:")

# Timeouts (seconds).  Generous for a sanitizer build on two busy cores,
# short enough that a broken server fails fast.
T_SHORT = 1.0   # "nothing more arrives" windows
T_REPLY = 8.0   # one answer from the server
T_START = 30.0  # ternd start-up


def q(ns, name):
    """Clark notation for ElementTree: {ns}name."""
    return "{%s}%s" % (ns, name)


_ports_given = set()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now and that
    this process has not handed out before (the kernel may offer a port
    again once its probe socket is closed, before the server binds it)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def deep_merge(base, extra):
    """base updated by extra, recursively for dicts; neither is modified."""
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def yaml_scalar(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    s = str(v)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_yaml(value, indent=0):
    """Block-style YAML for dicts, lists and scalars (enough for tern.yml)."""
    pad = "  " * indent
    lines = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, dict) and v:
                lines.append("%s%s:" % (pad, k))
                lines.append(to_yaml(v, indent + 1))
            elif isinstance(v, dict):
                lines.append("%s%s: {}" % (pad, k))
            elif isinstance(v, list) and v:
                lines.append("%s%s:" % (pad, k))
                lines.append(to_yaml(v, indent + 1))
            elif isinstance(v, list):
                lines.append("%s%s: []" % (pad, k))
            else:
                lines.append("%s%s: %s" % (pad, k, yaml_scalar(v)))
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                flow = ", ".join("%s: %s" % (k, yaml_scalar(v)) for k, v in item.items())
                lines.append("%s- { %s }" % (pad, flow))
            else:
                lines.append("%s- %s" % (pad, yaml_scalar(item)))
    else:
        lines.append(pad + yaml_scalar(value))
    return "\n".join(lines)


class ServerError(AssertionError):
    """ternd misbehaved: did not start, exited badly, or a sanitizer spoke."""


class Server:
    """One ternd on free loopback ports in its own temporary directory.

    users: {localpart: password} created with ternctl before start.
    components: {domain: secret}.
    config: dict deep-merged over the default configuration.
    domain: the host served (default "localhost"); a config that names its
    own tls certificate keeps it (else `ternctl cert` makes one for domain).
    """

    def __init__(self, users=None, components=None, config=None, name="tern", domain=DOMAIN):
        self.domain = domain
        self.ip = "127.0.0.1"  # the c2s listeners' address (SlixClient connects there)
        self.dir = tempfile.mkdtemp(prefix=name + "-")
        self.c2s_port = free_port()
        self.tls_port = free_port()
        self.component_port = free_port()
        self.conf_path = os.path.join(self.dir, "tern.yml")
        self.log_path = os.path.join(self.dir, "ternd.log")
        self.cert_path = os.path.join(self.dir, "localhost.crt")
        self.key_path = os.path.join(self.dir, "localhost.key")
        self.users = dict(users or {})
        self.components = dict(components or {})
        self.extra_config = config or {}
        self.proc = None
        self.log_file = None
        self.started_at = None
        self.config = self.build_config()

    # ---- configuration -------------------------------------------------

    def build_config(self):
        conf = {
            "log_level": "info",
            "state_dir": self.dir,
            "module_path": TERN_MODULES,
            "storage": {"driver": "sqlite", "path": "tern.db"},
            "admin_socket": os.path.join(self.dir, "ternctl.sock"),
            "tls": {"certificate": self.cert_path, "key": self.key_path},
            "listeners": [
                {"type": "c2s", "address": "127.0.0.1", "port": self.c2s_port},
                {"type": "c2s_tls", "address": "127.0.0.1", "port": self.tls_port},
                {"type": "component", "address": "127.0.0.1", "port": self.component_port},
            ],
            "limits": {
                "max_stanza_size": "64K",
                "auth_failure_delay": "100ms",
                "max_auth_failures": 3,
                "handshake_timeout": "30s",
            },
            "c2s": {"require_encryption": True, "allow_plain": False},
            "modules": {"disco": {}, "ping": {}, "version": {}, "time": {}, "uptime": {}},
            "hosts": {self.domain: {}},
            "components": {d: {"secret": s} for d, s in self.components.items()},
        }
        return deep_merge(conf, self.extra_config)

    def write_config(self, config=None):
        if config is not None:
            self.config = config
        with open(self.conf_path, "w") as f:
            f.write("# generated by tests/integration/harness.py\n")
            f.write(to_yaml(self.config) + "\n")

    # ---- ternctl -------------------------------------------------------

    def ternctl(self, *args, input=None, timeout=60, config=None):
        """Run ternctl -c CONF ARGS; returns the CompletedProcess (text)."""
        cmd = [TERNCTL, "-c", config or self.conf_path] + list(args)
        r = subprocess.run(cmd, input=input, capture_output=True, text=True,
                           timeout=timeout, env=sanitizer_env())
        check_sanitizer_text(r.stderr, "ternctl " + " ".join(args))
        return r

    def ternctl_ok(self, *args, input=None):
        r = self.ternctl(*args, input=input)
        if r.returncode != 0:
            raise ServerError("ternctl %s failed (%d): %s%s" % (" ".join(args), r.returncode,
                                                               r.stdout, r.stderr))
        return r

    def add_user(self, user, password):
        self.ternctl_ok("adduser", "%s@%s" % (user, self.domain), "--password-stdin",
                        input=password + "\n")
        self.users[user] = password

    # ---- life cycle ----------------------------------------------------

    def start(self):
        if self.config.get("tls", {}).get("certificate") == self.cert_path:
            r = self.ternctl("cert", self.domain, self.cert_path, self.key_path, "30")
            if r.returncode != 0:
                raise ServerError("ternctl cert failed: %s" % r.stderr)
        self.write_config()
        for user, password in list(self.users.items()):
            self.add_user(user, password)
        for attempt in range(3):
            try:
                return self._launch()
            except ServerError as e:
                # Another process may have taken one of our free ports meanwhile.
                if attempt == 2 or "in use" not in str(e):
                    raise
                self.c2s_port, self.tls_port = free_port(), free_port()
                self.component_port = free_port()
                self.config = self.build_config()
                self.write_config()

    def _launch(self):
        self.log_file = open(self.log_path, "wb")
        cmd = [TERND, "-c", self.conf_path]
        if shutil.which("setpriv"):  # SIGTERM to ternd if the test run dies
            cmd = ["setpriv", "--pdeathsig", "TERM"] + cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, env=sanitizer_env())
        self.started_at = time.time()
        deadline = time.monotonic() + T_START
        pending = [self.c2s_port, self.tls_port, self.component_port]
        while pending:
            if self.proc.poll() is not None:
                raise ServerError("ternd exited with %s during start-up\n%s" %
                                  (self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError("ternd did not listen within %ss\n%s" % (T_START,
                                                                          self.log_tail()))
            try:
                with socket.create_connection(("127.0.0.1", pending[0]), timeout=1):
                    pass
                pending.pop(0)
            except OSError:
                time.sleep(0.05)
        # The admin socket appears with the listeners; wait for it too.
        while not os.path.exists(self.config["admin_socket"]):
            if time.monotonic() > deadline:
                raise ServerError("no admin socket\n" + self.log_tail())
            time.sleep(0.05)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=20):
        """Wait for ternd to exit; returns its exit code (None on timeout)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self, check=True):
        """SIGTERM, then require exit code 0 and a log free of sanitizer reports."""
        if self.proc is None:
            return
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit(25)
        if rc is None:
            self.kill()
        if self.log_file:
            self.log_file.close()
            self.log_file = None
        if check:
            self.check_exit(rc)

    def check_exit(self, rc):
        if rc is None:
            raise ServerError("ternd did not exit after SIGTERM\n" + self.log_tail())
        self.check_log()
        if rc != 0:
            raise ServerError("ternd exited with %s\n%s" % (rc, self.log_tail()))

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=60):
        lines = self.log_text().splitlines()
        return "---- ternd log (%s), last %d lines ----\n%s" % (self.log_path, n,
                                                               "\n".join(lines[-n:]))

    def check_log(self):
        text = self.log_text()
        bad = [l for l in text.splitlines() if any(p in l for p in SANITIZER_PATTERNS)]
        if bad:
            raise ServerError("sanitizer report in ternd log: %s\n%s" % (bad[0],
                                                                          self.log_tail(120)))

    def remove(self):
        """Delete the temporary directory (after a clean stop; kept otherwise
        for the log and configuration)."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop(check=exc[0] is None)


def sanitizer_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=23")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


def check_sanitizer_text(text, what):
    for line in text.splitlines():
        if any(p in line for p in SANITIZER_PATTERNS):
            raise ServerError("sanitizer report from %s: %s\n%s" % (what, line, text[-4000:]))


# ---- raw sockets ---------------------------------------------------------


class StreamClosed(Exception):
    """The peer ended the stream or the connection before what we waited for."""


def tls_context(alpn=None):
    """A client SSLContext that trusts anything (the tests' cert is self-signed)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


class RawClient:
    """An XMPP stream spoken by hand over a socket.

    Incoming bytes go through an incremental XML parser: elements at depth 1
    are returned one by one by read_element(); the stream header's
    attributes are in self.header; self.stream_ended is set when
    </stream:stream> arrives, self.eof when the connection closes.
    """

    def __init__(self, port, direct_tls=False, alpn=("xmpp-client",), sni=DOMAIN,
                 host="127.0.0.1", timeout=T_REPLY):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.tls = False
        self.peer_cert = None
        self.features = None
        self.header = None
        self.stream_ended = False
        self.eof = False
        self.raw_in = b""  # everything received, decrypted, for diagnostics
        self.jid = None
        if direct_tls:
            self._wrap_tls(alpn, sni)
        self._new_parser()

    # ---- transport ------------------------------------------------------

    def _wrap_tls(self, alpn, sni):
        ctx = tls_context(alpn)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=sni)
        self.tls = True
        self.peer_cert = self.sock.getpeercert(binary_form=True)

    def _new_parser(self):
        self.parser = ET.XMLPullParser(("start", "end"))
        self.depth = 0
        self.queue = []

    def send(self, data):
        """Send bytes or str; a connection the server already closed is not an error."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass

    def _feed(self, data):
        self.raw_in += data
        self.parser.feed(data)
        for event, elem in self.parser.read_events():
            if event == "start":
                self.depth += 1
                if self.depth == 1:
                    self.header = dict(elem.attrib)
                    self.header_tag = elem.tag
            else:
                self.depth -= 1
                if self.depth == 1:
                    self.queue.append(elem)
                elif self.depth == 0:
                    self.stream_ended = True

    def _recv_some(self, deadline):
        """Read once from the socket into the parser; False on EOF or timeout."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self._feed(data)
        return True

    def read_element(self, timeout=None):
        """The next top-level element; StreamClosed when the stream or socket ends first."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.queue:
            if self.stream_ended or self.eof:
                raise StreamClosed("stream closed; received so far: %r" % self.raw_in[-2000:])
            if not self._recv_some(deadline):
                if self.queue:
                    break
                if self.eof or self.stream_ended:
                    raise StreamClosed("stream closed; received so far: %r" %
                                       self.raw_in[-2000:])
                raise TimeoutError("nothing from the server within %ss; received: %r" %
                                   (timeout or self.timeout, self.raw_in[-2000:]))
        return self.queue.pop(0)

    def expect(self, tag, timeout=None):
        """The next element, which must have Clark-notation name `tag`."""
        el = self.read_element(timeout)
        if el.tag != tag:
            raise AssertionError("expected %s, got %s" % (tag, ET.tostring(el)[:500]))
        return el

    def wait_for(self, pred, timeout=None):
        """Skip elements until pred(el) holds; returns it."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching element; received: %r" % self.raw_in[-2000:])
            el = self.read_element(left)
            if pred(el):
                return el

    def nothing_more(self, within=T_SHORT):
        """The elements that arrive within `within` seconds (a list, often expected empty)."""
        got = list(self.queue)
        self.queue = []
        deadline = time.monotonic() + within
        while not (self.eof or self.stream_ended) and self._recv_some(deadline):
            got.extend(self.queue)
            self.queue = []
        return got

    def stream_error(self, timeout=None):
        """Read until <stream:error>; returns its condition name.  Then the
        stream must end (</stream:stream>) and the connection close."""
        el = self.wait_for(lambda e: e.tag == q(NS_STREAM, "error"), timeout)
        cond = None
        for child in el:
            if child.tag.startswith("{%s}" % NS_STREAMS) and not child.tag.endswith("}text"):
                cond = child.tag.split("}", 1)[1]
        return cond

    def wait_closed(self, timeout=None):
        """Wait for EOF; returns True when the connection closed in time."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.eof:
            self.queue = []
            if not self._recv_some(deadline) and not self.eof:
                return False
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def end(self, timeout=3.0):
        """Close the stream politely (</stream:stream>), wait until the server
        closed its side, then close the socket."""
        if not (self.eof or self.stream_ended):
            self.send("</stream:stream>")
            try:
                self.wait_closed(timeout)
            except Exception:
                pass
        self.close()

    # ---- XMPP steps ------------------------------------------------------

    def open_stream(self, to=DOMAIN, version="1.0", ns=NS_CLIENT, prolog="<?xml version='1.0'?>"):
        """Send a stream header and return the <stream:features/> that follows."""
        to_attr = " to='%s'" % to if to is not None else ""
        ver_attr = " version='%s'" % version if version is not None else ""
        self.send("%s<stream:stream xmlns='%s' xmlns:stream='%s'%s%s xml:lang='en'>" %
                  (prolog, ns, NS_STREAM, to_attr, ver_attr))
        self.features = self.expect(q(NS_STREAM, "features"))
        return self.features

    def mechanisms(self, features=None):
        f = features if features is not None else self.features
        mechs = f.find(q(NS_SASL, "mechanisms"))
        return [] if mechs is None else [m.text for m in mechs.findall(q(NS_SASL, "mechanism"))]

    def cb_types(self, features=None):
        f = features if features is not None else self.features
        cb = f.find(q(NS_SASL_CB, "sasl-channel-binding"))
        return [] if cb is None else [c.get("type") for c in cb]

    def starttls(self, alpn=None, sni=DOMAIN):
        """STARTTLS (RFC 6120 §5) on a fresh stream; returns the new features."""
        if self.features is None:
            self.open_stream()
        assert self.features.find(q(NS_TLS, "starttls")) is not None, "no <starttls/> offered"
        self.send("<starttls xmlns='%s'/>" % NS_TLS)
        self.expect(q(NS_TLS, "proceed"))
        self.sock.settimeout(self.timeout)
        self._wrap_tls(alpn, sni)
        self._new_parser()
        return self.open_stream()

    def auth_scram(self, user, password, mech="SCRAM-SHA-256", cb_type=None, gs2_flag=None):
        """One SCRAM exchange.  Returns ("success", None) or ("failure", condition).
        Raises AssertionError if the server's signature or XEP-0474 hash is wrong."""
        scram = ScramClient(user, password, mech, self, cb_type, gs2_flag)
        self.send("<auth xmlns='%s' mechanism='%s'>%s</auth>" %
                  (NS_SASL, mech, b64(scram.client_first())))
        el = self.read_element()
        if el.tag == q(NS_SASL, "failure"):
            return "failure", failure_condition(el)
        assert el.tag == q(NS_SASL, "challenge"), ET.tostring(el)
        final = scram.client_final(unb64(el.text or ""))
        self.send("<response xmlns='%s'>%s</response>" % (NS_SASL, b64(final)))
        el = self.read_element()
        if el.tag == q(NS_SASL, "failure"):
            return "failure", failure_condition(el)
        assert el.tag == q(NS_SASL, "success"), ET.tostring(el)
        scram.verify_server_final(unb64(el.text or ""))
        self.scram = scram
        return "success", None

    def restart(self):
        """The stream restart after SASL success (RFC 6120 §6.4.6)."""
        self._new_parser()
        return self.open_stream()

    def bind(self, resource=None):
        """Bind a resource; returns the bound full JID (or raises on an error)."""
        res = "<resource>%s</resource>" % resource if resource else ""
        self.send("<iq type='set' id='bind1'><bind xmlns='%s'>%s</bind></iq>" % (NS_BIND, res))
        el = self.expect(q(NS_CLIENT, "iq"))
        if el.get("type") != "result":
            raise AssertionError("bind failed: %s" % ET.tostring(el))
        self.jid = el.find("%s/%s" % (q(NS_BIND, "bind"), q(NS_BIND, "jid"))).text
        return self.jid

    def login(self, user, password, resource=None, mech="SCRAM-SHA-256", cb_type=None,
              presence=True):
        """STARTTLS if needed, SCRAM, bind and initial presence; returns the full JID."""
        self.open_stream()
        if not self.tls:
            self.starttls()
        status, cond = self.auth_scram(user, password, mech, cb_type)
        if status != "success":
            raise AssertionError("login of %s failed: %s" % (user, cond))
        self.restart()
        jid = self.bind(resource)
        if presence:
            self.send("<presence/>")
        return jid

    def iq(self, payload, to=None, type_="get", id_=None, timeout=None):
        """Send an iq and return the answer with the same id."""
        id_ = id_ or "iq" + secrets.token_hex(4)
        to_attr = " to='%s'" % to if to else ""
        self.send("<iq type='%s' id='%s'%s>%s</iq>" % (type_, id_, to_attr, payload))
        return self.wait_for(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == id_,
                             timeout)

    def ping(self, to=DOMAIN, timeout=None):
        """XEP-0199 ping; returns the answer's type ('result' or 'error')."""
        return self.iq("<ping xmlns='%s'/>" % NS_PING, to=to, timeout=timeout).get("type")


def failure_condition(el):
    for child in el:
        if not child.tag.endswith("}text"):
            return child.tag.split("}", 1)[1]
    return None


def stanza_error(el):
    """(type, condition) of a stanza's <error/>, or None."""
    err = el.find(q(el.tag.split("}")[0][1:], "error")) if el.tag.startswith("{") else None
    if err is None:
        for child in el:
            if child.tag.endswith("}error"):
                err = child
    if err is None:
        return None
    cond = None
    for child in err:
        if child.tag.startswith("{%s}" % NS_STANZAS) and not child.tag.endswith("}text"):
            cond = child.tag.split("}", 1)[1]
    return err.get("type"), cond


def b64(data):
    return base64.b64encode(data).decode("ascii") if data else "="


def unb64(text):
    text = text.strip()
    return b"" if text in ("", "=") else base64.b64decode(text)


# ---- SCRAM (RFC 5802, RFC 7677) client, with -PLUS and XEP-0474 checks ----

_SIG_OIDS = {  # DER signatureAlgorithm OID -> hash for tls-server-end-point (RFC 5929 §4.1)
    bytes.fromhex("2a864886f70d01010b"): "sha256",  # sha256WithRSAEncryption
    bytes.fromhex("2a864886f70d01010c"): "sha384",
    bytes.fromhex("2a864886f70d01010d"): "sha512",
    bytes.fromhex("2a864886f70d010105"): "sha256",  # sha1WithRSA -> SHA-256
    bytes.fromhex("2a8648ce3d040302"): "sha256",    # ecdsa-with-SHA256
    bytes.fromhex("2a8648ce3d040303"): "sha384",
    bytes.fromhex("2a8648ce3d040304"): "sha512",
}


def _der_tlv(data, pos):
    """(tag, value_start, value_end) of the DER element at pos."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    return tag, pos, pos + length


def cert_signature_hash(der):
    """The hash name RFC 5929 tls-server-end-point uses for this certificate."""
    _, start, _ = _der_tlv(der, 0)               # Certificate SEQUENCE
    _, _, tbs_end = _der_tlv(der, start)         # tbsCertificate
    _, alg_start, _ = _der_tlv(der, tbs_end)     # signatureAlgorithm SEQUENCE
    tag, oid_start, oid_end = _der_tlv(der, alg_start)
    assert tag == 0x06, "no OID in signatureAlgorithm"
    oid = der[oid_start:oid_end]
    if oid not in _SIG_OIDS:
        raise AssertionError("unknown certificate signature algorithm %s" % oid.hex())
    return _SIG_OIDS[oid]


def tls_server_end_point(der):
    """RFC 5929 tls-server-end-point channel binding data for a DER certificate."""
    return hashlib.new(cert_signature_hash(der), der).digest()


def ssdp_hash(hash_name, mechanisms, cb_types):
    """XEP-0474 downgrade protection value for the advertised lists."""
    s = "\x1e".join(sorted(mechanisms))
    if cb_types:
        s += "\x1f" + "\x1e".join(sorted(cb_types))
    return base64.b64encode(hashlib.new(hash_name, s.encode()).digest()).decode()


class ScramClient:
    HASHES = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}

    def __init__(self, user, password, mech, raw=None, cb_type=None, gs2_flag=None):
        self.user = user
        self.password = password.encode()
        plus = mech.endswith("-PLUS")
        self.hash = self.HASHES[mech[:-5] if plus else mech]
        self.raw = raw
        self.cb_data = b""
        if plus:
            cb_type = cb_type or "tls-server-end-point"
            self.gs2 = "p=%s,," % cb_type
            if cb_type == "tls-server-end-point":
                self.cb_data = tls_server_end_point(raw.peer_cert)
            elif cb_type == "tls-unique":  # what old clients send, even on TLS 1.3
                self.cb_data = raw.sock.get_channel_binding("tls-unique") or b""
            else:
                raise ValueError("only tls-server-end-point is implemented here")
        else:
            self.gs2 = (gs2_flag or "n") + ",,"
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.server_attrs = {}

    def hmac(self, key, msg):
        return hmac.new(key, msg, self.hash).digest()

    def client_first(self):
        self.first_bare = "n=%s,r=%s" % (self.user.replace("=", "=3D").replace(",", "=2C"),
                                         self.nonce)
        return (self.gs2 + self.first_bare).encode()

    def client_final(self, server_first):
        self.server_first = server_first.decode()
        attrs = dict(part.split("=", 1) for part in self.server_first.split(","))
        self.server_attrs = attrs
        assert attrs["r"].startswith(self.nonce), "server nonce does not extend ours"
        if "h" in attrs and self.raw is not None:
            want = ssdp_hash(self.hash, self.raw.mechanisms(), self.raw.cb_types())
            assert attrs["h"] == want, "XEP-0474 hash %s, expected %s" % (attrs["h"], want)
        salt = base64.b64decode(attrs["s"])
        iterations = int(attrs["i"])
        salted = hashlib.pbkdf2_hmac(self.hash, self.password, salt, iterations)
        client_key = self.hmac(salted, b"Client Key")
        stored_key = hashlib.new(self.hash, client_key).digest()
        cbind = base64.b64encode(self.gs2.encode() + self.cb_data).decode()
        without_proof = "c=%s,r=%s" % (cbind, attrs["r"])
        auth_message = ",".join((self.first_bare, self.server_first, without_proof)).encode()
        signature = self.hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = self.hmac(salted, b"Server Key")
        self.server_signature = self.hmac(server_key, auth_message)
        return ("%s,p=%s" % (without_proof, base64.b64encode(proof).decode())).encode()

    def verify_server_final(self, data):
        text = data.decode()
        assert text.startswith("v="), "server-final-message %r" % text
        got = base64.b64decode(text[2:])
        assert got == self.server_signature, "wrong ServerSignature"


# ---- raw component (XEP-0114) ---------------------------------------------


class RawComponent(RawClient):
    """A jabber:component:accept stream spoken by hand."""

    def handshake(self, domain, secret):
        """Open the stream and send the handshake; returns the reply element."""
        self.send("<stream:stream xmlns='%s' xmlns:stream='%s' to='%s'>" %
                  (NS_COMPONENT, NS_STREAM, domain))
        deadline = time.monotonic() + self.timeout
        while self.header is None:
            if not self._recv_some(deadline):
                if self.queue:
                    return self.queue.pop(0)
                raise StreamClosed("no stream header: %r" % self.raw_in)
        sid = self.header.get("id", "")
        digest = hashlib.sha1((sid + secret).encode()).hexdigest()
        self.send("<handshake>%s</handshake>" % digest)
        reply = self.read_element()
        if reply.tag == q(NS_STREAM, "error"):
            self.queue.insert(0, reply)  # left for stream_error()
        return reply


# ---- slixmpp on one asyncio loop in a background thread --------------------


class _Loop:
    """The one asyncio loop slixmpp runs on, in a daemon thread."""

    _instance = None

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="slixmpp-loop", daemon=True)
        self.thread.start()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @classmethod
    def get(cls):
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def run(self, coro, timeout=T_REPLY):
        """Run coro on the loop and wait for it, at most `timeout` seconds."""
        fut = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout), self.loop)
        try:
            return fut.result(timeout + 5)
        except asyncio.TimeoutError:
            raise TimeoutError("timed out after %ss" % timeout) from None


def run_async(coro, timeout=T_REPLY):
    return _Loop.get().run(coro, timeout)


class LoginFailed(AssertionError):
    pass


class _CBData(bytes):
    """Channel-binding data that remembers its type (for the patched SCRAM)."""
    cb_name = b"tls-unique"


_scram_patched = False
_KEEP_ALIVE = []
logging.getLogger("slixmpp").setLevel(
    logging.DEBUG if os.environ.get("TERN_TEST_DEBUG") else logging.CRITICAL)


def _patch_slixmpp_scram():
    """Teach slixmpp 1.8.3's SCRAM (which only knows tls-unique) other channel
    binding types: the gs2 flag names the type the data was made for.  Only
    this test process is affected."""
    global _scram_patched
    if _scram_patched:
        return
    from slixmpp.util.sasl import mechanisms
    original = mechanisms.SCRAM.process_1

    def process_1(self, challenge):
        out = original(self, challenge)
        cb = self.credentials.get("channel_binding")
        if self.use_channel_binding and isinstance(cb, _CBData):
            flag = b"p=" + cb.cb_name
            self.gs2_header = flag + self.gs2_header[len(b"p=tls-unique"):]
            self.client_first_message = self.gs2_header + self.client_first_message_bare
            out = self.client_first_message
        return out

    mechanisms.SCRAM.process_1 = process_1
    _scram_patched = True


class SlixClient:
    """A slixmpp ClientXMPP for one account, driven synchronously.

    direct_tls: connect to the c2s_tls port (ALPN xmpp-client) instead of STARTTLS.
    plus: log in with SCRAM-SHA-256-PLUS and tls-server-end-point.
    mech: the mechanism to pin; "default" pins none and leaves slixmpp's own
    choice and channel-binding data (tls-unique) alone, as a user's client.
    Every stanza received is recorded in self.received (in arrival order).
    """

    def __init__(self, server, user, password=None, resource=None, direct_tls=False,
                 plus=False, mech=None):
        self.server = server
        # A peer server of peers.py stands in for a Server: its domain, address, ports.
        self.host = getattr(server, "ip", "127.0.0.1")
        self.user = user
        self.password = password if password is not None else server.users[user]
        self.resource = resource
        self.direct_tls = direct_tls
        self.plus = plus
        self.mech = mech or ("SCRAM-SHA-256-PLUS" if plus else "SCRAM-SHA-256")
        self.xmpp = None
        self.received = []
        self.stream_errors = []
        self.disconnected = False
        self.alpn = None
        self._waiters = []

    @property
    def domain(self):
        """The server's domain (DOMAIN, read now, for the default one)."""
        d = getattr(self.server, "domain", _DEFAULT_DOMAIN)
        return DOMAIN if d == _DEFAULT_DOMAIN else d

    # everything below "_a" runs on the loop

    async def _a_create(self):
        import slixmpp
        if self.plus:
            _patch_slixmpp_scram()
        jid = "%s@%s" % (self.user, self.domain)
        if self.resource:
            jid += "/" + self.resource
        default = self.mech == "default"
        x = slixmpp.ClientXMPP(jid, self.password, sasl_mech=None if default else self.mech)
        x.ssl_context.check_hostname = False
        x.ssl_context.verify_mode = ssl.CERT_NONE
        if self.direct_tls:
            x.ssl_context.set_alpn_protocols(["xmpp-client"])
        x.use_ipv6 = False
        x.default_domain = self.domain  # SNI and DNS name; connect() gets the address
        x.whitespace_keepalive = False
        for plugin in ("xep_0030", "xep_0199"):
            x.register_plugin(plugin)
        x["xep_0199"].enable_keepalive = False
        mechs = x["feature_mechanisms"]
        default_creds = mechs._default_credentials

        def credentials(required, optional):
            creds = default_creds(required, optional)
            if "channel_binding" in creds:
                creds["channel_binding"] = self._channel_binding(x)
            return creds

        if not default:
            mechs.sasl_callback = credentials
        x.add_filter("in", self._record)
        x.add_event_handler("stream_error", lambda e: self.stream_errors.append(e["condition"]))
        x.add_event_handler("disconnected", self._on_disconnected)
        self.xmpp = x
        _KEEP_ALIVE.append(x)  # slixmpp's tasks must not be garbage-collected mid-run

    def _channel_binding(self, x):
        """None (flag 'n') unless logging in with -PLUS: then tls-server-end-point."""
        if not self.plus:
            return None
        sslobj = x.transport.get_extra_info("ssl_object") if x.transport else None
        if sslobj is None:
            return None
        data = _CBData(tls_server_end_point(sslobj.getpeercert(binary_form=True)))
        data.cb_name = b"tls-server-end-point"
        return data

    def _record(self, stanza):
        self.received.append(stanza)
        for w in list(self._waiters):
            pred, fut = w
            if not fut.done() and pred(stanza):
                fut.set_result(stanza)
        return stanza

    def _on_disconnected(self, reason):
        self.disconnected = True
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(StreamClosed("disconnected: %s" % (reason,)))

    async def _a_connect(self):
        x = self.xmpp
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def ok(_):
            if not done.done():
                done.set_result(True)

        def bad(what):
            def handler(arg=None):
                if not done.done():
                    done.set_exception(LoginFailed("%s@%s: %s %s" % (self.user, self.domain, what,
                                                                     arg)))
            return handler

        x.add_event_handler("session_start", ok, disposable=True)
        x.add_event_handler("failed_all_auth", bad("authentication failed"))
        if self.mech != "default":  # unpinned, slixmpp tries the next mechanism
            x.add_event_handler("failed_auth", bad("authentication failed"))
        x.add_event_handler("connection_failed", bad("connection failed"))
        x.add_event_handler("disconnected", bad("disconnected"))
        port = self.server.tls_port if self.direct_tls else self.server.c2s_port
        x.default_port = port  # what the name lookup of default_domain pairs with
        x.connect(address=(self.host, port), use_ssl=self.direct_tls,
                  force_starttls=not self.direct_tls)
        try:
            await done
        except LoginFailed:
            x.cancel_connection_attempt()
            x.abort()
            raise
        if self.direct_tls:
            sslobj = x.transport.get_extra_info("ssl_object")
            self.alpn = sslobj.selected_alpn_protocol()

    def connect(self, presence=True, timeout=T_REPLY + 7):
        """Connect, log in, bind and (by default) send initial presence.
        Raises LoginFailed when authentication or the connection fails."""
        run_async(self._a_create())
        run_async(self._a_connect(), timeout)
        if presence:
            self.send_presence()
        return self

    def sync(self):
        """A ping round trip to the server: everything sent before it has been
        processed by the server when this returns."""
        assert self.ping(self.domain) == "result"

    @property
    def jid(self):
        return str(self.xmpp.boundjid)

    def send_presence(self, priority=None):
        """Initial presence (available), then sync() so the server has it."""
        async def go():
            self.xmpp.send_presence(ppriority=priority)
        run_async(go())
        self.sync()

    def send_message(self, to, body, mtype="chat"):
        async def go():
            self.xmpp.send_message(mto=to, mbody=body, mtype=mtype)
        run_async(go())

    def send_raw(self, text):
        async def go():
            self.xmpp.send_raw(text)
        run_async(go())

    def mark(self):
        """A position in self.received, for received_since()."""
        return len(self.received)

    def received_since(self, mark, kinds=("message", "iq", "presence")):
        return [s for s in self.received[mark:] if s.name in kinds]

    def wait_stanza(self, pred, timeout=T_REPLY, since=0):
        """The first stanza received (after index `since`) for which pred holds."""
        for s in self.received[since:]:
            if pred(s):
                return s

        async def go():
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            self._waiters.append((pred, fut))
            try:
                for s in self.received[since:]:  # arrived while we set up
                    if pred(s):
                        return s
                if self.disconnected:
                    raise StreamClosed("disconnected")
                return await fut
            finally:
                self._waiters.remove((pred, fut))
        return run_async(go(), timeout)

    def wait_message(self, body=None, sender=None, timeout=T_REPLY, since=0, mtype=None):
        def pred(s):
            return (s.name == "message" and (body is None or s["body"] == body) and
                    (sender is None or str(s["from"]) == sender) and
                    (mtype is None or s["type"] == mtype))
        return self.wait_stanza(pred, timeout, since)

    def iq(self, payload, to=DOMAIN, itype="get", timeout=T_REPLY):
        """Send an iq with an XML payload (str); returns the answer's XML element
        (type result or error)."""
        from slixmpp.exceptions import IqError

        async def go():
            iq = self.xmpp.Iq()
            iq["type"] = itype
            if to:
                iq["to"] = to
            iq.append(ET.fromstring(payload))
            try:
                resp = await iq.send(timeout=timeout)
            except IqError as e:
                resp = e.iq
            return resp.xml
        return run_async(go(), timeout + 2)

    def ping(self, to=DOMAIN, timeout=T_REPLY):
        """XEP-0199 ping; returns the answer's type."""
        return self.iq("<ping xmlns='%s'/>" % NS_PING, to=to, timeout=timeout).get("type")

    def wait_disconnected(self, timeout=T_REPLY):
        async def go():
            while not self.disconnected:
                await asyncio.sleep(0.05)
        run_async(go(), timeout)

    def disconnect(self):
        if self.xmpp is None or self.disconnected:
            return

        async def go():
            self.xmpp.disconnect(wait=1.0)
            while not self.disconnected:
                await asyncio.sleep(0.05)
        try:
            run_async(go(), 5)
        except Exception:
            async def abort():
                self.xmpp.abort()
            run_async(abort(), 2)


# ---- unittest glue ----------------------------------------------------------

import unittest  # noqa: E402


class ServerTestCase(unittest.TestCase):
    """One ternd per test class (server_kwargs go to Server); clients made
    through self.raw()/self.slix() are closed after each test, and every test
    ends by checking that ternd is still alive."""

    server_kwargs = {}
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = Server(name=cls.__name__, **cls.server_kwargs)
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        if cls.server is not None:
            cls.server.stop()
            cls.server.remove()

    def setUp(self):
        self._clients = []

    def tearDown(self):
        for c in reversed(self._clients):
            try:
                if hasattr(c, "disconnect"):  # SlixClient, SlixComponent
                    c.disconnect()
                else:
                    c.end()
            except Exception:
                pass
        if self.server is not None and not self.server.running():
            dead = self.server
            dead.stop(check=False)
            # A fresh server, so that the class's other tests still mean something.
            type(self).server = Server(name=type(self).__name__, **self.server_kwargs).start()
            self.fail("ternd died during the test (exit %s)\n%s" %
                      (dead.proc.returncode, dead.log_tail()))

    def raw(self, direct_tls=False, component=False, **kw):
        """A RawClient (or RawComponent) to this class's server, closed after the test."""
        if component:
            c = RawComponent(self.server.component_port, **kw)
        else:
            port = self.server.tls_port if direct_tls else self.server.c2s_port
            c = RawClient(port, direct_tls=direct_tls, **kw)
        self._clients.append(c)
        return c

    def raw_login(self, user, resource=None, direct_tls=False, **kw):
        c = self.raw(direct_tls=direct_tls)
        c.login(user, self.server.users[user], resource, **kw)
        return c

    def slix(self, user, connect=True, **kw):
        """A SlixClient, logged in unless connect=False, disconnected after the test."""
        c = SlixClient(self.server, user, **kw)
        self._clients.append(c)
        if connect:
            c.connect()
        return c


class SlixComponent:
    """A slixmpp ComponentXMPP (XEP-0114) for `domain`, driven synchronously;
    records every stanza it receives."""

    def __init__(self, server, domain, secret):
        self.server = server
        self.domain = domain
        self.secret = secret
        self.received = []
        self.disconnected = False
        self.stream_errors = []
        self.xmpp = None

    def connect(self, timeout=T_REPLY):
        async def go():
            import slixmpp
            x = slixmpp.ComponentXMPP(self.domain, self.secret, "127.0.0.1",
                                      self.server.component_port)
            _KEEP_ALIVE.append(x)
            self.xmpp = x
            x.whitespace_keepalive = False
            x.add_filter("in", self._record)
            x.add_event_handler("stream_error",
                                lambda e: self.stream_errors.append(e["condition"]))
            done = asyncio.get_running_loop().create_future()

            def ok(_):
                if not done.done():
                    done.set_result(True)

            def gone(reason=None):
                self.disconnected = True
                if not done.done():
                    done.set_exception(LoginFailed("component %s: disconnected (%s, %s)" %
                                                   (self.domain, reason, self.stream_errors)))
            x.add_event_handler("session_start", ok, disposable=True)
            x.add_event_handler("disconnected", gone)
            x.add_event_handler("connection_failed", gone)
            x.connect()
            try:
                await done
            except LoginFailed:
                x.cancel_connection_attempt()
                x.abort()
                raise
        run_async(go(), timeout)
        return self

    def _record(self, stanza):
        self.received.append(stanza)
        return stanza

    def mark(self):
        return len(self.received)

    def wait_stanza(self, pred, timeout=T_REPLY, since=0):
        async def go():
            while True:
                for s in self.received[since:]:
                    if pred(s):
                        return s
                if self.disconnected:
                    raise StreamClosed("component disconnected")
                await asyncio.sleep(0.02)
        return run_async(go(), timeout)

    def send_message(self, mfrom, mto, body, mtype="chat"):
        async def go():
            self.xmpp.send_message(mto=mto, mbody=body, mtype=mtype, mfrom=mfrom)
        run_async(go())

    def disconnect(self):
        if self.xmpp is None or self.disconnected:
            return

        async def go():
            self.xmpp.disconnect(wait=1.0)
            while not self.disconnected:
                await asyncio.sleep(0.05)
        try:
            run_async(go(), 5)
        except Exception:
            async def abort():
                self.xmpp.abort()
            run_async(abort(), 2)
