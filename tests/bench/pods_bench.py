#!/usr/bin/python3
"""tests/bench/pods_bench.py — the "Pods" benchmark: pod start latency (create request → first
output byte) p50/p99 for a repo of about 5,000 files, beside `git worktree add` + `bwrap
--unshare-all` of the same repo measured in the same run, as a ratio (run by scripts/bench.sh,
i.e. `make bench`).

What it does, in order:
  1. makes a git repo with the git CLI: --files text files (default 5,000) in nested dirs, about
     --mb MB (default 48; sizes vary), one commit on `main`.
  2. starts a real airmeshd on free loopback ports (helpers from runners_bench.py), logs in over
     the REST API, makes one enrollment token, enrolls a real airmesh-runner (`enroll`) and runs it
     (`run --capacity 8`; its data dir, the repo and the baseline worktrees live in one
     /tmp/airmesh-pods-bench-* dir, since a pod sees the host path of the mirror it binds).
  3. first pod on the repo: POST /api/v1/pods {"repo", "command": ["echo", "x"]}. It pays the
     one-time mirror clone + shared checkout of the commit; reported on its own.
  4. N pods (default 30) one after another, each `echo x`. Latency = first_output_ms - created_ms
     from GET /api/v1/pods/{id}: both are the appliance's wall clock (created_ms when it recorded
     the pod, first_output_ms when the pod's first output byte reached it). Cross-checks on the
     client: the create request's round trip, and first_output_ms - the client's wall clock just
     before it sent the request (same host, same clock). Each pod must exit 0; the next starts
     only when the runner has finished cleaning up (DATA/pods/<id> gone: overlay unmounted,
     recording uploaded), so the pods do not overlap.
  5. a burst of --burst pods (default 5) created back to back without waiting: per-pod latency
     p50 and max, and the time from the first create to the last first output.
  6. baseline, same repo, same disk, N times (fewer when --baseline-budget, default 30 s, runs
     out first on a slow disk; at least 5; the count is printed): `git worktree add -q -b b<i>
     DIR` then `bwrap --unshare-all --ro-bind /usr /usr --ro-bind /lib /lib --ro-bind /lib64
     /lib64 --ro-bind /bin /bin --bind DIR /workspace --proc /proc --dev /dev --chdir /workspace
     echo x`, timed from
     before `git worktree add` until the first byte of bwrap's stdout; then (untimed) `git worktree
     remove --force` and `git branch -D`. os.sync() between the phases so one phase's writeback
     does not land in the next.
  7. stops the runner (SIGTERM, exit 0: it removes every worktree and unmounts every overlay) and
     airmeshd (SIGTERM, exit 0); fails if /proc/self/mounts still names the temp dir or a process
     still names it on its command line.

p99 is nearest-rank: with N = 30 it is the slowest sample. `ratio` = baseline p50 / airmesh p50
(> 1: a pod starts faster than a plain worktree + sandbox). The machine has 2 cores shared by
airmeshd, the runner, this driver and the baseline: absolute numbers move ±30 % between runs.
The exit status is non-zero on any error (a pod not exiting 0, a process failing, something left
behind); there are no timed assertions.

Usage: pods_bench.py --airmeshd BIN --runner BIN --ui DIR [--n N] [--burst B] [--files F]
                     [--mb MB] [--baseline-budget S] TMPDIR
Everything it starts is stopped before it returns (and dies with it: PR_SET_PDEATHSIG).
"""
import argparse
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runners_bench import Bench, Fail, die_with_parent  # noqa: E402

ENDED = ("exited", "failed", "stopped")


def now_ms():
    return time.time() * 1000.0


