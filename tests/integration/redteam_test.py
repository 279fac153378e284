#!/usr/bin/python3
"""Red team (issue 9 follow-up): the agent in a pod as hostile code, against a real airmeshd and
airmesh-runner. Each attack first proves it reached what it attacks, then that it fails.
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import unittest

import harness
from harness import git, wait_for

PROBE = r"""
import ctypes, os, socket, fcntl, errno, sys, glob
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def r(name, f):
    try:
        v = f()
        print("R", name, "OK", v, flush=True)
    except OSError as e:
        print("R", name, "ERR", e.errno, os.strerror(e.errno), flush=True)
    except Exception as e:
        print("R", name, "EXC", repr(e)[:120], flush=True)
def sc(*a):
    rc = libc.syscall(*[ctypes.c_long(x) if isinstance(x, int) else x for x in a])
    if rc < 0:
        e = ctypes.get_errno(); raise OSError(e, os.strerror(e))
    return rc
print("R pids", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
r("proc1root", lambda: os.listdir("/proc/1/root"))
r("proc1cwd", lambda: os.readlink("/proc/1/cwd"))
r("proc1fd", lambda: os.listdir("/proc/1/fd"))
r("proc1mem", lambda: open("/proc/1/mem","rb").read(1))
r("unshare_user", lambda: sc(272, 0x10000000))
r("unshare_ns", lambda: sc(272, 0x00020000))
r("clone3", lambda: sc(435, 0, 0))
r("mount_tmpfs", lambda: sc(165, b"none", b"/tmp", b"tmpfs", 0, 0))
r("open_tree", lambda: sc(428, -100, b"/", 1))
r("fsopen", lambda: sc(430, b"tmpfs", 0))
r("TIOCSETD_hdlc", lambda: fcntl.ioctl(0, 0x5423, (13).to_bytes(4,'little')))
r("TIOCSETD_slip", lambda: fcntl.ioctl(0, 0x5423, (1).to_bytes(4,'little')))
r("TIOCSETD_gsm", lambda: fcntl.ioctl(0, 0x5423, (21).to_bytes(4,'little')))
r("TIOCGETD", lambda: fcntl.ioctl(0, 0x5424, b"\0\0\0\0"))
r("TIOCCONS", lambda: fcntl.ioctl(0, 0x541D))
r("TIOCSTI", lambda: fcntl.ioctl(0, 0x5412, b"x"))
r("TIOCLINUX", lambda: fcntl.ioctl(0, 0x541C, b"\x0b"))
r("console_TIOCSTI", lambda: fcntl.ioctl(os.open("/dev/console", os.O_RDWR), 0x5412, b"x"))
r("tty_open", lambda: os.open("/dev/tty", os.O_RDWR))
r("cgroup", lambda: open("/proc/self/cgroup").read())
r("sysfs", lambda: os.listdir("/sys"))
r("mountinfo", lambda: [l.split()[4] for l in open("/proc/self/mountinfo")])
r("hardlink_usr", lambda: os.link("/usr/bin/true", "/workspace/hl"))
r("hardlink_tmp", lambda: os.link("/usr/bin/true", "/tmp/hl"))
r("mknod", lambda: os.mknod("/tmp/nod", 0o20666, os.makedev(1,3)))
r("abstract_conn", lambda: socket.socket(socket.AF_UNIX).connect("\0" + os.environ.get("AM_ABS","x")))
r("kill_minus1", lambda: os.kill(-1, 0))
r("ptrace", lambda: sc(101, 16, 1, 0, 0))
r("pvr", lambda: sc(310, 1, 0, 0, 0, 0, 0))
r("keyctl", lambda: sc(250, 0, 0, 0, 0, 0))
r("bpf", lambda: sc(321, 0, 0, 0))
r("perf", lambda: sc(298, 0, 0, -1, -1, 0))
r("userfaultfd", lambda: sc(323, 0))
r("socket_packet", lambda: socket.socket(17, socket.SOCK_RAW, 0))
r("socket_vsock", lambda: socket.socket(40, socket.SOCK_STREAM, 0))
r("socket_vsock_high", lambda: sc(41, 40 | (1 << 32), 1, 0))
r("socket_netlink_audit", lambda: socket.socket(16, socket.SOCK_RAW, 9))
r("setns", lambda: sc(308, 0, 0))
r("chroot", lambda: sc(161, b"/tmp"))
r("name_to_handle", lambda: sc(303, -100, b"/workspace", 0, 0, 0))
r("open_by_handle", lambda: sc(304, 0, 0, 0))
r("personality", lambda: sc(135, 0x0040000))
r("write_etc", lambda: open("/etc/passwd","a").write("x"))
r("mirror_write", lambda: [open(os.path.join(p,"evil"),"w") for p in glob.glob("/**/*.git", recursive=False)])
r("uid", lambda: (os.getuid(), open("/proc/self/uid_map").read(), open("/proc/self/status").read().split("CapEff:")[1][:20]))
r("rlimit_raise", lambda: __import__("resource").setrlimit(__import__("resource").RLIMIT_NPROC, (10**6, 10**6)))
r("proc_sys_write", lambda: open("/proc/sys/kernel/hostname","w").write("x"))
r("sysrq", lambda: open("/proc/sysrq-trigger","w").write("h"))
r("proc_self_attr", lambda: os.listdir("/proc/self/attr"))
r("dev", lambda: os.listdir("/dev"))
r("gitdir", lambda: os.popen("git rev-parse --absolute-git-dir").read())
"""


# Pods run their command (and the fetch-back helper) as the agent, uid 1000 in the pod: host uid
# 100000 + 1000 with the default range.
AGENT_HOST_UID = 101000

class RedTeamTest(harness.AdminRunnerTest):
    rtmp_prefix = "airmesh-redteam-test-"
    runner_args = ("--recording-max", "2M")

    @classmethod
    def prepare(cls):
        cls.repo = harness.make_repo(os.path.join(cls.tmp, "repo"), {"probe.py": PROBE})

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

    def probe(self, *args):
        info, out = self.run_pod(*args, "--", "python3", "/workspace/probe.py")
        self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), out)
        return dict(re.findall(r"^R (\S+) (.*?)\r?$", out, re.M))

    # ---- held: what a hostile agent tried that the sandbox stops (regression tests) ------------

    def test_processes_namespaces_mounts_and_ttys_outside_the_pod_are_out_of_reach(self):
        srv = socket.socket(socket.AF_UNIX)
        srv.bind("\0airmesh-redteam-abs")  # a host service on an abstract unix socket
        srv.listen(4)
        self.addCleanup(srv.close)
        c = socket.socket(socket.AF_UNIX)
        c.connect("\0airmesh-redteam-abs")  # control: reachable on the host
        c.close()
        # Control on the host: socket(AF_VSOCK | 1 << 32, ...) reaches the kernel as AF_VSOCK
        # (a socket, or EAFNOSUPPORT without the vsock module), not EINVAL.
        host = subprocess.run([sys.executable, "-c", "import ctypes\nlibc = ctypes.CDLL(None, "
                               "use_errno=True)\nrc = libc.syscall(ctypes.c_long(41), ctypes.c_long("
                               "40 | 1 << 32), ctypes.c_long(1), ctypes.c_long(0))\nprint(rc, "
                               "ctypes.get_errno())"], capture_output=True, text=True)
        rc, err = map(int, host.stdout.split())
        self.assertTrue(rc >= 0 or err == 97, host.stdout)
        r = self.probe("--env", "AM_ABS=airmesh-redteam-abs")
        # Positive controls: the probe ran as the pod's agent user (uid 1000 in the pod's map),
        # saw its own /proc and the PTY.
        self.assertTrue(r["uid"].startswith("OK (1000, '         0     100000      65536"), r)
        self.assertEqual(r["pids"], "[1, 2]")  # its init and itself, nothing of the host
        self.assertTrue(r["TIOCGETD"].startswith("OK"), r)
        self.assertTrue(r["tty_open"].startswith("OK"), r)
        # init (pid 1) is the runner's clone: not dumpable, no way into its root, cwd, fds, mem.
        for k in ("proc1root", "proc1cwd", "proc1fd", "proc1mem"):
            self.assertEqual(r[k], "ERR 13 Permission denied", k)
        for k in ("unshare_user", "unshare_ns", "mount_tmpfs", "open_tree", "fsopen", "setns",
                  "chroot", "ptrace", "pvr", "keyctl", "bpf", "perf", "userfaultfd",
                  "open_by_handle", "personality", "mknod", "socket_packet", "socket_vsock",
                  "socket_vsock_high",
                  "TIOCSTI", "TIOCLINUX", "TIOCCONS"):
            self.assertEqual(r[k], "ERR 1 Operation not permitted", k)
        self.assertEqual(r["clone3"], "ERR 38 Function not implemented")
        # Line disciplines other than N_TTY: not loadable from a pod (no module autoload).
        for k in ("TIOCSETD_hdlc", "TIOCSETD_slip", "TIOCSETD_gsm"):
            self.assertTrue(r[k].startswith("ERR"), (k, r[k]))
        # Hard links to host files (which a later chown/removal by the runner could follow):
        # every pod-writable dir is its own mount, so links from the read-only binds fail.
        self.assertEqual(r["hardlink_usr"], "ERR 18 Invalid cross-device link")
        self.assertEqual(r["hardlink_tmp"], "ERR 18 Invalid cross-device link")
        # network none: a new net namespace has its own abstract socket namespace.
        self.assertEqual(r["abstract_conn"], "ERR 111 Connection refused")
        self.assertEqual(r["sysfs"], "ERR 2 No such file or directory")
        self.assertEqual(r["proc_sys_write"], "ERR 30 Read-only file system")
        self.assertEqual(r["write_etc"], "ERR 13 Permission denied")
        self.assertIn("not allowed to raise maximum limit", r["rlimit_raise"])

    # ---- hole 1: invalid UTF-8 in the recording -------------------------------------------------

    def test_invalid_utf8_from_the_agent_never_reaches_the_asciicast(self):
        # Surrogates (ED A0 80), overlong forms (E0 80 AF), above U+10FFFF (F4 90 80 80, F5..):
        # the old check let them through into the JSON, which strict UTF-8 readers
        # (Python, asciinema) then refused as a whole.
        script = r"printf 'A\355\240\200B\340\200\257C\364\220\200\200D\365\200\200\200E\303\251F\n'"
        r = self.ctl("pod", "create", "--json", "--repo", self.repo, "--", "sh", "-c", script)
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = json.loads(r.stdout)["id"]
        self.ctl("pod", "wait", pid, "--timeout", "60")
        path = os.path.join(self.tmp, pid + ".cast")
        self.assertEqual(self.ctl("pod", "recording", pid, "-o", path).returncode, 0)
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")  # strict: raised before the fix
        lines = text.splitlines()
        out = "".join(json.loads(l)[2] for l in lines[1:] if json.loads(l)[1] == "o")
        R = "\ufffd"
        self.assertIn("A" + R * 3 + "B" + R * 3 + "C" + R * 4 + "D" + R * 4 + "E\u00e9F", out)

    # ---- hole 2: the recording filled the runner's disk ------------------------------------------

    def test_a_pod_that_prints_without_end_stops_being_recorded_at_the_limit(self):
        # The runner of this class runs with --recording-max 2M. 12 MB of random bytes as base64
        # (16 MB that zstd cannot shrink much) would have gone to DATA/recordings unbounded.
        script = "head -c 12000000 /dev/urandom | base64 -w 100; echo PRINTED-ALL"
        r = self.ctl("pod", "create", "--json", "--repo", self.repo, "--", "sh", "-c", script)
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = json.loads(r.stdout)["id"]
        self.ctl("pod", "wait", pid, "--timeout", "120")
        info = json.loads(self.ctl("pod", "show", pid).stdout)
        self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), info)
        out = self.output(pid)
        # Positive control: it was recorded up to near the limit (compressed ~3/4 of base64) ...
        self.assertGreater(len(out), 1 << 20)
        # ... and then stopped, saying so; the pod itself ran to its end.
        note = "[airmesh: recording stopped at the runner's limit of 2097152 bytes " \
               "(--recording-max)]"
        self.assertTrue(note in out, (len(out), out[-300:]))  # short message: out is MBs
        self.assertFalse("PRINTED-ALL" in out, len(out))
        self.assertLess(len(out), 4 << 20)
        rec = os.path.join(self.rdata, "recordings", pid + ".cast.zst")
        if os.path.exists(rec):
            self.assertLessEqual(os.path.getsize(rec), 2 << 20)
        self.assertIsNone(self.runner.poll())

    def test_recording_max_out_of_range_is_refused_at_start(self):
        for bad in ("0", "512K", "1G", "x"):
            p = subprocess.run([harness.AIRMESH_RUNNER, "run", "--data", self.rdata,
                                "--recording-max", bad], capture_output=True, text=True)
            self.assertEqual(p.returncode, 2, (bad, p.stderr))
            self.assertIn("--recording-max: a size from 1M to 256M", p.stderr)


    # ---- hole 3: a huge blob on the fetch-back made the runner hold it in memory --------------

    def runner_hwm_kib(self):
        status = harness.read("/proc/%d/status" % self.runner.pid)
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))

    def test_a_huge_blob_on_the_branch_comes_back_without_the_runner_holding_it(self):
        # 1200 MiB of zeros: a sparse file in the pod's /tmp (no space used), hashed by git in
        # streaming mode into a ~1 MiB pack, committed from the index (no worktree file). The
        # fetch-back's connectivity walk used to read every new object whole into the runner
        # (git_object_lookup on a blob), so a 64 GiB sparse file made the runner allocate 64 GiB.
        size = 1200 << 20
        script = ("truncate -s %d /tmp/big && O=$(git hash-object -w /tmp/big) && rm /tmp/big && "
                  "git update-index --add --cacheinfo 100644,$O,big.bin && "
                  "git -c user.email=a@b -c user.name=a commit -qm big && echo BLOB=$O" % size)
        before = self.runner_hwm_kib()
        info, out = self.run_pod("--", "sh", "-c", script, timeout=300)
        self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), out)
        self.assertEqual(info.get("reason", ""), "", info)  # the branch came back
        blob = re.search(r"BLOB=([0-9a-f]{40})", out).group(1)
        mirror = [os.path.join(self.rdata, "mirrors", m)
                  for m in os.listdir(os.path.join(self.rdata, "mirrors")) if m.endswith(".git")]
        self.assertEqual(len(mirror), 1, mirror)
        # Positive control: the blob really reached the mirror, on the pod's branch.
        self.assertEqual(git(mirror[0], "cat-file", "-s", blob), str(size))
        self.assertEqual(git(mirror[0], "rev-parse", info["branch"] + ":big.bin"), blob)
        grown = self.runner_hwm_kib() - before
        self.assertLess(grown, 400 << 10, "the runner's peak RSS grew by %d KiB" % grown)

    # ---- hole 4: any member could put a pod on the runner host's network ------------------------

    def api(self, method, path, token, body=None):
        return harness.api(self.d, method, path, token, body)

    def test_only_admins_may_put_a_pod_on_the_host_network(self):
        srv = socket.socket(socket.AF_UNIX)
        srv.bind("\0airmesh-redteam-host")  # a host service on an abstract unix socket
        srv.listen(4)
        self.addCleanup(srv.close)
        # What a host-network pod reaches (created by the admin, who may): the host's abstract
        # sockets, which no file permission guards.
        r = self.probe("--network", "host", "--env", "AM_ABS=airmesh-redteam-host")
        self.assertEqual(r["abstract_conn"], "OK None")
        r = self.ctl("api-token", "create", "--name", "member-bot", "--role", "member")
        token = re.search(r"token: (am_[0-9a-f]{64})", r.stdout).group(1)
        spec = {"repo": self.repo, "command": ["true"]}
        before = self.ctl("pod", "list", "--json").stdout
        code, doc = self.api("POST", "/api/v1/pods", token, dict(spec, network="host"))
        self.assertEqual(code, 403, doc)
        self.assertIn('network "host": admins and owners only', doc["error"]["message"])
        self.assertEqual(self.ctl("pod", "list", "--json").stdout, before)  # nothing created
        # Control: the same member creates the same pod without host network.
        code, doc = self.api("POST", "/api/v1/pods", token, dict(spec, network="none"))
        self.assertIn(code, (200, 201), doc)
        self.ctl("pod", "wait", doc["id"], "--timeout", "60")

    # ---- held: one pod's processes do not use up another pod's process limit -------------------

    def test_a_pod_full_of_processes_leaves_other_pods_their_own_limit(self):
        # The agent is the same host uid (101000) in every pod, and RLIMIT_NPROC counts per
        # user: without per-user-namespace accounting, a pod holding 500 processes would leave
        # every other pod unable to fork.
        r = self.ctl("pod", "create", "--json", "--repo", self.repo, "--pids", "1000", "--",
                     "sh", "-c", "for i in $(seq 600); do sleep 60 & done; echo HOLDING; wait")
        self.assertEqual(r.returncode, 0, r.stderr)
        hog = json.loads(r.stdout)["id"]
        self.addCleanup(self.ctl, "pod", "stop", hog)

        def holding():
            n = 0
            for pid in os.listdir("/proc"):
                try:
                    st = os.stat("/proc/" + pid)
                    with open("/proc/%s/comm" % pid) as f:
                        comm = f.read().strip()
                except OSError:
                    continue
                n += st.st_uid == AGENT_HOST_UID and comm == "sleep"
            return n >= 600
        wait_for(holding, 60, what="600 processes of the agent's host uid")  # positive control
        info, out = self.run_pod("--", "sh", "-c",
                                 "for i in $(seq 100); do sleep 1 & done; wait; echo FORKED-100")
        self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), out)
        self.assertIn("FORKED-100", out)


    # ---- hole 5: a pod's git dir (agent data) opened by the runner as an upstream repository ----

    def test_the_runners_own_data_dir_is_never_a_pods_repository(self):
        # Pod A (the agent) plants a loose ref that is a symlink to a file outside its git dir,
        # where only the runner (root) can follow it. Then a pod is created whose --repo is A's
        # git dir (its path is in A's /proc/self/mountinfo): the runner's mirror fetch opened it
        # with libgit2 as root, so the agent's commondir/alternates/symlinked refs/[include]
        # were parsed with the runner's privileges again (issue 9's second hole, by another way).
        secret_dir = tempfile.mkdtemp(dir=self.rtmp)
        os.chmod(secret_dir, 0o700)  # root only: pod root (host uid 100000) cannot read it
        with open(os.path.join(secret_dir, "ref"), "w") as f:
            f.write(git(self.repo, "rev-parse", "HEAD") + "\n")
        script = ("G=$(git rev-parse --absolute-git-dir); ln -s %s/ref $G/refs/heads/planted; "
                  "cat $G/refs/heads/planted 2>&1 | head -c 80; echo; echo GITDIR=$G; "
                  "echo READY; sleep 60" % secret_dir)
        r = self.ctl("pod", "create", "--json", "--repo", self.repo, "--", "sh", "-c", script)
        self.assertEqual(r.returncode, 0, r.stderr)
        a = json.loads(r.stdout)["id"]
        self.addCleanup(self.ctl, "pod", "stop", a)
        gitdir = os.path.join(self.rdata, "pods", a, "git")
        wait_for(lambda: os.path.islink(os.path.join(gitdir, "refs/heads/planted")), 60,
                 what="the planted ref")
        for url in (gitdir, "file://" + gitdir, os.path.join(self.rdata, "pods", a, "..", a,
                                                              "git")):
            r = self.ctl("pod", "create", "--json", "--repo", url, "--base-ref", "planted", "--",
                         "true")
            self.assertEqual(r.returncode, 0, r.stderr)
            b = json.loads(r.stdout)["id"]
            self.ctl("pod", "wait", b, "--timeout", "60")
            info = json.loads(self.ctl("pod", "show", b).stdout)
            self.assertEqual(info["state"], "failed", (url, info))
            self.assertIn("is inside the runner's data dir", info["reason"])
        # Positive control: the same kind of local path outside the data dir works.
        info, out = self.run_pod("--", "true")
        self.assertEqual(info["state"], "exited", info)

    # ---- held: links the agent leaves behind are removed as links ------------------------------

    def test_links_to_host_paths_left_in_the_worktree_are_removed_as_links(self):
        canary = tempfile.mkdtemp(dir=self.rtmp)
        with open(os.path.join(canary, "keep"), "w") as f:
            f.write("host file\n")
        os.chmod(canary, 0o755)
        # Symlinks to a host dir and a host file, in the overlay and in the git dir (a dir
        # symlink where a ref dir is expected, a file symlink as a loose object), and a dir of
        # pod root's that the removal must descend into.
        script = ("G=$(git rev-parse --absolute-git-dir); C=%s; "
                  "ln -s $C /workspace/dirlink && ln -s $C/keep /workspace/filelink && "
                  "mkdir -p /workspace/deep/er && ln -s $C /workspace/deep/er/x && "
                  "ln -s $C $G/refs/heads/dirref && mkdir -p $G/objects/ab && "
                  "ln -s $C/keep $G/objects/ab/cdef && ls $C/ >/dev/null 2>&1; "
                  "echo POD-DIR=$(dirname $G)" % canary)
        info, out = self.run_pod("--", "sh", "-c", script)
        self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), out)
        pod_dir = re.search(r"POD-DIR=(\S+)", out).group(1)
        self.assertTrue(pod_dir.startswith(os.path.join(self.rdata, "pods")), pod_dir)
        # Positive control: the removal ran (the pod dir is gone) ...
        self.assertFalse(os.path.exists(pod_dir), pod_dir)
        # ... and left the host files alone.
        self.assertEqual(harness.read(os.path.join(canary, "keep")), "host file\n")
        self.assertEqual(os.listdir(canary), ["keep"])

    # ---- hole 6: the fetch-back helper ran the agent's git config with no CPU limit -------------

    def test_the_fetch_back_helper_gets_a_cpu_limit(self):
        # The helper runs git on the pod's git dir, so the agent's config steers it: pack.threads
        # = 0 (every CPU of the host) and a huge delta window over many similar blobs keep all
        # of the runner host's cores busy for the helper's 120 s, outside the pod's cpu limit.
        script = ("git config pack.threads 0 && git config pack.window 4000 && "
                  "git config pack.depth 4000 && git config pack.windowMemory 0 && "
                  "python3 -c \"import os, random\nr = random.Random(1)\nbase = bytes(r.getrandbits(8)"
                  " for _ in range(30000))\nfor i in range(2500):\n with open('f%d' % i, 'wb') as f:\n"
                  "  b = bytearray(base); b[r.randrange(30000)] = i % 256; f.write(b)\n\" && "
                  "git add -A && git -c user.email=a@b -c user.name=a commit -qm many && echo COMMITTED")
        r = self.ctl("pod", "create", "--json", "--repo", self.repo, "--", "sh", "-c", script)
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = json.loads(r.stdout)["id"]
        found = {}

        def helper_git():
            for p in os.listdir("/proc"):
                try:
                    with open("/proc/%s/cmdline" % p, "rb") as f:
                        cmd = f.read().split(b"\0")
                    cg = harness.read("/proc/%s/cgroup" % p)
                except OSError:
                    continue
                if len(cmd) > 1 and cmd[0].endswith(b"git") and cmd[1] == b"pack-objects" and \
                        os.stat("/proc/" + p).st_uid == AGENT_HOST_UID:
                    found["pid"], found["cgroup"] = int(p), cg
                    return True
            return False
        wait_for(helper_git, 120, step=0.05, what="the fetch-back helper's git pack-objects")
        # v1: the line whose controllers include cpu; v2: the unified "0::" line.
        lines = [l.split(":", 2) for l in found["cgroup"].splitlines()]
        v1 = [l[2] for l in lines if "cpu" in l[1].split(",")]
        if v1:
            qfile = "/sys/fs/cgroup/cpu%s/cpu.cfs_quota_us" % v1[0]
        else:
            qfile = "/sys/fs/cgroup%s/cpu.max" % [l[2] for l in lines if l[0] == "0"][0]
        quota = harness.read(qfile).split()[0] if os.path.exists(qfile) else None
        try:
            os.kill(found["pid"], 9)  # no need to wait for the helper's 120 s
        except ProcessLookupError:
            pass
        self.ctl("pod", "wait", pid, "--timeout", "180")
        self.assertIsNotNone(quota, found["cgroup"])
        self.assertNotIn(quota, ("-1", "max"), "helper cpu quota: %s" % quota)
        self.assertEqual(int(quota), 100000)  # one core (period 100000 us)

if __name__ == "__main__":
    unittest.main(verbosity=2)
