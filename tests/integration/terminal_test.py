#!/usr/bin/python3
"""Integration tests for the web terminal: GET /api/v1/pods/{id}/terminal as a WebSocket, against
a real airmeshd and a real enrolled runner whose pods run on a PTY (see pods_test.py).

The WebSocket client is hand-written below (RFC 6455 over Python's ssl + socket, ~80 lines), so
the test needs nothing beyond Debian's python3. Covered: input after `take` reaches the pod and
its echo comes back; a second viewer sees the same bytes; a reconnect with offset=K replays
exactly from K; a viewer that never reads is skipped ahead (`lagged`) while a fast viewer keeps
every byte and the pod keeps running; input, take and resize from a non-holder or a viewer role
are refused; another org's / an unknown pod is 404; cookie auth without a matching Origin is
403; a pod's exit arrives as `exit` with its code after every byte, then close 1000; resize from
the holder reaches the pod (`stty size`); garbage, unknown types and oversized frames get an
error frame or close 1009 and the daemon keeps serving; 100 viewers of one pod at once; a
shutdown with a viewer attached closes it with 1001 and airmeshd still exits 0. Also the live
audit events socket (/api/v1/events): events of the caller's org only, same auth rules.
"""
import json
import os
import shutil
import signal
import struct
import tempfile
import time
import unittest

import harness
from harness import api, curl, Daemon, token_login, wait_for, WS


class Viewer:
    """A WS plus what it has seen: bytes (from `start`), text messages in order."""

    def __init__(self, ws):
        self.ws = ws
        self.data = bytearray()
        self.msgs = []
        op, p = ws.recv()
        assert op == 1, (op, p)
        self.hello = json.loads(p)
        assert self.hello["type"] == "hello", self.hello
        self.start = self.hello["offset"]
        self.events = [("hello", 0)]

    def pump(self, until, timeout=30, what="condition"):
        deadline = time.time() + timeout
        while not until(self):
            if self.ws.closed is not None:
                raise AssertionError(f"closed ({self.ws.closed}) before {what}: {self.msgs[-3:]}")
            op, p = self.ws.recv(max(0.01, deadline - time.time()))
            if op == 2:
                self.data += p
            elif op == 1:
                m = json.loads(p)
                self.msgs.append(m)
                self.events.append((m["type"], len(self.data)))
        return self

    def types(self):
        return [m["type"] for m in self.msgs]

    def last(self, t):
        return [m for m in self.msgs if m["type"] == t][-1]


