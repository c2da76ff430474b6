"""Storage under load: the SQLite write-ahead log stays bounded while
messages are stored without pause (offline queue and MAM archive), and
slow work (key derivation, admin imports) never stalls the sessions that
are already logged in."""
import base64
import os
import sqlite3
import subprocess
import threading
import time

from harness import (DOMAIN, NS_CLIENT, NS_SASL, T_REPLY, TERNCTL, ServerTestCase, check_sanitizer_text,
                     deep_merge, q, sanitizer_env, to_yaml)

FLOOD = 15000          # messages stored during the flood
REG = ("<query xmlns='jabber:iq:register'><username>%s</username>"
       "<password>%s</password></query>")
WAL_BOUND = 16 << 20   # bytes the -wal file may reach (unbounded before: ~140 MB)


class WalSampler:
    """Samples the size of a file every few milliseconds in a thread."""

    def __init__(self, path, period=0.02):
        self.path = path
        self.period = period
        self.biggest = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.biggest = max(self.biggest, os.path.getsize(self.path))
            except OSError:
                pass
            time.sleep(self.period)

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        return self.biggest


class WalBoundTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"},
                         config={"modules": {"offline": {"max_messages": 1000000},
                                             "mam": {}, "roster": {}}})

    def test_wal_stays_bounded_during_a_flood(self):
        """A checkpoint that really runs keeps the log small however many
        messages arrive; before, the log only ever grew."""
        wal = os.path.join(self.server.dir, "tern.db-wal")
        alice = self.raw_login("alice")
        sampler = WalSampler(wal)
        body = "x" * 200
        chunk = 500
        for first in range(0, FLOOD, chunk):
            alice.send("".join("<message to='bob@%s' type='chat' id='m%d'><body>%s %d</body>"
                               "</message>" % (DOMAIN, i, body, i)
                               for i in range(first, first + chunk)))
            # Keep the server's input queue short: wait for it to catch up.
            self.assertEqual(alice.ping(timeout=30), "result")
        biggest = sampler.stop()
        self.assertGreater(biggest, 0, "no -wal file seen")
        self.assertLess(biggest, WAL_BOUND, "the -wal file grew to %d bytes" % biggest)
        # Every message was stored (read from the database file: handing
        # 20 000 messages to one session is another test's business).
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.server.dir, "tern.db"),
                             uri=True)
        try:
            n = db.execute("SELECT count(*) FROM archive WHERE store = 'offline'"
                           " AND user = 'bob'").fetchone()[0]
        finally:
            db.close()
        self.assertEqual(n, FLOOD)


def add_user_with_iterations(server, user, password, iterations):
    """Create an account whose keys take `iterations` rounds of PBKDF2."""
    path = os.path.join(server.dir, "slow-keys.yml")
    with open(path, "w") as f:
        f.write(to_yaml(deep_merge(server.config, {"c2s": {"scram_iterations": iterations}})))
    r = server.ternctl("adduser", "%s@%s" % (user, DOMAIN), "--password-stdin",
                       input=password + "\n", config=path)
    if r.returncode != 0:
        raise AssertionError("adduser failed: %s" % r.stderr)
    server.users[user] = password


def plain_auth(user, password):
    creds = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    return "<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, creds)


def ping_until(client, done, limit=30.0):
    """Ping `client`'s server back to back until done() is true; the
    longest round trip in seconds."""
    worst = 0.0
    deadline = time.monotonic() + limit
    while not done() and time.monotonic() < deadline:
        t0 = time.monotonic()
        if client.ping(timeout=T_REPLY) != "result":
            raise AssertionError("ping failed")
        worst = max(worst, time.monotonic() - t0)
    return worst


