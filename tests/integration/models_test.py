#!/usr/bin/python3
"""Integration tests for model endpoints (issue 12, "Model endpoints (admins)").

A real airmeshd and the scripted test model server (tests/model_server/server.py) on 127.0.0.1.
The server lists two models: "good-model" answers the get_time tool with a well-formed call and
then, given the tool's result, with text; "texty-model" answers the same request with text (a
local model that cannot call tools). Proven here, at the level a user touches it:
  - an admin adds an openai endpoint through the REST API and an anthropic one through
    `airmeshctl model add --key-file`; each add runs the self-test against the server with the
    real key (the server's log shows the key and the API's own paths and headers), stores it and
    shows it: reachable, models listed, completion per model, tool_call true for good-model and
    false for texty-model with the reason; `model test` re-runs it;
  - an unreachable URL is still saved, with reachable false and a clear error;
  - an https model server signed by an own CA is reachable with that CA as ca_pem, and not
    with the system's CAs or with another CA (the appliance's own), each saying why;
  - an Anthropic server that lists no models (404) is fine; an openai URL without /v1 gets a
    hint that the base includes /v1;
  - a member lists (without the key) but cannot add, test or remove (403, audited as denied,
    nothing changed);
  - bad input is 400 naming the field, and nothing is stored;
  - rm removes;
  - the key appears in no API answer, no CLI output, no audit record (the whole log, exported
    and read back) and not in airmeshd's log, while the server's log proves it was used.
"""
import json
import os
import subprocess
import tempfile
import unittest

import harness
from harness import Daemon, ctl, curl, login

import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(os.environ["MODEL_SERVER"])))
import server as model_server  # noqa: E402  tests/model_server/server.py

KEY = "sk-openai-real-4f1c9a7e2b"
KEY2 = "sk-ant-real-8d2e6b0c31"

SCRIPT = {
    "models": ["good-model", "texty-model", "broken-model"],
    "rules": [
        {"when": {"model": "broken-model", "tool_offered": "get_time"},
         "reply": {"tool_call": {"name": "get_time"}, "raw_arguments": "{\"timezone\": \"UT"}},
        {"when": {"model": "good-model", "tool_offered": "get_time", "tool_result": False},
         "reply": {"tool_call": {"name": "get_time", "arguments": {"timezone": "UTC"}}}},
        {"when": {"model": "good-model", "tool_result": True},
         "reply": {"text": "It is 12:00 UTC."}},
        {"when": {"model": "texty-model", "tool_offered": "get_time"},
         "reply": {"text": "I think it is around noon."}},
    ],
}


def api(d, method, path, token=None, body=None, raw=None):
    args = ["-X", method]
    if token:
        args += ["-H", "Authorization: Bearer " + token]
    if body is not None or raw is not None:
        args += ["-H", "Content-Type: application/json", "--data",
                 raw if raw is not None else json.dumps(body)]
    code, _, _, text = curl(d, path, *args)
    ModelsTest.answers.append(text)
    try:
        return code, json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return code, {"raw": text}


def token_login(d, user, password):
    code, doc = api(d, "POST", "/api/v1/login", body={"user": user, "password": password})
    assert code == 200, (code, doc)
    return doc["token"]


