#!/usr/bin/python3
"""A real agent CLI calls an airmesh MCP tool from inside its pod (issue 13).

On a real enrolled runner started with --agents-dir (the Claude Code 2.1.332 install
scripts/agents.sh made from tests/agents/package-lock.json, outside the repo), an admin adds the
scripted test model server (tests/model_server) as the org's anthropic endpoint and creates a
ticket; then starts a pod from the catalog's claude preset (`--agent claude --prompt ...`:
interactive Claude Code in bypass mode, as a user gets it) with network `models`, so the model
is reached only through the in-pod gateway. Nothing but the preset's HOME files tells Claude Code
about airmesh-mcp (~/.claude.json mcpServers at user scope, settings.json allowing
mcp__airmesh). The "model" is scripted to answer the prompt with a tool_use of
mcp__airmesh__update_ticket (the ticket to in_review with a new title), then a final text once
the tool's result is back. Claude Code 2.1 connects MCP servers without blocking: when the
first request goes out before airmesh is connected it tells the model to call ToolSearch
(which waits for the server), and the script does what a model does then.

It proves:
  - positive control: Claude Code started airmesh-mcp and offered its tools to the model (a
    Messages request lists mcp__airmesh__update_ticket, with the ticket tools' schema);
  - the call went through the pod's socket, the runner and airmeshd: GET /api/v1/tickets/{key}
    shows the new status and title, and the tool result the model got back says so;
  - the audit has the mcp.call (tool update_ticket, ok) and the ticket.update of it with actor
    pod:<id>, and the tool's result reached the model;
  - no approval prompt stopped it: the recording has no MCP approval dialog.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

import harness
from harness import api, token_login, wait_for

sys.path.insert(0, os.path.dirname(os.path.abspath(os.environ["MODEL_SERVER"])))
import server as model_server  # noqa: E402  tests/model_server/server.py

TOOL = "mcp__airmesh__update_ticket"
NEW_TITLE = "Retitled by the agent through airmesh-mcp"
REAL_KEY = "sk-ant-real-" + os.urandom(8).hex()


def agents_dir():
    """Where scripts/agents.sh installed tests/agents/package-lock.json (agent_test.py's key)."""
    lock = os.path.realpath(os.environ["AGENTS_LOCK"])
    with open(os.path.join(os.path.dirname(lock), "package.json"), "rb") as f:
        data = f.read()
    with open(lock, "rb") as f:
        data += f.read()
    cache = os.environ.get("AIRMESH_AGENTS_CACHE", "/var/cache/airmesh/agents")
    return os.path.join(cache, hashlib.sha256(data).hexdigest()[:16])


AGENTS = agents_dir()
HAVE_AGENTS = os.path.exists(os.path.join(AGENTS, ".complete"))


def details(e):
    return e["details"] if isinstance(e["details"], dict) else json.loads(e["details"] or "{}")


def after_tool(entry):
    """Does this logged Messages request carry a tool result in its newest user message?"""
    body = entry.get("body") if isinstance(entry.get("body"), dict) else {}
    users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    return bool(users) and isinstance(users[-1].get("content"), list) and any(
        isinstance(p, dict) and p.get("type") == "tool_result" for p in users[-1]["content"])


def script(key):
    """What the "model" answers. Rule order matters: the first match answers."""
    return {
        "models": ["test-model"],
        "rules": [
            # 0: the tool is offered (airmesh connected, at once or after ToolSearch) and not
            # called yet: call it.
            {"when": {"api": "messages", "tool_offered": TOOL}, "times": 1,
             "reply": {"tool_call": {"name": TOOL, "arguments": {
                 "key": key, "status": "in_review", "title": NEW_TITLE}},
                 "usage": {"input_tokens": 120, "output_tokens": 25}}},
            # 1: the prompt arrived while airmesh was still connecting (Claude Code says so and
            # points at ToolSearch, which waits for it): load the tool first.
            {"when": {"api": "messages", "tool_offered": "ToolSearch", "tool_result": False,
                      "contains": key},
             "times": 1,
             "reply": {"tool_call": {"name": "ToolSearch",
                                     "arguments": {"query": "select:" + TOOL}},
                       "usage": {"input_tokens": 100, "output_tokens": 10}}},
            # 2: update_ticket's result (the ticket, with its key) is back: done.
            {"when": {"api": "messages", "tool_offered": TOOL, "tool_result": True,
                      "contains": key},
             "reply": {"text": "Moved %s to review." % key,
                       "usage": {"input_tokens": 150, "output_tokens": 8}}},
            # 3: anything else (side requests, a ToolSearch that found nothing).
            {"reply": {"text": "ok", "usage": {"input_tokens": 10, "output_tokens": 1}}},
        ],
    }


class AgentMcpTest(harness.AdminRunnerTest):
    rtmp_prefix = "airmesh-agentmcp-test-"

    @classmethod
    def runner_argv(cls):
        adir = AGENTS if HAVE_AGENTS else os.path.join(cls.rtmp, "no-agents")
        os.makedirs(os.path.join(adir, "bin"), exist_ok=True)
        return ("--agents-dir", os.path.realpath(adir))

    @classmethod
    def prepare(cls):
        cls.repo = os.path.join(cls.tmp, "repo")
        os.makedirs(cls.repo)
        subprocess.run(["git", "init", "-q", "-b", "main", cls.repo], check=True)
        with open(os.path.join(cls.repo, "README"), "w") as f:
            f.write("a repo for an agent with tickets\n")
        subprocess.run(["git", "-C", cls.repo, "add", "README"], check=True)
        subprocess.run(["git", "-C", cls.repo, "-c", "user.email=t@x", "-c", "user.name=t",
                        "commit", "-qm", "readme"], check=True)
        cls.admin = token_login(cls.d, "admin", cls.d.read_password())

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def audit(self, action):
        code, doc = api(self.d, "GET", "/api/v1/audit?limit=1000&action=" + action, self.admin)
        self.assertEqual(code, 200, doc)
        return doc["events"]

    def recording(self, pid):
        out = os.path.join(self.tmp, pid + ".cast")
        r = self.ctl("pod", "recording", pid, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = harness.read(out).splitlines()
        return "".join(json.loads(l)[2] for l in lines[1:] if json.loads(l)[1] == "o")

    @unittest.skipUnless(HAVE_AGENTS, "no agent CLIs in %s: run `make agents` "
                                      "(scripts/agents.sh)" % AGENTS)
    def test_claude_code_moves_a_ticket_through_airmesh_mcp(self):
        code, t = api(self.d, "POST", "/api/v1/tickets", self.admin,
                      {"title": "Make the agent move me", "description": "for agent_mcp_test"})
        self.assertEqual(code, 201, t)
        key = t["key"]
        self.assertEqual(t["status"], "backlog")
        srv = model_server.start(script(key), os.path.join(self.tmp, "model"))
        pid = None
        try:
            kf = os.path.join(self.tmp, "claude.key")
            with open(kf, "w") as f:
                f.write(REAL_KEY + "\n")
            r = self.ctl("model", "add", "claude-ep", "--api", "anthropic", "--url", srv.url,
                         "--key-file", kf, "--models", "test-model")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            n0 = len(srv.entries())  # the endpoint's self-test
            t0 = time.monotonic()
            r = self.ctl("pod", "create", "--json", "--repo", self.repo, "--network", "models",
                         "--agent", "claude", "--env", "ANTHROPIC_MODEL=test-model",
                         "--env", "ANTHROPIC_SMALL_FAST_MODEL=test-model", "--prompt",
                         "Move ticket %s to review and give it a better title." % key)
            self.assertEqual(r.returncode, 0, r.stderr)
            pid = json.loads(r.stdout)["id"]

            def msgs():
                return [e for e in srv.entries()[n0:] if e["path"].startswith("/v1/messages")
                        and isinstance(e.get("body"), dict)]

            def ended(es):
                """The scripted conversation is over: rule 2 answered update_ticket's result, or
                the fallback answered some other tool result (the tool never came)."""
                return any(e.get("rule") == 2 or (e.get("rule") == 3 and after_tool(e))
                           for e in es)

            # The model's turn after the tool result: the whole round trip happened.
            done = srv.wait_entries(ended, timeout=180)
            took = time.monotonic() - t0
            rules = [e.get("rule") for e in msgs()]
            print("claude+airmesh-mcp: %.1f s from pod create to the answer after the tool "
                  "result; rules per request: %s" % (took, rules), file=sys.stderr)
            self.assertTrue(any(e.get("rule") == 2 for e in done),
                            (rules, self.ctl("pod", "logs", pid).stdout[-3000:]))
            # Positive control: Claude Code loaded airmesh-mcp from the preset's config and
            # offered its tools, with airmeshd's schema, to the model.
            offered = [tl for e in msgs() for tl in e["body"].get("tools") or []
                       if tl.get("name") == TOOL]
            self.assertTrue(offered, rules)
            props = offered[0]["input_schema"]["properties"]
            self.assertIn("in_review", props["status"]["enum"])
            self.assertIn("title", props)
            self.assertTrue(any(tl.get("name") == "mcp__airmesh__get_ticket"
                                for e in msgs() for tl in e["body"].get("tools") or []))
            self.assertIn(0, rules)  # the tool_use of update_ticket went out
            # The change is in the API, made by the pod.
            code, t2 = api(self.d, "GET", "/api/v1/tickets/" + key, self.admin)
            self.assertEqual(code, 200, t2)
            self.assertEqual((t2["status"], t2["title"]), ("in_review", NEW_TITLE), t2)
            # The tool's result the model got back is airmeshd's answer (the updated ticket).
            after = [e for e in msgs() if e.get("rule") == 2][0]["body"]["messages"]
            results = [p for m in after if isinstance(m.get("content"), list)
                       for p in m["content"] if p.get("type") == "tool_result"]
            self.assertTrue(results, after[-3:])
            got = json.dumps(results[-1].get("content"))
            self.assertIn("in_review", got)
            self.assertIn(key, got)
            self.assertFalse(results[-1].get("is_error"), results[-1])
            # Audited with the pod as actor: the MCP call and the ticket change it made.
            actor = "pod:" + pid
            calls = wait_for(lambda: [e for e in self.audit("mcp.call") if e["actor"] == actor
                                      and details(e).get("tool") == "update_ticket"],
                             30, what="mcp.call record")
            self.assertEqual(calls[0]["result"], "ok", calls)
            upd = [e for e in self.audit("ticket.update") if e["actor"] == actor]
            self.assertTrue(upd, self.audit("ticket.update"))
            self.assertIn(key, json.dumps(upd))
            # The model was reached through the gateway with the endpoint's real key only.
            self.assertTrue(all(e["headers"].get("x-api-key") == REAL_KEY for e in msgs()))
        finally:
            srv.stop()
            if pid:
                self.ctl("pod", "stop", pid)
                self.ctl("pod", "wait", pid, "--timeout", "60")
        out = self.recording(pid)
        self.assertNotIn("Do you want to proceed", out)  # no tool approval dialog
        self.assertNotIn("New MCP server found", out)    # no MCP server approval dialog


if __name__ == "__main__":
    unittest.main(verbosity=2)