class SlowKeyTests(ServerTestCase):
    """500 000 PBKDF2 iterations: a PLAIN check costs the server a second
    or more of CPU (in a sanitizer build), which must be spent on a worker
    thread; the inline check stalled every session for as long."""
    server_kwargs = dict(users={"alice": "alice-pw"}, config={"c2s": {"allow_plain": True}})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        add_user_with_iterations(cls.server, "heavy", "heavy-pw", 500000)

    def plain_client(self):
        c = self.raw(direct_tls=True, timeout=30)
        c.open_stream()
        return c

    def answered(self, c):
        """Whether a SASL <success/> or <failure/> is in c's queue (non-blocking)."""
        c._recv_some(time.monotonic() + 0.001)
        return any(e.tag in (q(NS_SASL, "success"), q(NS_SASL, "failure")) for e in c.queue)

    def test_plain_login_does_not_stall_other_sessions(self):
        alice = self.raw_login("alice")
        heavy = self.plain_client()
        heavy.send(plain_auth("heavy", "heavy-pw"))
        worst = ping_until(alice, lambda: self.answered(heavy))
        heavy.expect(q(NS_SASL, "success"))
        heavy.restart()
        self.assertEqual(heavy.bind("slow"), "heavy@localhost/slow")
        self.assertLess(worst, 0.2, "a ping took %.0f ms during the PLAIN check" % (worst * 1000))

    def test_plain_wrong_password_and_closed_stream(self):
        c = self.plain_client()
        c.send(plain_auth("heavy", "not-it"))
        self.assertIsNotNone(c.expect(q(NS_SASL, "failure"), timeout=30)
                             .find(q(NS_SASL, "not-authorized")))
        # A stream that goes away while its keys are derived: the result is
        # dropped and the server carries on.
        gone = self.plain_client()
        gone.send(plain_auth("heavy", "heavy-pw"))
        gone.close()
        alice = self.raw_login("alice")
        self.assertEqual(alice.ping(), "result")


class AdminImportTests(ServerTestCase):
    """`ternctl adduser-batch` against the database of a running ternd."""
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"},
                         config={"modules": {"offline": {"max_messages": 100000}}})

    def test_import_does_not_hold_the_database(self):
        """The keys of an import are derived before its transaction opens:
        meanwhile messages to an offline user are all stored and pings
        stay fast (before, ternd waited for the lock, up to 2 s a write,
        and commits failed after the sender was answered)."""
        path = os.path.join(self.server.dir, "import.yml")
        with open(path, "w") as f:
            f.write(to_yaml(deep_merge(self.server.config, {"c2s": {"scram_iterations": 16384}})))
        lines = "".join("import%d@%s pw-%d\n" % (i, DOMAIN, i) for i in range(12))
        alice = self.raw_login("alice")
        proc = subprocess.Popen([TERNCTL, "-c", path, "adduser-batch"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=sanitizer_env())
        proc.stdin.write(lines)
        proc.stdin.close()
        sent, worst, errors = 0, 0.0, []
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            alice.send("<message to='bob@%s' type='chat' id='i%d'><body>during import %d"
                       "</body></message>" % (DOMAIN, sent, sent))
            sent += 1
            t0 = time.monotonic()
            self.assertEqual(alice.ping(timeout=30), "result")
            worst = max(worst, time.monotonic() - t0)
            errors += [e for e in alice.queue if e.get("type") == "error"]
        proc.wait(timeout=60)
        out, err = proc.stdout.read(), proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        check_sanitizer_text(err, "ternctl adduser-batch")
        self.assertEqual(proc.returncode, 0, err)
        self.assertIn("12 accounts created", out)
        self.assertGreater(sent, 5, "the import was too quick to test anything")
        self.assertEqual(errors, [], "messages bounced during the import")
        self.assertLess(worst, 0.5, "a ping took %.0f ms during the import" % (worst * 1000))
        self.assertEqual(self.stored_offline("bob"), sent)
        imported = self.raw()
        imported.login("import11", "pw-11")  # the accounts work

    def stored_offline(self, user):
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.server.dir, "tern.db"),
                             uri=True)
        try:
            return db.execute("SELECT count(*) FROM archive WHERE store = 'offline'"
                              " AND user = ?", (user,)).fetchone()[0]
        finally:
            db.close()


