#!/usr/bin/python3
"""The agent catalog (issue 12): presets kept on the appliance, pods started from them.

Runner A is started with an --agents-dir of fake agent CLIs: shell scripts named claude and codex
that print a version for `--version` (what the runner reports in Hello) and otherwise print their
argv, uid, a few env variables and every file in HOME (owner, mode, content as base64) to the
terminal, then exit. Against it:
  - GET /api/v1/agents (and `airmeshctl agent list`) lists the six presets, each with the online
    runners that have the CLI and the version they reported;
  - `pod create --agent claude --prompt TEXT` runs the preset's command with the prompt as its
    last argument, as the agent user, with the preset's env (under the request's own) and its HOME
    files (~/.claude/settings.json with the airmesh-notify hooks and mcp__airmesh allowed,
    ~/.claude.json with onboarding done and airmesh-mcp as its MCP server) owned by the agent
    user, mode 0600; the pod records agent=claude; the audit record has
    the agent and the prompt's length, never its text;
  - codex's preset writes ~/.codex/config.toml pointing at the in-pod gateway (and naming
    airmesh-mcp as its MCP server);
  - an explicit command overrides the preset's, an explicit env variable the preset's;
  - an agent the chosen runner does not report, or none does, or no such preset: 400, no pod;
  - the config's agents_file changes a preset (GET /api/v1/agents shows it); a bad one (a HOME
    path the runner would refuse) stops airmeshd's start, naming the line.
The runner's own refusal of bad HOME paths (traversal, absolute, planted links) is
tests/unit/homefiles_test.c: the appliance only ever sends its presets' paths, so no request
here can carry one.
With the real Claude Code install (scripts/agents.sh) runner B runs the claude preset
interactively against the scripted model server (network host, as agent_test.py): the first-run
wizard, trust dialog and key approval do not block, the prompt argument makes it write and commit
a file, a second prompt sent with POST /pods/{id}/prompt reaches the model as the next user turn,
and the commit is on the pod's branch after the pod is stopped.
"""
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import harness
from harness import Daemon, Runner, ctl, wait_for

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import api, git, token_login  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(os.environ["MODEL_SERVER"])))
import server as model_server  # noqa: E402


def agents_dir():
    """Where scripts/agents.sh installed tests/agents/package-lock.json (agent_test.py's key)."""
    lock = os.path.realpath(os.environ["AGENTS_LOCK"])
    with open(os.path.join(os.path.dirname(lock), "package.json"), "rb") as f:
        data = f.read()
    with open(lock, "rb") as f:
        data += f.read()
    cache = os.environ.get("AIRMESH_AGENTS_CACHE", "/var/cache/airmesh/agents")
    return os.path.join(cache, hashlib.sha256(data).hexdigest()[:16])


REAL = agents_dir()
HAVE_REAL = os.path.exists(os.path.join(REAL, ".complete"))

FAKE = r"""#!/bin/sh
case "$1" in --version) echo "%s"; exit 0;; esac
echo "NAME[$(basename "$0")]"
for a in "$@"; do printf 'ARG[%%s]\n' "$a"; done
echo "UID[$(id -u)] HOME[$HOME]"
for k in DISABLE_AUTOUPDATER CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC CODEX_HOME MY_VAR; do
  eval "v=\${$k-unset}"; echo "ENV[$k=$v]"
done
find "$HOME" -mindepth 1 -type d | sort | while read d; do echo "DIR[$(stat -c '%%n %%u %%g %%a' "$d")]"; done
find "$HOME" -type f | sort | while read f; do
  echo "FILE[$(stat -c '%%n %%u %%g %%a' "$f") $(base64 -w0 < "$f")]"
done
echo "FAKE-DONE"
"""

