#!/usr/bin/python3
"""Per-pod egress (issue 12): network models / allow, against a real airmeshd and runner.

- a pod with network models has only lo; its client reaches the model gateway listener
  127.0.0.1:4000 inside its own netns, and the answer came over the runner's stream from the
  appliance's model gateway (in the API's own format: 404 for a model no endpoint serves, 400
  for a bad body; each a model.request audit event with the pod and path); keep-alive, chunked
  bodies, junk (400) and an oversized body (413) are answered by the runner's strict parser;
- from such a pod a direct TCP connect to the appliance's HTTPS and gRPC ports and to a
  host-side test server fails, while the same connects succeed from a pod with network host
  (the positive control);
- network allow: CONNECT through 127.0.0.1:3128 to an allowed host:port (a TCP echo server on
  the host's loopback) relays bytes both ways; CONNECT to a host:port not on the list, to the
  appliance's HTTPS port and to its gRPC port, and a plain GET, are refused with 403; each
  refusal and each connection is a pod.egress audit event (denied / ok with byte counts);
- the pod's virtual key is in its environment and not in GET /api/v1/pods/{id}, the stored
  record (only its SHA-256 is) or the audit log;
- the org's allow list: admins set it (REST and airmeshctl), a member cannot (403, audited),
  bad lists are 400 and change nothing;
- seen from the host: the sockets listening on 127.0.0.1:4000/3128 in a running pod's netns are
  fds of the runner and of no process of the pod (its init included), and they are closed when
  the pod ends.
"""
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import unittest
import urllib.parse

import harness
from harness import api, ctl, curl, Daemon, login, Runner, token_login, wait_for


class EchoServer:
    """A TCP echo server on the host's loopback (what an allowed on-prem host stands for)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c):
        with c:
            while True:
                d = c.recv(65536)
                if not d:
                    return
                c.sendall(d)

    def close(self):
        self.sock.close()


# Run inside the pod (python3 from the host's /usr, bound read-only).
CONNECTS = r"""
import os, socket
for item in os.environ["TARGETS"].split(","):
    name, port = item.split(":")
    try:
        s = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
        s.close()
        print("DIRECT", name, "connected")
    except OSError as e:
        print("DIRECT", name, "failed", e.__class__.__name__)
"""

GATEWAY = r"""
import http.client, json, os, shutil, socket, subprocess
print("IFACES", json.dumps([n for _, n in socket.if_nameindex()]))
key = os.environ.get("OPENAI_API_KEY", "")
print("KEY", key)
print("ENV", json.dumps({k: os.environ.get(k) for k in (
    "OPENAI_BASE_URL", "OPENAI_API_BASE", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY",
    "AIRMESH_GATEWAY_URL", "AIRMESH_MODEL_KEY", "HTTPS_PROXY")}, sort_keys=True))
