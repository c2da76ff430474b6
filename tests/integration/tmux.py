"""Drive a real terminal client in tmux: TmuxApp starts a program in a
detached tmux session of its own, with a private HOME, reads its screen and
types into it.  test_real_client.py (profanity) and test_poezio.py (poezio)
build on it.

Each instance has its own tmux server (-L), so nothing is shared with other
tmux users or other tests.  SHELL is set to /bin/sh: tmux runs the pane
through $SHELL, or else the login shell, which for "nobody" (the user
poezio runs as under root) is nologin, and CI runs without SHELL at all.
"""
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import uuid


class TmuxApp:
    """A program in a detached 200x50 tmux session with a private HOME.

    `name` names the program in failure messages; `as_nobody` runs tmux
    (and so the program) as the user "nobody" when the tests run as root,
    with the private HOME given to that user.  Subclasses override
    diagnostics() to add their own logs to a failure message."""

    def __init__(self, test, name, timeout=15.0, as_nobody=False):
        self.test = test
        self.name = name
        self.timeout = timeout
        self.home = tempfile.mkdtemp(prefix="%s-home-" % name)
        self.session = "tern-%s-%s" % (name, uuid.uuid4().hex[:8])
        self.env = dict(os.environ, HOME=self.home, TERM="xterm-256color", TMUX_TMPDIR=self.home,
                        SHELL="/bin/sh",
                        XDG_CONFIG_HOME=os.path.join(self.home, ".config"),
                        XDG_DATA_HOME=os.path.join(self.home, ".local", "share"),
                        XDG_CACHE_HOME=os.path.join(self.home, ".cache"))
        self.as_user = []
        if as_nobody and os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self.as_user = ["setpriv", "--reuid=%d" % nobody.pw_uid,
                            "--regid=%d" % nobody.pw_gid, "--clear-groups"]

    def give_home_to_user(self):
        """Hand the private HOME, with what was written into it so far, to
        the user the program runs as (nothing to do unless as "nobody")."""
        if not self.as_user:
            return
        nobody = pwd.getpwnam("nobody")
        for root, dirs, files in os.walk(self.home):
            for name in [root] + [os.path.join(root, n) for n in dirs + files]:
                os.chown(name, nobody.pw_uid, nobody.pw_gid)

    def tmux(self, *args, check=True):
        """Run a tmux command against this instance's private server.  The
        working directory is the private HOME: the caller's may not be
        reachable by the user the program runs as."""
        return subprocess.run(self.as_user + ["tmux", "-L", self.session] + list(args),
                              env=self.env, cwd=self.home, capture_output=True, text=True,
                              timeout=10, check=check)

    def new_session(self, command):
        """Start `command` (a shell command line) in the session."""
        self.tmux("new-session", "-d", "-s", self.session, "-x", "200", "-y", "50", command)

    def screen(self, history=True):
        """The pane's text; with history, the 200 lines above it too."""
        extra = ["-S", "-200"] if history else []
        return self.tmux("capture-pane", "-t", self.session, "-p", *extra).stdout

    def send_keys(self, text, check=True):
        """Type `text` literally (no Enter)."""
        self.tmux("send-keys", "-t", self.session, "-l", text, check=check)

    def enter(self, check=True):
        self.tmux("send-keys", "-t", self.session, "Enter", check=check)

    def diagnostics(self):
        """More to show when a wait fails (the program's logs)."""
        return ""

    def wait_screen(self, pattern, timeout=None, history=True):
        """The first match of `pattern` on the screen; fails the test when it
        does not show within `timeout` seconds (default: the instance's)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            text = self.screen(history)
            m = re.search(pattern, text)
            if m:
                return m
            if time.monotonic() > deadline:
                self.test.fail("%s never showed %r; screen:\n%s\n%s" %
                               (self.name, pattern, text, self.diagnostics()))
            time.sleep(0.2)

    def wait_gone(self, timeout=5):
        """Wait up to `timeout` s for the session to end (the program quit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.tmux("has-session", "-t", self.session, check=False).returncode != 0:
                return True
            time.sleep(0.1)
        return False

    def kill_leftovers(self):
        """Called by stop() once the tmux server is gone: end what of the
        program may outlive it (nothing by default)."""

    def stop(self):
        """Stop the private tmux server, then anything kill_leftovers()
        knows of, and remove the private HOME."""
        self.tmux("kill-server", check=False)
        self.kill_leftovers()
        shutil.rmtree(self.home, ignore_errors=True)
