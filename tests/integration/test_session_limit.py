"""How many resources one account may bind (limits.max_sessions_per_user):
one too many gets the RFC 6120 §7.6.2.1 resource-constraint error while the
others keep working, a kick-old replacement of a bound resource is no new
one, and a freed slot can be used again; and presence answers (RFC 6121
§4.3.2) carry every session of a user, beyond 64 when the limit allows."""
import time

from harness import (NS_BIND, NS_CLIENT, ServerTestCase, T_REPLY, q, stanza_error)
from test_roster import RosterCase, bare

LIMIT = 3


def bind_raw(c, resource):
    """Send a bind for `resource` on an authenticated, restarted stream;
    returns the answer."""
    c.send("<iq type='set' id='b-%s'><bind xmlns='%s'><resource>%s</resource></bind></iq>"
           % (resource, NS_BIND, resource))
    return c.expect(q(NS_CLIENT, "iq"))


class SessionLimitTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-secret", "bob": "bob-secret"},
                         config={"limits": {"max_sessions_per_user": LIMIT}})

    def authed(self, user):
        c = self.raw(direct_tls=True)
        c.open_stream()
        self.assertEqual(c.auth_scram(user, self.server.users[user]), ("success", None))
        c.restart()
        return c

    def test_one_resource_too_many_gets_resource_constraint(self):
        first = [self.raw_login("alice", "r%d" % i) for i in range(LIMIT)]
        extra = self.authed("alice")
        answer = bind_raw(extra, "one-too-many")
        self.assertEqual(answer.get("type"), "error")
        self.assertEqual(stanza_error(answer), ("wait", "resource-constraint"))
        self.assertIn("already has %d sessions" % LIMIT, self.server.log_text())
        # The others are untouched; another account is not affected.
        for c in first:
            self.assertEqual(c.ping(), "result")
        self.assertEqual(self.raw_login("bob", "b1").ping(), "result")
        # Replacing a bound resource (kick_old) adds none: allowed at the limit.
        self.assertEqual(bind_raw(extra, "r0").get("type"), "result")
        self.assertEqual(first[0].stream_error(), "conflict")
        # Once a session ends, its slot can be used again.
        first[1].end()
        deadline = time.monotonic() + T_REPLY
        while True:
            again = self.authed("alice")
            answer = bind_raw(again, "later")
            if answer.get("type") == "result" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(answer.get("type"), "result")


MANY = 70  # more than the 64 presences the roster module used to copy


class ManySessionsPresenceTests(RosterCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"},
                         config={"modules": {"roster": {}},
                                 "limits": {"max_sessions_per_user": 100}})

    def test_probe_answer_carries_every_session(self):
        a = self.client("alice", "main")
        b = self.client("bob", "first")
        self.subscribe_both(a, b)
        b.disconnect()
        for i in range(MANY - 1):
            self.raw_login("alice", "r%d" % i)
        # bob comes back: his server probes alice, whose every available
        # session answers (RFC 6121 §4.3.2).
        c = self.raw(direct_tls=True)
        c.login("bob", "bob-pw", "second")
        seen = set()
        deadline = time.monotonic() + T_REPLY * 2
        while len(seen) < MANY and time.monotonic() < deadline:
            el = c.read_element(timeout=max(0.1, deadline - time.monotonic()))
            if el.tag == q(NS_CLIENT, "presence") and el.get("type") is None and \
                    el.get("from", "").startswith(bare("alice") + "/"):
                seen.add(el.get("from"))
        self.assertEqual(len(seen), MANY)
