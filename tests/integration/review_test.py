#!/usr/bin/python3
"""Review of a pod's branch (issue 13), end to end against a real airmeshd and a real enrolled
runner whose pods commit with git inside their sandbox:

  - GET /api/v1/pods/{id}/review of an ended pod: its commit and the diff's lines, computed by
    the runner from its mirror (head_commit = the mirror's branch), the counts, the cut at
    max_bytes; `airmeshctl pod diff` prints the same patch;
  - a RUNNING pod's review shows what it committed so far (the runner fetches it back first);
    line comments arrive in its terminal as ONE bracketed paste naming file:line (REST and
    `airmeshctl pod review --comment`), audited pod.review.comment;
  - comments on an ENDED pod start a NEW pod on the same branch (continue_branch): it sees the
    first pod's files and commit, gets the comments as its prompt, and its own review shows the
    whole branch against the original base;
  - approve pushes to an authenticated HTTP remote (git http-backend behind basic auth,
    tests/integration/githttp.py): the remote's branch equals pushed_commit and the server saw
    the runner's user; positive control: a push without credentials is refused by that server;
  - the runner's credential (positive control: it is in the runner's credentials file) is in no
    pod's environment or visible file (the pod searches its own filesystem; positive control:
    the same search finds a canary in the repo), its terminal output, recording, the audit log,
    any API answer, or the runner's and airmeshd's logs;
  - without credentials for the remote approve marks the pod ready (read_only);
  - another org's user gets 404, a viewer may read but not comment or approve, another member
    may not approve a pod they did not start;
  - with the runner offline the review is a clear 503 at once.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import harness
from harness import Daemon, Runner, api, ctl, git, token_login, wait_for

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import githttp  # noqa: E402

SECRET = "s3cr3t-Runner-Credential-7f1e9a"
CANARY = "canary-in-the-repo-4b2d"

# What every pod runs (python3 -c POD ARG): commit (unless it continues an earlier pod's work),
# optionally search its own filesystem for a string, then optionally read pastes.
POD = r"""
import os, subprocess, sys, tty
mode = sys.argv[1]
def git(*a):
    subprocess.run(["git", "-c", "user.email=p@x", "-c", "user.name=pod", *a], check=True)
if os.path.exists("added.txt"):
    log = subprocess.run(["git", "log", "--format=%s"], capture_output=True, text=True).stdout
    print("CONTINUED:" + log.replace("\n", ","), flush=True)
    mode = "read1"
else:
    with open("README", "a") as f:
        f.write("new line\n")
    with open("added.txt", "w") as f:
        f.write("hello\n")
    git("add", "-A")
    git("commit", "-qm", "add greeting")
    print("COMMITTED", flush=True)
if mode.startswith("search:"):
    needles = [bytes.fromhex(h).decode() for h in mode[7:].split(",")]  # never in argv as is
    env = "\n".join("%s=%s" % kv for kv in os.environ.items())
    for n in needles:
        if n in env:
            print("FOUND-ENV:" + n[:6], flush=True)
    for top in ("/workspace", "/home", "/tmp", "/etc", "/run", "/opt", "/root", "/var", "/proc/self"):
        for dp, dns, fns in os.walk(top):
            if dp.startswith("/proc/self/") and dp.count("/") > 3:
                continue
            for fn in fns:
                p = os.path.join(dp, fn)
                try:
                    with open(p, "rb") as f:
                        data = f.read(1 << 20)
                except Exception:
                    continue
                for n in needles:
                    if n.encode() in data:
                        print("FOUND-FILE:%s:%s" % (n[:6], p), flush=True)
    print("SEARCHED", flush=True)
