#!/usr/bin/python3
"""tests/bench/runners_bench.py — the "Runners" benchmark: enrollments/s, mTLS Connect
handshakes/s, and how many simulated runners stay connected with heartbeats, with airmeshd's
RSS, each beside a baseline measured in the same run (run by scripts/bench.sh, i.e. `make bench`).

What it does, in order, against one real airmeshd started on free loopback ports in a temp dir:
  1. airmeshd idle RSS (VmRSS from /proc/PID/status) two seconds after start: the RSS baseline.
  2. logs in over the REST API as admin (password from the first-start banner) and creates one
     enrollment token per runner with POST /api/v1/runner-tokens over one keep-alive HTTPS
     connection (setup; its rate is printed for information only).
  3. enroll: runners_bench_client enrolls K runners one after another with the runner's own
     enrollment code (am_sess_enroll: CA pinning handshake, new P-256 key, CSR, Enroll RPC,
     chain check, files written). Baseline: the openssl CLI issuing K P-256 client leaves by hand
     from a local CA (`openssl req -new -newkey ec` + `openssl x509 -req`, 2 processes per leaf).
     Also printed: the in-process crypto floor (//pki key + CSR + CSR check + leaf signature).
  4. connect: N times a new gRPC channel (own TCP connection) + mTLS + Connect + Hello → HelloAck
     + clean close. Baseline: N plain OpenSSL mTLS connections (same client certificate, same
     port, HTTP/2 preface exchanged, then closed) — the transport floor under gRPC.
  5. hold: one client process grows to each stage (default 100, 500, 1000) of runners, each with
     its own certificate and connection, heartbeating on one completion queue. After one
     heartbeat interval + 1.5 s, GET /api/v1/runners counts runners that are "online" and whose
     last heartbeat is newer than the moment the stage was reached, and airmeshd's RSS and CPU
     are sampled. RSS baselines: idle (step 1) and after all enrollments with 0 connected; the
     per-runner cost is (RSS now - RSS after enrollments) / connected. Also printed: RSS after
     the login (argon2id's working memory, ~19 MiB, stays mapped) and after the tokens.
  6. stops the client (every stream half-closed, statuses checked) and airmeshd (SIGTERM, exit 0).

How to read the numbers: speeds are ratios against the baseline of the same run on the same
machine (2 cores shared by airmeshd, the client and the baseline tools, so absolute numbers move
±30 % between runs; the ratios move less). `ratio` > 1 means airmesh is faster than its baseline.
"runners online A/B" must be B/B: fewer is a failure, not a slowdown. The exit status is non-zero
on any error (a process failing, a runner not online or not heartbeating, airmeshd exiting
non-zero); there are no timed assertions.

Usage: runners_bench.py --airmeshd BIN --client BIN --ui DIR [--enroll K] [--handshakes N]
                        [--stages 100,500,1000] [--threads T] TMPDIR
Everything it starts is stopped before it returns (and dies with it: PR_SET_PDEATHSIG).
"""
import argparse
import ctypes
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
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


