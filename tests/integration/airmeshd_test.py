#!/usr/bin/python3
"""Integration tests for airmeshd and airmeshctl: real processes, real TLS, real LMDB files.

Each test starts a real airmeshd on a free loopback port with its own data dir and talks to it
with curl (HTTP/2 and HTTP/1.1) and airmeshctl, the way a user does. Run under Bazel (the
binaries come as arguments) or by hand: airmeshd_test.py AIRMESHD AIRMESHCTL UI_DIR.
"""
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

import harness
from harness import AIRMESHCTL, AIRMESHD, UI_DIR, Daemon, ctl, curl, free_port

# The refused starts' error lines (msg, and a regex for the error text).
STORE_MSG, STORE_ERR = "cannot open the store", (r"store: \S+/state/data\.mdb: not an LMDB file "
                                                  r"\(corrupt or foreign\)")
PKI_MSG, PKI_ERR = "cannot open the CA", (r"pki: (\S+)/root\.key missing while root\.pem exists: "
                                          r"refusing to create a new CA over an existing one "
                                          r"\(restore the missing file, or move \1 away to start "
                                          r"a new CA\)")


class AirmeshdTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.data = os.path.join(self.tmp, "airmesh")
        self.daemons = []

    def tearDown(self):
        # Every daemon must stop with exit 0 and no sanitizer report (harness.Daemon.stop);
        # stop them all first, then report the first problem.
        problems = []
        for d in self.daemons:
            if d.proc.poll() is None:
                try:
                    d.stop()
                except AssertionError as e:
                    problems.append(str(e))
        if problems:
            self.fail("\n\n".join(problems))

    def start(self, **kw):
        d = Daemon(self.data, **kw)
        self.daemons.append(d)
        d.wait_ready()
        return d

    def fail_start(self, *extra, data=None):
        """Start airmeshd expecting failure; return (exit code, stderr). A sanitizer report
        on the way out fails the test whatever the exit code."""
        p = subprocess.run([AIRMESHD, "--data", data or self.data, "--listen",
                            f"127.0.0.1:{free_port()}", "--ui", UI_DIR, *extra],
                           capture_output=True, text=True, timeout=60)
        self.assertIsNone(harness.sanitizer_report(p.stderr), p.stderr)
        self.assertNotIn("admin password", p.stdout)
        return p.returncode, p.stderr

    def expect_start_error(self, msg, error, *extra, data=None, code=1):
        """A refused start: exit status `code` (1: a startup error, never an abort's 134 or a
        signal) and exactly one error line, `msg="MSG" error="ERROR"` (error: a regex that must
        match the whole quoted text)."""
        rc, err = self.fail_start(*extra, data=data)
        self.assertEqual(rc, code, err)
        errors = [l for l in err.splitlines() if "level=error" in l]
        self.assertEqual(len(errors), 1, err)
        m = re.fullmatch(r'ts=\S+ level=error mod=main msg="([^"]*)" error="(.*)"', errors[0])
        self.assertIsNotNone(m, errors[0])
        self.assertEqual(m.group(1), msg, errors[0])
        self.assertRegex(m.group(2), "^(?:" + error + ")$")
        return err

    def test_first_start_prints_url_fingerprint_and_password_once(self):
        d = self.start()
        pw = d.read_password()
        self.assertIsNotNone(pw, d.banner)
        self.assertGreaterEqual(len(pw), 20)
        text = "\n".join(d.banner)
        self.assertIn(d.url + "/", text)
        fp = re.search(r"CA fingerprint: ([0-9a-f]{64})", text).group(1)
        # The printed fingerprint is the SHA-256 of ca.pem, by an independent tool.
        out = subprocess.run(["openssl", "x509", "-in", d.ca, "-noout", "-fingerprint",
                              "-sha256"], capture_output=True, text=True).stdout
        self.assertEqual(out.split("=", 1)[1].strip().replace(":", "").lower(), fp)
        self.assertEqual(d.stop(), 0, d.stderr)
        self.assertNotIn(pw, d.stderr, "the password must never be logged")
        out = d.stdout_text()  # all of stdout, up to the exit
        self.assertEqual(out.count("admin password: "), 1, out)
        # Second start: same CA, no new password (stdout read to its end, after the exit).
        d2 = self.start()
        self.assertIn(fp, "\n".join(d2.banner))
        self.assertEqual(d2.stop(), 0)
        out2 = d2.stdout_text()
        self.assertIn("  runners dial:", out2)
        self.assertNotIn("admin password", out2)
        self.assertNotIn(pw, out2)

    def test_healthz_over_http2_and_http1(self):
        d = self.start()
        code, version, _, body = curl(d, "/healthz")
        self.assertEqual((code, version, body.strip()), (200, "2", "ok"))
        code, version, _, body = curl(d, "/healthz", http="--http1.1")
        self.assertEqual((code, version, body.strip()), (200, "1.1", "ok"))

    def test_tls_below_1_2_is_refused(self):
        d = self.start()

        def s_client(*args):
            # SECLEVEL=0: let the client offer TLS 1.1 at all (OpenSSL 3 refuses it by default).
            return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{d.port}",
                                   "-cipher", "DEFAULT@SECLEVEL=0", *args], input="",
                                  capture_output=True, text=True, timeout=30)
        # Positive control: the same client, TLS 1.2, completes the handshake.
        ok = s_client("-tls1_2")
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertIn("Protocol  : TLSv1.2", ok.stdout)
        # TLS 1.1: the ClientHello reached the server, which answered with the
        # protocol_version alert (70), not just a closed connection.
        p = s_client("-tls1_1")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("tlsv1 alert protocol version", p.stderr, p.stdout + p.stderr)
        self.assertIn("SSL alert number 70", p.stderr)
        self.assertIsNone(d.proc.poll())

    def test_version_api_returns_json(self):
        d = self.start()
        code, _, headers, body = curl(d, "/api/v1/version")
        self.assertEqual(code, 200)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(headers["cache-control"], "no-store")
        doc = json.loads(body)
        self.assertEqual((doc["name"], doc["api"]), ("airmesh", "v1"))

    def test_static_files_have_types_caching_and_security_headers(self):
        d = self.start()
        code, _, h, body = curl(d, "/")
        self.assertEqual(code, 200)
        self.assertIn("<title>airmesh</title>", body)
        self.assertTrue(h["content-type"].startswith("text/html"))
        self.assertIn("etag", h)
        self.assertEqual(h["cache-control"], "no-cache")
        self.assertIn("max-age=", h["strict-transport-security"])
        self.assertIn("frame-ancestors 'none'", h["content-security-policy"])
        self.assertNotIn("unsafe-inline", h["content-security-policy"])
        self.assertEqual(h["x-content-type-options"], "nosniff")
        code, _, h, _ = curl(d, "/style.css")
        self.assertTrue(h["content-type"].startswith("text/css"))
        code, _, _, _ = curl(d, "/no-such-file.js")
        self.assertEqual(code, 404)

    def test_login_whoami_logout_with_airmeshctl(self):
        d = self.start()
        pw = d.read_password()
        home = tempfile.mkdtemp(dir=self.tmp)
        pwfile = os.path.join(self.tmp, "pw")
        with open(pwfile, "w") as f:
            f.write(pw + "\n")
        r = ctl(d, "login", "--user", "admin", "--password-file", pwfile, home=home)
        self.assertEqual(r.returncode, 0, r.stderr)
        sess = os.path.join(home, ".config", "airmesh", "session")
        self.assertEqual(stat.S_IMODE(os.stat(sess).st_mode), 0o600)
        r = ctl(d, "whoami", home=home)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "admin (org default)"), r.stderr)
        token = json.loads(harness.read(sess))["token"]
        # The same token works as a bearer for any script, and AIRMESH_TOKEN overrides the file.
        code, _, _, body = curl(d, "/api/v1/whoami", "-H", "Authorization: Bearer " + token)
        self.assertEqual(code, 200)
        r = ctl(d, "whoami", env_extra={"AIRMESH_TOKEN": token})
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ctl(d, "logout", home=home)
        self.assertEqual(r.returncode, 0, r.stderr)
        code, _, _, _ = curl(d, "/api/v1/whoami", "-H", "Authorization: Bearer " + token)
        self.assertEqual(code, 401, "a logged-out token must stop working")

    def test_password_from_stdin_and_wrong_password_refused(self):
        d = self.start()
        pw = d.read_password()
        r = ctl(d, "login", "--user", "admin", stdin="wrong-password\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("401", r.stderr)
        r = ctl(d, "login", "--user", "nobody", stdin=pw + "\n")
        self.assertEqual(r.returncode, 1)
        r = ctl(d, "login", "--user", "admin", stdin=pw + "\n")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_cookie_session_needs_csrf_header_for_changes(self):
        d = self.start()
        pw = d.read_password()
        code, _, h, body = curl(d, "/api/v1/login", "-H", "Content-Type: application/json",
                                "--data", json.dumps({"user": "admin", "password": pw}))
        self.assertEqual(code, 200)
        cookie = h["set-cookie"]
        for attr in ("HttpOnly", "Secure", "SameSite=Strict"):
            self.assertIn(attr, cookie)
        pair = cookie.split(";")[0]
        code, _, _, _ = curl(d, "/api/v1/whoami", "-H", "Cookie: " + pair)
        self.assertEqual(code, 200)
        code, _, _, _ = curl(d, "/api/v1/logout", "-X", "POST", "-H", "Cookie: " + pair)
        self.assertEqual(code, 403)
        code, _, _, _ = curl(d, "/api/v1/logout", "-X", "POST", "-H", "Cookie: " + pair,
                             "-H", "X-Airmesh-CSRF: 1")
        self.assertEqual(code, 200)

    def test_malformed_requests_get_clear_errors_and_daemon_survives(self):
        d = self.start()
        cases = [b"{not json", b"[1,2]", b'{"user": 5, "password": "x"}', b"\xff\xfe\x00",
                 b'{"user":"a","user":"b","password":"c"}']
        for body in cases:
            p = subprocess.run(["curl", "-sS", "--http2", "--cacert", d.ca, "-w", "%{http_code}",
                                "-o", "/dev/null", "--data-binary", "@-", d.url + "/api/v1/login"],
                               input=body, capture_output=True, timeout=30)
            self.assertEqual(p.stdout, b"400", body)
        code, _, _, body = curl(d, "/api/v1/nope")
        self.assertEqual(code, 404)
        self.assertIn("error", json.loads(body))
        code, _, _, _ = curl(d, "/api/v1/whoami", "-H", "Authorization: Bearer am_garbage")
        self.assertEqual(code, 401)
        big = "x" * (2 << 20)
        # An oversized body is refused (413 over HTTP/1.1; h2o ends an HTTP/2 connection).
        p = subprocess.run(["curl", "-sS", "--http1.1", "--cacert", d.ca, "-w", "%{http_code}", "-o",
                            "/dev/null", "--data-binary", "@-", d.url + "/api/v1/login"],
                           input=big, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.stdout, "413")
        code, _, _, body = curl(d, "/healthz")
        self.assertEqual((code, body.strip()), (200, "ok"))

    def test_sigterm_stops_cleanly_with_exit_0(self):
        d = self.start()
        self.assertEqual(d.stop(signal.SIGTERM), 0, d.stderr)
        self.assertIn("stopped cleanly", d.stderr)
        d = self.start()
        self.assertEqual(d.stop(signal.SIGINT), 0, d.stderr)

    def test_port_in_use_is_one_clear_error(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = subprocess.run([AIRMESHD, "--data", self.data, "--listen", f"127.0.0.1:{port}",
                            "--ui", UI_DIR], capture_output=True, text=True, timeout=60)
        s.close()
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIsNone(harness.sanitizer_report(p.stderr), p.stderr)
        errors = [l for l in p.stderr.splitlines() if "level=error" in l]
        self.assertEqual(len(errors), 1, p.stderr)
        self.assertRegex(errors[0], r'level=error mod=main msg="cannot start HTTPS" error="http: '
                         r'listen on 127\.0\.0\.1:%d: Address already in use \(another airmeshd '
                         r'or program holds the port; stop it or pass --listen\)"$' % port)
        self.assertNotIn("admin password", p.stdout)

    def test_bad_config_file_names_the_problem(self):
        cfg = os.path.join(self.tmp, "airmeshd.yaml")
        c = re.escape(cfg)
        for text, expect in [("listen: 127.0.0.1:1\nbogus: 1\n",
                              f"config {c} line 2: unknown setting 'bogus'"),
                             ("listen: [1, 2\n",
                              f"config {c} line 2: did not find expected ',' or ']'"),
                             ("session_ttl: forever\n",
                              f"config {c} line 1: session_ttl: duration forever: expected a "
                              f"number with s, m, h or d"),
                             ("hostnames: notalist\n",
                              f"config {c} line 1: hostnames must be a list")]:
            with open(cfg, "w") as f:
                f.write(text)
            self.expect_start_error("bad config file", expect, "--config", cfg)
            self.assertFalse(os.path.exists(self.data), "a bad config must change nothing")
        missing = os.path.join(self.tmp, "missing.yaml")
        self.expect_start_error("bad config file",
                                f"config {re.escape(missing)}: No such file or directory",
                                "--config", missing)

    def test_config_file_sets_listen_and_flags_override(self):
        port = free_port()
        cfg = os.path.join(self.tmp, "airmeshd.yaml")
        with open(cfg, "w") as f:
            f.write(f"# comment\nlisten: 127.0.0.1:{port}\nlog_level: warn\n"
                    f"hostnames: [airmesh.test]\nsession_idle: 30m\n")
        p = subprocess.Popen([AIRMESHD, "--config", cfg, "--data", self.data, "--ui", UI_DIR,
                              "--grpc-listen", f"127.0.0.1:{free_port()}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            banner = p.stdout.readline() + p.stdout.readline()
            self.assertIn(f"127.0.0.1:{port}", banner)
            cert = subprocess.run(["openssl", "x509", "-in",
                                   os.path.join(self.data, "pki", "server.pem"), "-noout",
                                   "-ext", "subjectAltName"], capture_output=True, text=True)
            self.assertIn("airmesh.test", cert.stdout)
        finally:
            p.send_signal(signal.SIGTERM)
            rc = p.wait(30)
            err = p.stderr.read()
            p.stdout.close()
            p.stderr.close()
        self.assertEqual(rc, 0, err)
        self.assertIsNone(harness.sanitizer_report(err), err)
        self.assertNotIn("level=info", err, "log_level: warn must silence info lines")

    def test_sessions_expire_when_idle_and_at_their_lifetime(self):
        # No fixed sleeps: the daemon runs on this host's clock, and each login answers with
        # its expiry, so the test waits (using the busy session meanwhile) until the clock is
        # past a deadline the daemon itself set, then checks. Only lower bounds are asserted
        # (a session never ends early); load can only make things later.
        idle_ms, ttl_ms = 3000, 8000
        cfg = os.path.join(self.tmp, "airmeshd.yaml")
        with open(cfg, "w") as f:
            f.write("session_idle: 3s\nsession_ttl: 8s\n")
        d = self.start(extra=("--config", cfg))
        pw = d.read_password()

        def now_ms():
            return time.time() * 1000

        def login():
            code, _, _, body = curl(d, "/api/v1/login", "-H", "Content-Type: application/json",
                                    "--data", json.dumps({"user": "admin", "password": pw}))
            self.assertEqual(code, 200, body)
            doc = json.loads(body)
            return "Authorization: Bearer " + doc["token"], doc["expires_ms"] - ttl_ms

        def whoami(h):
            t0 = now_ms()
            code = curl(d, "/api/v1/whoami", "-H", h)[0]
            return t0, code, now_ms()

        idle, _ = login()
        busy, busy_born = login()
        _, code, idle_last = whoami(idle)
        self.assertEqual(code, 200)
        prev_start, alive_past_idle, idle_checked = None, False, False
        while True:
            start, code, end = whoami(busy)
            # Guaranteed alive: before its lifetime, and used recently enough that the server
            # refreshed it (refresh granularity: a quarter of the idle timeout).
            if end < busy_born + ttl_ms and (prev_start is None or
                                             end - prev_start < idle_ms * 3 / 4):
                self.assertEqual(code, 200, "a busy session ended early")
                if end > busy_born + idle_ms + 250:
                    alive_past_idle = True
            if start > busy_born + ttl_ms + 100:
                self.assertEqual(code, 401, "session lifetime")
                break
            prev_start = start
            if not idle_checked and now_ms() > idle_last + idle_ms + 100:
                self.assertEqual(whoami(idle)[1], 401, "idle timeout")
                idle_checked = True
            time.sleep(0.2)  # pacing of the busy user, not a wait for anything
        self.assertTrue(idle_checked)
        self.assertTrue(alive_past_idle, "being used kept the session alive past the idle "
                        "timeout (or the machine was too loaded to use it every 2 s)")

    def test_data_dir_that_is_a_file_is_refused(self):
        path = os.path.join(self.tmp, "afile")
        open(path, "w").write("x")
        self.expect_start_error("data dir", f"data dir {re.escape(path)}: exists and is not a "
                                "directory", data=path)

    def test_corrupt_store_is_refused_and_left_untouched(self):
        d = self.start()
        self.assertEqual(d.stop(), 0)
        mdb = os.path.join(self.data, "state", "data.mdb")
        with open(mdb, "r+b") as f:
            f.write(os.urandom(8192))
        before = harness.read(mdb, "rb")
        self.expect_start_error(STORE_MSG, STORE_ERR)
        self.assertEqual(harness.read(mdb, "rb"), before, "a corrupt store must not be rewritten")

    def test_missing_ca_key_is_refused_not_recreated(self):
        d = self.start()
        self.assertEqual(d.stop(), 0)
        root_pem = harness.read(os.path.join(self.data, "pki", "root.pem"))
        os.unlink(os.path.join(self.data, "pki", "root.key"))
        self.expect_start_error(PKI_MSG, PKI_ERR)
        self.assertEqual(harness.read(os.path.join(self.data, "pki", "root.pem")), root_pem)

    def test_second_daemon_on_same_data_dir_is_refused(self):
        self.start()
        self.expect_start_error("data dir", f"data dir {re.escape(self.data)}: in use by another "
                                "airmeshd")

    def test_help_and_version(self):
        for binary in (AIRMESHD, AIRMESHCTL):
            p = subprocess.run([binary, "--help"], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0)
            self.assertIn("Usage:", p.stdout)
            p = subprocess.run([binary, "--version"], capture_output=True, text=True)
            self.assertRegex(p.stdout, r"\d+\.\d+\.\d+")
        p = subprocess.run([AIRMESHD, "--bogus"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stderr, "airmeshd: unknown or incomplete option '--bogus' (see --help)\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
