#!/usr/bin/python3
"""Containment against a hostile agent (issue 9): each attack runs from inside a real pod on a
real runner enrolled with a real airmeshd, first proves it reached what it attacks, then proves
the attack fails.

- a sysctl write through /proc/sys (the file is there and readable; the write fails; the host
  value is unchanged);
- a setuid file left in a kept worktree and in the pod's git dir (inside it is the agent user's
  and 4755; on the host it belongs to the unprivileged mapped uid, never to root);
- a 3 GiB allocation with no --memory (the pod's record shows the default; the kernel kills it
  at 2 GiB; the pod ends failed with the reason; the runner lives on and runs the next pod);
- filling /tmp, /dev/shm and /workspace (each fill stops with ENOSPC at its default size; the
  workspace fill lands on the pod's quota tmpfs, not on the runner's disk);
- io_uring_setup (works on the host, denied in the pod).
"""
import json
import os
import re
import subprocess
import sys
import unittest

import harness
from harness import make_repo

MiB = 1 << 20
GiB = 1 << 30
POD_ROOT_HOST_UID = 100000  # the runner's default --uid-range 100000:65536
# Pods' commands run as the agent user, pod uid 1000 = host 101000 with that range.
AGENT_HOST_UID = POD_ROOT_HOST_UID + 1000

IO_URING_SNIPPET = (
    "import ctypes, os\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.syscall.restype = ctypes.c_long\n"
    "params = ctypes.create_string_buffer(120)\n"
    "pid = libc.syscall(39)\n"  # getpid: the control that syscall() itself works
    "rc = libc.syscall(425, 1, params)\n"  # io_uring_setup(1, &params)
    "err = ctypes.get_errno()\n"
    "print('GETPID', pid == os.getpid(), 'IO_URING', rc, os.strerror(err) if rc < 0 else 'fd')\n"
)


