"""Storage under load: the SQLite write-ahead log stays bounded while
messages are stored without pause (offline queue and MAM archive), and
slow work (key derivation, admin imports) never stalls the sessions that
are already logged in."""
import os
import sqlite3
import threading
import time

from harness import DOMAIN, ServerTestCase

FLOOD = 15000          # messages stored during the flood
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
