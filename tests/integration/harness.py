"""Shared pieces of the integration tests: start a real airmeshd and airmesh-runner, call them
with curl and airmeshctl, the way a user does. Binaries come from the command line (Bazel passes
them):  TEST.py AIRMESHD AIRMESHCTL UI_DIR [AIRMESH_RUNNER]

What the harness checks by itself, for every test that uses it (nothing to call):
- every airmeshd (Daemon) and airmesh-runner (Runner) started through it must end with the
  exit status the test expects (0 unless the test said otherwise: stop(expect=...), wait(),
  kill()) and without a sanitizer report (ASan, LSan, UBSan) in its log. A process that dies
  during a test fails that test; one still running when the file's tests are done is stopped
  with SIGTERM and checked, and any problem fails the run (reported as an error of a pseudo-test
  "harness.process_checks").
- airmeshctl (ctl()) and `airmesh-runner enroll` (Runner.enroll()) runs with a sanitizer report
  on stderr raise.
- the results go to Bazel's $XML_OUTPUT_FILE as JUnit XML, one <testcase> per test method,
  skips with their reason, so scripts/test.sh counts test cases, not targets.

What the tests share instead of copying: api() and token_login() for the REST API, git(),
gitdir() and make_repo() for repositories, enroll_runner() / wait_runner_online() for a runner,
and AdminRunnerTest, the base of the classes that need an airmeshd with the admin logged in
through airmeshctl and one online runner.
"""
import base64
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
import sys
import tempfile
import threading
import time
import unittest
from xml.sax.saxutils import escape, quoteattr

# Binaries are the leading arguments that name files; the rest go to unittest.
_n = 0
while _n < 4 and len(sys.argv) > _n + 1 and os.path.exists(sys.argv[_n + 1]):
    _n += 1
_args = [os.path.abspath(p) for p in sys.argv[1:_n + 1]]
AIRMESHD, AIRMESHCTL, UI_DIR = _args[:3]
AIRMESH_RUNNER = _args[3] if len(_args) > 3 else None
del sys.argv[1:_n + 1]

# What a sanitizer prints when it finds something (ASan/LSan errors, UBSan's "runtime error",
# any sanitizer's SUMMARY line).
SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|: runtime error: |"
                          r"SUMMARY: \w*Sanitizer|WARNING: ThreadSanitizer")


def sanitizer_report(text):
    """The lines around the first sanitizer report in text, or None."""
    m = SANITIZER_RE.search(text or "")
    if not m:
        return None
    start = text.rfind("\n", 0, max(0, m.start() - 2000)) + 1
    return text[start:m.start() + 6000]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


_procs = []  # every Daemon and Runner started in this process, in order


class _Proc:
    """A long-running product process with its stderr in a log file. Subclasses start it."""

    what = "process"

    def _track(self, log_path):
        self.log_path = log_path
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        # Logs are appended across restarts on one data dir: only this process's part counts.
        self._log_start = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        self._log = open(log_path, "a")
        self.expect = 0      # the exit status this test expects
        self.observed = False  # the test took the exit status into its own hands (wait())
        self.checked = False
        self.stderr = ""
        _procs.append(self)

    # Popen-like surface, so tests can treat it like the process.
    @property
    def pid(self):
        return self.proc.pid

    @property
    def returncode(self):
        return self.proc.returncode

    def poll(self):
        return self.proc.poll()

    def send_signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def log(self):
        """This process's part of its log file."""
        try:
            with open(self.log_path, errors="replace") as f:
                f.seek(self._log_start)
                return f.read()
        except OSError:
            return ""

    def _finish(self):
        if not self._log.closed:
            self._log.close()
        self.stderr = self.log()

    def problems(self):
        """What is wrong with how this process ended: [] if it exited as expected, cleanly."""
        out = []
        code = self.proc.returncode
        if code is not None and not self.observed and code != self.expect:
            out.append("%s exited %d, expected %d" % (self.what, code, self.expect))
        rep = sanitizer_report(self.stderr or self.log())
        if rep:
            out.append("%s printed a sanitizer report:\n%s" % (self.what, rep))
        return out

    def _raise_if_bad(self):
        self.checked = True
        bad = self.problems()
        if bad:
            raise AssertionError("\n".join(bad) + "\n--- its log (last 20000 bytes) ---\n" +
                                 self.stderr[-20000:])

    def wait(self, timeout=None, expect=None):
        """Wait for the exit and return the status. The caller asserts the status itself (or
        passes expect); the sanitizer check still applies."""
        code = self.proc.wait(timeout)
        self._finish()
        if expect is None:
            self.observed = True
        else:
            self.expect = expect
        self._raise_if_bad()
        return code

    def kill(self):
        """SIGKILL (a crash on purpose): the test expects status -9."""
        self.expect = -signal.SIGKILL
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._finish()
        self._raise_if_bad()

    def stop(self, sig=signal.SIGTERM, timeout=30, expect=0, check=True):
        """Signal the process and wait for it. With check (the default) a status other than
        expect, or a sanitizer report in its log, raises with the log. Returns the status."""
        self.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stacks = _stacks(self.proc.pid)
            self.proc.kill()
            self.proc.wait()
            self._finish()
            self.checked = True
            if check:
                raise AssertionError("%s did not stop within %ds; its log:\n%s\n%s" %
                                     (self.what, timeout, self.stderr[-20000:], stacks))
            return self.proc.returncode
        self._finish()
        self.expect = expect
        if check:
            self._raise_if_bad()
        else:
            self.checked = True
        return self.proc.returncode


