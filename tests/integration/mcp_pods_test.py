#!/usr/bin/python3
"""The pod, binding and channel MCP tools (issue 13) driven from inside real pods through the
official MCP TypeScript SDK's client (tests/mcp/client.cjs via harness.mcp_pod), with every
decision checked against what the REST API and the audit log then show.

Proves:
  - delegate_task creates a ticket and a pod for it (branch = the key, started for the caller's
    human starter), bound to the caller with read+write (active: same starter); wait_for_pod
    returns once the pod waits;
  - a channel message from pod A is readable by pod B (bound, a member), and not by an unbound
    pod C (not a member; it cannot be added without a binding either) nor by a pod of another
    org; list_channels shows a pod only its own channels;
  - get_pod_snapshot / send_pod_input without a binding are refused (denied records with the pod
    as actor, nothing typed), and with one work (the screen's text; the typed line arrives);
  - a pod's @mention of a busy pod is queued, NOT typed while it works, and arrives once it is
    waiting, with its provenance "[#channel, from pod:<A>]: ..."; a mention without a write
    binding is refused with the reason and the message stays;
  - every tools/call is one mcp.call audit event with the pod as actor, and the changes
    (ticket.create, pod.create, binding.request, channel.*) name the pod too.
"""
import json
import os
import re
import time
import unittest

import harness
from harness import Runner, api, token_login, wait_for, mcp_pod, mcp_results, mcp_structured
from harness import mcp_error_text

MISSING = harness.mcp_client_missing()

# A plain pod that says it is working, then waits for one line on its terminal, then says it is
# waiting and echoes every further line as GOT:<line>.
TARGET = ("airmesh-notify working >/dev/null 2>&1; echo SCREEN-MARK-42; read first; "
          "airmesh-notify waiting >/dev/null 2>&1; while read l; do echo \"GOT:$l\"; done")

# channels_test's reader: working, a tick each second while it works, every bracketed paste in
# hex, "waiting" once a paste is exactly GO.
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


