"""A tiny git smart-HTTP server for tests (issue 13's review push): `git http-backend` behind HTTP
basic auth, on the Python standard library only (http.server + the CGI environment by hand).

Reads (clone/fetch: info/refs?service=git-upload-pack, git-upload-pack) are anonymous, as on most
forges' public repositories; pushes (service=git-receive-pack, git-receive-pack) need the one
user:password the server was given, else 401 with a Basic challenge. Every request is logged in
.requests as (method, path, user or None, status) so a test can prove who pushed. Request bodies
sent with Transfer-Encoding: chunked (libgit2 pushes that way) are de-chunked before they go to
the backend. serve(root, user, password) starts it on 127.0.0.1 on a free port in a thread and
returns the server (.url(repo_name), .stop()).
"""
import base64
import http.server
import os
import subprocess
import threading

BACKEND = "/usr/lib/git-core/git-http-backend"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _git(self):
        srv = self.server
        path, _, query = self.path.partition("?")
        push = "service=git-receive-pack" in query or path.endswith("/git-receive-pack")
        user = None
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
            except Exception:
                u, p = "", ""
            if (u, p) == (srv.user, srv.password):
                user = u
            else:
                srv.bad_auth += 1
        body = self._body()
        if push and user is None:
            srv.requests.append((self.command, self.path, None, 401))
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="test"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        env = {"GIT_PROJECT_ROOT": srv.root, "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path,
               "QUERY_STRING": query, "REQUEST_METHOD": self.command,
               "CONTENT_TYPE": self.headers.get("Content-Type", ""),
               "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": self.client_address[0],
               "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_CONFIG_NOSYSTEM": "1",
               "HOME": srv.root}
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if user:
            env["REMOTE_USER"] = user
        r = subprocess.run([BACKEND], input=body, env=env, capture_output=True, timeout=60)
        head, _, rest = r.stdout.partition(b"\r\n\r\n")
        if not rest and b"\n\n" in r.stdout:
            head, _, rest = r.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.strip().split()[0])
            elif k:
                headers.append((k, v.strip()))
        srv.requests.append((self.command, self.path, user, status))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        self.wfile.write(rest)

    do_GET = _git
    do_POST = _git


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def url(self, name):
        return "http://127.0.0.1:%d/%s" % (self.server_address[1], name)

    def stop(self):
        self.shutdown()
        self.server_close()


def serve(root, user, password):
    s = Server(("127.0.0.1", 0), _Handler)
    s.root, s.user, s.password = root, user, password
    s.requests, s.bad_auth = [], 0
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s
