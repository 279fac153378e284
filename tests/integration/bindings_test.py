#!/usr/bin/python3
"""Pod bindings (issue 13) over REST and airmeshctl, against a real airmeshd and a real runner
with real pods:
  - same_creator: a binding between two pods of one starter is active at once; pods of two
    starters wait (pending) until the target's side accepts; "explicit" makes every binding wait;
  - who may: ann cannot bind ann's pod to ben's (she does not control it); an admin can request
    it, but then ann cannot accept for ben's pod (403, a denied record) and ben can; only a
    pending binding can be decided (409); either side ends it;
  - expiry makes a binding "expired" (and it can no longer be accepted);
  - a pod that ends ends its bindings (audited by system);
  - another org sees none of it (404 for every id, an empty list);
  - bad input is 400 with a clear error and changes nothing (no binding, no record);
  - every change is an audit event (binding.request / accept / reject / unbind,
    org.binding_policy) with the user as actor;
  - GET /api/v1/pods/{id}/snapshot: the pod's screen as text, escape sequences removed;
  - the CLI: binding request/list/accept/reject/end and org binding-policy.
"""
import json
import os
import shutil
import tempfile
import unittest

import harness
from harness import Daemon, api, token_login, wait_for

SCREEN = ("printf '\\033]0;a title\\007\\033[1;31mhello\\033[0m world\\r\\n"
          "step 1\\rstep 2 done\\r\\n'; exec sleep 600")


class BindingsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.guarded_setup(cls, cls._setup)

    @classmethod
    def _setup(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        cls.d = Daemon(os.path.join(cls.tmp, "airmesh")).wait_ready()
        pw = cls.d.read_password()
        cls.admin = token_login(cls.d, "admin", pw)
        cls.admin_home = harness.login(cls.d, pw)
        harness.api_runner_and_repo(cls, "airmesh-bindings-test-", "bindings", "--capacity", "12")
        cls.tok = {"admin": cls.admin}
        for name, role in (("ann", "member"), ("ben", "member")):
            pw = name + "-password-123"
            assert api(cls.d, "POST", "/api/v1/users", cls.admin,
                       {"name": name, "role": role, "password": pw})[0] == 201
            cls.tok[name] = token_login(cls.d, name, pw)
        code, doc = api(cls.d, "POST", "/api/v1/orgs", cls.admin,
                        {"id": "beta", "owner": "bob", "password": "bob-password-123"})
        assert code in (200, 201), doc
        cls.tok["bob"] = token_login(cls.d, "bob", "bob-password-123", org="beta")
        cls.home = {}
        for name in ("ann", "ben"):
            cls.home[name] = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
            r = harness.ctl(cls.d, "login", "--user", name, stdin=name + "-password-123\n",
                            home=cls.home[name])
            assert r.returncode == 0, r.stderr
        # ann starts a1 and a2, ben starts b1: each prints a screen with escapes, then sleeps
        cls.p = {"a1": cls.start_pod("ann"), "a2": cls.start_pod("ann"),
                 "b1": cls.start_pod("ben")}

    @classmethod
    def tearDownClass(cls):
        try:
            cls.runner.stop(timeout=30)
        finally:
            cls.d.stop()
        shutil.rmtree(cls.rtmp, ignore_errors=True)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- helpers ----

    def call(self, user, method, path, body=None):
        return api(self.d, method, path, self.tok[user], body)

    def ctl(self, user, *args):
        home = self.admin_home if user == "admin" else self.home[user]
        return harness.ctl(self.d, *args, home=home)

    @classmethod
    def start_pod(cls, user):
        code, p = api(cls.d, "POST", "/api/v1/pods", cls.tok[user],
                      {"repo": cls.repo, "command": ["sh", "-c", SCREEN]})
        assert code == 201, p
        wait_for(lambda: api(cls.d, "GET", f"/api/v1/pods/{p['id']}", cls.admin)[1].get("state")
                 == "running", 60, what="pod running")
        return p["id"]

    def pods(self):
        return self.p

    def request(self, user, frm, to, scopes, **extra):
        body = {"from_pod": frm, "to_pod": to, "scopes": scopes}
        body.update(extra)
        return self.call(user, "POST", "/api/v1/bindings", body)

    def binding(self, bid):
        code, doc = self.call("admin", "GET", "/api/v1/bindings")
        self.assertEqual(code, 200, doc)
        return {b["id"]: b for b in doc["bindings"]}.get(bid)

    def audit(self, action, target=None):
        code, doc = self.call("admin", "GET", f"/api/v1/audit?action={action}&limit=1000")
        self.assertEqual(code, 200, doc)
        return [e for e in doc["events"] if target is None or e["target"] == target]

    # ---- tests ----

    def test_same_creator_is_active_at_once_and_the_cli_lists_and_ends_it(self):
        p = self.pods()
        r = self.ctl("ann", "binding", "request", p["a1"], p["a2"], "--scopes", "read,write",
                     "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        b = json.loads(r.stdout)
        self.assertEqual((b["state"], b["scopes"], b["from_pod"], b["to_pod"]),
                         ("active", ["read", "write"], p["a1"], p["a2"]))
        self.assertEqual(b["created_by"], "user:ann")
        for k in ("id", "org_id", "created_ms", "expires_ms", "decided_by", "decided_ms",
                  "reason"):
            self.assertIn(k, b)
        r = self.ctl("ann", "binding", "list", "--pod", p["a2"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b["id"], r.stdout)
        self.assertIn("active", r.stdout)
        # the list filter: a pod with no bindings lists none
        code, doc = self.call("ann", "GET", f"/api/v1/bindings?pod={p['b1']}")
        self.assertEqual(code, 200, doc)
        self.assertNotIn(b["id"], [x["id"] for x in doc["bindings"]])
        r = self.ctl("ann", "binding", "end", b["id"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ended", r.stdout)
        self.assertEqual(self.binding(b["id"])["state"], "ended")
        # ending twice is a conflict with the reason
        code, doc = self.call("ann", "DELETE", f"/api/v1/bindings/{b['id']}")
        self.assertEqual(code, 409, doc)
        req = self.audit("binding.request", "binding:" + b["id"])
        self.assertEqual([(e["actor"], e["result"]) for e in req], [("user:ann", "ok")])
        self.assertEqual(req[0]["details"]["state"], "active")
        self.assertIn(("user:ann", "ok"), [(e["actor"], e["result"]) for e in
                                           self.audit("binding.unbind", "binding:" + b["id"])])

    def test_across_starters_it_waits_and_only_the_targets_side_decides(self):
        p = self.pods()
        # ann does not control ben's pod: she may not bind to it
        code, doc = self.request("ann", p["a1"], p["b1"], ["read"])
        self.assertEqual(code, 403, doc)
        self.assertIn("denied", [e["result"] for e in self.audit("binding.request")
                                 if e["actor"] == "user:ann"])
        # an admin controls both: pending (different starters)
        code, b = self.request("admin", p["a1"], p["b1"], ["read", "write"])
        self.assertEqual((code, b.get("state")), (201, "pending"), b)
        # ann (not ben's pod's starter) cannot accept for it: 403 and a denied record
        code, doc = self.call("ann", "POST", f"/api/v1/bindings/{b['id']}/accept")
        self.assertEqual(code, 403, doc)
        self.assertIn(("user:ann", "denied"),
                      [(e["actor"], e["result"]) for e in
                       self.audit("binding.accept", "binding:" + b["id"])])
        self.assertEqual(self.binding(b["id"])["state"], "pending")
        # ben, its starter, accepts (positive control)
        r = self.ctl("ben", "binding", "accept", b["id"])
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.binding(b["id"])
        self.assertEqual((got["state"], got["decided_by"]), ("active", "user:ben"))
        # only a pending binding can be decided
        code, doc = self.call("ben", "POST", f"/api/v1/bindings/{b['id']}/reject", {})
        self.assertEqual(code, 409, doc)
        # the same request again changes nothing (the live binding answers)
        code, same = self.request("admin", p["a1"], p["b1"], ["read"])
        self.assertEqual((code, same["id"], same["state"]), (201, b["id"], "active"), same)
        # a different one (here: with an expiry) replaces it and keeps its scopes
        code, b2 = self.request("admin", p["a1"], p["b1"], ["read"], ttl_s=3600)
        self.assertEqual((code, b2["state"], b2["scopes"]), (201, "pending", ["read", "write"]))
        self.assertEqual(self.binding(b["id"])["state"], "ended")
        self.assertIn(b2["id"], self.binding(b["id"])["reason"])
        # ben rejects it with a reason (the CLI)
        r = self.ctl("ben", "binding", "reject", b2["id"], "--reason", "not this week")
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.binding(b2["id"])
        self.assertEqual((got["state"], got["reason"]), ("rejected", "not this week"))
        rej = self.audit("binding.reject", "binding:" + b2["id"])
        self.assertEqual([(e["actor"], e["result"]) for e in rej], [("user:ben", "ok")])
        self.assertEqual(rej[0]["details"]["reason"], "not this week")

    def test_explicit_policy_makes_every_binding_wait(self):
        p = self.pods()
        code, doc = self.call("ann", "PUT", "/api/v1/orgs/default/binding-policy",
                              {"policy": "explicit"})
        self.assertEqual(code, 403, doc)
        r = self.ctl("admin", "org", "binding-policy", "default", "explicit")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("explicit", r.stdout)
        try:
            code, b = self.request("ann", p["a2"], p["a1"], ["read"])
            self.assertEqual((code, b.get("state")), (201, "pending"), b)
            code, doc = self.call("ann", "POST", f"/api/v1/bindings/{b['id']}/accept")
            self.assertEqual((code, doc.get("state")), (200, "active"), doc)
        finally:
            r = self.ctl("admin", "org", "binding-policy", "default", "same_creator")
            self.assertEqual(r.returncode, 0, r.stderr)
        code, doc = self.call("ann", "GET", "/api/v1/orgs/default/binding-policy")
        self.assertEqual((code, doc.get("policy")), (200, "same_creator"), doc)
        pol = self.audit("org.binding_policy")
        self.assertEqual([e["details"]["policy"] for e in pol if e["result"] == "ok"],
                         ["explicit", "same_creator"])
        self.assertIn(("user:ann", "denied"), [(e["actor"], e["result"]) for e in pol])

    def test_expiry_makes_a_binding_expired(self):
        p = self.pods()
        code, b = self.request("admin", p["b1"], p["a2"], ["read"], ttl_s=1)
        self.assertEqual((code, b.get("state")), (201, "pending"), b)
        self.assertGreater(b["expires_ms"], b["created_ms"])
        wait_for(lambda: self.binding(b["id"])["state"] == "expired", 30, what="expired")
        code, doc = self.call("ann", "POST", f"/api/v1/bindings/{b['id']}/accept")
        self.assertEqual(code, 409, doc)
        self.assertIn("expired", doc["error"]["message"])

    def test_other_org_sees_nothing(self):
        p = self.pods()
        code, b = self.request("ann", p["a1"], p["a2"], ["read"])
        self.assertEqual(code, 201, b)
        code, doc = self.call("bob", "GET", "/api/v1/bindings")
        self.assertEqual((code, doc.get("bindings")), (200, []), doc)
        self.assertEqual(self.request("bob", p["a1"], p["a2"], ["read"])[0], 404)
        for method, path in (("POST", f"/api/v1/bindings/{b['id']}/accept"),
                             ("POST", f"/api/v1/bindings/{b['id']}/reject"),
                             ("DELETE", f"/api/v1/bindings/{b['id']}"),
                             ("GET", f"/api/v1/pods/{p['a1']}/snapshot"),
                             ("GET", "/api/v1/orgs/default/binding-policy")):
            self.assertEqual(self.call("bob", method, path)[0], 404, (method, path))
        self.assertEqual(self.call("bob", "PUT", "/api/v1/orgs/default/binding-policy",
                                   {"policy": "explicit"})[0], 404)
        self.assertEqual(self.binding(b["id"])["state"], "active")

    def test_bad_input_is_400_and_changes_nothing(self):
        p = self.pods()
        before = len(self.call("admin", "GET", "/api/v1/bindings")[1]["bindings"])
        records = len(self.audit("binding.request"))
        bad = [{"from_pod": p["a1"], "to_pod": p["a2"]},
               {"from_pod": p["a1"], "to_pod": p["a2"], "scopes": []},
               {"from_pod": p["a1"], "to_pod": p["a2"], "scopes": ["admin"]},
               {"from_pod": p["a1"], "to_pod": p["a2"], "scopes": ["read", "read"]},
               {"from_pod": p["a1"], "to_pod": p["a2"], "scopes": "read"},
               {"from_pod": p["a1"], "to_pod": p["a1"], "scopes": ["read"]},
               {"from_pod": p["a1"], "to_pod": p["a2"], "scopes": ["read"], "ttl_s": -5},
               {"from_pod": p["a1"], "to_pod": p["a2"], "scopes": ["read"], "extra": 1},
               {"from_pod": 7, "to_pod": p["a2"], "scopes": ["read"]}]
        for body in bad:
            code, doc = self.call("ann", "POST", "/api/v1/bindings", body)
            self.assertEqual(code, 400, (body, doc))
            self.assertTrue(doc["error"]["message"], doc)
        code, _, _, text = harness.curl(self.d, "/api/v1/bindings", "-X", "POST", "-H",
                                        "Authorization: Bearer " + self.tok["ann"], "-H",
                                        "Content-Type: application/json", "--data", "{nope")
        self.assertEqual(code, 400, text)
        code, doc = self.call("admin", "PUT", "/api/v1/orgs/default/binding-policy",
                              {"policy": "sometimes"})
        self.assertEqual(code, 400, doc)
        code, doc = self.call("admin", "GET", f"/api/v1/pods/{p['a1']}/snapshot?lines=0")
        self.assertEqual(code, 400, doc)
        r = self.ctl("ann", "binding", "request", p["a1"], p["a2"], "--scopes", "read",
                     "--ttl", "forever")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(self.call("admin", "GET", "/api/v1/bindings")[1]["bindings"]),
                         before)
        self.assertEqual(len(self.audit("binding.request")), records)
        self.assertEqual(self.call("ann", "POST", "/api/v1/bindings/b-000000000000/accept")[0],
                         404)

    def test_snapshot_is_the_screen_as_text(self):
        p = self.pods()
        def text():
            code, doc = self.call("ben", "GET", f"/api/v1/pods/{p['a1']}/snapshot?lines=20")
            self.assertEqual(code, 200, doc)
            return doc["text"]
        try:
            wait_for(lambda: "hello world" in text(), 30, what="the pod's output")
        except AssertionError:
            raise AssertionError("snapshot: %r" % text())
        t = text()
        self.assertEqual(t.splitlines()[-2:], ["hello world", "step 2 done"], t)
        self.assertNotIn("\x1b", t)
        self.assertNotIn("a title", t)

    def test_zz_a_pod_that_ends_ends_its_bindings(self):
        p = self.pods()
        c = self.start_pod("ann")
        code, b = self.request("ann", p["a1"], c, ["write"])
        self.assertEqual((code, b.get("state")), (201, "active"), b)
        code, doc = self.call("ann", "POST", f"/api/v1/pods/{c}/stop", {})
        self.assertIn(code, (200, 202), doc)
        wait_for(lambda: self.binding(b["id"])["state"] == "ended", 60, what="binding ended")
        got = self.binding(b["id"])
        self.assertIn("ended", got["reason"])
        self.assertEqual(got["decided_by"], "system")
        self.assertIn("system", [e["actor"] for e in
                                 self.audit("binding.unbind", "binding:" + b["id"])])
        # an ended pod takes no new bindings
        code, doc = self.request("ann", p["a1"], c, ["read"])
        self.assertEqual(code, 409, doc)


if __name__ == "__main__":
    unittest.main(verbosity=2)
