#!/usr/bin/env python3
"""A small MCP stdio server for durin's tests, well- or ill-behaved.

mcp-fake.py MODE [LOG]: speaks newline-delimited JSON-RPC on stdin and
stdout, and appends every message it receives to LOG (default
mcp-fake.log in its working directory, the run's workspace) so a test can
see what the client sent (notifications/cancelled, progress tokens).

Modes change the opening or the tools:
  good        tools ok, fail (isError), slow (progress, then waits to be
              cancelled), die (exits mid-call), lastword (answers, then
              exits at once), garbage (answers non-JSON),
              huge (answers a 5 MiB line), stray (answers an id never asked),
              plus a tool with an invalid inputSchema, which is left out
  oldversion  answers initialize with protocol version 2024-11-05
  paged       lists its tools over two pages (nextCursor)
  flip        ok unannotated, until the workspace holds flip-readonly
              (then readOnlyHint) or flip-gone (then not listed)
  mute        reads and never answers
  http PORTFILE
              a streamable HTTP server on loopback instead (its port
              written to PORTFILE) that answers plain JSON, speaks
              2025-03-26, hands out a session id and insists on it and on
              the MCP-Protocol-Version header; its tool whoami answers with
              the Authorization header it got; LOG gets each request's
              headers too
"""
import json
import os
import select
import sys
import time

mode = sys.argv[1] if len(sys.argv) > 1 else "good"
log_path = sys.argv[2] if len(sys.argv) > 2 else "mcp-fake.log"


def log(msg):
    with open(log_path, "a") as f:
        f.write(json.dumps(msg) + "\n")


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def obj(props, required=()):
    return {"type": "object", "properties": props, "required": list(required)}


TOOLS = [
    {"name": "ok", "description": "echoes its text",
     "inputSchema": obj({"text": {"type": "string"}}, ["text"]),
     "annotations": {"idempotentHint": True}},
    {"name": "fail", "description": "always fails",
     "inputSchema": obj({})},
    {"name": "slow", "description": "reports progress and waits",
     "inputSchema": obj({"seconds": {"type": "number"}}),
     "annotations": {"readOnlyHint": True}},
    {"name": "die", "description": "exits, saying its argument on stderr",
     "inputSchema": obj({"say": {"type": "string"}})},
    {"name": "lastword", "description": "answers, then exits at once",
     "inputSchema": obj({})},
    {"name": "garbage", "description": "answers non-JSON",
     "inputSchema": obj({})},
    {"name": "huge", "description": "answers 5 MiB", "inputSchema": obj({})},
    {"name": "stray", "description": "answers the wrong id",
     "inputSchema": obj({})},
    {"name": "badschema", "description": "its schema is not an object",
     "inputSchema": {"type": "string"}},
]


def flipped():
    """Mode flip: ok is unannotated (unsafe) until the workspace holds
    flip-readonly (then it says readOnlyHint) or flip-gone (then it is not
    listed at all): a server that changed between a crash and a resume."""
    if os.path.exists("flip-gone"):
        return [t for t in TOOLS if t["name"] != "ok"]
    ok = dict(TOOLS[0])
    if os.path.exists("flip-readonly"):
        ok["annotations"] = {"readOnlyHint": True}
    else:
        ok.pop("annotations")
    return [ok] + TOOLS[1:]


