"""go-sendxmpp (Debian's, on the go-xmpp library), a real command-line client,
logs in to ternd over STARTTLS and over direct TLS and sends a message that
a slixmpp client receives.  It restarts its stream after SASL with a newline
and an XML declaration before the new header, which the server must take
as whitespace between streams (RFC 6120 §4.3.3, §6.4.6).  Debian 12's
version knows only SASL PLAIN, so the server allows PLAIN (over TLS only)
here, as an admin whose users run it would."""
import shutil
import subprocess
import unittest

from harness import DOMAIN, ServerTestCase, SlixClient

GO_SENDXMPP = shutil.which("go-sendxmpp")


@unittest.skipUnless(GO_SENDXMPP, "go-sendxmpp is not installed (contrib/deps.sh --test)")
class GoSendxmppTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"},
                         config={"c2s": {"allow_plain": True}})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bob = SlixClient(cls.server, "bob", resource="phone").connect()

    @classmethod
    def tearDownClass(cls):
        cls.bob.disconnect()
        super().tearDownClass()

    def send(self, body, port, direct_tls):
        args = [GO_SENDXMPP, "-u", "alice@" + DOMAIN, "-p", "alice-pw",
                "-j", "127.0.0.1:%d" % port, "-n", "--timeout", "20"]
        if direct_tls:
            args.append("-t")
        r = subprocess.run(args + ["bob@" + DOMAIN], input=body, capture_output=True,
                           text=True, timeout=60, env={"HOME": self.server.dir, "PATH": "/usr/bin"})
        self.assertEqual(r.returncode, 0, "go-sendxmpp failed: %s%s" % (r.stdout, r.stderr))

    def test_starttls_login_and_message(self):
        mark = self.bob.mark()
        self.send("hello over starttls", self.server.c2s_port, False)
        msg = self.bob.wait_message("hello over starttls", since=mark)
        self.assertEqual(str(msg["from"]).split("/")[0], "alice@" + DOMAIN)

    def test_direct_tls_login_and_message(self):
        mark = self.bob.mark()
        self.send("hello over direct tls", self.server.tls_port, True)
        self.bob.wait_message("hello over direct tls", since=mark)
