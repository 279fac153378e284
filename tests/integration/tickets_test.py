#!/usr/bin/python3
"""Tickets (issue 13), against a real airmeshd and a real enrolled runner, through the REST API
as a client uses it:
  - create: keys DEFAULT-1, DEFAULT-2, ... per org (another org counts from BETA-1), defaults
    backlog / none, audited ticket.create;
  - transitions: allowed moves succeed and are audited ticket.update with {from, to}; a refused
    move is 400 naming the allowed ones and changes nothing; reopen done → todo by an admin yes,
    by a member who is not the assignee no (403, audited denied), by the assignee yes;
  - fields: unknown assignee 400, labels, parent; blocks kept symmetric (blocked_by), a cycle 400;
  - comments (audited ticket.comment with the length, never the text), search by status,
    assignee, label, text;
  - another org's ticket is 404 for read and write; a viewer reads but cannot write (403,
    audited denied, nothing changed);
  - "start a pod": the pod gets branch default-N and the ticket text as its prompt (the pod's
    reader sees "[ticket DEFAULT-N]"), the ticket is in_progress with the pod recorded; the pod
    exits (a second prompt tells it to) and the ticket moves to in_review with the branch
    attached, audited with the runner as actor.
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

# The pod: raw mode, one "PASTE:<hex>:END" line per paste; exits 0 on a paste saying EXIT-NOW.
READER = r"""
import os, sys, tty
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
        sys.stdout.write("PASTE:%s:END\r\n" % one.hex()); sys.stdout.flush()
        if b"EXIT-NOW" in one:
            sys.exit(0)
