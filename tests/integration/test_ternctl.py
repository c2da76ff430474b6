"""ternctl against a running ternd: users, adduser, passwd and deluser (which
end live sessions), status, reload and SIGHUP (which keep sessions and apply
the new configuration; a broken one is refused), check-config, stop; that
passwords are stored only as SCRAM keys and private files are private; and
SIGTERM, which closes every client and component stream with a
system-shutdown stream error before ternd exits 0."""
import os
import re
import signal
import time

from harness import (DOMAIN, NS_COMPONENT, LoginFailed, RawClient, RawComponent, Server,
                     ServerTestCase, SlixClient, deep_merge, q, to_yaml)

NS_VERSION = "jabber:iq:version"


class AccountCommandTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"})

    def test_users_lists_the_accounts(self):
        r = self.server.ternctl_ok("users")
        self.assertEqual(r.stdout.split(), sorted(u + "@localhost" for u in self.server.users))
        r = self.server.ternctl_ok("users", DOMAIN)
        self.assertIn("alice@localhost", r.stdout.split())
        r = self.server.ternctl("users", "unknown.example")
        self.assertEqual(r.returncode, 1)

    def test_adduser_then_login_and_duplicate_refused(self):
        self.server.add_user("erin", "erin-pw")
        self.assertIn("erin@localhost", self.server.ternctl_ok("users").stdout.split())
        c = self.slix("erin", resource="new")
        self.assertEqual(c.ping(), "result")
        r = self.server.ternctl("adduser", "erin@localhost", "--password-stdin", input="x\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("exists", r.stderr)
        # The failed adduser did not change the password.
        c2 = self.slix("erin", resource="again")
        self.assertEqual(c2.ping(), "result")

    def test_adduser_refuses_bad_input(self):
        for args, stdin in ((("adduser", "nohost"), "pw\n"),
                            (("adduser", "x@unknown.example"), "pw\n"),
                            (("adduser", "x@localhost/res"), "pw\n"),
                            (("adduser", "x@localhost"), "\n")):
            with self.subTest(args=args, stdin=stdin):
                r = self.server.ternctl(*args, "--password-stdin", input=stdin)
                self.assertNotEqual(r.returncode, 0)
        self.assertNotIn("x@localhost", self.server.ternctl_ok("users").stdout)

    def test_adduser_batch_creates_accounts_that_log_in(self):
        lines = ("# accounts for the pilot\n"
                 "ivy@localhost ivy-pw\n"
                 "\n"
                 "Jack@localhost pass with  spaces\r\n"
                 "kate@localhost\ttab-separated")
        r = self.server.ternctl_ok("adduser-batch", input=lines)
        self.assertEqual(r.stdout.strip(), "3 accounts created")
        for secret in ("ivy-pw", "pass with", "tab-separated"):
            self.assertNotIn(secret, r.stdout + r.stderr)
        listed = self.server.ternctl_ok("users").stdout.split()
        for jid in ("ivy@localhost", "jack@localhost", "kate@localhost"):
            self.assertIn(jid, listed)
        self.server.users.update({"ivy": "ivy-pw", "jack": "pass with  spaces",
                                  "kate": "tab-separated"})
        for user in ("ivy", "jack", "kate"):
            with self.subTest(user=user):
                self.assertEqual(self.raw_login(user, "batch").ping(), "result")
        # The password is the whole rest of the line: a prefix of it fails.
        c = self.raw(direct_tls=True)
        c.open_stream()
        self.assertEqual(c.auth_scram("jack", "pass with"), ("failure", "not-authorized"))

    def test_adduser_batch_is_all_or_nothing(self):
        lines = ("lena@localhost lena-pw\n"         # 1: fine on its own
                 "mike@unknown.example pw\n"        # 2: not a host of this server
                 "nina@localhost\n"                 # 3: no password
                 "alice@localhost other-pw\n"       # 4: exists
                 "olga@localhost/res pw\n"          # 5: not a bare JID
                 "lena@localhost again-pw\n"        # 6: twice in the input
                 "paul@localhost " + "x" * 1100 + "\n")  # 7: password too long
        r = self.server.ternctl("adduser-batch", input=lines)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        for n, what in ((2, "unknown host"), (3, "no password"), (4, "account exists"),
                        (5, "not an account JID"), (6, "also on line 1"),
                        (7, "password too long")):
            with self.subTest(line=n):
                self.assertRegex(r.stderr, r"line %d: [^\n]*%s" % (n, what))
        self.assertNotRegex(r.stderr, r"line 1:")
        self.assertIn("no account created", r.stderr)
        listed = self.server.ternctl_ok("users").stdout.split()
        self.assertNotIn("lena@localhost", listed)
        self.assertNotIn("paul@localhost", listed)
        # alice keeps her password.
        self.assertEqual(self.raw_login("alice", "still").ping(), "result")

    def test_adduser_batch_of_nothing_and_a_stray_argument(self):
        r = self.server.ternctl_ok("adduser-batch", input="# nothing here\n\n")
        self.assertEqual(r.stdout.strip(), "0 accounts created")
        r = self.server.ternctl("adduser-batch", "extra-argument", input="")
        self.assertEqual(r.returncode, 2)

    def test_passwd_kicks_live_session_and_old_password_fails(self):
        self.server.add_user("frank", "old-pw")
        live = self.slix("frank", resource="live")
        raw = self.raw_login("frank", "raw")
        r = self.server.ternctl_ok("passwd", "frank@localhost", "--password-stdin",
                                   input="new-pw\n")
        self.server.users["frank"] = "new-pw"
        self.assertIn("ended 2 live sessions", r.stderr)
        self.assertEqual(raw.stream_error(), "not-authorized")
        self.assertTrue(raw.wait_closed())
        live.wait_disconnected()
        self.assertEqual(live.stream_errors, ["not-authorized"])
        with self.assertRaises(LoginFailed):
            self.slix("frank", password="old-pw", resource="old")
        c = self.raw(direct_tls=True)
        c.open_stream()
        self.assertEqual(c.auth_scram("frank", "old-pw"), ("failure", "not-authorized"))
        new = self.slix("frank", password="new-pw", resource="new")
        self.assertEqual(new.ping(), "result")

    def test_deluser_kicks_live_session_and_removes_the_account(self):
        self.server.add_user("gina", "gina-pw")
        victim = self.slix("gina", resource="live")
        other = self.slix("alice", resource="watcher")
        self.server.ternctl_ok("deluser", "gina@localhost")
        del self.server.users["gina"]
        victim.wait_disconnected()
        self.assertEqual(victim.stream_errors, ["not-authorized"])
        self.assertNotIn("gina@localhost", self.server.ternctl_ok("users").stdout.split())
        with self.assertRaises(LoginFailed):
            self.slix("gina", password="gina-pw", resource="again")
        # The account is gone for routing too: a message bounces.
        mark = other.mark()
        other.send_message("gina@localhost", "hello?")
        err = other.wait_message(mtype="error", since=mark)
        self.assertEqual(str(err["from"]), "gina@localhost")
        # Other accounts are untouched.
        self.assertEqual(other.ping(), "result")
        r = self.server.ternctl("deluser", "gina@localhost")
        self.assertEqual(r.returncode, 1)

    def test_passwords_are_stored_only_as_scram_keys(self):
        secret = "Very-Distinctive-Passw0rd-%d" % os.getpid()
        r = self.server.ternctl_ok("adduser", "hank@localhost", "--password-stdin",
                                   input=secret + "\n")
        self.server.users["hank"] = secret
        self.assertNotIn(secret, r.stdout + r.stderr)
        c = self.raw_login("hank", "stored")  # also makes ternd read the account
        self.assertEqual(c.ping(), "result")
        for name in os.listdir(self.server.dir):
            path = os.path.join(self.server.dir, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    data = f.read()
                self.assertNotIn(secret.encode(), data, "password in clear in %s" % name)

    def test_private_files_are_private(self):
        """The admin socket, the database and the TLS key are for the owner only."""
        for path in (self.server.config["admin_socket"], os.path.join(self.server.dir, "tern.db"),
                     self.server.key_path):
            with self.subTest(path=os.path.basename(path)):
                self.assertEqual(os.stat(path).st_mode & 0o077, 0,
                                 "%s is open to others" % path)

    def test_passwd_of_unknown_account_fails(self):
        r = self.server.ternctl("passwd", "nobody@localhost", "--password-stdin", input="pw\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no such account", r.stderr)


class ServerCommandTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"})

    def status(self):
        r = self.server.ternctl_ok("status")
        fields = dict(line.split(": ", 1) for line in r.stdout.strip().splitlines())
        return fields

    def test_status_reports_version_uptime_and_sessions(self):
        before = int(self.status()["sessions"])
        a = self.raw_login("alice", "s1")
        b = self.slix("bob", resource="s2")
        st = self.status()
        self.assertEqual(int(st["sessions"]), before + 2)
        self.assertTrue(st["version"])
        uptime = int(st["uptime"])
        self.assertGreaterEqual(uptime, 0)
        self.assertLessEqual(uptime, time.time() - self.server.started_at + 2)
        a.close()
        b.disconnect()
        deadline = time.monotonic() + 5
        while int(self.status()["sessions"]) != before and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(int(self.status()["sessions"]), before)

    def test_check_config_accepts_the_running_config(self):
        r = self.server.ternctl_ok("check-config")
        self.assertIn("config OK", r.stdout)

    def test_check_config_names_file_and_line_of_an_error(self):
        bad = os.path.join(self.server.dir, "bad.yml")
        conf = deep_merge(self.server.config, {"limits": {"max_stanza_sise": "1M"}})
        with open(bad, "w") as f:
            f.write(to_yaml(conf) + "\n")
        r = self.server.ternctl("check-config", config=bad)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, re.escape(bad) + r":\d+:")
        self.assertIn("max_stanza_sise", r.stderr)

    def version_has_os(self, client):
        answer = client.iq("<query xmlns='%s'/>" % NS_VERSION)
        self.assertEqual(answer.get("type"), "result")
        return answer.find("%s/%s" % (q(NS_VERSION, "query"), q(NS_VERSION, "os"))) is not None

    def reload_and_check(self, do_reload):
        """Flip modules.version.hide_os, reload with do_reload(), and check
        that live sessions survive and the new setting is in force."""
        alice = self.slix("alice", resource="reload")
        raw = self.raw_login("bob", "reload-raw")
        hidden = not self.version_has_os(alice)
        conf = deep_merge(self.server.config, {"modules": {"version": {"hide_os": not hidden}}})
        self.server.write_config(conf)
        do_reload()
        deadline = time.monotonic() + 10
        while (not self.version_has_os(alice)) == hidden:
            self.assertLess(time.monotonic(), deadline, "the reload did not take effect")
            time.sleep(0.1)
        self.assertFalse(alice.disconnected)
        self.assertEqual(alice.ping(), "result")
        self.assertEqual(raw.ping(), "result")
        mark = alice.mark()
        raw.send("<message to='alice@localhost/reload' type='chat'><body>after reload</body>"
                 "</message>")
        msg = alice.wait_message("after reload", since=mark)
        self.assertEqual(str(msg["from"]), "bob@localhost/reload-raw")
        self.assertTrue(self.server.running())

    def test_ternctl_reload_keeps_sessions_and_applies_config(self):
        self.reload_and_check(lambda: self.server.ternctl_ok("reload"))

    def test_sighup_reload_keeps_sessions_and_applies_config(self):
        self.reload_and_check(lambda: self.server.signal(signal.SIGHUP))

    def test_reload_with_broken_config_fails_and_keeps_running(self):
        alice = self.slix("alice", resource="broken-reload")
        good = self.server.config
        with open(self.server.conf_path, "a") as f:
            f.write("no_such_setting: 1\n")
        try:
            r = self.server.ternctl("reload")
            self.assertEqual(r.returncode, 1)
            self.assertIn("no_such_setting", r.stderr)
            self.assertEqual(alice.ping(), "result")
            self.assertTrue(self.server.running())
        finally:
            self.server.write_config(good)
        self.server.ternctl_ok("reload")
        self.assertEqual(alice.ping(), "result")


class ShutdownTests(ServerTestCase):
    """Each test stops its own server; setUpClass starts none."""

    @classmethod
    def setUpClass(cls):
        cls.server = None

    @classmethod
    def tearDownClass(cls):
        pass

    def start_server(self):
        srv = Server(name="shutdown", users={"alice": "alice-pw", "bob": "bob-pw"},
                     components={"bots.localhost": "bots-secret"})
        srv.start()
        self.addCleanup(srv.stop, check=False)
        return srv

    def clients(self, srv):
        bound = RawClient(srv.c2s_port)
        bound.login("alice", "alice-pw", "raw")
        fresh = RawClient(srv.tls_port, direct_tls=True)
        fresh.open_stream()  # not authenticated yet
        slix = SlixClient(srv, "bob", resource="slix").connect()
        comp = RawComponent(srv.component_port)
        self.assertEqual(comp.handshake("bots.localhost", "bots-secret").tag,
                         q(NS_COMPONENT, "handshake"))
        for c in (bound, fresh, comp):
            self.addCleanup(c.close)
        self.addCleanup(slix.disconnect)
        return bound, fresh, comp, slix

    def assertShutdownSeen(self, bound, fresh, comp, slix):
        for c in (bound, fresh, comp):
            self.assertEqual(c.stream_error(timeout=10), "system-shutdown")
            self.assertTrue(c.stream_ended, "no </stream:stream>")
            self.assertTrue(c.wait_closed())
        slix.wait_disconnected(timeout=10)
        self.assertEqual(slix.stream_errors, ["system-shutdown"])

    def test_sigterm_closes_streams_with_system_shutdown(self):
        srv = self.start_server()
        clients = self.clients(srv)
        srv.signal(signal.SIGTERM)
        self.assertShutdownSeen(*clients)
        rc = srv.wait_exit(20)
        srv.stop(check=False)
        srv.check_exit(rc)
        srv.remove()

    def test_ternctl_stop(self):
        srv = self.start_server()
        clients = self.clients(srv)
        r = srv.ternctl("stop")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertShutdownSeen(*clients)
        rc = srv.wait_exit(20)
        srv.stop(check=False)
        srv.check_exit(rc)
        self.assertFalse(os.path.exists(srv.config["admin_socket"]), "admin socket left behind")
        r = srv.ternctl("status")
        self.assertEqual(r.returncode, 1)
        self.assertIn("not running", r.stderr)
        srv.remove()
