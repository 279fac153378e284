#!/usr/bin/python3
"""The model gateway end to end (issue 12): real pods with network models call 127.0.0.1:4000
with python3's http.client; the runner frames each request onto its mTLS stream, airmeshd checks
the pod's virtual key and policy, swaps it for the endpoint's real key and calls the scripted test
model server (tests/model_server) on the host's loopback, added as an openai and an anthropic
endpoint by an admin (airmeshctl model add).

Proves, at the level a pod and an admin touch it:
  - OpenAI Chat (non-streaming, streaming), Responses (both) and Anthropic Messages (both) answer
    from the model server; streams arrive as SSE; GET /v1/models lists the org's models in
    OpenAI's format, and in Anthropic's with anthropic-version;
  - streaming is incremental: with the server's held stream, the pod prints the first chunk while
    the server still holds the last (the server has not finished the request), then the test
    releases it and the pod reads the rest;
  - tokens are metered exactly as the server reported: GET /api/v1/pods/{id} usage, GET
    /api/v1/usage, airmeshctl usage and each model.request audit event (which holds no prompt
    text and no key);
  - the model server saw the real keys (Bearer for openai, x-api-key for anthropic), never a
    virtual one; the real keys are in neither the pods' environment, nor their files, nor their
    recordings;
  - a stolen virtual key (of an ended pod), another running pod's key and no key are refused
    (401 in the API's format), while the pod's own key works (positive control); a direct
    connect to the model server from the pod fails;
  - a quota (airmeshctl org quota) answers 429 in both formats (insufficient_quota /
    rate_limit_error), audited as denied and counted as refused; a member cannot set it.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import harness
from harness import api, ctl, curl, Daemon, login, Runner, token_login, wait_for

sys.path.insert(0, os.path.dirname(os.path.abspath(os.environ["MODEL_SERVER"])))
import server as model_server  # noqa: E402  tests/model_server/server.py

REAL_OAI = "sk-real-openai-" + os.urandom(12).hex()
REAL_ANT = "sk-ant-real-" + os.urandom(12).hex()
PROMPT_MARK = "PROMPT-TEXT-" + os.urandom(6).hex()  # must never reach the audit log

# What the "model" answers: distinct usages per API so metering can be checked exactly.
SCRIPT = {
    "models": ["test-model"],
    "rules": [
        {"when": {"api": "messages", "contains": "held-marker"},
         "reply": {"text": "alpha beta gamma delta", "chunks": 4, "hold": True,
                   "usage": {"input_tokens": 41, "output_tokens": 6}}},
        {"when": {"api": "chat", "contains": "chat-marker"},
         "reply": {"text": "chat says hi", "usage": {"input_tokens": 101, "output_tokens": 11}}},
        {"when": {"api": "responses", "contains": "resp-marker"},
         "reply": {"text": "responses says hi",
                   "usage": {"input_tokens": 102, "output_tokens": 12}}},
        {"when": {"api": "messages", "contains": "msg-marker"},
         "reply": {"text": "messages says hi",
                   "usage": {"input_tokens": 103, "output_tokens": 13}}},
        {"reply": {"text": "ok", "usage": {"input_tokens": 1, "output_tokens": 1}}},
    ],
}
# (api case, tokens in, tokens out) the main pod makes, as the script answers them.
EXPECTED = {"chat": (101, 11), "chat_stream": (101, 11), "resp": (102, 12),
            "resp_stream": (102, 12), "msg": (103, 13), "msg_stream": (103, 13),
            "held": (41, 6)}

CLIENT = r"""
import http.client, json, os, socket, sys, time
MARK = os.environ["MARK"]

def call(method, path, body, headers):
    c = http.client.HTTPConnection("127.0.0.1", 4000, timeout=120)
    c.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    return c, c.getresponse()

def oai(key=None):
    k = os.environ.get("OPENAI_API_KEY", "") if key is None else key
    h = {"Content-Type": "application/json"}
    if k:
        h["Authorization"] = "Bearer " + k
    return h