class Daemon(_Proc):
    """One airmeshd process with its own data dir. Its stdout is read to the end by a thread
    (banner lines in self.banner; everything in self.stdout once it has exited)."""

    what = "airmeshd"

    def __init__(self, data, port=None, extra=(), grpc_port=None):
        self.data = data
        self.port = port or free_port()
        self.grpc_port = grpc_port or free_port()
        self.grpc = f"127.0.0.1:{self.grpc_port}"
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca = os.path.join(data, "pki", "ca.pem")
        self._track(data + ".log")
        self.proc = subprocess.Popen(
            [AIRMESHD, "--data", data, "--listen", f"127.0.0.1:{self.port}", "--ui", UI_DIR,
             "--grpc-listen", self.grpc, *extra],
            stdout=subprocess.PIPE, stderr=self._log, text=True)
        self.banner = []
        self._cv = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    def _read_stdout(self):
        for line in self.proc.stdout:
            with self._cv:
                self.banner.append(line.rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self._eof = True
            self._cv.notify_all()

    def _wait_line(self, prefix, timeout):
        """The first stdout line starting with prefix; None once stdout ended without one."""
        deadline = time.time() + timeout
        with self._cv:
            while True:
                for line in self.banner:
                    if line.startswith(prefix):
                        return line
                left = deadline - time.time()
                if self._eof:
                    return None
                if left <= 0:
                    raise AssertionError("airmeshd printed no %r line in %ds: %r" %
                                         (prefix, timeout, self.banner))
                self._cv.wait(left)

    def wait_ready(self, timeout=60):
        """Wait for the banner's last fixed line (`runners dial:`)."""
        if self._wait_line("  runners dial:", timeout) is None:
            self.proc.wait()
            raise AssertionError("airmeshd exited early (%s): %s" % (self.proc.returncode,
                                                                     self.log()))
        return self

    def read_password(self, timeout=10):
        """The one-time admin password (printed with the banner, in the same write); None if
        stdout ends without it. Absence is only proven once the daemon has exited: use
        stdout_text() after stop() for that."""
        try:
            line = self._wait_line("admin password: ", timeout)
        except AssertionError:
            return None
        return line[len("admin password: "):] if line else None

    def stdout_text(self):
        """Everything airmeshd wrote to stdout (complete once it has exited)."""
        if self.proc.poll() is not None:
            self._reader.join(10)
        with self._cv:
            return "\n".join(self.banner)

    def _finish(self):
        self._reader.join(10)
        self.proc.stdout.close()
        super()._finish()


def _stacks(pid):
    """Every thread's stack of a process that hangs (gdb, when the machine has it), so a hang
    in a test says where it is."""
    gdb = shutil.which("gdb")
    if not gdb:
        return "(no gdb here for the hung process's stacks)"
    try:
        r = subprocess.run([gdb, "-p", str(pid), "-batch", "-nx", "-ex", "thread apply all bt"],
                           capture_output=True, text=True, timeout=60)
        return "its threads:\n" + r.stdout[-30000:]
    except Exception as e:  # a diagnostic only: never hide the real failure
        return "(gdb failed: %s)" % e


class Runner(_Proc):
    """One `airmesh-runner run --data DATA [extra...]`, its stdout and stderr in DATA.log."""

    what = "airmesh-runner"

    def __init__(self, data, *extra, log_path=None):
        self.data = data
        self._track(log_path or data + ".log")
        self.proc = subprocess.Popen([AIRMESH_RUNNER, "run", "--data", data, *extra],
                                     stdout=self._log, stderr=self._log)

    @staticmethod
    def enroll(d, token, fp, data, check=True):
        """`airmesh-runner enroll` against daemon d; raises on a sanitizer report, and (with
        check) on a non-zero exit. Returns the CompletedProcess."""
        r = subprocess.run([AIRMESH_RUNNER, "enroll", "--appliance", d.grpc, "--token", token,
                            "--ca-sha256", fp, "--data", data], capture_output=True, text=True,
                           timeout=60)
        rep = sanitizer_report(r.stderr)
        if rep:
            raise AssertionError("airmesh-runner enroll printed a sanitizer report:\n" + rep)
        if check and r.returncode != 0:
            raise AssertionError("airmesh-runner enroll exited %d: %s" % (r.returncode,
                                                                          r.stderr))
        return r

    def runner_id(self):
        return json.loads(read(os.path.join(self.data, "runner.json")))["runner_id"]


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
    r = subprocess.run([AIRMESHCTL, "--url", d.url, "--ca", d.ca, *args], capture_output=True,
                       text=True, timeout=60, env=env, input=stdin)
    rep = sanitizer_report(r.stderr)
    if rep:
        raise AssertionError("airmeshctl %s printed a sanitizer report:\n%s" % (args[:2], rep))
    return r


def login(d, password, home=None):
    """Log in as admin with airmeshctl; returns the HOME holding the saved session."""
    home = home or tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
    r = ctl(d, "login", "--user", "admin", stdin=password + "\n", home=home)
    if r.returncode != 0:
        raise AssertionError("login failed: " + r.stderr)
    return home


def wait_for(pred, timeout=30, step=0.2, what="condition"):
    """Poll pred until it is truthy; the timeout only bounds a hang."""
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


# ---- the REST API, git and a runner: the pieces most test classes set up the same way ----

def api(d, method, path, token=None, body=None):
    """One REST call through curl, as a client would make it: (status, document). The document
    is the parsed JSON body, {} for an empty body, {"raw": text} for a body that is not JSON."""
    args = ["-X", method]
    if token:
        args += ["-H", "Authorization: Bearer " + token]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
    code, _, _, text = curl(d, path, *args)
    try:
        return code, json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return code, {"raw": text}


def token_login(d, user, password, org="default"):
    """POST /api/v1/login as user of org; returns the session token (raises unless 200)."""
    code, doc = api(d, "POST", "/api/v1/login", body={"user": user, "password": password,
                                                     "org": org})
    assert code == 200, (code, doc)
    return doc["token"]


def git(repo, *args, check=True):
    """git -C repo ARGS with a fixed committer; returns stdout, stripped."""
    return subprocess.run(["git", "-C", repo, "-c", "user.email=t@example.com",
                           "-c", "user.name=test", *args], check=check, capture_output=True,
                          text=True).stdout.strip()


def gitdir(d, *args, timeout=30):
    """git --git-dir d ARGS (a bare mirror); returns the CompletedProcess."""
    return subprocess.run(["git", "--git-dir", d, *args], capture_output=True, text=True,
                          timeout=timeout)


def make_repo(path, files=None, message="base"):
    """A git repository at path on branch main with files ({relative path: text}) in one
    commit; returns path."""
    os.makedirs(path, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", path], check=True)
    for name, text in (files or {}).items():
        full = os.path.join(path, name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
    git(path, "add", "-A")
    git(path, "commit", "-qm", message)
    return path


def cli_runner_token(d, home):
    """`airmeshctl token create` as the user logged in at home: (token, CA fingerprint)."""
    r = ctl(d, "token", "create", home=home)
    token = re.search(r"token:\s+(amt_\w+)", r.stdout)
    fp = re.search(r"CA fingerprint: (\w+)", r.stdout)
    if not token or not fp:
        raise AssertionError("token create printed no token: %s %s" % (r.stdout, r.stderr))
    return token.group(1), fp.group(1)


def banner_fingerprint(d):
    """The CA fingerprint airmeshd printed in its banner."""
    return re.search(r"CA fingerprint: (\w+)", "\n".join(d.banner)).group(1)


def enroll_runner(cls, prefix, token, fp, *runner_args):
    """Enroll one runner with token against cls.d and start it: its data lives in a fresh dir
    in /tmp (not below Bazel's TEST_TMPDIR, which is under /root: a pod sees the paths it
    binds, and the probes check that /root is not visible). Sets cls.rtmp, cls.rdata and
    cls.runner; returns the Runner."""
    cls.rtmp = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    cls.rdata = os.path.join(cls.rtmp, "runner")
    Runner.enroll(cls.d, token, fp, cls.rdata)
    cls.runner = Runner(cls.rdata, *runner_args)
    return cls.runner


def api_runner_and_repo(cls, prefix, name, *runner_args):
    """With cls.d and cls.admin (a REST token): a runner token from the API, one runner enrolled
    and started (enroll_runner: cls.rtmp, cls.rdata, cls.runner), a repository cls.repo below
    cls.tmp with a README "<name> test", and the runner online."""
    code, tok = api(cls.d, "POST", "/api/v1/runner-tokens", cls.admin, {})
    if code not in (200, 201):
        raise AssertionError("runner token: %s %s" % (code, tok))
    enroll_runner(cls, prefix, tok["token"], tok["ca_sha256"], *runner_args)
    cls.repo = make_repo(os.path.join(cls.tmp, "repo"), {"README": name + " test\n"})
    wait_runner_online(cls.d, token=cls.admin)


def wait_runner_online(d, home=None, token=None, timeout=30):
    """Wait until a runner of the caller's org is online (airmeshctl with home, or the REST
    API with token)."""
    if home is not None:
        wait_for(lambda: '"online"' in ctl(d, "runner", "list", "--json", home=home).stdout,
                 timeout, what="runner online")
    else:
        wait_for(lambda: any(r.get("state") == "online" for r in
                             api(d, "GET", "/api/v1/runners", token)[1].get("runners", [])),
                 timeout, what="runner online")


def unmount_below(prefix):
    """Lazily unmount every mount below prefix, deepest first (kept worktrees stay mounted by
    design)."""
    for line in reversed(read("/proc/self/mounts").splitlines()):
        target = line.split()[1]
        if target.startswith(prefix):
            subprocess.run(["umount", "-l", target])


class AdminRunnerTest(unittest.TestCase):
    """Base of the test classes that need one airmeshd with the bootstrap admin logged in
    through airmeshctl (cls.home) and one enrolled, online runner (cls.runner, data in
    cls.rdata below cls.rtmp). A subclass sets rtmp_prefix and runner_args, and may override
    prepare() to add what it needs (a repository, users) once the runner is started; the
    runner is online before the first test runs. tearDownClass stops both (exit 0 and no
    sanitizer report, or it raises), unmounts what is left below cls.rtmp and removes it; with
    expect_no_mounts it first asserts that the runner left no mount behind."""

    rtmp_prefix = "airmesh-test-"
    runner_args = ()
    daemon_extra = ()
    expect_no_mounts = False

    @classmethod
    def setUpClass(cls):
        guarded_setup(cls, cls._setup)

    @classmethod
    def _setup(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        cls.d = Daemon(os.path.join(cls.tmp, "airmesh"), extra=cls.daemon_extra).wait_ready()
        cls.home = login(cls.d, cls.d.read_password())
        token, fp = cli_runner_token(cls.d, cls.home)
        enroll_runner(cls, cls.rtmp_prefix, token, fp, *cls.runner_argv())
        cls.prepare()
        wait_runner_online(cls.d, home=cls.home)

    @classmethod
    def runner_argv(cls):
        """The runner's extra arguments (called once, before it starts)."""
        return cls.runner_args

    @classmethod
    def prepare(cls):
        """What the subclass adds once the runner is started (before it is waited for)."""

    @classmethod
    def tearDownClass(cls):
        try:
            cls.runner.stop(timeout=30)
        finally:
            cls.d.stop()
        if cls.expect_no_mounts:
            # The runner removed every worktree (and unmounted every overlay) on its way out.
            assert cls.rtmp not in read("/proc/self/mounts"), "overlay mounts left behind"
        unmount_below(cls.rtmp)
        import shutil
        shutil.rmtree(cls.rtmp, ignore_errors=True)

    @classmethod
    def ctl(cls, *args, **kw):
        return ctl(cls.d, *args, home=kw.pop("home", cls.home), **kw)


def emergency_cleanup(cls):
    """After a failed class setup (tearDownClass does not run then): stop whatever the setup
    started — runner, airmeshd — and unmount/remove the runner's temp dir, so a failing test
    leaves no processes or overlay mounts behind."""
    runner = getattr(cls, "runner", None)
    if runner is not None and runner.poll() is None:
        if isinstance(runner, _Proc):
            runner.stop(timeout=30, check=False)
        else:
            runner.send_signal(signal.SIGTERM)
            try:
                runner.wait(30)
            except subprocess.TimeoutExpired:
                runner.kill()
                runner.wait()
    d = getattr(cls, "d", None)
    if d is not None and d.proc.poll() is None:
        d.stop(check=False)
    rtmp = getattr(cls, "rtmp", None)
    if rtmp:
        unmount_below(rtmp)
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


# ---- results: process checks after each test, JUnit XML for Bazel ----

class _ProcessChecks(unittest.TestCase):
    """Stands for the end-of-run check of every Daemon/Runner in the report."""

    def runTest(self):
        pass

    def id(self):
        return "harness.process_checks"

    def __str__(self):
        return "process_checks (harness)"


def _unchecked_problems(stop_running):
    """Problems of processes that ended since the last look (and, with stop_running, of the
    ones still running, which are stopped first)."""
    msgs = []
    for p in _procs:
        if p.checked:
            continue
        if p.proc.poll() is None:
            if not stop_running:
                continue
            p.stop(timeout=30, check=False)
        else:
            p._finish()
        p.checked = True
        bad = p.problems()
        if bad:
            msgs.append("\n".join(bad) + "\n--- its log (last 8000 bytes) ---\n" +
                        p.stderr[-8000:])
    return msgs


class _Result(unittest.TextTestResult):
    """TextTestResult that records each case for the XML file and fails a test during which a
    harness-started process died badly."""

    def startTestRun(self):
        super().startTestRun()
        self._cases = []
        self._t0 = {}

    def startTest(self, test):
        super().startTest(test)
        self._t0[test.id()] = time.time()

    def _rec(self, test, kind, text=""):
        t = time.time() - self._t0.get(test.id(), time.time())
        self._cases.append((test, kind, text, t))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._rec(test, "ok")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._rec(test, "failure", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._rec(test, "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._rec(test, "skipped", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._rec(test, "ok")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._rec(test, "failure", "unexpected success")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind = "failure" if issubclass(err[0], test.failureException) else "error"
            self._rec(subtest, kind, self._exc_info_to_string(err, test))

    def stopTest(self, test):
        # A Daemon/Runner that ended during this test (tearDown included) with a wrong status
        # or a sanitizer report fails this test.
        msgs = _unchecked_problems(stop_running=False)
        if msgs:
            try:
                raise AssertionError("\n\n".join(msgs))
            except AssertionError:
                self.addFailure(test, sys.exc_info())
        super().stopTest(test)

    def stopTestRun(self):
        msgs = _unchecked_problems(stop_running=True)
        if msgs:
            pseudo = _ProcessChecks()
            try:
                raise AssertionError("\n\n".join(msgs))
            except AssertionError:
                err = sys.exc_info()
            self.errors.append((pseudo, self._exc_info_to_string(err, pseudo)))
            self._rec(pseudo, "error", self.errors[-1][1])
        super().stopTestRun()
        self._write_xml()

    def _write_xml(self):
        path = os.environ.get("XML_OUTPUT_FILE")
        if not path:
            return
        suite = os.path.splitext(os.path.basename(sys.argv[0]))[0]
        n = len(self._cases)
        nf = sum(1 for c in self._cases if c[1] == "failure")
        ne = sum(1 for c in self._cases if c[1] == "error")
        ns = sum(1 for c in self._cases if c[1] == "skipped")
        out = ['<?xml version="1.0" encoding="UTF-8"?>',
               '<testsuites tests="%d" failures="%d" errors="%d" skipped="%d">' % (n, nf, ne, ns),
               '<testsuite name=%s tests="%d" failures="%d" errors="%d" skipped="%d">' %
               (quoteattr(suite), n, nf, ne, ns)]
        for test, kind, text, t in self._cases:
            tid = test.id()
            cls, _, name = tid.rpartition(".")
            if not hasattr(test, "_testMethodName"):  # a class/module fixture's error
                cls, name = suite, str(test)
            head = '<testcase name=%s classname=%s time="%.3f"' % (quoteattr(name or tid),
                                                                  quoteattr(cls), t)
            if kind == "ok":
                out.append(head + "/>")
            elif kind == "skipped":
                out.append(head + "><skipped message=%s/></testcase>" % quoteattr(text))
            else:
                first = (text.strip().splitlines() or [kind])[-1]
                out.append(head + "><%s message=%s>%s</%s></testcase>" %
                           (kind, quoteattr(first[:500]), escape(text), kind))
        out += ["</testsuite>", "</testsuites>", ""]
        with open(path, "w") as f:
            f.write("\n".join(out))


# unittest.main() (in every test file) builds a TextTestRunner, whose results are _Result.
unittest.TextTestRunner.resultclass = _Result


class WS:
    """A minimal blocking RFC 6455 client over TLS (HTTP/1.1 upgrade)."""

    def __init__(self, d, path, token=None, cookie=None, origin=None, rcvbuf=None):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.connect(("127.0.0.1", d.port))
        ctx = ssl.create_default_context(cafile=d.ca)
        self.s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        key = base64.b64encode(os.urandom(16)).decode()
        head = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{d.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        if cookie:
            head += f"Cookie: am_session={cookie}\r\n"
        if origin:
            head += f"Origin: {origin}\r\n"
        self.s.sendall((head + "\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.s.recv(65536)
            if not chunk:
                break
            buf += chunk
        header, _, rest = buf.partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        self.status = int(header.split(b" ")[1]) if header else 0
        self.header = header.decode(errors="replace")
        self.closed = None

    def send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            hdr = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.s.sendall(hdr + mask + body)

    def send_json(self, obj):
        self.send(1, json.dumps(obj).encode())

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("websocket read timed out")
            if not self.s.pending():
                r, _, _ = select.select([self.s], [], [], left)
                if not r:
                    continue
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise EOFError("connection closed without a close frame")
            self.buf += chunk

    def recv(self, timeout=30):
        """One message: (opcode, payload). Close frames set self.closed = code."""
        deadline = time.time() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10, deadline)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(off + n, deadline)
        payload = bytes(self.buf[off:off + n])
        del self.buf[:off + n]
        assert b0 & 0x80, "fragmented frames are not expected from the server"
        op = b0 & 0x0F
        if op == 8:
            self.closed = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        return op, payload

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


# ---- MCP inside pods (issue 13): the official MCP SDK's client, run in a real pod ----
# A test file that scripts MCP calls needs, in tests/integration/BUILD.bazel:
#   data = ["//tests/mcp:client.cjs", "//tests/agents:package-lock.json",
#           "//tests/agents:package.json"],
#   env = {"MCP_CLIENT": "$(location //tests/mcp:client.cjs)",
#          "AGENTS_LOCK": "$(location //tests/agents:package-lock.json)"},
# and a runner started with ("--agents-dir", agents_dir()) (the SDK is in that dir's
# node_modules, bound read-only into every pod). Then, with an API token of the pod's starter:
#   pid = mcp_pod(d, token, repo, [{"op": "list"}, {"op": "call", "name": "get_ticket",
#                                   "args": {"key": "DEFAULT-1"}}])
#   results = mcp_results(d, token, pid)     # one dict per step, in order
#   doc = mcp_structured(results[1])         # the tool's JSON answer (or raises with its error)
# Steps are tests/mcp/client.cjs's (init, list, call, raw, connect, wait_stdin);
# mcp_run() is mcp_pod + mcp_results. skip_unless_mcp_client() gives a unittest skip
# decorator for hosts without the install (`make agents`).

def agents_dir():
    """Where scripts/agents.sh installed tests/agents/package-lock.json (the same key), from
    $AGENTS_LOCK; None when the test was not given the lock file."""
    lock = os.environ.get("AGENTS_LOCK")
    if not lock:
        return None
    import hashlib
    lock = os.path.realpath(lock)
    with open(os.path.join(os.path.dirname(lock), "package.json"), "rb") as f:
        data = f.read()
    with open(lock, "rb") as f:
        data += f.read()
    cache = os.environ.get("AIRMESH_AGENTS_CACHE", "/var/cache/airmesh/agents")
    return os.path.join(cache, hashlib.sha256(data).hexdigest()[:16])


def mcp_client_missing():
    """"" when pods can run the SDK client, else why not (for a skip reason)."""
    a = agents_dir()
    if not os.environ.get("MCP_CLIENT"):
        return "the test was not given MCP_CLIENT (tests/mcp/client.cjs)"
    if not a or not os.path.exists(os.path.join(a, ".complete")):
        return "no agents install with the MCP SDK at %s: run `make agents`" % a
    if not os.path.isdir(os.path.join(a, "node_modules", "@modelcontextprotocol", "sdk")):
        return "the agents install %s has no @modelcontextprotocol/sdk" % a
    return ""


def skip_unless_mcp_client():
    return unittest.skipIf(mcp_client_missing() != "", mcp_client_missing())


def mcp_pod(d, token, repo, steps, env=None, network=None, body=None):
    """Start a pod (as the token's user) that runs tests/mcp/client.cjs with steps: the SDK's
    Client + StdioClientTransport spawning /opt/airmesh/bin/airmesh-mcp. Returns the pod id
    (201 asserted). env: extra pod env; body: extra create fields."""
    with open(os.environ["MCP_CLIENT"]) as f:
        src = f.read()
    e = {"MCP_STEPS": json.dumps(steps),
         "NODE_PATH": os.path.join(agents_dir(), "node_modules")}
    e.update(env or {})
    b = {"repo": repo, "command": ["node", "-e", src], "env": e}
    if network:
        b["network"] = network
    b.update(body or {})
    code, p = api(d, "POST", "/api/v1/pods", token, b)
    assert code == 201, (code, p)
    return p["id"]


def mcp_output(d, token, pod_id):
    """The pod's scrollback (airmeshctl pod logs) as text."""
    return ctl(d, "pod", "logs", pod_id, env_extra={"AIRMESH_TOKEN": token}).stdout


def mcp_results(d, token, pod_id, n=None, timeout=120):
    """The client's results (one dict per step, in order) once it printed MCPDONE, or once n
    results are there (a pod waiting in a wait_stdin step). Raises with the output when the
    client failed (MCPFAIL)."""
    def parse():
        text = mcp_output(d, token, pod_id)
        if "MCPFAIL" in text:
            raise AssertionError("the MCP client in pod %s failed:\n%s" % (pod_id, text[-4000:]))
        # Only complete lines (a line still being written has no newline yet).
        res = [json.loads(m) for m in re.findall(r"^MCPRESULT (.*?)\r?\n", text, re.M)]
        if "MCPDONE" in text or (n is not None and len(res) >= n):
            return res
        return None
    return wait_for(parse, timeout, step=0.5, what="the MCP client's results in pod " + pod_id)


def mcp_run(d, token, repo, steps, **kw):
    """mcp_pod + mcp_results: (pod id, results)."""
    pid = mcp_pod(d, token, repo, steps, **kw)
    return pid, mcp_results(d, token, pid)


def mcp_structured(result):
    """A call step's tool answer (structuredContent); raises unless the call succeeded."""
    r = result.get("result")
    if not r or r.get("isError") or "structuredContent" not in r:
        raise AssertionError("MCP call failed: %s" % json.dumps(result)[:2000])
    return r["structuredContent"]


def mcp_error_text(result):
    """A call step's error text: the tool's isError text, or the JSON-RPC error message."""
    r = result.get("result")
    if r and r.get("isError"):
        return " ".join(c.get("text", "") for c in r.get("content", []))
    if result.get("error"):
        return result["error"].get("message", "")
    raise AssertionError("MCP call did not fail: %s" % json.dumps(result)[:2000])


def pod_process_pid(tag, timeout=30):
    """The host pid of a pod's process whose environment holds MCP_TAG=tag (give the pod that
    env): /proc/<it>/root is the pod's root as the host sees it."""
    want = ("MCP_TAG=%s" % tag).encode()

    def find():
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/environ" % p, "rb") as f:
                    if want in f.read().split(b"\0"):
                        return int(p)
            except OSError:
                continue
        return None
    return wait_for(find, timeout, what="the process of pod tag " + tag)
