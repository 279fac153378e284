#!/usr/bin/python3
"""Prompts to a running pod (issue 12): POST /api/v1/pods/{id}/prompt and `airmeshctl pod prompt`
type the text into the pod's terminal as one bracketed paste (ESC[200~ text ESC[201~) and Enter.

Against a real airmeshd and a real enrolled runner, each pod runs a small reader that puts its
terminal in raw mode and prints, in hex, every paste it receives up to and including the
ESC[201~ CR that ends it, so the test sees the exact bytes that arrived:
  - the pod's starter (nobody holds input control) sends one: it arrives byte for byte, audited
    pod.prompt with its length and never its text;
  - control characters (ESC, BEL, DEL, C1 CSI) are stripped, tab and newline kept;
  - another member is refused (403, audited denied); when an admin holds input control, the
    starter is refused too and the holder may; after the holder leaves the starter may again;
  - the CLI sends one (TEXT, and "-" from stdin);
  - bad text (empty after stripping, over 64 KiB) is 400 and nothing arrives; an ended pod 409;
  - an initial prompt given at pod create with an explicit command is typed once it is ready.
"""
import json
import os
import re
import shutil
import sys
import tempfile
import unittest

import harness
from harness import Daemon, ctl, wait_for

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import api, token_login  # noqa: E402
from ownctl_test import WS  # noqa: E402  the same small WebSocket client

# The reader: raw mode, then one "PASTE:<hex>:END" line per paste received.
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
        sys.stdout.write("PASTE:%s:END\r\n" % (one + b"\x1b[201~\r").hex()); sys.stdout.flush()
