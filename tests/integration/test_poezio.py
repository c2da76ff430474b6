"""A real client from Debian 12 against ternd: poezio 0.14 (slixmpp 1.8),
driven in tmux, logs in on its first connection with its default settings
and chats with a slixmpp user.

poezio tries each SCRAM -PLUS mechanism with tls-unique, which TLS 1.3 does
not define, then SCRAM with the 'y' flag: the server must not count those
attempts as failed logins nor take the 'y' for a downgrade.  The only
settings made are the ones a user of a server with a self-signed
certificate makes: the account, the server's address and port, the
server's certificate as the one to trust (ca_cert_path) and its SPKI
fingerprint (certificate), as poezio stores it once the user accepted it.

poezio refuses to run as root: as root, the tmux server and poezio run as
the unprivileged user "nobody", in a private HOME.
"""
import os
import re
import shutil
import signal
import subprocess
import time
import unittest
import uuid

from harness import DOMAIN, ServerTestCase
from tmux import TmuxApp

PANE_TIMEOUT = 20.0


def spki_fingerprint(cert_path):
    """The SHA-256 of the certificate's SubjectPublicKeyInfo, as poezio writes
    it in its 'certificate' option: colon-separated upper-case hex."""
    pem = subprocess.run(["openssl", "x509", "-in", cert_path, "-pubkey", "-noout"],
                         capture_output=True, check=True, timeout=10).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pem,
                         capture_output=True, check=True, timeout=10).stdout
    import hashlib
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


class Poezio(TmuxApp):
    """poezio in a detached tmux session with a private HOME."""

    def __init__(self, test, server, user, password):
        super().__init__(test, "poezio", timeout=PANE_TIMEOUT, as_nobody=True)
        self.debug = os.path.join(self.home, "debug.log")
        self.stderr = os.path.join(self.home, "stderr.log")
        cert = os.path.join(self.home, "server.crt")
        shutil.copy(server.cert_path, cert)
        confdir = os.path.join(self.home, ".config", "poezio")
        os.makedirs(confdir)
        with open(os.path.join(confdir, "poezio.cfg"), "w") as f:
            f.write("[Poezio]\njid = %s@%s\npassword = %s\ncustom_host = 127.0.0.1\n"
                    "custom_port = %d\nca_cert_path = %s\ncertificate = %s\n" %
                    (user, DOMAIN, password, server.c2s_port, cert,
                     spki_fingerprint(server.cert_path)))
        self.give_home_to_user()

    def start(self):
        self.new_session("exec poezio -d %s 2>%s" % (self.debug, self.stderr))
        # The pane's process leads its own process group, poezio included.
        shown = self.tmux("display-message", "-p", "-t", self.session, "#{pane_pid}",
                          check=False)
        if shown.returncode != 0:
            self.test.fail("poezio stopped as soon as it started (%s); its stderr:\n%s\n"
                           "debug log tail:\n%s" % (shown.stderr.strip(), self.read(self.stderr),
                                                    self.debug_tail()))
        self.pane_pid = int(shown.stdout.strip())
        return self

    @staticmethod
    def read(path):
        try:
            with open(path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError as e:
            return "(%s)" % e

    def command(self, text):
        """Type a /command: '/' opens the command line, then the rest and Enter."""
        self.send_keys("/")
        time.sleep(0.3)
        self.send_keys(text)
        time.sleep(0.2)
        self.enter()

    def diagnostics(self):
        return "debug log tail:\n" + self.debug_tail()

    def debug_tail(self, n=30):
        try:
            with open(self.debug, errors="replace") as f:
                lines = [l for l in f.read().splitlines()
                         if "Refresh" not in l and "keyboard" not in l]
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def quit(self):
        """/quit, then make sure nothing of this poezio is left: a poezio
        whose terminal is gone spins on it."""
        if getattr(self, "pane_pid", None):
            self.command("quit")
            self.wait_gone()
        self.stop()

    def kill_leftovers(self):
        if getattr(self, "pane_pid", None):
            try:
                os.killpg(self.pane_pid, signal.SIGKILL)
            except OSError:
                pass  # already gone


@unittest.skipUnless(shutil.which("poezio") and shutil.which("tmux"),
                     "poezio or tmux is not installed (contrib/deps.sh --test installs them)")
class PoezioTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"})

    def test_poezio_logs_in_first_time_and_chats(self):
        bob = self.slix("bob", resource="slix")
        p = Poezio(self, self.server, "alice", "alice-pw")
        self.addCleanup(p.quit)
        p.start()
        jid = p.wait_screen(r"Your JID is (alice@localhost/\S+)").group(1)
        log = self.server.log_text()
        self.assertEqual(log.count("authenticated alice@localhost"), 1, log)
        self.assertNotIn("authentication failure", log)
        self.assertNotIn("too many authentication failures", log)
        # alice writes to bob, who answers her full JID.
        body = "hello from poezio %s" % uuid.uuid4().hex[:8]
        mark = bob.mark()
        p.command("message bob@localhost %s" % body)
        msg = bob.wait_message(body, since=mark, timeout=15)
        self.assertEqual(str(msg["from"]), jid)
        answer = "hello back %s" % uuid.uuid4().hex[:8]
        bob.send_message(jid, answer)
        p.wait_screen(re.escape(answer))
