#!/usr/bin/python3
"""Integration tests for organizations, users, roles, API tokens and isolation.

A real airmeshd and runner: org "default" (the bootstrap admin's) holds a runner, an unused
enrollment token, a running pod, a user and a team. A second org is created through the API,
and a user of every role in it gets 404 — never 403 — for each of org A's resources. Also: a
viewer cannot create or stop pods, disabling a user ends their sessions at once, repeated
failed logins lock an account with backoff, API tokens act with their (lower) role and die when
revoked, roles cannot be raised above one's own, and refusals are audit events.
"""
import json
import os
import subprocess
import tempfile
import unittest

import harness
from harness import Daemon, Runner, api, ctl, curl, login, token_login, wait_for


class TenancyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.guarded_setup(cls, cls._setup)

    @classmethod
    def _setup(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        cls.d = Daemon(os.path.join(cls.tmp, "airmesh")).wait_ready()
        cls.admin_pw = cls.d.read_password()
        cls.admin = token_login(cls.d, "admin", cls.admin_pw)
        d, a = cls.d, cls.admin
        # Org A ("default"): a runner, an unused token, a pod, a user, a team.
        code, tok = api(d, "POST", "/api/v1/runner-tokens", a, {"ttl": "10m"})
        cls.token_id = tok["id"]
        code, tok2 = api(d, "POST", "/api/v1/runner-tokens", a, {"ttl": "10m"})
        harness.enroll_runner(cls, "airmesh-tenancy-test-", tok2["token"], tok2["ca_sha256"])
        cls.runner_id = cls.runner.runner_id()
        # A second runner, enrolled but never started: the target of the revoke probes (the
        # owner's positive control revokes it for real).
        code, tok3 = api(d, "POST", "/api/v1/runner-tokens", a, {"ttl": "10m"})
        idle = os.path.join(cls.rtmp, "idle-runner")
        Runner.enroll(d, tok3["token"], tok3["ca_sha256"], idle)
        cls.idle_runner_id = json.loads(harness.read(os.path.join(idle, "runner.json")))[
            "runner_id"]
        wait_for(lambda: api(d, "GET", "/api/v1/runners/" + cls.runner_id, a)[1].get("state") ==
                 "online", 30, what="runner online")
        cls.repo = os.path.join(cls.tmp, "repo")
        subprocess.run(["git", "init", "-q", "-b", "main", cls.repo], check=True)
        subprocess.run(["git", "-C", cls.repo, "-c", "user.email=t@x", "-c", "user.name=t",
                        "commit", "-q", "--allow-empty", "-m", "init"], check=True)
        code, pod = api(d, "POST", "/api/v1/pods", a, {"repo": cls.repo,
                                                       "command": ["sleep", "300"]})
        assert code == 201, pod
        cls.pod_id = pod["id"]
        # An ended pod whose recording is uploaded: the owner can download it, so a 404 for
        # another org means isolation, not "no recording yet".
        code, pod = api(d, "POST", "/api/v1/pods", a, {"repo": cls.repo, "command": [
            "sh", "-c", "echo tenancy-recorded-out''put"]})
        assert code == 201, pod
        cls.ended_id = pod["id"]
        wait_for(lambda: (lambda p: p["state"] == "exited" and p["recording"])(
            api(d, "GET", "/api/v1/pods/" + cls.ended_id, a)[1]), 60, what="recording uploaded")
        assert api(d, "POST", "/api/v1/users", a, {"name": "alice", "role": "member",
                                                   "password": "alice-password-1"})[0] == 201
        assert api(d, "POST", "/api/v1/teams", a, {"name": "core"})[0] == 201
        # Dedicated targets for the destructive probes (the owner's controls use them for real).
        assert api(d, "POST", "/api/v1/users", a, {"name": "zed", "role": "member",
                                                   "password": "zed-password-123"})[0] == 201
        assert api(d, "POST", "/api/v1/teams", a, {"name": "zteam"})[0] == 201
        # Org B with its owner, and one user of each other role.
        code, org = api(d, "POST", "/api/v1/orgs", a, {"id": "beta", "owner": "bob",
                                                       "password": "bob-password-123"})
        assert code == 201, org
        cls.b = {"owner": token_login(d, "bob", "bob-password-123", "beta")}
        for role in ("admin", "member", "viewer"):
            code, u = api(d, "POST", "/api/v1/users", cls.b["owner"],
                          {"name": "b-" + role, "role": role, "password": role + "-password-12"})
            assert code == 201, u
            cls.b[role] = token_login(d, "b-" + role, role + "-password-12", "beta")

    @classmethod
    def tearDownClass(cls):
        api(cls.d, "POST", "/api/v1/pods/%s/stop" % cls.pod_id, cls.admin)
        # Exit 0 and no sanitizer report for both, or this raises (harness).
        try:
            cls.runner.stop(timeout=30)
        finally:
            cls.d.stop()
        import shutil
        shutil.rmtree(cls.rtmp, ignore_errors=True)

    def test_other_org_gets_404_for_every_resource_in_every_role(self):
        d = self.d
        # (method, path, the same path with an id that exists nowhere, the owner's answer).
        # The owner's answers are the positive control: each probe names something real that
        # the request reaches for its own org; the destructive ones run last, on dedicated
        # targets (an enrolled runner that never ran, an unused token, an ended pod, zed, zteam).
        rid, tid, pid = self.runner_id, self.token_id, self.ended_id
        probes = [
            ("GET", "/api/v1/runners/" + rid, "/api/v1/runners/r-0000000000000000", 200),
            ("GET", "/api/v1/pods/" + pid, "/api/v1/pods/p-000000000000", 200),
            ("GET", "/api/v1/pods/%s/recording" % pid, "/api/v1/pods/p-000000000000/recording",
             200),
            ("GET", "/api/v1/pods/" + self.pod_id, "/api/v1/pods/p-000000000000", 200),
            ("GET", "/api/v1/users/alice", "/api/v1/users/nobody-here", 200),
            ("POST", "/api/v1/teams/zteam/members", "/api/v1/teams/no-team/members", 400),
            ("POST", "/api/v1/pods/%s/stop" % pid, "/api/v1/pods/p-000000000000/stop", 202),
            ("POST", "/api/v1/runners/%s/revoke" % self.idle_runner_id,
             "/api/v1/runners/r-0000000000000000/revoke", 200),
            ("POST", "/api/v1/runner-tokens/%s/revoke" % tid,
             "/api/v1/runner-tokens/t-0000000000000000/revoke", 200),
            ("POST", "/api/v1/users/zed/disable", "/api/v1/users/nobody-here/disable", 200),
            ("DELETE", "/api/v1/users/zed", "/api/v1/users/nobody-here", 200),
            ("DELETE", "/api/v1/teams/zteam", "/api/v1/teams/no-team", 200),
            ("DELETE", "/api/v1/pods/" + pid, "/api/v1/pods/p-000000000000", 200),
        ]

        def call(method, path, tok):
            return api(d, method, path, tok, {} if method == "POST" else None)

        for role, tok in self.b.items():
            for method, path, unknown, _ in probes:
                code, doc = call(method, path, tok)
                # Indistinguishable from a resource that does not exist: same status, same
                # error code and message.
                ucode, udoc = call(method, unknown, tok)
                self.assertEqual((ucode, udoc.get("error", {}).get("code")), (404, "not_found"),
                                 f"{role} {method} {unknown}: {udoc}")
                self.assertEqual((code, doc.get("error")), (ucode, udoc.get("error")),
                                 f"{role} {method} {path}")
            # Lists never show org A's things.
            self.assertEqual(api(d, "GET", "/api/v1/runners", tok)[1]["runners"], [])
            self.assertEqual(api(d, "GET", "/api/v1/pods", tok)[1]["pods"], [])
            names = {u["id"] for u in api(d, "GET", "/api/v1/users", tok)[1]["users"]}
            self.assertNotIn("alice", names)
        # ...and org A's things are untouched: the running pod runs, and every probe reaches
        # a real thing for org A's owner (the positive control), in this order.
        self.assertEqual(api(d, "GET", "/api/v1/pods/" + self.pod_id, self.admin)[1]["state"],
                         "running")
        for method, path, _, want in probes:
            if path.endswith("/recording"):
                code, _, _, body = curl(d, path, "-H", "Authorization: Bearer " + self.admin)
                self.assertEqual(code, 200, body)
                self.assertIn("tenancy-recorded-output", body)
                continue
            code, doc = call(method, path, self.admin)
            self.assertEqual(code, want, f"owner {method} {path}: {doc}")

    def test_viewer_cannot_create_or_stop_pods(self):
        d = self.d
        api(d, "POST", "/api/v1/users", self.admin, {"name": "vera", "role": "viewer",
                                                     "password": "vera-password-1"})
        v = token_login(d, "vera", "vera-password-1")
        self.assertEqual(api(d, "GET", "/api/v1/pods/" + self.pod_id, v)[0], 200)
        self.assertEqual(api(d, "POST", "/api/v1/pods", v, {"repo": self.repo,
                                                           "command": ["true"]})[0], 403)
        self.assertEqual(api(d, "POST", "/api/v1/pods/%s/stop" % self.pod_id, v, {})[0], 403)
        self.assertEqual(api(d, "POST", "/api/v1/runner-tokens", v, {})[0], 403)
        self.assertEqual(api(d, "GET", "/api/v1/pods/" + self.pod_id, self.admin)[1]["state"],
                         "running")

    def test_disabling_a_user_ends_their_sessions_at_once(self):
        d = self.d
        api(d, "POST", "/api/v1/users", self.admin, {"name": "dave", "role": "member",
                                                     "password": "dave-password-1"})
        t = token_login(d, "dave", "dave-password-1")
        self.assertEqual(api(d, "GET", "/api/v1/whoami", t)[0], 200)
        self.assertEqual(api(d, "POST", "/api/v1/users/dave/disable", self.admin, {})[0], 200)
        self.assertEqual(api(d, "GET", "/api/v1/whoami", t)[0], 401)
        code, _ = api(d, "POST", "/api/v1/login", body={"user": "dave",
                                                      "password": "dave-password-1"})
        self.assertEqual(code, 401)
        self.assertEqual(api(d, "POST", "/api/v1/users/dave/enable", self.admin, {})[0], 200)
        token_login(d, "dave", "dave-password-1")

    def test_repeated_failed_logins_lock_the_account(self):
        d = self.d
        api(d, "POST", "/api/v1/users", self.admin, {"name": "lena", "role": "member",
                                                     "password": "lena-password-1"})
        for _ in range(5):
            code, _ = api(d, "POST", "/api/v1/login", body={"user": "lena", "password": "nope"})
            self.assertEqual(code, 401)
        code, doc = api(d, "POST", "/api/v1/login", body={"user": "lena",
                                                         "password": "lena-password-1"})
        self.assertEqual(code, 429, doc)
        self.assertIn("try again", doc["error"]["message"])
        # An admin resetting the password clears the lock.
        self.assertEqual(api(d, "POST", "/api/v1/users/lena/password", self.admin,
                             {"password": "lena-password-2"})[0], 200)
        token_login(d, "lena", "lena-password-2")

    def test_api_token_acts_with_its_role_and_dies_when_revoked(self):
        d = self.d
        code, t = api(d, "POST", "/api/v1/api-tokens", self.admin, {"name": "ci", "role": "viewer",
                                                                   "ttl": "1d"})
        self.assertEqual(code, 201, t)
        tok = t["token"]
        self.assertEqual(api(d, "GET", "/api/v1/pods", tok)[0], 200)
        self.assertEqual(api(d, "POST", "/api/v1/pods", tok, {"repo": self.repo,
                                                             "command": ["true"]})[0], 403)
        self.assertEqual(api(d, "GET", "/api/v1/whoami", tok)[1]["role_name"], "viewer")
        # airmeshctl works with it through AIRMESH_TOKEN.
        r = ctl(d, "pod", "list", env_extra={"AIRMESH_TOKEN": tok})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(self.pod_id, r.stdout)
        self.assertEqual(api(d, "DELETE", "/api/v1/api-tokens/" + t["id"], self.admin)[0], 200)
        self.assertEqual(api(d, "GET", "/api/v1/pods", tok)[0], 401)
        # A token can never carry more than its user's role.
        m = token_login(d, "alice", "alice-password-1")
        self.assertEqual(api(d, "POST", "/api/v1/api-tokens", m, {"role": "owner"})[0], 400)

    def test_roles_cannot_be_raised_above_ones_own(self):
        d, b = self.d, self.b
        self.assertEqual(api(d, "POST", "/api/v1/users", b["admin"],
                             {"name": "b-boss", "role": "owner"})[0], 403)
        self.assertEqual(api(d, "POST", "/api/v1/users", b["member"],
                             {"name": "b-x", "role": "viewer"})[0], 403)
        self.assertEqual(api(d, "POST", "/api/v1/users/bob/disable", b["admin"], {})[0], 403)
        self.assertEqual(api(d, "POST", "/api/v1/orgs", b["owner"],
                             {"id": "gamma", "owner": "g"})[0], 403)
        # Refusals are audit events, visible to the org's owner.
        code, doc = api(d, "GET", "/api/v1/audit?action=user.create", b["owner"])
        self.assertEqual(code, 200, doc)
        self.assertIn("denied", {e["result"] for e in doc["events"]})

    def test_own_password_change_needs_the_current_one_and_ends_sessions(self):
        d = self.d
        api(d, "POST", "/api/v1/users", self.admin, {"name": "paul", "role": "member",
                                                     "password": "paul-password-1"})
        t = token_login(d, "paul", "paul-password-1")
        self.assertEqual(api(d, "POST", "/api/v1/users/paul/password", t,
                             {"password": "paul-password-2"})[0], 403)
        self.assertEqual(api(d, "POST", "/api/v1/users/paul/password", t,
                             {"password": "short", "current_password": "paul-password-1"})[0],
                         400)
        self.assertEqual(api(d, "POST", "/api/v1/users/paul/password", t,
                             {"password": "paul-password-2",
                              "current_password": "paul-password-1"})[0], 200)
        self.assertEqual(api(d, "GET", "/api/v1/whoami", t)[0], 401)
        token_login(d, "paul", "paul-password-2")

    def test_ctl_manages_users_and_teams(self):
        home = login(self.d, self.admin_pw)
        pwf = os.path.join(self.tmp, "pw")
        with open(pwf, "w") as f:
            f.write("carol-password-1\n")
        r = ctl(self.d, "user", "create", "carol", "--role", "viewer", "--password-file", pwf,
                home=home)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ctl(self.d, "user", "list", home=home)
        self.assertRegex(r.stdout, r"carol\s+viewer")
        self.assertEqual(ctl(self.d, "team", "add", "core", "carol", home=home).returncode, 0)
        self.assertIn("carol", ctl(self.d, "team", "list", home=home).stdout)
        r = ctl(self.d, "api-token", "create", "--name", "bot", "--role", "member", home=home)
        self.assertRegex(r.stdout, r"token: am_[0-9a-f]{64}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