"""


def paste(text):
    return b"\x1b[200~" + text.encode() + b"\x1b[201~\r"


class PromptTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.guarded_setup(cls, cls._setup)

    @classmethod
    def _setup(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        cls.d = Daemon(os.path.join(cls.tmp, "airmesh")).wait_ready()
        cls.admin = token_login(cls.d, "admin", cls.d.read_password())
        harness.api_runner_and_repo(cls, "airmesh-prompt-test-", "prompt", "--capacity", "8")
        cls.tok, cls.home = {}, {}
        for name in ("ann", "ben"):
            pw = name + "-password-123"
            assert api(cls.d, "POST", "/api/v1/users", cls.admin,
                       {"name": name, "role": "member", "password": pw})[0] == 201
            cls.tok[name] = token_login(cls.d, name, pw)
            cls.home[name] = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
            r = ctl(cls.d, "login", "--user", name, stdin=pw + "\n", home=cls.home[name])
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

    def pod(self, user="ann", **extra):
        body = {"repo": self.repo, "command": ["python3", "-c", READER]}
        body.update(extra)
        code, p = api(self.d, "POST", "/api/v1/pods", self.tok[user], body)
        self.assertEqual(code, 201, p)
        wait_for(lambda: "READY" in self.logs(p["id"]), 60, what="reader ready")
        return p["id"]

    def logs(self, pid):
        return ctl(self.d, "pod", "logs", pid, home=self.home["ann"]).stdout

    def pastes(self, pid):
        return [bytes.fromhex(h) for h in re.findall(r"PASTE:([0-9a-f]*):END", self.logs(pid))]

    def wait_paste(self, pid, n):
        return wait_for(lambda: len(self.pastes(pid)) >= n and self.pastes(pid), 30,
                        what="paste %d arrived" % n)

    def prompt(self, pid, user, text):
        return api(self.d, "POST", f"/api/v1/pods/{pid}/prompt", self.tok.get(user, user),
                   {"text": text})

    def audit(self, pid):
        code, doc = api(self.d, "GET", "/api/v1/audit?action=pod.prompt&limit=1000", self.admin)
        self.assertEqual(code, 200, doc)
        return [e for e in doc["events"] if e["target"] == "pod:" + pid]

    def stop(self, pid):
        api(self.d, "POST", f"/api/v1/pods/{pid}/stop", self.admin, {})

    # ---- tests ----

    def test_the_starter_sends_a_prompt_as_one_bracketed_paste_and_enter(self):
        pid = self.pod()
        text = "fix the failing test\n\tthen run it again"
        code, doc = self.prompt(pid, "ann", text)
        self.assertEqual(code, 200, doc)
        self.assertEqual(doc["length"], len(text))
        self.assertEqual(self.wait_paste(pid, 1)[0], paste(text))
        ev = self.audit(pid)
        self.assertEqual([(e["actor"], e["result"]) for e in ev], [("user:ann", "ok")])
        self.assertEqual(ev[0]["details"].get("length"), len(text))
        self.assertNotIn("failing", json.dumps(ev))  # the text is never audited
        self.stop(pid)

    def test_control_characters_are_stripped_tab_and_newline_kept(self):
        pid = self.pod()
        code, doc = self.prompt(pid, "ann", "a\x1b[31mred\x07\x7f\u009b2Jb\tc\nd")
        self.assertEqual(code, 200, doc)
        got = self.wait_paste(pid, 1)[0]
        self.assertEqual(got, paste("a[31mred2Jb\tc\nd"))
        # exactly one ESC pair: the paste's own markers
        self.assertEqual(got.count(b"\x1b"), 2)
        self.stop(pid)

    def test_only_the_holder_or_an_admin_may_prompt_and_refusals_are_audited(self):
        pid = self.pod()
        # another member, nobody holding control: refused, audited denied, nothing arrives
        code, doc = self.prompt(pid, "ben", "from ben")
        self.assertEqual(code, 403, doc)
        self.assertIn("started by another user", doc["error"]["message"])
        # positive control: the starter may
        self.assertEqual(self.prompt(pid, "ann", "from ann")[0], 200)
        self.assertEqual(self.wait_paste(pid, 1), [paste("from ann")])
        # an admin takes input control: now the starter is refused, the holder may
        ws = WS(self.d, f"/api/v1/pods/{pid}/terminal", self.admin)
        try:
            self.assertEqual(ws.take(), "control")
            code, doc = self.prompt(pid, "ann", "ann while admin holds")
            self.assertEqual(code, 403, doc)
            self.assertIn("held by admin", doc["error"]["message"])
            self.assertEqual(self.prompt(pid, self.admin, "from the holder")[0], 200)
            self.assertEqual(self.wait_paste(pid, 2)[1], paste("from the holder"))
        finally:
            ws.close()
        # the holder left: the starter may again
        wait_for(lambda: self.prompt(pid, "ann", "ann again")[0] == 200, 15,
                 what="control released when the holder left")
        self.assertEqual(self.wait_paste(pid, 3)[2], paste("ann again"))
        ev = [(e["actor"], e["result"]) for e in self.audit(pid)]
        self.assertIn(("user:ben", "denied"), ev)
        self.assertIn(("user:ann", "denied"), ev)
        self.assertIn(("user:admin", "ok"), ev)
        self.assertNotIn(b"from ben", b"".join(self.pastes(pid)))
        self.stop(pid)

    def test_the_cli_sends_a_prompt_from_an_argument_and_from_stdin(self):
        pid = self.pod()
        r = ctl(self.d, "pod", "prompt", pid, "from the cli", home=self.home["ann"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("prompt sent (12 bytes)", r.stdout)
        self.assertEqual(self.wait_paste(pid, 1)[0], paste("from the cli"))
        r = ctl(self.d, "pod", "prompt", pid, "-", home=self.home["ann"],
                stdin="two lines\nfrom stdin\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.wait_paste(pid, 2)[1], paste("two lines\nfrom stdin\n"))
        r = ctl(self.d, "pod", "prompt", pid, "from ben", home=self.home["ben"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("started by another user", r.stderr)
        self.stop(pid)

    def test_bad_text_is_refused_and_an_ended_pod_is_409(self):
        pid = self.pod()
        for text in ("\x1b\x07 \n", "x" * (64 * 1024 + 1)):
            code, doc = self.prompt(pid, "ann", text)
            self.assertEqual(code, 400, doc)
        code, doc = api(self.d, "POST", f"/api/v1/pods/{pid}/prompt", self.tok["ann"],
                        {"txt": "x"})
        self.assertEqual(code, 400, doc)
        self.assertEqual(self.prompt(pid, "ann", "x" * (64 * 1024))[0], 200)  # the limit itself
        self.assertEqual(len(self.wait_paste(pid, 1)[0]), 64 * 1024 + 13)
        self.stop(pid)
        ctl(self.d, "pod", "wait", pid, "--timeout", "60", home=self.home["ann"])
        code, doc = self.prompt(pid, "ann", "too late")
        self.assertEqual(code, 409, doc)
        self.assertEqual(self.prompt("p-000000000000", "ann", "x")[0], 404)

    def test_an_initial_prompt_with_an_explicit_command_is_typed_once_it_is_ready(self):
        pid = self.pod(prompt="start with this")
        self.assertEqual(self.wait_paste(pid, 1), [paste("start with this")])
        code, p = api(self.d, "GET", f"/api/v1/pods/{pid}", self.tok["ann"])
        self.assertNotIn("start with this", json.dumps(p["command"]))
        self.stop(pid)


if __name__ == "__main__":
    unittest.main(verbosity=2)