def handle(msg):
    if mode == "mute":
        return
    method = msg.get("method")
    mid = msg.get("id")
    if method == "initialize":
        v = "2024-11-05" if mode == "oldversion" else \
            msg["params"]["protocolVersion"]
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "protocolVersion": v, "capabilities": {"tools": {}},
            "serverInfo": {"name": "fake", "version": "1"}}})
    elif method == "tools/list":
        cursor = (msg.get("params") or {}).get("cursor")
        if mode == "paged" and not cursor:
            send({"jsonrpc": "2.0", "id": mid,
                  "result": {"tools": TOOLS[:2], "nextCursor": "page2"}})
        elif mode == "paged":
            send({"jsonrpc": "2.0", "id": mid, "result": {"tools": TOOLS[2:]}})
        elif mode == "flip":
            send({"jsonrpc": "2.0", "id": mid, "result": {"tools": flipped()}})
        else:
            send({"jsonrpc": "2.0", "id": mid, "result": {"tools": TOOLS}})
    elif method == "tools/call":
        name = msg["params"]["name"]
        args = msg["params"].get("arguments") or {}
        token = (msg["params"].get("_meta") or {}).get("progressToken")
        if name == "ok":
            send({"jsonrpc": "2.0", "id": mid, "result": {
                "content": [{"type": "text", "text": "ok: " + args["text"]}]}})
        elif name == "fail":
            send({"jsonrpc": "2.0", "id": mid, "result": {
                "isError": True,
                "content": [{"type": "text", "text": "the disk is on fire"}]}})
        elif name == "slow":
            for i in range(3):
                send({"jsonrpc": "2.0", "method": "notifications/progress",
                      "params": {"progressToken": token, "progress": i + 1,
                                 "total": 3, "message": "step %d" % (i + 1)}})
            secs = args.get("seconds", 0)
            if secs:
                # Answered late, or never: the client cancels or gives up.
                deadline = time.time() + secs
                while time.time() < deadline:
                    ready, _, _ = select.select(
                        [sys.stdin], [], [], deadline - time.time())
                    if not ready:
                        break
                    line = sys.stdin.readline()
                    if not line:
                        sys.exit(0)
                    m = json.loads(line)
                    log(m)
                    if m.get("method") == "notifications/cancelled":
                        return
            send({"jsonrpc": "2.0", "id": mid, "result": {
                "content": [{"type": "text", "text": "slow done"}]}})
        elif name == "lastword":
            send({"jsonrpc": "2.0", "id": mid, "result": {
                "content": [{"type": "text", "text": "said before exiting"}]}})
            os._exit(0)
        elif name == "die":
            sys.stderr.write("fake: dying on purpose %s\n" % args.get("say", ""))
            sys.stderr.flush()
            os._exit(3)
        elif name == "garbage":
            sys.stdout.write("this is not json\n")
            sys.stdout.flush()
        elif name == "huge":
            sys.stdout.write('{"jsonrpc": "2.0", "id": %d, "result": '
                             '{"content": [{"type": "text", "text": "%s"}]}}\n'
                             % (mid, "x" * (5 << 20)))
            sys.stdout.flush()
        elif name == "stray":
            send({"jsonrpc": "2.0", "id": 9999, "result": {}})
    elif mid is not None:
        send({"jsonrpc": "2.0", "id": mid,
              "error": {"code": -32601, "message": "no such method"}})


def serve_http(port_file):
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            msg = json.loads(body)
            log({"headers": dict(self.headers), "message": msg})
            if msg.get("method") != "initialize" and (
                    self.headers.get("Mcp-Session-Id") != "sess-1" or
                    self.headers.get("MCP-Protocol-Version") != "2025-03-26"):
                self.send_response(400)
                self.end_headers()
                return
            out = None
            if msg.get("method") == "initialize":
                out = {"jsonrpc": "2.0", "id": msg["id"], "result": {
                    "protocolVersion": "2025-03-26",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "fake-http", "version": "1"}}}
            elif msg.get("method") == "tools/list":
                out = {"jsonrpc": "2.0", "id": msg["id"], "result": {"tools": [
                    {"name": "whoami", "inputSchema": obj({}),
                     "annotations": {"readOnlyHint": True}}]}}
            elif msg.get("method") == "tools/call":
                out = {"jsonrpc": "2.0", "id": msg["id"], "result": {
                    "content": [{"type": "text", "text": "you are " +
                                 self.headers.get("Authorization", "nobody")}]}}
            if out is None:
                self.send_response(202)
                self.end_headers()
                return
            data = json.dumps(out).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Mcp-Session-Id", "sess-1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = HTTPServer(("127.0.0.1", 0), H)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    srv.serve_forever()


if mode == "http":
    log_path = sys.argv[3] if len(sys.argv) > 3 else "mcp-fake.log"
    serve_http(sys.argv[2])
    sys.exit(0)

for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    m = json.loads(line)
    log(m)
    handle(m)
