"""Which accounts exist, answered from memory: a message to a user with no
session is stored offline when the account exists and bounced
(service-unavailable, RFC 6121 §8.5.1) when it does not.  The server keeps
the account names in memory; ternctl adds accounts by writing to the
database itself while the server runs, and the server must never answer
"no such user" for an account added that way (it notices the other
process's write and looks the name up)."""
import time

from harness import DOMAIN, NS_CLIENT, ServerTestCase, q, stanza_error

USERS = {"alice": "alice-pw", "gone": "gone-pw"}


class AccountNamesTests(ServerTestCase):
    server_kwargs = dict(users=dict(USERS), config={"modules": {"offline": {}}})

    def send(self, alice, to, ident, body):
        """alice sends a chat message; the error that came back, or None."""
        alice.send("<message to='%s@%s' type='chat' id='%s'><body>%s</body></message>"
                   "<iq type='get' id='sync-%s'><ping xmlns='urn:xmpp:ping'/></iq>"
                   % (to, DOMAIN, ident, body, ident))
        err = None
        while True:  # a bounce comes before the ping's answer
            el = alice.read_element()
            if el.tag == q(NS_CLIENT, "message") and el.get("id") == ident:
                err = stanza_error(el)
            if el.tag == q(NS_CLIENT, "iq") and el.get("id") == "sync-" + ident:
                return err

    def assert_gets(self, user, body):
        c = self.raw_login(user, resource="r")
        el = c.wait_for(lambda e: e.tag == q(NS_CLIENT, "message"))
        self.assertEqual(el.findtext(q(NS_CLIENT, "body")), body)
        c.close()

    def test_unknown_user_bounces(self):
        alice = self.raw_login("alice", resource="a1")
        err = self.send(alice, "nobody", "n1", "anyone?")
        self.assertIsNotNone(err, "no bounce for a user that does not exist")
        self.assertIn("service-unavailable", str(err))

    def test_user_added_by_ternctl_while_running_gets_the_message_offline(self):
        alice = self.raw_login("alice", resource="a2")
        # Asked before the account exists: "no" (and held in memory).
        self.assertIsNotNone(self.send(alice, "late", "l1", "too early"))
        self.server.add_user("late", "late-pw")
        self.assertIsNone(self.send(alice, "late", "l2", "now you exist"),
                          "a stale 'no such user' for an account ternctl added")
        self.assert_gets("late", "now you exist")

    def test_accounts_added_in_a_batch_are_known_at_once(self):
        alice = self.raw_login("alice", resource="a3")
        names = ["b%d" % i for i in range(5)]
        for n in names:  # each one a "no" first
            self.assertIsNotNone(self.send(alice, n, "x" + n, "early"))
        self.server.ternctl_ok("adduser-batch", input="".join(
            "%s@%s pw-%s-secret\n" % (n, DOMAIN, n) for n in names))
        for n in names:
            self.server.users[n] = "pw-%s-secret" % n
            self.assertIsNone(self.send(alice, n, "y" + n, "hello " + n), n)
        self.assert_gets("b3", "hello b3")

    def test_deleted_user_bounces(self):
        alice = self.raw_login("alice", resource="a4")
        self.assertIsNone(self.send(alice, "gone", "g1", "still there?"))
        self.server.ternctl_ok("deluser", "gone@%s" % DOMAIN)
        err = self.send(alice, "gone", "g2", "and now?")
        self.assertIsNotNone(err, "a deleted account still takes messages")
        self.assertIn("service-unavailable", str(err))

    def test_names_are_read_again_after_another_process_wrote(self):
        """After ternctl's write the server reads the names again (off the
        event loop); then unknown names are answered from memory again,
        and accounts added meanwhile are still known."""
        alice = self.raw_login("alice", resource="a5")
        reads = lambda: self.server.log_text().count("account names read again")
        before = reads()
        self.server.add_user("reread", "reread-pw")
        deadline = time.monotonic() + 10
        while reads() == before:
            self.assertLess(time.monotonic(), deadline, "the names were never read again")
            self.assertIsNotNone(self.send(alice, "nobody-%d" % int(time.monotonic() * 10),
                                           "r%d" % int(time.monotonic() * 10), "poke"))
            time.sleep(0.3)
        self.assertIsNone(self.send(alice, "reread", "r-ok", "known"))
        self.assertIsNotNone(self.send(alice, "still-nobody", "r-no", "unknown"))
