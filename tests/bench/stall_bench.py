#!/usr/bin/python3
"""tests/bench/stall_bench.py — the "stall" benchmark (run by scripts/bench.sh, i.e. `make
bench`): can a flood of requests freeze the event loop that serves every web terminal?

A real airmeshd and a real enrolled airmesh-runner on loopback. One pod prints a line every
10 ms; one WebSocket viewer (this process, nothing else running in it) records when each
binary frame arrives. Measured, in the same run:
  - quiet: the largest gap between two frames over WINDOW seconds with nothing else going on;
  - flood: the largest gap while another process fires 200 unauthenticated logins (unknown
    names, wrong passwords, from 50 loopback source addresses 127.0.1.x so the per-address
    throttle does not simply refuse them: most of them reach the argon2id check) and 50 pod
    creates (`true`), 16 connections at a time.
Printed: both gaps, what the flood got back (status counts), and the ratio flood / quiet
(target: <= 2). Also, to tell the appliance's share from the machine's (the runner starting 50
pods competes for the same cores as the ticker pod): the largest gap in the pod's own
timestamps (`date +%s%N` per line), and the largest delay from a line's timestamp to its
arrival at the viewer. Before the worker pool, argon2id ran on the h2o thread and 60 logins froze a
viewer for 386 ms (36 ms quiet). No timed assertions: the numbers are the result; the run fails
only if the viewer or the flood breaks (no frames, a connection closed, an unexpected status).

Usage: stall_bench.py --airmeshd BIN --runner BIN --ui DIR TMPDIR [--window S]
"""
import argparse
import http.client
import json
import multiprocessing
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from terminal_bench import WS, Bench, Fail, free_port  # noqa: E402

LOGINS, CREATES, CONNS, ADDRS = 200, 50, 16, 50
STAMP = re.compile(rb"(\d{19})\r\n")


class TickWS(WS):
    """A viewer that also keeps the pod's own timestamps (date +%s%N per line), so a gap the pod
    itself made (its runner starved of CPU) can be told from one the appliance made."""

    def parse(self):
        before = self.nbytes
        tail0 = self.tail
        super().parse()
        if self.nbytes != before:
            now = time.time()
            for m in STAMP.finditer(tail0 + self.tail):
                t = int(m.group(1)) / 1e9
                if t > self.last_stamp:
                    self.delay = max(self.delay, now - t)
                    if self.last_stamp:
                        self.stamp_gap = max(self.stamp_gap, t - self.last_stamp)
                    self.last_stamp = t


