#!/usr/bin/python3
"""Proxy overhead per HTTPS request: tunnel against injection.

  bench/egress/bench.py BUILD [N]

Starts the tests' local HTTPS server (tests/helpers/https-server.py) on
this host's name twice: one port granted a secret (the proxy terminates
TLS and adds the header), one only allowed (a CONNECT tunnel). Runs the
sandbox helper as a worker would, with the grant in a sealed memfd, and
inside it times N curl requests to each (curl's own time_total per
request): in one curl (one kept-alive connection) and as N curls (a
connection and a TLS handshake each, the kinds alternating). The same
from the host, without sandbox or proxy, is the baseline.
"""
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

build = sys.argv[1] if len(sys.argv) > 1 else "build-bench"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
src = os.path.dirname(os.path.abspath(__file__)) + "/../.."
helper = os.path.join(build, "durin-sandbox")
host = socket.gethostname()
if not socket.gethostbyname(host).startswith("127."):
    sys.exit("egress bench: %s does not resolve to loopback" % host)
token = "bench_T0ken_0123456789abcdef"
tmp = tempfile.mkdtemp()
procs = []


def sh(*a, **kw):
    subprocess.run(a, check=True, capture_output=True, cwd=tmp, **kw)


try:
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
       "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out",
       "ca.pem", "-days", "1", "-subj", "/CN=bench CA", "-addext",
       "basicConstraints=critical,CA:TRUE", "-addext",
       "keyUsage=critical,keyCertSign")
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt",
       "ec_paramgen_curve:P-256", "-nodes", "-keyout", "srv.key", "-out",
       "srv.csr", "-subj", "/CN=" + host)
    with open(tmp + "/ext", "w") as f:
        f.write("subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n" % host)
    sh("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey",
       "ca.key", "-CAcreateserial", "-out", "srv.pem", "-days", "1",
       "-extfile", "ext")
    ports = {}
    for name, extra in (("inject", []), ("tunnel", ["--open"])):
        pf = "%s/%s.port" % (tmp, name)
        procs.append(subprocess.Popen(
            ["python3", src + "/tests/helpers/https-server.py", "--cert",
             tmp + "/srv.pem", "--key", tmp + "/srv.key", "--token", token,
             "--port-file", pf] + extra, stderr=subprocess.DEVNULL))
        while not os.path.exists(pf):
            time.sleep(0.05)
        ports[name] = open(pf).read().strip()

    def s(b):
        b = b.encode()
        return struct.pack("=I", len(b)) + b

    blob = (b"durin-grants-1\n" + b"H" + s("%s:%s" % (host, ports["inject"]))
            + s("Authorization") + s("Bearer " + token))
    fd = os.memfd_create("grants")
    os.write(fd, blob)
    if fd != 5:
        os.dup2(fd, 5)
    ws = tmp + "/ws"
    os.mkdir(ws)
    # What curl loads matters (the system's ~140 CAs cost it ~30 ms a
    # start): the baseline and the tunnel load the system's bundle plus the
    # bench CA, as the sandbox's bundle is the system's plus the call's.
    with open(ws + "/ca.pem", "w") as f:
        f.write(open("/etc/ssl/certs/ca-certificates.crt").read())
        f.write(open(tmp + "/ca.pem").read())

    def run(script, sandboxed):
        """The script's output, run inside the sandbox or on the host."""
        if sandboxed:
            argv = [helper, "--workspace", ws, "--net", "proxy"]
            for p in ports.values():
                argv += ["--allow-host", "%s:%s" % (host, p)]
            argv += ["--grants-fd", "5", "--egress-ca", tmp + "/ca.pem", "--",
                     "bash", "-c", script]
            r = subprocess.run(argv, pass_fds=(5,), capture_output=True,
                               env={"PATH": "/usr/bin:/bin"}, text=True)
        else:
            r = subprocess.run(["bash", "-c", script], cwd=ws,
                               capture_output=True, text=True,
                               env={"PATH": "/usr/bin:/bin"})
        if r.returncode:
            sys.exit("egress bench failed: " + r.stdout + r.stderr)
        return r.stdout

    # Each curl prints one line per request: KIND seconds. New connections
    # alternate between the kinds, so a change of load hits all alike;
    # kept-alive ones are N requests on one connection (the first, which
    # connects, left out).
    fmt = "-w '%s %%{time_total}\\n' -o /dev/null"
    url = {k: "https://%s:%s/whoami" % (host, p) for k, p in ports.items()}

    def script(sandboxed):
        kinds = [("tunnel", "--cacert ca.pem")]
        if sandboxed:
            kinds.append(("inject", ""))
        new = " ".join("curl -sS %s %s %s;" % (ca, fmt % ("new-" + k), url[k])
                       for k, ca in kinds)
        keep = " ".join("curl -sS %s %s %s;" % (ca, fmt % ("keep-" + k),
                                                " ".join([url[k]] * (n + 1)))
                        for k, ca in kinds)
        return "for i in $(seq %d); do %s done; %s" % (n, new, keep)

    def stats(out, kind):
        v = sorted(float(l.split()[1]) * 1e6 for l in out.splitlines()
                   if l.startswith(kind + " "))
        if kind.startswith("keep"):
            v = v[1:] if len(v) > 1 else v
        return v[len(v) // 2], v[int(len(v) * 0.9)]

    host_out = run(script(False), False)
    box_out = run(script(True), True)
    print("== egress proxy: %d HTTPS requests each to a local server (%s), "
          "load %s" % (n, host, " ".join(open("/proc/loadavg").read()
                                         .split()[:3])))
    print("%-34s %22s %22s" % ("", "kept alive p50 / p90", "new conn p50 / p90"))
    for name, out, kind in (
            ("direct from the host (baseline)", host_out, "tunnel"),
            ("sandbox, tunnel (no grant)", box_out, "tunnel"),
            ("sandbox, injection (granted)", box_out, "inject")):
        ka = stats(out, "keep-" + kind)
        nc = stats(out, "new-" + kind)
        print("%-34s %9.0f / %6.0f us %9.0f / %6.0f us" % (name, ka[0], ka[1],
                                                          nc[0], nc[1]))
finally:
    for p in procs:
        p.kill()
        p.wait()
    shutil.rmtree(tmp, ignore_errors=True)
