#!/usr/bin/python3
"""A real agent CLI calls an airmesh MCP tool from inside its pod (issue 13).

On a real enrolled runner started with --agents-dir (the Claude Code 2.1.332 install
scripts/agents.sh made from tests/agents/package-lock.json, outside the repo), an admin adds the
scripted test model server (tests/model_server) as the org's anthropic endpoint and creates a
ticket per test. Each test starts a pod with --agent claude and network `models`, so the model is
reached only through the in-pod gateway; nothing but the preset's HOME files tells Claude Code
about airmesh-mcp (~/.claude.json mcpServers at user scope with alwaysLoad, settings.json allowing
mcp__airmesh). The "model" is scripted to answer the prompt with a tool_use of
mcp__airmesh__update_ticket (its ticket to in_review with a new title), then a final text once
the tool's result is back.
  (a) the preset as a user starts it (interactive, the prompt its argument). Claude Code 2.1
      connects MCP servers without blocking: when the first request goes out before airmesh is
      connected it tells the model to call ToolSearch (which waits for the server), and the
      script does what a model does then;
  (b) `claude -p` as an explicit command: the tools are in its very first request.
Each proves the positive control (Claude Code started airmesh-mcp and offered its tools, with
airmeshd's schema, to the model), the change in GET /api/v1/tickets/{key}, airmeshd's answer as
the tool result the model got back, and the audit's mcp.call (update_ticket, ok) and
ticket.update records with actor pod:<id>; (a) also that no approval dialog showed.
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


def rules(key, model):
    """What the "model" answers for one ticket's conversation (every rule names the model the
    pod asks for, so two tests share one server). Order matters: the first match answers.
    Offsets: +0 update_ticket called, +1 ToolSearch called, +2 the final answer."""
    return [
        # +0: the tool is offered (airmesh connected, at once or after ToolSearch) and not
        # called yet: call it.
        {"when": {"api": "messages", "model": model, "tool_offered": TOOL}, "times": 1,
         "reply": {"tool_call": {"name": TOOL, "arguments": {
             "key": key, "status": "in_review", "title": NEW_TITLE}},
             "usage": {"input_tokens": 120, "output_tokens": 25}}},
        # +1: the prompt arrived while airmesh was still connecting (Claude Code says so and
        # points at ToolSearch, which waits for it): load the tool first.
        {"when": {"api": "messages", "model": model, "tool_offered": "ToolSearch",
                  "tool_result": False, "contains": key},
         "times": 1,
         "reply": {"tool_call": {"name": "ToolSearch", "arguments": {"query": "select:" + TOOL}},
                   "usage": {"input_tokens": 100, "output_tokens": 10}}},
        # +2: update_ticket's result (the ticket, with its key) is back: done.
        {"when": {"api": "messages", "model": model, "tool_offered": TOOL, "tool_result": True,
                  "contains": key},
         "reply": {"text": "Moved %s to review." % key,
                   "usage": {"input_tokens": 150, "output_tokens": 8}}},
    ]


# The interactive preset asks for INTERACTIVE, the print-mode pod for PRINT.
INTERACTIVE, PRINT = "test-model", "print-model"
FALLBACK = 6  # index of the last rule: anything else (side requests, a ToolSearch that found
              # nothing)


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
        cls.keys = {}
        for model in (INTERACTIVE, PRINT):
            code, t = api(cls.d, "POST", "/api/v1/tickets", cls.admin,
                          {"title": "Make the agent move me (%s)" % model})
            assert code == 201 and t["status"] == "backlog", (code, t)
            cls.keys[model] = t["key"]
        script = {"models": [INTERACTIVE, PRINT],
                  "rules": rules(cls.keys[INTERACTIVE], INTERACTIVE) +
                  rules(cls.keys[PRINT], PRINT) +
                  [{"reply": {"text": "ok", "usage": {"input_tokens": 10, "output_tokens": 1}}}]}
        assert len(script["rules"]) == FALLBACK + 1
        cls.srv = model_server.start(script, os.path.join(cls.tmp, "model"))
        # An admin adds the model server as the org's anthropic endpoint (its real key stays on
        # the appliance); pods reach it only through the gateway.
        kf = os.path.join(cls.tmp, "claude.key")
        with open(kf, "w") as f:
            f.write(REAL_KEY + "\n")
        r = cls.ctl("model", "add", "claude-ep", "--api", "anthropic", "--url", cls.srv.url,
                    "--key-file", kf, "--models", INTERACTIVE + "," + PRINT)
        assert r.returncode == 0, r.stdout + r.stderr

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop()
        finally:
            super().tearDownClass()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def msgs(self, model):
        """The Messages requests the server logged for model since the test's pod was created
        (side requests included; not the endpoint's self-test)."""
        return [e for e in self.srv.entries()[self.n0:] if e["path"].startswith("/v1/messages")
                and not e["path"].startswith("/v1/messages/count_tokens")
                and isinstance(e.get("body"), dict) and e["body"].get("model") == model]

    def wait_conversation(self, model, base):
        """Until the scripted conversation of model ended: rule base+2 answered update_ticket's
        result, or the fallback answered some other tool result (the tool never came)."""
        def ended(es):
            return any(e.get("rule") == base + 2 or (e.get("rule") == FALLBACK and after_tool(e))
                       for e in es[self.n0:] if isinstance(e.get("body"), dict)
                       and e["body"].get("model") == model)
        self.srv.wait_entries(ended, timeout=180)
        return [e.get("rule") for e in self.msgs(model)]

    def assert_ticket_moved_by(self, model, base, pid, rules_seen):
        """The change is in the API, the model got airmeshd's answer back, and both the MCP
        call and the ticket change are audited with the pod as actor."""
        key = self.keys[model]
        self.assertIn(base + 2, rules_seen,
                      (rules_seen, self.ctl("pod", "logs", pid).stdout[-3000:]))
        # Positive control: Claude Code loaded airmesh-mcp from the preset's config and offered
        # its tools, with airmeshd's schema, to the model.
        tools = [tl for e in self.msgs(model) for tl in e["body"].get("tools") or []]
        offered = [tl for tl in tools if tl.get("name") == TOOL]
        self.assertTrue(offered, rules_seen)
        props = offered[0]["input_schema"]["properties"]
        self.assertIn("in_review", props["status"]["enum"])
        self.assertIn("title", props)
        self.assertIn("mcp__airmesh__get_ticket", [tl.get("name") for tl in tools])
        self.assertIn(base, rules_seen)  # the tool_use of update_ticket went out
        code, t = api(self.d, "GET", "/api/v1/tickets/" + key, self.admin)
        self.assertEqual(code, 200, t)
        self.assertEqual((t["status"], t["title"]), ("in_review", NEW_TITLE), t)
        # The tool's result the model got back is airmeshd's answer (the updated ticket).
        after = [e for e in self.msgs(model) if e.get("rule") == base + 2][0]["body"]["messages"]
        results = [p for m in after if isinstance(m.get("content"), list)
                   for p in m["content"] if p.get("type") == "tool_result"]
        self.assertTrue(results, after[-3:])
        got = json.dumps(results[-1].get("content"))
        self.assertIn('in_review', got)
        self.assertIn(key, got)
        self.assertFalse(results[-1].get("is_error"), results[-1])
        actor = "pod:" + pid
        calls = wait_for(lambda: [e for e in self.audit("mcp.call") if e["actor"] == actor
                                  and details(e).get("tool") == "update_ticket"],
                         30, what="mcp.call record")
        self.assertEqual([c["result"] for c in calls], ["ok"], calls)
        upd = [e for e in self.audit("ticket.update") if e["actor"] == actor]
        self.assertTrue(upd, self.audit("ticket.update"))
        self.assertIn(key, json.dumps(upd))
        # The model was reached through the gateway with the endpoint's real key only.
        self.assertTrue(all(e["headers"].get("x-api-key") == REAL_KEY for e in self.msgs(model)))

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
    def test_claude_code_from_the_preset_moves_a_ticket_through_airmesh_mcp(self):
        # The catalog's claude preset as a user starts it: interactive, the prompt its argument.
        key = self.keys[INTERACTIVE]
        self.n0 = len(self.srv.entries())
        t0 = time.monotonic()
        r = self.ctl("pod", "create", "--json", "--repo", self.repo, "--network", "models",
                     "--agent", "claude", "--env", "ANTHROPIC_MODEL=" + INTERACTIVE,
                     "--env", "ANTHROPIC_SMALL_FAST_MODEL=" + INTERACTIVE, "--prompt",
                     "Move ticket %s to review and give it a better title." % key)
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = json.loads(r.stdout)["id"]
        try:
            seen = self.wait_conversation(INTERACTIVE, 0)
            print("claude preset + airmesh-mcp: %.1f s from pod create to the answer after the "
                  "tool result; rules per request: %s" % (time.monotonic() - t0, seen),
                  file=sys.stderr)
            self.assert_ticket_moved_by(INTERACTIVE, 0, pid, seen)
        finally:
            self.ctl("pod", "stop", pid)
            self.ctl("pod", "wait", pid, "--timeout", "60")
        out = self.recording(pid)
        self.assertNotIn("Do you want to proceed", out)  # no tool approval dialog
        self.assertNotIn("New MCP server found", out)    # no MCP server approval dialog

    @unittest.skipUnless(HAVE_AGENTS, "no agent CLIs in %s: run `make agents` "
                                      "(scripts/agents.sh)" % AGENTS)
    def test_claude_code_in_print_mode_has_the_tools_on_its_first_request(self):
        # `claude -p` (an explicit command; the preset still writes its HOME files) connects
        # its MCP servers before the first request: no ToolSearch needed.
        key = self.keys[PRINT]
        self.n0 = len(self.srv.entries())
        r = self.ctl("pod", "create", "--json", "--repo", self.repo, "--network", "models",
                     "--agent", "claude", "--env", "ANTHROPIC_MODEL=" + PRINT,
                     "--env", "ANTHROPIC_SMALL_FAST_MODEL=" + PRINT, "--", "sh", "-c",
                     "claude -p 'Move ticket %s to review.' --dangerously-skip-permissions "
                     "--model %s; echo CLAUDE-EXIT=$?" % (key, PRINT))
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = json.loads(r.stdout)["id"]
        self.ctl("pod", "wait", pid, "--timeout", "180")
        out = self.recording(pid)
        self.assertIn("CLAUDE-EXIT=0", out)
        self.assertIn("Moved %s to review." % key, out)
        seen = [e.get("rule") for e in self.msgs(PRINT)]
        self.assert_ticket_moved_by(PRINT, 3, pid, seen)
        first = [e for e in self.msgs(PRINT) if e.get("rule") is not None][0]
        self.assertEqual(first.get("rule"), 3, seen)  # update_ticket at once
        self.assertNotIn(4, seen)  # ToolSearch never called


if __name__ == "__main__":
    unittest.main(verbosity=2)
