"""Serialize once, share the bytes: a stanza that goes to many sessions is
serialized once ('ternctl status' counts serializations), and every session
gets the same bytes, apart from 'to' where the recipients' JIDs differ.

1 000 sessions: ACCOUNTS accounts with PER sessions each
(limits.max_sessions_per_user raised), logged in over plain TCP with PLAIN
and everything pipelined, so that they are cheap to open.  alice's contacts
are the ACCOUNTS accounts, so her presence goes to all 1 000 sessions
(fan-out: one serialization, one start tag per contact), and a headline to
one account's bare JID reaches its PER sessions as wholly identical bytes."""
import base64
import hashlib
import hmac
import os
import re
import select
import socket
import time

from harness import DOMAIN, NS_CLIENT, NS_STREAM, ServerTestCase, T_REPLY

ACCOUNTS = 10
PER = 100
PW = "pw-fanout"


HEADER = ("<stream:stream xmlns='%s' xmlns:stream='%s' to='%s' version='1.0'>"
          % (NS_CLIENT, NS_STREAM, DOMAIN))
_salted = {}


def scram_first(conn):
    """Stream header and SCRAM-SHA-1 client-first (TLS is not required
    in this test's configuration; PLAIN is never offered without it)."""
    conn.nonce = base64.b64encode(os.urandom(12)).decode()
    conn.first_bare = "n=%s,r=%s" % (conn.user, conn.nonce)
    first = base64.b64encode(("n,," + conn.first_bare).encode()).decode()
    return (HEADER + "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>"
            "%s</auth>" % first).encode()


def scram_final(conn, challenge_b64, presence):
    """The client-final for the server's challenge, then, pipelined (the
    server restarts its parser after SASL success and keeps what follows):
    the new stream header, bind and, optionally, initial presence."""
    server_first = base64.b64decode(challenge_b64).decode()
    attrs = dict(part.split("=", 1) for part in server_first.split(","))
    key = (conn.user, attrs["s"], attrs["i"])
    if key not in _salted:  # one PBKDF2 per account, not per session
        _salted[key] = hashlib.pbkdf2_hmac("sha1", PW.encode(), base64.b64decode(attrs["s"]),
                                           int(attrs["i"]))
    salted = _salted[key]
    client_key = hmac.new(salted, b"Client Key", "sha1").digest()
    stored_key = hashlib.sha1(client_key).digest()
    without_proof = "c=biws,r=%s" % attrs["r"]
    auth_message = ",".join((conn.first_bare, server_first, without_proof)).encode()
    signature = hmac.new(stored_key, auth_message, "sha1").digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature))).decode()
    final = base64.b64encode(("%s,p=%s" % (without_proof, proof)).encode()).decode()
    out = ("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>" % final + HEADER +
           "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>"
           "%s</resource></bind></iq>" % conn.resource)
    if presence:
        out += "<presence/>"
    return out.encode()


CHALLENGE = re.compile(rb"<challenge[^>]*>([^<]*)</challenge>")


def login_all(conns, presence, timeout):
    """Log every connection in, in two pipelined rounds; returns those that
    did not bind."""
    for c in conns:
        c.send(scram_first(c))
    left = pump_until(conns, lambda c: CHALLENGE.search(c.data) is not None, timeout)
    if left:
        return left
    for c in conns:
        c.send(scram_final(c, CHALLENGE.search(c.data).group(1).decode(), presence(c)))
    return pump_until(conns, lambda c: b"id='bind'" in c.data, timeout)


class Conn:
    """A bare socket that keeps everything it receives."""

    def __init__(self, port, user, resource):
        self.user, self.resource = user, resource
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=T_REPLY)
        self.sock.setblocking(False)
        self.data = bytearray()
        self.closed = False

    def send(self, b):
        self.sock.setblocking(True)
        self.sock.sendall(b)
        self.sock.setblocking(False)
        self.pump()

    def fileno(self):
        return self.sock.fileno()

    def pump(self):
        try:
            while True:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    self.closed = True
                    return
                self.data += chunk
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.closed = True


def pump_until(conns, done, timeout):
    """Read from every connection until done(conn) holds for all of them."""
    deadline = time.monotonic() + timeout
    waiting = [c for c in conns if not done(c)]
    while waiting and time.monotonic() < deadline:
        ready, _, _ = select.select(waiting[:900], [], [], 0.2)
        for c in ready:
            c.pump()
        waiting = [c for c in waiting if not done(c) and not c.closed]
    return [c for c in conns if not done(c)]


def stanzas_since(c, start, tag):
    """Top-level <tag ...>...</tag> or <tag .../> elements received after
    offset `start`, as exact bytes (our own stanzas have no nested tag of
    the same name)."""
    text = bytes(c.data[start:])
    pat = re.compile(rb"<%s[ />](?:[^>]*/>|.*?</%s>)" % (tag, tag), re.S)
    return pat.findall(text)


def status_counters(server):
    out = server.ternctl_ok("status").stdout
    get = lambda name: int(re.search(r"^%s: (\d+)$" % name, out, re.M).group(1))
    return (get("stanzas serialized"), get("stanza bytes reused"), get("fan-out start tags"))


def user(i):
    return "u%d" % i