def ant(key=None):
    k = os.environ.get("ANTHROPIC_API_KEY", "") if key is None else key
    h = {"Content-Type": "application/json", "anthropic-version": "2023-06-01"}
    if k:
        h["x-api-key"] = k
    return h

def usage_of(text):
    # What the pod's client sees: the last usage numbers in the body or stream.
    tin = tout = None
    for chunk in [text] + [l[5:].strip() for l in text.splitlines() if l.startswith("data:")]:
        try:
            d = json.loads(chunk)
        except ValueError:
            continue
        for u in (d.get("usage"), (d.get("message") or {}).get("usage"),
                  (d.get("response") or {}).get("usage")):
            if isinstance(u, dict):
                tin = u.get("input_tokens", u.get("prompt_tokens", tin))
                tout = u.get("output_tokens", u.get("completion_tokens", tout))
    return tin, tout

def case(name, path, body, headers):
    c, r = call("POST", path, body, headers)
    text = r.read().decode()
    print("RES", name, r.status, r.getheader("content-type"), json.dumps(usage_of(text)),
          json.dumps(text[-300:]), flush=True)
    return r.status, text

chat = {"model": "test-model", "messages": [{"role": "user", "content": "chat-marker " + MARK}]}
msgs = {"model": "test-model", "max_tokens": 50,
        "messages": [{"role": "user", "content": "msg-marker " + MARK}]}
resp = {"model": "test-model", "input": "resp-marker " + MARK}
if os.environ.get("ROLE") == "main":
    case("chat", "/v1/chat/completions", chat, oai())
    case("chat_stream", "/v1/chat/completions", dict(chat, stream=True), oai())
    case("resp", "/v1/responses", resp, oai())
    case("resp_stream", "/v1/responses", dict(resp, stream=True), oai())
    case("msg", "/v1/messages", msgs, ant())
    case("msg_stream", "/v1/messages", dict(msgs, stream=True), ant())
    for name, h in (("models_openai", oai()), ("models_anthropic", ant())):
        c, r = call("GET", "/v1/models", None, h)
        print("LIST", name, r.status, r.read().decode(), flush=True)
    # The held stream: print the first piece as soon as it arrives, then read to the end.
    c, r = call("POST", "/v1/messages",
                {"model": "test-model", "max_tokens": 50, "stream": True,
                 "messages": [{"role": "user", "content": "held-marker " + MARK}]}, ant())
    got = b""
    while b"text_delta" not in got:
        d = r.read1(65536)
        if not d:
            break
        got += d
    print("HELD-FIRST", b"alpha" in got, b"message_stop" in got, flush=True)
    while True:
        d = r.read1(65536)
        if not d:
            break
        got += d
    text = got.decode()
    print("RES held", r.status, r.getheader("content-type"), json.dumps(usage_of(text)),
          json.dumps(text[-300:]), flush=True)
    print("HELD-DONE", "message_stop" in text, flush=True)
    print("MYKEY", os.environ["OPENAI_API_KEY"], flush=True)
elif os.environ.get("ROLE") == "holder":
    print("MYKEY", os.environ["OPENAI_API_KEY"], flush=True)
    time.sleep(300)
elif os.environ.get("ROLE") == "thief":
    case("own", "/v1/chat/completions", chat, oai())
    case("stolen", "/v1/chat/completions", chat, oai(os.environ["STOLEN"]))
    case("other", "/v1/messages", msgs, ant(os.environ["OTHER"]))
    case("nokey_oai", "/v1/chat/completions", chat, oai(""))
    case("nokey_ant", "/v1/messages", msgs, ant(""))
    try:
        socket.create_connection(("127.0.0.1", int(os.environ["SERVER_PORT"])), timeout=5).close()
        print("DIRECT connected")
    except OSError as e:
        print("DIRECT failed", e.__class__.__name__)
elif os.environ.get("ROLE") == "quota":
    case("quota_oai", "/v1/chat/completions", chat, oai())
    case("quota_ant", "/v1/messages", msgs, ant())
