#!/usr/bin/python3
"""airmeshctl as a user meets it (issue 14): bad flags refused before anything is sent, connection
problems in words, logout twice, per-command help, aligned lists with non-ASCII branches and the
whole command, a human `pod show` with local times, `pod logs` printing the scrollback, and
`pod attach` in a real PTY: typing reaches the pod, the window size becomes the pod's, Ctrl-] q
detaches and the terminal is restored.

  cli_test.py AIRMESHD AIRMESHCTL UI_DIR AIRMESH_RUNNER
"""
import base64
import fcntl
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import termios
import time
import unicodedata
import unittest

import harness
from harness import AIRMESH_RUNNER, AIRMESHCTL, Daemon, ctl, wait_for


def width(s):
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c)
               else 1 for c in s)


def git(repo, *args):
    subprocess.run(["git", "-C", repo, "-c", "user.email=t@example.com", "-c", "user.name=t",
                    *args], check=True, capture_output=True)


class Pty:
    """airmeshctl on a real terminal: we keep both ends, so the termios after it exits can be read."""

    def __init__(self, d, home, *args, rows=30, cols=100):
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.before = termios.tcgetattr(self.slave)
        env = dict(os.environ, HOME=home, TERM="xterm")
        env.pop("AIRMESH_TOKEN", None)
        env.pop("XDG_CONFIG_HOME", None)
        self.proc = subprocess.Popen([AIRMESHCTL, "--url", d.url, "--ca", d.ca, *args],
                                     stdin=self.slave, stdout=self.slave, stderr=self.slave,
                                     env=env, start_new_session=True)
        self.out = b""

    def expect(self, pattern, timeout=30):
        deadline = time.time() + timeout
        rx = re.compile(pattern)
        while not rx.search(self.out):
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} in the terminal: {self.out[-2000:]!r}")
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    self.out += os.read(self.master, 65536)
                except OSError:
                    break
        return rx.search(self.out)

    def send(self, data):
        os.write(self.master, data)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class WS:
    """Just enough of a WebSocket client to send take and read control messages."""

    def __init__(self, d, path, token):
        raw = socket.create_connection(("127.0.0.1", d.port))
        self.s = ssl.create_default_context(cafile=d.ca).wrap_socket(raw,
                                                                   server_hostname="127.0.0.1")
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                        f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
                        ).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.s.recv(65536)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def send_json(self, obj):
        data, mask = json.dumps(obj).encode(), os.urandom(4)
        self.s.sendall(struct.pack("!BB", 0x81, 0x80 | len(data)) + mask +
                       bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def messages(self, timeout):
        """Text messages that arrive within timeout seconds."""
        out, deadline = [], time.time() + timeout
        while True:
            while len(self.buf) >= 2:
                n, off = self.buf[1] & 0x7F, 2
                if n == 126:
                    n, off = struct.unpack("!H", self.buf[2:4])[0], 4
                elif n == 127:
                    n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
                if len(self.buf) < off + n:
                    break
                op, payload, self.buf = self.buf[0] & 0x0F, self.buf[off:off + n], \
                    self.buf[off + n:]
                if op == 1:
                    out.append(json.loads(payload))
            left = deadline - time.time()
            if left <= 0:
                return out
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except (socket.timeout, TimeoutError):
                return out
            if not chunk:
                return out
            self.buf += chunk

    def close(self):
        self.s.close()


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.guarded_setup(cls, cls._setup)

    @classmethod
    def _setup(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        # control_idle 8s: a holder idle that long loses input control to the next taker (long
        # enough that "just typed" is still active on a loaded machine).
        cfg = os.path.join(cls.tmp, "airmeshd.yaml")
        with open(cfg, "w") as f:
            f.write("control_idle: 8s\n")
        cls.d = Daemon(os.path.join(cls.tmp, "airmesh"), extra=("--config", cfg)).wait_ready()
        cls.home = harness.login(cls.d, cls.d.read_password())
        r = cls.ctl("token", "create")
        assert r.returncode == 0, r.stderr
        cmd = re.search(r"^\s+(airmesh-runner enroll .*)$", r.stdout, re.M).group(1).split()[1:]
        cls.rtmp = tempfile.mkdtemp(prefix="airmesh-cli-test-", dir="/tmp")
        cls.rdata = os.path.join(cls.rtmp, "runner")
        subprocess.run([AIRMESH_RUNNER, *cmd, "--data", cls.rdata], check=True,
                       capture_output=True)
        cls.rlog = open(cls.rdata + ".log", "a")
        cls.runner = subprocess.Popen([AIRMESH_RUNNER, "run", "--data", cls.rdata, "--capacity",
                                       "8"], stdout=cls.rlog, stderr=cls.rlog)
        cls.repo = os.path.join(cls.tmp, "repo")
        os.makedirs(cls.repo)
        subprocess.run(["git", "init", "-q", "-b", "main", cls.repo], check=True)
        with open(os.path.join(cls.repo, "README"), "w") as f:
            f.write("cli test\n")
        git(cls.repo, "add", "-A")
        git(cls.repo, "commit", "-qm", "base")
        wait_for(lambda: '"online"' in cls.ctl("runner", "list", "--json").stdout, 30,
                 what="runner online")

    @classmethod
    def tearDownClass(cls):
        if cls.runner.poll() is None:
            cls.runner.send_signal(signal.SIGTERM)
            cls.runner.wait(30)
        cls.rlog.close()
        rc = cls.d.stop()
        assert rc == 0, cls.d.stderr
        shutil.rmtree(cls.rtmp, ignore_errors=True)

    @classmethod
    def ctl(cls, *args, **kw):
        return ctl(cls.d, *args, home=kw.pop("home", cls.home), **kw)

    def pods(self):
        return json.loads(self.ctl("pod", "list", "--json").stdout)

    def start(self, *command, branch=None):
        args = ["pod", "create", "--repo", self.repo, "--json"]
        if branch:
            args += ["--branch", branch]
        r = self.ctl(*args, "--", *command)
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = json.loads(r.stdout)["id"]
        wait_for(lambda: json.loads(self.ctl("pod", "show", pid).stdout)["state"] != "pending",
                 60, what="pod started")
        return pid

    # ---- flags and errors ----

    def test_bad_limits_are_refused_and_nothing_is_created(self):
        before = len(self.pods())
        for flag, value, words in (("--cpu", "abc", "number of CPU cores"),
                                   ("--cpu", "-1", "number of CPU cores"),
                                   ("--pids", "12x", "whole number of processes"),
                                   ("--memory", "lots", "size such as 512M")):
            r = self.ctl("pod", "create", "--repo", self.repo, flag, value, "--", "true")
            self.assertEqual(r.returncode, 2, f"{flag} {value}: {r.stdout}{r.stderr}")
            self.assertIn(f"{flag} {value}: expected a {words}", r.stderr)
        self.assertEqual(len(self.pods()), before, "a refused create sends nothing")
        # Positive control: good values are accepted and arrive as limits.
        r = self.ctl("pod", "create", "--repo", self.repo, "--cpu", "1.5", "--pids", "64",
                     "--memory", "256M", "--json", "--", "true")
        self.assertEqual(r.returncode, 0, r.stderr)
        limits = json.loads(r.stdout)["limits"]
        self.assertEqual((limits["cpu_millis"], limits["pids"], limits["memory"]),
                         (1500, 64, 256 << 20))

    def test_connection_problems_are_said_in_words(self):
        curlish = re.compile(r"Could(n't| not) resolve|Failed to connect|SSL certificate problem|"
                             r"error setting certificate|Unsupported protocol")
        env = dict(os.environ, HOME=self.home)
        run = lambda *a: subprocess.run([AIRMESHCTL, *a], capture_output=True, text=True,
                                        timeout=60, env=env)
        r = run("--url", self.d.url, "--ca", os.path.join(self.tmp, "missing.pem"), "whoami")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"the CA file .*missing\.pem cannot be read: No such file")
        r = run("--url", self.d.url.replace("https://", "http://"), "--ca", self.d.ca, "whoami")
        self.assertEqual(r.returncode, 2)
        self.assertIn("the appliance URL must be https://HOST[:PORT]", r.stderr)
        r = run("--url", "https://no-such-host.invalid:8443", "--ca", self.d.ca, "whoami")
        self.assertEqual(r.returncode, 1)
        self.assertIn("the host name is unknown", r.stderr)
        r = run("--url", f"https://127.0.0.1:{harness.free_port()}", "--ca", self.d.ca, "whoami")
        self.assertEqual(r.returncode, 1)
        self.assertIn("nothing answers there (is airmeshd running", r.stderr)
        junk = os.path.join(self.tmp, "junk.pem")
        with open(junk, "w") as f:
            f.write("not a certificate\n")
        r = run("--url", self.d.url, "--ca", junk, "whoami")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"CA file cannot be used|not signed by the CA")
        for stderr in (r.stderr,):
            self.assertNotRegex(stderr, curlish)
        # Positive control: the same command with the right URL and CA works.
        r = run("--url", self.d.url, "--ca", self.d.ca, "whoami")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_logout_when_logged_out_exits_0(self):
        home = harness.login(self.d, self.admin_password())
        r = self.ctl("logout", home=home)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "logged out"), r.stderr)
        r = self.ctl("logout", home=home)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("not logged in", r.stdout)

    def admin_password(self):
        pw = next(l for l in self.d.banner if l.startswith("admin password: "))
        return pw[len("admin password: "):]

    def test_help_for_every_command(self):
        r = self.ctl("help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("pod attach ID", r.stdout)
        for cmd in ("pod", "login", "user", "audit", "runner"):
            a, b = self.ctl("help", cmd), self.ctl(cmd, "--help")
            self.assertEqual((a.returncode, b.returncode), (0, 0), cmd)
            self.assertEqual(a.stdout, b.stdout, cmd)
            self.assertIn(f"airmeshctl {cmd}" if cmd != "audit" else "audit verify", a.stdout)
        self.assertIn("Ctrl-] then q", self.ctl("pod", "attach", "--help").stdout)
        r = self.ctl("help", "nope")
        self.assertEqual(r.returncode, 2)
        self.assertIn("the commands are:", r.stderr)

    # ---- lists, show, logs ----

    def test_pod_list_aligns_non_ascii_branches_and_shows_the_whole_command(self):
        pid = self.start("sh", "-c", "echo hi; exec sleep 120", branch="feature/ünïcødé-日本")
        r = self.ctl("pod", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(),
                         ["ID", "NAME", "STATE", "OWNER", "RUNNER", "BRANCH", "COMMAND"])
        row = next(l for l in lines if l.startswith(pid))
        self.assertIn("sh -c 'echo hi; exec sleep 120'", row, "the whole command")
        self.assertIn(" admin ", row, "the owner")
        # COMMAND starts in the same display column on every line.
        col = width(lines[0][:lines[0].index("COMMAND")])
        for l in lines[1:]:
            cmd_at = l.index("sh -c") if l.startswith(pid) else None
            if cmd_at is not None:
                self.assertEqual(width(l[:cmd_at]), col, r.stdout)
        # The other lists have the same style of header.
        for what in ("user", "team", "runner", "token"):
            head = self.ctl(what, "list").stdout.splitlines()[0]
            self.assertEqual(head, head.upper(), what)
            self.assertRegex(head, r"^ID  ", what)
        self.ctl("pod", "stop", pid)

    def test_pod_show_is_human_on_a_terminal_and_json_for_scripts(self):
        pid = self.start("sh", "-c", "echo shown")
        wait_for(lambda: json.loads(self.ctl("pod", "show", pid).stdout)["state"] == "exited",
                 60, what="pod exited")
        doc = json.loads(self.ctl("pod", "show", pid, "--json").stdout)
        self.assertEqual(doc["id"], pid)
        t = Pty(self.d, self.home, "pod", "show", pid)
        try:
            t.expect(rb"Recording")
            t.proc.wait(30)
            text = t.out.decode()
            self.assertRegex(text, r"State\s+exited\(0\)")
            self.assertRegex(text, r"Owner\s+admin")
            self.assertRegex(text, r"Command\s+sh -c 'echo shown'")
            self.assertRegex(text, r"Created\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")
            self.assertNotIn("created_ms", text)
        finally:
            t.close()

    def test_pod_logs_prints_the_scrollback_and_returns(self):
        pid = self.start("sh", "-c", "for i in 1 2 3; do echo log-line-$i; done; exec sleep 120")
        wait_for(lambda: "log-line-3" in self.ctl("pod", "logs", pid).stdout, 30,
                 what="the scrollback")
        r = self.ctl("pod", "logs", pid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"log-line-1\r?\nlog-line-2\r?\nlog-line-3")
        r = self.ctl("pod", "logs", "p-nosuchpod")
        self.assertEqual(r.returncode, 1)
        self.assertIn("404", r.stderr)
        self.ctl("pod", "stop", pid)

    # ---- attach ----

    def test_attach_in_a_real_pty_types_into_the_pod_and_detaches(self):
        pid = self.start("sh")
        t = Pty(self.d, self.home, "pod", "attach", pid, rows=31, cols=97)
        try:
            t.expect(rb"detach with Ctrl-\] then q")
            # Raw mode while attached: no echo, no line editing by our terminal.
            wait_for(lambda: not termios.tcgetattr(t.slave)[3] & termios.ICANON, 10,
                     what="raw mode")
            wait_for(lambda: json.loads(self.ctl("pod", "show", pid).stdout)["state"] ==
                     "running", 30, what="running")
            t.expect(rb"you have control")
            t.send(b"echo typed-$((6*7)); stty size\r")
            t.expect(rb"typed-42")
            t.expect(rb"31 97", 30)
            # What we typed reached the pod: its own scrollback has the answer.
            self.assertIn("typed-42", self.ctl("pod", "logs", pid).stdout)
            # Ctrl-] twice sends one Ctrl-] (not a detach); then Ctrl-] q detaches.
            t.send(b"\x1d\x1d")
            t.send(b"\x1dq")
            t.expect(rb"detached from pod")
            self.assertEqual(t.proc.wait(30), 0)
            after = termios.tcgetattr(t.slave)
            self.assertEqual(after[3] & (termios.ICANON | termios.ECHO),
                             t.before[3] & (termios.ICANON | termios.ECHO),
                             "the terminal is restored")
            self.assertTrue(after[3] & termios.ICANON)
            # The pod keeps running after a detach.
            self.assertEqual(json.loads(self.ctl("pod", "show", pid).stdout)["state"], "running")
        finally:
            t.close()
            self.ctl("pod", "stop", pid)

    def test_a_second_attach_watches_then_gets_control_when_it_is_released(self):
        pid = self.start("sh")
        a = Pty(self.d, self.home, "pod", "attach", pid)
        b = None
        try:
            a.expect(rb"you have control")
            b = Pty(self.d, self.home, "pod", "attach", pid)
            b.expect(rb"admin has control: you are watching")
            a.send(b"echo from-a-$((2+3))\r")
            b.expect(rb"from-a-5")  # the watcher sees the holder's output live
            a.send(b"\x1dq")
            a.expect(rb"detached from pod")
            b.expect(rb"you have control")
            b.send(b"echo from-b-$((3+4))\r")
            b.expect(rb"from-b-7")
            b.send(b"\x1dq")
            self.assertEqual(b.proc.wait(30), 0)
        finally:
            a.close()
            if b:
                b.close()
            self.ctl("pod", "stop", pid)

    def test_an_idle_holder_loses_control_to_the_next_taker_never_an_active_one(self):
        pid = self.start("sh")
        a = Pty(self.d, self.home, "pod", "attach", pid)
        token = json.loads(harness.read(os.path.join(self.home, ".config", "airmesh",
                                                     "session")))["token"]
        b = None
        try:
            a.expect(rb"you have control")
            b = WS(self.d, f"/api/v1/pods/{pid}/terminal", token)
            hello = next(m for m in b.messages(10) if m["type"] == "hello")
            # Positive control: while the holder (the same user, in the attach) is active, a take
            # from this other connection is refused and says where control is.
            a.send(b"echo act''ive\r")
            a.expect(rb"active")  # the echo came back: the appliance has seen this input
            b.send_json({"type": "take"})
            errors = [m for m in b.messages(5) if m["type"] in ("error", "control")]
            self.assertTrue(errors and "you, in another tab or window" in
                            errors[0].get("message", ""), errors)
            # Once the attach has typed nothing for control_idle (8 s), the same take succeeds.
            def took():
                b.send_json({"type": "take"})
                return any(m["type"] == "control" and m["holder"] == hello["you"]
                           for m in b.messages(1))
            wait_for(took, 30, step=0, what="the idle holder's control taken")
            a.expect(rb"admin has control: you are watching")
            code, _, _, body = harness.curl(self.d, "/api/v1/audit?action=pod.terminal.take"
                                            "&limit=1000", "-H", "Authorization: Bearer " + token)
            self.assertEqual(code, 200, body)
            takes = [e for e in json.loads(body)["events"] if e["target"] == "pod:" + pid]
            self.assertEqual(takes[-1]["details"], {"from": "user:admin", "why": "idle"})
        finally:
            a.close()
            if b:
                b.close()
            self.ctl("pod", "stop", pid)

    def test_attach_ends_when_the_pod_exits(self):
        pid = self.start("sh")
        t = Pty(self.d, self.home, "pod", "attach", pid)
        try:
            t.expect(rb"detach with Ctrl-\] then q")
            wait_for(lambda: json.loads(self.ctl("pod", "show", pid).stdout)["state"] ==
                     "running", 30, what="running")
            t.expect(rb"you have control")
            t.send(b"exit 3\r")
            t.expect(rb"pod \S+ exited \(code 3\)")
            self.assertEqual(t.proc.wait(30), 0)
            self.assertTrue(termios.tcgetattr(t.slave)[3] & termios.ICANON, "restored")
        finally:
            t.close()


if __name__ == "__main__":
    unittest.main()
