#!/usr/bin/python3
"""airmesh's MCP tools driven from inside real pods (issue 13), the way an agent does it: the
official MCP TypeScript SDK's Client with StdioClientTransport (tests/mcp/client.cjs, from the
npm registry via tests/agents) spawns /opt/airmesh/bin/airmesh-mcp in the pod, which relays to
the pod's MCP socket, the runner, its mTLS stream and airmeshd.

Proves:
  - initialize (server info, capabilities, instructions, protocol version negotiation) and
    tools/list with the ticket tools' JSON Schemas and readOnlyHint;
  - create_ticket / update_ticket / post_comment change what GET /api/v1/tickets shows, a
    refused status move names the allowed ones, and every call is one "mcp.call" audit event
    with actor pod:<id> (the ticket.* records too);
  - identity cannot be forged: (a) an argument, _meta or a JSON-RPC field naming another pod is
    refused or ignored (the actor stays the caller); (b) pod B's socket exists (seen from the
    host through /proc/<B's process>/root, and B's own client works) but pod A cannot reach it
    (A tried that path: ENOENT in its own mount namespace; A's own socket works); (c) a pod whose
    starter was disabled is refused (denied mcp.call record);
  - malformed lines get the JSON-RPC errors the spec names (-32700, -32600, -32601, -32602), an
    oversized line drops the connection, and airmeshd and the runner stay up;
  - airmesh-mcp answers with an error saying why when its socket cannot be reached;
  - a pod of another org sees only that org's tickets.
"""
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
import unittest

import harness
from harness import Runner, api, token_login, wait_for, mcp_pod, mcp_results, mcp_structured
from harness import mcp_error_text

MISSING = harness.mcp_client_missing()
TICKET_TOOLS = {"search_tickets", "get_ticket", "create_ticket", "update_ticket", "post_comment"}


