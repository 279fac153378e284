#!/usr/bin/python3
"""Integration tests for pods: a real airmeshd, a real enrolled runner, a git repo made here.

Each pod runs on a PTY inside namespaces + seccomp in its own worktree. From inside a pod the
sandbox probe (tests/sandbox/probe.c, committed into the test repo) checks pid 1, only `lo`,
hidden host paths, a read-only root, the denied syscalls and TIOCSTI; the worktree is on the new
branch at base_ref and a commit made inside is in the runner's mirror afterwards. Stop, bad
requests, the recording download and a runner crash (no orphans, true state reported) are
covered too.
"""
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import harness
from harness import AIRMESH_RUNNER, Daemon, Runner, ctl, login, wait_for

PROBE = os.path.abspath(os.environ["PROBE"]) if os.environ.get("PROBE") else None


# What the refused requests must answer, exactly (stderr of airmeshctl, a pod's end).
BAD_NETWORK = 'airmeshctl: HTTP 400: network: "none", "models", "allow" or "host"'
NO_RUNNER = "airmeshctl: HTTP 409: no online runner matches the labels"
BAD_ENV = "airmeshctl: HTTP 400: env: invalid variable name '1BAD'"
NO_BRANCH = r"^base ref 'no-such-branch' not found in \S+/repo \(branches: main\)$"
NO_PROGRAM = ("failed", None)  # the reason names the exec failure (checked below)


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, "-c", "user.email=t@example.com",
                           "-c", "user.name=test", *args], check=True, capture_output=True,
                          text=True).stdout.strip()


class PodsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.guarded_setup(cls, cls._setup)

    @classmethod
    def _setup(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        cls.d = Daemon(os.path.join(cls.tmp, "airmesh")).wait_ready()
        cls.home = login(cls.d, cls.d.read_password())
        r = ctl(cls.d, "token", "create", home=cls.home)
        token = re.search(r"token:\s+(amt_\w+)", r.stdout).group(1)
        fp = re.search(r"CA fingerprint: (\w+)", r.stdout).group(1)
        # The runner's data dir lives in /tmp, not under Bazel's TEST_TMPDIR (which is below
        # /root): the pod sees the path of the mirror it must bind, and the probe checks that
        # /root is not visible at all.
        cls.rtmp = tempfile.mkdtemp(prefix="airmesh-pods-test-", dir="/tmp")
        cls.rdata = os.path.join(cls.rtmp, "runner")
        Runner.enroll(cls.d, token, fp, cls.rdata)
        cls.runner = cls.start_runner()
        # A repo with a few files and the probe binary.
        cls.repo = os.path.join(cls.tmp, "repo")
        os.makedirs(os.path.join(cls.repo, "src"))
        subprocess.run(["git", "init", "-q", "-b", "main", cls.repo], check=True)
        for i in range(20):
            with open(os.path.join(cls.repo, "src", f"f{i}.txt"), "w") as f:
                f.write(f"file {i}\n")
        if PROBE:
            shutil.copy(PROBE, os.path.join(cls.repo, "probe"))
        git(cls.repo, "add", "-A")
        git(cls.repo, "commit", "-qm", "base")
        cls.base = git(cls.repo, "rev-parse", "HEAD")
        wait_for(lambda: '"online"' in cls.ctl("runner", "list", "--json").stdout, 30,
                 what="runner online")

    @classmethod
    def start_runner(cls):
        return Runner(cls.rdata)

    @classmethod
    def tearDownClass(cls):
        # Both stop with exit 0 and no sanitizer report, or this raises (harness).
        try:
            cls.runner.stop(timeout=30)
        finally:
            cls.d.stop()
        # The runner removed every worktree (and unmounted every overlay) on its way out.
        mounts = harness.read("/proc/self/mounts")
        assert cls.rtmp not in mounts, "overlay mounts left behind"
        shutil.rmtree(cls.rtmp)

    @classmethod
    def ctl(cls, *args):
        return ctl(cls.d, *args, home=cls.home)

    def create(self, *args, expect_ok=True):
        r = self.ctl("pod", "create", "--json", "--repo", self.repo, *args)
        if expect_ok:
            self.assertEqual(r.returncode, 0, r.stderr)
            return json.loads(r.stdout)
        return r

    def wait(self, pid, timeout=60):
        r = self.ctl("pod", "wait", pid, "--timeout", str(timeout))
        return json.loads(self.ctl("pod", "show", pid).stdout), r

    def recording(self, pid):
        out = os.path.join(self.tmp, pid + ".cast")
        r = self.ctl("pod", "recording", pid, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = harness.read(out).splitlines()
        header = json.loads(lines[0])
        self.assertEqual(header["version"], 2)
        return "".join(json.loads(l)[2] for l in lines[1:] if json.loads(l)[1] == "o")

    def test_worktree_branch_base_and_commit_lands_in_mirror(self):
        script = ("git branch --show-current; git rev-parse HEAD; git status --porcelain | wc -l;"
                  " echo change > new.txt; git add new.txt;"
                  " git -c user.email=p@x -c user.name=pod commit -qm 'made in pod' && echo COMMITTED")
        pod = self.create("--base-ref", "main", "--", "sh", "-c", script)
        self.assertEqual(pod["state"], "pending")
        info, _ = self.wait(pod["id"])
        self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), info)
        out = self.recording(pod["id"])
        self.assertIn(pod["branch"], out)
        self.assertEqual(pod["branch"], "airmesh/pod-" + pod["id"])
        self.assertIn(self.base, out)
        self.assertIn("COMMITTED", out)
        # The commit is in the runner's mirror on the pod's branch, after the pod is gone.
        mirror = glob.glob(os.path.join(self.rdata, "mirrors", "*.git"))[0]
        log = subprocess.run(["git", "--git-dir", mirror, "log", "--format=%s %P", pod["branch"]],
                             capture_output=True, text=True).stdout
        self.assertIn("made in pod " + self.base, log)

    def test_mirror_is_read_only_inside(self):
        # The pod has its own git dir (read-write) that borrows the mirror's objects; the mirror
        # itself is bound read-only, and only the pod's branch is brought back when it ends.
        mirror = os.path.join(os.path.realpath(self.rdata), "mirrors",
                              hashlib.sha256(self.repo.encode()).hexdigest()[:16] + ".git")
        script = ("M=%s; test -d $M/objects && echo MIRROR-VISIBLE;"
                  " touch $M/x 2>/dev/null && echo MIRROR-WRITABLE;"
                  " touch $M/objects/x 2>/dev/null && echo OBJECTS-WRITABLE;"
                  " git --git-dir=$M update-ref refs/heads/evil2 HEAD 2>/dev/null &&"
                  " echo MIRROR-REF-WRITTEN;"
                  " git update-ref refs/heads/evil HEAD && echo OWN-REF-OK;"
                  " echo x > y.txt; git add y.txt;"
                  " git -c user.email=p@x -c user.name=pod commit -qm 'ro check' && echo COMMITTED"
                  % mirror)
        pod = self.create("--", "sh", "-c", script)
        info, _ = self.wait(pod["id"])
        out = self.recording(pod["id"])
        self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), out)
        for good in ("MIRROR-VISIBLE", "OWN-REF-OK", "COMMITTED"):
            self.assertIn(good, out)
        for bad in ("MIRROR-WRITABLE", "OBJECTS-WRITABLE", "MIRROR-REF-WRITTEN"):
            self.assertNotIn(bad, out)
        self.assertFalse(os.path.exists(os.path.join(mirror, "x")))
        self.assertFalse(os.path.exists(os.path.join(mirror, "objects", "x")))
        refs = subprocess.run(["git", "--git-dir", mirror, "for-each-ref", "--format=%(refname)"],
                              capture_output=True, text=True, check=True).stdout.split()
        self.assertNotIn("refs/heads/evil", refs)
        self.assertNotIn("refs/heads/evil2", refs)
        log = subprocess.run(["git", "--git-dir", mirror, "log", "-1", "--format=%s",
                              pod["branch"]], capture_output=True, text=True).stdout
        self.assertEqual(log.strip(), "ro check")

    @unittest.skipUnless(PROBE, "probe binary not given")
    def test_sandbox_from_inside(self):
        # The runner's own key must be out of reach (the mirror is bound below its data dir,
        # so the data dir itself exists inside as an empty path).
        pod = self.create("--env", "ASAN_OPTIONS=detect_leaks=0", "--env",
                          "PROBE_HIDDEN=" + os.path.join(self.rdata, "identity.pem"), "--env",
                          "PROBE_HOSTNAME=p-*", "--env", "PROBE_UID=1000", "--",
                          "/workspace/probe")
        info, _ = self.wait(pod["id"])
        out = self.recording(pod["id"])
        self.assertNotIn("FAIL", out, out)
        for line in ("pid1 ok", "only_lo ok", "runs_as_uid_1000 ok", "init_memory_closed ok", "syscall mount EPERM", "syscall ptrace EPERM",
                     "syscall bpf EPERM", "syscall unshare EPERM", "tiocsti"):
            self.assertIn(line, out)
        self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), out)

    def test_writes_outside_workspace_and_tmp_fail(self):
        script = ("touch /usr/x 2>/dev/null && echo USR-WRITABLE; touch /etc/x 2>/dev/null && "
                  "echo ETC-WRITABLE; touch /x 2>/dev/null && echo ROOT-WRITABLE; "
                  "touch /tmp/x && echo TMP-OK; touch /workspace/x && echo WS-OK; "
                  "ls /root /home 2>/dev/null | head -1; test -e %s && echo HOST-VISIBLE; "
                  "echo $TERM" % os.path.join(self.rdata, "identity.pem"))
        pod = self.create("--", "sh", "-c", script)
        self.wait(pod["id"])
        out = self.recording(pod["id"])
        self.assertIn("TMP-OK", out)
        self.assertIn("WS-OK", out)
        self.assertIn("xterm-256color", out)
        for bad in ("USR-WRITABLE", "ETC-WRITABLE", "ROOT-WRITABLE", "HOST-VISIBLE"):
            self.assertNotIn(bad, out)

    def test_stop_ends_the_pod(self):
        pod = self.create("--", "sh", "-c", "trap '' TERM; echo started; sleep 600")
        wait_for(lambda: json.loads(self.ctl("pod", "show", pod["id"]).stdout)["state"] ==
                 "running", 30, what="running")
        r = self.ctl("pod", "stop", pod["id"])
        self.assertEqual(r.returncode, 0, r.stderr)
        info, _ = self.wait(pod["id"], 30)
        self.assertEqual(info["state"], "stopped")
        self.assertEqual(subprocess.run(["pgrep", "-f", "sleep 600"]).returncode, 1,
                         "the pod's processes must be gone")
        # An ended pod can be removed; an unknown one is 404.
        self.assertEqual(self.ctl("pod", "rm", pod["id"]).returncode, 0)
        self.assertIn("404", self.ctl("pod", "show", pod["id"]).stderr)

    def test_bad_requests_are_refused_clearly(self):
        before = self.ctl("pod", "list", "--json").stdout
        r = self.ctl("pod", "create", "--repo", self.repo, "--network", "internet", "--", "true")
        self.assertEqual((r.returncode, r.stdout), (1, ""), r.stderr)
        self.assertEqual(r.stderr.strip(), BAD_NETWORK)
        r = self.ctl("pod", "create", "--repo", self.repo, "--label", "gpu=yes", "--", "true")
        self.assertEqual((r.returncode, r.stdout), (1, ""), r.stderr)
        self.assertEqual(r.stderr.strip(), NO_RUNNER)
        r = self.ctl("pod", "create", "--repo", self.repo, "--env", "1BAD=x", "--", "true")
        self.assertEqual((r.returncode, r.stdout), (1, ""), r.stderr)
        self.assertEqual(r.stderr.strip(), BAD_ENV)
        # None of the refused requests made a pod.
        self.assertEqual(self.ctl("pod", "list", "--json").stdout, before)
        pod = self.create("--base-ref", "no-such-branch", "--", "true")
        info, _ = self.wait(pod["id"])
        self.assertEqual(info["state"], "failed")
        self.assertRegex(info["reason"], NO_BRANCH)
        pod = self.create("--", "/no/such/program")
        info, _ = self.wait(pod["id"])
        self.assertEqual((info["state"], info.get("exit_code")), NO_PROGRAM, info)
        self.assertEqual(info["reason"],
                         "command '/no/such/program' not found in the pod (no such file, or "
                         "its #! interpreter is missing)")

    def test_runner_crash_leaves_no_orphans_and_state_is_reconciled(self):
        pod = self.create("--", "sh", "-c", "echo up; exec sleep 777")
        wait_for(lambda: json.loads(self.ctl("pod", "show", pod["id"]).stdout)["state"] ==
                 "running", 30, what="running")
        cls = type(self)
        cls.runner.kill()  # a crash on purpose: status -9 is what the harness expects now
        wait_for(lambda: subprocess.run(["pgrep", "-f", "sleep 777"]).returncode == 1, 10,
                 what="pod processes to die with the runner")
        cls.runner = cls.start_runner()
        info = wait_for(lambda: (lambda p: p if p["state"] == "failed" else None)(
            json.loads(self.ctl("pod", "show", pod["id"]).stdout)), 30, what="reconciled")
        self.assertIn("restarted", info["reason"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
