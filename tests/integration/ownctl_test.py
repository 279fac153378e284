#!/usr/bin/python3
"""Integration test for issue 14 item 10, pods of others: members take control of, type into and
stop only the pods they started, unless the pod is shared; admins and owners any pod of the org;
viewing stays open to every role. Against a real airmeshd and a real enrolled runner (pods run on
a PTY, see pods_test.py): member ben is refused (403 on REST and the CLI, an error frame on the
terminal, a `denied` audit record each), the pod's starter ann is the positive control, then ann
shares it (REST and `airmeshctl pod share`) and ben may; an admin may always. A pod created with
`airmeshctl pod create --shared` is shared from the start.

The WebSocket client is the minimal one of terminal_test.py (RFC 6455 over ssl + socket).
"""
import json
import os
import shutil
import tempfile
import time
import unittest

import harness
from harness import Daemon, api, ctl, token_login, wait_for


class WS(harness.WS):
    """harness.WS that keeps what it read: terminal bytes in data, control messages in msgs."""

    def __init__(self, d, path, token):
        super().__init__(d, path, token)
        self.data = bytearray()
        self.msgs = []

    def recv_one(self, deadline):
        op, payload = self.recv(max(0.0, deadline - time.time()))
        if op == 2:
            self.data += payload
        elif op == 1:
            self.msgs.append(json.loads(payload))
        elif op == 8:
            raise EOFError("closed by the server")

    def pump(self, until, timeout=30, what="condition"):
        deadline = time.time() + timeout
        while not until(self):
            if time.time() >= deadline:
                raise AssertionError(f"timed out waiting for {what}: {self.msgs[-3:]}")
            self.recv_one(deadline)
        return self

    def hello(self):
        self.pump(lambda w: w.msgs, what="hello")
        assert self.msgs[0]["type"] == "hello", self.msgs
        return self.msgs[0]

    def take(self):
        """Send take; the answer: "control" (ours) or the error frame's message."""
        me = self.hello()["you"]
        n = len(self.msgs)
        self.send_json({"type": "take"})
        self.pump(lambda w: any(m["type"] == "error" or (m["type"] == "control" and
                                                         m["holder"] == me)
                                for m in w.msgs[n:]), what="take answered")
        m = next(m for m in self.msgs[n:] if m["type"] == "error" or
                 (m["type"] == "control" and m["holder"] == me))
        return "control" if m["type"] == "control" else m["message"]

class OwnControlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.guarded_setup(cls, cls._setup)

    @classmethod
    def _setup(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        cls.d = Daemon(os.path.join(cls.tmp, "airmesh")).wait_ready()
        cls.admin = token_login(cls.d, "admin", cls.d.read_password())
        code, tok = api(cls.d, "POST", "/api/v1/runner-tokens", cls.admin, {})
        assert code in (200, 201), tok
        harness.enroll_runner(cls, "airmesh-own-test-", tok["token"],
                              harness.banner_fingerprint(cls.d), "--capacity", "8")
        cls.repo = harness.make_repo(os.path.join(cls.tmp, "repo"), {"README": "ownctl test\n"})
        harness.wait_runner_online(cls.d, token=cls.admin)
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

    # ---- helpers ----

    def pod(self, user, shared=None):
        body = {"repo": self.repo, "command": ["sh"]}
        if shared is not None:
            body["shared"] = shared
        code, p = api(self.d, "POST", "/api/v1/pods", self.tok[user], body)
        self.assertEqual(code, 201, p)
        return self.running(p["id"])

    def running(self, pid):
        wait_for(lambda: self.show(pid)["state"] == "running", 60, what="pod running")
        return pid

    def show(self, pid, user=None):
        code, p = api(self.d, "GET", "/api/v1/pods/" + pid,
                      self.tok[user] if user else self.admin)
        self.assertEqual(code, 200, p)
        return p

    def stop(self, pid, user):
        return api(self.d, "POST", f"/api/v1/pods/{pid}/stop", self.tok.get(user, self.admin),
                   {})

    def ended(self, pid):
        wait_for(lambda: self.show(pid)["state"] in ("stopped", "exited", "failed"), 30,
                 what="pod ended")

    def terminal(self, pid, user):
        ws = WS(self.d, f"/api/v1/pods/{pid}/terminal", self.tok.get(user, self.admin))
        self.assertEqual(ws.status, 101, "viewing is allowed for every role")
        return ws

    def audit(self, action, pid):
        code, doc = api(self.d, "GET", f"/api/v1/audit?action={action}&limit=1000", self.admin)
        self.assertEqual(code, 200, doc)
        return [(e["actor"], e["result"]) for e in doc["events"] if e["target"] == "pod:" + pid]

    # ---- tests ----

    def test_a_member_acts_on_anothers_pod_only_once_it_is_shared(self):
        pid = self.pod("ann")
        # Viewing stays open: ben reads the pod (whose starter and sharing it shows).
        p = self.show(pid, "ben")
        self.assertEqual(p["created_by"], "user:ann")
        self.assertIs(p["shared"], False)
        # Positive control: ann, its starter, takes control and her keystrokes reach the pod.
        a = self.terminal(pid, "ann")
        self.assertEqual(a.take(), "control")
        a.send(2, b"echo fr''om-ann\r")
        a.pump(lambda w: b"from-ann" in w.data, what="ann's echo")
        a.send_json({"type": "release"})
        a.pump(lambda w: w.msgs[-1]["type"] == "control" and w.msgs[-1]["holder"] is None,
               what="released")
        # ben: every change is refused with 403 and the reason, and audited as denied.
        code, doc = self.stop(pid, "ben")
        self.assertEqual(code, 403, doc)
        self.assertIn("not shared", json.dumps(doc))
        code, doc = api(self.d, "POST", f"/api/v1/pods/{pid}/share", self.tok["ben"],
                        {"shared": True})
        self.assertEqual(code, 403, doc)
        r = ctl(self.d, "pod", "stop", pid, home=self.home["ben"])
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("not shared", r.stderr)
        b = self.terminal(pid, "ben")
        self.assertIn("not shared", b.take())
        self.assertEqual(self.show(pid)["state"], "running", "a refusal changes nothing")
        self.assertIn(("user:ben", "denied"), self.audit("pod.stop", pid))
        self.assertIn(("user:ben", "denied"), self.audit("pod.terminal.take", pid))
        self.assertIn(("user:ben", "denied"), self.audit("pod.share", pid))
        # Bad input to share: a clear 400, nothing changes.
        code, doc = api(self.d, "POST", f"/api/v1/pods/{pid}/share", self.tok["ann"],
                        {"shared": "yes"})
        self.assertEqual(code, 400, doc)
        self.assertIs(self.show(pid)["shared"], False)
        # ann shares it (the CLI), audited; now ben takes control and types, then stops it.
        r = ctl(self.d, "pod", "share", pid, home=self.home["ann"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIs(self.show(pid)["shared"], True)
        self.assertIn(("user:ann", "ok"), self.audit("pod.share", pid))
        self.assertEqual(b.take(), "control")
        b.send(2, b"echo fr''om-ben\r")
        b.pump(lambda w: b"from-ben" in w.data, what="ben's echo")
        # Unsharing is still the starter's (or an admin's), never ben's.
        code, doc = api(self.d, "POST", f"/api/v1/pods/{pid}/share", self.tok["ben"],
                        {"shared": False})
        self.assertEqual(code, 403, doc)
        code, doc = self.stop(pid, "ben")
        self.assertEqual(code, 202, doc)
        self.ended(pid)
        a.close()
        b.close()

    def test_an_admin_always_may(self):
        pid = self.pod("ann")
        a = self.terminal(pid, "ann")
        self.assertEqual(a.take(), "control")
        # The admin takes control over from ann on her unshared pod, and stops it.
        m = self.terminal(pid, "admin")
        self.assertEqual(m.take(), "control")
        self.assertIn(("user:admin", "ok"), self.audit("pod.terminal.take", pid))
        code, doc = self.stop(pid, "admin")
        self.assertEqual(code, 202, doc)
        self.ended(pid)
        self.assertIn(("user:admin", "ok"), self.audit("pod.stop", pid))
        a.close()
        m.close()

    def test_a_pod_created_shared_is_open_to_members_until_unshared(self):
        r = ctl(self.d, "pod", "create", "--repo", self.repo, "--shared", "--json", "--", "sh",
                home=self.home["ann"])
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = self.running(json.loads(r.stdout)["id"])
        self.assertIs(self.show(pid)["shared"], True)
        b = self.terminal(pid, "ben")
        self.assertEqual(b.take(), "control")
        b.send(2, b"echo ty''ped\r")
        b.pump(lambda w: b"typed" in w.data, what="ben's echo while shared")
        # An admin withdraws the share while ben holds control: his keystrokes stop at once.
        code, doc = api(self.d, "POST", f"/api/v1/pods/{pid}/share", self.admin,
                        {"shared": False})
        self.assertEqual(code, 200, doc)
        n = len(b.msgs)
        b.send(2, b"echo le''aked\r")
        b.pump(lambda w: any(m["type"] == "error" and "not shared" in m["message"]
                             for m in w.msgs[n:]), what="ben's input refused")
        m = self.terminal(pid, "admin")
        self.assertEqual(m.take(), "control")
        m.send(2, b"echo MAR''KER\r")
        m.pump(lambda w: b"MARKER" in w.data, what="admin's echo")
        self.assertNotIn(b"leaked", bytes(m.data), "refused input must not reach the pod")
        m.send_json({"type": "release"})
        m.pump(lambda w: w.msgs[-1]["type"] == "control" and w.msgs[-1]["holder"] is None,
               what="released")
        m.close()
        self.assertIn("not shared", b.take())
        self.assertEqual(self.stop(pid, "ben")[0], 403)
        self.assertEqual(self.stop(pid, "ann")[0], 202)
        self.ended(pid)
        b.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