# The real keys, in the environment or any file the pod can read (the needle is put together
# here, so it is in no file or environment variable itself).
needles = [(os.environ["N1"] + os.environ["N2"]).encode(),
           (os.environ["N3"] + os.environ["N4"]).encode()]
print("ENVHIT", any(n.decode() in v for n in needles for v in os.environ.values()))
hits, scanned = [], 0
for top in ("/workspace", os.environ.get("HOME", "/home"), "/home", "/root", "/tmp", "/etc",
            "/run", "/var", "/dev/shm", "/opt"):
    for root, dirs, files in os.walk(top):
        for f in files:
            p = os.path.join(root, f)
            try:
                if os.path.islink(p) or os.path.getsize(p) > (8 << 20):
                    continue
                with open(p, "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            scanned += 1
            if any(n in data for n in needles):
                hits.append(p)
print("FILEHITS", scanned > 3, json.dumps(sorted(set(hits))))
"""


def lines(out, tag):
    return [l[len(tag) + 1:] for l in out.splitlines() if l.startswith(tag + " ")]


def results(out):
    """RES lines: name -> (status, content-type, [in, out], tail of the body)."""
    res = {}
    for l in lines(out, "RES"):
        name, status, ctype, rest = l.split(" ", 3)
        usage = json.loads(rest[:rest.index("]") + 1])
        tail = json.loads(rest[rest.index("]") + 2:])
        res[name] = (int(status), ctype, usage, tail)
    return res


class GatewayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.guarded_setup(cls, cls._setup)

    @classmethod
    def _setup(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        cls.d = Daemon(os.path.join(cls.tmp, "airmesh")).wait_ready()
        cls.admin_pw = cls.d.read_password()
        cls.admin = token_login(cls.d, "admin", cls.admin_pw)
        cls.home = login(cls.d, cls.admin_pw)
        d, a = cls.d, cls.admin
        code, tok = api(d, "POST", "/api/v1/runner-tokens", a, {"ttl": "10m"})
        assert code == 201, tok
        cls.rtmp = tempfile.mkdtemp(prefix="airmesh-gateway-test-", dir="/tmp")
        cls.rdata = os.path.join(cls.rtmp, "runner")
        Runner.enroll(d, tok["token"], tok["ca_sha256"], cls.rdata)
        cls.runner = Runner(cls.rdata)
        rid = cls.runner.runner_id()
        wait_for(lambda: api(d, "GET", "/api/v1/runners/" + rid, a)[1].get("state") ==
                 "online", 30, what="runner online")
        cls.repo = os.path.join(cls.tmp, "repo")
        subprocess.run(["git", "init", "-q", "-b", "main", cls.repo], check=True)
        subprocess.run(["git", "-C", cls.repo, "-c", "user.email=t@x", "-c", "user.name=t",
                        "commit", "-q", "--allow-empty", "-m", "init"], check=True)
        assert api(d, "POST", "/api/v1/users", a, {"name": "mia", "role": "member",
                                                   "password": "mia-password-123"})[0] == 201
        cls.member = token_login(d, "mia", "mia-password-123")
        cls.srv = model_server.start(SCRIPT, os.path.join(cls.tmp, "model"))
        for name, apiname, url, key in (("oai", "openai", cls.srv.url + "/v1", REAL_OAI),
                                        ("ant", "anthropic", cls.srv.url, REAL_ANT)):
            kf = os.path.join(cls.tmp, name + ".key")
            with open(kf, "w") as f:
                f.write(key + "\n")
            r = ctl(d, "model", "add", name, "--api", apiname, "--url", url, "--key-file", kf,
                    "--models", "test-model", home=cls.home)
            assert r.returncode == 0, r.stdout + r.stderr
            os.unlink(kf)
        cls.pods = []

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop()
            cls.runner.stop(timeout=30)
        finally:
            cls.d.stop()
        shutil.rmtree(cls.rtmp, ignore_errors=True)

    # ---- helpers ---------------------------------------------------------------------------

    def start_pod(self, role, env=None):
        e = {"ROLE": role, "MARK": PROMPT_MARK, "N1": REAL_OAI[:10], "N2": REAL_OAI[10:],
             "N3": REAL_ANT[:10], "N4": REAL_ANT[10:], "SERVER_PORT": self.srv.url.rsplit(":", 1)[1]}
        e.update(env or {})
        code, pod = api(self.d, "POST", "/api/v1/pods", self.admin,
                        {"repo": self.repo, "command": ["python3", "-c", CLIENT], "env": e,
                         "network": "models"})
        self.assertEqual(code, 201, pod)
        self.pods.append(pod["id"])
        return pod["id"]

    def wait_end(self, pid, timeout=180):
        wait_for(lambda: api(self.d, "GET", "/api/v1/pods/" + pid, self.admin)[1].get(
            "state") in ("exited", "failed", "stopped"), timeout, what="pod ended")
        return api(self.d, "GET", "/api/v1/pods/" + pid, self.admin)[1]

    def recording(self, pid):
        out = os.path.join(self.tmp, pid + ".cast")
        wait_for(lambda: ctl(self.d, "pod", "recording", pid, "-o", out,
                             home=self.home).returncode == 0, 30, what="recording")
        raw = harness.read(out)
        lines_ = raw.splitlines()
        text = "".join(json.loads(l)[2] for l in lines_[1:] if json.loads(l)[1] == "o")
        return raw, text.replace("\r\n", "\n")

    def logs(self, pid):
        r = ctl(self.d, "pod", "logs", pid, home=self.home)
        return r.stdout.replace("\r\n", "\n")

    def audit(self, **q):
        import urllib.parse
        code, doc = api(self.d, "GET", "/api/v1/audit?" + urllib.parse.urlencode(
            dict(limit=1000, **q)), self.admin)
        self.assertEqual(code, 200, doc)
        return doc["events"]

    def model_requests(self, pid):
        evs = [e for e in self.audit(action="model.request") if e["actor"] == "pod:" + pid]
        for e in evs:
            if isinstance(e["details"], str):
                e["details"] = json.loads(e["details"])
        return evs

    def check_no_real_key(self, out, raw):
        self.assertEqual(lines(out, "ENVHIT"), ["False"], out)
        self.assertEqual(lines(out, "FILEHITS"), ["True []"], out)
        for k in (REAL_OAI, REAL_ANT):
            self.assertNotIn(k, raw)

    # ---- the cases (run in name order) ------------------------------------------------------

    def test_1_pod_calls_all_three_apis_streams_incrementally_and_is_metered(self):
        pid = self.start_pod("main")
        # The held stream: the pod has its first piece while the server still holds the last
        # (the server logs a request only once it has sent everything).
        wait_for(lambda: "HELD-FIRST" in self.logs(pid), 120, what="the held stream's first chunk")
        self.assertEqual(lines(self.logs(pid), "HELD-FIRST"), ["True False"])
        held = [e for e in self.srv.entries() if PROMPT_MARK in json.dumps(e.get("body")) and
                "held-marker" in json.dumps(e.get("body"))]
        self.assertEqual(held, [], "the server had not finished the held stream yet")
        self.srv.release()
        info = self.wait_end(pid)
        raw, out = self.recording(pid)
        self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), out)
        self.assertEqual(lines(out, "HELD-DONE"), ["True"], out)
        res = results(out)
        for name, (tin, tout) in EXPECTED.items():
            status, ctype, usage, tail = res[name]
            self.assertEqual(status, 200, (name, res[name]))
            self.assertEqual(usage, [tin, tout], (name, res[name]))
            want = "text/event-stream" if "stream" in name or name == "held" \
                else "application/json"
            self.assertEqual(ctype, want, (name, res[name]))
        self.assertIn("data: [DONE]", res["chat_stream"][3])
        self.assertIn("response.completed", res["resp_stream"][3])
        self.assertIn("message_stop", res["msg_stream"][3])
        lst = dict((l.split(" ", 2)[0], l.split(" ", 2)[1:]) for l in lines(out, "LIST"))
        o = json.loads(lst["models_openai"][1])
        self.assertEqual(lst["models_openai"][0], "200")
        self.assertEqual(o["object"], "list")
        self.assertEqual([m["id"] for m in o["data"]], ["test-model"])
        a = json.loads(lst["models_anthropic"][1])
        self.assertEqual(a["data"][0]["type"], "model")
        self.assertEqual(a["has_more"], False)
        # Metered exactly as the server reported (its log says what it sent).
        sent = [e for e in self.srv.entries() if PROMPT_MARK in json.dumps(e.get("body"))]
        self.assertEqual(len(sent), len(EXPECTED))
        tin = sum(e["usage"]["input_tokens"] for e in sent)
        tout = sum(e["usage"]["output_tokens"] for e in sent)
        self.assertEqual((tin, tout), (sum(v[0] for v in EXPECTED.values()),
                                       sum(v[1] for v in EXPECTED.values())))
        usage = wait_for(lambda: (lambda u: u if u["requests"] == len(EXPECTED) + 2 else None)(
            api(self.d, "GET", "/api/v1/pods/" + pid, self.admin)[1]["usage"]), 30,
            what="usage recorded")
        self.assertEqual((usage["tokens_in"], usage["tokens_out"]), (tin, tout))
        code, u = api(self.d, "GET", "/api/v1/usage", self.member)
        self.assertEqual(code, 200, u)
        self.assertEqual([(p["tokens_in"], p["tokens_out"]) for p in u["pods"]
                          if p["pod"] == pid], [(tin, tout)])
        self.assertEqual([(x["user"], x["tokens"]) for x in u["users"]], [("admin", tin + tout)])
        self.assertEqual(u["today"]["tokens"], tin + tout)
        r = ctl(self.d, "usage", home=self.home)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"pod %s\s+%d\s+%d\s+%d" % (pid, len(EXPECTED) + 2, tin, tout))
        # One model.request per request, with the numbers, and no prompt text or key.
        evs = self.model_requests(pid)
        self.assertEqual(len(evs), len(EXPECTED) + 2, evs)
        self.assertEqual(sorted((e["details"]["tokens_in"], e["details"]["tokens_out"])
                                for e in evs if e["details"]["tokens_in"]),
                         sorted(EXPECTED.values()))
        self.assertTrue(all(e["result"] == "ok" and e["details"]["status"] == 200 for e in evs))
        self.assertEqual(sorted(e["details"]["endpoint"] for e in evs if e["details"]["model"]),
                         ["ant"] * 3 + ["oai"] * 4)
        self.assertEqual(sum(1 for e in evs if e["details"]["stream"]), 4)
        dump = json.dumps(self.audit())
        for secret in (PROMPT_MARK, REAL_OAI, REAL_ANT, "amk_"):
            self.assertNotIn(secret, dump)
        # The server saw the real keys in each API's header, never a virtual key.
        for e in sent:
            h = e["headers"]
            if e["api"] == "messages":
                self.assertEqual(h.get("x-api-key"), REAL_ANT)
                self.assertNotIn("authorization", h)
            else:
                self.assertEqual(h.get("authorization"), "Bearer " + REAL_OAI)
                self.assertNotIn("x-api-key", h)
        self.assertNotIn("amk_", json.dumps(self.srv.entries()))
        # The streaming chat request asked for the usage chunk for us.
        chat_stream = [e for e in sent if e["api"] == "chat" and e.get("stream")]
        self.assertEqual(chat_stream[0]["body"]["stream_options"], {"include_usage": True})
        self.check_no_real_key(out, raw)
        self.assertNotIn(REAL_OAI, json.dumps(info))
        type(self).main_key = lines(out, "MYKEY")[0]
        self.assertTrue(self.main_key.startswith("amk_"))

    def test_2_stolen_other_and_missing_keys_are_refused(self):
        holder = self.start_pod("holder")
        wait_for(lambda: lines(self.logs(holder), "MYKEY"), 120, what="the holder's key")
        other = lines(self.logs(holder), "MYKEY")[0]
        pid = self.start_pod("thief", {"STOLEN": self.main_key, "OTHER": other})
        info = self.wait_end(pid)
        self.assertEqual(api(self.d, "POST", "/api/v1/pods/%s/stop" % holder, self.admin)[0], 202)
        raw, out = self.recording(pid)
        self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), out)
        res = results(out)
        self.assertEqual(res["own"][0], 200, res)  # positive control: its own key works
        for name in ("stolen", "nokey_oai"):
            status, _, _, body = res[name]
            self.assertEqual(status, 401, res[name])
            self.assertEqual(json.loads(body)["error"]["code"], "invalid_api_key")
        for name in ("other", "nokey_ant"):
            status, _, _, body = res[name]
            self.assertEqual(status, 401, res[name])
            b = json.loads(body)
            self.assertEqual((b["type"], b["error"]["type"]), ("error", "authentication_error"))
        self.assertEqual(lines(out, "DIRECT"), ["failed ConnectionRefusedError"], out)
        evs = self.model_requests(pid)
        self.assertEqual(sorted(e["result"] for e in evs), ["denied"] * 4 + ["ok"])
        u = wait_for(lambda: (lambda x: x if x["refused"] == 4 else None)(
            api(self.d, "GET", "/api/v1/pods/" + pid, self.admin)[1]["usage"]), 30,
            what="refusals counted")
        self.assertEqual(u["requests"], 1)
        self.check_no_real_key(out, raw)
        self.wait_end(holder)

    def test_3_quota_answers_429_in_both_formats(self):
        # A member may not set it (403, audited denied).
        code, doc = api(self.d, "PUT", "/api/v1/orgs/default/model-quota", self.member,
                        {"tokens_per_day": 1})
        self.assertEqual(code, 403, doc)
        self.assertTrue(any(e["result"] == "denied" for e in self.audit(action="org.model_quota")))
        code, doc = api(self.d, "PUT", "/api/v1/orgs/default/model-quota", self.admin,
                        {"tokens_per_day": "x"})
        self.assertEqual(code, 400, doc)
        r = ctl(self.d, "org", "quota", "--tokens-per-day", "1", home=self.home)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 per day", r.stdout)
        code, q = api(self.d, "GET", "/api/v1/orgs/default/model-quota", self.member)
        self.assertEqual((code, q["tokens_per_day"]), (200, 1))
        self.assertGreater(q["today"]["tokens"], 1)
        code, before = api(self.d, "GET", "/api/v1/usage", self.admin)
        pid = self.start_pod("quota")
        info = self.wait_end(pid)
        raw, out = self.recording(pid)
        self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), out)
        res = results(out)
        status, _, _, body = res["quota_oai"]
        self.assertEqual(status, 429, res)
        e = json.loads(body)["error"]
        self.assertEqual((e["type"], e["code"]), ("insufficient_quota", "insufficient_quota"))
        status, _, _, body = res["quota_ant"]
        self.assertEqual(status, 429, res)
        b = json.loads(body)
        self.assertEqual((b["type"], b["error"]["type"]), ("error", "rate_limit_error"))
        evs = self.model_requests(pid)
        self.assertEqual([e["result"] for e in evs], ["denied", "denied"])
        after = wait_for(lambda: (lambda u: u if u["today"]["refused"] ==
                                  before["today"]["refused"] + 2 else None)(
            api(self.d, "GET", "/api/v1/usage", self.admin)[1]), 30, what="refusals counted")
        self.assertEqual(after["today"]["tokens"], before["today"]["tokens"])
        sets = [e["details"] if isinstance(e["details"], dict) else json.loads(e["details"])
                for e in self.audit(action="org.model_quota") if e["result"] == "ok"]
        self.assertIn({"tokens_per_day": 1}, sets)
        r = ctl(self.d, "org", "quota", "--tokens-per-day", "0", home=self.home)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("none per day", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
