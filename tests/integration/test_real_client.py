"""A real client from Debian against ternd: profanity (libstrophe), driven in
tmux, logs in over STARTTLS and over direct TLS, sends a message that a
slixmpp client receives, and gets the slixmpp client's answer.

With the IM modules loaded (ProfanityContactTests), profanity adds a
slixmpp user as a contact and both approve each other's subscription
(RFC 6121 §3), shows the contact's presence changes (§4), and exchanges
messages with it: an offline message waiting at login, both directions,
and the carbon copies (XEP-0280) of what the user's other client sends.
"""
import os
import re
import shutil
import time
import unittest
import uuid

from harness import DOMAIN, T_SHORT, ServerTestCase
from test_carbons import body_of, carbon, set_carbons
from test_roster import RClient, RosterCase
from tmux import TmuxApp

PANE_TIMEOUT = 15.0


class Profanity(TmuxApp):
    """profanity in a detached tmux session with a private HOME."""

    def __init__(self, test):
        super().__init__(test, "profanity", timeout=PANE_TIMEOUT)
        self.log = os.path.join(self.home, ".local", "share", "profanity", "logs",
                                "profanity.log")

    def start(self):
        inner = " ".join("%s=%s" % (k, self.env[k]) for k in
                         ("HOME", "TERM", "XDG_CONFIG_HOME", "XDG_DATA_HOME"))
        self.new_session("env %s profanity -l DEBUG" % inner)
        self.wait_screen(r"Type '/help'|Profanity\. Type /help")
        return self

    def type(self, text):
        """Type `text` literally and press Enter."""
        self.send_keys(text)
        self.enter()

    def diagnostics(self):
        return "log tail:\n" + self.log_tail()

    def wait_log(self, pattern, timeout=PANE_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.log_text())
            if m:
                return m
            if time.monotonic() > deadline:
                self.test.fail("profanity's log never had %r; log tail:\n%s" %
                               (pattern, self.log_tail()))
            time.sleep(0.2)

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def login(self, jid, password, port, direct_tls=False):
        """/connect, answer the password prompt (and the certificate prompt of
        direct TLS); returns the full JID profanity was bound to."""
        tls = "legacy" if direct_tls else "trust"
        self.type("/connect %s server 127.0.0.1 port %d tls %s" % (jid, port, tls))
        self.wait_screen(r"Enter password:")
        self.type(password)
        pattern = r"(%s/\S+) logged in successfully" % re.escape(jid)
        if direct_tls:
            # libstrophe asks about the self-signed certificate.
            m = self.wait_screen(r"Use '/tls allow' to accept this certificate|" + pattern)
            if m.group(1) is None:
                self.type("/tls allow")
        return self.wait_screen(pattern).group(1)

    def quit(self):
        self.send_keys("/quit", check=False)
        self.enter(check=False)
        self.wait_gone()
        self.stop()


class ProfanityTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"})

    def setUp(self):
        super().setUp()
        for tool in ("profanity", "tmux"):
            self.assertIsNotNone(shutil.which(tool), "%s is not installed (contrib/deps.sh "
                                 "--test installs it)" % tool)

    def profanity(self):
        p = Profanity(self)
        self.addCleanup(p.quit)
        return p.start()

    def exchange(self, direct_tls):
        bob = self.slix("bob", resource="slix")
        prof = self.profanity()
        port = self.server.tls_port if direct_tls else self.server.c2s_port
        alice_jid = prof.login("alice@localhost", "alice-pw", port, direct_tls)
        self.assertTrue(alice_jid.startswith("alice@localhost/"))
        body = "hello from profanity %s" % uuid.uuid4().hex[:8]
        mark = bob.mark()
        prof.type("/msg bob@localhost %s" % body)
        msg = bob.wait_message(body, since=mark, timeout=15)
        self.assertEqual(str(msg["from"]), alice_jid)
        self.assertEqual(msg["type"], "chat")
        # And back: bob answers alice's full JID; profanity receives it.
        answer = "hello back %s" % uuid.uuid4().hex[:8]
        bob.send_message(alice_jid, answer)
        prof.wait_log(r"RECV: <message[^\n]*%s" % re.escape(answer))
        prof.wait_screen(re.escape(answer))  # the chat window /msg opened shows it

    def test_profanity_over_starttls_sends_to_slixmpp(self):
        self.exchange(direct_tls=False)

    def test_profanity_over_direct_tls_sends_to_slixmpp(self):
        self.exchange(direct_tls=True)


# The IM modules the build makes (Makefile.am), with their default options.
IM_MODULES = {m: {} for m in ("roster", "offline", "carbons", "mam", "blocking", "private",
                              "vcard", "search", "pep", "bookmarks", "register", "invites")}