class TerminalTest(unittest.TestCase):
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
        # Runner data in /tmp (pods bind paths below it; see pods_test.py).
        harness.enroll_runner(cls, "airmesh-term-test-", tok["token"],
                              harness.banner_fingerprint(cls.d), "--capacity", "16")
        cls.repo = harness.make_repo(os.path.join(cls.tmp, "repo"), {"README": "terminal test\n"})
        harness.wait_runner_online(cls.d, token=cls.admin)
        # A viewer-role user in this org, and a second org with its own owner.
        assert api(cls.d, "POST", "/api/v1/users", cls.admin,
                   {"name": "vic", "role": "viewer", "password": "vic-password-123"})[0] == 201
        cls.viewer_tok = token_login(cls.d, "vic", "vic-password-123")
        assert api(cls.d, "POST", "/api/v1/orgs", cls.admin,
                   {"id": "other", "owner": "olga", "password": "olga-password-123"})[0] == 201
        cls.other_tok = token_login(cls.d, "olga", "olga-password-123", "other")

    @classmethod
    def tearDownClass(cls):
        # Shutdown with a viewer attached to a running pod: it gets close 1001, airmeshd exits 0.
        code, p = api(cls.d, "POST", "/api/v1/pods", cls.admin,
                      {"repo": cls.repo, "command": ["sh"]})
        assert code == 201, p
        wait_for(lambda: api(cls.d, "GET", "/api/v1/pods/" + p["id"], cls.admin)[1]["state"] ==
                 "running", 60, what="pod running")
        v = Viewer(WS(cls.d, f"/api/v1/pods/{p['id']}/terminal", token=cls.admin))
        cls.d.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 20
        while v.ws.closed is None and time.time() < deadline:
            v.ws.recv(20)
        assert v.ws.closed == 1001, v.ws.closed
        v.ws.close()
        # Both exit 0 without a sanitizer report, or these raise (harness).
        try:
            cls.runner.stop(timeout=30)
        finally:
            cls.d.stop()
        shutil.rmtree(cls.rtmp, ignore_errors=True)

    # ---- helpers ----

    def pod(self, *command):
        code, p = api(self.d, "POST", "/api/v1/pods", self.admin,
                      {"repo": self.repo, "command": list(command)})
        self.assertEqual(code, 201, p)
        wait_for(lambda: api(self.d, "GET", "/api/v1/pods/" + p["id"], self.admin)[1]["state"]
                 in ("running", "exited", "failed"), 60, what="pod running")
        return p["id"]

    def connect(self, pid, token=None, offset=None, **kw):
        path = f"/api/v1/pods/{pid}/terminal" + (f"?offset={offset}" if offset is not None
                                                 else "")
        ws = WS(self.d, path, token=token if token is not None else self.admin, **kw)
        self.assertEqual(ws.status, 101, ws.header)
        return Viewer(ws)

    def take(self, v):
        v.ws.send_json({"type": "take"})
        v.pump(lambda v: any(m["type"] == "control" and m["holder"] == v.hello["you"]
                             for m in v.msgs), what="control")

    def stop(self, pid):
        api(self.d, "POST", f"/api/v1/pods/{pid}/stop", self.admin, {})
        wait_for(lambda: api(self.d, "GET", "/api/v1/pods/" + pid, self.admin)[1]["state"]
                 in ("stopped", "exited", "failed"), 30, what="pod ended")

    # ---- tests ----

    def test_input_echo_second_viewer_replay_and_refusals(self):
        pid = self.pod("sh")
        a = self.connect(pid)
        self.assertEqual(a.hello["pod"], pid)
        self.assertTrue(a.hello["can_input"])
        self.assertIsNone(a.hello["control"])
        self.take(a)
        a.ws.send(2, b"echo hel''lo\r")
        a.pump(lambda v: b"hello\r\n" in v.data, what="hello echoed")
        # A second viewer (default offset: the ring start) sees the same bytes.
        b = self.connect(pid)
        self.assertEqual(b.hello["control"], a.hello["you"])
        self.assertEqual(b.hello["control_user"], "admin")
        self.assertEqual(b.start, a.start)
        b.pump(lambda v: len(v.data) >= len(a.data), what="second viewer catches up")
        self.assertEqual(bytes(b.data[:len(a.data)]), bytes(a.data))
        # Input and take from a non-holder are refused with an error frame, nothing reaches
        # the pod.
        b.ws.send(2, b"echo NO''PE\r")
        b.pump(lambda v: "error" in v.types(), what="error for non-holder input")
        b.ws.send_json({"type": "take"})
        b.pump(lambda v: v.types().count("error") >= 2, what="take refused")
        self.assertIn("held", b.last("error")["message"])
        a.ws.send(2, b"echo MAR''KER\r")
        # Up to the shell's next prompt: after it the pod is quiet, so a's bytes are all there
        # is (a replay must not see more than a has).
        a.pump(lambda v: v.data.endswith(b"MARKER\r\n$ "), what="marker and prompt")
        b.pump(lambda v: v.data.endswith(b"MARKER\r\n$ "), what="marker and prompt on b")
        self.assertNotIn(b"NOPE", bytes(a.data))
        self.assertEqual(bytes(b.data), bytes(a.data))
        # A viewer-role user may watch but not take control.
        c = self.connect(pid, token=self.viewer_tok)
        self.assertFalse(c.hello["can_input"])
        c.ws.send_json({"type": "take"})
        c.pump(lambda v: "error" in v.types(), what="viewer role refused")
        self.assertIn("role", c.last("error")["message"])
        # Reconnect with offset=K replays exactly from K: no loss, no duplicates.
        for k in (0, 7, len(a.data) - 3, len(a.data)):
            r = self.connect(pid, offset=a.start + k)
            self.assertEqual(r.start, a.start + k)
            r.pump(lambda v: len(v.data) >= len(a.data) - k, 10, what=f"replay from {k}")
            self.assertEqual(bytes(r.data), bytes(a.data[k:]))
            r.ws.close()
        # Release: everybody hears the control change; then b may take.
        a.ws.send_json({"type": "release"})
        b.pump(lambda v: v.last("control")["holder"] is None if "control" in v.types() else
               False, what="release seen")
        self.take(b)
        # When the holder goes away, control is free again.
        b.ws.close()
        a.pump(lambda v: v.msgs[-1]["type"] == "control" and v.msgs[-1]["holder"] is None,
               what="holder gone")
        self.take(a)
        a.ws.close()
        c.ws.close()
        self.stop(pid)

    def test_disabling_a_user_closes_their_terminal_at_once(self):
        pid = self.pod("sh")
        code, _ = api(self.d, "POST", "/api/v1/users", self.admin,
                      {"name": "mia", "role": "member", "password": "mia-password-12"})
        self.assertEqual(code, 201)
        code, doc = api(self.d, "POST", "/api/v1/login",
                        body={"user": "mia", "password": "mia-password-12"})
        mia = doc["token"]
        # Issue 14: a member takes control only of their own or shared pods; this pod is admin's.
        self.assertEqual(api(self.d, "POST", f"/api/v1/pods/{pid}/share", self.admin,
                             {"shared": True})[0], 200)
        v = self.connect(pid, token=mia)
        self.take(v)
        self.assertEqual(api(self.d, "POST", "/api/v1/users/mia/disable", self.admin, {})[0], 200)
        deadline = time.time() + 10
        while v.ws.closed is None and time.time() < deadline:
            v.ws.recv(timeout=deadline - time.time())
        self.assertEqual(v.ws.closed, 1008, "the terminal must close when the session ends")
        v.ws.close()
        ws = WS(self.d, f"/api/v1/pods/{pid}/terminal", token=mia)
        self.assertEqual(ws.status, 401)
        ws.close()
        # Input control was freed with the connection (once the server has seen it go).
        def control_free():
            a = self.connect(pid)
            free = a.hello["control"] is None
            a.ws.close()
            return free
        wait_for(control_free, 10, what="control released")
        self.stop(pid)

    def test_resize_from_holder_reaches_pod(self):
        pid = self.pod("sh")
        a = self.connect(pid)
        b = self.connect(pid)
        a.ws.send_json({"type": "resize", "cols": 100, "rows": 30})
        a.pump(lambda v: "error" in v.types(), what="resize refused before take")
        self.take(a)
        a.ws.send_json({"type": "resize", "cols": 101, "rows": 33})
        for v in (a, b):
            v.pump(lambda v: "resize" in v.types(), what="resize broadcast")
            self.assertEqual((v.last("resize")["cols"], v.last("resize")["rows"]), (101, 33))
        a.ws.send(2, b"stty size\r")
        a.pump(lambda v: b"33 101" in v.data, what="stty size shows the new size")
        n = self.connect(pid)
        self.assertEqual((n.hello["cols"], n.hello["rows"]), (101, 33))
        for v in (a, b, n):
            v.ws.close()
        self.stop(pid)

    def test_exit_delivers_every_byte_then_exit_then_close(self):
        pid = self.pod("sh", "-c", "read x; seq 1 100000; exit 3")
        a = self.connect(pid)
        self.take(a)
        a.ws.send(2, b"\r")
        a.pump(lambda v: "exit" in v.types(), 60, what="exit frame")
        ex = a.last("exit")
        self.assertEqual((ex["state"], ex["code"]), ("exited", 3))
        # exit comes after the last byte, then a close 1000.
        self.assertEqual(a.events[-1], ("exit", len(a.data)))
        op, p = a.ws.recv()
        self.assertEqual((op, a.ws.closed), (8, 1000))
        want = "".join(f"{i}\n" for i in range(1, 100001)).encode()
        got = bytes(a.data).replace(b"\r\n", b"\n")
        self.assertTrue(got.endswith(want), got[-200:])
        self.assertNotIn("lagged", a.types())
        # A viewer arriving after the end gets the scrollback, exit, close.
        b = self.connect(pid)
        self.assertEqual(b.hello["state"], "exited")
        b.pump(lambda v: "exit" in v.types(), what="exit for a late viewer")
        self.assertTrue(bytes(b.data).replace(b"\r\n", b"\n").endswith(want[-100000:]))

    def test_a_new_viewer_replays_a_full_ring(self):
        # More output than the ring holds: a viewer arriving now (a browser reload) gets the
        # whole ring, from ring_start to ring_end, and no `lagged`.
        pid = self.pod("sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' y; echo; echo END; "
                       "read x")
        def all_out():
            v = self.connect(pid)
            v.ws.close()
            return v.hello["ring_end"] >= 3000000 + len("\r\nEND\r\n")
        wait_for(all_out, 120, what="all output in the ring")
        v = self.connect(pid)
        self.assertGreater(v.hello["ring_start"], 0, v.hello)  # the ring did wrap
        self.assertEqual(v.start, v.hello["ring_start"])
        want = v.hello["ring_end"] - v.start
        self.assertGreaterEqual(want, 1 << 20, v.hello)  # a full ring to replay
        v.pump(lambda v: len(v.data) >= want, 60, what="the whole ring")
        self.assertNotIn("lagged", v.types())
        self.assertTrue(bytes(v.data).endswith(b"END\r\n"), bytes(v.data[-64:]))
        v.ws.close()
        self.stop(pid)

    def test_slow_viewer_is_skipped_ahead_then_live_again(self):
        # Whether a viewer that does read keeps up with a fast pod depends on the machine's
        # load: that is measured by `make bench` (tests/bench/terminal_bench.py, fan-out at an
        # agent's pace, `lagged` skips counted). Here only what holds on any machine: a viewer
        # that reads nothing is skipped ahead with `lagged` (the pod is never held up by it),
        # and from its skip on it gets every byte, contiguous, identical to the appliance's.
        total = 24_000_000
        pid = self.pod("sh", "-c", "read x; head -c %d /dev/zero | tr '\\0' y; echo; echo END; "
                       "read y; echo AF''TER; read z" % total)
        holder = self.connect(pid)
        slow = self.connect(pid, rcvbuf=32768)  # and it reads nothing until the end
        self.take(holder)
        holder.ws.send(2, b"go\r")
        holder.pump(lambda v: b"END\r\n" in v.data[-64:], 120, what="holder sees END")
        # The pod kept running (it waits in `read y`).
        self.assertEqual(api(self.d, "GET", "/api/v1/pods/" + pid, self.admin)[1]["state"],
                         "running")
        # Now the slow one reads: it was skipped ahead with `lagged` ...
        slow.pump(lambda v: "lagged" in v.types(), 60, what="slow viewer lagged")
        self.assertGreater(slow.last("lagged")["skipped_to"], slow.start)
        holder.ws.send(2, b"\r")
        slow.pump(lambda v: b"AFTER\r\n" in v.data[-64:], 60, what="slow AFTER")
        self.assertLess(len(slow.data), total)
        # ... and from its last skip on it has the stream's bytes with no gap and nothing
        # doubled: compare with a replay from the appliance's ring, from the same offset.
        at = [n for t, n in slow.events if t == "lagged"][-1]
        skipped_to = slow.last("lagged")["skipped_to"]
        tail = bytes(slow.data[at:])
        ring = self.connect(pid, offset=skipped_to)
        self.assertEqual(ring.start, skipped_to, ring.hello)
        want = ring.hello["ring_end"] - skipped_to
        ring.pump(lambda v: len(v.data) >= want, 60, what="replay from the skip")
        self.assertNotIn("lagged", ring.types())
        self.assertEqual(tail, bytes(ring.data))
        self.assertTrue(tail.endswith(b"AFTER\r\n"), tail[-64:])
        for v in (holder, slow, ring):
            v.ws.close()
        self.stop(pid)

    def test_many_viewers_at_once(self):
        pid = self.pod("sh")
        vs = [self.connect(pid) for _ in range(100)]
        self.assertEqual(len({v.hello["you"] for v in vs}), 100)
        self.take(vs[0])
        vs[0].ws.send(2, b"echo MA''NY\r")
        for v in vs:
            # Up to the shell's next prompt: then the pod is quiet and every viewer has it all.
            v.pump(lambda v: v.data.endswith(b"MANY\r\n$ "), 30,
                   what="every viewer sees the output")
            self.assertEqual(v.last("control")["holder"], vs[0].hello["you"])
        self.assertEqual(len({bytes(v.data) for v in vs}), 1)
        for v in vs:
            v.ws.close()
        self.stop(pid)

    def test_live_events_of_own_org_only(self):
        mine = WS(self.d, "/api/v1/events", token=self.admin)
        self.assertEqual(mine.status, 101, mine.header)
        theirs = WS(self.d, "/api/v1/events", token=self.other_tok)
        self.assertEqual(theirs.status, 101, theirs.header)
        for w in (mine, theirs):
            op, p = w.recv()
            self.assertEqual(json.loads(p)["type"], "hello")
        self.assertEqual(WS(self.d, "/api/v1/events", cookie=self.admin).status, 403)
        self.assertEqual(WS(self.d, "/api/v1/events").status, 401)
        api(self.d, "POST", "/api/v1/users", self.admin,
            {"name": "eve", "role": "viewer", "password": "eve-password-123"})
        deadline, got = time.time() + 10, []
        while not any(e.get("action") == "user.create" for e in got):
            op, p = mine.recv(max(0.1, deadline - time.time()))
            got.append(json.loads(p))
        ev = [e for e in got if e.get("action") == "user.create"][0]
        self.assertEqual(ev["org"], "default")
        self.assertIn("eve", ev["target"])
        self.assertIsInstance(ev["seq"], int)
        # The other org hears nothing of it: an event of its own, made after, is the first
        # thing it gets (the stream is in order; no timeout decides this).
        self.assertEqual(api(self.d, "POST", "/api/v1/users", self.other_tok,
                             {"name": "ozzy", "role": "viewer",
                              "password": "ozzy-password-123"})[0], 201)
        seen = []
        while not any(e.get("action") == "user.create" for e in seen):
            op, p = theirs.recv(30)
            seen.append(json.loads(p))
        self.assertEqual({e.get("org") for e in seen}, {"other"}, seen)
        self.assertIn("ozzy", seen[-1]["target"])
        self.assertFalse(any("eve" in json.dumps(e) for e in seen), seen)
        mine.close()
        theirs.close()

    def test_auth_origin_and_not_found(self):
        pid = self.pod("sh")
        path = f"/api/v1/pods/{pid}/terminal"
        origin = f"https://127.0.0.1:{self.d.port}"
        # Cookie auth: needs a matching Origin.
        self.assertEqual(WS(self.d, path, cookie=self.admin).status, 403)
        self.assertEqual(WS(self.d, path, cookie=self.admin, origin="https://evil.example").status,
                         403)
        ok = WS(self.d, path, cookie=self.admin, origin=origin)
        self.assertEqual(ok.status, 101, ok.header)
        Viewer(ok).ws.close()
        # Bearer: an Origin, when present, must match too.
        self.assertEqual(WS(self.d, path, token=self.admin, origin="https://evil.example").status,
                         403)
        self.assertEqual(WS(self.d, path).status, 401)
        self.assertEqual(WS(self.d, path, token="am_" + "0" * 64).status, 401)
        # Another org's pod and an unknown pod: 404, never 403.
        self.assertEqual(WS(self.d, path, token=self.other_tok).status, 404)
        self.assertEqual(WS(self.d, "/api/v1/pods/p-000000000000/terminal",
                            token=self.admin).status, 404)
        # Not an upgrade: 400.
        code, _, _, _ = curl(self.d, path, "-H", "Authorization: Bearer " + self.admin)
        self.assertEqual(code, 400)
        self.stop(pid)

    def test_bad_frames_get_errors_and_never_crash(self):
        pid = self.pod("sh")
        a = self.connect(pid)
        a.ws.send(1, b"not json")
        a.pump(lambda v: "error" in v.types(), what="error for garbage")
        a.ws.send_json({"type": "dance"})
        a.pump(lambda v: v.types().count("error") == 2, what="error for unknown type")
        a.ws.send_json([1, 2])
        a.pump(lambda v: v.types().count("error") == 3, what="error for non-object")
        a.ws.send_json({"type": "resize", "cols": "wide"})
        a.pump(lambda v: v.types().count("error") == 4, what="error for bad resize")
        # A frame announcing 70,000 bytes (> 64 KiB): refused from its header with 1009.
        a.ws.s.sendall(struct.pack("!BBQ", 0x82, 0x80 | 127, 70000) + os.urandom(4) +
                       b"x" * 100)
        deadline = time.time() + 10
        while a.ws.closed is None and time.time() < deadline:
            a.ws.recv(10)
        self.assertEqual(a.ws.closed, 1009)
        a.ws.close()
        # A raw garbage stream after the upgrade: the connection ends, the daemon lives.
        g = WS(self.d, f"/api/v1/pods/{pid}/terminal", token=self.admin)
        self.assertEqual(g.status, 101)
        g.s.sendall(os.urandom(4096))
        g.close()
        b = self.connect(pid)
        self.assertEqual(b.hello["pod"], pid)
        b.ws.close()
        self.assertIsNone(self.d.proc.poll())
        self.stop(pid)


if __name__ == "__main__":
    unittest.main(verbosity=2)
