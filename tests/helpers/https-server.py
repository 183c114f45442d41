#!/usr/bin/python3
"""A local HTTPS server for the egress tests (t1002-egress-inject).

  https-server.py --cert C --key K --token T --root DIR --port-file F

Serves on 127.0.0.1 (HTTP/1.1, kept alive), and answers only requests that
carry "Authorization: Bearer T" (else 401):

  /whoami          "auth-ok" and how many Authorization headers came
  /echo-token      the token itself (redaction must scrub it)
  /NAME.git/...    git smart HTTP: DIR/NAME.git through git http-backend
  anything else    "hello from the local server"

--open serves without asking for the token (a host nobody grants).
"""
import argparse
import http.server
import os
import ssl
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--cert", required=True)
ap.add_argument("--key", required=True)
ap.add_argument("--token", default="")
ap.add_argument("--root", default=".")
ap.add_argument("--port-file", required=True)
ap.add_argument("--open", action="store_true")
ap.add_argument("--bind", default="127.0.0.1")
args = ap.parse_args()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Head and body go out in two writes: without this, Nagle's algorithm
    # and a delayed ACK add 40 ms to every kept-alive request.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *a):
        sys.stderr.write("https-server: " + (fmt % a) + "\n")

    def send(self, code, body, ctype="text/plain", extra=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self):
        data = self.body()
        auths = self.headers.get_all("Authorization") or []
        if not args.open and auths != ["Bearer " + args.token]:
            self.send(401, "no or wrong token (%d Authorization headers)\n"
                      % len(auths))
            return
        path, _, query = self.path.partition("?")
        if path == "/whoami":
            self.send(200, "auth-ok headers=%d\n" % len(auths))
        elif path == "/echo-token":
            self.send(200, "token=%s\n" % args.token)
        elif ".git/" in path or path.endswith(".git"):
            self.git(path, query, data)
        else:
            self.send(200, "hello from the local server\n")

    def git(self, path, query, data):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": args.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(data)),
            "REMOTE_USER": "agent",
            "REMOTE_ADDR": "127.0.0.1",
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        p = subprocess.run(["/usr/lib/git-core/git-http-backend"], input=data,
                           env=env, capture_output=True)
        head, _, body = p.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, body = p.stdout.partition(b"\n\n")
        code, extra, ctype = 200, [], "text/plain"
        for line in head.decode(errors="replace").splitlines():
            k, _, v = line.partition(":")
            v = v.strip()
            if k.lower() == "status":
                code = int(v.split()[0])
            elif k.lower() == "content-type":
                ctype = v
            elif k:
                extra.append((k, v))
        self.send(code, body, ctype, extra)

    do_GET = do_POST = do_PUT = handle_any


srv = http.server.ThreadingHTTPServer((args.bind, 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(args.cert, args.key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(args.port_file + ".tmp", args.port_file)
srv.serve_forever()
