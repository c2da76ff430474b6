"""Listening sockets: the accept backlog is 1024 on every listener, and a
server out of file descriptors pauses accepting instead of spinning: it
stays responsive to the sessions it has, uses little CPU, logs a bounded
number of lines, and accepts and logs in new clients again once
descriptors are free."""
import os
import resource
import socket
import subprocess
import time

from harness import ServerTestCase, T_REPLY

CLK_TCK = os.sysconf("SC_CLK_TCK")


def listen_queue(port):
    """(Recv-Q, Send-Q) of the listening socket on `port` as `ss -ltn`
    shows them: the connections waiting to be accepted, and the backlog."""
    out = subprocess.run(["ss", "-ltnH", "sport = :%d" % port], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert len(rows) == 1, out
    return int(rows[0][1]), int(rows[0][2])


def cpu_seconds(pid):
    """utime + stime of process `pid` in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def open_fds(pid):
    return [int(n) for n in os.listdir("/proc/%d/fd" % pid)]


class ListenerTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"})

    def test_backlog_is_1024(self):
        for port in (self.server.c2s_port, self.server.tls_port, self.server.component_port):
            self.assertEqual(listen_queue(port)[1], 1024, "backlog of port %d" % port)

    def test_out_of_descriptors(self):
        pid = self.server.proc.pid
        alice = self.raw_login("alice", "starved")
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        limit = max(open_fds(pid)) + 1 + 6  # room for about six more descriptors
        fillers = []
        try:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, hard))
            for _ in range(20):
                fillers.append(socket.create_connection(("127.0.0.1", self.server.c2s_port),
                                                        timeout=T_REPLY))
            # ternctl's socket too, which ternd cannot accept either.
            admin = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            fillers.append(admin)
            admin.connect(self.server.config["admin_socket"])
            time.sleep(0.5)  # ternd takes what it can and runs out
            lines0 = len(self.server.log_text().splitlines())
            cpu0 = cpu_seconds(pid)
            time.sleep(2.0)
            cpu = cpu_seconds(pid) - cpu0
            lines = len(self.server.log_text().splitlines()) - lines0
            self.assertLess(cpu, 0.3, "ternd used %.2f s of CPU in 2 s" % cpu)
            self.assertLess(lines, 10, "ternd logged %d lines in 2 s" % lines)
            self.assertEqual(alice.ping(timeout=T_REPLY), "result")
            self.assertTrue("not accepting connections" in self.server.log_text(),
                            "the pause is not logged")

            for s in fillers:
                s.close()
            fillers = []
            # ternd drains its queue (connections gone meanwhile) as it frees descriptors.
            deadline = time.monotonic() + 20
            while listen_queue(self.server.c2s_port)[0] > 0 or len(open_fds(pid)) > limit - 4:
                self.assertLess(time.monotonic(), deadline, "ternd did not recover\n" +
                                self.server.log_tail())
                time.sleep(0.1)
            bob = self.raw_login("bob", "after")
            self.assertEqual(bob.ping(), "result")
            deadline = time.monotonic() + 5
            while "accepting connections again" not in self.server.log_text():
                self.assertLess(time.monotonic(), deadline, "the end of the shortage is not logged")
                time.sleep(0.1)
            log = self.server.log_text()
            self.assertEqual(log.count("not accepting connections"), 1, "logged more than once")
            self.assertEqual(log.count("accepting connections again"), 1)
        finally:
            for s in fillers:
                s.close()
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        self.assertEqual(alice.ping(), "result")
