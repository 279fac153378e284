#!/usr/bin/python3
"""Channels (issue 13), against a real airmeshd and a real enrolled runner:
  - channels and messages with paging (before / after / limit, in order), live on
    /api/v1/events as {"type": "channel.message"}; only members post (a non-member is 403
    until it joins); a viewer reads but cannot post; another org cannot see the channel (404);
    every change is audited (channel.create / .member / .message with the length, never the
    text);
  - an @mention of a pod that is working is NOT typed while it works and IS typed exactly once,
    as a bracketed paste with its provenance "[#channel, from ann]: ...", control characters
    stripped, after the pod reports waiting (airmesh-notify);
  - a member who may not prompt that pod mentions it: the message is kept, the mention is
    "refused" with the reason in the answer, and nothing reaches the pod;
  - a queued mention of a pod that ends is dropped (audited).
The pod runs a reader (raw mode) that calls `airmesh-notify working`, prints a tick every
second while it works (so the runner's quiet timer never calls it idle), prints every paste it
gets in hex, and calls `airmesh-notify waiting` when a paste is exactly "GO".
"""
import json
import os
import re
import shutil
import sys
import tempfile
import unittest

import harness
from harness import Daemon, api, token_login, wait_for

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ownctl_test import WS  # noqa: E402  the same small WebSocket client

READER = r"""
import os, select, subprocess, sys, tty
tty.setraw(0)
def notify(s):
    subprocess.run(["airmesh-notify", s], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
notify("working")
sys.stdout.write("READY\r\n"); sys.stdout.flush()
working = True
buf = b""
while True:
    r, _, _ = select.select([0], [], [], 1.0)
    if not r:
        if working:
            sys.stdout.write("tick\r\n"); sys.stdout.flush()
        continue
    d = os.read(0, 65536)
    if not d:
        break
    buf += d
    while b"\x1b[201~\r" in buf:
        one, _, buf = buf.partition(b"\x1b[201~\r")
        sys.stdout.write("PASTE:%s:END\r\n" % (one + b"\x1b[201~\r").hex()); sys.stdout.flush()
        if one == b"\x1b[200~GO":
            working = False
            notify("waiting")
"""


def paste(text):
    return b"\x1b[200~" + text.encode() + b"\x1b[201~\r"


class ChannelsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.guarded_setup(cls, cls._setup)

    @classmethod
    def _setup(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        cls.d = Daemon(os.path.join(cls.tmp, "airmesh")).wait_ready()
        cls.admin = token_login(cls.d, "admin", cls.d.read_password())
        harness.api_runner_and_repo(cls, "airmesh-channels-test-", "channels", "--capacity", "8")
        cls.tok = {"admin": cls.admin}
        for name, role in (("ann", "member"), ("ben", "member"), ("vic", "viewer")):
            pw = name + "-password-123"
            assert api(cls.d, "POST", "/api/v1/users", cls.admin,
                       {"name": name, "role": role, "password": pw})[0] == 201
            cls.tok[name] = token_login(cls.d, name, pw)
        code, doc = api(cls.d, "POST", "/api/v1/orgs", cls.admin,
                        {"id": "beta", "owner": "bob", "password": "bob-password-123"})
        assert code in (200, 201), doc
        cls.tok["bob"] = token_login(cls.d, "bob", "bob-password-123", org="beta")
        cls.home = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        r = harness.ctl(cls.d, "login", "--user", "ann", stdin="ann-password-123\n",
                        home=cls.home)
        assert r.returncode == 0, r.stderr

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

    def post(self, user, ch, text):
        return self.call(user, "POST", f"/api/v1/channels/{ch}/messages", {"text": text})

    def create(self, user, name, members=()):
        code, doc = self.call(user, "POST", "/api/v1/channels",
                              {"name": name, "members": list(members)})
        self.assertEqual(code, 201, doc)
        return doc

    def audit(self, action, target=None):
        code, doc = self.call("admin", "GET", f"/api/v1/audit?action={action}&limit=1000")
        self.assertEqual(code, 200, doc)
        return [e for e in doc["events"] if target is None or e["target"] == target]

    def pod(self, user="ann", **extra):
        body = {"repo": self.repo, "command": ["python3", "-c", READER]}
        body.update(extra)
        code, p = self.call(user, "POST", "/api/v1/pods", body)
        self.assertEqual(code, 201, p)
        pid = p["id"]
        wait_for(lambda: "READY" in self.logs(pid), 60, what="reader ready")
        wait_for(lambda: self.call("admin", "GET", f"/api/v1/pods/{pid}")[1].get(
            "agent_state") == "working", 30, what="pod working")
        return pid

    def logs(self, pid):
        return harness.ctl(self.d, "pod", "logs", pid, home=self.home).stdout

    def pastes(self, pid):
        return [bytes.fromhex(h) for h in re.findall(r"PASTE:([0-9a-f]*):END", self.logs(pid))]

    def wait_paste_count(self, pid, n):
        return wait_for(lambda: len(self.pastes(pid)) >= n and self.pastes(pid), 30,
                        what="paste %d arrived" % n)

    def mention_state(self, ch, seq, pid):
        code, doc = self.call("ann", "GET", f"/api/v1/channels/{ch}/messages?after={seq - 1}"
                              "&limit=1")
        self.assertEqual(code, 200, doc)
        return {m["pod"]: m for m in doc["messages"][0]["mentions"]}[pid]["state"]

    # ---- tests ----

    def test_messages_page_in_order_members_only_viewers_read_other_orgs_do_not(self):
        ch = self.create("ann", "general", ["user:vic"])
        self.assertEqual(sorted(ch["members"]), ["user:ann", "user:vic"])
        ev = WS(self.d, "/api/v1/events", self.tok["vic"])
        try:
            ev.hello()
            for i in range(1, 8):
                code, doc = self.post("ann", "general", f"message {i} ünïcode")
                self.assertEqual((code, doc.get("seq")), (201, i), doc)
            # live: the viewer's event stream carries the text
            ev.pump(lambda w: any(m.get("type") == "channel.message" and
                                  m["message"]["seq"] == 7 for m in w.msgs),
                    what="message 7 live")
            live = [m["message"] for m in ev.msgs if m.get("type") == "channel.message"]
            self.assertEqual([m["text"] for m in live],
                             [f"message {i} ünïcode" for i in range(1, 8)])
            self.assertEqual(live[0]["author"], "user:ann")
        finally:
            ev.close()
        # paging: the newest page, then before it, then after
        code, doc = self.call("vic", "GET", "/api/v1/channels/general/messages?limit=3")
        self.assertEqual(code, 200, doc)
        self.assertEqual([m["seq"] for m in doc["messages"]], [5, 6, 7])
        self.assertTrue(doc["more"])
        doc = self.call("vic", "GET", "/api/v1/channels/general/messages?before=5&limit=3")[1]
        self.assertEqual([m["seq"] for m in doc["messages"]], [2, 3, 4])
        doc = self.call("vic", "GET", "/api/v1/channels/general/messages?before=2&limit=3")[1]
        self.assertEqual(([m["seq"] for m in doc["messages"]], doc["more"]), ([1], False))
        doc = self.call("vic", "GET", "/api/v1/channels/general/messages?after=4&limit=2")[1]
        self.assertEqual(([m["seq"] for m in doc["messages"]], doc["more"]), ([5, 6], True))
        doc = self.call("vic", "GET", "/api/v1/channels/general/messages?after=6")[1]
        self.assertEqual(([m["seq"] for m in doc["messages"]], doc["more"]), ([7], False))
        self.assertEqual(self.call("vic", "GET", "/api/v1/channels/general/messages?before=1&"
                                   "after=2")[0], 400)
        # another channel's messages never mix in
        self.create("ben", "random")
        self.assertEqual(self.post("ben", "random", "other")[0], 201)
        doc = self.call("ann", "GET", "/api/v1/channels/general/messages?after=0&limit=500")[1]
        self.assertEqual(len(doc["messages"]), 7)
        # members only: ben is not a member of general until he joins
        code, doc = self.post("ben", "general", "let me in")
        self.assertEqual(code, 403, doc)
        self.assertIn("not a member", doc["error"]["message"])
        self.assertEqual(self.call("ben", "POST", "/api/v1/channels/general/members", {})[0], 200)
        self.assertEqual(self.post("ben", "general", "joined")[0], 201)
        # a viewer member reads but cannot post (or create, or join)
        code, doc = self.post("vic", "general", "viewer here")
        self.assertEqual(code, 403, doc)
        self.assertEqual(self.call("vic", "POST", "/api/v1/channels", {"name": "v"})[0], 403)
        # another org: no such channel, and its list does not show ours
        for path in ("/api/v1/channels/general", "/api/v1/channels/general/messages"):
            code, doc = self.call("bob", "GET", path)
            self.assertEqual(code, 404, doc)
        self.assertEqual(self.post("bob", "general", "hi")[0], 404)
        self.assertEqual(self.call("bob", "GET", "/api/v1/channels")[1]["channels"], [])
        names = [c["name"] for c in self.call("vic", "GET", "/api/v1/channels")[1]["channels"]]
        self.assertIn("general", names)
        # bad input: changes nothing
        for text in ("", "x" * (16 * 1024 + 1)):
            self.assertEqual(self.post("ann", "general", text)[0], 400)
        for name in ("Upper", "a/b", "-x", "x" * 49, "~q", "a~b"):
            self.assertEqual(self.call("ann", "POST", "/api/v1/channels", {"name": name})[0],
                             400, name)
        self.assertEqual(self.call("ann", "POST", "/api/v1/channels", {"name": "general"})[0],
                         409)
        self.assertEqual(self.call("ann", "GET", "/api/v1/channels/general")[1]["messages"], 8)
        # audit: create, member, message (length, not the text), denials
        self.assertTrue(self.audit("channel.create", "channel:general"))
        msgs = self.audit("channel.message", "channel:general")
        oks = [e for e in msgs if e["result"] == "ok"]
        self.assertEqual(len(oks), 8)
        self.assertIn(len("message 1 ünïcode".encode()), [e["details"]["length"] for e in oks])
        self.assertEqual({e["details"]["channel"] for e in oks}, {"general"})
        self.assertNotIn("ünïcode", str(msgs))
        self.assertIn(("user:ben", "denied"), [(e["actor"], e["result"]) for e in msgs])
        self.assertIn(("user:vic", "denied"), [(e["actor"], e["result"]) for e in msgs])
        self.assertIn("user:ben", [e["actor"] for e in self.audit("channel.member",
                                                                  "channel:general")])

    def test_a_mention_waits_while_the_pod_works_and_arrives_once_with_provenance(self):
        pid = self.pod("ann", display_name="Builder Bot")
        self.create("ann", "work", ["user:ben"])
        # ben may not prompt ann's pod: kept, refused with the reason, nothing typed
        code, doc = self.post("ben", "work", f"@{pid} delete everything")
        self.assertEqual(code, 201, doc)
        self.assertEqual([(m["pod"], m["state"]) for m in doc["mentions"]], [(pid, "refused")])
        self.assertIn("started by another user", doc["mentions"][0]["reason"])
        # ann may: queued while the pod works (mentioned by display name, control chars)
        code, doc = self.post("ann", "work", "@Builder Bot please\x1b[31m fix\x07 it\u009b2J")
        self.assertEqual(code, 201, doc)
        self.assertEqual([(m["pod"], m["state"]) for m in doc["mentions"]], [(pid, "queued")])
        seq = doc["seq"]
        self.assertEqual(self.call("admin", "GET", f"/api/v1/pods/{pid}")[1]["agent_state"],
                         "working")
        self.assertEqual(self.mention_state("work", seq, pid), "queued")
        self.assertEqual(self.pastes(pid), [])
        # positive control for the reader, and the trigger: GO makes the pod go waiting
        self.assertEqual(self.call("ann", "POST", f"/api/v1/pods/{pid}/prompt",
                                   {"text": "GO"})[0], 200)
        got = wait_for(lambda: len(self.pastes(pid)) >= 2 and self.pastes(pid), 30,
                       what="the mention delivered after waiting")
        # order proves it was not typed while the pod worked: GO first, then the mention
        self.assertEqual(got[0], paste("GO"))
        self.assertEqual(got[1], paste("[#work, from ann]: @Builder Bot please[31m fix it2J"))
        self.assertEqual(got[1].count(b"\x1b"), 2)
        self.assertNotIn(b"delete everything", b"".join(got))
        wait_for(lambda: self.mention_state("work", seq, pid) == "delivered", 15,
                 what="mention marked delivered")
        # exactly once: another waiting report (a second GO) types nothing more of it
        self.assertEqual(self.call("ann", "POST", f"/api/v1/pods/{pid}/prompt",
                                   {"text": "GO"})[0], 200)
        wait_for(lambda: len(self.pastes(pid)) >= 3, 30, what="second GO")
        self.assertEqual(len([p for p in self.pastes(pid) if b"from ann" in p]), 1)
        # a pod that already waits gets a new mention at once (an admin may prompt any pod)
        wait_for(lambda: self.call("admin", "GET", f"/api/v1/pods/{pid}")[1].get(
            "agent_state") == "waiting", 30, what="pod waiting again")
        self.assertEqual(self.call("admin", "POST", "/api/v1/channels/work/members", {})[0], 200)
        code, doc = self.post("admin", "work", f"@{pid} one more")
        self.assertEqual(code, 201, doc)
        self.assertEqual(self.wait_paste_count(pid, 4)[3], paste(f"[#work, from admin]: @{pid} one more"))
        states = [(e["details"].get("state"), e["details"].get("seq"), e["result"])
                  for e in self.audit("channel.mention", "pod:" + pid)]
        self.assertIn(("refused", seq - 1, "denied"), states)
        self.assertIn(("queued", seq, "ok"), states)
        self.assertEqual(states.count(("delivered", seq, "ok")), 1)  # once, for that message
        self.assertNotIn("please", str(self.audit("channel.mention")))
        api(self.d, "POST", f"/api/v1/pods/{pid}/stop", self.admin, {})

    def test_a_queued_mention_of_a_pod_that_ends_is_dropped(self):
        pid = self.pod("ann")
        self.create("ann", "ends")
        code, doc = self.post("ann", "ends", f"@{pid} later")
        self.assertEqual((code, doc["mentions"][0]["state"]), (201, "queued"), doc)
        self.assertIn(self.call("ann", "POST", f"/api/v1/pods/{pid}/stop", {})[0], (200, 202))
        wait_for(lambda: self.mention_state("ends", doc["seq"], pid) == "dropped", 60,
                 what="queued mention dropped at pod end")
        self.assertIn("dropped", [e["details"].get("state")
                                  for e in self.audit("channel.mention", "pod:" + pid)])
        # a mention of an ended pod is refused at once
        code, doc = self.post("ann", "ends", f"@{pid} again")
        self.assertEqual(doc["mentions"][0]["state"], "refused", doc)

    def test_the_cli_creates_posts_reads_and_joins(self):
        ctl = lambda *a, **kw: harness.ctl(self.d, *a, home=self.home, **kw)  # noqa: E731
        r = ctl("channel", "create", "cli", "--member", "user:ben")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("channel #cli created (2 members)", r.stdout)
        r = ctl("channel", "post", "cli", "hello from the cli")
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "message 1 posted to #cli"),
                         r.stderr)
        r = ctl("channel", "post", "cli", "-", stdin="two lines\nfrom stdin")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ctl("channel", "post", "cli", "@p-000000000000 nobody")  # no such pod: just text
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ctl("channel", "read", "cli", "--limit", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertRegex(lines[0], r"^2  .*  ann: two lines")
        self.assertRegex(lines[-2], r"^3  .*  ann: @p-000000000000 nobody")
        self.assertEqual(lines[-1], "(more: --before 2)")
        r = ctl("channel", "read", "cli", "--after", "1", "--json")
        self.assertEqual([m["seq"] for m in json.loads(r.stdout)["messages"]], [2, 3])
        r = ctl("channel", "list")
        self.assertRegex(r.stdout, r"(?m)^cli\s+2\s+3\s+user:ann")
        r = ctl("channel", "leave", "cli")
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "left #cli"), r.stderr)
        r = ctl("channel", "post", "cli", "after leaving")
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a member", r.stderr)
        r = ctl("channel", "join", "cli")
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "joined #cli"), r.stderr)
        r = ctl("channel", "create", "Bad/Name")
        self.assertEqual(r.returncode, 2)
        r = ctl("channel", "--help")
        self.assertEqual(r.returncode, 0)
        for word in ("create", "list", "join", "leave", "post", "read", "--member", "--before",
                     "--after", "--limit", "--json"):
            self.assertIn(word, r.stdout)

    def test_zz_a_queued_mention_survives_an_appliance_restart(self):
        # last (name order): it restarts the class's airmeshd
        pid = self.pod("ann")
        self.create("ann", "restart")
        code, doc = self.post("ann", "restart", f"@{pid} after the restart")
        self.assertEqual((code, doc["mentions"][0]["state"]), (201, "queued"), doc)
        d = type(self).d
        self.assertEqual(d.stop(), 0)
        type(self).d = Daemon(d.data, port=d.port, grpc_port=d.grpc_port).wait_ready()
        wait_for(lambda: self.call("admin", "GET", f"/api/v1/pods/{pid}")[1].get("state") ==
                 "running" and any(r.get("state") == "online" for r in self.call(
                     "admin", "GET", "/api/v1/runners")[1].get("runners", [])), 60,
                 what="runner back, pod running")
        self.assertEqual(self.mention_state("restart", doc["seq"], pid), "queued")
        self.assertEqual(self.call("ann", "POST", f"/api/v1/pods/{pid}/prompt",
                                   {"text": "GO"})[0], 200)
        got = self.wait_paste_count(pid, 2)
        self.assertEqual(got[1], paste(f"[#restart, from ann]: @{pid} after the restart"))
        api(self.d, "POST", f"/api/v1/pods/{pid}/stop", self.admin, {})


if __name__ == "__main__":
    unittest.main(verbosity=2)
