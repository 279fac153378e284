#!/usr/bin/python3
"""Integration tests for agent states (issue 12): what a pod's agent is doing (working /
waiting for input / idle) comes from the pod's own PTY output on the runner
(runner/pod/agentstate.c), reaches airmeshd as AgentState, is stored on the pod (GET
/api/v1/pods, `airmeshctl pod list`), audited as pod.agent_state and published on the events
WebSocket (/api/v1/events).

A real airmeshd and a real enrolled runner started with --quiet-after 2s. Covered:
- airmesh-notify is on every pod's PATH at /opt/airmesh/bin, read-only;
- a pod whose script calls `airmesh-notify waiting "need a review"`, prints an OSC 9
  notification, then output, then goes quiet: the events stream carries waiting (notify) ->
  waiting (osc9, the new message) -> working (output) -> idle (quiet), in that order, each an
  audit record of the runner (actor runner:<id>, target the pod); the API then says idle and
  `airmeshctl pod list` shows "running · idle";
- the same live, step by step: a pod that waits for the user's answer (`read`) shows waiting
  in the API until the user types through the terminal, then working, then waiting again
  (OSC 9), then idle once quiet;
- forging: a pod that writes a notification naming another pod's id changes only its own
  state: an AgentState carries no pod id from the pod (the runner names the PTY the bytes
  came through), so there is nothing to forge; the other pod's state and time stay as they
  were (positive control: the forger's own state did change);
- after the pod ends, agent_state reads "" and nothing more is recorded for it.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import harness
from harness import api, ctl, curl, Daemon, git, login, Runner, token_login, wait_for, WS


class Events:
    """The events WebSocket: every pod.agent_state record, in order, per pod."""

    def __init__(self, d, token):
        self.ws = WS(d, "/api/v1/events", token)
        assert self.ws.status == 101, self.ws.status
        op, p = self.ws.recv()
        assert json.loads(p)["type"] == "hello"
        self.all = []

    def states(self, pid):
        return [e for e in self.all
                if e.get("action") == "pod.agent_state" and e.get("target") == "pod:" + pid]

    def wait(self, pred, timeout=60, what="events"):
        deadline = time.time() + timeout
        while not pred(self):
            op, p = self.ws.recv(max(0.1, deadline - time.time()))
            if op == 1:
                self.all.append(json.loads(p))
        return self


def sh(script):
    return ["sh", "-c", script]


class AgentStateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.guarded_setup(cls, cls._setup)

    @classmethod
    def _setup(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        cls.d = Daemon(os.path.join(cls.tmp, "airmesh")).wait_ready()
        cls.pw = cls.d.read_password()
        cls.admin = token_login(cls.d, "admin", cls.pw)
        cls.home = login(cls.d, cls.pw)  # airmeshctl's saved session
        code, tok = api(cls.d, "POST", "/api/v1/runner-tokens", cls.admin, {})
        assert code in (200, 201), tok
        fp = re.search(r"CA fingerprint: (\w+)", "\n".join(cls.d.banner)).group(1)
        cls.rtmp = tempfile.mkdtemp(prefix="airmesh-states-test-", dir="/tmp")
        cls.rdata = os.path.join(cls.rtmp, "runner")
        Runner.enroll(cls.d, tok["token"], fp, cls.rdata)
        cls.runner = Runner(cls.rdata, "--capacity", "8", "--quiet-after", "2s")
        cls.runner_id = cls.runner.runner_id()
        cls.repo = os.path.join(cls.tmp, "repo")
        os.makedirs(cls.repo)
        subprocess.run(["git", "init", "-q", "-b", "main", cls.repo], check=True)
        with open(os.path.join(cls.repo, "README"), "w") as f:
            f.write("agent states\n")
        git(cls.repo, "add", "-A")
        git(cls.repo, "commit", "-qm", "base")
        wait_for(lambda: any(r.get("state") == "online" for r in
                             api(cls.d, "GET", "/api/v1/runners", cls.admin)[1].get("runners",
                                                                                     [])),
                 30, what="runner online")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.runner.stop(timeout=30)
        finally:
            cls.d.stop()
        shutil.rmtree(cls.rtmp, ignore_errors=True)

    # ---- helpers ----

    def pod(self, command):
        code, p = api(self.d, "POST", "/api/v1/pods", self.admin,
                      {"repo": self.repo, "command": command})
        self.assertEqual(code, 201, p)
        return p["id"]

    def get(self, pid):
        code, p = api(self.d, "GET", "/api/v1/pods/" + pid, self.admin)
        self.assertEqual(code, 200, p)
        return p

    def wait_agent(self, pid, state, what=None):
        return wait_for(lambda: (lambda p: p if p.get("agent_state") == state else None)(
            self.get(pid)), 60, what=what or f"{pid} agent_state {state}")

    def stop(self, pid):
        api(self.d, "POST", f"/api/v1/pods/{pid}/stop", self.admin, {})
        wait_for(lambda: self.get(pid)["state"] in ("stopped", "exited", "failed"), 30,
                 what="pod ended")

    def audit(self, pid):
        code, doc = api(self.d, "GET", "/api/v1/audit?action=pod.agent_state&limit=1000",
                        self.admin)
        self.assertEqual(code, 200, doc)
        return [e for e in doc["events"] if e["target"] == "pod:" + pid]

    def terminal(self, pid):
        t = WS(self.d, f"/api/v1/pods/{pid}/terminal", self.admin)
        self.assertEqual(t.status, 101)
        t.send(1, json.dumps({"type": "take"}).encode())
        return t

    # ---- tests ----

    def test_notify_is_on_every_pods_path_read_only(self):
        pid = self.pod(sh("command -v airmesh-notify; airmesh-notify --help | head -1; "
                          "echo x > /opt/airmesh/bin/airmesh-notify || echo READ-ONLY"))
        wait_for(lambda: self.get(pid)["state"] in ("exited", "failed"), 60, what="pod end")
        p = self.get(pid)
        self.assertEqual(p["state"], "exited", p)
        out = os.path.join(self.tmp, pid + ".cast")
        r = ctl(self.d, "pod", "recording", pid, "-o", out, home=self.home)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = harness.read(out).splitlines()
        text = "".join(json.loads(ln)[2] for ln in lines[1:] if json.loads(ln)[1] == "o")
        self.assertIn("/opt/airmesh/bin/airmesh-notify", text)
        self.assertIn("Usage: airmesh-notify", text)
        self.assertIn("READ-ONLY", text)

    def test_states_follow_notify_osc9_output_quiet_on_events_api_and_audit(self):
        ev = Events(self.d, self.admin)
        # One script, no waiting: every change comes out of the scanner in order even when
        # the runner reads it all in one chunk.
        pid = self.pod(sh(
            "airmesh-notify waiting 'need a review'; "
            "printf '\\033]9;Build finished\\007'; "
            "i=0; while [ $i -lt 8 ]; do echo \"working on step $i of the task\"; "
            "i=$((i+1)); done; exec sleep 3600"))
        ev.wait(lambda e: len(e.states(pid)) >= 4, what="four agent states")
        got = [(e["details"]["state"], e["details"]["source"], e["details"]["message"])
               for e in ev.states(pid)]
        self.assertEqual(got[0], ("waiting", "notify", "need a review"))
        self.assertEqual(got[1], ("waiting", "osc9", "Build finished"))
        self.assertEqual(got[2][:2], ("working", "output"))
        self.assertEqual(got[3][:2], ("idle", "quiet"))
        for e in ev.states(pid):
            self.assertEqual(e["actor"], "runner:" + self.runner_id)
            self.assertEqual(e["result"], "ok")
        # Idle is where it stays (quiet is not news twice): the API and the CLI say so.
        p = self.wait_agent(pid, "idle")
        self.assertEqual(p["state"], "running")
        self.assertGreater(p["agent_state_ms"], 0)
        r = ctl(self.d, "pod", "list", home=self.home)
        self.assertEqual(r.returncode, 0, r.stderr)
        row = [ln for ln in r.stdout.splitlines() if ln.startswith(pid)]
        self.assertTrue(row and "running \u00b7 idle" in row[0], r.stdout)
        # Each change is in the audit log, as the runner's, in order.
        rec = self.audit(pid)
        self.assertEqual([(e["details"]["state"], e["details"]["source"]) for e in rec][:4],
                         [g[:2] for g in got[:4]])
        # After the end: no agent state shown, nothing more recorded.
        n = len(self.audit(pid))
        self.stop(pid)
        self.assertEqual(self.get(pid)["agent_state"], "")
        self.assertEqual(len(self.audit(pid)), n)
        ev.ws.close()

    def test_api_follows_live_waiting_working_waiting_idle(self):
        ev = Events(self.d, self.admin)
        pid = self.pod(sh(
            "airmesh-notify waiting 'need a review'; read a; "
            "printf '\\033]9;Build finished\\007'; read b; "
            "echo done; exec sleep 3600"))
        # Waiting until the user answers (however long that takes: "waiting" is never quiet).
        self.wait_agent(pid, "waiting")
        t = self.terminal(pid)
        t.send(2, b"go\r")  # the user's answer, echoed: working
        ev.wait(lambda e: any(x["details"]["state"] == "working" for x in e.states(pid)),
                what="working after the answer")
        p = self.wait_agent(pid, "waiting", what="waiting again (OSC 9)")
        self.assertEqual(ev.wait(lambda e: len(e.states(pid)) >= 3).states(pid)[2]["details"]
                         ["message"], "Build finished")
        t.send(2, b"ok\r")
        self.wait_agent(pid, "idle", what="idle once quiet")
        ev.wait(lambda e: len(e.states(pid)) >= 5, what="five changes on the events stream")
        got = [(e["details"]["state"], e["details"]["source"]) for e in ev.states(pid)]
        self.assertEqual(got, [("waiting", "notify"), ("working", "output"),
                               ("waiting", "osc9"), ("working", "output"), ("idle", "quiet")])
        t.close()
        ev.ws.close()
        self.stop(pid)

    def test_a_pod_cannot_set_another_pods_state(self):
        victim = self.pod(sh("airmesh-notify idle 'victim at rest'; exec sleep 3600"))
        v0 = self.wait_agent(victim, "idle")
        # The forger names the victim every way a sequence could: in the message, as an extra
        # field, as the notification's title. The AgentState it causes names the PTY it came
        # through (the forger), never a pod id from the bytes.
        forger = self.pod(sh(
            f"airmesh-notify waiting 'pod={victim}'; "
            f"printf '\\033]777;notify;airmesh;working;x;pod_id={victim}\\007'; "
            f"printf '\\033]777;notify;{victim};waiting\\007'; exec sleep 3600"))
        # Positive control: the forger's own state followed each of its sequences.
        wait_for(lambda: len(self.audit(forger)) >= 3, 60, what="the forger's three changes")
        rec = self.audit(forger)
        self.assertEqual([(e["details"]["state"], e["details"]["message"]) for e in rec[:3]],
                         [("waiting", "pod=" + victim), ("working", "x;pod_id=" + victim),
                          ("waiting", victim + ": waiting")])
        self.assertEqual(self.get(forger)["agent_state"], "waiting")
        v1 = self.get(victim)
        self.assertEqual(v1["agent_state"], "idle")
        self.assertEqual(v1["agent_state_ms"], v0["agent_state_ms"])
        self.assertEqual([e["details"]["message"] for e in self.audit(victim)],
                         ["victim at rest"])
        self.stop(forger)
        self.stop(victim)


if __name__ == "__main__":
    unittest.main(verbosity=2)