@unittest.skipIf(MISSING != "", MISSING)
class McpTest(harness.AdminRunnerTest):
    rtmp_prefix = "airmesh-mcp-test-"

    @classmethod
    def runner_argv(cls):
        return ("--agents-dir", harness.agents_dir())

    @classmethod
    def prepare(cls):
        d = cls.d
        cls.admin = token_login(d, "admin", d.read_password())
        cls.repo = harness.make_repo(os.path.join(cls.tmp, "repo"), {"README": "mcp test\n"})
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

    def run_steps(self, token, steps, **kw):
        pid = mcp_pod(self.d, token, self.repo, steps, **kw)
        return pid, mcp_results(self.d, token, pid)

    def audit(self, action, actor=None):
        q = "/api/v1/audit?limit=1000&action=" + action
        if actor:
            q += "&actor=" + actor
        code, doc = api(self.d, "GET", q, self.admin)
        self.assertEqual(code, 200, doc)
        return doc["events"]

    def tickets(self, token=None):
        code, doc = api(self.d, "GET", "/api/v1/tickets", token or self.admin)
        self.assertEqual(code, 200, doc)
        return {t["key"]: t for t in doc["tickets"]}

    def new_ticket(self, title, token=None):
        code, t = api(self.d, "POST", "/api/v1/tickets", token or self.admin, {"title": title})
        self.assertEqual(code, 201, t)
        return t["key"]

    def wait_ended(self, pid, token=None):
        wait_for(lambda: api(self.d, "GET", "/api/v1/pods/" + pid, token or self.admin)[1]
                 .get("state") in ("exited", "failed", "stopped"), 60, what="pod ended")

    # ---- tests ----

    def test_initialize_and_tools_list_show_the_ticket_tools_with_schemas(self):
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2024-11-05", "capabilities": {},
                           "clientInfo": {"name": "raw", "version": "0"}}}
        future = dict(init, id=2, params=dict(init["params"], protocolVersion="2999-01-01"))
        pid, res = self.run_steps(self.mia, [
            {"op": "init"}, {"op": "list"},
            {"op": "raw", "lines": [json.dumps(init), json.dumps(future),
                                    '{"jsonrpc":"2.0","id":3,"method":"ping"}'], "expect": 3}])
        init_r, list_r, raw_r = res
        self.assertEqual(init_r["server"]["name"], "airmesh", init_r)
        self.assertIn("tools", init_r["capabilities"])
        self.assertIn("search_tickets", init_r["instructions"])
        tools = {t["name"]: t for t in list_r["tools"]}
        self.assertTrue(TICKET_TOOLS <= set(tools), sorted(tools))
        for name in TICKET_TOOLS:
            t = tools[name]
            self.assertEqual(t["inputSchema"]["type"], "object", t)
            self.assertFalse(t["inputSchema"].get("additionalProperties", True), t)
            self.assertTrue(t["description"], t)
            self.assertEqual(t["annotations"]["readOnlyHint"],
                             name in ("search_tickets", "get_ticket"), t)
        self.assertIn("status", tools["update_ticket"]["inputSchema"]["properties"])
        self.assertEqual(tools["update_ticket"]["inputSchema"]["required"], ["key"])
        by_id = {r["id"]: r for r in raw_r["responses"]}
        self.assertEqual(by_id[1]["result"]["protocolVersion"], "2024-11-05")  # the client's
        self.assertEqual(by_id[2]["result"]["protocolVersion"], "2025-06-18")  # ours
        self.assertEqual(by_id[3]["result"], {})

    def test_ticket_tools_change_what_the_api_shows_and_every_call_is_audited_as_the_pod(self):
        key = self.new_ticket("a ticket for an agent")
        self.assertEqual(self.tickets()[key]["status"], "backlog")  # positive control
        title = "made by a pod %d" % time.time_ns()
        pid, res = self.run_steps(self.mia, [
            {"op": "call", "name": "update_ticket",
             "args": {"key": key, "status": "in_progress", "assignee": "me", "priority": "high",
                      "labels": ["mcp", "agent"]}},
            {"op": "call", "name": "create_ticket", "args": {"title": title, "status": "todo"}},
            {"op": "call", "name": "post_comment", "args": {"key": key, "body": "on it"}},
            {"op": "call", "name": "update_ticket", "args": {"key": key, "status": "done"}},
            {"op": "call", "name": "search_tickets", "args": {"assignee": "me"}},
            {"op": "call", "name": "get_ticket", "args": {"key": key}},
            {"op": "time_calls", "name": "get_ticket", "args": {"key": key}, "n": 50}])
        # A number for the report, not a check: 50 get_ticket calls one after another, pod →
        # airmesh-mcp → socket → runner → stream → airmeshd (audited each) → back.
        print("MCP tools/call round trip: %.2f ms per call (%d calls, ASan build)" %
              (res[6]["ms"] / res[6]["n"], res[6]["n"]), file=sys.stderr)
        upd = mcp_structured(res[0])["ticket"]
        self.assertEqual((upd["status"], upd["assignee"]), ("in_progress", "pod:" + pid))
        created = mcp_structured(res[1])["ticket"]
        self.assertEqual(mcp_structured(res[2])["ticket"]["comments"][-1]["author"], "pod:" + pid)
        refused = mcp_error_text(res[3])
        self.assertIn("in_progress → done is not allowed", refused)
        self.assertIn("in_review", refused)  # names the allowed moves
        self.assertEqual([t["key"] for t in mcp_structured(res[4])["tickets"]], [key])
        self.assertEqual(mcp_structured(res[5])["ticket"]["comments"][-1]["body"], "on it")
        # What a user sees through the API.
        t = self.tickets()
        self.assertEqual(t[key]["status"], "in_progress")
        self.assertEqual(t[key]["assignee"], "pod:" + pid)
        self.assertEqual(t[key]["priority"], "high")
        self.assertEqual(sorted(t[key]["labels"]), ["agent", "mcp"])
        self.assertEqual(t[created["key"]]["title"], title)
        self.assertEqual(t[created["key"]]["created_by"], "pod:" + pid)
        # One mcp.call per call, actor the pod; the ticket records too.
        calls = self.audit("mcp.call", "pod:" + pid)
        self.assertEqual(sorted(e["details"]["tool"] for e in calls),
                         sorted(["update_ticket", "create_ticket", "post_comment", "update_ticket",
                                 "search_tickets", "get_ticket"] + ["get_ticket"] * 50), calls)
        self.assertEqual(sorted(e["result"] for e in calls), ["error"] + ["ok"] * 55)
        for action in ("ticket.update", "ticket.create", "ticket.comment"):
            self.assertTrue(self.audit(action, "pod:" + pid), action)

    def test_pods_of_every_network_policy_have_their_socket(self):
        # host shares the host's network (not its mounts); models and allow also get the egress
        # listeners over the same setup socketpair.
        for net in ("none", "host", "models", "allow"):
            pid, res = self.run_steps(self.admin, [{"op": "call", "name": "search_tickets",
                                                    "args": {"limit": 1}}], network=net)
            mcp_structured(res[0])
            self.assertEqual(len(self.audit("mcp.call", "pod:" + pid)), 1, net)

    def test_forged_identity_is_refused(self):
        tag = "b-%d" % time.time_ns()
        # Pod B: one call (its own socket works), then waits with its socket open.
        pid_b = mcp_pod(self.d, self.mia, self.repo, [
            {"op": "call", "name": "search_tickets", "args": {}}, {"op": "wait_stdin"},
            {"op": "call", "name": "search_tickets", "args": {}}], env={"MCP_TAG": tag})
        first = mcp_results(self.d, self.mia, pid_b, n=1)
        mcp_structured(first[0])
        host_pid = harness.pod_process_pid(tag)
        b_sock = "/proc/%d/root/run/airmesh/mcp.sock" % host_pid
        st = os.stat(b_sock)  # positive control: B's socket exists, seen from the host
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o666)
        dir_st = os.stat(os.path.dirname(b_sock))
        self.assertEqual(stat.S_IMODE(dir_st.st_mode), 0o755)
        self.assertNotEqual(dir_st.st_uid, 0)  # pod root's host uid, never host root
        key = self.new_ticket("target of a forged call")
        forged_line = json.dumps({
            "jsonrpc": "2.0", "id": 41, "method": "tools/call", "pod_id": pid_b,
            "params": {"name": "post_comment", "pod_id": pid_b,
                       "_meta": {"pod_id": pid_b, "actor": "pod:" + pid_b},
                       "arguments": {"key": key, "body": "who am I"}}})
        pid_a, res = self.run_steps(self.mia, [
            {"op": "connect", "path": b_sock},            # (b) B's socket, by the host's path
            {"op": "connect", "path": "/run/airmesh/mcp.sock"},  # A's own: positive control
            {"op": "call", "name": "create_ticket",        # (a) an argument naming B
             "args": {"title": "forged", "pod_id": pid_b}},
            {"op": "call", "name": "post_comment", "args": {"key": key, "body": "as whom"},
             "meta": {"pod_id": pid_b}},
            {"op": "raw", "lines": [forged_line], "expect": 1}])
        self.assertEqual((res[0]["path"], res[0]["ok"], res[0]["error"]),
                         (b_sock, False, "ENOENT"), res[0])
        self.assertTrue(res[1]["ok"], res[1])
        self.assertIn("unknown argument 'pod_id'", mcp_error_text(res[2]))
        self.assertEqual(mcp_structured(res[3])["ticket"]["comments"][-1]["author"],
                         "pod:" + pid_a)
        raw = res[4]["responses"][0]
        self.assertEqual(raw["id"], 41, raw)
        self.assertEqual(raw["result"]["structuredContent"]["ticket"]["comments"][-1]["author"],
                         "pod:" + pid_a)
        authors = [c["author"] for c in self.tickets()[key]["comments"]]
        self.assertEqual(authors, ["pod:" + pid_a, "pod:" + pid_a])
        self.assertFalse(self.audit("ticket.comment", "pod:" + pid_b))
        self.assertFalse([t for t in self.tickets().values() if t["title"] == "forged"])
        # B is still itself and still works (positive control after the attack).
        self.assertEqual(api(self.d, "POST", "/api/v1/pods/%s/prompt" % pid_b, self.mia,
                             {"text": "go"})[0], 200)
        res_b = mcp_results(self.d, self.mia, pid_b)
        mcp_structured(res_b[2])
        self.assertEqual(len(self.audit("mcp.call", "pod:" + pid_b)), 2)

    def test_a_pod_whose_starter_was_disabled_is_refused(self):
        pid = mcp_pod(self.d, self.dan, self.repo, [
            {"op": "call", "name": "search_tickets", "args": {}}, {"op": "wait_stdin"},
            {"op": "call", "name": "search_tickets", "args": {}}])
        mcp_structured(mcp_results(self.d, self.admin, pid, n=1)[0])  # works while dan is on
        self.assertEqual(api(self.d, "POST", "/api/v1/users/dan/disable", self.admin, {})[0], 200)
        try:
            self.assertEqual(api(self.d, "POST", "/api/v1/pods/%s/prompt" % pid, self.admin,
                                 {"text": "go"})[0], 200)
            res = mcp_results(self.d, self.admin, pid)
            self.assertIn("disabled", mcp_error_text(res[2]))
            denied = [e for e in self.audit("mcp.call", "pod:" + pid) if e["result"] == "denied"]
            self.assertEqual(len(denied), 1, denied)
            self.assertIn("disabled", denied[0]["details"]["error"])
        finally:
            api(self.d, "POST", "/api/v1/users/dan/enable", self.admin, {})

    def test_malformed_lines_get_the_specs_errors_and_airmeshd_stays_up(self):
        lines = [
            "this is not json",
            '{"jsonrpc":"2.0","id":2}',
            '{"jsonrpc":"2.0","id":3,"method":"resources/nothing"}',
            '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"no_such_tool"}}',
            '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{}}',
            '[{"jsonrpc":"2.0","id":6,"method":"ping"}]',
            '{"jsonrpc":"1.0","id":7,"method":"ping"}',
            '{"jsonrpc":"2.0","method":"notifications/initialized"}',
            '{"jsonrpc":"2.0","id":9,"method":"ping"}',
        ]
        pid, res = self.run_steps(self.mia, [
            {"op": "raw", "lines": lines, "expect": 8},
            {"op": "raw", "repeat": {"text": "x", "count": (1 << 20) + 100}, "timeout_ms": 30000},
            {"op": "raw", "lines": ['{"jsonrpc":"2.0","id":10,"method":"ping"}'], "expect": 1},
            {"op": "call", "name": "search_tickets", "args": {"limit": 0}}])
        got = res[0]["responses"]
        self.assertEqual(len(got), 8, got)  # the notification got no answer
        # Answers come as calls finish (a pod's calls run in parallel): compare as a set.
        codes = sorted((str(r.get("id")), r.get("error", {}).get("code", 0)) for r in got)
        self.assertEqual(codes, sorted([("None", -32700), ("2", -32600), ("3", -32601),
                                        ("4", -32602), ("5", -32602), ("None", -32600),
                                        ("7", -32600), ("9", 0)]), got)
        by_id = {r.get("id"): r for r in got}
        self.assertIn("no_such_tool", by_id[4]["error"]["message"])
        self.assertEqual(by_id[9]["result"], {})
        self.assertTrue(res[1]["closed"], res[1])  # the oversized line: connection dropped
        self.assertEqual(res[1]["responses"], [])
        self.assertEqual(res[2]["responses"][0]["id"], 10)  # a new connection works
        self.assertIn("limit", mcp_error_text(res[3]))  # a bad argument says which
        self.assertIsNone(self.d.proc.poll())
        self.assertIsNone(self.runner.poll())
        self.assertEqual(api(self.d, "GET", "/api/v1/tickets", self.admin)[0], 200)

    def test_airmesh_mcp_says_why_when_its_socket_cannot_be_reached(self):
        pid, res = self.run_steps(self.mia, [{"op": "call", "name": "search_tickets"}],
                                  env={"AIRMESH_MCP_SOCKET": "/run/airmesh/none.sock"})
        self.assertIn("cannot reach the pod's MCP socket /run/airmesh/none.sock",
                      res[0]["error"]["message"])

    def test_a_pod_of_another_org_sees_only_its_own_tickets(self):
        d = self.d
        ours = self.new_ticket("default org only")
        code, org = api(d, "POST", "/api/v1/orgs", self.admin,
                        {"id": "mcpbeta", "owner": "bea", "password": "bea-password-123"})
        self.assertEqual(code, 201, org)
        bea = token_login(d, "bea", "bea-password-123", "mcpbeta")
        code, tok = api(d, "POST", "/api/v1/runner-tokens", bea, {"ttl": "10m"})
        self.assertEqual(code, 201, tok)
        data = os.path.join(self.rtmp, "beta-runner")
        Runner.enroll(d, tok["token"], tok["ca_sha256"], data)
        type(self).beta_runner = Runner(data, "--agents-dir", harness.agents_dir())
        harness.wait_runner_online(d, token=bea)
        theirs = self.new_ticket("beta's own", token=bea)
        pid = mcp_pod(d, bea, self.repo, [
            {"op": "call", "name": "search_tickets", "args": {}},
            {"op": "call", "name": "get_ticket", "args": {"key": ours}},
            {"op": "call", "name": "update_ticket", "args": {"key": ours, "status": "todo"}}])
        res = mcp_results(d, bea, pid)
        keys = [t["key"] for t in mcp_structured(res[0])["tickets"]]
        self.assertEqual(keys, [theirs])  # positive control: it sees its org's ticket
        self.assertIn("no such ticket", mcp_error_text(res[1]))
        self.assertIn("no such ticket", mcp_error_text(res[2]))
        self.assertEqual(self.tickets()[ours]["status"], "backlog")


if __name__ == "__main__":
    unittest.main(verbosity=2)