def flood(port, ca, token, repo, out, only=None):
    """In a separate process: LOGINS logins and CREATES pod creates over CONNS threads. Puts a
    {status: count} dict (keys "login <code>", "create <code>") on the queue `out`."""
    ctx = ssl.create_default_context(cafile=ca)
    nl, nc = (LOGINS, CREATES) if only is None else (LOGINS, 0) if only == "logins" else \
        (0, CREATES)
    jobs = [("login", i) for i in range(nl)] + [("create", i) for i in range(nc)]
    # Interleave so logins and creates overlap.
    jobs.sort(key=lambda j: (j[1] * (LOGINS // CREATES) if j[0] == "create" else j[1]))
    lock = threading.Lock()
    counts = {}

    def worker(k):
        while True:
            with lock:
                if not jobs:
                    return
                kind, i = jobs.pop(0)
            if kind == "login":
                src = f"127.0.1.{1 + i % ADDRS}"
                body = {"user": f"nobody-{i}", "password": "wrong-password-123"}
                hdr = {"Content-Type": "application/json"}
            else:
                src = "127.0.0.1"
                body = {"repo": repo, "command": ["true"]}
                hdr = {"Content-Type": "application/json", "Authorization": "Bearer " + token}
            try:
                c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60,
                                                source_address=(src, 0))
                c.request("POST", "/api/v1/login" if kind == "login" else "/api/v1/pods",
                          body=json.dumps(body), headers=hdr)
                r = c.getresponse()
                r.read()
                c.close()
                key = f"{kind} {r.status}"
            except OSError as e:
                key = f"{kind} error {type(e).__name__}"
            with lock:
                counts[key] = counts.get(key, 0) + 1

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(CONNS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put(counts)


class Stall(Bench):
    def setup(self):
        # As Bench.setup, with a runner big enough for the flood's pods.
        a = self.a
        self.port, grpc = free_port(), free_port()
        data = os.path.join(self.tmp, "airmesh")
        self.ca = os.path.join(data, "pki", "ca.pem")
        self.d = self.spawn("airmeshd", [a.airmeshd, "--data", data, "--listen",
                                         f"127.0.0.1:{self.port}", "--grpc-listen",
                                         f"127.0.0.1:{grpc}", "--ui", a.ui, "--log-level",
                                         "error"], stdout=subprocess.PIPE, text=True)
        password = fp = None
        while not password:
            line = self.d.stdout.readline()
            if not line:
                raise Fail("airmeshd exited at start")
            m = re.search(r"CA fingerprint: (\w+)", line)
            fp = m.group(1) if m else fp
            if line.startswith("admin password: "):
                password = line.split(": ", 1)[1].strip()
        self.ctx = ssl.create_default_context(cafile=self.ca)
        self.token = self.api("POST", "/api/v1/login", {"user": "admin",
                                                         "password": password})["token"]
        tok = self.api("POST", "/api/v1/runner-tokens", {})["token"]
        rdata = os.path.join(self.rtmp, "runner")
        subprocess.run([a.runner, "enroll", "--appliance", f"127.0.0.1:{grpc}", "--token", tok,
                        "--ca-sha256", fp, "--data", rdata], check=True, capture_output=True)
        self.spawn("runner", [a.runner, "run", "--data", rdata, "--capacity", "80",
                              "--log-level", "error"], stdout=subprocess.DEVNULL)
        self.repo = os.path.join(self.rtmp, "repo")
        os.makedirs(self.repo)
        g = ["git", "-C", self.repo, "-c", "user.email=b@x", "-c", "user.name=b"]
        subprocess.run(["git", "init", "-q", "-b", "main", self.repo], check=True)
        with open(os.path.join(self.repo, "README"), "w") as f:
            f.write("bench\n")
        subprocess.run(g + ["add", "-A"], check=True)
        subprocess.run(g + ["commit", "-qm", "b"], check=True)
        deadline = time.time() + 30
        while not any(r["state"] == "online" for r in self.api("GET", "/api/v1/runners")
                      ["runners"]):
            if time.time() > deadline:
                raise Fail("runner not online")
            time.sleep(0.2)

    def viewer(self, pid):
        ws = TickWS("127.0.0.1", self.port, self.ctx, f"/api/v1/pods/{pid}/terminal",
                    self.token)
        ws.last_stamp = ws.stamp_gap = ws.delay = 0.0
        ws.wait(lambda w: w.texts, 10)
        return ws

    def gaps(self, ws, until):
        """Largest gap (s) between binary frames until until() is true; and the frame count."""
        ws.s.setblocking(True)
        ws.s.settimeout(0.05)
        last, worst, frames = None, 0.0, 0
        ws.stamp_gap = ws.delay = 0.0
        while not until():
            before = ws.nbytes
            try:
                if not ws.feed():
                    raise Fail("viewer connection closed")
            except TimeoutError:
                pass
            except ssl.SSLError as e:
                if "timed out" not in str(e):
                    raise
            now = time.monotonic()
            if ws.nbytes != before:
                frames += 1
                if last is not None:
                    worst = max(worst, now - last)
                last = now
        return worst, frames, ws.stamp_gap, ws.delay

    def run(self):
        a = self.a
        self.setup()
        pid = self.pod("while :; do date +%s%N; sleep 0.01; done")
        ws = self.viewer(pid)
        # Let the pod settle, then the quiet window.
        t_end = time.monotonic() + 1.0
        self.gaps(ws, lambda: time.monotonic() > t_end)
        t_end = time.monotonic() + a.window
        quiet, qn, qs, qd = self.gaps(ws, lambda: time.monotonic() > t_end)
        if qn < 10:
            raise Fail(f"only {qn} frames in {a.window} s quiet: the ticker pod is not ticking")
        q = multiprocessing.Queue()
        p = multiprocessing.Process(target=flood, args=(self.port, self.ca, self.token,
                                                        self.repo, q, a.only))
        t0 = time.monotonic()
        p.start()
        # Watch until the flood is over (and at least a window long).
        loud, ln, ls, ld = self.gaps(ws, lambda: not p.is_alive() and time.monotonic() > t0 + a.window)
        dt = time.monotonic() - t0
        counts = q.get(timeout=30)
        p.join()
        ws.close()
        self.stop(pid)
        if ln < 10:
            raise Fail(f"only {ln} frames during the flood")
        bad = {k: v for k, v in counts.items()
               if not re.match(r"login (401|429|503)$|create (201|409|503)$", k)}
        summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        print(f"stall: largest gap between a 10 ms ticker's frames: quiet {quiet * 1e3:.0f} ms "
              f"({qn} frames in {a.window:.0f} s) | under a flood of {LOGINS} unauthenticated "
              f"logins + {CREATES} pod creates {loud * 1e3:.0f} ms ({ln} frames in {dt:.1f} s) "
              f"| ratio {loud / quiet:.2f}x (target <= 2)")
        print(f"stall: the flood got: {summary}")
        print(f"stall: largest gap in the pod's own timestamps (the pod itself, not the "
              f"appliance): quiet {qs * 1e3:.0f} ms, flood {ls * 1e3:.0f} ms; largest delay from "
              f"a line's timestamp in the pod to the viewer (runner + gRPC + appliance): quiet "
              f"{qd * 1e3:.0f} ms, flood {ld * 1e3:.0f} ms")
        if bad:
            raise Fail(f"unexpected answers to the flood: {bad}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--airmeshd", required=True)
    ap.add_argument("--runner", required=True)
    ap.add_argument("--ui", required=True)
    ap.add_argument("--window", type=float, default=4.0, help="seconds of the quiet window")
    ap.add_argument("--only", choices=["logins", "creates"], help="flood with one kind only")
    ap.add_argument("tmpdir")
    a = ap.parse_args()
    b = Stall(a)
    try:
        b.run()
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        b.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