class BusyDatabaseTests(ServerTestCase):
    """Another process holding the database's write lock (an admin's
    sqlite3 shell, a stuck tool) costs users a short wait, not seconds."""
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"},
                         config={"modules": {"offline": {}}})

    def test_a_held_write_lock_stalls_the_server_briefly(self):
        alice = self.raw_login("alice")
        db = sqlite3.connect(os.path.join(self.server.dir, "tern.db"), timeout=10,
                             isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            t0 = time.monotonic()
            alice.send("<message to='bob@%s' type='chat' id='busy1'><body>while locked</body>"
                       "</message>" % DOMAIN)
            self.assertEqual(alice.ping(timeout=10), "result")
            took = time.monotonic() - t0
            time.sleep(max(0.0, 1.5 - took))
        finally:
            db.execute("ROLLBACK")
            db.close()
        self.assertLess(took, 0.8, "the server waited %.0f ms for the lock\n%s" % (
            took * 1000, self.server.log_tail(30)))
        self.assertEqual(alice.ping(), "result")


class SlowKeyRegistrationTests(ServerTestCase):
    """Registration and password change (XEP-0077) with 200 000 PBKDF2
    iterations for new keys: three derivations of a second or more each,
    done on worker threads while other users are served."""
    server_kwargs = dict(config={"c2s": {"scram_iterations": 200000},
                                 "modules": {"register": {"allow_registration": True,
                                                          "throttle_max": 0}}})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        add_user_with_iterations(cls.server, "alice", "alice-pw", 4096)

    def unauth(self):
        c = self.raw(timeout=30)
        c.open_stream()
        c.starttls()
        return c

    def send_iq(self, c, payload):
        c.send("<iq type='set' id='slow1'>%s</iq>" % payload)
        return lambda: self.iq_arrived(c)

    def iq_arrived(self, c):
        c._recv_some(time.monotonic() + 0.001)
        return any(e.tag == q(NS_CLIENT, "iq") for e in c.queue)

    def answer(self, c):
        return c.wait_for(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == "slow1",
                          timeout=60)

    def test_registration_and_password_change_do_not_stall_others(self):
        alice = self.raw_login("alice")
        c = self.unauth()
        done = self.send_iq(c, REG % ("slow", "slow-password-1"))
        worst = ping_until(alice, done, limit=60)
        self.assertEqual(self.answer(c).get("type"), "result")
        self.assertLess(worst, 0.2, "a ping took %.0f ms during registration" % (worst * 1000))

        slow = self.raw(timeout=30)
        slow.login("slow", "slow-password-1")
        done = self.send_iq(slow, REG % ("slow", "slow-password-2"))
        worst = ping_until(alice, done, limit=60)
        self.assertEqual(self.answer(slow).get("type"), "result")
        self.assertLess(worst, 0.2, "a ping took %.0f ms during a password change" % (worst * 1000))
        again = self.raw(timeout=30)
        again.login("slow", "slow-password-2")

    def test_stream_closed_during_registration(self):
        c = self.unauth()
        c.send("<iq type='set' id='gone'>%s</iq>" % (REG % ("gone", "gone-password-1")))
        c.close()
        alice = self.raw_login("alice")
        self.assertEqual(alice.ping(), "result")
        time.sleep(3)  # the derivation ends; its result is dropped
        self.assertEqual(alice.ping(), "result")
        self.assertNotIn("gone@%s" % DOMAIN, self.server.ternctl_ok("users", DOMAIN).stdout.split())


class AccountDeletionTests(ServerTestCase):
    """Deleting an account with a big history: the account goes at once,
    its archive a slice at a time, and other users are served meanwhile."""
    N = 60000
    server_kwargs = dict(users={"bob": "bob-pw", "big": "big-pw"},
                         config={"modules": {"register": {}, "mam": {}}})

    def archived(self, db):
        return db.execute("SELECT count(*) FROM archive WHERE user = 'big'").fetchone()[0]

    def test_deleting_a_big_account_does_not_stall_others(self):
        db = sqlite3.connect(os.path.join(self.server.dir, "tern.db"), timeout=30)
        try:
            now = int(time.time() * 1e6)
            start = db.execute("SELECT ifnull(max(rid), 0) FROM archive").fetchone()[0] + 1
            db.executemany("INSERT INTO archive (rid, seq, host, store, user, id, when_us, "
                           "with_jid, value) VALUES (?, ?, ?, 'archive', 'big', ?, ?, ?, ?)",
                           ((start + i, start + i, DOMAIN, "b%d" % i, now - 10**9 + i,
                             "carol@localhost", b"<message xmlns='jabber:client'/>")
                            for i in range(self.N)))
            db.commit()
            bob = self.raw_login("bob")
            big = self.raw_login("big")
            big.send("<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/>"
                     "</query></iq>")
            worst = 0.0
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                for _ in range(10):
                    t0 = time.monotonic()
                    self.assertEqual(bob.ping(), "result")
                    worst = max(worst, time.monotonic() - t0)
                if self.archived(db) == 0:
                    break
            self.assertEqual(self.archived(db), 0, "the deleted account's history is left")
        finally:
            db.close()
        self.assertNotIn("big@%s" % DOMAIN, self.server.ternctl_ok("users", DOMAIN).stdout.split())
        self.assertLess(worst, 0.2, "a ping took %.0f ms during the deletion" % (worst * 1000))