def pct(xs, p):
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def git(repo, *args, timeout=120):
    r = subprocess.run(["git", "-C", repo, "-c", "user.email=bench@example.com", "-c",
                        "user.name=bench", *args], capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise Fail(f"git {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()[:300]}")
    return r.stdout.strip()


class PodsBench(Bench):
    def __init__(self, a):
        super().__init__(a)
        self.rtmp = tempfile.mkdtemp(prefix="airmesh-pods-bench-", dir="/tmp")
        self.rdata = os.path.join(self.rtmp, "runner")
        self.repo = os.path.join(self.rtmp, "repo")
        self.runner = None

    # ---- the repo ----
    def make_repo(self):
        a = self.a
        t0 = time.monotonic()
        rnd = random.Random(5000)
        # A pool of text lines; each file is a run of lines from a random place in it, with its
        # own header line so no two files are the same blob.
        letters = "abcdefghijklmnopqrstuvwxyz_"
        words = ["".join(rnd.choice(letters) for _ in range(rnd.randint(2, 10)))
                 for _ in range(4000)]
        pool, total = [], 0
        while total < 4 << 20:
            pool.append(" ".join(rnd.choice(words) for _ in range(rnd.randint(3, 14))) + "\n")
            total += len(pool[-1])
        pool_s = "".join(pool)
        mean = a.mb * 1e6 / a.files
        # Nested dirs: d00..d19 / s0..s9 / (f*.txt + a deeper level for some)
        for i in range(a.files):
            top, sub = i % 20, (i // 20) % 10
            d = os.path.join(self.repo, f"d{top:02d}", f"s{sub}")
            if i % 7 == 0:
                d = os.path.join(d, f"deep{(i // 200) % 5}")
            os.makedirs(d, exist_ok=True)
            size = int(rnd.uniform(0.1, 1.9) * mean)
            off = rnd.randrange(0, len(pool_s) - size - 1)
            with open(os.path.join(d, f"f{i:05d}.txt"), "w") as f:
                f.write(f"// file {i}\n")
                f.write(pool_s[off:off + size])
        subprocess.run(["git", "init", "-q", "-b", "main", self.repo], check=True,
                       capture_output=True)
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", "bench repo")
        n = int(git(self.repo, "ls-files", "-z").count("\0"))
        size = sum(os.path.getsize(os.path.join(dp, f)) for dp, dn, fs in os.walk(self.repo)
                   if "/.git" not in dp + "/" and not dp.endswith(".git") for f in fs)
        print(f"  (setup) repo: {n} files, {size / 1e6:.1f} MB in the worktree, made in "
              f"{time.monotonic() - t0:.1f} s", flush=True)
        if n != a.files:
            raise Fail(f"repo has {n} files, expected {a.files}")

    # ---- the runner ----
    def start_runner(self):
        r = self.api("POST", "/api/v1/runner-tokens", {"ttl": "1h"}, token=self.token)
        e = subprocess.run([self.a.runner, "enroll", "--appliance", self.dial, "--token",
                            r["token"], "--ca-sha256", r["ca_sha256"], "--data", self.rdata],
                           capture_output=True, text=True, timeout=60)
        if e.returncode != 0:
            raise Fail(f"airmesh-runner enroll: exit {e.returncode}: {e.stderr.strip()[:500]}")
        log = open(os.path.join(self.tmp, "runner.log"), "w")
        self.logs["runner"] = log.name
        self.runner = subprocess.Popen([self.a.runner, "run", "--data", self.rdata,
                                        "--capacity", "8"], stdout=log, stderr=log,
                                       preexec_fn=die_with_parent)
        log.close()
        self.procs.append(self.runner)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.runner.poll() is not None:
                raise Fail("airmesh-runner exited at start:\n" + self.log_tail("runner"))
            if any(x["state"] == "online" for x in self.runners()):
                return
            time.sleep(0.1)
        raise Fail("runner not online within 30 s:\n" + self.log_tail("runner"))

    def stop_runner(self):
        self.runner.send_signal(signal.SIGTERM)
        try:
            rc = self.runner.wait(30)
        except subprocess.TimeoutExpired:
            raise Fail("airmesh-runner did not stop within 30 s of SIGTERM")
        if rc != 0:
            raise Fail(f"airmesh-runner exited {rc}:\n" + self.log_tail("runner"))

    # ---- pods ----
    def create(self):
        t_send = now_ms()
        p = self.api("POST", "/api/v1/pods", {"repo": self.repo, "command": ["echo", "x"]},
                     token=self.token)
        return {"id": p["id"], "t_send": t_send, "t_resp": now_ms(), "created_ms": p["created_ms"]}

    def show(self, pid):
        return self.api("GET", "/api/v1/pods/" + pid, token=self.token)

    def wait_first_output(self, pods, timeout):
        """Poll every pod until it has first_output_ms (or ended without one: an error)."""
        deadline = time.time() + timeout
        todo = list(pods)
        while todo:
            if time.time() > deadline:
                raise Fail(f"no first output within {timeout} s from pods "
                           f"{[p['id'] for p in todo]}:\n" + self.log_tail("runner"))
            for p in list(todo):
                s = self.show(p["id"])
                if s["first_output_ms"]:
                    p["first_output_ms"] = s["first_output_ms"]
                    p["t_seen"] = now_ms()
                    p["lat"] = s["first_output_ms"] - s["created_ms"]
                    todo.remove(p)
                elif s["state"] in ENDED:
                    raise Fail(f"pod {p['id']} {s['state']} without output: {s['reason']}")
            if todo:
                time.sleep(0.005)

    def wait_done(self, pods, timeout=60):
        """Each pod exited 0 and the runner finished with it (DATA/pods/<id> removed)."""
        deadline = time.time() + timeout
        for p in pods:
            while True:
                s = self.show(p["id"])
                if s["state"] in ENDED:
                    break
                if time.time() > deadline:
                    raise Fail(f"pod {p['id']} still {s['state']} after {timeout} s")
                time.sleep(0.02)
            if s["state"] != "exited" or s.get("exit_code") != 0:
                raise Fail(f"pod {p['id']}: {s['state']} exit {s.get('exit_code')} "
                           f"{s['reason']}")
            d = os.path.join(self.rdata, "pods", p["id"])
            while os.path.exists(d):
                if time.time() > deadline:
                    raise Fail(f"runner did not clean up {d} within {timeout} s")
                time.sleep(0.01)

    def one_pod(self, timeout=30):
        p = self.create()
        self.wait_first_output([p], timeout)
        self.wait_done([p])
        return p

    # ---- baseline ----
    def baseline(self, n, budget_s):
        bl = os.path.join(self.rtmp, "baseline")
        os.makedirs(bl)
        argv = ["bwrap", "--unshare-all", "--ro-bind", "/usr", "/usr", "--ro-bind", "/lib",
                "/lib", "--ro-bind", "/lib64", "/lib64", "--ro-bind", "/bin", "/bin", "--bind",
                None, "/workspace", "--proc", "/proc", "--dev", "/dev", "--chdir", "/workspace",
                "echo", "x"]
        wi = argv.index(None)
        tot, wt, sb = [], [], []
        start = time.monotonic()
        for i in range(n):
            if i >= 5 and time.monotonic() - start > budget_s:
                break  # a slow disk: keep the whole run near its time budget
            d = os.path.join(bl, f"w{i}")
            argv[wi] = d
            t0 = time.monotonic()
            git(self.repo, "worktree", "add", "-q", "-b", f"b{i}", d)
            t1 = time.monotonic()
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            first = os.read(p.stdout.fileno(), 1)
            t2 = time.monotonic()
            rest, err = p.communicate(timeout=30)
            if p.returncode != 0 or first + rest != b"x\n":
                raise Fail(f"bwrap: exit {p.returncode}, output {first + rest!r}, "
                           f"stderr {err.decode(errors='replace')[:300]}")
            tot.append((t2 - t0) * 1000)
            wt.append((t1 - t0) * 1000)
            sb.append((t2 - t1) * 1000)
            git(self.repo, "worktree", "remove", "--force", d)
            git(self.repo, "branch", "-q", "-D", f"b{i}")
        return tot, wt, sb

    # ---- the benchmark ----
    def run(self):
        a = self.a
        self.make_repo()
        self.start_airmeshd()
        self.token = self.api("POST", "/api/v1/login",
                              {"user": "admin", "password": self.password})["token"]
        self.start_runner()
        os.sync()

        t = time.monotonic()
        first = self.one_pod(timeout=120)
        os.sync()
        phases = [("first pod", time.monotonic() - t)]

        t = time.monotonic()
        pods = [self.one_pod() for _ in range(a.n)]
        phases.append((f"{a.n} pods", time.monotonic() - t))
        lat = [p["lat"] for p in pods]
        rtt = [p["t_resp"] - p["t_send"] for p in pods]
        send_first = [p["first_output_ms"] - p["t_send"] for p in pods]
        seen = [p["t_seen"] - p["t_send"] for p in pods]

        burst = []
        if a.burst:
            burst = [self.create() for _ in range(a.burst)]
            self.wait_first_output(burst, 60)
            self.wait_done(burst)
        os.sync()

        t = time.monotonic()
        tot, wt, sb = self.baseline(a.n, a.baseline_budget)
        phases.append((f"baseline x{len(tot)}", time.monotonic() - t))

        p50, p99 = pct(lat, 50), pct(lat, 99)
        b50, b99 = pct(tot, 50), pct(tot, 99)
        print(f"pod start p50 {p50:.0f} ms p99 {p99:.0f} ms (first pod on the repo "
              f"{first['lat'] / 1000:.1f} s) | baseline bwrap + git worktree add: p50 {b50:.0f} ms "
              f"p99 {b99:.0f} ms | ratio {b50 / max(p50, 1):.1f}x", flush=True)
        print(f"  pods: N={a.n} sequential `echo x`, {a.files} files / {a.mb} MB repo; latency = "
              f"first_output_ms - created_ms (appliance clock); min {min(lat):.0f} ms, max "
              f"{max(lat):.0f} ms", flush=True)
        print(f"  client cross-check: create request round trip p50 {pct(rtt, 50):.1f} ms p99 "
              f"{pct(rtt, 99):.1f} ms; request sent -> first_output_ms p50 "
              f"{pct(send_first, 50):.0f} ms p99 {pct(send_first, 99):.0f} ms; -> seen by "
              f"polling p50 {pct(seen, 50):.0f} ms", flush=True)
        if burst:
            bl = [p["lat"] for p in burst]
            span = max(p["first_output_ms"] for p in burst) - min(p["t_send"] for p in burst)
            print(f"  burst of {len(burst)} created back to back: per-pod p50 {pct(bl, 50):.0f} ms "
                  f"max {max(bl):.0f} ms; first create -> last first output {span:.0f} ms",
                  flush=True)
        cut = (f" (of {a.n}: --baseline-budget {a.baseline_budget:.0f} s reached)"
               if len(tot) < a.n else "")
        print(f"  baseline: N={len(tot)}{cut}; git worktree add p50 {pct(wt, 50):.0f} ms p99 "
              f"{pct(wt, 99):.0f} "
              f"ms, bwrap -> first byte p50 {pct(sb, 50):.1f} ms p99 {pct(sb, 99):.1f} ms "
              f"(worktree removal untimed)", flush=True)
        print("  (phases) " + ", ".join(f"{k} {v:.1f} s" for k, v in phases), flush=True)
        return True

    # ---- what must be gone ----
    def leftovers(self):
        """Mounts and processes that still name the runner's temp dir (after everything stopped)."""
        with open("/proc/self/mounts") as f:
            mounts = [ln.split()[1] for ln in f if self.rtmp in ln]
        procs = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if self.rtmp.encode() in f.read():
                        procs.append(int(pid))
            except OSError:
                pass
        return mounts, procs

    def final_check(self):
        mounts, procs = self.leftovers()
        for m in reversed(mounts):  # do not leave them behind even when failing
            subprocess.run(["umount", "-l", m], capture_output=True)
        if not procs:
            shutil.rmtree(self.rtmp, ignore_errors=bool(mounts))
        if mounts or procs:
            raise Fail(f"left behind: mounts {mounts}, processes {procs}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--airmeshd", required=True)
    ap.add_argument("--runner", required=True)
    ap.add_argument("--ui", required=True)
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--burst", type=int, default=5)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--mb", type=float, default=48)
    ap.add_argument("--baseline-budget", type=float, default=30,
                    help="stop the baseline after this many seconds (at least 5 iterations)")
    ap.add_argument("tmpdir")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not shutil.which("bwrap"):
        print("ERROR: bwrap not found (Debian package bubblewrap; scripts/deps.sh installs it)")
        return 1
    b = PodsBench(a)
    t0 = time.monotonic()
    ok = False
    try:
        ok = b.run()
        b.stop_runner()
        b.stop_airmeshd()
    except Fail as e:
        print(f"ERROR: {e}", flush=True)
        ok = False
    except Exception:  # a bug here or an unexpected answer: still stop everything, exit 1
        traceback.print_exc()
        ok = False
    finally:
        b.cleanup()
        try:
            b.final_check()
        except Fail as e:
            print(f"ERROR: {e}", flush=True)
            ok = False
    print(f"pods bench: {'ok' if ok else 'FAILED'} in {time.monotonic() - t0:.0f} s "
          f"(logs in {b.tmp} while it exists)", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