class ContainmentTest(harness.AdminRunnerTest):
    # Kept worktrees stay mounted by design: tearDownClass takes them (and their quota tmpfs)
    # down.
    rtmp_prefix = "airmesh-containment-test-"

    @classmethod
    def prepare(cls):
        cls.repo = make_repo(os.path.join(cls.tmp, "repo"), {"README": "containment\n"})

    def run_pod(self, *args, timeout=120):
        r = self.ctl("pod", "create", "--json", "--repo", self.repo, *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        pod = json.loads(r.stdout)
        self.ctl("pod", "wait", pod["id"], "--timeout", str(timeout))
        info = json.loads(self.ctl("pod", "show", pod["id"]).stdout)
        self.assertIn(info["state"], ("exited", "failed", "stopped"), info)
        return info, self.output(pod["id"])

    def output(self, pid):
        out = os.path.join(self.tmp, pid + ".cast")
        r = self.ctl("pod", "recording", pid, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = harness.read(out).splitlines()
        return "".join(json.loads(l)[2] for l in lines[1:] if json.loads(l)[1] == "o")

    def assertRunnerAlive(self):
        self.assertIsNone(self.runner.poll(), harness.read(self.rdata + ".log")[-4000:])

    # ---- /proc/sys --------------------------------------------------------------------------

    def test_sysctl_write_from_a_pod_fails_and_the_host_value_is_unchanged(self):
        path = "/proc/sys/kernel/printk_ratelimit_burst"
        host_before = harness.read(path).strip()
        new = "11" if host_before != "11" else "12"
        script = ("echo VALUE=$(cat %s); echo %s > %s && echo WROTE; "
                  "echo '|/bin/sh' > /proc/sys/kernel/core_pattern && echo CORE-WROTE; "
                  "echo AFTER=$(cat %s)" % (path, new, path, path))
        info, out = self.run_pod("--", "sh", "-c", script)
        # Positive control: the pod read the real sysctl (same value as the host's).
        self.assertIn("VALUE=%s\r\n" % host_before, out)
        self.assertNotIn("WROTE", out)
        self.assertRegex(out, r"(Read-only file system|Permission denied)")
        self.assertIn("AFTER=%s\r\n" % host_before, out)
        self.assertEqual(harness.read(path).strip(), host_before)
        self.assertNotIn("|/bin/sh", harness.read("/proc/sys/kernel/core_pattern"))

    # ---- setuid files -----------------------------------------------------------------------

    def test_setuid_file_made_in_a_pod_is_not_host_roots(self):
        script = ("cp /bin/true /workspace/suid && chmod 4755 /workspace/suid && "
                  "G=$(git rev-parse --absolute-git-dir) && cp /bin/true $G/suid && "
                  "chmod 4755 $G/suid && echo GITDIR=$G && stat -c 'INSIDE %a %u' /workspace/suid")
        info, out = self.run_pod("--keep-worktree", "--", "sh", "-c", script)
        self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), out)
        # Positive control: inside, the file is the pod user's (agent, 1000) and setuid.
        self.assertIn("INSIDE 4755 1000", out)
        gitdir = re.search(r"GITDIR=(\S+)", out).group(1)
        pod_dir = os.path.dirname(gitdir)
        self.assertTrue(pod_dir.startswith(os.path.join(self.rdata, "pods")), pod_dir)
        for f in (os.path.join(pod_dir, "upper", "suid"), os.path.join(gitdir, "suid"),
                  os.path.join(pod_dir, "workspace", "suid")):
            st = os.stat(f)
            self.assertTrue(st.st_mode & 0o4000, f)  # the agent did set it ...
            self.assertNotEqual(st.st_uid, 0, f)  # ... but it is not root's on the host
            self.assertEqual(st.st_uid, AGENT_HOST_UID, f)
            self.assertNotEqual(st.st_gid, 0, f)

    # ---- memory -------------------------------------------------------------------------------

    def test_3gib_allocation_without_memory_flag_is_killed_at_the_default(self):
        script = ("import sys\nprint('ALLOCATING', flush=True)\n"
                  "b = bytearray(3 << 30)\nprint('ALLOCATED', len(b), flush=True)\n")
        info, out = self.run_pod("--", "python3", "-c", script, timeout=180)
        self.assertEqual(info["limits"]["memory"], 2 * GiB, info)  # the default was applied
        self.assertEqual(info["limits_note"], "", info)  # by a memory cgroup, not RLIMIT_AS
        self.assertIn("ALLOCATING", out)  # it got as far as the allocation
        self.assertNotIn("ALLOCATED", out)
        self.assertEqual(info["state"], "failed", info)
        self.assertRegex(info["reason"], r"^memory limit 2 GiB reached", info)
        # The runner is unharmed and runs the next pod.
        self.assertRunnerAlive()
        info, out = self.run_pod("--", "sh", "-c", "echo STILL-HERE")
        self.assertEqual(info["state"], "exited", info)
        self.assertIn("STILL-HERE", out)

    # ---- disk ----------------------------------------------------------------------------------

    def disk_usage_kib(self):
        # du -x: only the runner's own filesystem (a pod's quota tmpfs is another mount).
        r = subprocess.run(["du", "-skx", self.rdata], capture_output=True, text=True)
        return int(r.stdout.split()[0])

    def test_filling_tmp_shm_and_workspace_stops_at_the_quota(self):
        fill = ("for d in /tmp /dev/shm /workspace; do "
                "dd if=/dev/zero of=$d/fill bs=1M count=1300 2>&1 | grep -o 'No space left' ; "
                "echo SIZE $d $(stat -c %s $d/fill); done; "
                "G=$(git rev-parse --absolute-git-dir); rm -f /workspace/fill; "
                "dd if=/dev/zero of=$G/objects/fill bs=1M count=1300 2>&1 | grep -o 'No space left';"
                " echo SIZE gitdir $(stat -c %s $G/objects/fill); rm -f $G/objects/fill")
        before = self.disk_usage_kib()
        info, out = self.run_pod("--", "sh", "-c", fill, timeout=180)
        self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), out)
        lim = info["limits"]
        self.assertEqual((lim["tmp"], lim["shm"], lim["workspace"]), (256 * MiB, 64 * MiB, GiB))
        self.assertEqual(out.count("No space left"), 4, out)
        sizes = dict(re.findall(r"SIZE (\S+) (\d+)", out))
        for where, quota in (("/tmp", 256 * MiB), ("/dev/shm", 64 * MiB),
                             ("/workspace", GiB), ("gitdir", GiB)):
            got = int(sizes[where])
            # Positive control: the fill got close to the quota (it really reached it) ...
            self.assertGreater(got, quota - 8 * MiB, (where, got))
            # ... and no further.
            self.assertLessEqual(got, quota, (where, got))
        # None of it went to the runner's disk.
        self.assertLess(self.disk_usage_kib() - before, 64 * 1024)
        self.assertRunnerAlive()

    def test_workspace_quota_is_a_tmpfs_mount_on_the_pod_dir(self):
        info, out = self.run_pod("--keep-worktree", "--workspace", "64M", "--", "sh", "-c",
                                 "dd if=/dev/zero of=/workspace/f bs=1M count=100 2>&1 | "
                                 "grep -o 'No space left'; stat -c 'SIZE %s' /workspace/f; "
                                 "echo GITDIR=$(git rev-parse --absolute-git-dir)")
        self.assertEqual(info["limits"]["workspace"], 64 * MiB, info)
        self.assertIn("No space left", out)
        self.assertLessEqual(int(re.search(r"SIZE (\d+)", out).group(1)), 64 * MiB)
        pod_dir = os.path.dirname(re.search(r"GITDIR=(\S+)", out).group(1))
        mounts = [l.split() for l in harness.read("/proc/self/mounts").splitlines()]
        tmpfs = [m for m in mounts if m[1] == pod_dir]
        self.assertTrue(tmpfs and tmpfs[0][2] == "tmpfs", (pod_dir, tmpfs))
        self.assertIn("size=65536k", tmpfs[0][3])
        self.assertIn("nosuid", tmpfs[0][3])
        self.assertIn("nodev", tmpfs[0][3])

    def test_a_limit_too_small_to_work_is_refused_at_create(self):
        before = self.ctl("pod", "list", "--json").stdout
        for flag, value, message in (("--workspace", "1K", "limits.workspace: at least 16M"),
                                     ("--memory", "1M", "limits.memory: at least 64M"),
                                     ("--tmp", "4K", "limits.tmp, limits.shm: at least 1M")):
            r = self.ctl("pod", "create", "--repo", self.repo, flag, value, "--", "true")
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn(message, r.stderr)
        self.assertEqual(self.ctl("pod", "list", "--json").stdout, before)  # nothing created

    # ---- io_uring ------------------------------------------------------------------------------

    def test_io_uring_setup_is_denied_in_a_pod(self):
        # Control on the host: the very same program gets an io_uring descriptor here.
        host = subprocess.run([sys.executable, "-c", IO_URING_SNIPPET], capture_output=True,
                              text=True)
        self.assertIn("GETPID True IO_URING", host.stdout, host.stderr)
        self.assertNotIn("Operation not permitted", host.stdout)
        info, out = self.run_pod("--", "python3", "-c", IO_URING_SNIPPET)
        self.assertEqual(info["state"], "exited", info)
        self.assertIn("GETPID True IO_URING -1 Operation not permitted", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
