#!/usr/bin/python3
"""tests/bench/gateway_bench.py — the model gateway's overhead (run by scripts/bench.sh, i.e.
`make bench`).

A real airmeshd and a real enrolled airmesh-runner on loopback, and the scripted test model
server (tests/model_server/server.py) added as an openai endpoint. The same client (python3's
http.client over one keep-alive connection; CONCURRENCY of them for throughput) runs twice in
the same run:
  - direct: on the host, against the model server itself (the baseline);
  - gateway: inside a pod with network models, against 127.0.0.1:4000 (pod → runner's in-netns
    listener → its mTLS stream → airmeshd's gateway thread → the model server, and back).
Measured: non-streaming Chat Completions latency p50/p99 (sequential), requests/s with
CONCURRENCY clients, and for streaming requests the time to the first body byte (the SSE
stream's first chunk). Printed: both sides, what the gateway adds (ms) and the ratios
gateway / direct. No timed assertions: the run fails only if a request fails.

Usage: gateway_bench.py --airmeshd BIN --runner BIN --ui DIR TMPDIR [--n N]
"""
import argparse
import json
import os
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from terminal_bench import Bench, Fail  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "model_server"))
import server as model_server  # noqa: E402

CONCURRENCY = 4

CLIENT = r"""
import http.client, json, os, threading, time, urllib.parse
base = urllib.parse.urlsplit(os.environ["BASE"])
key, n = os.environ["KEY"], int(os.environ["N"])
body = json.dumps({"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]})
sbody = json.dumps({"model": "bench-model", "stream": True,
                    "messages": [{"role": "user", "content": "hi"}]})
hdrs = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
path = base.path.rstrip("/") + "/chat/completions"

def conn():
    return http.client.HTTPConnection(base.hostname, base.port, timeout=60)

def one(c, b):
    t = time.perf_counter()
    c.request("POST", path, body=b, headers=hdrs)
    r = c.getresponse()
    first = r.read1(65536) if b is sbody else r.read()
    ttfb = time.perf_counter() - t
    rest = r.read()
    if r.status != 200:
        raise SystemExit("HTTP %d %r" % (r.status, (first + rest)[:200]))
    return ttfb, time.perf_counter() - t

c = conn()
for _ in range(20):  # warm up
    one(c, body)
lat = sorted(one(c, body)[1] for _ in range(n))
ttfb = sorted(one(c, sbody)[0] for _ in range(max(20, n // 4)))
done, errs = [0], []
def worker(k):
    cc = conn()
    try:
        for _ in range(k):
            one(cc, body)
            done[0] += 1
    except BaseException as e:
        errs.append(repr(e))
conc = int(os.environ["CONC"])
t0 = time.perf_counter()
ts = [threading.Thread(target=worker, args=(n // conc,)) for _ in range(conc)]
[t.start() for t in ts]
[t.join() for t in ts]
el = time.perf_counter() - t0
if errs:
    raise SystemExit("errors: %s" % errs[:3])
q = lambda v, p: v[min(len(v) - 1, int(p * len(v)))] * 1000
print("BENCH " + json.dumps({"p50": q(lat, 0.5), "p99": q(lat, 0.99), "rps": done[0] / el,
                             "ttfb50": q(ttfb, 0.5), "ttfb99": q(ttfb, 0.99)}), flush=True)
"""


class GatewayBench(Bench):
    def recording_text(self, pid):
        import http.client
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=60)
        c.request("GET", "/api/v1/pods/%s/recording" % pid,
                  headers={"Authorization": "Bearer " + self.token})
        r = c.getresponse()
        data = r.read().decode("utf-8", "replace")
        if r.status != 200:
            raise Fail("recording: HTTP %d" % r.status)
        return "".join(json.loads(l)[2] for l in data.splitlines()[1:]
                       if json.loads(l)[1] == "o")

    def run(self):
        self.setup()
        srv = model_server.start({"models": ["bench-model"], "rules": [
            {"reply": {"text": "ok", "chunks": 2,
                       "usage": {"input_tokens": 5, "output_tokens": 1}}}]},
            os.path.join(self.tmp, "model"))
        try:
            self.api("POST", "/api/v1/models", {"name": "bench", "api": "openai",
                                                "url": srv.url + "/v1", "key": "sk-bench",
                                                "models": ["bench-model"]})
            n = self.a.n
            env = dict(os.environ, BASE=srv.url + "/v1", KEY="sk-bench", N=str(n),
                       CONC=str(CONCURRENCY))
            out = subprocess.run(["python3", "-c", CLIENT], env=env, capture_output=True,
                                 text=True, timeout=600)
            if out.returncode:
                raise Fail("direct client: " + out.stderr[-500:])
            direct = json.loads(out.stdout.split("BENCH ", 1)[1])
            # The gateway: the same client in a pod (its key and base URL from the pod's env).
            p = self.api("POST", "/api/v1/pods", {
                "repo": self.repo, "network": "models",
                "command": ["sh", "-c", 'BASE="$OPENAI_BASE_URL" KEY="$OPENAI_API_KEY" '
                                        'python3 -c "$CLIENT"'],
                "env": {"CLIENT": CLIENT, "N": str(n), "CONC": str(CONCURRENCY)}})
            pid = p["id"]
            deadline = time.time() + 600
            while True:
                st = self.api("GET", "/api/v1/pods/" + pid)
                if st["state"] in ("exited", "failed", "stopped"):
                    break
                if time.time() > deadline:
                    raise Fail("gateway pod did not end")
                time.sleep(0.5)
            time.sleep(1)
            text = ""
            for _ in range(60):
                try:
                    text = self.recording_text(pid)
                    break
                except Fail:
                    time.sleep(0.5)
            if st["state"] != "exited" or st.get("exit_code") != 0 or "BENCH " not in text:
                raise Fail("gateway pod: %s %s: %s" % (st["state"], st.get("exit_code"),
                                                        text[-500:]))
            gw = json.loads(text.split("BENCH ", 1)[1].splitlines()[0])
        finally:
            srv.stop()
        print("model gateway, non-streaming Chat Completions (%d sequential; %d clients for "
              "requests/s), streaming time to first byte:" % (n, CONCURRENCY))
        print("  %-34s %10s %10s %10s" % ("", "direct", "gateway", "gw/direct"))
        for k, label in (("p50", "latency p50 (ms)"), ("p99", "latency p99 (ms)"),
                         ("ttfb50", "stream first byte p50 (ms)"),
                         ("ttfb99", "stream first byte p99 (ms)"), ("rps", "requests/s")):
            print("  %-34s %10.2f %10.2f %10.2f" % (label, direct[k], gw[k], gw[k] / direct[k]))
        print("  added by the gateway: p50 %+.2f ms, p99 %+.2f ms, first byte p50 %+.2f ms"
              % (gw["p50"] - direct["p50"], gw["p99"] - direct["p99"],
                 gw["ttfb50"] - direct["ttfb50"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--airmeshd", required=True)
    ap.add_argument("--runner", required=True)
    ap.add_argument("--ui", required=True)
    ap.add_argument("--n", type=int, default=400, help="sequential requests per side")
    ap.add_argument("tmpdir")
    a = ap.parse_args()
    b = GatewayBench(a)
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
