"""Shared pieces of the integration tests: start a real airmeshd, call it with curl and
airmeshctl, the way a user does. Binaries come from the command line (Bazel passes them):
  TEST.py AIRMESHD AIRMESHCTL UI_DIR [AIRMESH_RUNNER]
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

# Binaries are the leading arguments that name files; the rest go to unittest.
_n = 0
while _n < 4 and len(sys.argv) > _n + 1 and os.path.exists(sys.argv[_n + 1]):
    _n += 1
_args = [os.path.abspath(p) for p in sys.argv[1:_n + 1]]
AIRMESHD, AIRMESHCTL, UI_DIR = _args[:3]
AIRMESH_RUNNER = _args[3] if len(_args) > 3 else None
del sys.argv[1:_n + 1]



def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Daemon:
    """One airmeshd process with its own data dir; stdout lines are collected."""

    def __init__(self, data, port=None, extra=(), grpc_port=None):
        self.data = data
        self.port = port or free_port()
        self.grpc_port = grpc_port or free_port()
        self.grpc = f"127.0.0.1:{self.grpc_port}"
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca = os.path.join(data, "pki", "ca.pem")
        self.log_path = os.path.join(data + ".log")
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [AIRMESHD, "--data", data, "--listen", f"127.0.0.1:{self.port}", "--ui", UI_DIR,
             "--grpc-listen", self.grpc, *extra],
            stdout=subprocess.PIPE, stderr=self._log, text=True)
        self.banner = []

    def wait_ready(self, timeout=60):
        """Read the banner up to the CA certificate line (and the password line, if any)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError("airmeshd exited early: " + read(self.log_path))
            self.banner.append(line.rstrip("\n"))
            if line.startswith("  runners dial:"):
                break
        # The password line, when present, follows right after a hint line.
        self.proc.stdout.flush()
        return self

    def read_password(self):
        for _ in range(2):
            line = self.proc.stdout.readline().rstrip("\n")
            self.banner.append(line)
            if line.startswith("admin password: "):
                return line[len("admin password: "):]
        return None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("airmeshd did not stop within %ds" % timeout)
        self.stderr = read(self.log_path)
        self.proc.stdout.close()
        self._log.close()
        if self.proc.returncode != 0:
            # Put the daemon's own account in the test log: sanitizer reports, error lines.
            sys.stderr.write("airmeshd exited %d; its log:\n%s\n" % (self.proc.returncode,
                                                                   self.stderr[-20000:]))
        return self.proc.returncode


def curl(d, path, *args, http="--http2"):
    out = subprocess.run(
        ["curl", "-sS", http, "--cacert", d.ca, "-o", "-", "-D", "/dev/stderr",
         "-w", "\n%{http_version} %{http_code}", *args, d.url + path],
        capture_output=True, text=True, timeout=30)
    body, _, tail = out.stdout.rpartition("\n")
    version, code = tail.split() if tail else ("0", "0")
    headers = {}
    for line in out.stderr.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return int(code), version, headers, body


def ctl(d, *args, env_extra=None, home=None, stdin=None):
    env = dict(os.environ)
    env["HOME"] = home or tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
    env.pop("XDG_CONFIG_HOME", None)
    env.pop("AIRMESH_TOKEN", None)
    env.update(env_extra or {})
    return subprocess.run([AIRMESHCTL, "--url", d.url, "--ca", d.ca, *args], capture_output=True,
                          text=True, timeout=60, env=env, input=stdin)




def login(d, password, home=None):
    """Log in as admin with airmeshctl; returns the HOME holding the saved session."""
    home = home or tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
    r = ctl(d, "login", "--user", "admin", stdin=password + "\n", home=home)
    if r.returncode != 0:
        raise AssertionError("login failed: " + r.stderr)
    return home


def wait_for(pred, timeout=30, step=0.2, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out waiting for " + what)


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def emergency_cleanup(cls):
    """After a failed class setup (tearDownClass does not run then): stop whatever the setup
    started — runner, airmeshd — and unmount/remove the runner's temp dir, so a failing test
    leaves no processes or overlay mounts behind."""
    runner = getattr(cls, "runner", None)
    if runner is not None and runner.poll() is None:
        runner.send_signal(signal.SIGTERM)
        try:
            runner.wait(30)
        except subprocess.TimeoutExpired:
            runner.kill()
            runner.wait()
    d = getattr(cls, "d", None)
    if d is not None and d.proc.poll() is None:
        d.stop()
    rtmp = getattr(cls, "rtmp", None)
    if rtmp:
        for line in read("/proc/self/mounts").splitlines():
            target = line.split()[1]
            if target.startswith(rtmp):
                subprocess.run(["umount", "-l", target])
        import shutil
        shutil.rmtree(rtmp, ignore_errors=True)


def guarded_setup(cls, setup):
    """Run a class setup; if it fails, clean up what it started before re-raising."""
    try:
        setup()
    except BaseException:
        try:
            emergency_cleanup(cls)
        except BaseException as e:  # keep the original failure visible
            sys.stderr.write("cleanup after a failed setup: %r\n" % (e,))
        raise
