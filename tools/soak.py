#!/usr/bin/env python3
"""Restart soak: a client keeps up to 32 requests in flight through
build/alwaysup while the test daemon is killed and restarted at random
intervals (and sometimes frozen, or answering 502 to the upgrade).

    tools/soak.py [--restarts N] [--seed S] [--inflight 32] [--tls]

--tls puts nginx terminating TLS in front of the daemon (tests/tls/tlsnginx.py,
certificates from tests/tls/make_certs.sh) and runs the OpenSSL build
(ALWAYSUP_TLS_BIN, default build/alwaysup-tls) with --ca-file on wss://; a
killed daemon is then a 502 from nginx until it listens again, and every
check must also find the shim's connections in nginx's access log as TLS.

Afterwards: every request got exactly one answer (its result or an error),
no answer went to the wrong id, no stdout line was malformed, the MCP
session survived every restart, and the shim's memory at the end is within a
small bound of its memory after warm-up. Prints the figures: requests,
restarts and the recovery time of each restart (from the daemon listening
again to the first echo answered by it, and from the kill to that answer).
Ends with "N passed, M failed"."""
import argparse
import json
import os
import random
import re
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "tls"))
import harness  # noqa: E402
from harness import SLOW, WRAP, Checks, Daemon, Shim  # noqa: E402


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--restarts", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--inflight", type=int, default=32)
    ap.add_argument("--tls", action="store_true", help="wss:// through nginx terminating TLS, the OpenSSL build")
    args = ap.parse_args()
    rnd = random.Random(args.seed)                # the restart schedule: the same for a seed
    wrnd = random.Random(args.seed + 1000003)     # the writer's own, so its pace cannot shift the schedule
    name = "soak-tls" if args.tls else "soak"
    t = Checks(name)
    d = Daemon(name, args=["--mcp-strict"], instance="life-0")
    url, extra, ng = d.url(), [], None
    if args.tls:
        import tlsnginx
        tls_bin = os.environ.get("ALWAYSUP_TLS_BIN", os.path.join(ROOT, "build", "alwaysup-tls"))
        if not os.access(tls_bin, os.X_OK):
            d.stop()
            print("soak: %s missing (make build/alwaysup-tls)" % tls_bin)
            print("0 passed, 1 failed")
            return 1
        logdir = os.path.join(ROOT, "build", "test-logs", "soak-tls")
        certs = tlsnginx.make_certs(os.path.join(logdir, "certs"))
        ng = tlsnginx.Nginx("soak", d.port, [tlsnginx.tls_server(os.path.join(certs, "server.pem"),
                                                                os.path.join(certs, "server.key"))], logdir)
        url, extra = "wss://localhost:%d" % ng.port, ["--ca-file", os.path.join(certs, "ca.pem")]
        harness.SHIM = tls_bin
    s = Shim(name, url, "--ping-interval", "0.3", "--ping-timeout", "0.6", "--handshake-timeout", "1",
             "--backoff-max", "0.4", "--queue-timeout", "20", "--log-level", "info", *extra)
    sent = {}                 # id -> params we sent
    answers = {}              # id -> list of answers
    wrong = []
    lock = threading.Lock()
    stop = threading.Event()
    slots = threading.Semaphore(args.inflight)
    counter = [0]
    echo_times = []           # when each echo result arrived: only a daemon answers echo

    # the MCP session the shim must carry over every restart
    i = s.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "soak", "version": "1"}})
    init = s.wait_for(i, 10)
    t.check(init is not None and "result" in init, "initialized")
    s.notify("notifications/initialized")
    with s.lock:
        s.all.clear()
    while s.next_message(0.05) is not None:             # the initialize answer, already seen
        pass
    s.sent_ids.clear()

    def reader():
        """Matches answers to requests as they arrive and frees a slot."""
        while not (stop.is_set() and not pending()):
            m = s.next_message(0.2)
            if m is None:
                if s.proc.poll() is not None:
                    return
                continue
            if not isinstance(m, dict) or "id" not in m or "method" in m:
                continue                                  # notifications (list_changed) are fine
            with lock:
                ident = m["id"]
                if ident not in sent:
                    wrong.append(("unknown id", ident))
                    continue
                answers.setdefault(ident, []).append(m)
                if len(answers[ident]) == 1:
                    slots.release()
                if "result" in m:
                    p = m["result"].get("params") if isinstance(m["result"], dict) else None
                    if sent[ident][0] == "echo" and p != sent[ident][1]:
                        wrong.append(("answer for another request", ident))
                    elif sent[ident][0] == "echo":
                        echo_times.append(time.monotonic())

    def pending():
        with lock:
            return [k for k in sent if k not in answers]

    def writer():
        while not stop.is_set():
            if not slots.acquire(timeout=0.2):
                continue
            with lock:
                counter[0] += 1
                n = counter[0]
                kind = wrnd.random()
                if kind < 0.8:
                    method, params = "echo", {"n": n, "pad": "x" * wrnd.randrange(0, 3000)}
                elif kind < 0.9:
                    method, params = "tools/list", None     # safe: re-sent after a lost connection
                else:
                    method, params = "sleep", {"ms": wrnd.randrange(10, 400)}
                ident = "r%d" % n
                sent[ident] = (method, params)
            s.request(method, params, id=ident)
            if n % 50 == 0:
                s.notify("notifications/progress", {"n": n})

    rd = threading.Thread(target=reader, daemon=True)
    wr = threading.Thread(target=writer, daemon=True)
    rd.start()
    wr.start()

    events = {"kill": 0, "freeze": 0, "http502": 0}
    warm_rss = None
    downs, ups = [], []       # per restart: when the daemon stopped answering, when it listened again
    t0 = time.monotonic()
    for k in range(args.restarts):
        time.sleep(rnd.uniform(0.1, 0.6))                 # daemon up for a while
        downs.append(time.monotonic())
        roll = rnd.random()
        if roll < 0.15:                                   # frozen: keepalive must notice, then it dies
            events["freeze"] += 1
            d.cmd("freeze")
            time.sleep(rnd.uniform(0.8, 1.2))
            d.kill()
        elif roll < 0.25:                                 # a proxy answering 502 for a while
            events["http502"] += 1
            d.cmd("mode http502")
            d.cmd("drop")
            time.sleep(rnd.uniform(0.2, 0.5))
            d.kill()
        else:
            events["kill"] += 1
            d.kill()
        time.sleep(rnd.uniform(0.0, 0.4))                 # down
        d.start(instance="life-%d" % (k + 1))
        ups.append(time.monotonic())
        if k == min(4, args.restarts - 1) and not WRAP:
            time.sleep(0.5)
            warm_rss = rss_kib(s.proc.pid)
    # let everything settle with the daemon up
    time.sleep(1.0)
    stop.set()
    deadline = time.monotonic() + 30 * SLOW
    while pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    wr.join(5)
    rd.join(5)
    end_rss = rss_kib(s.proc.pid) if not WRAP else None
    elapsed = time.monotonic() - t0

    with lock:
        total = len(sent)
        once = sum(1 for k in sent if len(answers.get(k, [])) == 1)
        twice = [k for k in sent if len(answers.get(k, [])) > 1]
        never = [k for k in sent if not answers.get(k)]
        results = sum(1 for v in answers.values() for m in v if "result" in m)
        errors = sum(1 for v in answers.values() for m in v if "error" in m)
    t.check(not never, "every request answered (%d of %d unanswered: %s)" % (len(never), total, never[:5]))
    t.check(not twice, "no request answered twice (%s)" % twice[:5])
    t.check(not wrong, "no answer went to the wrong id (%s)" % wrong[:5])
    t.check(not s.malformed, "every stdout line one JSON-RPC message (%r)" % s.malformed[:3])
    t.check(s.proc.poll() is None, "the shim is still running")
    strict_errors = sum(1 for v in answers.values() for m in v if "error" in m and m["error"].get("code") == -32002)
    t.check(strict_errors == 0, "the strict daemon never saw a request before initialize (%d -32002)" % strict_errors)
    if warm_rss is not None and end_rss is not None:
        t.check(end_rss <= warm_rss + 4096, "memory after %d restarts %d KiB, after warm-up %d KiB (bound +4 MiB)"
                % (args.restarts, end_rss, warm_rss))
    # recovery: for each restart, the first echo answered after the daemon listened again
    # (before the next outage began); lives too short to answer one are counted apart
    with lock:
        times = sorted(echo_times)
    recover, gap, missed = [], [], 0
    for k, up in enumerate(ups):
        end = downs[k + 1] if k + 1 < len(downs) else float("inf")
        first = next((x for x in times if up <= x < end), None)
        if first is None:
            missed += 1
        else:
            recover.append((first - up) * 1000)
            gap.append((first - downs[k]) * 1000)
    t.check(not ups or any(x >= ups[-1] for x in times), "echo answered again after the last restart")
    s.close_stdin()
    t.check(s.wait_exit(5) == 0, "exits 0 on stdin EOF afterwards")
    s.stop()
    d.stop()
    if ng:
        ng.stop()
        tls_ups = len(re.findall(r'" 101 sni="localhost" proto=TLSv1\.[23] ', ng.access()))
        t.check(tls_ups >= len(recover) + 1, "nginx upgraded %d connections over TLS (at least one per recovery, %d)"
                % (tls_ups, len(recover) + 1))
        t.check(re.search(r"(?i)insecure", harness.read_text(s.stderr_path)) is None,
                "no --insecure warning: the CA file was used")
    print("soak: %s%d restarts (%d kills, %d freezes, %d 502 spells) in %.0f s" % (
        "over wss:// (nginx terminating TLS, %s), " % os.path.relpath(harness.SHIM, ROOT) if ng else "",
        args.restarts, events["kill"], events["freeze"], events["http502"], elapsed))
    print("soak: %d requests, %d answered exactly once (%d results, %d errors), %d unanswered, %d twice, %d misrouted" % (
        total, once, results, errors, len(never), len(twice), len(wrong)))
    if recover:
        def pct(v, q):
            v = sorted(v)
            return v[min(len(v) - 1, int(q * len(v)))]
        print("soak: recovery after the daemon listened again, ms: median %.0f, p90 %.0f, max %.0f (%d restarts; in %d more "
              "the daemon was killed again before an echo was answered)" % (pct(recover, 0.5), pct(recover, 0.9),
                                                                           max(recover), len(recover), missed))
        print("soak: from the kill to the first answer again, ms: median %.0f, p90 %.0f, max %.0f" % (
            pct(gap, 0.5), pct(gap, 0.9), max(gap)))
    if ng:
        print("soak: nginx upgraded %d connections over TLS" % tls_ups)
    if warm_rss is not None:
        print("soak: shim RSS %d KiB after warm-up, %d KiB at the end" % (warm_rss, end_rss))
    for n in t.notes:
        print("  " + n)
    print("%d passed, %d failed" % (t.passed, t.failed))
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