@unittest.skipIf(MISSING != "", MISSING)
class McpPodsTest(harness.AdminRunnerTest):
    rtmp_prefix = "airmesh-mcp-pods-test-"

    @classmethod
    def runner_argv(cls):
        return ("--agents-dir", harness.agents_dir(), "--capacity", "16")

    @classmethod
    def prepare(cls):
        d = cls.d
        cls.admin = token_login(d, "admin", d.read_password())
        cls.repo = harness.make_repo(os.path.join(cls.tmp, "repo"), {"README": "pods test\n"})
        for name in ("mia", "dan"):
            code, u = api(d, "POST", "/api/v1/users", cls.admin,
                          {"name": name, "role": "member", "password": name + "-password-123"})
            assert code == 201, u
        cls.mia = token_login(d, "mia", "mia-password-123")
        cls.dan = token_login(d, "dan", "dan-password-123")
        cls.beta_runner = None

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "beta_runner", None) is not None:
            cls.beta_runner.stop(timeout=30)
        super().tearDownClass()

    # ---- helpers ----

    def plain_pod(self, token, script, **extra):
        body = {"repo": self.repo, "command": ["sh", "-c", script]}
        body.update(extra)
        code, p = api(self.d, "POST", "/api/v1/pods", token, body)
        self.assertEqual(code, 201, p)
        return p["id"]

    def pod(self, pid, token=None):
        code, p = api(self.d, "GET", "/api/v1/pods/" + pid, token or self.admin)
        self.assertEqual(code, 200, p)
        return p

    def wait_running(self, pid):
        wait_for(lambda: self.pod(pid).get("state") not in ("pending", "starting"), 180,
                 what="pod %s started" % pid)
        p = self.pod(pid)
        self.assertEqual(p.get("state"), "running", p)

    def wait_agent(self, pid, state):
        wait_for(lambda: self.pod(pid).get("agent_state") == state, 60,
                 what="pod %s %s" % (pid, state))

    def logs(self, pid):
        return harness.mcp_output(self.d, self.admin, pid)

    def prompt(self, token, pid, text):
        code, doc = api(self.d, "POST", "/api/v1/pods/%s/prompt" % pid, token, {"text": text})
        self.assertEqual(code, 200, doc)

    def audit(self, action, actor=None):
        q = "/api/v1/audit?limit=1000&action=" + action
        if actor:
            q += "&actor=" + actor
        code, doc = api(self.d, "GET", q, self.admin)
        self.assertEqual(code, 200, doc)
        return doc["events"]

    def assert_calls_audited(self, pid, tools):
        """Every tools/call of pod pid is one mcp.call record with the pod as actor."""
        recs = self.audit("mcp.call", "pod:" + pid)
        self.assertEqual(sorted(r["details"]["tool"] for r in recs), sorted(tools), recs)
        for r in recs:
            self.assertEqual(r["actor"], "pod:" + pid, r)

    def bindings(self):
        code, doc = api(self.d, "GET", "/api/v1/bindings", self.admin)
        self.assertEqual(code, 200, doc)
        return doc["bindings"]

    # ---- tests ----

    def test_delegate_task_creates_a_bound_pod_and_a_ticket_and_wait_for_pod_returns(self):
        target = self.plain_pod(self.mia, TARGET)
        self.wait_running(target)
        self.wait_agent(target, "working")
        title = "delegated %d" % time.time_ns()
        a = mcp_pod(self.d, self.mia, self.repo, [
            {"op": "call", "name": "delegate_task",
             "args": {"title": title, "prompt": "count to three",
                      "command": ["sh", "-c", "echo delegated-pod-up; exec sleep 600"]}},
            {"op": "call", "name": "get_pod_status", "args": {"pod_id": target}},
            {"op": "call", "name": "wait_for_pod", "args": {"pod_id": target, "timeout_s": 120}},
            {"op": "call", "name": "list_pods", "args": {}}])
        first = mcp_results(self.d, self.mia, a, n=2)
        got = mcp_structured(first[0])
        self.assertEqual(mcp_structured(first[1])["agent_state"], "working")
        # the target is working: wait_for_pod is still waiting; now let it wait for input
        self.prompt(self.mia, target, "go")
        res = mcp_results(self.d, self.mia, a)
        waited = mcp_structured(res[2])
        self.assertEqual((waited["agent_state"], waited["timed_out"]), ("waiting", False))
        # the ticket and the pod, as the API shows them
        key, new = got["ticket"], got["pod_id"]
        code, t = api(self.d, "GET", "/api/v1/tickets/" + key, self.mia)
        self.assertEqual(code, 200, t)
        self.assertEqual(t["title"], title)
        self.assertIn("count to three", t["description"])
        self.assertIn(new, t.get("pods", t.get("pod_ids", [])), t)
        p = self.pod(new)
        self.assertEqual(p["created_by"], "user:mia")  # the caller's human, not the pod
        self.assertEqual(p["branch"], key.lower())
        wait_for(lambda: "delegated-pod-up" in self.logs(new), 60, what="delegated pod runs")
        # bound to the caller with read + write, active (same starter)
        b = got["binding"]
        self.assertEqual((b["from_pod"], b["to_pod"], b["scopes"], b["state"]),
                         (a, new, ["read", "write"], "active"), b)
        # the caller's client has finished and its pod ended: its bindings ended with it
        wait_for(lambda: self.pod(a).get("state") in ("exited", "failed", "stopped"), 60,
                 what="caller ended")
        ended = {x["id"]: x for x in self.bindings()}[b["id"]]
        self.assertEqual((ended["state"], ended["decided_by"]), ("ended", "system"), ended)
        self.assertIn(a, ended["reason"])
        # list_pods shows the binding from the caller's side
        rows = {r["id"]: r for r in mcp_structured(res[3])["pods"]}
        self.assertEqual(rows[new]["binding"], ["read", "write"])
        self.assertTrue(rows[a]["self"])
        self.assertEqual(rows[target]["binding"], [])
        # audited with the pod as actor
        self.assertIn("pod:" + a, [e["actor"] for e in self.audit("ticket.create")
                                   if e["target"].endswith(key)])
        self.assertIn("pod:" + a, [e["actor"] for e in self.audit("pod.create")
                                   if e["target"] == "pod:" + new])
        self.assertIn("pod:" + a, [e["actor"] for e in self.audit("binding.request")
                                   if e["target"] == "binding:" + b["id"]])
        self.assert_calls_audited(a, ["delegate_task", "get_pod_status", "wait_for_pod",
                                      "list_pods"])

    def test_a_channel_message_is_readable_by_a_bound_member_only(self):
        read_steps = [{"op": "wait_stdin"},
                      {"op": "call", "name": "get_channel_messages", "args": {"channel": "work"}},
                      {"op": "call", "name": "list_channels", "args": {}}]
        b = mcp_pod(self.d, self.mia, self.repo, read_steps)
        c = mcp_pod(self.d, self.dan, self.repo, read_steps + [
            {"op": "call", "name": "send_channel_message",
             "args": {"channel": "work", "text": "let me in"}}])
        for p in (b, c):
            self.wait_running(p)
        text = "hello from A to @%s and @%s" % (b, c)
        a = mcp_pod(self.d, self.mia, self.repo, [
            {"op": "call", "name": "create_channel", "args": {"name": "work",
                                                              "members": ["pod:" + b]}},
            {"op": "call", "name": "bind_pod", "args": {"pod_id": b, "scopes": ["write"]}},
            {"op": "call", "name": "create_channel", "args": {"name": "work",
                                                              "members": ["pod:" + b]}},
            {"op": "call", "name": "create_channel", "args": {"name": "work-c",
                                                              "members": ["pod:" + c]}},
            {"op": "call", "name": "send_channel_message",
             "args": {"channel": "work", "text": text}},
            {"op": "call", "name": "get_channel_messages", "args": {"channel": "work"}}])
        res = mcp_results(self.d, self.mia, a)
        # no binding to B yet: adding B is refused (the attack), then with one it works
        self.assertIn("write binding", mcp_error_text(res[0]))
        self.assertEqual(mcp_structured(res[1])["binding"]["state"], "active")
        ch = mcp_structured(res[2])["channel"]
        self.assertEqual(sorted(ch["members"]), sorted(["pod:" + a, "pod:" + b]))
        self.assertIn("write binding", mcp_error_text(res[3]))  # no binding to C
        msg = mcp_structured(res[4])["message"]
        self.assertEqual(msg["author"], "pod:" + a)
        states = {m["pod"]: m for m in msg["mentions"]}
        self.assertEqual(states[b]["state"], "queued")
        self.assertEqual(states[c]["state"], "refused")
        self.assertIn("no active write binding", states[c]["reason"])
        self.assertEqual(mcp_structured(res[5])["messages"][-1]["text"], text)
        # the message is in the API, and channel.create names the pod
        code, doc = api(self.d, "GET", "/api/v1/channels/work/messages", self.admin)
        self.assertEqual([m["text"] for m in doc["messages"]], [text])
        self.assertIn("pod:" + a, [e["actor"] for e in self.audit("channel.create")
                                   if e["result"] == "ok"])
        # a pod of another org, told the channel's name
        x = self.beta_pod(read_steps)
        for p, tok in ((b, self.mia), (c, self.dan), (x, self.bea)):
            self.prompt(tok, p, "read")
        rb = mcp_results(self.d, self.mia, b)
        got = mcp_structured(rb[1])["messages"]
        self.assertEqual([(m["author"], m["text"]) for m in got], [("pod:" + a, text)])
        self.assertEqual([ch["name"] for ch in mcp_structured(rb[2])["channels"]], ["work"])
        rc = mcp_results(self.d, self.dan, c)
        self.assertIn("not a member", mcp_error_text(rc[1]))
        self.assertEqual(mcp_structured(rc[2])["channels"], [])
        self.assertIn("not a member", mcp_error_text(rc[3]))
        rx = mcp_results(self.d, self.bea, x)
        self.assertIn("no such channel", mcp_error_text(rx[1]))
        self.assertEqual(mcp_structured(rx[2])["channels"], [])
        self.assert_calls_audited(a, ["create_channel"] * 3 + ["bind_pod", "send_channel_message",
                                                               "get_channel_messages"])
        self.assert_calls_audited(c, ["get_channel_messages", "list_channels",
                                      "send_channel_message"])

    def beta_pod(self, steps):
        d = self.d
        if self.beta_runner is None:
            code, org = api(d, "POST", "/api/v1/orgs", self.admin,
                            {"id": "podsbeta", "owner": "bea", "password": "bea-password-123"})
            self.assertEqual(code, 201, org)
            type(self).bea = token_login(d, "bea", "bea-password-123", "podsbeta")
            code, tok = api(d, "POST", "/api/v1/runner-tokens", self.bea, {"ttl": "10m"})
            self.assertEqual(code, 201, tok)
            data = os.path.join(self.rtmp, "beta-runner")
            Runner.enroll(d, tok["token"], tok["ca_sha256"], data)
            type(self).beta_runner = Runner(data, "--agents-dir", harness.agents_dir())
            harness.wait_runner_online(d, token=self.bea)
        x = mcp_pod(d, self.bea, self.repo, steps)
        wait_for(lambda: api(d, "GET", "/api/v1/pods/" + x, self.bea)[1].get("state") ==
                 "running", 60, what="beta pod running")
        return x

    def test_snapshot_and_input_are_refused_without_a_binding_and_work_with_one(self):
        t = self.plain_pod(self.mia, TARGET)
        self.wait_running(t)
        wait_for(lambda: "SCREEN-MARK-42" in self.logs(t), 60, what="target's screen")
        self.prompt(self.mia, t, "start")  # past its first read: now it echoes lines
        self.wait_agent(t, "waiting")
        # dan's pod: not bound (and dan does not control t)
        e = mcp_pod(self.d, self.dan, self.repo, [
            {"op": "call", "name": "get_pod_snapshot", "args": {"pod_id": t}},
            {"op": "call", "name": "send_pod_input", "args": {"pod_id": t, "text": "evil"}},
            {"op": "call", "name": "bind_pod", "args": {"pod_id": t}},
            {"op": "wait_stdin"},
            {"op": "call", "name": "get_pod_snapshot", "args": {"pod_id": t}}])
        res = mcp_results(self.d, self.dan, e, n=3)
        self.assertIn("no active read binding", mcp_error_text(res[0]))
        self.assertIn("no active write binding", mcp_error_text(res[1]))
        pending = mcp_structured(res[2])["binding"]
        self.assertEqual(pending["state"], "pending")  # another starter: t's side decides
        self.assertNotIn("GOT:evil", self.logs(t))
        for action in ("pod.snapshot", "pod.input"):
            self.assertIn(("pod:" + e, "denied"), [(r["actor"], r["result"]) for r in
                                                   self.audit(action)])
        # mia's pod: refused first too (no binding), then binds (same starter: active) and
        # reads the screen and types a line (the positive control)
        a = mcp_pod(self.d, self.mia, self.repo, [
            {"op": "call", "name": "get_pod_snapshot", "args": {"pod_id": t}},
            {"op": "call", "name": "bind_pod", "args": {"pod_id": t, "scopes": ["read", "write"]}},
            {"op": "call", "name": "get_pod_snapshot", "args": {"pod_id": t, "lines": 20}},
            {"op": "call", "name": "send_pod_input",
             "args": {"pod_id": t, "text": "hello-from-a\u0007\u001b[31m"}},
            {"op": "call", "name": "get_bindings", "args": {}}])
        res = mcp_results(self.d, self.mia, a)
        self.assertIn("no active read binding", mcp_error_text(res[0]))
        self.assertEqual(mcp_structured(res[1])["binding"]["state"], "active")
        screen = mcp_structured(res[2])["text"]
        self.assertIn("SCREEN-MARK-42", screen)
        self.assertNotIn("\x1b", screen)
        sent = mcp_structured(res[3])
        self.assertEqual(sent["sent_bytes"], len("hello-from-a[31m") + 1)
        wait_for(lambda: "GOT:hello-from-a[31m" in self.logs(t), 30, what="typed line arrives")
        mine = mcp_structured(res[4])["bindings"]
        self.assertEqual({(x["from_pod"], x["to_pod"]) for x in mine}, {(a, t)})
        inp = [r for r in self.audit("pod.input", "pod:" + a) if r["result"] == "ok"]
        self.assertEqual(len(inp), 1, inp)
        self.assertTrue(inp[0]["details"]["by"].startswith("binding:"), inp)
        # dan's pending binding: dan cannot accept it (not t's side), mia (t's starter) can;
        # then dan's pod reads t's screen
        code, doc = api(self.d, "POST", "/api/v1/bindings/%s/accept" % pending["id"], self.dan)
        self.assertEqual(code, 403, doc)
        code, doc = api(self.d, "POST", "/api/v1/bindings/%s/accept" % pending["id"], self.mia)
        self.assertEqual((code, doc.get("state")), (200, "active"), doc)
        self.prompt(self.dan, e, "again")
        res = mcp_results(self.d, self.dan, e)
        self.assertIn("SCREEN-MARK-42", mcp_structured(res[4])["text"])
        self.assert_calls_audited(e, ["get_pod_snapshot", "send_pod_input", "bind_pod",
                                      "get_pod_snapshot"])

    def test_a_mention_reaches_a_busy_pod_only_once_it_waits_with_provenance(self):
        code, p = api(self.d, "POST", "/api/v1/pods", self.mia,
                      {"repo": self.repo, "command": ["python3", "-c", READER]})
        self.assertEqual(code, 201, p)
        m = p["id"]
        wait_for(lambda: "READY" in self.logs(m), 60, what="reader ready")
        self.wait_agent(m, "working")
        text = "@%s please review the diff" % m
        a = mcp_pod(self.d, self.mia, self.repo, [
            {"op": "call", "name": "bind_pod", "args": {"pod_id": m, "scopes": ["write"]}},
            {"op": "call", "name": "create_channel", "args": {"name": "busy",
                                                              "members": ["pod:" + m]}},
            {"op": "call", "name": "send_channel_message",
             "args": {"channel": "busy", "text": text}}])
        res = mcp_results(self.d, self.mia, a)
        msg = mcp_structured(res[2])["message"]
        self.assertEqual(msg["mentions"][0]["state"], "queued")
        seq = msg["seq"]

        def state():
            code, doc = api(self.d, "GET", "/api/v1/channels/busy/messages?after=%d&limit=1" %
                            (seq - 1), self.admin)
            self.assertEqual(code, 200, doc)
            return doc["messages"][0]["mentions"][0]["state"]
        # while it works, nothing is typed: a later paste proves the pod reads its input, and
        # the mention is still queued after it
        self.prompt(self.mia, m, "still busy")
        wait_for(lambda: any(b"still busy" in x for x in self.pastes(m)), 30, what="paste 1")
        self.assertEqual(state(), "queued")
        self.assertFalse([x for x in self.pastes(m) if b"please review" in x])
        # it waits: the mention arrives once, with its provenance
        self.prompt(self.mia, m, "GO")
        wait_for(lambda: state() == "delivered", 30, what="mention delivered")
        want = b"\x1b[200~[#busy, from pod:" + a.encode() + b"]: " + text.encode() + \
            b"\x1b[201~\r"
        wait_for(lambda: want in self.pastes(m), 30, what="the mention typed")
        self.assertEqual(self.pastes(m).count(want), 1)
        mentions = [e for e in self.audit("channel.mention") if e["target"] == "pod:" + m]
        self.assertIn(("pod:" + a, "ok", "queued"),
                      [(e["actor"], e["result"], e["details"]["state"]) for e in mentions])
        self.assertIn(("system", "delivered"),
                      [(e["actor"], e["details"]["state"]) for e in mentions])
        self.assert_calls_audited(a, ["bind_pod", "create_channel", "send_channel_message"])

    def pastes(self, pid):
        return [bytes.fromhex(h) for h in re.findall(r"PASTE:([0-9a-f]*):END", self.logs(pid))]


if __name__ == "__main__":
    unittest.main(verbosity=2)