c = http.client.HTTPConnection("127.0.0.1", 4000, timeout=30)
c.request("POST", "/v1/chat/completions", body=json.dumps({"model": "m", "messages": []}),
          headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
r = c.getresponse()
print("GW1", r.status, r.read().decode().strip())
# The same connection again (keep-alive), with a chunked request body.
c.putrequest("POST", "/v1/messages")
c.putheader("Transfer-Encoding", "chunked")
c.putheader("x-api-key", key)
c.endheaders()
c.send(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")
r = c.getresponse()
print("GW2", r.status, r.read().decode().strip())
def raw(data):
    s = socket.create_connection(("127.0.0.1", 4000), timeout=30)
    s.sendall(data)
    got = b""
    while b"\r\n\r\n" not in got:
        d = s.recv(4096)
        if not d:
            break
        got += d
    s.close()
    return got.split(b"\r\n")[0].decode(errors="replace")
print("JUNK", raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 binary\r\n\r\n"))
print("SMUGGLE", raw(b"POST /v1/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
print("BIG", raw(b"POST /v1/x HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n"))
if shutil.which("curl"):
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                          "-H", "Authorization: Bearer " + key, "-d", "{}",
                          os.environ["OPENAI_BASE_URL"] + "/models"],
                         capture_output=True, text=True, timeout=60)
    print("CURL", out.stdout.strip() or out.stderr.strip())
""" + CONNECTS

PROXY = r"""
import os, socket
def connect(target, payload=None, method="CONNECT"):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=30)
    s.sendall(("%s %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (method, target, target)).encode())
    got = b""
    while b"\r\n\r\n" not in got:
        d = s.recv(4096)
        if not d:
            break
        got += d
    head, _, rest = got.partition(b"\r\n\r\n")
    status = head.split(b"\r\n")[0].decode()
    echo = ""
    if payload and " 200 " in status:
        s.sendall(payload)
        back = b""
        while len(back) < len(payload):
            d = s.recv(65536)
            if not d:
                break
            back += d
        echo = "echo-ok" if back == payload else "echo-bad %d" % len(back)
    else:
        while True:
            d = s.recv(4096)
            if not d:
                break
            rest += d
        echo = rest.decode(errors="replace").strip()
    s.close()
    return status, echo
payload = os.urandom(200000)
for item in os.environ["PROXY_TARGETS"].split(","):
    name, target = item.split("=")
    status, echo = connect(target, payload)
    print("PROXY", name, status, "|", echo)
status, echo = connect("http://example.lan/", method="GET")
print("PROXY get", status, "|", echo)
print("PROXYENV", os.environ.get("HTTPS_PROXY"), os.environ.get("NO_PROXY"))
"""


class EgressTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.guarded_setup(cls, cls._setup)

    @classmethod
    def _setup(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        cls.data = os.path.join(cls.tmp, "airmesh")
        cls.d = Daemon(cls.data).wait_ready()
        cls.admin_pw = cls.d.read_password()
        cls.admin = token_login(cls.d, "admin", cls.admin_pw)
        cls.home = login(cls.d, cls.admin_pw)
        d, a = cls.d, cls.admin
        code, tok = api(d, "POST", "/api/v1/runner-tokens", a, {"ttl": "10m"})
        assert code == 201, tok
        cls.rtmp = tempfile.mkdtemp(prefix="airmesh-egress-test-", dir="/tmp")
        cls.rdata = os.path.join(cls.rtmp, "runner")
        Runner.enroll(d, tok["token"], tok["ca_sha256"], cls.rdata)
        cls.runner = Runner(cls.rdata)
        cls.runner_id = cls.runner.runner_id()
        wait_for(lambda: api(d, "GET", "/api/v1/runners/" + cls.runner_id, a)[1].get("state") ==
                 "online", 30, what="runner online")
        cls.repo = os.path.join(cls.tmp, "repo")
        subprocess.run(["git", "init", "-q", "-b", "main", cls.repo], check=True)
        subprocess.run(["git", "-C", cls.repo, "-c", "user.email=t@x", "-c", "user.name=t",
                        "commit", "-q", "--allow-empty", "-m", "init"], check=True)
        assert api(d, "POST", "/api/v1/users", a, {"name": "mia", "role": "member",
                                                   "password": "mia-password-123"})[0] == 201
        cls.member = token_login(d, "mia", "mia-password-123")
        cls.echo = EchoServer()
        cls.other = EchoServer()  # listening too, but not on the allow list
        cls.host_server = EchoServer()  # a host-side service pods must not reach directly

    @classmethod
    def tearDownClass(cls):
        try:
            cls.runner.stop(timeout=30)
        finally:
            cls.d.stop()
        for s in (cls.echo, cls.other, cls.host_server):
            s.close()
        shutil.rmtree(cls.rtmp, ignore_errors=True)

    # ---- helpers ---------------------------------------------------------------------------

    def run_pod(self, network, script, env=None, token=None, timeout=120):
        body = {"repo": self.repo, "command": ["python3", "-c", script], "env": env or {}}
        if network:
            body["network"] = network
        code, pod = api(self.d, "POST", "/api/v1/pods", token or self.admin, body)
        self.assertEqual(code, 201, pod)
        wait_for(lambda: api(self.d, "GET", "/api/v1/pods/" + pod["id"], self.admin)[1].get(
            "state") in ("exited", "failed", "stopped"), timeout, what="pod ended")
        code, info = api(self.d, "GET", "/api/v1/pods/" + pod["id"], self.admin)
        self.assertEqual(info["state"], "exited", info)
        return info, self.output(pod["id"])

    def output(self, pod_id):
        out = os.path.join(self.tmp, pod_id + ".cast")
        r = ctl(self.d, "pod", "recording", pod_id, "-o", out, home=self.home)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = harness.read(out).splitlines()
        text = "".join(json.loads(l)[2] for l in lines[1:] if json.loads(l)[1] == "o")
        return text.replace("\r\n", "\n")

    @staticmethod
    def lines(out, tag):
        return [l[len(tag) + 1:] for l in out.splitlines() if l.startswith(tag + " ")]

    def targets(self):
        return "https:%d,grpc:%d,server:%d" % (self.d.port, self.d.grpc_port,
                                                self.host_server.port)

    def audit(self, **q):
        code, doc = api(self.d, "GET", "/api/v1/audit?" + urllib.parse.urlencode(
            dict(limit=1000, **q)), self.admin)
        self.assertEqual(code, 200, doc)
        return doc["events"]

    def set_allow(self, allow, token=None):
        return api(self.d, "PUT", "/api/v1/orgs/default/egress-allow", token or self.admin,
                   {"allow": allow})

    # ---- network models --------------------------------------------------------------------

    def test_1_models_pod_has_only_lo_and_reaches_only_the_gateway(self):
        # Positive control: from a pod with the host's network (and from the host itself) the
        # appliance's ports and the host-side server are reachable.
        for port in (self.d.port, self.d.grpc_port, self.host_server.port):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        _, out = self.run_pod("host", CONNECTS, env={"TARGETS": self.targets()})
        self.assertEqual(sorted(self.lines(out, "DIRECT")),
                         ["grpc connected", "https connected", "server connected"], out)

        info, out = self.run_pod("models", GATEWAY, env={"TARGETS": self.targets()})
        pod_id = info["id"]
        self.assertEqual(info["network"], "models")
        self.assertEqual(self.lines(out, "IFACES"), ['["lo"]'], out)
        # The answer came over the stream from the appliance's model gateway: the org has no
        # endpoint for model "m" (404, OpenAI's format), the chunked Messages body is not JSON
        # (400, Anthropic's format), and each is a model.request audit event of this pod with
        # its path.
        gw1 = self.lines(out, "GW1")
        self.assertEqual(len(gw1), 1, out)
        self.assertTrue(gw1[0].startswith("404 "), out)
        self.assertIn("is not served by any openai endpoint", gw1[0])
        gw2 = self.lines(out, "GW2")
        self.assertEqual(len(gw2), 1, out)
        self.assertTrue(gw2[0].startswith("400 "), out)
        self.assertIn('"type":"error"', gw2[0])
        reqs = wait_for(lambda: [e for e in self.audit(action="model.request")
                                 if e["actor"] == "pod:" + pod_id] or None, 30,
                        what="model.request events")
        paths = sorted(json.loads(e["details"])["path"] if isinstance(e["details"], str)
                       else e["details"]["path"] for e in reqs)
        self.assertIn("/v1/chat/completions", paths)
        self.assertIn("/v1/messages", paths)
        self.assertEqual(self.lines(out, "JUNK"), ["HTTP/1.1 400 Bad Request"], out)
        self.assertEqual(self.lines(out, "SMUGGLE"), ["HTTP/1.1 400 Bad Request"], out)
        self.assertEqual(self.lines(out, "BIG"), ["HTTP/1.1 413 Content Too Large"], out)
        if shutil.which("curl"):
            self.assertEqual(self.lines(out, "CURL"), ["400"], out)  # a POST without a model
        # Nothing but the gateway: the same connects as the control fail.
        self.assertEqual(sorted(self.lines(out, "DIRECT")),
                         ["grpc failed ConnectionRefusedError",
                          "https failed ConnectionRefusedError",
                          "server failed ConnectionRefusedError"], out)
        self.assertEqual(self.host_server.accepted, 1 + 1, "only the two controls reached it")
        env = json.loads(self.lines(out, "ENV")[0])
        self.assertEqual(env["OPENAI_BASE_URL"], "http://127.0.0.1:4000/v1")
        self.assertEqual(env["OPENAI_API_BASE"], "http://127.0.0.1:4000/v1")
        self.assertEqual(env["ANTHROPIC_BASE_URL"], "http://127.0.0.1:4000")
        self.assertEqual(env["AIRMESH_GATEWAY_URL"], "http://127.0.0.1:4000")
        self.assertIsNone(env["HTTPS_PROXY"])  # no proxy with models

        # The virtual key: in the pod's env (all three spellings), nowhere on the appliance's
        # side but as its SHA-256.
        key = self.lines(out, "KEY")[0]
        self.assertRegex(key, r"^amk_[0-9a-f]{64}$")
        self.assertEqual(env["ANTHROPIC_API_KEY"], key)
        self.assertEqual(env["AIRMESH_MODEL_KEY"], key)
        code, shown = api(self.d, "GET", "/api/v1/pods/" + pod_id, self.admin)
        self.assertEqual(code, 200)
        self.assertIn(pod_id, json.dumps(shown))  # control: the right record
        self.assertNotIn(key, json.dumps(shown))
        self.assertNotIn(key[4:], json.dumps(shown))
        code, listed = api(self.d, "GET", "/api/v1/pods", self.admin)
        self.assertNotIn(key[4:], json.dumps(listed))
        events = json.dumps(self.audit())
        self.assertIn(pod_id, events)  # control: the audit log has this pod's events
        self.assertNotIn(key[4:], events)
        store = b""
        for root, _, files in os.walk(self.data):
            for f in files:
                if f.endswith(".mdb"):
                    with open(os.path.join(root, f), "rb") as fh:
                        store += fh.read()
        self.assertIn(pod_id.encode(), store)  # control: the record is in these bytes
        self.assertIn(hashlib.sha256(key.encode()).digest(), store)  # only its hash is kept
        self.assertNotIn(key[4:].encode(), store)

    def test_2_allow_pod_connects_only_to_listed_host_ports(self):
        target = "127.0.0.1:%d" % self.echo.port
        code, doc = self.set_allow([target, "git.lan:443"])
        self.assertEqual(code, 200, doc)
        self.assertEqual(doc["allow"], [target, "git.lan:443"])
        targets = ",".join([
            "allowed=" + target,
            "unlisted=127.0.0.1:%d" % self.other.port,
            "https=127.0.0.1:%d" % self.d.port,
            "grpc=127.0.0.1:%d" % self.d.grpc_port,
        ])
        before = self.other.accepted
        info, out = self.run_pod("allow", PROXY, env={"PROXY_TARGETS": targets},
                                 token=self.member)
        pod_id = info["id"]
        self.assertEqual(info["network"], "allow")
        self.assertEqual(info["egress_allow"], [target, "git.lan:443"])
        got = {l.split(" ", 1)[0]: l.split(" ", 1)[1] for l in self.lines(out, "PROXY")}
        self.assertEqual(got["allowed"], "HTTP/1.1 200 Connection established | echo-ok", out)
        for name in ("unlisted", "https", "grpc"):
            self.assertTrue(got[name].startswith("HTTP/1.1 403 Forbidden | "), out)
            self.assertIn("is not on this organization's egress allow list", got[name])
        self.assertTrue(got["get"].startswith("HTTP/1.1 403 Forbidden | only CONNECT"), out)
        self.assertEqual(self.other.accepted, before, "the unlisted server was never dialled")
        self.assertEqual(self.lines(out, "PROXYENV"),
                         ["http://127.0.0.1:3128 127.0.0.1,localhost"], out)

        def egress_events():
            return [e for e in self.audit(action="pod.egress") if e["actor"] == "pod:" + pod_id]
        wait_for(lambda: any(e["details"]["kind"] == "close" for e in egress_events()), 30,
                 what="the close event")
        ev = egress_events()
        kinds = sorted((e["details"]["kind"], e["result"], e["details"]["port"]) for e in ev)
        self.assertEqual(kinds, sorted([
            ("connect", "ok", self.echo.port), ("close", "ok", self.echo.port),
            ("refused", "denied", self.other.port), ("refused", "denied", self.d.port),
            ("refused", "denied", self.d.grpc_port), ("refused", "denied", 0)]), ev)
        close = [e for e in ev if e["details"]["kind"] == "close"][0]
        self.assertEqual(close["details"]["bytes_up"], 200000)
        self.assertEqual(close["details"]["bytes_down"], 200000)
        self.assertEqual(close["target"], "pod:" + pod_id)
        refused = [e for e in ev if e["details"].get("port") == self.d.port][0]
        self.assertIn("not on this organization's egress allow list",
                      refused["details"]["reason"])

    def test_5_only_the_runner_holds_the_pods_listeners(self):
        # A running allow pod, looked at from the host (as root): the sockets listening on
        # 127.0.0.1:4000 and :3128 of its netns are fds of the runner, of no pod process.
        mark = "egress-test-%d" % os.getpid()
        code, pod = api(self.d, "POST", "/api/v1/pods", self.admin, {
            "repo": self.repo, "network": "allow", "env": {"MARK": mark},
            "command": ["python3", "-c", "import time; time.sleep(300)"]})
        self.assertEqual(code, 201, pod)
        try:
            procs = wait_for(lambda: self.pod_processes(mark), 60, what="the pod's processes")
            netns = os.readlink("/proc/%d/ns/net" % procs[0])
            self.assertNotEqual(netns, os.readlink("/proc/%d/ns/net" % self.runner.pid))
            listening = {}
            with open("/proc/%d/net/tcp" % procs[0]) as f:
                for line in f.readlines()[1:]:
                    col = line.split()
                    if col[3] == "0A":  # LISTEN
                        listening[col[1]] = col[9]
            self.assertEqual(sorted(listening), ["0100007F:0C38", "0100007F:0FA0"])  # 3128, 4000
            inodes = {"socket:[%s]" % i for i in listening.values()}
            runner_fds = self.fd_links(self.runner.pid)
            self.assertTrue(inodes <= runner_fds, "control: the runner holds both listeners")
            for p in procs:
                self.assertFalse(inodes & self.fd_links(p), "pod process %d holds one" % p)
            self.assertIn(1, [self.nspid(p) for p in procs], "the pod's init was looked at")
        finally:
            api(self.d, "POST", "/api/v1/pods/%s/stop" % pod["id"], self.admin)
        wait_for(lambda: api(self.d, "GET", "/api/v1/pods/" + pod["id"], self.admin)[1].get(
            "state") == "stopped", 60, what="pod stopped")
        # The pod is gone: so are its listeners in the runner.
        wait_for(lambda: not (inodes & self.fd_links(self.runner.pid)), 30,
                 what="the runner closed the pod's listeners")

    @staticmethod
    def fd_links(pid):
        out = set()
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                out.add(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
            except OSError:
                pass
        return out

    @staticmethod
    def nspid(pid):
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
        return -1

    def pod_processes(self, mark):
        """The processes of the pod whose command has MARK=mark: its netns's descendants of
        the runner (init included), or [] while it is not running yet."""
        def kids(pid):
            res = []
            try:
                for t in os.listdir("/proc/%d/task" % pid):
                    with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                        res += [int(x) for x in f.read().split()]
            except OSError:
                pass
            return res
        every, stack = [], kids(self.runner.pid)
        while stack:
            p = stack.pop()
            every.append(p)
            stack += kids(p)
        netns = None
        for p in every:
            try:
                with open("/proc/%d/environ" % p, "rb") as f:
                    if ("MARK=" + mark).encode() in f.read().split(b"\0"):
                        netns = os.readlink("/proc/%d/ns/net" % p)
            except OSError:
                pass
        if not netns:
            return []
        return sorted(p for p in every if os.path.exists("/proc/%d" % p) and
                      os.readlink("/proc/%d/ns/net" % p) == netns)

    # ---- the org's allow list --------------------------------------------------------------

    def test_3_allow_list_rules(self):
        self.assertEqual(self.set_allow(["a.lan:22"])[0], 200)
        # Any role of the org reads it; only admins and owners change it.
        code, doc = api(self.d, "GET", "/api/v1/orgs/default/egress-allow", self.member)
        self.assertEqual((code, doc["allow"]), (200, ["a.lan:22"]))
        code, doc = self.set_allow(["evil.lan:443"], token=self.member)
        self.assertEqual(code, 403, doc)
        denied = [e for e in self.audit(action="org.egress_allow") if e["result"] == "denied"]
        self.assertTrue(any(e["actor"] == "user:mia" for e in denied), denied)
        bad = [["a.lan"], ["a.lan:0"], ["a.lan:70000"], [":80"], ["a lan:80"], ["a.lan:80x"],
               ["a.lan:80", "A.LAN:80"], ["h%d.lan:1" % i for i in range(65)], [""], [1]]
        for allow in bad:
            code, doc = self.set_allow(allow)
            self.assertEqual(code, 400, (allow, doc))
        for body in ({}, {"allow": "a.lan:80"}, {"allow": [], "x": 1}):
            code, doc = api(self.d, "PUT", "/api/v1/orgs/default/egress-allow", self.admin, body)
            self.assertEqual(code, 400, (body, doc))
        code, doc = api(self.d, "GET", "/api/v1/orgs/default/egress-allow", self.admin)
        self.assertEqual(doc["allow"], ["a.lan:22"])  # nothing changed
        code, doc = api(self.d, "GET", "/api/v1/orgs/other/egress-allow", self.admin)
        self.assertEqual(code, 404, doc)
        # airmeshctl: set (hosts lower-cased, IPv6 in brackets), show, clear; audited.
        r = ctl(self.d, "org", "egress-allow", "default", "Git.LAN:443", "[::1]:8080",
                home=self.home)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("git.lan:443", r.stdout)
        r = ctl(self.d, "org", "egress-allow", "default", home=self.home)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("[::1]:8080", r.stdout)
        r = ctl(self.d, "org", "egress-allow", "default", "bad", home=self.home)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("host:port", r.stderr)
        r = ctl(self.d, "org", "egress-allow", "default", "--clear", home=self.home)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("0 entries", r.stdout)
        ok = [e for e in self.audit(action="org.egress_allow") if e["result"] == "ok"]
        self.assertEqual(ok[-1]["details"], {"allow": []})
        self.assertEqual(ok[-2]["details"], {"allow": ["Git.LAN:443", "[::1]:8080"]})

    def test_4_network_values(self):
        code, doc = api(self.d, "POST", "/api/v1/pods", self.member,
                        {"repo": self.repo, "command": ["true"], "network": "internet"})
        self.assertEqual(code, 400, doc)
        self.assertIn("models", doc["error"]["message"])
        code, doc = api(self.d, "POST", "/api/v1/pods", self.member,
                        {"repo": self.repo, "command": ["true"], "network": "host"})
        self.assertEqual(code, 403, doc)  # host stays admin/owner only
        # No model endpoint in this org: the default stays none (no listener, no key).
        info, out = self.run_pod(None, "import os, socket\n"
                                 "print('KEYSET', 'OPENAI_API_KEY' in os.environ)\n"
                                 "try:\n"
                                 "    socket.create_connection(('127.0.0.1', 4000), timeout=5)\n"
                                 "    print('GW reached')\n"
                                 "except OSError as e:\n"
                                 "    print('GW', e.__class__.__name__)\n",
                                 token=self.member)
        self.assertEqual(info["network"], "none")
        self.assertEqual(self.lines(out, "KEYSET"), ["False"], out)
        self.assertEqual(self.lines(out, "GW"), ["ConnectionRefusedError"], out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