"""


class TicketsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.guarded_setup(cls, cls._setup)

    @classmethod
    def _setup(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        cls.d = Daemon(os.path.join(cls.tmp, "airmesh")).wait_ready()
        d = cls.d
        cls.admin = token_login(d, "admin", d.read_password())
        code, tok = api(d, "POST", "/api/v1/runner-tokens", cls.admin, {})
        assert code in (200, 201), tok
        fp = re.search(r"CA fingerprint: (\w+)", "\n".join(d.banner)).group(1)
        cls.rtmp = tempfile.mkdtemp(prefix="airmesh-tickets-test-", dir="/tmp")
        cls.rdata = os.path.join(cls.rtmp, "runner")
        Runner.enroll(d, tok["token"], fp, cls.rdata)
        cls.runner = Runner(cls.rdata, "--capacity", "4")
        cls.repo = os.path.join(cls.tmp, "repo")
        os.makedirs(cls.repo)
        subprocess.run(["git", "init", "-q", "-b", "main", cls.repo], check=True)
        with open(os.path.join(cls.repo, "README"), "w") as f:
            f.write("tickets test\n")
        git(cls.repo, "add", "-A")
        git(cls.repo, "commit", "-qm", "base")
        cls.tok = {"admin": cls.admin}
        for name, role in (("ann", "member"), ("ben", "member"), ("vic", "viewer")):
            pw = name + "-password-123"
            code, u = api(d, "POST", "/api/v1/users", cls.admin,
                          {"name": name, "role": role, "password": pw})
            assert code == 201, u
            cls.tok[name] = token_login(d, name, pw)
        code, org = api(d, "POST", "/api/v1/orgs", cls.admin,
                        {"id": "beta", "owner": "bob", "password": "bob-password-123"})
        assert code == 201, org
        cls.tok["bob"] = token_login(d, "bob", "bob-password-123", "beta")
        wait_for(lambda: any(r.get("state") == "online" for r in
                             api(d, "GET", "/api/v1/runners", cls.admin)[1].get("runners", [])),
                 30, what="runner online")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.runner.stop(timeout=30)
        finally:
            cls.d.stop()
        harness.unmount_below(cls.rtmp)
        shutil.rmtree(cls.rtmp, ignore_errors=True)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- helpers ----

    def call(self, method, path, user="ann", body=None, want=200):
        code, doc = api(self.d, method, path, self.tok[user], body)
        self.assertEqual(code, want, (method, path, doc))
        return doc

    def new(self, user="ann", **fields):
        fields.setdefault("title", "a ticket")
        return self.call("POST", "/api/v1/tickets", user, fields, 201)

    def get(self, key, user="ann"):
        return self.call("GET", "/api/v1/tickets/" + key, user)

    def audit(self, action, key):
        doc = self.call("GET", "/api/v1/audit?action=%s&limit=1000" % action, "admin")
        return [e for e in doc["events"] if e["target"] == "ticket:" + key]

    def move(self, key, status, user="ann", want=200):
        return self.call("PATCH", "/api/v1/tickets/" + key, user, {"status": status}, want)

    # ---- tests ----

    def test_create_keys_and_defaults(self):
        a = self.new(title="first")
        b = self.new(title="second")
        na, nb = int(a["key"].split("-")[1]), int(b["key"].split("-")[1])
        self.assertTrue(a["key"].startswith("DEFAULT-"), a)
        self.assertEqual(nb, na + 1)
        self.assertEqual((a["status"], a["priority"], a["assignee"], a["created_by"]),
                         ("backlog", "none", "", "user:ann"))
        # Another org counts on its own.
        c = self.new("bob", title="beta's")
        self.assertTrue(re.fullmatch(r"BETA-\d+", c["key"]), c)
        # Lower-case keys are the same ticket.
        self.assertEqual(self.get(a["key"].lower())["title"], "first")
        ev = self.audit("ticket.create", a["key"])
        self.assertEqual([(e["actor"], e["result"]) for e in ev], [("user:ann", "ok")])
        self.assertEqual(ev[0]["details"]["title"], "first")
        # Bad input: 400, nothing created.
        before = len(self.call("GET", "/api/v1/tickets")["tickets"])
        for body in ({}, {"title": ""}, {"title": "x", "priority": "critical"},
                     {"title": "x", "status": "done"}, {"title": "x", "labels": ["a b"]},
                     {"title": "x", "frobnicate": 1}, {"title": "x\x1b[31m"}):
            with self.subTest(body=body):
                code, doc = api(self.d, "POST", "/api/v1/tickets", self.tok["ann"], body)
                self.assertEqual(code, 400, doc)
        self.assertEqual(len(self.call("GET", "/api/v1/tickets")["tickets"]), before)

    def test_transitions(self):
        k = self.new(title="flow")["key"]
        self.move(k, "todo")
        self.move(k, "in_progress")
        # done only from in_review: refused naming the allowed moves, nothing changed
        doc = self.move(k, "done", want=400)
        msg = doc["error"]["message"]
        self.assertIn("in_progress → done is not allowed", msg)
        self.assertIn("todo, in_review", msg)
        self.assertEqual(self.get(k)["status"], "in_progress")
        self.move(k, "in_review")
        self.move(k, "todo")  # back from review
        self.move(k, "in_review")
        self.move(k, "done")
        # reopen: a member who is not the assignee may not (403, audited denied) ...
        doc = self.move(k, "todo", "ben", want=403)
        self.assertIn("reopen", doc["error"]["message"])
        self.assertEqual(self.get(k)["status"], "done")
        self.assertIn(("user:ben", "denied"),
                      [(e["actor"], e["result"]) for e in self.audit("ticket.update", k)])
        self.move(k, "in_progress", "admin", want=400)  # done → todo only
        self.move(k, "todo", "admin")  # ... an admin may
        # ... and so may the assignee
        self.call("PATCH", "/api/v1/tickets/" + k, "ann", {"assignee": "user:ben"})
        for s in ("in_progress", "in_review", "done"):
            self.move(k, s)
        self.move(k, "todo", "ben")
        moves = [(e["details"]["status"]["from"], e["details"]["status"]["to"])
                 for e in self.audit("ticket.update", k)
                 if e["result"] == "ok" and "status" in e["details"]]
        self.assertEqual(moves[:4], [("backlog", "todo"), ("todo", "in_progress"),
                                     ("in_progress", "in_review"), ("in_review", "todo")])
        self.assertEqual(moves[-1], ("done", "todo"))

    def test_fields_blocks_and_cycles(self):
        a, b, c = (self.new(title=t)["key"] for t in ("A", "B", "C"))
        doc = self.call("PATCH", "/api/v1/tickets/" + a, "ann", {"assignee": "user:nobody"},
                        400)
        self.assertIn("no user nobody", doc["error"]["message"])
        self.call("PATCH", "/api/v1/tickets/" + a, "ann", {"assignee": "pod:p-000000000000"}, 400)
        t = self.call("PATCH", "/api/v1/tickets/" + a, "ann",
                      {"assignee": "user:ann", "priority": "high", "labels": ["ui", "bug"],
                       "parent": c, "description": "# Heading\n\nbody"})
        self.assertEqual((t["assignee"], t["priority"], t["labels"], t["parent"]),
                         ("user:ann", "high", ["ui", "bug"], c))
        ev = self.audit("ticket.update", a)[-1]
        self.assertEqual(sorted(ev["details"]["fields"]),
                         ["assignee", "description", "labels", "parent", "priority"])
        # blocks: symmetric
        self.call("PATCH", "/api/v1/tickets/" + a, "ann", {"blocks": [b]})
        self.call("PATCH", "/api/v1/tickets/" + b, "ann", {"blocks": [c]})
        self.assertEqual(self.get(b)["blocked_by"], [a])
        self.assertEqual(self.get(c)["blocked_by"], [b])
        # a cycle: c blocks a while a → b → c
        doc = self.call("PATCH", "/api/v1/tickets/" + c, "ann", {"blocks": [a]}, 400)
        self.assertIn("cycle", doc["error"]["message"])
        self.assertEqual(self.get(c)["blocks"], [])
        self.assertEqual(self.get(a)["blocked_by"], [])
        self.call("PATCH", "/api/v1/tickets/" + a, "ann", {"blocks": [a]}, 400)
        self.call("PATCH", "/api/v1/tickets/" + a, "ann", {"blocks": ["DEFAULT-99999"]}, 400)
        # a parent cycle: c's parent a while a's parent is c
        self.call("PATCH", "/api/v1/tickets/" + c, "ann", {"parent": a}, 400)
        # unblock: both sides follow
        self.call("PATCH", "/api/v1/tickets/" + a, "ann", {"blocks": []})
        self.assertEqual(self.get(b)["blocked_by"], [])

    def test_comments_and_search(self):
        k = self.new(title="Search me zebra", labels=["needle"])["key"]
        self.call("PATCH", "/api/v1/tickets/" + k, "ann", {"assignee": "user:ben",
                                                          "status": "todo"})
        t = self.call("POST", "/api/v1/tickets/%s/comments" % k, "ben",
                      {"body": "looks **good**"}, 201)
        self.assertEqual([(c["author"], c["body"]) for c in t["comments"]],
                         [("user:ben", "looks **good**")])
        ev = self.audit("ticket.comment", k)
        self.assertEqual([(e["actor"], e["details"]) for e in ev], [("user:ben", {"length": 14})])
        self.call("POST", "/api/v1/tickets/%s/comments" % k, "ben", {"body": ""}, 400)

        def keys(q):
            return [x["key"] for x in self.call("GET", "/api/v1/tickets?" + q)["tickets"]]
        self.assertEqual(keys("q=ZEBRA"), [k])
        self.assertEqual(keys("label=needle"), [k])
        self.assertIn(k, keys("status=todo"))
        self.assertNotIn(k, keys("status=backlog"))
        self.assertIn(k, keys("assignee=user:ben"))
        self.assertEqual(keys("q=zebra&status=done"), [])

    def test_other_org_and_viewer(self):
        k = self.new(title="ours")["key"]
        before = self.get(k)
        # another org: 404 for read, write, comment and start (existence does not leak)
        for method, path, body in (("GET", "", None), ("PATCH", "", {"title": "pwned"}),
                                   ("POST", "/comments", {"body": "hi"}),
                                   ("POST", "/start", {"repo": self.repo, "command": ["true"]})):
            with self.subTest(method=method, path=path):
                code, doc = api(self.d, method, "/api/v1/tickets/" + k + path, self.tok["bob"],
                                body)
                self.assertEqual(code, 404, doc)
        self.assertNotIn(k, [x["key"] for x in
                             self.call("GET", "/api/v1/tickets", "bob")["tickets"]])
        # a viewer reads (positive control) but cannot write
        self.assertEqual(self.get(k, "vic")["title"], "ours")
        for method, path, body in (("PATCH", "", {"title": "pwned"}),
                                   ("POST", "/comments", {"body": "hi"})):
            code, doc = api(self.d, method, "/api/v1/tickets/" + k + path, self.tok["vic"], body)
            self.assertEqual(code, 403, doc)
        code, doc = api(self.d, "POST", "/api/v1/tickets", self.tok["vic"], {"title": "x"})
        self.assertEqual(code, 403, doc)
        self.assertEqual(self.get(k), before)
        self.assertIn(("user:vic", "denied"),
                      [(e["actor"], e["result"]) for e in self.audit("ticket.update", k)])

    def test_cli(self):
        def c(*args, stdin=None, user="ann"):
            return ctl(self.d, "ticket", *args, stdin=stdin,
                       env_extra={"AIRMESH_TOKEN": self.tok[user]})
        r = c("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        for word in ("create", "list", "show", "update", "comment", "start", "in_review"):
            self.assertIn(word, r.stdout)
        r = c("create", "CLI ticket", "--description", "-", "--priority", "low",
              "--labels", "cli,x", stdin="line one\nline two\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        key = re.search(r"ticket (DEFAULT-\d+) created", r.stdout).group(1)
        t = self.get(key)
        self.assertEqual((t["description"], t["priority"], t["labels"]),
                         ("line one\nline two", "low", ["cli", "x"]))
        r = c("update", key, "--status", "todo", "--assignee", "user:ben")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.get(key)["status"], "todo")
        # A refused move: exit 1 and the allowed moves on stderr, nothing changed.
        r = c("update", key, "--status", "done")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("from todo: backlog, in_progress, in_review", r.stderr)
        self.assertEqual(self.get(key)["status"], "todo")
        r = c("comment", key, "from the CLI")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = c("show", key)
        self.assertEqual(r.returncode, 0, r.stderr)
        for text in (key, "CLI ticket", "status todo, priority low, assignee user:ben",
                     "line two", "from the CLI"):
            self.assertIn(text, r.stdout)
        r = c("list", "--label", "cli")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines()[0].split(),
                         ["KEY", "STATUS", "PRIORITY", "ASSIGNEE", "TITLE"])
        self.assertEqual([l.split()[0] for l in r.stdout.splitlines()[1:]], [key])
        r = c("list", "--search", "no such text anywhere", "--json")
        self.assertEqual(json.loads(r.stdout), {"tickets": []})
        # a viewer: refused, exit 1
        r = c("comment", key, "viewer", user="vic")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("viewers can read tickets", r.stderr)

    def test_start_a_pod(self):
        t = self.new(title="Fix the parser", description="It breaks on *empty* input.")
        k = t["key"]
        self.move(k, "todo")
        doc = self.call("POST", "/api/v1/tickets/%s/start" % k, "ann",
                        {"repo": self.repo, "command": ["python3", "-c", READER]}, 201)
        pod = doc["pod"]
        self.assertEqual(pod["branch"], k.lower())
        self.assertEqual(doc["ticket"]["status"], "in_progress")
        self.assertEqual(doc["ticket"]["pods"], [pod["id"]])

        def logs():
            return ctl(self.d, "pod", "logs", pod["id"], env_extra={
                "AIRMESH_TOKEN": self.tok["ann"]}).stdout

        def pastes():
            return [bytes.fromhex(h) for h in re.findall(r"PASTE:([0-9a-f]*):END", logs())]
        # The ticket arrived as the pod's first prompt.
        first = wait_for(lambda: pastes(), 60, what="the ticket prompt")[0]
        self.assertIn(b"Fix the parser", first)
        self.assertIn(b"It breaks on *empty* input.", first)
        self.assertIn(("[ticket %s]" % k).encode(), first)
        self.assertEqual(self.get(k)["status"], "in_progress")
        # The pod exits; the ticket moves to in_review with the branch.
        code, r = api(self.d, "POST", "/api/v1/pods/%s/prompt" % pod["id"], self.tok["ann"],
                      {"text": "EXIT-NOW"})
        self.assertIn(code, (200, 202), r)
        wait_for(lambda: self.get(k)["status"] == "in_review", 60, what="ticket in_review")
        self.assertEqual(self.get(k)["branch"], k.lower())
        self.assertEqual(self.call("GET", "/api/v1/pods/" + pod["id"])["state"], "exited")
        ups = [e for e in self.audit("ticket.update", k) if "status" in e["details"]]
        self.assertEqual([(e["details"]["status"]["to"]) for e in ups][-2:],
                         ["in_progress", "in_review"])
        self.assertEqual(ups[-2]["actor"], "user:ann")
        self.assertEqual(ups[-2]["details"]["pod"], pod["id"])
        self.assertTrue(ups[-1]["actor"].startswith("runner:"), ups[-1])
        # A done ticket cannot start another pod (409, nothing started).
        self.move(k, "done")
        pods = len(self.call("GET", "/api/v1/pods")["pods"])
        self.call("POST", "/api/v1/tickets/%s/start" % k, "ann",
                  {"repo": self.repo, "command": ["true"]}, 409)
        self.assertEqual(len(self.call("GET", "/api/v1/pods")["pods"]), pods)


if __name__ == "__main__":
    unittest.main(verbosity=2)
