#!/usr/bin/python3
"""A real agent CLI from the npm registry at work in a pod (issue 12, first slice).

On a real enrolled runner started with --agents-dir (the Claude Code install scripts/agents.sh
made from tests/agents/package-lock.json, outside the repo):
  (a) the pod's command runs as the unprivileged `agent` user (uid/gid 1000, HOME /home/agent,
      writable, in the pod's own /etc/passwd), owns /workspace and its git dir, sees the agents
      dir read-only and first on its PATH, and a commit it makes comes back on the pod's branch;
  (b) Claude Code (`claude -p ... --dangerously-skip-permissions`, which it refuses as uid 0)
      runs in a pod with network models (only lo and the model gateway) against the scripted
      test model server (tests/model_server), which an admin added as an anthropic endpoint
      with a real key: the pod's ANTHROPIC_BASE_URL/ANTHROPIC_API_KEY (the gateway and its
      virtual key) are all it needs; the script has it write a file with its Write tool and
      commit it with its Bash tool; the file is on the pod's branch in the runner's mirror
      afterwards, the model server's log shows the streamed Messages requests with the real key
      (never the virtual one), and each request is a model.request audit event of the pod with
      the tokens the server reported.
  (c) the runner reports the agent CLIs it found, with versions, in Hello: GET /api/v1/runners
      lists claude 2.1.332 at its path in the agents dir.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import harness
from harness import gitdir, wait_for

sys.path.insert(0, os.path.dirname(os.path.abspath(os.environ["MODEL_SERVER"])))
import server as model_server  # noqa: E402  tests/model_server/server.py


def agents_dir():
    """Where scripts/agents.sh installed tests/agents/package-lock.json (same key)."""
    lock = os.path.realpath(os.environ["AGENTS_LOCK"])
    with open(os.path.join(os.path.dirname(lock), "package.json"), "rb") as f:
        data = f.read()
    with open(lock, "rb") as f:
        data += f.read()
    cache = os.environ.get("AIRMESH_AGENTS_CACHE", "/var/cache/airmesh/agents")
    return os.path.join(cache, hashlib.sha256(data).hexdigest()[:16])


AGENTS = agents_dir()
HAVE_AGENTS = os.path.exists(os.path.join(AGENTS, ".complete"))
GIT_ID = ["--env", "GIT_AUTHOR_NAME=agent", "--env", "GIT_AUTHOR_EMAIL=agent@pod.invalid",
          "--env", "GIT_COMMITTER_NAME=agent", "--env", "GIT_COMMITTER_EMAIL=agent@pod.invalid"]
FILE_TEXT = "hello from an agent in a pod\n"
REAL_KEY = "sk-ant-real-" + os.urandom(8).hex()  # the endpoint's key: only on the appliance
PROMPT = "Create the file hello.txt in the current directory, then commit it."

# What the "model" answers: the main loop offers tools (Write, Bash, ...); anything else (side
# requests, if the CLI makes any) gets a short text.
SCRIPT = {
    "models": ["test-model"],
    "rules": [
        {"when": {"api": "messages", "tool_offered": "Write", "tool_result": False,
                  "contains": "hello.txt"}, "times": 1,
         "reply": {"tool_call": {"name": "Write", "arguments": {
             "file_path": "/workspace/hello.txt", "content": FILE_TEXT}},
             "usage": {"input_tokens": 100, "output_tokens": 20}}},
        {"when": {"api": "messages", "tool_result": True, "contains": "hello.txt"},
         "times": 1,
         "reply": {"tool_call": {"name": "Bash", "arguments": {
             "command": "git add hello.txt && git commit -q -m 'agent: add hello.txt' && "
                        "git log -1 --format=COMMITTED-%s",
             "description": "Commit hello.txt"}},
             "usage": {"input_tokens": 150, "output_tokens": 30}}},
        {"when": {"api": "messages", "tool_result": True},
         "reply": {"text": "Done: hello.txt is committed.",
                   "usage": {"input_tokens": 200, "output_tokens": 8}}},
        {"reply": {"text": "ok", "usage": {"input_tokens": 10, "output_tokens": 1}}},
    ],
}


class AgentTest(harness.AdminRunnerTest):
    rtmp_prefix = "airmesh-agent-test-"

    @classmethod
    def runner_argv(cls):
        # Without the install the runner still starts (test (a) needs only a dir): the Claude
        # test skips with the reason.
        adir = AGENTS if HAVE_AGENTS else os.path.join(cls.rtmp, "no-agents")
        os.makedirs(os.path.join(adir, "bin"), exist_ok=True)
        cls.adir = os.path.realpath(adir)
        return ("--agents-dir", cls.adir)

    @classmethod
    def prepare(cls):
        cls.repo = os.path.join(cls.tmp, "repo")
        os.makedirs(cls.repo)
        subprocess.run(["git", "init", "-q", "-b", "main", cls.repo], check=True)
        with open(os.path.join(cls.repo, "README"), "w") as f:
            f.write("a repo for an agent\n")
        subprocess.run(["git", "-C", cls.repo, "-c", "user.email=t@x", "-c", "user.name=t",
                        "commit", "-qm", "base", "--allow-empty"], check=True)
        subprocess.run(["git", "-C", cls.repo, "add", "README"], check=True)
        subprocess.run(["git", "-C", cls.repo, "-c", "user.email=t@x", "-c", "user.name=t",
                        "commit", "-qm", "readme"], check=True)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def create(self, *args):
        r = self.ctl("pod", "create", "--json", "--repo", self.repo, *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def wait(self, pid, timeout=180):
        self.ctl("pod", "wait", pid, "--timeout", str(timeout))
        return json.loads(self.ctl("pod", "show", pid).stdout)

    def recording(self, pid):
        out = os.path.join(self.tmp, pid + ".cast")
        r = self.ctl("pod", "recording", pid, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = harness.read(out).splitlines()
        return "".join(json.loads(l)[2] for l in lines[1:] if json.loads(l)[1] == "o")

    def audit(self, action):
        token = harness.token_login(self.d, "admin", self.d.read_password())
        _, _, _, text = harness.curl(self.d, "/api/v1/audit?limit=1000&action=" + action, "-H",
                                     "Authorization: Bearer " + token)
        return json.loads(text)["events"]

    def mirror(self):
        return os.path.join(self.rdata, "mirrors",
                            hashlib.sha256(self.repo.encode()).hexdigest()[:16] + ".git")

    def test_pod_command_runs_as_agent_user_with_home_and_agents_dir(self):
        script = (
            "echo ids=$(id -u):$(id -g):$(id -un) home=$HOME user=$USER; "
            "echo ws_owner=$(stat -c %u /workspace) git_owner=$(stat -c %u "
            "$(git rev-parse --absolute-git-dir)) readme_owner=$(stat -c %u README); "
            "echo stat_dirty=$(git diff-files --name-only | wc -l); "
            "echo path0=${PATH%%:*}; touch " + self.adir + "/x 2>/dev/null || echo AGENTS-RO; "
            "echo note > $HOME/note && echo HOME-RW; "
            "echo change >> README && git commit -qam 'edited as agent' && echo COMMITTED")
        pod = self.create(*GIT_ID, "--", "sh", "-c", script)
        info = self.wait(pod["id"])
        out = self.recording(pod["id"])
        self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), out)
        self.assertIn("ids=1000:1000:agent home=/home/agent user=agent", out)
        # The checkout's files (root's on disk, idmapped) and the pod's own dirs are agent's.
        self.assertIn("ws_owner=1000 git_owner=1000 readme_owner=1000", out)
        # The index the runner made says so too (uid 1000): git sees the checkout stat-clean,
        # without re-hashing it.
        self.assertIn("stat_dirty=0", out)
        self.assertIn("path0=%s/bin" % self.adir, out)
        for word in ("AGENTS-RO", "HOME-RW", "COMMITTED"):
            self.assertIn(word, out)
        log = gitdir(self.mirror(), "log", "-1", "--format=%s %an", pod["branch"])
        self.assertEqual(log.stdout.strip(), "edited as agent agent", log.stderr)

    @unittest.skipUnless(HAVE_AGENTS, "no agent CLIs in %s: run `make agents` "
                                      "(scripts/agents.sh)" % AGENTS)
    def test_runner_reports_its_agent_clis_with_versions(self):
        # Hello carries what the runner found (its --agents-dir first), GET /api/v1/runners
        # shows it.
        r = self.ctl("runner", "list", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        runners = json.loads(r.stdout)
        runners = runners.get("runners", runners) if isinstance(runners, dict) else runners
        agents = {a["name"]: a for a in runners[0]["agents"]}
        self.assertIn("claude", agents, runners)
        self.assertEqual(agents["claude"]["version"], "2.1.332")
        self.assertEqual(agents["claude"]["path"], os.path.join(self.adir, "bin", "claude"))

    @unittest.skipUnless(HAVE_AGENTS, "no agent CLIs in %s: run `make agents` "
                                      "(scripts/agents.sh)" % AGENTS)
    def test_claude_code_writes_and_commits_a_file_on_the_pods_branch(self):
        srv = model_server.start(SCRIPT, os.path.join(self.tmp, "model"))
        try:
            # Positive control: as root (here, on the host) the CLI refuses the unattended mode
            # the pod runs it in, so the pod's uid 1000 is what makes the run below possible.
            home = tempfile.mkdtemp(dir=self.tmp)
            root = subprocess.run(
                [os.path.join(AGENTS, "bin", "claude"), "-p", "hi",
                 "--dangerously-skip-permissions"], capture_output=True, text=True, timeout=120,
                env={"HOME": home, "PATH": "/usr/bin:/bin", "ANTHROPIC_BASE_URL": srv.url,
                     "ANTHROPIC_API_KEY": "sk-x", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"})
            self.assertNotEqual(root.returncode, 0)
            self.assertIn("cannot be used with root", root.stdout + root.stderr)
            self.assertEqual(srv.entries(), [])
            # An admin adds the model server as the org's anthropic endpoint (its real key
            # stays on the appliance); the pod reaches it only through the gateway.
            kf = os.path.join(self.tmp, "claude.key")
            with open(kf, "w") as f:
                f.write(REAL_KEY + "\n")
            r = self.ctl("model", "add", "claude-ep", "--api", "anthropic", "--url", srv.url,
                         "--key-file", kf, "--models", "test-model")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            n_selftest = len(srv.entries())
            t0 = time.monotonic()
            pod = self.create(
                "--network", "models", *GIT_ID,
                "--env", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
                "--env", "DISABLE_AUTOUPDATER=1",
                "--env", "ANTHROPIC_MODEL=test-model",
                "--env", "ANTHROPIC_SMALL_FAST_MODEL=test-model",
                "--", "sh", "-c",
                "echo uid=$(id -u); claude -p '%s' --dangerously-skip-permissions "
                "--model test-model; echo CLAUDE-EXIT=$?" % PROMPT)
            info = self.wait(pod["id"], timeout=240)
            took = time.monotonic() - t0
            out = self.recording(pod["id"])
            reqs = [e for e in srv.entries()[n_selftest:] if e["path"].startswith("/v1/messages")]
            print("claude pod: %.1f s from create to exit; model requests: %s" %
                  (took, [(e["path"], e["rule"], e.get("stream")) for e in srv.entries()]),
                  file=sys.stderr)
            self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), out)
            self.assertIn("uid=1000", out)
            self.assertIn("CLAUDE-EXIT=0", out)
            self.assertNotIn("root/sudo privileges", out)  # its refusal as uid 0
            # The model server saw the CLI's Messages calls, streamed, with the endpoint's real
            # key and never the pod's virtual one; the tool round trip happened (Write result
            # in, then Bash result in).
            self.assertTrue(reqs, out)
            self.assertTrue(all(e["headers"].get("x-api-key") == REAL_KEY for e in reqs), reqs)
            self.assertNotIn("amk_", json.dumps(srv.entries()))
            self.assertNotIn(REAL_KEY, out)
            rules = [e["rule"] for e in reqs]
            self.assertIn(0, rules, out)
            self.assertIn(1, rules, out)
            self.assertIn(2, rules, out)
            self.assertTrue(any(e.get("stream") for e in reqs))
            # The file, and the commit the agent made, are on the pod's branch in the mirror.
            m = self.mirror()
            show = gitdir(m, "show", "%s:hello.txt" % pod["branch"])
            self.assertEqual(show.stdout, FILE_TEXT, show.stderr + out)
            log = gitdir(m, "log", "-1", "--format=%s", pod["branch"])
            self.assertEqual(log.stdout.strip(), "agent: add hello.txt")
            # Each Messages call is a model.request of this pod, metered as the server said.
            evs = wait_for(lambda: (lambda ev: ev if len(ev) >= len(reqs) else None)(
                [e for e in self.audit("model.request") if e["actor"] == "pod:" + pod["id"]]),
                30, what="model.request events")
            det = [e["details"] if isinstance(e["details"], dict) else json.loads(e["details"])
                   for e in evs]
            self.assertEqual(sum(x["tokens_in"] for x in det),
                             sum(e["usage"]["input_tokens"] for e in reqs if "usage" in e))
            self.assertEqual(sum(x["tokens_out"] for x in det),
                             sum(e["usage"]["output_tokens"] for e in reqs if "usage" in e))
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