FILE_TEXT = "hello from the claude preset\n"
SCRIPT = {
    "models": ["test-model"],
    "rules": [
        {"when": {"api": "messages", "tool_offered": "Write", "tool_result": False,
                  "contains": "hello.txt"}, "times": 1,
         "reply": {"tool_call": {"name": "Write", "arguments": {
             "file_path": "/workspace/hello.txt", "content": FILE_TEXT}}}},
        {"when": {"api": "messages", "tool_result": True, "contains": "hello.txt"}, "times": 1,
         "reply": {"tool_call": {"name": "Bash", "arguments": {
             "command": "git add hello.txt && git commit -q -m 'preset: add hello.txt'",
             "description": "Commit hello.txt"}}}},
        {"when": {"api": "messages", "tool_result": True},
         "reply": {"text": "Done: hello.txt is committed."}},
        {"when": {"api": "messages", "contains": "second prompt"},
         "reply": {"text": "Second prompt answered."}},
        {"reply": {"text": "ok"}},
    ],
}
GIT_ENV = {"GIT_AUTHOR_NAME": "agent", "GIT_AUTHOR_EMAIL": "agent@pod.invalid",
           "GIT_COMMITTER_NAME": "agent", "GIT_COMMITTER_EMAIL": "agent@pod.invalid"}


class CatalogTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.guarded_setup(cls, cls._setup)

    @classmethod
    def _setup(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        cls.d = Daemon(os.path.join(cls.tmp, "airmesh")).wait_ready()
        pw = cls.d.read_password()
        cls.admin = token_login(cls.d, "admin", pw)
        cls.home = harness.login(cls.d, pw)
        fp = re.search(r"CA fingerprint: (\w+)", "\n".join(cls.d.banner)).group(1)
        cls.rtmp = tempfile.mkdtemp(prefix="airmesh-catalog-test-", dir="/tmp")
        # Runner A: the fake CLIs.
        cls.fake = os.path.join(cls.rtmp, "fake-agents")
        os.makedirs(os.path.join(cls.fake, "bin"))
        for name, version in (("claude", "2.7.1 (Claude Code)"), ("codex", "codex-cli 0.61.0")):
            path = os.path.join(cls.fake, "bin", name)
            with open(path, "w") as f:
                f.write(FAKE % version)
            os.chmod(path, 0o755)
        cls.runners = []
        cls.rid = {}
        for key, adir in (("a", cls.fake), ("b", REAL if HAVE_REAL else None)):
            if not adir:
                continue
            code, tok = api(cls.d, "POST", "/api/v1/runner-tokens", cls.admin, {})
            assert code in (200, 201), tok
            data = os.path.join(cls.rtmp, "runner-" + key)
            Runner.enroll(cls.d, tok["token"], fp, data)
            r = Runner(data, "--capacity", "8", "--agents-dir", adir)
            cls.runners.append(r)
            cls.rid[key] = r.runner_id()
        wait_for(lambda: sum(r.get("state") == "online" for r in
                             api(cls.d, "GET", "/api/v1/runners", cls.admin)[1].get(
                                 "runners", [])) == len(cls.runners),
                 30, what="runners online")
        cls.repo = os.path.join(cls.tmp, "repo")
        os.makedirs(cls.repo)
        subprocess.run(["git", "init", "-q", "-b", "main", cls.repo], check=True)
        with open(os.path.join(cls.repo, "README"), "w") as f:
            f.write("catalog test\n")
        git(cls.repo, "add", "-A")
        git(cls.repo, "commit", "-qm", "base")

    @classmethod
    def tearDownClass(cls):
        try:
            for r in cls.runners:
                r.stop(timeout=30)
        finally:
            cls.d.stop()
        shutil.rmtree(cls.rtmp, ignore_errors=True)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- helpers ----

    def ctl(self, *args, **kw):
        return ctl(self.d, *args, home=self.home, **kw)

    def create(self, *args):
        r = self.ctl("pod", "create", "--json", "--repo", self.repo, *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def run_pod(self, *args):
        pod = self.create(*args)
        self.ctl("pod", "wait", pod["id"], "--timeout", "120")
        info = json.loads(self.ctl("pod", "show", pod["id"]).stdout)
        out = self.recording(pod["id"])
        self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), out)
        return info, out

    def recording(self, pid):
        path = os.path.join(self.tmp, pid + ".cast")
        r = self.ctl("pod", "recording", pid, "-o", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = harness.read(path).splitlines()
        return "".join(json.loads(l)[2] for l in lines[1:] if json.loads(l)[1] == "o")

    def recording_now(self, pid):
        """The running pod's scrollback (for failure messages), its last 3000 characters."""
        return self.ctl("pod", "logs", pid).stdout[-3000:]

    @staticmethod
    def files(out):
        """{path: (uid, gid, mode, content)} from the fake's FILE[...] lines."""
        got = {}
        for m in re.finditer(r"FILE\[(\S+) (\d+) (\d+) (\d+) ([A-Za-z0-9+/=]*)\]", out):
            got[m.group(1)] = (int(m.group(2)), int(m.group(3)), m.group(4),
                               base64.b64decode(m.group(5)).decode())
        return got

    def agents(self):
        code, doc = api(self.d, "GET", "/api/v1/agents", self.admin)
        self.assertEqual(code, 200, doc)
        return {a["name"]: a for a in doc["agents"]}

    def pod_count(self):
        return len(api(self.d, "GET", "/api/v1/pods", self.admin)[1]["pods"])

    # ---- tests ----

    def test_the_catalog_lists_every_preset_with_the_runners_that_have_it(self):
        agents = self.agents()
        self.assertEqual(sorted(agents),
                         ["aider", "claude", "codex", "gemini", "goose", "opencode"])
        by = {r["id"]: r for r in agents["claude"]["runners"]}
        self.assertEqual(by[self.rid["a"]]["version"], "2.7.1")
        self.assertEqual(by[self.rid["a"]]["path"], os.path.join(self.fake, "bin", "claude"))
        self.assertEqual([r["version"] for r in agents["codex"]["runners"]], ["0.61.0"])
        self.assertEqual(agents["gemini"]["runners"], [])
        if HAVE_REAL:
            self.assertEqual(by[self.rid["b"]]["version"], "2.1.332")
        self.assertEqual(agents["claude"]["command"], ["claude",
                                                       "--dangerously-skip-permissions"])
        self.assertEqual(agents["claude"]["prompt"], "argument")
        self.assertEqual(agents["aider"]["prompt"], "typed")
        self.assertIn(".claude/settings.json", agents["claude"]["home_files"])
        self.assertIn(".codex/config.toml", agents["codex"]["home_files"])
        r = self.ctl("agent", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"claude\s+argument\s+.*%s 2\.7\.1" % self.rid["a"])
        self.assertRegex(r.stdout, r"gemini\s+argument\s+-")
        r = self.ctl("agent", "list", "--json")
        self.assertEqual(len(json.loads(r.stdout)), 6)

    def test_a_claude_pod_runs_the_preset_with_the_prompt_env_and_home_files(self):
        prompt = "fix the bug in parse(); then run 'make test'"
        info, out = self.run_pod("--runner", self.rid["a"], "--agent", "claude", "--prompt",
                                 prompt, "--env", "MY_VAR=mine")
        self.assertIn("NAME[claude]", out)
        self.assertEqual(re.findall(r"ARG\[([^\]]*)\]", out),
                         ["--dangerously-skip-permissions", prompt])
        self.assertIn("UID[1000] HOME[/home/agent]", out)
        for env in ("DISABLE_AUTOUPDATER=1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
                    "MY_VAR=mine"):
            self.assertIn("ENV[%s]" % env, out)
        self.assertIn("DIR[/home/agent/.claude 1000 1000 700]", out)
        files = self.files(out)
        self.assertEqual(files["/home/agent/.claude/settings.json"][:3], (1000, 1000, "600"))
        self.assertEqual(files["/home/agent/.claude.json"][:3], (1000, 1000, "600"))
        settings = json.loads(files["/home/agent/.claude/settings.json"][3])
        hooks = {k: v[0]["hooks"][0]["command"] for k, v in settings["hooks"].items()}
        self.assertEqual(hooks, {"Notification": "airmesh-notify waiting",
                                 "Stop": "airmesh-notify idle",
                                 "UserPromptSubmit": "airmesh-notify working"})
        cj = json.loads(files["/home/agent/.claude.json"][3])
        self.assertTrue(cj["hasCompletedOnboarding"])
        self.assertTrue(cj["projects"]["/workspace"]["hasTrustDialogAccepted"])
        # airmesh-mcp is its MCP server (user scope, not deferred), its tools allowed (issue 13)
        self.assertEqual(cj["mcpServers"]["airmesh"],
                         {"type": "stdio", "command": "/opt/airmesh/bin/airmesh-mcp", "args": [],
                          "env": {}, "alwaysLoad": True})
        self.assertEqual(settings["permissions"]["allow"], ["mcp__airmesh"])
        self.assertEqual(info["agent"], "claude")
        self.assertEqual(info["runner"], self.rid["a"])
        code, doc = api(self.d, "GET", "/api/v1/audit?action=pod.create&limit=1000", self.admin)
        ev = [e for e in doc["events"] if e["target"] == "pod:" + info["id"]]
        self.assertEqual(len(ev), 1, doc)
        self.assertEqual(ev[0]["details"]["agent"], "claude")
        self.assertEqual(ev[0]["details"]["prompt_length"], len(prompt))
        self.assertNotIn("parse()", json.dumps(ev))

    def test_the_codex_preset_points_its_config_at_the_in_pod_gateway(self):
        _, out = self.run_pod("--agent", "codex", "--prompt", "add tests")
        self.assertIn("NAME[codex]", out)
        self.assertEqual(re.findall(r"ARG\[([^\]]*)\]", out),
                         ["--dangerously-bypass-approvals-and-sandbox", "add tests"])
        self.assertIn("ENV[CODEX_HOME=/home/agent/.codex]", out)
        uid, _, mode, toml = self.files(out)["/home/agent/.codex/config.toml"]
        self.assertEqual((uid, mode), (1000, "600"))
        self.assertIn('base_url = "http://127.0.0.1:4000/v1"', toml)
        self.assertIn('env_key = "OPENAI_API_KEY"', toml)
        self.assertIn('model_provider = "airmesh"', toml)
        self.assertIn('[mcp_servers.airmesh]\ncommand = "/opt/airmesh/bin/airmesh-mcp"\n', toml)

    def test_an_explicit_command_and_env_override_the_presets(self):
        info, out = self.run_pod(
            "--runner", self.rid["a"], "--agent", "claude", "--env", "DISABLE_AUTOUPDATER=0",
            "--", "sh", "-c", "echo OVERRIDE-RAN; echo ENV[$DISABLE_AUTOUPDATER]; "
            "test -s $HOME/.claude/settings.json && echo SETTINGS-THERE")
        for word in ("OVERRIDE-RAN", "ENV[0]", "SETTINGS-THERE"):
            self.assertIn(word, out)
        self.assertNotIn("NAME[claude]", out)
        self.assertEqual(info["command"][0], "sh")
        self.assertEqual(info["agent"], "claude")

    def test_an_agent_the_runner_lacks_is_refused_with_400_and_no_pod(self):
        before = self.pod_count()
        # positive control: the same request with an agent runner A has is accepted
        code, p = api(self.d, "POST", "/api/v1/pods", self.admin,
                      {"repo": self.repo, "agent": "codex", "runner": self.rid["a"],
                       "command": ["true"]})
        self.assertEqual(code, 201, p)
        code, doc = api(self.d, "POST", "/api/v1/pods", self.admin,
                        {"repo": self.repo, "agent": "aider", "runner": self.rid["a"]})
        self.assertEqual(code, 400, doc)
        self.assertIn("runner %s does not have it" % self.rid["a"], doc["error"]["message"])
        code, doc = api(self.d, "POST", "/api/v1/pods", self.admin,
                        {"repo": self.repo, "agent": "gemini"})
        self.assertEqual(code, 400, doc)
        self.assertIn("no online runner that matches has it", doc["error"]["message"])
        code, doc = api(self.d, "POST", "/api/v1/pods", self.admin,
                        {"repo": self.repo, "agent": "nope"})
        self.assertEqual(code, 400, doc)
        self.assertIn("no preset 'nope'", doc["error"]["message"])
        code, doc = api(self.d, "POST", "/api/v1/pods", self.admin, {"repo": self.repo})
        self.assertEqual(code, 400, doc)
        r = self.ctl("pod", "create", "--repo", self.repo, "--agent", "goose")
        self.assertEqual(r.returncode, 1)
        self.assertIn("agent goose: no online runner", r.stderr)
        self.assertEqual(self.pod_count(), before + 1)

    def test_the_config_agents_file_changes_a_preset_and_a_bad_one_stops_the_start(self):
        cfg = os.path.join(self.tmp, "airmeshd.yaml")
        agents = os.path.join(self.tmp, "agents.yaml")
        with open(cfg, "w") as f:
            f.write("agents_file: %s\n" % agents)
        # A bad file (a HOME path the runner would refuse): airmeshd does not start, says where.
        with open(agents, "w") as f:
            f.write("agents:\n  claude:\n    home_files:\n      ../escape: x\n")
        bad = Daemon(os.path.join(self.tmp, "bad"), extra=("--config", cfg))
        self.assertEqual(bad.wait(timeout=30), 1)
        self.assertIn("bad agents file", bad.stderr)
        self.assertIn("line 4: home file '../escape'", bad.stderr)
        # A good one: the catalog shows the change.
        with open(agents, "w") as f:
            f.write("agents:\n  claude:\n    title: Claude (site)\n"
                    "    command: [claude, --dangerously-skip-permissions, --model, qwen]\n")
        d = Daemon(os.path.join(self.tmp, "good"), extra=("--config", cfg)).wait_ready()
        try:
            tok = token_login(d, "admin", d.read_password())
            code, doc = api(d, "GET", "/api/v1/agents", tok)
            self.assertEqual(code, 200, doc)
            claude = {a["name"]: a for a in doc["agents"]}["claude"]
            self.assertEqual(claude["title"], "Claude (site)")
            self.assertEqual(claude["command"][-2:], ["--model", "qwen"])
        finally:
            d.stop()

    @unittest.skipUnless(HAVE_REAL, "no Claude Code install in %s: run `make agents` "
                                    "(scripts/agents.sh)" % REAL)
    def test_the_real_claude_code_runs_the_preset_and_takes_a_second_prompt(self):
        srv = model_server.start(SCRIPT, os.path.join(self.tmp, "model"))
        try:
            args = ["--runner", self.rid["b"], "--network", "host", "--agent", "claude",
                    "--prompt", "Create the file hello.txt in the current directory, then "
                    "commit it."]
            env = dict(GIT_ENV, ANTHROPIC_BASE_URL=srv.url,
                       ANTHROPIC_API_KEY="sk-ant-catalog-test-key-0123456789",
                       ANTHROPIC_MODEL="test-model", ANTHROPIC_SMALL_FAST_MODEL="test-model")
            for k, v in env.items():
                args += ["--env", "%s=%s" % (k, v)]
            t0 = time.monotonic()
            pod = self.create(*args)
            pid = pod["id"]
            # The interactive CLI took its prompt argument: Write, Bash (commit), then "Done".
            es = srv.wait_entries(lambda es: any(e.get("rule") == 2 for e in es), timeout=180)
            self.assertTrue(any(e.get("rule") == 2 for e in es),
                            ([e.get("rule") for e in es], self.recording_now(pid)))
            # A second prompt through the API is the model's next user turn.
            t1 = time.monotonic()
            wait_for(lambda: api(self.d, "POST", f"/api/v1/pods/{pid}/prompt", self.admin,
                                 {"text": "second prompt: say it is done"})[0] == 200, 30,
                     what="prompt accepted")
            es = srv.wait_entries(lambda es: any(e.get("rule") == 3 for e in es), timeout=120)
            self.assertTrue(any(e.get("rule") == 3 for e in es),
                            ([e.get("rule") for e in es], self.recording_now(pid)))
            print("claude preset: %.1f s from create to the first task done, %.1f s from the "
                  "second prompt to its answer" % (t1 - t0, time.monotonic() - t1), file=sys.stderr)
            self.ctl("pod", "stop", pid)
            self.ctl("pod", "wait", pid, "--timeout", "60")
            out = self.recording(pid)
            self.assertNotIn("Do you want to use this API key", out)
            self.assertNotIn("Do you trust the files", out)
            mirror = os.path.join(self.rtmp, "runner-b", "mirrors",
                                  hashlib.sha256(self.repo.encode()).hexdigest()[:16] + ".git")
            show = subprocess.run(["git", "--git-dir", mirror, "show",
                                   "%s:hello.txt" % pod["branch"]], capture_output=True,
                                  text=True)
            self.assertEqual(show.stdout, FILE_TEXT, show.stderr + out[-3000:])
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
