#!/usr/bin/env python3
"""make demo: the test daemon, the shim and a scripted client; the daemon is
killed and restarted twice while the client keeps calling. About ten seconds."""
import json
import os
import select
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
T0 = time.monotonic()


def say(who, text):
    print("%5.2fs  %-7s %s" % (time.monotonic() - T0, who, text), flush=True)


def start_daemon(port, instance):
    d = subprocess.Popen([os.path.join(BUILD, "testd"), "--port", str(port), "--instance", instance],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(d.stdout.readline().split()[1])
    say("daemon", "instance %s listening on port %d" % (instance, port))
    return d, port


def main():
    daemon, port = start_daemon(0, "first")
    url = "ws://127.0.0.1:%d" % port
    say("shim", "build/alwaysup %s" % url)
    shim = subprocess.Popen([os.path.join(BUILD, "alwaysup"), url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    os.set_blocking(shim.stderr.fileno(), False)
    pending = {}
    buf = b""
    next_id = 1
    plan = {6: "kill", 9: "start:second", 14: "kill", 15: "start:third"}
    for tick in range(20):
        action = plan.get(tick, "")
        if action == "kill":
            daemon.kill()
            daemon.wait()
            say("daemon", "killed (SIGKILL)")
        elif action.startswith("start:"):
            daemon, _ = start_daemon(port, action.split(":")[1])
        msg = {"jsonrpc": "2.0", "id": next_id, "method": "echo", "params": {"call": next_id}}
        pending[next_id] = time.monotonic()
        shim.stdin.write((json.dumps(msg) + "\n").encode())
        shim.stdin.flush()
        say("client", "-> echo #%d" % next_id)
        next_id += 1
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            r, _, _ = select.select([shim.stdout, shim.stderr], [], [], max(0, end - time.monotonic()))
            if shim.stderr in r:
                for line in (shim.stderr.read() or b"").decode().splitlines():
                    say("shim", line.split(" alwaysup ", 1)[-1])
            if shim.stdout in r:
                buf += os.read(shim.stdout.fileno(), 1 << 16)
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    m = json.loads(line)
                    took = (time.monotonic() - pending.pop(m["id"])) * 1000
                    if "result" in m:
                        say("client", "<- #%d answered by daemon '%s' (%.0f ms)" % (m["id"], m["result"]["instance"], took))
                    else:
                        say("client", "<- #%d error: %s" % (m["id"], m["error"]["message"]))
    shim.stdin.close()
    shim.wait(5)
    daemon.kill()
    say("demo", "the client made %d calls across two daemon restarts and never restarted the shim; "
        "%d left unanswered" % (next_id - 1, len(pending)))
    return 0 if not pending else 1


if __name__ == "__main__":
    sys.exit(main())
