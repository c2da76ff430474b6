"""Event names are checked when a module hooks them: a module that hooks a
misspelt event ("mesage/bare", which the core never fires) fails to load,
so ternd refuses to start, and a reload that adds it is refused, with an
error naming the module, the host and the event.

A module built for another module ABI is refused the same way
(tests/modules/mod_oldabi.c).

Uses tests/modules/mod_badhook.c and mod_oldabi.c, modules built only
for the tests (`make tests/modules/mod_badhook.la`, or `make check`),
found in TERN_TEST_MODULES (default: tests/modules/.libs beside
TERN_MODULES's build directory)."""
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


def module_dir(test_module="badhook"):
    """A temporary directory with the server's modules and mod_TEST_MODULE.so."""
    bad = os.path.join(TERN_TEST_MODULES, "mod_%s.so" % test_module)
    if not os.path.exists(bad):
        raise AssertionError("%s not built: make tests/modules/mod_%s.la" % (bad, test_module))
    d = tempfile.mkdtemp(prefix="tern-modules-")
    for so in glob.glob(os.path.join(TERN_MODULES, "mod_*.so")) + [bad]:
        os.symlink(so, os.path.join(d, os.path.basename(so)))
    return d


class OldAbiTests(unittest.TestCase):
    """A module built against another server's headers (tests/modules/
    mod_oldabi.c claims the previous module ABI) is refused by name, with
    both ABI numbers, and ternd does not start."""

    def test_ternd_refuses_a_module_of_another_abi(self):
        modules = module_dir("oldabi")
        server = Server(name="oldabi", config={"module_path": modules,
                                               "modules": {"oldabi": {}}})
        try:
            with self.assertRaises(ServerError):
                server.start()
            self.assertNotEqual(server.wait_exit(), 0)
            server.stop(check=False)
            server.check_log()
            log = server.log_text()
            self.assertIn("module 'oldabi' was built for another server version", log)
            self.assertIn("mod_oldabi.so has module ABI 2, this server needs 3", log)
            self.assertIn("rebuild it against this server's headers", log)
        finally:
            server.stop(check=False)
            shutil.rmtree(modules, ignore_errors=True)
        server.remove()


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
