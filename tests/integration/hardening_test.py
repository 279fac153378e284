#!/usr/bin/python3
"""Hardening of airmeshd's front doors (issue 9, items 5 and 6), against a real airmeshd with
real clients: curl (HTTP/2 and HTTP/1.1), openssl s_client, Python's ssl/http.client, grpcio,
and a raw WebSocket client.

- Login work runs on a bounded worker pool: a full queue answers 503 + Retry-After; a client
  that leaves before its answer harms nothing (the daemon runs under ASan in `make test`).
- Login throttling per address and per (user, address): a flood from 127.0.0.2 (loopback is
  127.0.0.0/8, so a test can speak from several addresses) gets that address refused while the
  real owner logs in from 127.0.0.1; the lock looks the same for real and unknown names.
- TLS 1.2 offers only ECDHE + AEAD suites on :8443 and :9443; an oversized body gets 413 over
  HTTP/2 and HTTP/1.1; /healthz is GET/HEAD only; an unknown gRPC method gets UNIMPLEMENTED;
  a WebSocket frame header announcing 2^63-1 bytes closes with 1009; the CSRF header must be 1.
Each attack first shows it reached what it attacks (a positive control), then that it fails.
"""
import base64
import http.client
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import unittest

import harness
from harness import Daemon, curl, wait_for


def call(d, method, path, body=None, token=None, source="127.0.0.1", headers=None):
    """One HTTPS request from a chosen loopback source address: (status, headers, json|text)."""
    ctx = ssl.create_default_context(cafile=d.ca)
    c = http.client.HTTPSConnection("127.0.0.1", d.port, context=ctx, timeout=60,
                                    source_address=(source, 0))
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    try:
        return r.status, hdrs, json.loads(data)
    except ValueError:
        return r.status, hdrs, data.decode(errors="replace")


def login(d, user, password, source="127.0.0.1"):
    return call(d, "POST", "/api/v1/login", {"user": user, "password": password}, source=source)


def start(tmp, name, extra=()):
    d = Daemon(os.path.join(tmp, name), extra=extra).wait_ready()
    d.password = d.read_password()
    return d


def audit(d, token, action):
    code, _, doc = call(d, "GET", "/api/v1/audit?action=" + action + "&limit=1000", token=token)
    assert code == 200, doc
    return doc["events"]


class HardeningTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        harness.guarded_setup(cls, cls._setup)

    @classmethod
    def _setup(cls):
        cls.d = start(cls.tmp, "main")
        code, _, doc = login(cls.d, "admin", cls.d.password)
        assert code == 200, doc
        cls.admin = doc["token"]

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        assert rc == 0, "airmeshd exited %d (sanitizer report or unclean stop)" % rc

    # ---- login throttling ----

    def test_login_flood_from_one_address_does_not_lock_out_the_owner(self):
        d = self.d
        attacker = "127.0.0.2"
        # Positive control: the attacker's guesses reach the password check (401) ...
        seen = [login(d, "admin", "guess-%d" % i, source=attacker) for i in range(5)]
        self.assertEqual([s[0] for s in seen], [401] * 5, seen)
        # ... then lock (admin, attacker address) ...
        code, hdrs, doc = login(d, "admin", "guess-5", source=attacker)
        self.assertEqual(code, 429, doc)
        self.assertEqual(doc["error"]["code"], "locked")
        self.assertGreaterEqual(int(hdrs["retry-after"]), 1)
        # ... and a flood of other names from that address fills its bucket until the address
        # itself is refused, whatever the name.
        codes = [login(d, "user-%d" % i, "guess", source=attacker)[0] for i in range(30)]
        self.assertIn(401, codes)
        code, hdrs, doc = login(d, "someone-new", "guess", source=attacker)
        self.assertEqual(code, 429, doc)
        self.assertEqual(doc["error"]["code"], "throttled")
        self.assertIn("from this address", doc["error"]["message"])
        self.assertIn("retry-after", hdrs)
        # Even the right password is refused from the flooding address ...
        self.assertEqual(login(d, "admin", d.password, source=attacker)[0], 429)
        # ... while the owner logging in from another address gets in at once.
        code, _, doc = login(d, "admin", d.password, source="127.0.0.1")
        self.assertEqual(code, 200, doc)
        self.assertIn("token", doc)
        # Refusals are audit events with their reason.
        reasons = {e["details"].get("reason") for e in audit(d, self.admin, "auth.login")
                   if e["result"] == "denied" and isinstance(e["details"], dict)}
        self.assertTrue({"locked", "address"} <= reasons, reasons)

    def test_lockout_looks_the_same_for_real_and_unknown_names(self):
        d = self.d
        answers = {}
        for name, src in (("admin", "127.0.0.3"), ("no-such-user", "127.0.0.4")):
            fails = [login(d, name, "wrong-password", source=src) for _ in range(5)]
            locked = login(d, name, "wrong-password", source=src)
            answers[name] = (fails, locked)
        (real_fails, real_lock), (fake_fails, fake_lock) = answers["admin"], \
            answers["no-such-user"]
        # Positive control: both reached the check and both got locked.
        self.assertEqual([f[0] for f in real_fails], [401] * 5)
        self.assertEqual(real_lock[0], 429)
        # Same statuses, same bodies (seconds aside), same header names.
        self.assertEqual([f[2] for f in real_fails], [f[2] for f in fake_fails])
        self.assertEqual(fake_lock[0], real_lock[0])
        norm = lambda doc: re.sub(r"\d+", "N", json.dumps(doc, sort_keys=True))
        self.assertEqual(norm(fake_lock[2]), norm(real_lock[2]))
        skip = {"date", "content-length"}
        self.assertEqual(sorted(set(fake_lock[1]) - skip), sorted(set(real_lock[1]) - skip))
        self.assertIn("retry-after", real_lock[1])

    def test_password_reset_clears_the_lock_and_own_change_needs_the_current_one(self):
        d = self.d
        self.assertEqual(call(d, "POST", "/api/v1/users", {"name": "mira", "role": "member",
                                                           "password": "mira-password-1"},
                              token=self.admin)[0], 201)
        src = "127.0.0.5"
        for _ in range(5):
            self.assertEqual(login(d, "mira", "nope", source=src)[0], 401)
        self.assertEqual(login(d, "mira", "mira-password-1", source=src)[0], 429)
        # An admin's reset (hashed on the worker pool) clears every lock on the user.
        code, _, doc = call(d, "POST", "/api/v1/users/mira/password",
                            {"password": "mira-password-2"}, token=self.admin)
        self.assertEqual(code, 200, doc)
        code, _, doc = login(d, "mira", "mira-password-2", source=src)
        self.assertEqual(code, 200, doc)
        tok = doc["token"]
        # Her own change needs the current password (checked on the pool too).
        code, _, doc = call(d, "POST", "/api/v1/users/mira/password",
                            {"password": "mira-password-3", "current_password": "wrong"},
                            token=tok)
        self.assertEqual(code, 403, doc)
        code, _, doc = call(d, "POST", "/api/v1/users/mira/password",
                            {"password": "mira-password-3", "current_password":
                             "mira-password-2"}, token=tok)
        self.assertEqual(code, 200, doc)
        self.assertEqual(login(d, "mira", "mira-password-3")[0], 200)
        self.assertEqual(login(d, "mira", "mira-password-2")[0], 401)

    # ---- the worker pool: bounded, and safe when clients leave ----

    def test_full_work_queue_answers_503_and_a_client_leaving_early_is_harmless(self):
        small = start(self.tmp, "small", extra=("--workers", "1", "--work-queue", "1"))
        try:
            ctx = ssl.create_default_context(cafile=small.ca)
            n = 24
            conns = []
            for i in range(n):  # one address each: the per-address limits stay out of the way
                c = http.client.HTTPSConnection("127.0.0.1", small.port, context=ctx, timeout=120,
                                                source_address=("127.0.2.%d" % (i + 1), 0))
                c.connect()
                conns.append(c)
            gate = threading.Barrier(n)
            results = [None] * n

            def one(i):
                gate.wait()
                conns[i].request("POST", "/api/v1/login",
                                 body=json.dumps({"user": "ghost-%d" % i, "password": "x" * 12}),
                                 headers={"Content-Type": "application/json"})
                r = conns[i].getresponse()
                results[i] = (r.status, r.getheader("Retry-After"), r.read())
                conns[i].close()

            ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            codes = [r[0] for r in results]
            self.assertIn(401, codes, results)  # positive control: the pool checked some
            self.assertIn(503, codes, results)  # and refused the rest at once
            self.assertEqual(set(codes), {401, 503}, results)
            for status, retry, body in results:
                if status == 503:
                    self.assertEqual(retry, "1")
                    self.assertEqual(json.loads(body)["error"]["code"], "busy")
            # A client that leaves before its answer: curl gives up while its login waits
            # behind others; the job finishes later with nobody to answer (under ASan this is
            # where a use-after-free would show). The audit notes the orphaned login.
            code, _, doc = login(small, "admin", small.password)
            self.assertEqual(code, 200, doc)
            tok = doc["token"]

            def orphans():
                return [e for e in audit(small, tok, "auth.login") if e["result"] == "ok" and
                        "client left" in json.dumps(e["details"])]

            for k, max_time in enumerate((0.06, 0.1, 0.15, 0.2, 0.3, 0.45, 0.7)):
                # One login ahead of it keeps the single worker busy.
                ahead = threading.Thread(target=login, args=(small, "ghost", "y" * 12,
                                                             "127.0.3.%d" % (k + 1)))
                ahead.start()
                r = subprocess.run(["curl", "-sS", "--http2", "--cacert", small.ca,
                                    "--max-time", str(max_time), small.url + "/api/v1/login",
                                    "-d", json.dumps({"user": "admin",
                                                      "password": small.password})],
                                   capture_output=True, text=True)
                ahead.join()
                if r.returncode != 28:
                    continue  # answered in time (or never sent): try again with more headroom
                try:
                    wait_for(orphans, 10, what="the orphaned login's audit event")
                    break
                except AssertionError:
                    continue  # curl gave up before its request was sent
            else:
                self.fail("curl never left between sending and its answer")
            # The daemon is fine: it answers, and stops cleanly (rc 0 = no sanitizer report).
            self.assertEqual(curl(small, "/healthz")[0], 200)
            self.assertEqual(login(small, "admin", small.password)[0], 200)
        finally:
            rc = small.stop()
        self.assertEqual(rc, 0)

    # ---- TLS, body size, methods ----

    def s_client(self, port, cipher):
        """(exit status, negotiated cipher) of an openssl s_client TLS 1.2 handshake offering
        only `cipher`; "(NONE)" when the server refused every suite offered."""
        r = subprocess.run(["openssl", "s_client", "-tls1_2", "-cipher", cipher, "-connect",
                            "127.0.0.1:%d" % port], input="", capture_output=True, text=True,
                           timeout=30)
        m = re.search(r"Cipher is (\S+)", r.stdout)
        return r.returncode, m.group(1) if m else None

    def test_tls12_offers_only_ecdhe_aead_suites_on_both_ports(self):
        for port in (self.d.port, self.d.grpc_port):
            # Positive control: AEAD suites work (gRPC's own list has no ChaCha20 on :9443).
            for aead in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"):
                rc, got = self.s_client(port, aead)
                self.assertEqual(got, aead, (port, aead))
            for cbc in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA",
                        "ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384"):
                rc, got = self.s_client(port, cbc)
                self.assertNotEqual(rc, 0, (port, cbc))
                self.assertEqual(got, "(NONE)", (port, cbc))

    def test_oversized_body_gets_413_on_http2_and_http1(self):
        d = self.d
        big = os.path.join(self.tmp, "big.json")
        with open(big, "wb") as f:
            f.write(b"{\"user\": \"" + b"a" * (3 << 20) + b"\"}")
        for http, version in (("--http2", "2"), ("--http1.1", "1.1")):
            # Positive control: a small body reaches the handler.
            code, v, _, _ = curl(d, "/api/v1/login", "-d", "{}", http=http)
            self.assertEqual((code, v), (400, version))
            code, v, _, body = curl(d, "/api/v1/login", "--data-binary", "@" + big, http=http)
            self.assertEqual((code, v), (413, version), body)
        # Without a content-length (HTTP/2 DATA frames only) too, and the connection lives on.
        r = subprocess.run(["curl", "-sS", "--http2", "--cacert", d.ca, "-o", "/dev/null",
                            "-w", "%{http_code} ", "-H", "Transfer-Encoding: chunked",
                            "--data-binary", "@" + big, d.url + "/api/v1/login",
                            "--next", "--http2", "--cacert", d.ca, "-o", "/dev/null", "-w",
                            "%{http_code} %{num_connects}", d.url + "/healthz"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["413", "200", "0"], r.stdout)

    def test_healthz_is_get_and_head_only(self):
        d = self.d
        code, _, _, body = curl(d, "/healthz")
        self.assertEqual((code, body.strip()), (200, "ok"))
        self.assertEqual(curl(d, "/healthz", "-I")[0], 200)
        for method in ("POST", "PUT", "DELETE"):
            for http in ("--http2", "--http1.1"):
                code, _, hdrs, _ = curl(d, "/healthz", "-X", method, http=http)
                self.assertEqual(code, 405, (method, http))
                self.assertEqual(hdrs.get("allow"), "GET, HEAD")

    def test_csrf_header_must_be_exactly_1(self):
        d = self.d
        code, hdrs, doc = login(d, "admin", d.password)
        self.assertEqual(code, 200, doc)
        cookie = hdrs["set-cookie"].split(";")[0]
        req = lambda extra: call(d, "POST", "/api/v1/api-tokens", {"name": "csrf-probe"},
                                 headers=dict({"Cookie": cookie}, **extra))
        # Positive control: the cookie authenticates (a GET needs no CSRF header).
        self.assertEqual(call(d, "GET", "/api/v1/whoami", headers={"Cookie": cookie})[0], 200)
        for bad in ({}, {"X-Airmesh-CSRF": "0"}, {"X-Airmesh-CSRF": "yes"},
                    {"X-Airmesh-CSRF": ""}, {"X-Airmesh-CSRF": "11"}):
            code, _, doc = req(bad)
            self.assertEqual(code, 403, (bad, doc))
            self.assertEqual(doc["error"]["code"], "csrf")
        code, _, doc = req({"X-Airmesh-CSRF": "1"})
        self.assertEqual(code, 201, doc)

    # ---- gRPC ----

    def test_unknown_grpc_method_gets_unimplemented_at_once(self):
        import grpc
        root = harness.read(self.d.ca, "rb")
        ch = grpc.secure_channel("localhost:%d" % self.d.grpc_port,
                                 grpc.ssl_channel_credentials(root_certificates=root))
        ident = dict(request_serializer=lambda b: b, response_deserializer=lambda b: b)
        # Positive control: a known method on the same channel is answered.
        with self.assertRaises(grpc.RpcError) as e:
            ch.unary_unary("/airmesh.v1.EnrollService/Enroll", **ident)(b"\xff\xff\xff\xff\x0f",
                                                                        timeout=20)
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        # A short deadline: an unanswered call would end DEADLINE_EXCEEDED, not UNIMPLEMENTED.
        for method in ("/airmesh.v1.EnrollService/Nope", "/no.such.Service/Call"):
            with self.assertRaises(grpc.RpcError) as e:
                ch.unary_unary(method, **ident)(b"", timeout=5)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNIMPLEMENTED, method)
        with self.assertRaises(grpc.RpcError) as e:
            list(ch.stream_stream("/no.such.Service/Stream", **ident)(iter([b"x"]), timeout=5))
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        ch.close()

    # ---- WebSocket ----

    def ws_open(self):
        d = self.d
        ctx = ssl.create_default_context(cafile=d.ca)
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", d.port), timeout=30),
                            server_hostname="127.0.0.1")
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                   "Authorization: Bearer %s\r\n\r\n" % (d.port, key, self.admin)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            c = s.recv(4096)
            self.assertTrue(c, "closed during the upgrade")
            buf += c
        self.assertIn(b" 101 ", buf.split(b"\r\n")[0])
        return s, buf.partition(b"\r\n\r\n")[2]

    def ws_frames_until_close(self, s, buf):
        """Read frames until a close frame or EOF; the close code (None on EOF without one)."""
        while True:
            while len(buf) >= 2:
                n, h = buf[1] & 0x7F, 2
                if n == 126:
                    n, h = struct.unpack_from("!H", buf, 2)[0], 4
                elif n == 127:
                    n, h = struct.unpack_from("!Q", buf, 2)[0], 10
                if len(buf) < h + n:
                    break
                op, payload, buf = buf[0] & 0x0F, buf[h:h + n], buf[h + n:]
                if op == 8:
                    return struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 1005
            c = s.recv(65536)
            if not c:
                return None
            buf += c

    def test_websocket_frame_announcing_a_huge_length_is_closed_1009(self):
        for announced in ((1 << 63) - 1, 1 << 20):
            s, rest = self.ws_open()
            # Positive control: a ping on the same connection gets its pong (the socket is a
            # live WebSocket, read by the server).
            mask = os.urandom(4)
            s.sendall(bytes([0x89, 0x80 | 4]) + mask + bytes(b ^ mask[i] for i, b in
                                                              enumerate(b"ping")))
            buf = rest
            while True:
                while len(buf) >= 2 and len(buf) >= 2 + (buf[1] & 0x7F):
                    op, n = buf[0] & 0x0F, buf[1] & 0x7F
                    frame, buf = buf[2:2 + n], buf[2 + n:]
                    if op == 0xA:
                        break
                else:
                    c = s.recv(4096)
                    self.assertTrue(c, "closed before the pong")
                    buf += c
                    continue
                break
            # The attack: a binary frame header announcing `announced` bytes, and a trickle.
            hdr = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", announced) + os.urandom(4)
            s.sendall(hdr + b"0123456789")
            self.assertEqual(self.ws_frames_until_close(s, buf), 1009, announced)
            s.close()
        # The server is unharmed.
        self.assertEqual(curl(self.d, "/healthz")[0], 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
