"""A real client from Debian against ternd: profanity (libstrophe), driven in
tmux, logs in over STARTTLS and over direct TLS, sends a message that a
slixmpp client receives, and gets the slixmpp client's answer."""
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid

from harness import ServerTestCase

PANE_TIMEOUT = 15.0


class Profanity:
    """profanity in a detached tmux session with a private HOME."""

    def __init__(self, test):
        self.test = test
        self.home = tempfile.mkdtemp(prefix="profanity-home-")
        self.session = "tern-prof-%s" % uuid.uuid4().hex[:8]
        self.env = dict(os.environ, HOME=self.home, TERM="xterm-256color", TMUX_TMPDIR=self.home,
                        XDG_CONFIG_HOME=os.path.join(self.home, ".config"),
                        XDG_DATA_HOME=os.path.join(self.home, ".local", "share"))
        self.log = os.path.join(self.home, ".local", "share", "profanity", "logs",
                                "profanity.log")

    def tmux(self, *args, check=True):
        # A private tmux server (-L) per instance: nothing shared with other tmux users.
        return subprocess.run(["tmux", "-L", self.session] + list(args), env=self.env,
                              capture_output=True, text=True, timeout=10, check=check)

    def start(self):
        inner = " ".join("%s=%s" % (k, self.env[k]) for k in
                         ("HOME", "TERM", "XDG_CONFIG_HOME", "XDG_DATA_HOME"))
        self.tmux("new-session", "-d", "-s", self.session, "-x", "200", "-y", "50",
                  "env %s profanity -l DEBUG" % inner)
        self.wait_screen(r"Type '/help'|Profanity\. Type /help")
        return self

    def screen(self):
        return self.tmux("capture-pane", "-t", self.session, "-p", "-S", "-200").stdout

    def type(self, text):
        """Type `text` literally and press Enter."""
        self.tmux("send-keys", "-t", self.session, "-l", text)
        self.tmux("send-keys", "-t", self.session, "Enter")

    def wait_screen(self, pattern, timeout=PANE_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            m = re.search(pattern, text)
            if m:
                return m
            if time.monotonic() > deadline:
                self.test.fail("profanity never showed %r; screen:\n%s\nlog tail:\n%s" %
                               (pattern, text, self.log_tail()))
            time.sleep(0.2)

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
        self.tmux("send-keys", "-t", self.session, "-l", "/quit", check=False)
        self.tmux("send-keys", "-t", self.session, "Enter", check=False)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.tmux("has-session", "-t", self.session, check=False).returncode != 0:
                break
            time.sleep(0.1)
        self.tmux("kill-server", check=False)
        shutil.rmtree(self.home, ignore_errors=True)


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
