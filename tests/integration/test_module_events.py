"""Event names are checked when a module hooks them: a module that hooks a
misspelt event ("mesage/bare", which the core never fires) fails to load,
so ternd refuses to start, and a reload that adds it is refused, with an
error naming the module, the host and the event.

Uses tests/modules/mod_badhook.c, a module built only for the tests
(`make tests/modules/mod_badhook.la`, or `make check`), found in
TERN_TEST_MODULES (default: tests/modules/.libs beside TERN_MODULES's
build directory)."""
import glob
import os
import shutil
import tempfile
import unittest

from harness import DOMAIN, TERN_MODULES, Server, ServerError, ServerTestCase, deep_merge

TERN_TEST_MODULES = os.path.abspath(os.environ.get(
    "TERN_TEST_MODULES",
    os.path.join(os.path.dirname(os.path.dirname(TERN_MODULES)), "tests/modules/.libs")))
ERROR = "module 'badhook' on host %s: unknown event 'mesage/bare'" % DOMAIN
LOAD_ERROR = "module 'badhook' failed to load on host %s: unknown event 'mesage/bare'" % DOMAIN


def module_dir():
    """A temporary directory with the server's modules and mod_badhook.so."""
    bad = os.path.join(TERN_TEST_MODULES, "mod_badhook.so")
    if not os.path.exists(bad):
        raise AssertionError("%s not built: make tests/modules/mod_badhook.la" % bad)
    d = tempfile.mkdtemp(prefix="tern-modules-")
    for so in glob.glob(os.path.join(TERN_MODULES, "mod_*.so")) + [bad]:
        os.symlink(so, os.path.join(d, os.path.basename(so)))
    return d


class BadHookStartTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.modules = module_dir()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.modules, ignore_errors=True)

    def test_ternd_refuses_to_start(self):
        server = Server(name="badhook", config={"module_path": self.modules,
                                                "modules": {"badhook": {}}})
        try:
            with self.assertRaises(ServerError):
                server.start()
            self.assertNotEqual(server.wait_exit(), 0)
            server.stop(check=False)
            server.check_log()
            log = server.log_text()
            self.assertIn(ERROR, log)
            self.assertIn(LOAD_ERROR, log)
        finally:
            server.stop(check=False)
        server.remove()


class BadHookReloadTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw"})

    def test_reload_adding_it_is_refused(self):
        good = self.server.config
        modules = module_dir()
        try:
            self.server.write_config(deep_merge(good, {"module_path": modules,
                                                       "modules": {"badhook": {}}}))
            r = self.server.ternctl("reload")
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn(LOAD_ERROR, r.stderr)
            self.assertIn(ERROR, self.server.log_text())
            # The running set stays: a client still logs in and is answered.
            alice = self.raw_login("alice")
            self.assertEqual(alice.ping(), "result")
        finally:
            self.server.write_config(good)
            self.server.ternctl_ok("reload")
            shutil.rmtree(modules, ignore_errors=True)
