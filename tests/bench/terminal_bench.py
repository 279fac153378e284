#!/usr/bin/python3
"""tests/bench/terminal_bench.py — the "Web terminal" benchmark (run by scripts/bench.sh, i.e.
`make bench`): a real airmeshd and a real enrolled airmesh-runner on loopback, pods on a PTY,
WebSocket clients over TLS (a small hand-written RFC 6455 client; Python's ssl does the crypto).

Measured, each beside a baseline from the same run (ratios; the 2-core VM is noisy, ±20-30 %):
  1. throughput: one pod writes SIZE bytes (`head -c SIZE /dev/zero | tr '\\0' y`, started by a
     keystroke so nothing is missed); one WebSocket viewer counts bytes from the first to the
     `END` marker. Baseline (the ceiling): the same command on a bare PTY here, read by a loop
     of os.read on the master (no sandbox, no gRPC, no TLS).
  2. keystroke echo: K single keystrokes into a pod running `cat` (the PTY echoes them); the
     time from sending the byte as a WebSocket binary frame to seeing it come back (WebSocket →
     appliance → gRPC → runner → PTY → runner → gRPC → appliance → WebSocket), p50/p99.
     Baseline: the same keystroke echo on a local PTY running cat.
  3. fan-out: 1, 10 and 100 viewers of one pod writing flat out (all viewers in this process,
     one selector loop, so the client shares the 2 cores with airmeshd and the runner and is
     itself the limit beyond ~1 viewer): per-viewer throughput (min/median/max), bytes delivered
     in all, `lagged` skips, and airmeshd's RSS (peak sampled during the stage vs. before it);
     then 100 viewers of a pod writing at a busy agent's pace (6 MB in 60 bursts with 50 ms
     pauses), where every viewer should keep up (0 skipped).
Every viewer must reach the END marker (contiguous bytes, or a `lagged` skip): anything else
is a failure (non-zero exit). No timed assertions. Runtime target: < 90 s.

Usage: terminal_bench.py --airmeshd BIN --runner BIN --ui DIR TMPDIR [--size MB]
"""
import argparse
import base64
import ctypes
import http.client
import json
import os
import pty
import re
import selectors
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import traceback

PR_SET_PDEATHSIG = 1


def die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Fail(Exception):
    pass


