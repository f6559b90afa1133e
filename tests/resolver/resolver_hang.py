#!/usr/bin/python3
"""A name service that never answers must not hold the shim's loop.

Runs build/alwaysup in a private mount namespace (unshare -m) whose
/etc/resolv.conf points at a local UDP socket that swallows every query,
with a daemon URL whose host is a name (not in /etc/hosts). While the
lookup hangs: a ping is answered at once, a cold-start initialize is
answered after --init-grace, the failed lookup is logged with its reason
and retried, and stdin EOF exits promptly. Needs root (port 53 and
unshare); CI=true turns a missing capability into a failure.

    /usr/bin/python3 tests/resolver/resolver_hang.py
Ends with "N passed, M failed"."""
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIM = os.environ.get("ALWAYSUP_BIN", os.path.join(REPO, "build", "alwaysup"))
LOGDIR = os.path.join(REPO, "build", "test-logs", "resolver")
SINK = "127.0.0.77"
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print("  ok   %s" % what)
    else:
        failed += 1
        print("  FAIL %s" % what)
    return ok


def unavailable(why):
    print("SKIP resolver_hang: %s" % why)
    if os.environ.get("CI") == "true":
        print("0 passed, 1 failed")
        sys.exit(1)
    print("0 passed, 0 failed")
    sys.exit(0)


def main():
    os.makedirs(LOGDIR, exist_ok=True)
    if not shutil.which("unshare"):
        unavailable("unshare not found")
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sink.bind((SINK, 53))
    except OSError as e:
        unavailable("cannot bind %s:53 (%s): run as root" % (SINK, e))
    queries = [0]

    def swallow():
        while True:
            try:
                sink.recvfrom(4096)
                queries[0] += 1
            except OSError:
                return
    threading.Thread(target=swallow, daemon=True).start()
    rc = os.path.join(LOGDIR, "resolv.conf")
    with open(rc, "w") as f:
        f.write("nameserver %s\noptions timeout:5 attempts:2\n" % SINK)
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount --bind %s /etc/resolv.conf && cat /etc/resolv.conf" % rc],
                           capture_output=True, text=True, timeout=10)
    if probe.returncode != 0 or SINK not in probe.stdout:
        unavailable("unshare -m with a bind mount is not allowed here: %s" % probe.stderr.strip()[:200])
    log = os.path.join(LOGDIR, "shim.log")
    if os.path.exists(log):
        os.remove(log)
    cmd = "mount --bind %s /etc/resolv.conf && exec %s --log-level debug --log-file %s --state-dir '' --init-grace 1 " \
          "--connect-timeout 2 ws://mcp-daemon.example.net:8079" % (rc, SHIM, log)
    p = subprocess.Popen(["unshare", "-m", "sh", "-c", cmd], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    out = []

    def read_line(timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([p.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if r:
                line = p.stdout.readline()
                if not line:
                    return None
                out.append(line)
                return json.loads(line)
        return None
    try:
        time.sleep(0.5)                       # the lookup is under way
        t0 = time.monotonic()
        p.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
        p.stdin.flush()
        m = read_line(3)
        took = time.monotonic() - t0
        check(isinstance(m, dict) and m.get("id") == 1 and m.get("result") == {},
              "a ping is answered while the name service hangs (%.0f ms): %r" % (took * 1000, m))
        check(took < 1.0, "... at once (%.0f ms; a blocking lookup would hold it for seconds)" % (took * 1000))
        t0 = time.monotonic()
        p.stdin.write(b'{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
                      b'"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}\n')
        p.stdin.flush()
        m = read_line(5)
        took = time.monotonic() - t0
        check(isinstance(m, dict) and m.get("id") == 2 and "result" in m and 0.8 < took < 2.5,
              "initialize answered here after --init-grace 1 s (%.2f s): %r" % (took, m))
        time.sleep(2.5)                       # past the resolver's own timeout (--connect-timeout 2)
        text = open(log).read() if os.path.exists(log) else ""
        check("no answer from the name service within" in text, "the hanging lookup is a failed attempt with its reason in the log")
        check(queries[0] > 0, "the lookup really went to the swallowing name server (%d queries)" % queries[0])
        t0 = time.monotonic()
        p.stdin.close()
        try:
            code = p.wait(timeout=3)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - t0
        check(code == 0 and took < 0.5, "stdin EOF exits promptly while a lookup hangs (%.0f ms, status %s)" % (took * 1000, code))
    finally:
        if p.poll() is None:
            p.kill()
        sink.close()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