CONTACT_USERS = ("alice", "bob", "carol", "dave", "erin", "frank")
# A line of profanity's console or chat window: "HH:MM:SS - text".
TIMESTAMPED = r"(?m)^\d\d:\d\d:\d\d - "


@unittest.skipUnless(shutil.which("profanity") and shutil.which("tmux"),
                     "profanity or tmux is not installed (contrib/deps.sh --test installs them)")
class ProfanityContactTests(RosterCase):
    """profanity as a user's everyday client, against slixmpp contacts that
    leave subscription answers to the test (RClient). Each test uses its own
    pair of accounts and a fresh profanity (own HOME and XDG directories)."""

    server_kwargs = dict(users={u: u + "-pw" for u in CONTACT_USERS},
                         config={"modules": IM_MODULES})

    def profanity(self, user):
        """A profanity logged in as `user` over STARTTLS, showing every
        presence change in its console and how many contacts each group of
        its roster panel holds; returns (Profanity, full JID)."""
        p = Profanity(self)
        self.addCleanup(p.quit)
        p.start()
        p.type("/presence console all")
        p.wait_screen(r"All presence updates will appear in the console")
        p.type("/roster count items")
        p.wait_screen(r"Roster header count set to items")
        jid = p.login("%s@%s" % (user, DOMAIN), user + "-pw", self.server.c2s_port)
        return p, jid

    def clear(self, p):
        """Empty profanity's current window, so that what a wait finds next
        was printed after this point."""
        p.type("/clear")
        deadline = time.monotonic() + PANE_TIMEOUT
        while re.search(TIMESTAMPED, p.screen(history=False)):
            if time.monotonic() > deadline:
                self.fail("/clear left:\n%s" % p.screen(history=False))
            time.sleep(0.1)

    def sub_status(self, p, contact, status):
        self.clear(p)
        p.type("/sub show %s" % contact)
        p.wait_screen(r"%s subscription status: %s\." % (re.escape(contact), status),
                      history=False)

    def test_add_contact_and_approve_both_ways(self):
        """/roster add and /sub request: the contact gets subscribe from the
        user's bare JID and the user's roster says ask=subscribe; the
        contact approves and asks back, /sub allow approves: both rosters
        end in subscription=both, and profanity shows it."""
        bob = self.client("bob", "slix")
        # alice's second resource reads her roster as the server keeps it.
        watcher = self.client("alice", "watcher", presence=False)
        prof, alice_jid = self.profanity("alice")

        mw = watcher.mark()
        prof.type("/roster add bob@localhost")
        prof.wait_screen(r"Roster item added: bob@localhost")
        self.wait_push(watcher, "bob@localhost", mw, subscription="none", ask=None, name=None)

        mw, mb = watcher.mark(), bob.mark()
        prof.type("/sub request bob@localhost")
        prof.wait_screen(r"Sent subscription request to bob@localhost\.")
        req = self.wait_presence(bob, mb, "subscribe")
        self.assertEqual(str(req["from"]), "alice@localhost")  # §3.1.2: the bare JID
        self.wait_push(watcher, "bob@localhost", mw, subscription="none", ask="subscribe")
        self.assertEqual(self.roster_items(watcher)["bob@localhost"],
                         dict(subscription="none", ask="subscribe", approved=None, name=None,
                              groups=[]))
        self.assertEqual(self.roster_items(bob), {})  # a pending request is no item yet

        # bob approves: alice is subscribed to bob and sees him online.
        mw = watcher.mark()
        self.send(bob, "<presence to='alice@localhost' type='subscribed'/>")
        self.wait_push(watcher, "bob@localhost", mw, subscription="to", ask=None)
        prof.wait_screen(r"Subscription received from bob@localhost")
        prof.wait_screen(r"bob@localhost \(slix\) is online")

        # bob asks back; profanity shows the request, /sub allow approves it.
        self.send(bob, "<presence to='alice@localhost' type='subscribe'/>")
        prof.wait_screen(r"Received authorization request from bob@localhost")
        mw, mb = watcher.mark(), bob.mark()
        prof.type("/sub allow bob@localhost")
        prof.wait_screen(r"Accepted subscription for bob@localhost")
        ok = self.wait_presence(bob, mb, "subscribed")
        self.assertEqual(str(ok["from"]), "alice@localhost")
        # §3.1.5: approving sends the approver's current presence (profanity's).
        self.wait_presence(bob, mb, "available", alice_jid)
        self.wait_push(watcher, "bob@localhost", mw, subscription="both", ask=None)
        self.assertEqual(self.roster_items(watcher)["bob@localhost"]["subscription"], "both")
        self.assertEqual(self.roster_items(watcher)["bob@localhost"]["ask"], None)
        self.assertEqual(self.roster_items(bob)["alice@localhost"]["subscription"], "both")
        self.sub_status(prof, "bob@localhost", "both")
        # One request and one approval reached bob, nothing more.
        self.assertEqual(len(self.presences(bob, 0, "subscribe")), 1)
        self.assertEqual(len(self.presences(bob, 0, "subscribed")), 1)

    def test_contact_presence_changes(self):
        """dave (a contact both ways) goes away with a status text, comes
        back, and goes offline: profanity's console prints each change and
        its roster panel moves him between the groups."""
        setup = self.client("carol", "setup")
        dave = self.client("dave", "slix")
        self.subscribe_both(setup, dave)
        setup.disconnect()
        prof, _ = self.profanity("carol")
        # At login profanity gets dave's presence (the server's probe).
        prof.wait_screen(r"Online \(1\)")
        self.sub_status(prof, "dave@localhost", "both")

        self.clear(prof)
        self.send(dave, "<presence><show>away</show><status>in a meeting</status></presence>")
        prof.wait_screen(r'dave@localhost \(slix\) is away, "in a meeting"', history=False)
        prof.wait_screen(r"Away \(1\)", history=False)

        self.clear(prof)
        self.send(dave, "<presence/>")
        prof.wait_screen(r"dave@localhost \(slix\) is online", history=False)
        prof.wait_screen(r"Online \(1\)", history=False)

        self.clear(prof)
        self.send(dave, "<presence type='unavailable'/>")
        prof.wait_screen(r"dave@localhost \(slix\) is offline", history=False)
        prof.wait_screen(r"Offline \(1\)", history=False)

    def test_messages_both_ways(self):
        """A message waiting offline appears at login; profanity's /msg
        reaches the contact from profanity's full JID; the contact's answers,
        to the full and to the bare JID, appear; the user's other client
        gets carbons of both directions, and profanity shows the carbon of
        what that client sent."""
        tag = uuid.uuid4().hex[:8]
        phone = self.client("erin", "phone")
        frank = self.client("frank", "slix")
        self.subscribe_both(phone, frank)
        phone.disconnect()
        waiting = "while-you-were-away-%s" % tag
        frank.send_message("erin@localhost", waiting)
        frank.sync()

        prof, erin_jid = self.profanity("erin")
        # The offline message opens a chat window with frank.
        prof.wait_log(r"RECV: <message[^\n]*%s" % re.escape(waiting))
        phone = self.client("erin", "phone")
        self.assertEqual(set_carbons(phone, True), "result")

        body = "hello-from-profanity-%s" % tag
        mf, mp = frank.mark(), phone.mark()
        prof.type("/msg frank@localhost %s" % body)
        msg = frank.wait_message(body, since=mf, timeout=15)
        self.assertEqual(str(msg["from"]), erin_jid)
        self.assertEqual(msg["type"], "chat")
        sent = phone.wait_stanza(lambda s: s.name == "message" and carbon(s, "sent") is not None,
                                 since=mp)
        self.assertEqual(body_of(carbon(sent, "sent")), body)
        # The chat window /msg opened holds the offline message and ours.
        prof.wait_screen(r"frank@localhost/slix: %s" % re.escape(waiting))
        prof.wait_screen(r"me: %s" % re.escape(body))

        answer = "hello-back-%s" % tag
        mp = phone.mark()
        frank.send_message(erin_jid, answer)
        prof.wait_screen(r"frank@localhost/slix: %s" % re.escape(answer))
        received = phone.wait_stanza(
            lambda s: s.name == "message" and carbon(s, "received") is not None, since=mp)
        self.assertEqual(body_of(carbon(received, "received")), answer)

        to_bare = "to-your-bare-jid-%s" % tag
        frank.send_message("erin@localhost", to_bare)
        prof.wait_screen(r"frank@localhost/slix: %s" % re.escape(to_bare))

        # erin writes from her phone: profanity shows the sent carbon as hers.
        from_phone = "from-the-phone-%s" % tag
        mf = frank.mark()
        phone.send_message("frank@localhost", from_phone)
        self.assertEqual(str(frank.wait_message(from_phone, since=mf)["from"]), phone.jid)
        prof.wait_screen(r"me: %s" % re.escape(from_phone))

        # The offline message went to profanity alone, not again to the phone.
        self.assertNotIn(waiting, [s["body"] for s in phone.received if s.name == "message"])
        # Each message reached frank once, and no other message with a body
        # did (chat states, which profanity sends as it likes, aside).
        time.sleep(T_SHORT)
        self.assertEqual([s["body"] for s in frank.received if s.name == "message" and
                          s["body"]], [body, from_phone])