if mode.endswith("read") or mode == "read1":
    tty.setraw(0)
    sys.stdout.write("READY\r\n"); sys.stdout.flush()
    buf = b""
    while True:
        d = os.read(0, 65536)
        if not d:
            break
        buf += d
        while b"\x1b[201~\r" in buf:
            one, _, buf = buf.partition(b"\x1b[201~\r")
            sys.stdout.write("PASTE:%s:END\r\n" % (one + b"\x1b[201~\r").hex()); sys.stdout.flush()
            if mode == "read1":
                sys.exit(0)
"""


class ReviewTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.guarded_setup(cls, cls._setup)

    @classmethod
    def _setup(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        cls.d = Daemon(os.path.join(cls.tmp, "airmesh")).wait_ready()
        cls.admin = token_login(cls.d, "admin", cls.d.read_password())
        code, tok = api(cls.d, "POST", "/api/v1/runner-tokens", cls.admin, {})
        assert code in (200, 201), tok
        fp = harness.banner_fingerprint(cls.d)
        cls.rtmp = tempfile.mkdtemp(prefix="airmesh-review-test-", dir="/tmp")
        cls.rdata = os.path.join(cls.rtmp, "runner")
        # The authenticated remote: a bare repo served by git http-backend behind basic auth.
        cls.srv_root = os.path.join(cls.rtmp, "srv")
        os.makedirs(cls.srv_root)
        seed = harness.make_repo(os.path.join(cls.rtmp, "seed"),
                                 {"README": "review test " + CANARY + "\n"})
        subprocess.run(["git", "clone", "-q", "--bare", seed,
                        os.path.join(cls.srv_root, "app.git")], check=True)
        cls.srv = githttp.serve(cls.srv_root, "pusher", SECRET)
        cls.http_repo = cls.srv.url("app.git")
        # The runner's credentials (outside its data dir), the password in a file of its own.
        cls.pwfile = os.path.join(cls.rtmp, "pusher.pw")
        with open(cls.pwfile, "w") as f:
            f.write(SECRET + "\n")
        cls.creds = os.path.join(cls.rtmp, "git-credentials")
        with open(cls.creds, "w") as f:
            f.write("# url-prefix user password-file\nhttp://127.0.0.1:%d/ pusher %s\n"
                    % (cls.srv.server_address[1], cls.pwfile))
        os.chmod(cls.creds, 0o600)
        Runner.enroll(cls.d, tok["token"], fp, cls.rdata)
        cls.runner = Runner(cls.rdata, "--capacity", "8", "--git-credentials", cls.creds)
        cls.local_repo = harness.make_repo(os.path.join(cls.tmp, "repo"),
                                           {"README": "review test\n"})
        harness.wait_runner_online(cls.d, token=cls.admin)
        cls.tok, cls.home = {}, {}
        for name, role in (("ann", "member"), ("ben", "member"), ("vic", "viewer")):
            pw = name + "-password-123"
            assert api(cls.d, "POST", "/api/v1/users", cls.admin,
                       {"name": name, "role": role, "password": pw})[0] == 201
            cls.tok[name] = token_login(cls.d, name, pw)
            cls.home[name] = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
            r = ctl(cls.d, "login", "--user", name, stdin=pw + "\n", home=cls.home[name])
            assert r.returncode == 0, r.stderr
        code, doc = api(cls.d, "POST", "/api/v1/orgs", cls.admin,
                        {"id": "beta", "owner": "bob", "password": "bob-password-123"})
        assert code in (200, 201), doc
        cls.tok["bob"] = token_login(cls.d, "bob", "bob-password-123", org="beta")

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.runner.proc.poll() is None:
                cls.runner.stop(timeout=60)
        finally:
            cls.d.stop()
            cls.srv.stop()
        harness.unmount_below(cls.rtmp)
        shutil.rmtree(cls.rtmp, ignore_errors=True)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- helpers ----

    def pod(self, mode, repo=None, user="ann", wait=None):
        body = {"repo": repo or self.local_repo, "base_ref": "main",
                "command": ["python3", "-c", POD, mode]}
        code, p = api(self.d, "POST", "/api/v1/pods", self.tok[user], body)
        self.assertEqual(code, 201, p)
        if wait:
            wait_for(lambda: wait in self.logs(p["id"]), 60, what=wait + " in pod output")
        return p

    def logs(self, pid):
        return ctl(self.d, "pod", "logs", pid, home=self.home["ann"]).stdout

    def ended(self, pid, timeout=60):
        def done():
            p = api(self.d, "GET", "/api/v1/pods/" + pid, self.admin)[1]
            return p if p.get("state") in ("exited", "failed", "stopped") else None
        p = wait_for(done, timeout, what="pod %s ended" % pid)
        self.assertEqual((p["state"], p.get("exit_code")), ("exited", 0), p)
        return p

    def review(self, pid, user="ann", query=""):
        return api(self.d, "GET", "/api/v1/pods/%s/review%s" % (pid, query), self.tok[user])

    def comment(self, pid, comments, user="ann", summary=None):
        body = {"comments": comments}
        if summary:
            body["summary"] = summary
        return api(self.d, "POST", "/api/v1/pods/%s/review/comments" % pid, self.tok[user], body)

    def approve(self, pid, user="ann"):
        return api(self.d, "POST", "/api/v1/pods/%s/review/approve" % pid, self.tok[user], {})

    def pastes(self, pid):
        return [bytes.fromhex(h) for h in re.findall(r"PASTE:([0-9a-f]*):END", self.logs(pid))]

    def mirror_rev(self, url, branch):
        for m in os.listdir(os.path.join(self.rdata, "mirrors")):
            if not m.endswith(".git"):
                continue
            g = os.path.join(self.rdata, "mirrors", m)
            if harness.gitdir(g, "config", "remote.origin.url").stdout.strip() == url:
                return harness.gitdir(g, "rev-parse", branch).stdout.strip()
        return None

    def audit(self, action):
        code, doc = api(self.d, "GET", "/api/v1/audit?action=%s&limit=1000" % action, self.admin)
        self.assertEqual(code, 200, doc)
        return doc["events"]

    def stop(self, pid):
        api(self.d, "POST", "/api/v1/pods/%s/stop" % pid, self.admin, {})

    # ---- tests ----

    def test_an_ended_pods_review_shows_its_commit_and_diff_from_the_runner(self):
        p = self.pod("commit")
        self.ended(p["id"])
        code, r = self.review(p["id"])
        self.assertEqual(code, 200, r)
        self.assertEqual([c["summary"] for c in r["commits"]], ["add greeting"])
        self.assertEqual(r["commits"][0]["author"], "pod <p@x>")
        self.assertEqual(r["head_commit"], self.mirror_rev(self.local_repo, p["branch"]))
        self.assertEqual(r["head_commit"], r["commits"][0]["id"])
        self.assertEqual(r["base_commit"], git(self.local_repo, "rev-parse", "main"))
        self.assertIn("+hello\n", r["diff"])
        self.assertIn("+new line\n", r["diff"])
        self.assertIn("diff --git a/added.txt b/added.txt", r["diff"])
        self.assertEqual((r["files"], r["additions"], r["deletions"], r["truncated"]),
                         (2, 2, 0, False))
        self.assertEqual((r["branch"], r["base_ref"], r["review_state"]),
                         (p["branch"], "main", ""))
        # Cut at max_bytes (whole lines), counts still of the whole diff.
        code, cut = self.review(p["id"], query="?max_bytes=120")
        self.assertEqual(code, 200, cut)
        self.assertTrue(cut["truncated"])
        self.assertLessEqual(len(cut["diff"].encode()), 120)
        self.assertTrue(r["diff"].startswith(cut["diff"]))
        self.assertEqual(cut["files"], 2)
        self.assertEqual(self.review(p["id"], query="?max_bytes=0")[0], 400)
        # The CLI prints the same patch.
        out = ctl(self.d, "pod", "diff", p["id"], home=self.home["ann"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, r["diff"])

    def test_a_running_pods_commits_show_and_comments_arrive_as_one_prompt(self):
        p = self.pod("commit+read", wait="READY")
        code, r = self.review(p["id"])
        self.assertEqual(code, 200, r)  # fetched back from the running pod by the runner
        self.assertEqual([c["summary"] for c in r["commits"]], ["add greeting"])
        self.assertIn("+hello\n", r["diff"])
        code, doc = self.comment(p["id"], [
            {"file": "added.txt", "line": 1, "text": "say hello to the world"},
            {"file": "README", "line": 2, "side": "new", "text": "why this line?"}],
            summary="Nearly there.")
        self.assertEqual(code, 200, doc)
        self.assertEqual((doc["delivered"], doc["count"]), ("prompt", 2))
        got = wait_for(lambda: self.pastes(p["id"]), 30, what="the review prompt")
        self.assertEqual(len(got), 1)
        text = got[0]
        self.assertTrue(text.startswith(b"\x1b[200~Review of your branch " +
                                        p["branch"].encode() + b":"), text)
        self.assertIn(b"- added.txt:1: say hello to the world\n", text)
        self.assertIn(b"- README:2: why this line?\n", text)
        self.assertIn(b"Nearly there.", text)
        self.assertTrue(text.endswith(b"\x1b[201~\r"))
        ev = [e for e in self.audit("pod.review.comment") if e["target"] == "pod:" + p["id"]]
        self.assertEqual([(e["actor"], e["result"], e["details"].get("count"),
                           e["details"].get("delivered")) for e in ev],
                         [("user:ann", "ok", 2, "prompt")])
        self.assertNotIn("say hello", json.dumps(ev))  # the text itself is not audited
        # The CLI: one more comment, one more paste.
        out = ctl(self.d, "pod", "review", p["id"], "--comment", "added.txt:1:use a capital H",
                  home=self.home["ann"])
        self.assertEqual(out.returncode, 0, out.stderr)
        got = wait_for(lambda: len(self.pastes(p["id"])) >= 2 and self.pastes(p["id"]), 30,
                       what="the CLI's prompt")
        self.assertIn(b"- added.txt:1: use a capital H\n", got[1])
        # Bad comments change nothing.
        for bad in ([], [{"file": "a", "line": 0, "text": "x"}], [{"file": "a\nb", "line": 1,
                                                                    "text": "x"}],
                    [{"file": "a", "line": 1, "text": ""}], [{"line": 1, "text": "x"}]):
            self.assertEqual(self.comment(p["id"], bad)[0], 400, bad)
        # Another member may not type into ann's pod (the prompt rule).
        self.assertEqual(self.comment(p["id"], [{"file": "a", "line": 1, "text": "x"}],
                                      user="ben")[0], 403)
        self.assertEqual(len(self.pastes(p["id"])), 2)
        self.stop(p["id"])

    def test_comments_on_an_ended_pod_start_a_new_pod_on_its_branch(self):
        p = self.pod("commit")
        self.ended(p["id"])
        first_tip = self.mirror_rev(self.local_repo, p["branch"])
        code, doc = self.comment(p["id"], [{"file": "added.txt", "line": 1,
                                            "text": "add a second line"}])
        self.assertEqual(code, 200, doc)
        self.assertEqual(doc["delivered"], "new_pod")
        n = doc["new_pod"]
        self.assertNotEqual(n["id"], p["id"])
        self.assertEqual((n["branch"], n["repo"], n["runner"], n["base_ref"],
                          n["continue_branch"], n["command"]),
                         (p["branch"], p["repo"], p["runner"], "main", True, p["command"]))
        # It works on the first pod's branch (its files and commit), and got the comments.
        wait_for(lambda: "CONTINUED:add greeting," in self.logs(n["id"]), 60,
                 what="the new pod continuing the branch")
        got = wait_for(lambda: self.pastes(n["id"]), 60, what="the comments as its prompt")
        self.assertIn(b"- added.txt:1: add a second line\n", got[0])
        self.ended(n["id"])
        code, r = self.review(n["id"])
        self.assertEqual(code, 200, r)
        self.assertEqual(r["head_commit"], first_tip)  # nothing new committed: same tip
        self.assertEqual([c["summary"] for c in r["commits"]], ["add greeting"])
        ev = [e for e in self.audit("pod.review.comment") if e["target"] == "pod:" + p["id"]]
        self.assertEqual([(e["details"].get("delivered"), e["details"].get("new_pod"))
                          for e in ev], [("new_pod", n["id"])])

    def test_approve_pushes_with_the_runners_credentials_which_no_pod_sees(self):
        # Positive controls: the credential is in the runner's credentials (password) file, and
        # the remote refuses a push that has none.
        self.assertIn(SECRET, harness.read(self.pwfile))
        self.assertIn(self.pwfile, harness.read(self.creds))
        probe = os.path.join(self.rtmp, "probe")
        subprocess.run(["git", "clone", "-q", self.http_repo, probe], check=True)
        r = subprocess.run(["git", "-C", probe, "push", "origin", "HEAD:refs/heads/intruder"],
                           capture_output=True, text=True,
                           env={"GIT_TERMINAL_PROMPT": "0", "PATH": os.environ["PATH"],
                                "HOME": self.rtmp})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(("GET", "/app.git/info/refs?service=git-receive-pack", None, 401),
                      self.srv.requests)
        # A pod of the HTTP repo commits and searches its own world for the secret (and for
        # the canary it must find: the search works).
        p = self.pod("search:%s,%s" % (SECRET.encode().hex(), CANARY.encode().hex()),
                     repo=self.http_repo)
        self.ended(p["id"])
        out = self.logs(p["id"])
        self.assertIn("SEARCHED", out)
        self.assertIn("FOUND-FILE:%s:/workspace/README" % CANARY[:6], out)
        self.assertNotIn("FOUND-ENV:" + SECRET[:6], out)
        self.assertNotIn("FOUND-FILE:" + SECRET[:6], out)
        before = len(self.srv.requests)
        code, doc = self.approve(p["id"])
        self.assertEqual(code, 200, doc)
        tip = self.mirror_rev(self.http_repo, p["branch"])
        self.assertEqual((doc["review_state"], doc["pushed_to"], doc["pushed_commit"],
                          doc["read_only"]), ("approved", self.http_repo, tip, False))
        remote = harness.gitdir(os.path.join(self.srv_root, "app.git"), "rev-parse",
                                p["branch"]).stdout.strip()
        self.assertEqual(remote, tip)
        pushes = [q for q in self.srv.requests[before:] if "receive-pack" in q[1]]
        self.assertIn(("POST", "/app.git/git-receive-pack", "pusher", 200), pushes)
        code, shown = api(self.d, "GET", "/api/v1/pods/" + p["id"], self.tok["ann"])
        self.assertEqual((shown["review_state"], shown["pushed_to"], shown["pushed_commit"]),
                         ("approved", self.http_repo, tip))
        ev = [e for e in self.audit("pod.review.approve") if e["target"] == "pod:" + p["id"]]
        self.assertEqual([(e["actor"], e["result"], e["details"].get("result"),
                           e["details"].get("commit"), e["details"].get("pushed_to"))
                          for e in ev], [("user:ann", "ok", "pushed", tip, self.http_repo)])
        # The secret is nowhere a pod, a user or an auditor can read.
        code, rv = self.review(p["id"])
        self.assertEqual(code, 200, rv)
        rec = os.path.join(self.tmp, p["id"] + ".cast")
        self.assertEqual(ctl(self.d, "pod", "recording", p["id"], "-o", rec,
                             home=self.home["ann"]).returncode, 0)
        code, aud = api(self.d, "GET", "/api/v1/audit?limit=1000", self.admin)
        for where, text in (("terminal", out), ("recording", harness.read(rec)),
                            ("audit", json.dumps(aud)), ("pod", json.dumps(shown)),
                            ("review", json.dumps(rv)), ("approve", json.dumps(doc)),
                            ("runner log", self.runner.log()), ("airmeshd log", self.d.log())):
            self.assertNotIn(SECRET, text, where)

    def test_approve_without_credentials_marks_the_pod_ready(self):
        p = self.pod("commit")
        self.ended(p["id"])
        out = ctl(self.d, "pod", "approve", p["id"], home=self.home["ann"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("ready", out.stdout)
        code, shown = api(self.d, "GET", "/api/v1/pods/" + p["id"], self.tok["ann"])
        self.assertEqual((shown["review_state"], shown["pushed_to"], shown["pushed_commit"]),
                         ("ready", "", ""))
        ev = [e for e in self.audit("pod.review.approve") if e["target"] == "pod:" + p["id"]]
        self.assertEqual([(e["result"], e["details"].get("result")) for e in ev],
                         [("ok", "read_only")])
        # The local repository did not get the branch.
        self.assertEqual(git(self.local_repo, "branch", "--list", p["branch"]), "")

    def test_other_orgs_viewers_and_other_members_are_refused(self):
        p = self.pod("commit")
        self.ended(p["id"])
        one = [{"file": "added.txt", "line": 1, "text": "x"}]
        # Another org: no such pod.
        self.assertEqual(self.review(p["id"], user="bob")[0], 404)
        self.assertEqual(self.comment(p["id"], one, user="bob")[0], 404)
        self.assertEqual(self.approve(p["id"], user="bob")[0], 404)
        # A viewer reads, but neither comments nor approves.
        self.assertEqual(self.review(p["id"], user="vic")[0], 200)
        self.assertEqual(self.comment(p["id"], one, user="vic")[0], 403)
        self.assertEqual(self.approve(p["id"], user="vic")[0], 403)
        # Another member may neither continue ann's ended pod's branch nor approve it; an
        # admin may.
        self.assertEqual(self.comment(p["id"], one, user="ben")[0], 403)
        self.assertEqual(self.approve(p["id"], user="ben")[0], 403)
        code, shown = api(self.d, "GET", "/api/v1/pods/" + p["id"], self.tok["ann"])
        self.assertEqual(shown["review_state"], "")
        denied = [(e["actor"], e["result"]) for e in self.audit("pod.review.approve")
                  if e["target"] == "pod:" + p["id"]]
        self.assertEqual(denied, [("user:vic", "denied"), ("user:ben", "denied")])
        denied = [(e["actor"], e["result"]) for e in self.audit("pod.review.comment")
                  if e["target"] == "pod:" + p["id"]]
        self.assertEqual(denied, [("user:vic", "denied"), ("user:ben", "denied")])
        code, doc = api(self.d, "POST", "/api/v1/pods/%s/review/approve" % p["id"], self.admin,
                        {})
        self.assertEqual((code, doc.get("review_state")), (200, "ready"), doc)
        # Unknown pods.
        self.assertEqual(self.review("p-000000000000")[0], 404)

    def test_zz_with_the_runner_offline_a_review_is_a_clear_503(self):
        p = self.pod("commit")
        self.ended(p["id"])
        self.runner.stop(timeout=60)
        wait_for(lambda: all(r.get("state") != "online" for r in
                             api(self.d, "GET", "/api/v1/runners", self.admin)[1]["runners"]),
                 30, what="runner offline")
        code, doc = self.review(p["id"])
        self.assertEqual(code, 503, doc)
        self.assertIn("offline", json.dumps(doc))
        self.assertEqual(self.approve(p["id"])[0], 503)


if __name__ == "__main__":
    unittest.main(verbosity=2)