class WS:
    """Non-blocking-capable WebSocket client: frames are parsed from a bytearray."""

    def __init__(self, host, port, ca_ctx, path, token):
        raw = socket.create_connection((host, port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s = ca_ctx.wrap_socket(raw, server_hostname=host)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                        f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n")
                       .encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            c = self.s.recv(65536)
            if not c:
                raise Fail("upgrade: connection closed")
            buf += c
        head, _, rest = buf.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise Fail("upgrade refused: " + head.split(b"\r\n")[0].decode())
        self.buf = bytearray(rest)
        self.texts = []
        self.nbytes = 0
        self.pos = None  # next stream offset (hello's offset + bytes, or a lagged skip)
        self.tail = b""
        self.closed = None

    def send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        hdr = struct.pack("!BB", 0x80 | opcode, 0x80 | n) if n < 126 else \
            struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def feed(self):
        """Read what is available (one recv) and parse whole frames. False on EOF."""
        try:
            c = self.s.recv(1 << 20)
        except ssl.SSLWantReadError:
            return True
        if not c:
            return False
        self.buf += c
        self.parse()
        while self.s.pending():
            self.buf += self.s.recv(self.s.pending())
            self.parse()
        return True

    def parse(self):
        b = self.buf
        off = 0
        while len(b) - off >= 2:
            n, h = b[off + 1] & 0x7F, 2
            if n == 126:
                if len(b) - off < 4:
                    break
                n, h = struct.unpack_from("!H", b, off + 2)[0], 4
            elif n == 127:
                if len(b) - off < 10:
                    break
                n, h = struct.unpack_from("!Q", b, off + 2)[0], 10
            if len(b) - off < h + n:
                break
            op = b[off] & 0x0F
            if op == 2:
                self.nbytes += n
                self.pos += n
                self.tail = (self.tail + bytes(b[off + h + max(0, n - 64):off + h + n]))[-64:]
            elif op == 1:
                m = json.loads(bytes(b[off + h:off + h + n]))
                self.texts.append(m)
                if m["type"] == "hello":
                    self.pos = m["offset"]
                elif m["type"] == "lagged":
                    self.tail = b""
                    self.pos = m["skipped_to"]
            elif op == 8:
                self.closed = struct.unpack_from("!H", b, off + h)[0] if n >= 2 else 1005
            off += h + n
        del b[:off]

    def wait(self, pred, timeout):
        deadline = time.time() + timeout
        self.s.setblocking(True)
        while not pred(self):
            self.s.settimeout(max(0.01, deadline - time.time()))
            try:
                if not self.feed():
                    raise Fail("connection closed")
            except socket.timeout:
                pass
            if time.time() > deadline:
                raise Fail("timed out waiting")

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def bare_pty_throughput(size):
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp("sh", ["sh", "-c", f"head -c {size} /dev/zero | tr '\\0' y"])
    n = 0
    t0 = None
    while True:
        try:
            c = os.read(fd, 65536)
        except OSError:
            break
        if not c:
            break
        if t0 is None:
            t0 = time.monotonic()
        n += len(c)
    dt = time.monotonic() - t0
    os.waitpid(pid, 0)
    os.close(fd)
    return n, dt


def bare_pty_echo(k):
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp("cat", ["cat"])
    time.sleep(0.2)
    lat = []
    for i in range(k):
        ch = b"abcdefghijklmnopqrstuvwxyz"[i % 26:i % 26 + 1]
        t0 = time.perf_counter()
        os.write(fd, ch)
        got = b""
        while ch not in got:
            got += os.read(fd, 1024)
        lat.append(time.perf_counter() - t0)
        if i % 64 == 63:
            os.write(fd, b"\r")
            time.sleep(0.002)
            os.read(fd, 4096)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(fd)
    return lat


class Bench:
    def __init__(self, a):
        self.a = a
        self.tmp = os.path.abspath(a.tmpdir)
        self.rtmp = tempfile.mkdtemp(prefix="airmesh-term-bench-", dir="/tmp")
        self.procs = []

    def spawn(self, name, argv, **kw):
        log = open(os.path.join(self.tmp, name + ".log"), "w")
        p = subprocess.Popen(argv, stderr=log, preexec_fn=die_with_parent, **kw)
        log.close()
        self.procs.append(p)
        return p

    def cleanup(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(self.rtmp, ignore_errors=True)

    def api(self, method, path, body=None):
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=30)
        h = {"Content-Type": "application/json"}
        if getattr(self, "token", None):
            h["Authorization"] = "Bearer " + self.token
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        if r.status >= 300:
            raise Fail(f"{method} {path}: HTTP {r.status}: {data[:300]!r}")
        return json.loads(data)

    def setup(self):
        a = self.a
        self.port, grpc = free_port(), free_port()
        data = os.path.join(self.tmp, "airmesh")
        self.d = self.spawn("airmeshd", [a.airmeshd, "--data", data, "--listen",
                                         f"127.0.0.1:{self.port}", "--grpc-listen",
                                         f"127.0.0.1:{grpc}", "--ui", a.ui, "--log-level",
                                         "warn"], stdout=subprocess.PIPE, text=True)
        password = fp = None
        while not password:
            line = self.d.stdout.readline()
            if not line:
                raise Fail("airmeshd exited at start")
            m = re.search(r"CA fingerprint: (\w+)", line)
            fp = m.group(1) if m else fp
            if line.startswith("admin password: "):
                password = line.split(": ", 1)[1].strip()
        self.ctx = ssl.create_default_context(cafile=os.path.join(data, "pki", "ca.pem"))
        self.token = self.api("POST", "/api/v1/login", {"user": "admin",
                                                         "password": password})["token"]
        tok = self.api("POST", "/api/v1/runner-tokens", {})["token"]
        rdata = os.path.join(self.rtmp, "runner")
        subprocess.run([a.runner, "enroll", "--appliance", f"127.0.0.1:{grpc}", "--token", tok,
                        "--ca-sha256", fp, "--data", rdata], check=True, capture_output=True)
        self.spawn("runner", [a.runner, "run", "--data", rdata, "--capacity", "8",
                              "--log-level", "warn"], stdout=subprocess.DEVNULL)
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

    def pod(self, script):
        p = self.api("POST", "/api/v1/pods", {"repo": self.repo, "command": ["sh", "-c", script]})
        deadline = time.time() + 60
        while self.api("GET", "/api/v1/pods/" + p["id"])["state"] != "running":
            if time.time() > deadline:
                raise Fail("pod not running")
            time.sleep(0.1)
        return p["id"]

    def stop(self, pid):
        self.api("POST", f"/api/v1/pods/{pid}/stop", {})

    def viewer(self, pid):
        ws = WS("127.0.0.1", self.port, self.ctx, f"/api/v1/pods/{pid}/terminal", self.token)
        ws.wait(lambda w: w.texts, 10)
        return ws

    def take(self, ws):
        ws.send(1, b'{"type":"take"}')
        ws.wait(lambda w: any(m["type"] == "control" for m in w.texts), 10)

    def stream(self, n, size, paced=0):
        """n viewers of one pod writing size bytes (paced: in `paced` bursts of size/paced with
        50 ms pauses, a busy agent's pace); returns per-viewer (bytes, seconds, lags)."""
        if paced:
            gen = (f"for i in $(seq {paced}); do head -c {size // paced} /dev/zero | tr '\\0' y;"
                   " sleep 0.05; done")
            size = size // paced * paced
        else:
            gen = f"head -c {size} /dev/zero | tr '\\0' y"
        pid = self.pod(f"read x; {gen}; echo; echo END; read y")
        vs = [self.viewer(pid) for _ in range(n)]
        self.take(vs[0])
        rss0 = rss_kib(self.d.pid)
        sel = selectors.DefaultSelector()
        for v in vs:
            v.s.setblocking(False)
            v.t0 = v.t1 = None
            v.base = v.nbytes
            sel.register(v.s, selectors.EVENT_READ, v)
        vs[0].s.setblocking(True)
        vs[0].send(2, b"\r")
        vs[0].s.setblocking(False)
        left = set(vs)
        peak = rss0
        deadline = time.time() + 120
        last_rss = 0
        while left and time.time() < deadline:
            for key, _ in sel.select(1.0):
                v = key.data
                if not v.feed():
                    raise Fail("viewer connection closed")
                if v.t0 is None and v.nbytes > v.base + 16:
                    v.t0 = time.monotonic()
                # Done at END, or at the final offset when a skip jumped past END (the
                # stream is: echoed \r\n, size bytes, \r\n, END\r\n).
                if v in left and (b"END\r\n" in v.tail or v.pos >= size + 9):
                    v.t1 = time.monotonic()
                    left.discard(v)
            if time.time() - last_rss > 0.2:
                peak = max(peak, rss_kib(self.d.pid))
                last_rss = time.time()
        if left:
            raise Fail(f"{len(left)} of {n} viewers never reached END")
        res = [(v.nbytes - v.base, v.t1 - v.t0, sum(m["type"] == "lagged" for m in v.texts))
               for v in vs]
        for v in vs:
            v.close()
        self.stop(pid)
        return res, rss0, peak

    def echo(self, k):
        pid = self.pod("exec cat")
        ws = self.viewer(pid)
        self.take(ws)
        ws.s.setblocking(True)
        lat = []
        for i in range(k):
            ch = b"abcdefghijklmnopqrstuvwxyz"[i % 26:i % 26 + 1]
            ws.tail = b""
            t0 = time.perf_counter()
            ws.send(2, ch)
            ws.wait(lambda w: ch in w.tail, 10)
            lat.append(time.perf_counter() - t0)
            if i % 64 == 63:
                ws.send(2, b"\r")
                time.sleep(0.01)
        ws.close()
        self.stop(pid)
        return lat

    def run(self):
        a = self.a
        size = a.size << 20
        self.setup()
        rss_idle = rss_kib(self.d.pid)
        print(f"airmeshd RSS idle (runner connected): {rss_idle / 1024:.1f} MiB")

        n, dt = bare_pty_throughput(size)
        base = n / dt / 1e6
        (res, rss0, peak) = self.stream(1, size)
        b, t, lags = res[0]
        ws_rate = b / t / 1e6
        print(f"throughput, 1 pod → 1 WebSocket viewer: {ws_rate:.1f} MB/s ({b / 1e6:.0f} MB, "
              f"{lags} lagged) | bare PTY read loop {base:.1f} MB/s | ratio {ws_rate / base:.2f}")

        k = a.keys
        bl = bare_pty_echo(k)
        wl = self.echo(k)
        print(f"keystroke echo over WebSocket (n={k}): p50 {pct(wl, 50) * 1e3:.3f} ms, p99 "
              f"{pct(wl, 99) * 1e3:.3f} ms | local PTY p50 {pct(bl, 50) * 1e3:.3f} ms, p99 "
              f"{pct(bl, 99) * 1e3:.3f} ms | ratio p50 {pct(wl, 50) / pct(bl, 50):.1f}x, p99 "
              f"{pct(wl, 99) / pct(bl, 99):.1f}x slower")

        stages = [(1, f"{a.size} MB", res, rss0, peak)]
        for nv, mb in ((10, max(8, a.size // 4)), (100, max(4, a.size // 16))):
            r, rss0, peak = self.stream(nv, mb << 20)
            stages.append((nv, f"{mb} MB", r, rss0, peak))
        r, rss0, peak = self.stream(100, 6 << 20, paced=60)
        stages.append(("100", "6 MB paced", r, rss0, peak))
        for nv, mb, r, rss0, peak in stages:
            rates = sorted(b / t / 1e6 for b, t, _ in r)
            lagged = sum(1 for _, _, lg in r if lg)
            nv = len(r)
            agg = sum(b for b, _, _ in r) / max(t for _, t, _ in r) / 1e6
            mem = (f"airmeshd RSS {rss0 / 1024:.1f} → peak {peak / 1024:.1f} MiB "
                   f"(+{(peak - rss0) / 1024:.1f} MiB)") if rss0 else ""
            print(f"fan-out {nv:3d} viewer(s) of one pod, {mb}: per-viewer MB/s min "
                  f"{rates[0]:.1f} median {pct(rates, 50):.1f} max {rates[-1]:.1f}; delivered "
                  f"{agg:.1f} MB/s in all; skipped ahead (lagged) {lagged}/{nv}; {mem}")
        self.d.send_signal(signal.SIGTERM)
        if self.d.wait(30) != 0:
            raise Fail("airmeshd exited non-zero")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--airmeshd", required=True)
    ap.add_argument("--runner", required=True)
    ap.add_argument("--ui", required=True)
    ap.add_argument("--size", type=int, default=128, help="MB for the single-viewer stream")
    ap.add_argument("--keys", type=int, default=400)
    ap.add_argument("tmpdir")
    a = ap.parse_args()
    b = Bench(a)
    try:
        b.run()
        return 0
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        b.cleanup()


if __name__ == "__main__":
    sys.exit(main())