def make_tls(dirpath):
    """A CA and a server certificate for 127.0.0.1 signed by it (openssl CLI): (ca, cert, key)."""
    def run(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=dirpath)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=lan model CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
        "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
        "srv.key", "-out", "srv.csr", "-subj", "/CN=model.lan")
    with open(os.path.join(dirpath, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf")
    return tuple(os.path.join(dirpath, n) for n in ("ca.pem", "srv.pem", "srv.key"))


def checks(ep):
    return {c["model"]: c for c in ep["last_test"]["checks"]}


class ModelsTest(unittest.TestCase):
    answers = []  # every API answer and CLI output, searched for the keys at the end

    @classmethod
    def setUpClass(cls):
        harness.guarded_setup(cls, cls._setup)

    @classmethod
    def _setup(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        cls.srv = model_server.start(SCRIPT, os.path.join(cls.tmp, "model"))
        cls.d = Daemon(os.path.join(cls.tmp, "airmesh")).wait_ready()
        cls.admin_pw = cls.d.read_password()
        cls.admin = token_login(cls.d, "admin", cls.admin_pw)
        cls.home = login(cls.d, cls.admin_pw)
        assert api(cls.d, "POST", "/api/v1/users", cls.admin,
                   {"name": "mia", "role": "member", "password": "mia-password-123"})[0] == 201
        cls.member = token_login(cls.d, "mia", "mia-password-123")
        cls.member_home = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        r = ctl(cls.d, "login", "--user", "mia", stdin="mia-password-123\n",
                home=cls.member_home)
        assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop()
        finally:
            cls.d.stop()

    def ctl(self, *args, home=None):
        r = ctl(self.d, *args, home=home or self.home)
        self.answers.append(r.stdout + r.stderr)
        return r

    def add_openai(self, name="local"):
        code, ep = api(self.d, "POST", "/api/v1/models", self.admin,
                       {"name": name, "api": "openai", "url": self.srv.url + "/v1/", "key": KEY,
                        "models": ["good-model", "texty-model", "broken-model"]})
        self.assertEqual(code, 201, ep)
        return ep

    # ---- the self-test, through the API and the CLI ----

    def test_1_openai_endpoint_added_through_the_api_is_self_tested(self):
        n0 = len(self.srv.entries())
        ep = self.add_openai()
        self.assertEqual(ep["name"], "local")
        self.assertEqual(ep["url"], self.srv.url + "/v1")  # trailing '/' dropped
        self.assertTrue(ep["has_key"])
        self.assertNotIn("key", ep)
        t = ep["last_test"]
        self.assertTrue(t["reachable"], t)
        self.assertEqual(t["models_listed"], ["good-model", "texty-model", "broken-model"])
        c = checks(ep)
        self.assertTrue(c["good-model"]["completion"], c)
        self.assertTrue(c["good-model"]["tool_call"], c)
        self.assertEqual(c["good-model"]["error"], "")
        self.assertTrue(c["texty-model"]["completion"], c)
        self.assertFalse(c["texty-model"]["tool_call"], c)
        self.assertIn("answered with text instead of calling get_time",
                      c["texty-model"]["error"])
        self.assertTrue(c["broken-model"]["completion"], c)
        self.assertFalse(c["broken-model"]["tool_call"], c)
        self.assertIn("arguments of get_time are not a JSON object", c["broken-model"]["error"])
        # What reached the server: the API's own paths, the real key, the tool round trip.
        new = self.srv.entries()[n0:]
        paths = [(e["method"], e["path"]) for e in new]
        self.assertIn(("GET", "/v1/models"), paths)
        chat = [e for e in new if e["path"] == "/v1/chat/completions"]
        self.assertTrue(chat)
        for e in chat:
            self.assertEqual(e["headers"].get("authorization"), "Bearer " + KEY)
        tool_results = [e for e in chat if e["body"]["model"] == "good-model" and
                        any(m.get("role") == "tool" for m in e["body"]["messages"])]
        self.assertEqual(len(tool_results), 1, tool_results)
        self.assertEqual(tool_results[0]["body"]["messages"][1]["tool_calls"][0]["function"]
                         ["name"], "get_time")
        # Stored and shown.
        code, again = api(self.d, "GET", "/api/v1/models/local", self.admin)
        self.assertEqual(code, 200, again)
        self.assertEqual(again["last_test"], ep["last_test"])
        # The audit record says has_key, never the key.
        code, doc = api(self.d, "GET", "/api/v1/audit?action=model.add", self.admin)
        self.assertEqual(code, 200, doc)
        rec = [e for e in doc["events"] if e["target"] == "model:local"]
        self.assertEqual(len(rec), 1, doc)
        self.assertEqual(rec[0]["result"], "ok")
        self.assertTrue(rec[0]["details"]["has_key"], rec)

    def test_2_anthropic_endpoint_added_through_the_cli_prints_the_self_test(self):
        key_file = os.path.join(self.tmp, "anthropic.key")
        with open(key_file, "w") as f:
            f.write(KEY2 + "\n")
        n0 = len(self.srv.entries())
        r = self.ctl("model", "add", "claude", "--api", "anthropic", "--url", self.srv.url,
                     "--key-file", key_file)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        self.assertIn("model endpoint claude added", out)
        self.assertIn("reachable; models listed: good-model, texty-model, broken-model", out)
        for col in ("MODEL", "COMPLETION", "TOOL CALLS", "LATENCY", "ERROR"):
            self.assertIn(col, out)
        rows = {line.split()[0]: line for line in out.splitlines()
                if line.startswith(("good-model", "texty-model", "broken-model"))}
        self.assertEqual(rows["good-model"].split()[1:3], ["yes", "yes"], out)
        self.assertEqual(rows["texty-model"].split()[1:3], ["yes", "no"], out)
        self.assertIn("instead of calling get_time", rows["texty-model"])
        self.assertEqual(rows["broken-model"].split()[1:3], ["yes", "no"], out)
        self.assertIn("input is not a JSON object", rows["broken-model"])
        new = self.srv.entries()[n0:]
        self.assertIn(("GET", "/v1/models"), [(e["method"], e["path"]) for e in new])
        msgs = [e for e in new if e["path"] == "/v1/messages"]
        self.assertTrue(msgs)
        for e in msgs:
            self.assertEqual(e["headers"].get("x-api-key"), KEY2)
            self.assertEqual(e["headers"].get("anthropic-version"), "2023-06-01")
        results = [e for e in msgs if e["body"]["model"] == "good-model" and any(
            isinstance(m["content"], list) and m["content"][0].get("type") == "tool_result"
            for m in e["body"]["messages"])]
        self.assertEqual(len(results), 1)
        # list shows both; test re-runs and stores a newer result
        r = self.ctl("model", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("claude", r.stdout)
        self.assertIn("completion 3/3, tools 1/3", r.stdout)
        code, before = api(self.d, "GET", "/api/v1/models/claude", self.admin)
        n1 = len(self.srv.entries())
        r = self.ctl("model", "test", "claude")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("TOOL CALLS", r.stdout)
        self.assertGreater(len(self.srv.entries()), n1)
        code, after = api(self.d, "GET", "/api/v1/models/claude", self.admin)
        self.assertGreater(after["last_test"]["time_ms"], before["last_test"]["time_ms"])
        code, doc = api(self.d, "GET", "/api/v1/audit?action=model.test", self.admin)
        self.assertTrue([e for e in doc["events"] if e["target"] == "model:claude"], doc)

    def test_3_unreachable_url_is_saved_with_the_reason(self):
        port = harness.free_port()
        code, ep = api(self.d, "POST", "/api/v1/models", self.admin,
                       {"name": "down", "api": "openai", "url": "http://127.0.0.1:%d/v1" % port})
        self.assertEqual(code, 201, ep)
        t = ep["last_test"]
        self.assertFalse(t["reachable"])
        self.assertIn("cannot reach http://127.0.0.1:%d/v1" % port, t["error"])
        self.assertIn("onnect", t["error"])  # "Couldn't connect to server"
        self.assertEqual(t["checks"], [])
        r = self.ctl("model", "show", "down")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("NOT reachable: cannot reach", r.stdout)
        r = self.ctl("model", "list")
        self.assertIn("unreachable", r.stdout)

    def test_3b_https_with_an_own_ca_needs_that_ca(self):
        tdir = os.path.join(self.tmp, "tls")
        os.makedirs(tdir, exist_ok=True)
        ca, cert, key = make_tls(tdir)
        srv = model_server.start(SCRIPT, os.path.join(self.tmp, "model-tls"), tls=(cert, key))
        try:
            self.assertTrue(srv.url.startswith("https://127.0.0.1:"))
            with open(ca) as f:
                ca_pem = f.read()
            with open(self.d.ca) as f:
                other_ca = f.read()
            code, ep = api(self.d, "POST", "/api/v1/models", self.admin,
                           {"name": "tls-own-ca", "api": "openai", "url": srv.url + "/v1",
                            "key": KEY, "ca_pem": ca_pem, "models": ["good-model"]})
            self.assertEqual(code, 201, ep)
            self.assertTrue(ep["has_ca"])
            self.assertNotIn("ca_pem", ep)
            self.assertTrue(ep["last_test"]["reachable"], ep["last_test"])
            self.assertTrue(checks(ep)["good-model"]["tool_call"], ep)
            for name, body in (("tls-system-ca", {}), ("tls-wrong-ca", {"ca_pem": other_ca})):
                code, ep = api(self.d, "POST", "/api/v1/models", self.admin,
                               dict({"name": name, "api": "openai", "url": srv.url + "/v1",
                                     "key": KEY}, **body))
                self.assertEqual(code, 201, ep)
                self.assertFalse(ep["last_test"]["reachable"], (name, ep))
                self.assertIn("certificate", ep["last_test"]["error"].lower(), (name, ep))
        finally:
            srv.stop()

    def test_3c_listing_404_is_fine_for_anthropic_and_a_hint_for_openai(self):
        srv = model_server.start(dict(SCRIPT, list_models=False),
                                 os.path.join(self.tmp, "model-nolist"))
        try:
            code, ep = api(self.d, "POST", "/api/v1/models", self.admin,
                           {"name": "nolist", "api": "anthropic", "url": srv.url,
                            "models": ["good-model"]})
            self.assertEqual(code, 201, ep)
            t = ep["last_test"]
            self.assertTrue(t["reachable"], t)
            self.assertEqual((t["error"], t["models_listed"]), ("", []))
            self.assertTrue(checks(ep)["good-model"]["tool_call"], ep)
            # Without --models there is nothing to test, and the result says so.
            code, ep = api(self.d, "POST", "/api/v1/models", self.admin,
                           {"name": "nolist-any", "api": "anthropic", "url": srv.url})
            self.assertEqual(code, 201, ep)
            self.assertIn("no model to test", ep["last_test"]["error"])
        finally:
            srv.stop()
        # An openai URL without /v1: the listing's 404 says what the URL should be.
        code, ep = api(self.d, "POST", "/api/v1/models", self.admin,
                       {"name": "no-v1", "api": "openai", "url": self.srv.url,
                        "models": ["good-model"]})
        self.assertEqual(code, 201, ep)
        t = ep["last_test"]
        self.assertTrue(t["reachable"])
        self.assertIn("listing models: HTTP 404", t["error"])
        self.assertIn("the base including /v1", t["error"])
        self.assertFalse(checks(ep)["good-model"]["completion"])
        self.assertIn("completion: HTTP 404", checks(ep)["good-model"]["error"])

    # ---- who may ----

    def test_4_member_lists_but_cannot_add_test_or_remove(self):
        self.add_openai("shared")
        code, doc = api(self.d, "GET", "/api/v1/models", self.member)
        self.assertEqual(code, 200, doc)
        names = [m["name"] for m in doc["models"]]
        self.assertIn("shared", names)
        for m in doc["models"]:
            self.assertNotIn("key", m)
        code, denied0 = api(self.d, "GET", "/api/v1/audit?action=model.add", self.admin)
        n_entries = len(self.srv.entries())
        code, doc = api(self.d, "POST", "/api/v1/models", self.member,
                        {"name": "mine", "api": "openai", "url": self.srv.url + "/v1"})
        self.assertEqual(code, 403, doc)
        self.assertIn("admin", doc["error"]["message"])
        code, doc = api(self.d, "POST", "/api/v1/models/shared/test", self.member)
        self.assertEqual(code, 403, doc)
        code, doc = api(self.d, "DELETE", "/api/v1/models/shared", self.member)
        self.assertEqual(code, 403, doc)
        r = self.ctl("model", "rm", "shared", home=self.member_home)
        self.assertEqual(r.returncode, 1)
        self.assertIn("HTTP 403", r.stderr)
        r = self.ctl("model", "list", home=self.member_home)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("shared", r.stdout)
        # nothing changed, nothing reached the model server, each refusal audited
        self.assertEqual(len(self.srv.entries()), n_entries)
        self.assertEqual(api(self.d, "GET", "/api/v1/models/mine", self.admin)[0], 404)
        self.assertEqual(api(self.d, "GET", "/api/v1/models/shared", self.admin)[0], 200)
        for action, n in (("model.add", 1), ("model.test", 1), ("model.rm", 2)):
            code, doc = api(self.d, "GET", "/api/v1/audit?action=" + action, self.admin)
            denied = [e for e in doc["events"] if e["result"] == "denied" and
                      e["actor"] == "user:mia"]
            self.assertEqual(len(denied), n, (action, doc))

    # ---- bad input ----

    def test_5_bad_input_is_400_and_stores_nothing(self):
        base = {"name": "bad", "api": "openai", "url": self.srv.url + "/v1"}
        cases = [
            ({"name": "Bad Name"}, "name:"),
            ({"name": "x" * 65}, "name:"),
            ({"api": "gemini"}, "api:"),
            ({"url": "ftp://h/v1"}, "scheme"),
            ({"url": "http://user:pw@127.0.0.1/v1"}, "no user or password"),
            ({"url": "http://127.0.0.1/v1?a=b"}, "query"),
            ({"url": "http://127.0.0.1:70000/v1"}, "port"),
            ({"models": ["ok", ""]}, "models:"),
            ({"models": ["m" * 129]}, "models:"),
            ({"models": "good-model"}, "models must be a list"),
            ({"key": "k" * 4097}, "key:"),
            ({"key": "sk-a\r\nX-Injected: 1"}, "key:"),
            ({"ca_pem": "not a certificate"}, "ca_pem:"),
            ({"extra": 1}, "expected"),
        ]
        for change, says in cases:
            body = dict(base, **change)
            code, doc = api(self.d, "POST", "/api/v1/models", self.admin, body)
            self.assertEqual(code, 400, (change, doc))
            self.assertIn(says, doc["error"]["message"], change)
        code, doc = api(self.d, "POST", "/api/v1/models", self.admin, raw="{not json")
        self.assertEqual(code, 400, doc)
        code, doc = api(self.d, "POST", "/api/v1/models", self.admin,
                        {"name": "bad", "url": self.srv.url})
        self.assertEqual(code, 400, doc)
        self.assertEqual(api(self.d, "GET", "/api/v1/models/bad", self.admin)[0], 404)
        code, doc = api(self.d, "GET", "/api/v1/models", self.admin)
        self.assertNotIn("bad", [m["name"] for m in doc["models"]])
        # the CLI refuses a missing key file before sending anything
        r = self.ctl("model", "add", "bad", "--api", "openai", "--url", self.srv.url + "/v1",
                     "--key-file", os.path.join(self.tmp, "no-such-file"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("cannot read the key", r.stderr)
        # a name that is taken is a conflict, not a replacement
        self.add_openai("taken")
        code, doc = api(self.d, "POST", "/api/v1/models", self.admin,
                        dict(base, name="taken", url="http://127.0.0.1:1/v1"))
        self.assertEqual(code, 409, doc)
        self.assertEqual(api(self.d, "GET", "/api/v1/models/taken", self.admin)[1]["url"],
                         self.srv.url + "/v1")

    def test_6_rm_removes(self):
        self.add_openai("gone")
        r = self.ctl("model", "rm", "gone")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("model endpoint gone removed", r.stdout)
        self.assertEqual(api(self.d, "GET", "/api/v1/models/gone", self.admin)[0], 404)
        r = self.ctl("model", "rm", "gone")
        self.assertEqual(r.returncode, 1)
        self.assertIn("HTTP 404", r.stderr)
        code, doc = api(self.d, "GET", "/api/v1/audit?action=model.rm", self.admin)
        rec = [e for e in doc["events"] if e["target"] == "model:gone" and e["result"] == "ok"]
        self.assertEqual(len(rec), 1, doc)
        self.assertTrue(rec[0]["details"]["has_key"], rec)

    def test_7_model_help_names_every_flag(self):
        a, b = self.ctl("help", "model"), self.ctl("model", "--help")
        self.assertEqual((a.returncode, b.returncode), (0, 0))
        self.assertEqual(a.stdout, b.stdout)
        for flag in ("--api openai|anthropic", "--url URL", "--key-file", "--ca FILE",
                     "--models m1,m2", "model list", "model test NAME", "model rm NAME"):
            self.assertIn(flag, a.stdout)
        self.assertIn("model add NAME", self.ctl("help").stdout)
        r = self.ctl("model", "add", "x")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--api openai|anthropic --url URL", r.stderr)

    # ---- the key stays inside ----

    def test_9_the_key_is_in_no_answer_no_audit_record_and_no_log(self):
        # Positive control: the keys were used (the server saw them), so their absence below
        # means something.
        seen = json.dumps(self.srv.entries())
        self.assertIn(KEY, seen)
        self.assertIn(KEY2, seen)
        code, doc = api(self.d, "GET", "/api/v1/models", self.admin)
        self.assertEqual(code, 200)
        self.assertGreaterEqual(len(self.answers), 20)
        for text in self.answers:
            self.assertNotIn(KEY, text)
            self.assertNotIn(KEY2, text)
        # The whole audit log, exported and read back.
        path = os.path.join(self.tmp, "audit.export")
        r = ctl(self.d, "audit", "export", "-o", path, home=self.home)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ctl(self.d, "audit", "show", "--all", path, home=self.home)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"model.add"', r.stdout)
        self.assertIn('"has_key":true', r.stdout.replace(" ", ""))
        self.assertNotIn(KEY, r.stdout)
        self.assertNotIn(KEY2, r.stdout)
        # airmeshd's log (it logged the adds, so it is the right log)
        log = self.d.log()
        self.assertIn("endpoint added", log)
        self.assertNotIn(KEY, log)
        self.assertNotIn(KEY2, log)
        # The raw audit segments too (their blocks are compressed, so this only adds a check
        # of the parts that are not: frames, seals).
        for root, _, files in os.walk(os.path.join(self.d.data, "audit")):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    data = fh.read()
                self.assertNotIn(KEY.encode(), data, f)
                self.assertNotIn(KEY2.encode(), data, f)


if __name__ == "__main__":
    unittest.main(verbosity=2)
