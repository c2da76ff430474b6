"""Run every integration test (tests/integration/test_*.py) against a live ternd.

Prints one line per test with its result, the details of each failure, and
ends with exactly one line "N passed, N failed" (skipped tests count as
neither; an error in a class's set-up or tear-down, such as ternd exiting
badly or a sanitizer report, counts as a failure).  Exits 1 on any failure.

Usage: /usr/bin/python3 tests/integration/run.py [-k PATTERN] [MODULE ...]
Environment: TERND, TERNCTL, TERN_MODULES (see harness.py); TERN_TEST_TIMEOUT
(seconds for the whole run, default 900); TERN_TEST_DEBUG=1 for slixmpp logs.
"""
import argparse
import os
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


class LineResult(unittest.TestResult):
    """Prints "name ... result (seconds)" as each test ends."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream
        self.passed = 0
        self.failed = 0
        self.details = []
        self._start = 0.0
        self._failed_ids = set()

    def _line(self, test, word):
        elapsed = time.monotonic() - self._start
        self.stream.write("%s ... %s (%.1fs)\n" % (test_name(test), word, elapsed))
        self.stream.flush()

    def startTest(self, test):
        super().startTest(test)
        self._start = time.monotonic()

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1
        self._line(test, "ok")

    def _count_failure(self, test, text, word):
        """A test counts once, however many errors it collects (test body
        and tearDown); every traceback is kept for the report."""
        self.details.append((test_name(test), text))
        if test_name(test) in self._failed_ids:
            return
        self._failed_ids.add(test_name(test))
        self.failed += 1
        self._line(test, word)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._count_failure(test, self.failures[-1][1], "FAIL")

    def addError(self, test, err):
        super().addError(test, err)
        if isinstance(test, unittest.TestCase):
            self._count_failure(test, self.errors[-1][1], "ERROR")
            return
        # setUpClass / tearDownClass / module fixtures
        self.failed += 1
        self.details.append((test_name(test), self.errors[-1][1]))
        self.stream.write("%s ... ERROR\n" % test_name(test))
        self.stream.flush()

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:  # the parent test then never reports success
            kind = self.failures if issubclass(err[0], test.failureException) else self.errors
            self.details.append((str(subtest), kind[-1][1]))
            if test_name(test) not in self._failed_ids:
                self._failed_ids.add(test_name(test))
                self.failed += 1
                self._line(test, "FAIL (%s)" % subtest._subDescription())

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line(test, "skipped (%s)" % reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.passed += 1
        self._line(test, "ok (expected failure)")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.failed += 1
        self._line(test, "FAIL (unexpected success)")


def test_name(test):
    if isinstance(test, unittest.TestCase):
        return "%s.%s.%s" % (type(test).__module__, type(test).__name__, test._testMethodName)
    return str(test)


def start_watchdog(result, seconds):
    """Every wait in the tests has its own timeout; this is the last line of
    defence: past `seconds`, report what ran, count one more failure, and exit."""
    def expire():
        sys.stdout.write("\nintegration run timed out after %.0fs (TERN_TEST_TIMEOUT)\n" % seconds)
        sys.stdout.write("%d passed, %d failed\n" % (result.passed, result.failed + 1))
        sys.stdout.flush()
        os._exit(1)
    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", action="append", default=[], help="only tests matching PATTERN")
    ap.add_argument("modules", nargs="*", help="test modules (default: all test_*.py)")
    args = ap.parse_args()

    loader = unittest.TestLoader()
    if args.k:
        loader.testNamePatterns = ["*%s*" % k for k in args.k]
    if args.modules:
        names = [os.path.splitext(os.path.basename(m))[0] for m in args.modules]
        suite = unittest.TestSuite(loader.loadTestsFromName(n) for n in names)
    else:
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)

    result = LineResult(sys.stdout)
    started = time.monotonic()
    start_watchdog(result, float(os.environ.get("TERN_TEST_TIMEOUT", "900")))
    suite.run(result)
    elapsed = time.monotonic() - started

    for name, text in result.details:
        sys.stdout.write("\n==== %s ====\n%s" % (name, text))
    sys.stdout.write("\nintegration run took %.0fs\n" % elapsed)
    sys.stdout.write("%d passed, %d failed\n" % (result.passed, result.failed))
    sys.stdout.flush()
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
