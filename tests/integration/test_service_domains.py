"""Service domains (`services:` in the configuration): a domain served by
the modules loaded on it, with no accounts and no client logins.  A message
to the domain or to a JID at it reaches its module (tests/modules/
mod_echo_service.c, built only for the tests) and the answer comes back;
disco#info on it lists what its modules add and not server/im; a client
cannot log in to it; one added by reload answers without a restart and one
removed by reload stops answering (remote-server-not-found, as for any
unknown domain); `ternd --check-config` checks the section."""
import glob
import os
import shutil
import subprocess
import tempfile

from harness import (DOMAIN, NS_CLIENT, NS_DISCO_INFO, NS_STREAM, TERN_MODULES, TERND,
                     ServerTestCase, deep_merge, q, sanitizer_env, stanza_error)

TERN_TEST_MODULES = os.path.abspath(os.environ.get(
    "TERN_TEST_MODULES",
    os.path.join(os.path.dirname(os.path.dirname(TERN_MODULES)), "tests/modules/.libs")))
SERVICE = "echo." + DOMAIN
ADDED = "echo2." + DOMAIN


def module_dir():
    """A temporary directory with the server's modules and mod_echo_service.so."""
    echo = os.path.join(TERN_TEST_MODULES, "mod_echo_service.so")
    if not os.path.exists(echo):
        raise AssertionError("%s not built: make tests/modules/mod_echo_service.la" % echo)
    d = tempfile.mkdtemp(prefix="tern-modules-")
    for so in glob.glob(os.path.join(TERN_MODULES, "mod_*.so")) + [echo]:
        os.symlink(so, os.path.join(d, os.path.basename(so)))
    return d


MODULES = module_dir()


def service(*names):
    return {name: {"modules": {"echo_service": {}, "disco": {}}} for name in names}


class ServiceDomainTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw"},
                         config={"module_path": MODULES, "services": service(SERVICE)})

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(MODULES, ignore_errors=True)

    def echo(self, client, to, body, mtype="chat"):
        """Send `body` to `to`; returns the message that comes back."""
        client.send("<message to='%s' type='%s'><body>%s</body></message>" % (to, mtype, body))
        return client.wait_for(lambda e: e.tag == q(NS_CLIENT, "message"))

    def test_message_to_the_service_reaches_its_module_and_the_answer_returns(self):
        alice = self.raw_login("alice", resource="desk")
        got = self.echo(alice, SERVICE, "hello")
        self.assertEqual(got.get("from"), SERVICE)
        self.assertEqual(got.get("to"), "alice@%s/desk" % DOMAIN)
        self.assertEqual(got.find(q(NS_CLIENT, "body")).text, "echo: hello")
        # JIDs at the service domain go to its modules too.
        got = self.echo(alice, "room@%s" % SERVICE, "to a room")
        self.assertEqual(got.get("from"), "room@%s" % SERVICE)
        self.assertEqual(got.find(q(NS_CLIENT, "body")).text, "echo: to a room")
        got = self.echo(alice, "room@%s/nick" % SERVICE, "to a nick")
        self.assertEqual(got.get("from"), "room@%s/nick" % SERVICE)

    def test_disco_lists_what_its_modules_add(self):
        alice = self.raw_login("alice")
        r = alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=SERVICE)
        self.assertEqual(r.get("type"), "result")
        self.assertEqual(r.get("from"), SERVICE)
        query = r.find(q(NS_DISCO_INFO, "query"))
        ids = [(i.get("category"), i.get("type")) for i in query.findall(q(NS_DISCO_INFO,
                                                                            "identity"))]
        feats = [f.get("var") for f in query.findall(q(NS_DISCO_INFO, "feature"))]
        self.assertIn(("component", "generic"), ids)
        self.assertNotIn(("server", "im"), ids)
        self.assertIn("urn:tern:test:echo", feats)
        self.assertIn(NS_DISCO_INFO, feats)
        # The host's own disco does not list the service's feature.
        r = alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN)
        feats = [f.get("var") for f in r.find(q(NS_DISCO_INFO, "query")).findall(
            q(NS_DISCO_INFO, "feature"))]
        self.assertNotIn("urn:tern:test:echo", feats)

    def test_client_login_to_a_service_domain_is_refused(self):
        c = self.raw()
        c.send("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' to='%s' "
               "version='1.0'>" % (NS_CLIENT, NS_STREAM, SERVICE))
        self.assertEqual(c.stream_error(), "host-unknown")
        r = self.server.ternctl("adduser", "bob@%s" % SERVICE, "--password-stdin",
                                input="bob-pw\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("unknown host '%s'" % SERVICE, r.stderr)

    def test_unknown_domain_still_bounces_remote_server_not_found(self):
        alice = self.raw_login("alice")
        got = self.echo(alice, "someone@nowhere.%s" % DOMAIN, "anyone?")
        self.assertEqual(got.get("type"), "error")
        self.assertEqual(stanza_error(got), ("cancel", "remote-server-not-found"))

    def test_service_added_and_removed_by_reload(self):
        good = self.server.config
        alice = self.raw_login("alice")
        got = self.echo(alice, ADDED, "before")
        self.assertEqual(stanza_error(got), ("cancel", "remote-server-not-found"))
        try:
            self.server.write_config(deep_merge(good, {"services": service(ADDED)}))
            self.server.ternctl_ok("reload")
            got = self.echo(alice, ADDED, "added")
            self.assertEqual(got.find(q(NS_CLIENT, "body")).text, "echo: added")
            self.assertEqual(got.get("from"), ADDED)
            # The one already there still answers.
            got = self.echo(alice, SERVICE, "still")
            self.assertEqual(got.find(q(NS_CLIENT, "body")).text, "echo: still")
        finally:
            self.server.write_config(good)
            self.server.ternctl_ok("reload")
        got = self.echo(alice, ADDED, "removed")
        self.assertEqual(stanza_error(got), ("cancel", "remote-server-not-found"))
        got = self.echo(alice, SERVICE, "kept")
        self.assertEqual(got.find(q(NS_CLIENT, "body")).text, "echo: kept")
        self.assertIn("reload: service domain %s is no longer served" % ADDED,
                      self.server.log_text())

    def check_config(self, extra):
        """ternd --check-config on the server's config with `extra` merged in."""
        path = os.path.join(self.server.dir, "check.yml")
        saved = self.server.config
        try:
            self.server.write_config(deep_merge(saved, extra))
            shutil.copy(self.server.conf_path, path)
        finally:
            self.server.write_config(saved)
        return subprocess.run([TERND, "--check-config", "-c", path], capture_output=True,
                              text=True, timeout=60, env=sanitizer_env())

    def test_check_config_validates_services(self):
        r = self.check_config({})
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.check_config({"services": {ADDED: {"modules": {"no_such_module": {}}}}})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("module 'no_such_module' cannot be loaded", r.stderr)
        r = self.check_config({"services": {ADDED: {"accounts": True}}})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("services.%s" % ADDED, r.stderr)
        r = self.check_config({"services": {DOMAIN: {"modules": {"echo_service": {}}}}})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("service '%s' has the same name as a host" % DOMAIN, r.stderr)
        r = self.check_config({"services": {ADDED: {"modules": {"echo_service": {"x": 1}}}}})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("echo_service", r.stderr)
