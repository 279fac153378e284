#!/usr/bin/python3
"""Integration tests for runner enrollment and the mTLS gRPC control plane.

A real airmeshd and real airmesh-runner processes on loopback, real TLS and certificates:
enroll → online in the API; token reuse, expiry and revocation refused; a wrong CA pin refused;
revoke → the stream closes and reconnects are refused; appliance restart → the runner is back;
renewal → a new certificate and the old serial recorded. Malformed protobuf and calls without a
client certificate are refused with precise gRPC statuses (checked with Debian's python3-grpcio
as an independent client).
"""
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

import harness
from harness import AIRMESH_RUNNER, Daemon, Runner, ctl, curl, login, wait_for


class RunnersTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.data = os.path.join(self.tmp, "airmesh")
        self.procs = []
        self.d = Daemon(self.data).wait_ready()
        self.home = login(self.d, self.d.read_password())

    def tearDown(self):
        # A runner stops cleanly on SIGTERM, airmeshd too: exit 0, no sanitizer report
        # (harness checks both in stop()). Stop everything, then report the first problem.
        problems = []
        for p in self.procs + [self.d]:
            if p.poll() is None:
                try:
                    p.stop(timeout=30)
                except AssertionError as e:
                    problems.append(str(e))
        if problems:
            self.fail("\n\n".join(problems))

    def ctl(self, *args):
        return ctl(self.d, *args, home=self.home)

    def token(self, *extra):
        r = self.ctl("token", "create", *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        token = re.search(r"token:\s+(amt_[0-9a-f]{64})", r.stdout).group(1)
        fp = re.search(r"CA fingerprint: ([0-9a-f]{64})", r.stdout).group(1)
        tid = re.search(r"token id:\s+(\w+)", r.stdout).group(1)
        self.assertIn(f"airmesh-runner enroll --appliance {self.d.grpc} --token {token} "
                      f"--ca-sha256 {fp}", r.stdout)
        return token, fp, tid

    def enroll(self, token, fp, data=None, appliance=None):
        data = data or tempfile.mkdtemp(dir=self.tmp)
        r = subprocess.run([AIRMESH_RUNNER, "enroll", "--appliance", appliance or self.d.grpc,
                            "--token", token, "--ca-sha256", fp, "--data", data],
                           capture_output=True, text=True, timeout=60)
        return r, data

    def run_runner(self, data, *extra):
        p = Runner(data, *extra)
        self.procs.append(p)
        return p

    def runners(self):
        r = self.ctl("runner", "list", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        return {x["id"]: x for x in json.loads(r.stdout)}

    def runner_id(self, data):
        return json.loads(harness.read(os.path.join(data, "runner.json")))["runner_id"]

    def wait_state(self, rid, state, timeout=30):
        return wait_for(lambda: self.runners().get(rid, {}).get("state") == state and
                        self.runners()[rid], timeout, what=f"{rid} {state}")

    def test_enroll_then_online_in_the_api(self):
        token, fp, _ = self.token("--label", "zone=lab", "--ttl", "10m")
        r, data = self.enroll(token, fp)
        self.assertEqual(r.returncode, 0, r.stderr)
        key = os.path.join(data, "identity.pem")
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        rid = self.runner_id(data)
        self.assertEqual(self.runners()[rid]["state"], "offline")
        self.run_runner(data, "--label", "gpu=none", "--capacity", "8")
        info = self.wait_state(rid, "online")
        self.assertEqual(info["labels"].get("gpu"), "none")
        self.assertEqual(info["capacity"], 8)
        self.assertEqual(info["version"], "0.1.0")
        self.assertGreater(info["cert_not_after_ms"], time.time() * 1000 + 6 * 86400 * 1000)
        # The issued chain verifies against the appliance CA with an independent tool.
        chain = harness.read(key).split("-----BEGIN CERTIFICATE-----", 1)[1]
        leaf = os.path.join(self.tmp, "leaf.pem")
        with open(leaf, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----" + chain)
        v = subprocess.run(["openssl", "verify", "-CAfile", self.d.ca, "-untrusted", leaf, leaf],
                           capture_output=True, text=True)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        r = subprocess.run([AIRMESH_RUNNER, "status", "--data", data], capture_output=True,
                           text=True)
        self.assertIn(rid, r.stdout)

    def test_token_reuse_is_refused(self):
        token, fp, _ = self.token()
        r, _ = self.enroll(token, fp)
        self.assertEqual(r.returncode, 0, r.stderr)
        before = self.runners()
        r, _ = self.enroll(token, fp)
        self.assertEqual(r.returncode, 1)
        self.assertIn("already used", r.stderr)
        self.assertEqual(self.runners().keys(), before.keys(), "no state change")

    def test_expired_token_is_refused(self):
        token, fp, tid = self.token("--ttl", "1s")
        # Wait until the appliance itself calls the token expired (its clock, not a sleep).
        bearer = json.loads(harness.read(os.path.join(self.home, ".config", "airmesh",
                                                      "session")))["token"]

        def state():
            code, _, _, body = curl(self.d, "/api/v1/runner-tokens", "-H",
                                    "Authorization: Bearer " + bearer)
            self.assertEqual(code, 200, body)
            doc = json.loads(body)
            rows = doc["tokens"] if isinstance(doc, dict) else doc
            return {t["id"]: t["state"] for t in rows}.get(tid)
        self.assertIn(state(), ("active", "expired"))
        wait_for(lambda: state() == "expired", 30, what="token expired")
        r, _ = self.enroll(token, fp)
        self.assertEqual(r.returncode, 1)
        self.assertIn("expired", r.stderr)
        self.assertEqual(self.runners(), {})

    def test_revoked_token_is_refused(self):
        token, fp, tid = self.token()
        r = self.ctl("token", "revoke", tid)
        self.assertEqual(r.returncode, 0, r.stderr)
        r, _ = self.enroll(token, fp)
        self.assertEqual(r.returncode, 1)
        self.assertIn("revoked", r.stderr)

    def test_garbage_token_and_wrong_pin_are_refused(self):
        token, fp, _ = self.token()
        r, _ = self.enroll("amt_" + "0" * 64, fp)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not known", r.stderr)
        r, _ = self.enroll("garbage", fp)
        self.assertIn("malformed", r.stderr)
        r, _ = self.enroll(token, "ab" * 32)
        self.assertEqual(r.returncode, 1)
        self.assertIn("did not present a CA", r.stderr)
        # The token was not burned by the failed attempts.
        r, _ = self.enroll(token, fp)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_revoke_closes_the_stream_and_refuses_reconnects(self):
        token, fp, _ = self.token()
        _, data = self.enroll(token, fp)
        rid = self.runner_id(data)
        p = self.run_runner(data)
        self.wait_state(rid, "online")
        r = self.ctl("runner", "revoke", rid)
        self.assertEqual(r.returncode, 0, r.stderr)
        # The stream is closed by the appliance: the runner exits 3 on its own (the timeout
        # only bounds a hang; no timing is asserted).
        self.assertEqual(p.wait(60, expect=3), 3, p.log())
        self.assertIn("revoked", p.log())
        self.assertEqual(self.runners()[rid]["state"], "revoked")
        p2 = self.run_runner(data)
        self.assertEqual(p2.wait(60, expect=3), 3, p2.log())
        self.assertIn("revoked", p2.log())

    def test_appliance_restart_brings_the_runner_back(self):
        token, fp, _ = self.token()
        _, data = self.enroll(token, fp)
        rid = self.runner_id(data)
        p = self.run_runner(data)
        self.wait_state(rid, "online")
        self.assertEqual(self.d.stop(), 0, self.d.stderr)
        self.d = Daemon(self.data, port=self.d.port, grpc_port=self.d.grpc_port).wait_ready()
        self.wait_state(rid, "online", timeout=60)
        self.assertIsNone(p.poll(), "the runner must survive an appliance restart")

    def test_a_runner_stops_even_when_the_appliance_does_not_answer(self):
        token, fp, _ = self.token()
        _, data = self.enroll(token, fp)
        rid = self.runner_id(data)
        p = self.run_runner(data)
        self.wait_state(rid, "online")
        # A frozen appliance (SIGSTOP: the TCP connection stays up, nothing answers) never
        # ends the stream after the runner's half-close; the runner still stops, cleanly.
        os.kill(self.d.proc.pid, signal.SIGSTOP)
        try:
            self.assertEqual(p.stop(timeout=30), 0, p.stderr)
            self.assertIn("did not close the stream", p.stderr)  # it did reach that wait
        finally:
            os.kill(self.d.proc.pid, signal.SIGCONT)

    def test_renewal_gives_a_new_cert_and_records_the_old_serial(self):
        token, fp, _ = self.token()
        _, data = self.enroll(token, fp)
        rid = self.runner_id(data)
        first = harness.read(os.path.join(data, "identity.pem"))
        self.run_runner(data, "--renew-after", "2s")
        info = self.wait_state(rid, "online")
        old_serial = info["cert_serial"]
        info = wait_for(lambda: (lambda x: x if x["old_serials"] else None)(self.runners()[rid]),
                        30, what="renewal")
        self.assertIn(old_serial, info["old_serials"])
        self.assertNotEqual(info["cert_serial"], old_serial)
        self.assertNotEqual(harness.read(os.path.join(data, "identity.pem")), first)

    def test_grpc_bad_input_gets_precise_statuses(self):
        import grpc
        root = harness.read(self.d.ca, "rb")
        ch = grpc.secure_channel(self.d.grpc, grpc.ssl_channel_credentials(root_certificates=root))
        enroll = ch.unary_unary("/airmesh.v1.EnrollService/Enroll",
                                request_serializer=lambda b: b,
                                response_deserializer=lambda b: b)
        with self.assertRaises(grpc.RpcError) as e:
            enroll(b"\xff\xff\xff\xff\x0f", timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("malformed", e.exception.details())
        connect = ch.stream_stream("/airmesh.v1.RunnerService/Connect",
                                   request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
        with self.assertRaises(grpc.RpcError) as e:
            list(connect(iter([b""]), timeout=10))
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        with self.assertRaises(grpc.RpcError) as e:
            enroll(b"x" * (5 << 20), timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        ch.close()
        # The appliance is unharmed.
        self.assertEqual(self.ctl("runner", "list").returncode, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