def proc_status(pid):
    """VmRSS and RssAnon in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "Threads"):
                out[k] = int(v.split()[0])
    return out


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


class Fail(Exception):
    pass


class Bench:
    def __init__(self, a):
        self.a = a
        self.tmp = os.path.abspath(a.tmpdir)
        self.procs = []
        self.logs = {}

    # ---- processes ----
    def spawn(self, name, argv, **kw):
        log = open(os.path.join(self.tmp, name + ".log"), "w")
        self.logs[name] = log.name
        p = subprocess.Popen(argv, stderr=log, preexec_fn=die_with_parent, **kw)
        log.close()
        self.procs.append(p)
        return p

    def log_tail(self, name, n=15):
        try:
            with open(self.logs[name]) as f:
                return "".join(f.readlines()[-n:])
        except (KeyError, OSError):
            return ""

    def cleanup(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    # ---- the appliance ----
    def start_airmeshd(self):
        self.http_port, self.grpc_port = free_port(), free_port()
        self.url_host = "127.0.0.1"
        data = os.path.join(self.tmp, "airmesh")
        self.d = self.spawn("airmeshd", [
            self.a.airmeshd, "--data", data, "--listen", f"127.0.0.1:{self.http_port}",
            "--grpc-listen", f"127.0.0.1:{self.grpc_port}", "--ui", self.a.ui,
            "--log-level", "warn"], stdout=subprocess.PIPE, text=True)
        self.password = None
        self.dial = None
        deadline = time.time() + 60
        while time.time() < deadline and not (self.password and self.dial):
            line = self.d.stdout.readline()
            if not line:
                raise Fail("airmeshd exited at start:\n" + self.log_tail("airmeshd"))
            line = line.rstrip("\n")
            if line.startswith("admin password: "):
                self.password = line[len("admin password: "):]
            elif line.startswith("  runners dial:"):
                self.dial = line.split(":", 1)[1].strip()
        if not (self.password and self.dial):
            raise Fail("airmeshd banner incomplete (no password or runners dial line)")
        self.ca = os.path.join(data, "pki", "ca.pem")
        self.ctx = ssl.create_default_context(cafile=self.ca)
        self.conn = None

    def api(self, method, path, body=None, token=None):
        for attempt in (0, 1):  # one reconnect if the keep-alive connection was closed
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(self.url_host, self.http_port,
                                                        context=self.ctx, timeout=30)
            headers = {"Content-Type": "application/json"}
            if token:
                headers["Authorization"] = "Bearer " + token
            try:
                self.conn.request(method, path, body=json.dumps(body) if body is not None
                                  else None, headers=headers)
                r = self.conn.getresponse()
                data = r.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            if r.status >= 300:
                raise Fail(f"{method} {path}: HTTP {r.status}: {data[:300]!r}")
            return json.loads(data)

    def runners(self):
        return self.api("GET", "/api/v1/runners", token=self.token)["runners"]

    # ---- the benchmark ----
    def run(self):
        a = self.a
        stages = [int(x) for x in a.stages.split(",") if x]
        total = max([a.enroll] + stages)
        self.start_airmeshd()
        time.sleep(2)
        idle = proc_status(self.d.pid)

        self.token = self.api("POST", "/api/v1/login",
                              {"user": "admin", "password": self.password})["token"]
        after_login = proc_status(self.d.pid)  # argon2id's working memory stays mapped
        t0 = time.monotonic()
        tokens, fp = [], None
        for _ in range(total):
            r = self.api("POST", "/api/v1/runner-tokens", {"ttl": "1h"}, token=self.token)
            tokens.append(r["token"])
            fp = r["ca_sha256"]
        tok_rate = total / (time.monotonic() - t0)
        after_tokens = proc_status(self.d.pid)
        tok_file = os.path.join(self.tmp, "tokens.txt")
        with open(tok_file, "w") as f:
            f.write("\n".join(tokens) + "\n")
        os.chmod(tok_file, 0o600)

        # Baseline for enrollment: the same leaves by hand with the openssl CLI.
        cli_rate = self.openssl_cli_leaves(a.enroll)

        rdir = os.path.join(self.tmp, "runners")
        out = self.client_run(["enroll", self.dial, fp, tok_file, rdir, str(a.enroll),
                               str(a.threads)], timeout=300)
        after_enroll = proc_status(self.d.pid)
        seq, floor = out["enroll_seq"], out["floor"]
        enroll_rate = seq["n"] / seq["secs"]
        floor_rate = floor["n"] / floor["secs"]
        print(f"enroll: {enroll_rate:.1f}/s end to end (runner enrollment code, one at a time, "
              f"K={seq['n']}) | baseline openssl CLI leaf issuance (req -newkey ec + x509 -req): "
              f"{cli_rate:.1f}/s | ratio {enroll_rate / cli_rate:.2f}x", flush=True)
        print(f"  in-process crypto floor (//pki P-256 key + CSR + CSR check + leaf signature): "
              f"{floor_rate:.0f}/s, enrollment runs at {enroll_rate / floor_rate:.3f}x of it",
              flush=True)
        if "enroll_bulk" in out:
            b = out["enroll_bulk"]
            print(f"  (setup) {b['n']} more runners enrolled with {b['threads']} threads: "
                  f"{b['n'] / b['secs']:.1f}/s; {total} tokens made over REST: "
                  f"{tok_rate:.0f}/s", flush=True)

        out = self.client_run(["handshakes", self.dial, os.path.join(rdir, "r00000"),
                               str(a.handshakes)], timeout=300)
        c, t = out["connect"], out["tls"]
        c_rate, t_rate = c["n"] / c["secs"], t["n"] / t["secs"]
        print(f"connect: {c_rate:.1f}/s (new channel + mTLS + Connect + Hello -> HelloAck + close, "
              f"N={c['n']}) | baseline plain {t['version']} mTLS handshake + HTTP/2 preface, same "
              f"port and certificate: {t_rate:.1f}/s | ratio {c_rate / t_rate:.2f}x", flush=True)

        time.sleep(1)
        enrolled = proc_status(self.d.pid)
        print(f"airmeshd RSS baselines (anon in brackets): idle {mib(idle['VmRSS'])} "
              f"[{mib(idle['RssAnon'])}]; after login {mib(after_login['VmRSS'])} "
              f"[{mib(after_login['RssAnon'])}]; after {total} tokens {mib(after_tokens['VmRSS'])} "
              f"[{mib(after_tokens['RssAnon'])}]; after {total} enrollments "
              f"{mib(after_enroll['VmRSS'])} [{mib(after_enroll['RssAnon'])}]; after "
              f"{a.handshakes + 1} more connections, 0 connected: {mib(enrolled['VmRSS'])} "
              f"[{mib(enrolled['RssAnon'])}]", flush=True)
        return self.hold(stages, rdir, idle, enrolled)

    def hold(self, stages, rdir, idle, enrolled):
        cl = self.spawn("client-hold", [self.a.client, "hold", self.dial, rdir],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ok = True
        try:
            for n in stages:
                cl.stdin.write(f"grow {n}\n")
                cl.stdin.flush()
                r = self.read_kv(cl, "ready", timeout=180)
                t_ready_ms = int(time.time() * 1000)
                cpu0, w0 = proc_cpu_s(self.d.pid), time.monotonic()
                settle = r["hb_ms"] / 1000 + 1.5 if r["hb_ms"] else 6.5
                time.sleep(settle)
                st = proc_status(self.d.pid)
                cpu = (proc_cpu_s(self.d.pid) - cpu0) / (time.monotonic() - w0)
                rs = self.runners()
                online = [x for x in rs if x["state"] == "online"]
                beating = [x for x in online if x["last_heartbeat_ms"] > t_ready_ms]
                per = (st["VmRSS"] - enrolled["VmRSS"]) / max(len(online), 1)
                print(f"runners online: {len(online)}/{n}, heartbeating {len(beating)}/{n} "
                      f"(connected in {r['secs']:.1f} s) | airmeshd RSS {mib(st['VmRSS'])} "
                      f"(idle {mib(idle['VmRSS'])}, 0 connected {mib(enrolled['VmRSS'])}, "
                      f"+{per:.0f} KiB/runner), {st['Threads']} threads, "
                      f"{cpu * 100:.1f}% of a core | client {mib(r['rss_kib'])} "
                      f"(+{(r['rss_kib'] - r['rss0_kib']) / n:.0f} KiB/runner)", flush=True)
                if len(online) != n or len(beating) != n or r["acked"] != n:
                    ok = False
                    print(f"ERROR: {n - len(beating)} of {n} runners not online and heartbeating"
                          f" (client: acked {r['acked']}, failed {r['failed']})", flush=True)
                    break
            cl.stdin.write("stop\n")
            cl.stdin.flush()
            s = self.read_kv(cl, "stopped", timeout=60)
            cl.wait(30)
        finally:
            if cl.poll() is None:
                cl.kill()
                cl.wait()
        if cl.returncode != 0 or s["dropped"] or s["failed"] or s["clean"] != s["n"]:
            print(f"ERROR: client hold: exit {cl.returncode}, {s}\n" + self.log_tail("client-hold"))
            ok = False
        print(f"  stop: {s['clean']}/{s['n']} streams closed cleanly, {s['heartbeats']} heartbeats "
              f"sent, {s['skipped']} skipped (previous send still in flight)", flush=True)
        return ok

    # ---- helpers ----
    @staticmethod
    def parse_kv(line):
        word, *rest = line.split()
        kv = {}
        for item in rest:
            k, _, v = item.partition("=")
            try:
                kv[k] = int(v)
            except ValueError:
                try:
                    kv[k] = float(v)
                except ValueError:
                    kv[k] = v
        return word, kv

    def read_kv(self, p, want, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = p.stdout.readline()
            if not line:
                raise Fail(f"client exited before '{want}':\n" + self.log_tail("client-hold"))
            word, kv = self.parse_kv(line)
            if word == want:
                return kv
        raise Fail(f"timed out waiting for '{want}'")

    def client_run(self, args, timeout):
        name = "client-" + args[0]
        p = self.spawn(name, [self.a.client, *args], stdout=subprocess.PIPE, text=True)
        try:
            stdout, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Fail(f"runners_bench_client {args[0]} timed out")
        if p.returncode != 0:
            raise Fail(f"runners_bench_client {args[0]} exit {p.returncode}:\n" +
                       self.log_tail(name))
        return dict(self.parse_kv(line) for line in stdout.splitlines() if line.strip())

    def openssl_cli_leaves(self, k):
        d = os.path.join(self.tmp, "openssl-ca")
        os.makedirs(d)
        ext = os.path.join(d, "leaf.ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid\n")

        def sh(*argv):
            subprocess.run(argv, check=True, cwd=d, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=60)

        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj",
           "/CN=bench CA")
        t0 = time.monotonic()
        for i in range(k):
            sh("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-nodes", "-keyout", f"r{i}.key", "-out", f"r{i}.csr", "-subj", f"/CN=r{i}/O=bench")
            sh("openssl", "x509", "-req", "-in", f"r{i}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
               "-set_serial", str(1000 + i), "-days", "7", "-sha256", "-extfile", ext,
               "-out", f"r{i}.pem")
        return k / (time.monotonic() - t0)

    def stop_airmeshd(self):
        if self.conn:
            self.conn.close()
        self.d.send_signal(signal.SIGTERM)
        try:
            rc = self.d.wait(30)
        except subprocess.TimeoutExpired:
            raise Fail("airmeshd did not stop within 30 s of SIGTERM")
        if rc != 0:
            raise Fail(f"airmeshd exited {rc}:\n" + self.log_tail("airmeshd"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--airmeshd", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--ui", required=True)
    ap.add_argument("--enroll", type=int, default=50)
    ap.add_argument("--handshakes", type=int, default=200)
    ap.add_argument("--stages", default="100,500,1000")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("tmpdir")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    b = Bench(a)
    t0 = time.monotonic()
    ok = False
    try:
        ok = b.run()
        b.stop_airmeshd()
    except Fail as e:
        print(f"ERROR: {e}", flush=True)
        ok = False
    except Exception:  # a bug here or an unexpected answer: still stop everything, exit 1
        traceback.print_exc()
        ok = False
    finally:
        b.cleanup()
    print(f"runners bench: {'ok' if ok else 'FAILED'} in {time.monotonic() - t0:.0f} s "
          f"(logs in {b.tmp} while it exists)", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
