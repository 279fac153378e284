#!/usr/bin/python3
"""Integration tests for an org's pod limit policy ("Limits by default", issue 9).

A real airmeshd and runner. Org "default" (the bootstrap admin's) gets a policy through
`PUT /api/v1/orgs/default/pod-limits` and `airmeshctl org limits`; pods created through the API
then carry the org's defaults (or the appliance's, capped at the org's max) in their record's
`limits`, which is what the runner was told to apply; a request above a max is 400 naming the
limit. A member cannot change the policy (403, audited as denied); bad input is 400 and changes
nothing; another org's policy is 404.
"""
import json
import os
import subprocess
import tempfile
import unittest
import urllib.parse

import harness
from harness import Daemon, api, ctl, login, token_login, wait_for

G = 1 << 30
M = 1 << 20


LIMITS = "/api/v1/orgs/default/pod-limits"


class OrgLimitsTest(unittest.TestCase):
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
        code, tok = api(d, "POST", "/api/v1/runner-tokens", a, {"ttl": "10m"})
        assert code == 201, tok
        harness.enroll_runner(cls, "airmesh-orglimits-test-", tok["token"], tok["ca_sha256"])
        cls.runner_id = cls.runner.runner_id()
        wait_for(lambda: api(d, "GET", "/api/v1/runners/" + cls.runner_id, a)[1].get("state") ==
                 "online", 30, what="runner online")
        cls.repo = os.path.join(cls.tmp, "repo")
        subprocess.run(["git", "init", "-q", "-b", "main", cls.repo], check=True)
        subprocess.run(["git", "-C", cls.repo, "-c", "user.email=t@x", "-c", "user.name=t",
                        "commit", "-q", "--allow-empty", "-m", "init"], check=True)
        assert api(d, "POST", "/api/v1/users", a, {"name": "mia", "role": "member",
                                                   "password": "mia-password-123"})[0] == 201
        cls.member = token_login(d, "mia", "mia-password-123")
        cls.pods = []

    @classmethod
    def tearDownClass(cls):
        for p in cls.pods:
            api(cls.d, "POST", "/api/v1/pods/%s/stop" % p, cls.admin)
        try:
            cls.runner.stop(timeout=30)
        finally:
            cls.d.stop()
        import shutil
        shutil.rmtree(cls.rtmp, ignore_errors=True)

    def policy(self):
        code, doc = api(self.d, "GET", LIMITS, self.member)  # any role of the org may read it
        self.assertEqual(code, 200, doc)
        return {"defaults": doc["defaults"], "max": doc["max"]}

    def set_policy(self, body):
        code, doc = api(self.d, "PUT", LIMITS, self.admin, body)
        self.assertEqual(code, 200, doc)
        return doc

    def create(self, limits=None):
        body = {"repo": self.repo, "command": ["sleep", "300"]}
        if limits is not None:
            body["limits"] = limits
        code, pod = api(self.d, "POST", "/api/v1/pods", self.member, body)
        if code == 201:
            self.pods.append(pod["id"])
            # Ended at once (its record keeps its limits), so the runner's slots never run out.
            api(self.d, "POST", "/api/v1/pods/%s/stop" % pod["id"], self.admin)
            wait_for(lambda: api(self.d, "GET", "/api/v1/pods/" + pod["id"], self.admin)[1].get(
                "state") in ("stopped", "exited", "failed"), 60, what="pod ended")
        return code, pod

    def pod_limits(self, pod_id):
        code, p = api(self.d, "GET", "/api/v1/pods/" + pod_id, self.admin)
        self.assertEqual(code, 200, p)
        return p["limits"]

    def audit(self, result):
        q = urllib.parse.urlencode({"action": "org.limits"})
        code, doc = api(self.d, "GET", "/api/v1/audit?" + q, self.admin)
        self.assertEqual(code, 200, doc)
        return [e for e in doc["events"] if e["result"] == result]

    def test_1_defaults_and_max_reach_the_pod_record(self):
        # Positive control: with no policy the appliance defaults (config pod_*) apply, and a
        # request above what the policy will allow is accepted.
        self.set_policy({})
        code, pod = self.create()
        self.assertEqual(code, 201, pod)
        lim = self.pod_limits(pod["id"])
        self.assertEqual(lim["memory"], 2 * G)
        self.assertEqual(lim["cpu_millis"], 2000)
        code, pod = self.create({"memory": "3G"})
        self.assertEqual(code, 201, pod)

        doc = self.set_policy({
            "defaults": {"memory": "1G", "pids": 300, "tmp": "128M", "shm": "32M",
                         "workspace": "512M"},
            "max": {"memory": "2G", "cpu": 1}})
        self.assertEqual(doc["defaults"]["memory"], G)
        self.assertEqual(self.policy()["max"], {"memory": 2 * G, "cpu": 1.0})
        code, pod = self.create()
        self.assertEqual(code, 201, pod)
        lim = self.pod_limits(pod["id"])
        self.assertEqual(lim["memory"], G)            # the org default
        self.assertEqual(lim["pids"], 300)
        self.assertEqual(lim["tmp"], 128 * M)
        self.assertEqual(lim["shm"], 32 * M)
        self.assertEqual(lim["workspace"], 512 * M)
        self.assertEqual(lim["cpu_millis"], 1000)     # the appliance's 2 cores, capped at the max
        code, pod = self.create({"memory": "2G", "cpu": 0.5})  # at/below the max: allowed
        self.assertEqual(code, 201, pod)
        self.assertEqual(self.pod_limits(pod["id"])["memory"], 2 * G)
        self.assertEqual(self.pod_limits(pod["id"])["cpu_millis"], 500)
        # Above the max: refused, naming the limit.
        for lim, name in (({"memory": "3G"}, "limits.memory"), ({"cpu": 2}, "limits.cpu")):
            code, doc = self.create(lim)
            self.assertEqual(code, 400, doc)
            self.assertIn(name, json.dumps(doc))
        self.assertTrue(self.audit("ok"))

    def test_2_member_is_refused_and_audited(self):
        self.set_policy({"max": {"memory": "4G"}})
        before = self.policy()
        denied0 = len(self.audit("denied"))
        code, doc = api(self.d, "PUT", LIMITS, self.member, {"max": {"memory": "64G"}})
        self.assertEqual(code, 403, doc)
        self.assertEqual(self.policy(), before)
        self.assertEqual(len(self.audit("denied")), denied0 + 1)

    def test_3_bad_input_is_400_and_changes_nothing(self):
        self.set_policy({"defaults": {"memory": "1G"}, "max": {"memory": "4G"}})
        before = self.policy()
        ok0 = len(self.audit("ok"))
        for body in ({"defaults": {"memory": "lots"}}, {"defaults": {"memory": -5}},
                     {"defaults": {"pids": -1}}, {"max": {"cpu": -1}},
                     {"defaults": {"memory": "8G"}, "max": {"memory": "4G"}},
                     {"defaults": {"memory": "1K"}}, {"defaults": {"swap": "1G"}},
                     {"limits": {}}, {"max": "4G"}):
            code, doc = api(self.d, "PUT", LIMITS, self.admin, body)
            self.assertEqual(code, 400, (body, doc))
        code, doc = api(self.d, "PUT", LIMITS, self.admin,
                        {"defaults": {"memory": "8G"}, "max": {"memory": "4G"}})
        self.assertIn("defaults.memory", doc.get("message", json.dumps(doc)))
        self.assertEqual(self.policy(), before)
        self.assertEqual(len(self.audit("ok")), ok0)
        # Another org's policy looks like no org at all.
        self.assertEqual(api(self.d, "GET", "/api/v1/orgs/nosuch/pod-limits", self.admin)[0], 404)
        self.assertEqual(api(self.d, "PUT", "/api/v1/orgs/nosuch/pod-limits", self.admin,
                             {})[0], 404)

    def test_4_cli_shows_and_changes_the_policy(self):
        self.set_policy({"max": {"cpu": 4}})
        home = login(self.d, self.admin_pw)
        r = ctl(self.d, "org", "limits", "default", "--default-memory", "1536M",
                "--max-memory", "6G", "--default-cpu", "0.5", home=home)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"memory\s+1536M\s+6G")
        self.assertRegex(r.stdout, r"cpu\s+0.5\s+4")   # the max set before is kept
        self.assertEqual(self.policy(), {"defaults": {"memory": 1536 * M, "cpu": 0.5},
                                         "max": {"memory": 6 * G, "cpu": 4.0}})
        r = ctl(self.d, "org", "limits", home=home)    # the logged-in org
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"memory\s+1536M\s+6G")
        # Bad values: the appliance's message, non-zero exit, nothing changed.
        r = ctl(self.d, "org", "limits", "default", "--max-memory", "1G", home=home)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("defaults.memory", r.stderr)
        r = ctl(self.d, "org", "limits", "default", "--default-pids", "many", home=home)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(self.policy()["max"]["memory"], 6 * G)
        # Remove one.
        r = ctl(self.d, "org", "limits", "default", "--default-cpu", "none", home=home)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("cpu", self.policy()["defaults"])
        code, pod = self.create()
        self.assertEqual(code, 201, pod)
        self.assertEqual(self.pod_limits(pod["id"])["memory"], 1536 * M)


if __name__ == "__main__":
    unittest.main(verbosity=2)