class FanoutTests(ServerTestCase):
    server_kwargs = dict(
        users=dict({"alice": PW}, **{user(i): PW for i in range(ACCOUNTS)}),
        config={"modules": {"roster": {}},
                "c2s": {"require_encryption": False, "allow_plain": True},
                "limits": {"max_sessions_per_user": PER}})

    def open_all(self, presence):
        conns = []
        for i in range(ACCOUNTS):
            for k in range(PER):
                conns.append(Conn(self.server.c2s_port, user(i), "r%d" % k))
        self.conns = conns
        left = login_all(conns, presence, T_REPLY * 6)
        self.assertEqual(left, [], "%d sessions did not bind" % len(left))
        return conns

    def tearDown(self):
        for c in getattr(self, "conns", []):
            try:
                c.sock.close()
            except OSError:
                pass
        super().tearDown()

    def test_broadcast_to_1000_sessions_serializes_once(self):
        # alice's contacts: each account subscribes to alice, pre-approved
        # by her (RFC 6121 §3.4), so every account has her presence.
        alice = Conn(self.server.c2s_port, "alice", "main")
        self.assertEqual(login_all([alice], lambda c: False, T_REPLY), [])
        pre = "".join("<presence type='subscribed' to='%s@%s'/>" % (user(i), DOMAIN)
                      for i in range(ACCOUNTS))
        alice.send(pre.encode() + b"<iq type='get' id='sync1'><ping xmlns='urn:xmpp:ping'/></iq>")
        self.assertEqual(pump_until([alice], lambda c: b"id='sync1'" in c.data, T_REPLY), [])

        # Every account's sessions, the first one (r0) not available: it
        # asks for the subscription and so has its own reader for roster
        # pushes; the other PER-1 are available (initial presence).
        conns = self.open_all(presence=lambda c: c.resource != "r0")
        firsts = [c for c in conns if c.resource == "r0"]
        for c in firsts:
            c.send(("<presence type='subscribe' to='alice@%s'/><iq type='get' id='sync2'>"
                    "<ping xmlns='urn:xmpp:ping'/></iq>" % DOMAIN).encode())
        self.assertEqual(pump_until(firsts, lambda c: b"id='sync2'" in c.data, T_REPLY * 2), [])
        # r0 becomes available too, last, so that nothing else is pending.
        for c in firsts:
            c.send(b"<presence/><iq type='get' id='sync3'><ping xmlns='urn:xmpp:ping'/></iq>")
        self.assertEqual(pump_until(conns, lambda c: c.resource != "r0" or b"id='sync3'" in c.data,
                                    T_REPLY * 2), [])
        time.sleep(0.5)
        for c in conns:
            c.pump()
        marks = {id(c): len(c.data) for c in conns}

        # 1. alice's presence to her ACCOUNTS contacts: fan-out, one
        #    serialization for 1 000 sessions.
        before = status_counters(self.server)
        alice.send(b"<presence><status>fan-out &amp; share</status></presence>")
        got = lambda c: any(b"fan-out &amp; share" in s
                            for s in stanzas_since(c, marks[id(c)], b"presence"))
        left = pump_until(conns, got, T_REPLY * 3)
        self.assertEqual(len(left), 0, "%d sessions got no presence" % len(left))
        after = status_counters(self.server)
        full, reused, heads = (after[i] - before[i] for i in range(3))
        # The template once; a start tag per contact and one for alice's
        # own session (RFC 6121 §4.2.2: her available resources get it
        # too); every contact's other PER-1 sessions reuse its bytes.
        self.assertEqual(full, 1, (before, after))
        self.assertEqual(heads, ACCOUNTS + 1)
        self.assertEqual(reused, ACCOUNTS * (PER - 1))
        by_account = {}
        for c in conns:
            mine = [s for s in stanzas_since(c, marks[id(c)], b"presence")
                    if b"fan-out &amp; share" in s]
            self.assertEqual(len(mine), 1, (c.user, c.resource, mine))
            by_account.setdefault(c.user, set()).add(mine[0])
        norm = set()
        for u, forms in by_account.items():
            self.assertEqual(len(forms), 1, "%s's sessions got different bytes: %r" % (u, forms))
            form = next(iter(forms))
            self.assertIn(b"to='%s@%s'" % (u.encode(), DOMAIN.encode()), form)
            norm.add(form.replace(b"to='%s@%s'" % (u.encode(), DOMAIN.encode()), b"to=''"))
        self.assertEqual(len(norm), 1, "apart from 'to', every account got the same: %r" % norm)

        # 2. A headline to one account's bare JID: its PER sessions get
        #    wholly identical bytes, serialized once.
        for c in conns:
            c.pump()
        marks = {id(c): len(c.data) for c in conns}
        target = [c for c in conns if c.user == user(3)]
        before = status_counters(self.server)
        alice.send(("<message type='headline' to='%s@%s' id='h1'><body>same bytes for all</body>"
                    "</message>" % (user(3), DOMAIN)).encode())
        got = lambda c: b"same bytes for all" in bytes(c.data[marks[id(c)]:])
        self.assertEqual(pump_until(target, got, T_REPLY * 2), [])
        after = status_counters(self.server)
        # Written once: in full, or (as received from alice, unchanged) its
        # start tag then the bytes she sent after it.
        self.assertEqual(after[0] - before[0] + after[2] - before[2], 1, (before, after))
        self.assertEqual(after[1] - before[1], PER - 1)
        forms = {stanzas_since(c, marks[id(c)], b"message")[0] for c in target}
        self.assertEqual(len(forms), 1, forms)
        self.assertIn(b"same bytes for all", next(iter(forms)))
        alice.sock.close()
