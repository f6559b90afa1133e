#!/usr/bin/env python3
"""Integration tests: the real build/alwaysup between a scripted client on its
stdio and the fault-injecting test daemon (build/testd).

    tests/integration.py [-j N] [-k substring] [--list]

Every scenario also checks that each stdout line was one JSON-RPC message and
that each request got exactly one answer. Ends with "N passed, M failed"."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOGDIR, read_text, run_once, SHIM, SLOW, WRAP, Checks, Daemon, Shim, free_port, is_sdk_id, run_scenarios,  # noqa: E402
                     scan_logs, scenario_args, summary)

SCENARIOS = []
MEASURED = {}   # figures for the closing note: name -> text


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


def is_error(m, code=-32000):
    return isinstance(m, dict) and isinstance(m.get("error"), dict) and m["error"].get("code") == code


def wait_conns(d, n, timeout):
    """Until the daemon has n open WebSocket connections; returns seconds or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout * SLOW:
        if d.cmd("conns") == "ok %d" % n:
            return time.monotonic() - t0
        time.sleep(0.005)
    return None


def kill_noticed(d, s, timeout=5.0):
    """SIGKILL the daemon and wait until the shim has logged the loss, so the
    next request is queued rather than sent into the dying connection."""
    seen = s.log().count(" lost: ")
    d.kill()
    deadline = time.monotonic() + timeout * SLOW
    while s.log().count(" lost: ") <= seen and time.monotonic() < deadline:
        time.sleep(0.005)


def drop_noticed(d, s, timeout=5.0):
    """Drop the daemon's connections (no close frame) and wait until the shim
    has logged the loss."""
    seen = s.log().count(" lost: ")
    d.cmd("drop")
    deadline = time.monotonic() + timeout * SLOW
    while s.log().count(" lost: ") <= seen and time.monotonic() < deadline:
        time.sleep(0.005)


def connected(s, timeout=5.0):
    """Until the shim has a live daemon connection: a round trip that only
    the daemon can answer (ping would be answered by the shim while down)."""
    return s.wait_for(s.request("echo", {"probe": "connected"}), timeout)


def wait_log(s, pattern, timeout=5.0):
    """Until the shim's log matches pattern."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout * SLOW:
        if re.search(pattern, s.log()):
            return True
        time.sleep(0.01)
    return False


def log_times(text, pattern):
    """Timestamps (seconds) of shim log lines matching pattern."""
    out = []
    for line in text.splitlines():
        if re.search(pattern, line):
            ts = line.split(" ", 1)[0]
            out.append(datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp())
    return out


# ---------------------------------------------------------------- traffic
@scenario
def normal_traffic(t):
    d = Daemon("normal")
    s = Shim("normal", d.url())
    try:
        i = s.request("echo", {"x": "h\u00e9llo \u2603 \U0001F600", "n": [1, 2.5, None, True]})
        m = s.wait_for(i)
        t.check(m and m["result"]["params"] == {"x": "h\u00e9llo \u2603 \U0001F600", "n": [1, 2.5, None, True]},
                "echo round-trips UTF-8 and JSON values: %r" % (m,))
        i = s.request("pretty")
        m = s.wait_for(i)
        t.check(m and m["result"].get("multiline") == "line 1\nline 2", "pretty-printed answer folded to one line, same value")
        i = s.request("junk")
        m = s.wait_for(i)
        t.check(m and m.get("result") == {"ok": True}, "answer after non-JSON text and binary junk still arrives")
        t.check("not JSON" in s.log(), "non-JSON daemon frames are logged")
        i = s.request("binary")
        m = s.wait_for(i)
        t.check(m and "result" in m, "JSON in a binary frame is forwarded")
        i = s.request("fragment", {"k": "v"})
        m = s.wait_for(i)
        t.check(m and m["result"]["params"] == {"k": "v"}, "fragmented answer with pings between fragments")
        i = s.request("notify", {"count": 5})
        m = s.wait_for(i)
        notes = [x for x in s.all if isinstance(x, dict) and x.get("method") == "notifications/message"]
        t.check(m and m["result"] == {"sent": 5} and [n["params"]["data"] for n in notes] == ["n %d" % k for k in range(1, 6)],
                "notifications arrive in order before the result")
        t.check(s.all.index(m) > s.all.index(notes[-1]) if m and notes else False, "notifications precede the answer")
        i = s.request("big", {"bytes": 3 << 20})
        m = s.wait_for(i, 10)
        t.check(m and len(m["result"]["data"]) == 3 << 20, "3 MiB answer arrives whole")
        i = s.request("no/such/method")
        m = s.wait_for(i)
        t.check(is_error(m, -32601), "daemon errors pass through unchanged")
        s.notify("notifications/hello", {"a": 1})
        i = s.request("ping")
        s.wait_for(i)
        got = [x for x in d.received() if isinstance(x, dict) and x.get("method") == "notifications/hello"]
        t.check(len(got) == 1, "client notifications reach the daemon")
        # string ids, escaped ids, big ids
        for ident in ["abc", "a/b\u00e9", 2 ** 53, -7, 0]:
            s.sent_ids.append(ident)
            s.send({"jsonrpc": "2.0", "id": ident, "method": "ping"})
            m = s.wait_for(ident)
            t.check(m and m.get("result") == {}, "id %r round-trips" % (ident,))
        s.send_raw(b'{"jsonrpc":"2.0","id":"x\\/y","method":"ping"}\n')
        s.sent_ids.append("x/y")
        t.check(s.wait_for("x/y") is not None, "an escaped string id matches its answer")
        s.close_stdin()
        t.check(s.wait_exit(2) == 0, "exit 0 after stdin EOF")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def restart_and_reconnect_time(t):
    d = Daemon("restart", instance="A")
    s = Shim("restart", d.url())
    try:
        i = s.request("echo")
        m = s.wait_for(i)
        t.check(m and m["result"]["instance"] == "A", "first daemon answers")
        times = []
        for k in range(3):
            time.sleep(10.5)                  # healthy for 10 s: the backoff starts over
            d.kill()
            time.sleep(1.0)
            d.start(instance="B%d" % k)
            took = wait_conns(d, 1, 10)
            t.check(took is not None, "shim reconnects after restart %d" % k)
            if took is not None:
                times.append(took)
            i = s.request("echo")
            m = s.wait_for(i)
            t.check(m and m["result"]["instance"] == "B%d" % k, "new daemon answers after restart %d" % k)
        if times:
            MEASURED["reconnect after a 1 s restart of a healthy daemon (listening -> connected)"] = \
                "median %.0f ms, max %.0f ms over %d restarts" % (sorted(times)[len(times) // 2] * 1000, max(times) * 1000, len(times))
        t.check(s.proc.poll() is None, "shim still running")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def three_restarts_in_five_seconds(t):
    d = Daemon("flap")
    s = Shim("flap", d.url())
    try:
        t0 = time.monotonic()
        ids = []
        for k in range(3):
            ids.append(s.request("echo", {"k": k}))
            s.wait_for(ids[-1])
            d.kill()
            deadline = time.monotonic() + 2
            while s.log().count(" lost: ") < k + 1 and time.monotonic() < deadline:
                time.sleep(0.005)                             # the shim saw it: the next one is queued
            ids.append(s.request("echo", {"while_down": k}))
            time.sleep(0.4)
            d.start(instance="F%d" % k)
        t.check(time.monotonic() - t0 < 5 * SLOW, "three restarts within five seconds")
        for i in ids:
            m = s.wait_for(i, 10)
            t.check(m is not None and "result" in m, "request %d answered (result) across flapping" % i)
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def outage_over_a_minute(t):
    d = Daemon("outage")
    s = Shim("outage", d.url(), "--queue-timeout", "20")
    try:
        i = s.request("echo")
        t.check(s.wait_for(i) is not None, "answered before the outage")
        kill_noticed(d, s)
        t0 = time.monotonic()
        during = []
        while time.monotonic() - t0 < 62:
            during.append(s.request("echo", {"during": len(during)}))
            time.sleep(10)
        for i in during[:4]:
            m = s.wait_for(i, 1)
            t.check(is_error(m) and "unreachable" in m["error"]["message"], "request during the outage gets the unreachable error")
        t.check(s.proc.poll() is None, "shim alive after %.0f s of outage" % (time.monotonic() - t0))
        d.start(instance="after")
        t1 = time.monotonic()
        i = s.request("echo")
        m = s.wait_for(i, 10)
        took = time.monotonic() - t1
        t.check(m and m["result"]["instance"] == "after", "first request after the outage answered by the new daemon")
        t.check(took < 1.0 * SLOW, "answered within 1 s though the backoff is at its 5 s cap (took %.3f s)" % took)
        MEASURED["new request after a 62 s outage (backoff at cap)"] = "answered %.0f ms after the daemon listened" % (took * 1000)
        for i in during[4:]:
            s.wait_for(i, 25)
        s.check_clean(t)
        t.check("still trying" in s.log(), "'still trying' logged during the outage")
    finally:
        s.stop()
        d.stop()


# ---------------------------------------------------------------- faults
@scenario
def accept_then_close(t):
    d = Daemon("acceptclose")
    s = Shim("acceptclose", d.url())
    try:
        connected(s)
        d.cmd("mode accept-close")
        d.cmd("drop")
        t.check(wait_log(s, "lost"), "drop noticed")
        i = s.request("echo", {"q": 1})
        time.sleep(2)
        t.check(s.answers(i) == [], "no answer while the port accepts and closes")
        d.cmd("mode normal")
        m = s.wait_for(i, 5)
        t.check(m and "result" in m, "queued request answered once the daemon is back")
        t.check(re.search(r"(before answering|during) the handshake", s.log()) is not None, "accept-then-close logged clearly")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def http_502_during_upgrade(t):
    d = Daemon("http502")
    s = Shim("http502", d.url())
    try:
        connected(s)
        d.cmd("mode http502")
        d.cmd("drop")
        t.check(wait_log(s, "lost"), "drop noticed")
        i = s.request("echo")
        time.sleep(1.5)
        d.cmd("mode http503")
        time.sleep(1.0)
        d.cmd("mode normal")
        m = s.wait_for(i, 5)
        t.check(m and "result" in m, "answered after 502/503 answers to the upgrade")
        log = s.log()
        t.check("HTTP 502 Bad Gateway" in log, "502 logged with its reason")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def bad_accept_and_hanging_handshake(t):
    d = Daemon("badaccept")
    s = Shim("badaccept", d.url(), "--handshake-timeout", "0.5")
    try:
        connected(s)
        d.cmd("mode bad-accept")
        d.cmd("drop")
        time.sleep(1)
        d.cmd("mode hang-handshake")
        time.sleep(1.5)
        d.cmd("mode normal")
        i = s.request("echo")
        m = s.wait_for(i, 5)
        t.check(m and "result" in m, "recovers after a bad Accept and a hanging handshake")
        log = s.log()
        t.check("does not match our key" in log, "bad Sec-WebSocket-Accept logged")
        t.check(s.proc.poll() is None, "still running")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def close_frame_and_protocol_error(t):
    d = Daemon("closeframe")
    s = Shim("closeframe", d.url(), "--log-level", "debug")
    try:
        connected(s)
        d.cmd("close 1001 going down")
        t.check(wait_conns(d, 0, 2) is not None and wait_conns(d, 1, 5) is not None, "reconnects after a close frame")
        d.cmd("sendraw c10161")                       # RSV1 set: protocol error
        time.sleep(0.3)
        t.check(wait_conns(d, 1, 5) is not None, "reconnects after a protocol error")
        t.check("close 1002" in d.log(), "shim failed the bad connection with 1002")
        d.cmd("sendraw 817f8000000000000000")         # 64-bit length with the top bit set
        time.sleep(0.3)
        i = s.request("echo")
        m = s.wait_for(i, 5)
        t.check(m and "result" in m, "works after both")
        t.check("1001" in s.log(), "daemon's close code logged")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def dns_failure_and_resets(t):
    s = Shim("dns", "ws://no-such-daemon.invalid:8079", "--queue-timeout", "1")
    try:
        i = s.request("echo")
        m = s.wait_for(i, 10)
        t.check(is_error(m) and "resolve" in m["error"]["message"], "DNS failure: queued request told why: %r" % (m,))
        t.check(s.proc.poll() is None, "still running after DNS failures")
        s.check_clean(t)
    finally:
        s.stop()
    d = Daemon("reset")
    s = Shim("reset", d.url())
    try:
        connected(s)
        slow = s.request("sleep", {"ms": 3000})
        time.sleep(0.1)
        d.cmd("drop rst")
        m = s.wait_for(slow, 3)
        t.check(is_error(m) and "reset" in m["error"]["message"].lower(), "connection reset: in-flight error names it: %r" % (m,))
        i = s.request("echo")
        t.check(s.wait_for(i, 5) is not None, "works again after a reset")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def frozen_daemon_keepalive(t):
    d = Daemon("frozen")
    s = Shim("frozen", d.url(), "--ping-interval", "0.3", "--ping-timeout", "0.5", "--handshake-timeout", "1")
    try:
        connected(s)
        # busy with a long call but answering pings: never cut off
        i = s.request("sleep", {"ms": 2000})
        m = s.wait_for(i, 5)
        t.check(m and m.get("result") == {"slept": 2000}, "a 2 s call survives 0.3 s keepalive pings")
        d.cmd("freeze")
        t0 = time.monotonic()
        i = s.request("echo")
        m = s.wait_for(i, 5)
        took = time.monotonic() - t0
        t.check(is_error(m) and "lost" in m["error"]["message"], "request to a frozen daemon answered with an error")
        t.check(took < 2.0 * SLOW, "frozen daemon detected in %.2f s" % took)
        MEASURED["frozen daemon detected (ping 0.3 s + timeout 0.5 s)"] = "%.0f ms" % (took * 1000)
        d.cmd("thaw")
        d.cmd("drop")
        i = s.request("echo")
        m = s.wait_for(i, 5)
        t.check(m and "result" in m, "recovers after thaw")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def in_flight_when_daemon_dies(t):
    d = Daemon("inflight", instance="A")
    s = Shim("inflight", d.url())
    try:
        connected(s)
        slow = s.request("sleep", {"ms": 5000})
        time.sleep(0.1)
        t0 = time.monotonic()
        s.request("die")                              # the daemon crashes with both in flight
        m = s.wait_for(slow, 3)
        took = time.monotonic() - t0
        t.check(is_error(m) and "may or may not have run" in m["error"]["message"],
                "in-flight request answered with the lost-connection error")
        t.check(took < 1.0 * SLOW, "within a second (%.3f s)" % took)
        MEASURED["in-flight request when the daemon crashes"] = "error after %.0f ms" % (took * 1000)
        d.start(instance="B")
        # safe methods in flight are re-sent instead: freeze, ask, kill, restart
        wait_conns(d, 1, 5)
        d.cmd("freeze")
        lst = s.request("tools/list")
        call = s.request("tools/call", {"name": "echo", "arguments": {}})
        time.sleep(0.2)
        d.kill()
        d.start(instance="C")
        m = s.wait_for(lst, 5)
        t.check(m and "result" in m and "tools" in m["result"], "tools/list in flight was re-sent and answered")
        m = s.wait_for(call, 5)
        t.check(is_error(m), "tools/call in flight is never re-sent silently: error")
        calls = [x for x in d.received() if isinstance(x, dict) and x.get("method") == "tools/call"]
        t.check(len(calls) == 0, "tools/call was not re-sent to the new daemon (%d)" % len(calls))
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def queued_during_outage_then_answered(t):
    d = Daemon("queued", instance="A")
    s = Shim("queued", d.url())
    try:
        connected(s)
        kill_noticed(d, s)
        ids = [s.request("echo", {"n": k}) for k in range(20)]
        s.notify("notifications/progress", {"n": 1})
        time.sleep(1.5)
        d.start(instance="B")
        for k, i in enumerate(ids):
            m = s.wait_for(i, 5)
            t.check(m and m["result"]["instance"] == "B" and m["result"]["params"] == {"n": k}, "queued request %d answered" % k)
        got = [x["params"]["n"] for x in d.received() if isinstance(x, dict) and x.get("method") == "echo" and "n" in x["params"]]
        t.check(got == list(range(20)), "queued messages sent in order")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def queued_request_times_out(t):
    port = free_port()
    s = Shim("qtimeout", "ws://127.0.0.1:%d" % port, "--queue-timeout", "1")
    try:
        t0 = time.monotonic()
        i = s.request("tools/call", {"name": "x"})
        m = s.wait_for(i, 4)
        took = time.monotonic() - t0
        t.check(is_error(m, -32000), "queued request answered with -32000")
        t.check(m and "unreachable" in m["error"]["message"] and "attempt" in m["error"]["message"], "message says unreachable and how often it tried")
        t.check(m and m["error"].get("data", {}).get("attempts", 0) >= 1, "error data carries the attempt count")
        t.check(0.9 < took < 2.0 * SLOW, "after the queue timeout (%.2f s)" % took)
        s.check_clean(t)
    finally:
        s.stop()


@scenario
def full_queue_back_pressure(t):
    d = Daemon("backpressure")
    s = Shim("backpressure", d.url(), "--queue-max-count", "8", "--queue-max-bytes", "64K", "--queue-timeout", "60")
    try:
        connected(s)
        d.kill()
        t.check(wait_log(s, " lost: "), "the shim saw the daemon go")
        ids = list(range(1000, 1300))
        pad = "p" * 4000
        done = threading.Event()

        def writer():
            for i in ids:
                s.sent_ids.append(i)
                if not s.send({"jsonrpc": "2.0", "id": i, "method": "echo", "params": {"i": i, "pad": pad}}):
                    break
            done.set()
        th = threading.Thread(target=writer, daemon=True)
        th.start()
        time.sleep(1.5)
        t.check(not done.is_set(), "stdin is not read while the queue is full (writer blocked)")
        d.start(instance="B")
        t.check(done.wait(20), "writer unblocked once the daemon is back")
        order = []
        for i in ids:
            m = s.wait_for(i, 10)
            t.check(m is not None and "result" in m and m["result"]["params"]["i"] == i, "request %d answered with its own result" % i)
            if m:
                order.append(s.all.index(m))
        t.check(len(order) == len(ids), "all %d requests answered (%d)" % (len(ids), len(order)))
        t.check(order == sorted(order), "answers in order")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


# ---------------------------------------------------------------- exits
def eof_exit_time(s):
    t0 = time.monotonic()
    s.close_stdin()
    code = s.wait_exit(3)
    return code, time.monotonic() - t0


@scenario
def stdin_eof_in_every_state(t):
    d = Daemon("eof")
    try:
        # connected, idle
        s = Shim("eof-idle", d.url())
        connected(s)
        code, took = eof_exit_time(s)
        t.check(code == 0, "connected+idle: exit 0")
        t.timing(took < 0.2 * SLOW + 0.05, "connected+idle: exit within 200 ms (%.0f ms)" % (took * 1000))
        MEASURED["exit after stdin EOF, connected and idle"] = "%.0f ms" % (took * 1000)
        s.check_clean(t)
        s.stop()
        # waiting to retry, with a queued message that is dropped
        s = Shim("eof-down", "ws://127.0.0.1:%d" % free_port())
        time.sleep(0.6)
        s.request("echo")
        code, took = eof_exit_time(s)
        t.check(code == 0, "waiting to retry: exit 0")
        t.timing(took < 0.2 * SLOW + 0.05, "waiting to retry: exit within 200 ms (%.0f ms)" % (took * 1000))
        t.check("dropped" in s.log(), "queued message dropped with a log line")
        s.stop()
        # handshaking with a daemon that never answers
        d.cmd("mode hang-handshake")
        s = Shim("eof-handshake", d.url())
        time.sleep(0.3)
        code, took = eof_exit_time(s)
        t.check(code == 0, "handshaking: exit 0")
        t.timing(took < 0.2 * SLOW + 0.05, "handshaking: exit within 200 ms (%.0f ms)" % (took * 1000))
        s.stop()
        d.cmd("mode normal")
        # a request in flight: its answer is written, then close 1000
        s = Shim("eof-inflight", d.url())
        connected(s)
        i = s.request("sleep", {"ms": 300})
        code, took = eof_exit_time(s)
        t.check(code == 0, "in flight: exit 0")
        t.timing(0.25 < took < 1.0 * SLOW, "in flight: waited for the answer, then exited (%.0f ms)" % (took * 1000))
        t.check(len(s.answers(i)) == 1, "the in-flight answer was written before exiting")
        time.sleep(0.1)
        t.check(re.search(r"conn \d+ close 1000", d.log()) is not None, "close 1000 sent to the daemon")
        s.check_clean(t)
        s.stop()
        # drain timeout
        s = Shim("eof-drain", d.url(), "--drain-timeout", "0.5")
        connected(s)
        i = s.request("sleep", {"ms": 5000})
        code, took = eof_exit_time(s)
        t.check(code == 0, "drain timeout: exit 0")
        t.timing(0.45 < took < 1.2 * SLOW, "drain timeout bounds the wait (%.0f ms)" % (took * 1000))
        s.check_clean(t, unanswered=[i])
        s.stop()
        # echo '{...}' | alwaysup URL prints its answer
        e = dict(os.environ)
        r = subprocess.run(WRAP + [SHIM, d.url()], input=b'{"jsonrpc":"2.0","id":9,"method":"echo","params":[1]}\n',
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10 * SLOW, env=e)
        out = r.stdout.decode().strip().splitlines()
        t.check(r.returncode == 0 and len(out) == 1 and json.loads(out[0])["id"] == 9, "echo | alwaysup prints the answer: %r" % out)
        # the same without a trailing newline
        r = subprocess.run(WRAP + [SHIM, d.url()], input=b'{"jsonrpc":"2.0","id":10,"method":"ping"}',
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10 * SLOW)
        t.check(r.returncode == 0 and b'"id":10' in r.stdout, "last line without newline still sent")
    finally:
        d.stop()


@scenario
def sigterm_and_sigint(t):
    d = Daemon("sigterm")
    try:
        s = Shim("sigterm-up", d.url())
        connected(s)
        i = s.request("sleep", {"ms": 5000})
        time.sleep(0.1)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        code = s.wait_exit(3)
        took = time.monotonic() - t0
        t.check(code == 0, "SIGTERM: exit 0")
        t.timing(took < 1.2 * SLOW, "SIGTERM: exit within the 1 s close timeout (%.0f ms)" % (took * 1000))
        s.reader.join(2)
        m = s.answers(i)
        t.check(len(m) == 1 and is_error(m[0]) and "shutting down" in m[0]["error"]["message"], "pending request told it was not answered")
        time.sleep(0.1)
        t.check(re.search(r"conn \d+ close 1000", d.log()) is not None, "close 1000 sent on SIGTERM")
        s.check_clean(t)
        s.stop()
        s = Shim("sigint-down", "ws://127.0.0.1:%d" % free_port())
        time.sleep(0.5)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGINT)
        code = s.wait_exit(3)
        took = time.monotonic() - t0
        t.check(code == 0, "SIGINT while disconnected: exit 0")
        t.timing(took < 0.3 * SLOW, "SIGINT while disconnected: prompt exit (%.0f ms)" % (took * 1000))
        s.stop()
    finally:
        d.stop()


@scenario
def bad_configuration(t):
    _, version, _ = run_once(WRAP + [SHIM, "--version"], timeout=10 * SLOW)
    # a build without TLS refuses wss:// at start; one with TLS (the Windows build has SChannel) a CA file it cannot read
    wss = ["--ca-file", "no-such-dir/ca.pem", "wss://example.com"] if "tls (" in version else ["wss://example.com"]
    cases = [
        (["http://127.0.0.1:1"], {}, "bad URL"),
        (["ws://"], {}, "bad URL"),
        (wss, {}, "TLS"),
        (["--no-such-flag", "ws://127.0.0.1:1"], {}, "unknown option"),
        (["--connect-timeout", "abc", "ws://127.0.0.1:1"], {}, "not a non-negative number"),
        (["--log-level", "loud", "ws://127.0.0.1:1"], {}, "not one of"),
        (["-H", "X-A: a\r\nInjected: 1", "ws://127.0.0.1:1"], {}, "header refused"),
        (["-H", "Upgrade: h2c", "ws://127.0.0.1:1"], {}, "header refused"),
        (["--header-env", "X-Key=ALWAYSUP_TEST_UNSET", "ws://127.0.0.1:1"], {}, "is not set"),
        (["--header-env", "X-Key=EVIL", "ws://127.0.0.1:1"], {"EVIL": "a\nb: c"}, "refused"),
        (["--max-message", "0", "ws://127.0.0.1:1"], {}, "byte count"),
        (["ws://127.0.0.1:1", "http://127.0.0.1:2"], {}, "bad URL"),          # every URL is checked at start
        (["ws://127.0.0.1:%d" % (k + 1) for k in range(17)], {}, "more than 16 URLs"),
        ([], {"ALWAYSUP_URL": "ws://127.0.0.1:1, ws:/bad"}, "bad URL"),
        ([], {"ALWAYSUP_URL": "ftp://x"}, "bad URL"),
        ([], {"ALWAYSUP_PING_TIMEOUT": "-3"}, "not a non-negative number"),
    ]
    if not re.search(r"transports: tcp, unix\b", version):   # a Windows without AF_UNIX (Wine 8): refused at start, saying why
        cases.append((["ws+unix:/tmp/alwaysup-none.sock"], {}, "this Windows has no AF_UNIX sockets (Windows 10 1803 or newer has them)"))
    for args, env, want in cases:
        e = {k: v for k, v in os.environ.items() if not k.startswith("ALWAYSUP_") or k in ("ALWAYSUP_BIN",)}
        e.update(env)
        rc, out, err = run_once(WRAP + [SHIM] + args, env=e, timeout=10 * SLOW)
        err = [x for x in err.strip().splitlines() if not x.startswith("==")]      # not valgrind's own lines
        t.check(rc == 2, "%r: exit 2 (got %r)" % (args or env, rc))
        t.check(len(err) == 1 and err[0].startswith("alwaysup: ") and want in err[0], "%r: one-line reason with %r: %r" % (args or env, want, err))
        t.check(out == "", "%r: nothing on stdout" % (args or env,))
    rc, out, _ = run_once(WRAP + [SHIM, "--help"], timeout=10 * SLOW)
    t.check(rc == 0 and "--queue-timeout" in out and "--header-env" in out, "--help documents the flags")
    rc, out, _ = run_once(WRAP + [SHIM, "--version"], timeout=10 * SLOW)
    t.check(rc == 0 and out.startswith("alwaysup "), "--version")


# ---------------------------------------------------------------- backoff
@scenario
def default_backoff_schedule(t):
    port = free_port()
    s = Shim("backoff", "ws://127.0.0.1:%d" % port, "--log-level", "debug")
    try:
        time.sleep(7.0 * SLOW)
        times = log_times(s.log(), r"connecting to .* \(attempt \d+\)")
        gaps = [b - a for a, b in zip(times, times[1:])]
        want = [0.25, 0.375, 0.5625, 0.84375, 1.265625, 1.8984375]
        t.check(len(gaps) >= len(want), "at least %d retries in 7 s (%d)" % (len(want), len(gaps)))
        for k, w in enumerate(want[:len(gaps)]):
            t.check(abs(gaps[k] - w) < 0.06 * SLOW, "retry %d after %.3f s (seed schedule %.3f s)" % (k + 1, gaps[k], w))
        MEASURED["backoff gaps (s)"] = " ".join("%.3f" % g for g in gaps[:7])
        s.close_stdin()
        s.wait_exit(2)
    finally:
        s.stop()


@scenario
def client_message_triggers_early_attempt(t):
    port = free_port()
    s = Shim("early", "ws://127.0.0.1:%d" % port, "--log-level", "debug", "--backoff-initial", "2", "--backoff-max", "4")
    d = None
    try:
        time.sleep(2.5)                                 # now waiting ~3 s for the next attempt
        d = Daemon("early", port=port)
        t0 = time.monotonic()
        i = s.request("echo")
        m = s.wait_for(i, 5)
        took = time.monotonic() - t0
        t.check(m and "result" in m, "answered")
        t.check(took < 0.3 * SLOW, "a client message does not wait out the backoff (%.0f ms)" % (took * 1000))
        MEASURED["new request during a 3 s backoff wait"] = "answered in %.0f ms" % (took * 1000)
        s.check_clean(t)
    finally:
        s.stop()
        if d:
            d.stop()


# ---------------------------------------------------------------- client input
@scenario
def bad_client_input(t):
    d = Daemon("badinput")
    s = Shim("badinput", d.url())

    def error_with(code, text):
        return s.wait_until(lambda m: is_error(m, code) and text in m["error"]["message"], 3)
    try:
        s.send_raw(b"this is not json\n")
        m = error_with(-32700, "Parse error")
        t.check(m is not None and m["id"] is None, "non-JSON line: parse error with id null")
        s.send_raw(b'{"jsonrpc":"2.0","id":41,"method":"x","params":{"s":"\xff"}}\n')
        s.sent_ids.append(41)
        m = s.wait_for(41)
        t.check(is_error(m, -32700) and "UTF-8" in m["error"]["message"], "invalid UTF-8: parse error for id 41")
        s.send_raw(b'{"jsonrpc":"2.0","id":null,"method":"x"}\n')
        t.check(error_with(-32600, "must not be null") is not None, "null id refused")
        s.send_raw(b'{"foo":1}\n')
        t.check(error_with(-32600, "neither a request") is not None, "not JSON-RPC: invalid request")
        slow = s.request("sleep", {"ms": 500})
        s.send({"jsonrpc": "2.0", "id": slow, "method": "ping"})
        m = error_with(-32600, "still pending")
        t.check(m is not None and m.get("id") == slow, "duplicate pending id refused")
        m = s.wait_until(lambda x: isinstance(x, dict) and x.get("id") == slow and "result" in x, 3)
        t.check(m and m.get("result") == {"slept": 500}, "the original request still answered")
        with s.lock:
            s.all = [x for x in s.all if not (isinstance(x, dict) and "error" in x and
                                              (x.get("id") in (slow, None)))]
        s.send_raw(b"\n\r\n   \n")
        i = s.request("echo")
        t.check(s.wait_for(i) is not None, "works after bad input")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def headers_subprotocol_and_secrets(t):
    d = Daemon("headers", args=["--subprotocol", "mcp"])
    s = Shim("headers", d.url("/mcp?token=querysecret"), "-H", "Authorization: Bearer headersecret",
             "--header-env", "X-Api-Key=MY_KEY", "--log-level", "debug", env={"MY_KEY": "envsecret"})
    try:
        connected(s)
        log = d.log()
        t.check("header Authorization: Bearer headersecret" in log, "header sent")
        t.check("header X-Api-Key: envsecret" in log, "header from the environment sent")
        t.check("Sec-WebSocket-Protocol: mcp" in log, "mcp offered as subprotocol by default")
        t.check("request GET /mcp?token=querysecret HTTP/1.1" in log, "path and query sent")
        d.kill()
        time.sleep(0.5)
        d.start()
        connected(s)
        s.close_stdin()
        s.wait_exit(2)
        slog = "\n".join(l for l in s.log().splitlines() if not re.match(r"==\d+==", l))   # not valgrind's own lines
        for secret in ("headersecret", "envsecret", "querysecret"):
            t.check(secret not in slog, "%s never appears in the shim's log" % secret)
    finally:
        s.stop()
        d.stop()
    t.check("not a loopback address" not in slog, "no plain-ws warning for a loopback daemon")
    s = Shim("header-remote", "ws://daemon.example.invalid:8079", "-H", "Authorization: Bearer x", "--queue-timeout", "0.5")
    try:
        t.check(wait_log(s, "not a loopback address"), "warned: a header over plain ws:// to a non-loopback host")
    finally:
        s.stop()
    d = Daemon("noproto")
    s = Shim("noproto", d.url(), "--subprotocol", "")
    try:
        connected(s)
        t.check("Sec-WebSocket-Protocol" not in d.log(), "--subprotocol '' offers none")
    finally:
        s.stop()
        d.stop()


@scenario
def url_from_environment(t):
    d = Daemon("envurl")
    try:
        s = Shim("envurl1", None, env={"ALWAYSUP_URL": d.url()})
        t.check(connected(s) is not None, "ALWAYSUP_URL used")
        s.stop()
        s = Shim("envurl2", None, env={"EXAI_WS_HOST": "127.0.0.1", "EXAI_WS_PORT": str(d.port)})
        t.check(connected(s) is not None, "EXAI_WS_HOST/EXAI_WS_PORT used")
        s.stop()
        s = Shim("envurl3", d.url(), env={"ALWAYSUP_QUEUE_TIMEOUT": "0.5"})
        kill_noticed(d, s)
        i = s.request("echo")
        m = s.wait_for(i, 3)
        t.check(is_error(m), "ALWAYSUP_QUEUE_TIMEOUT honoured")
        s.stop()
    finally:
        d.stop()


# ---------------------------------------------------------------- MCP session
def mcp_init(s, extra=None):
    """The client's side of an MCP handshake; returns the InitializeResult."""
    i = s.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {"sampling": {}},
                                 "clientInfo": {"name": "scripted", "version": "1"}})
    m = s.wait_for(i, 15)
    s.notify("notifications/initialized")
    return m


def methods(d, name):
    return [x for x in d.received() if isinstance(x, dict) and x.get("method") == name]


@scenario
def mcp_session_replayed_after_restart(t):
    d = Daemon("replay", args=["--mcp-strict"], instance="A")
    s = Shim("replay", d.url())
    try:
        m = mcp_init(s)
        t.check(m and m["result"]["serverInfo"]["version"] == "A", "initialize answered by the daemon")
        s.wait_for(s.request("logging/setLevel", {"level": "debug"}))
        s.wait_for(s.request("resources/subscribe", {"uri": "file:///a"}))
        s.wait_for(s.request("resources/subscribe", {"uri": "file:///b"}))
        s.wait_for(s.request("resources/unsubscribe", {"uri": "file:///a"}))
        t.check("result" in (s.wait_for(s.request("tools/list")) or {}), "tools/list before the restart")
        d.kill()
        time.sleep(0.3)
        d.start(instance="B")
        t0 = time.monotonic()
        i = s.request("tools/call", {"name": "echo", "arguments": {}})
        m = s.wait_for(i, 5)
        took = time.monotonic() - t0
        t.check(m and "result" in m, "a strict daemon accepts calls after the restart: %r" % (m,))
        MEASURED["strict daemon restarted: first call after restart (session replayed)"] = "%.0f ms" % (took * 1000)
        inits = methods(d, "initialize")
        t.check(len(inits) == 2 and is_sdk_id(inits[1]["id"]),
                "initialize replayed under an integer id of the shim's, as SDK clients send: %r" % [x.get("id") for x in inits])
        t.check(inits[1].get("params") == inits[0].get("params"), "the replay carries the client's own params")
        log = d.log()
        second = log[log.index("start instance B"):]
        order = [l.split(" recv ", 1)[1] for l in second.splitlines() if " recv " in l]
        names = [json.loads(x).get("method") for x in order]
        t.check(names[:4] == ["initialize", "notifications/initialized", "logging/setLevel", "resources/subscribe"],
                "replay order: initialize, initialized, setLevel, subscribe, then the queue: %r" % names[:6])
        subs = [json.loads(x) for x in order if '"resources/subscribe"' in x]
        t.check([x["params"]["uri"] for x in subs] == ["file:///b"], "only active subscriptions replayed")
        t.check(names.index("tools/call") > names.index("resources/subscribe"), "queued call sent only after the replay")
        lc = sorted(x["method"] for x in s.all if isinstance(x, dict) and str(x.get("method", "")).endswith("list_changed"))
        t.check(lc == ["notifications/prompts/list_changed", "notifications/resources/list_changed",
                       "notifications/tools/list_changed"], "list_changed for each advertised list: %r" % lc)
        t.check("MCP session replayed" in s.log(), "replay logged")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def mcp_replay_refused_means_retry(t):
    d = Daemon("replayrefused", args=["--mcp-strict"])
    s = Shim("replayrefused", d.url(), "--queue-timeout", "3", "--log-level", "debug")
    try:
        mcp_init(s)
        d.kill()
        d.start()
        d.cmd("initerror on")
        i = s.request("tools/list")
        time.sleep(1.5)
        t.check(not s.answers(i), "nothing goes through while the daemon refuses the replayed initialize")
        t.check("refused the replayed initialize" in s.log(), "the refusal is logged")
        d.cmd("initerror off")
        m = s.wait_for(i, 5)
        t.check(m and "result" in m, "once the daemon accepts initialize, the queued request is answered")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def mcp_list_changed_policy(t):
    for policy, want in (("never", 0), ("always", 3)):
        d = Daemon("lc-" + policy, args=["--mcp-strict"])
        s = Shim("lc-" + policy, d.url(), "--list-changed", policy)
        try:
            mcp_init(s)
            d.kill()
            d.start()
            s.wait_for(s.request("tools/list"), 5)
            time.sleep(0.1)
            n = len([x for x in s.all if isinstance(x, dict) and str(x.get("method", "")).endswith("list_changed")])
            t.check(n == want, "--list-changed %s: %d notifications (want %d)" % (policy, n, want))
            s.check_clean(t)
        finally:
            s.stop()
            d.stop()


@scenario
def mcp_ping_answered_while_down(t):
    d = Daemon("localping", args=["--mcp-strict"])
    s = Shim("localping", d.url())
    try:
        mcp_init(s)
        kill_noticed(d, s)
        time.sleep(0.2)
        t0 = time.monotonic()
        i = s.request("ping")
        m = s.wait_for(i, 2)
        t.check(m and m.get("result") == {} and time.monotonic() - t0 < 0.2 * SLOW, "ping answered locally while down")
        d.start()
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def mcp_daemon_requests_across_a_dead_connection(t):
    d = Daemon("dreq", args=["--mcp-strict"])
    s = Shim("dreq", d.url())
    try:
        mcp_init(s)
        d.cmd('send {"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{"messages":[]}}')
        m = s.wait_until(lambda x: isinstance(x, dict) and x.get("method") == "sampling/createMessage", 3)
        t.check(m is not None, "daemon request reaches the client")
        slow = s.request("sleep", {"ms": 5000})
        time.sleep(0.1)
        d.kill()
        c = s.wait_until(lambda x: isinstance(x, dict) and x.get("method") == "notifications/cancelled", 3)
        t.check(c is not None and c["params"]["requestId"] == "s1", "client told the daemon's request is cancelled: %r" % (c,))
        t.check(is_error(s.wait_for(slow, 3)), "the client's own in-flight request failed")
        d.start()
        s.wait_for(s.request("tools/list"), 5)
        s.send({"jsonrpc": "2.0", "id": "s1", "result": {"content": {"type": "text", "text": "late"}}})
        s.notify("notifications/cancelled", {"requestId": slow, "reason": "user gave up"})
        s.wait_for(s.request("ping"), 3)
        time.sleep(0.2)
        new_life = d.log()[d.log().index("start instance", 10):]
        t.check('"s1"' not in new_life, "the late answer never reached the new daemon")
        t.check("notifications/cancelled" not in new_life, "a cancel for an answered request is not forwarded")
        # an in-flight request the client cancels: the cancel goes through, a late answer does not
        late = s.request("sleep", {"ms": 400})
        time.sleep(0.1)
        s.notify("notifications/cancelled", {"requestId": late, "reason": "changed my mind"})
        time.sleep(0.6)
        t.check('"requestId": %d' % late in d.log() or '"requestId":%d' % late in d.log(), "cancel of an in-flight request forwarded")
        t.check(not s.answers(late), "the daemon's late answer to a cancelled request is dropped")
        t.check("no request with that id is waiting" in s.log(), "and logged")
        # a queued request the client cancels is dropped with its cancel
        kill_noticed(d, s)
        q = s.request("tools/call", {"name": "x"})
        s.notify("notifications/cancelled", {"requestId": q})
        d.start(instance="C")
        s.wait_for(s.request("tools/list"), 5)
        time.sleep(0.2)
        third = d.log()[d.log().index("start instance C"):]
        t.check("tools/call" not in third and "notifications/cancelled" not in third, "cancelled queued request never sent")
        s.check_clean(t, unanswered=[q, late])
    finally:
        s.stop()
        d.stop()


@scenario
def mcp_cold_start(t):
    port = free_port()
    # daemon comes within the grace: initialize answered by the daemon itself
    s = Shim("cold1", "ws://127.0.0.1:%d" % port, "--queue-timeout", "1")
    d = None
    try:
        i = s.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}})
        time.sleep(2.0)                          # longer than the queue timeout: initialize is exempt
        t.check(not s.answers(i), "initialize waits for the daemon, not failed by the queue timeout")
        d = Daemon("cold1", port=port, args=["--mcp-strict"], instance="real")
        m = s.wait_for(i, 5)
        t.check(m and m["result"]["serverInfo"]["name"] == "testd", "answered by the daemon once it is up")
        s.check_clean(t)
    finally:
        s.stop()
        if d:
            d.stop()
    # daemon later than the grace: answered here, minimal result, then upstream init + list_changed
    port = free_port()
    s = Shim("cold2", "ws://127.0.0.1:%d" % port, "--init-grace", "1")
    d = None
    try:
        t0 = time.monotonic()
        i = s.request("initialize", {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}})
        m = s.wait_for(i, 5)
        took = time.monotonic() - t0
        t.check(m and 0.9 < took < 1.5 * SLOW, "answered locally after the grace (%.2f s)" % took)
        t.check(m and m["result"]["serverInfo"]["name"] == "alwaysup" and m["result"]["protocolVersion"] == "2025-03-26"
                and m["result"]["capabilities"]["tools"]["listChanged"] is True, "minimal result echoes the version, advertises listChanged")
        s.notify("notifications/initialized")
        call = s.request("tools/list")
        time.sleep(0.5)
        d = Daemon("cold2", port=port, args=["--mcp-strict"], instance="late")
        m = s.wait_for(call, 5)
        t.check(m and "result" in m, "queued call answered after the daemon initialized upstream")
        inits = methods(d, "initialize")
        t.check(len(inits) == 1 and is_sdk_id(inits[0]["id"]), "the daemon got the client's initialize under an integer shim id")
        t.check(len(methods(d, "notifications/initialized")) == 1, "and notifications/initialized once")
        lc = [x for x in s.all if isinstance(x, dict) and str(x.get("method", "")).endswith("list_changed")]
        t.check(len(lc) == 3, "list_changed sent once the daemon is up (%d)" % len(lc))
        s.check_clean(t)
    finally:
        s.stop()
        if d:
            d.stop()
    # again with a remembered InitializeResult in the state directory
    state = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "test-logs", "integration", "state", "cold3")
    d = Daemon("cold3a", args=["--mcp-strict"], instance="remembered")
    port = d.port
    s = Shim("cold3", d.url())
    try:
        mcp_init(s)
        s.close_stdin()
        s.wait_exit(3)
    finally:
        s.stop()
        d.stop()
    s = Shim("cold3", "ws://127.0.0.1:%d" % port, "--init-grace", "0.5")
    try:
        i = s.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}})
        m = s.wait_for(i, 3)
        t.check(m and m["result"]["serverInfo"] == {"name": "testd", "version": "remembered"},
                "cold start answered with the InitializeResult remembered from this URL: %r" % (m,))
        t.check(os.path.isdir(os.path.join(state, "alwaysup")), "state kept under XDG_STATE_HOME/alwaysup")
        s.check_clean(t)
    finally:
        s.stop()


@scenario
def no_mcp_mode(t):
    d = Daemon("nomcp", args=["--mcp-strict"])
    s = Shim("nomcp", d.url(), "--no-mcp")
    try:
        mcp_init(s)
        kill_noticed(d, s)
        i = s.request("ping")
        time.sleep(0.3)
        t.check(not s.answers(i), "--no-mcp: ping is not answered locally")
        d.start()
        m = s.wait_for(i, 5)
        t.check(m and "result" in m, "the queued ping goes to the daemon")
        m = s.wait_for(s.request("tools/list"), 5)
        t.check(is_error(m, -32002), "--no-mcp: no replay, so a strict daemon says not initialized")
        t.check(len(methods(d, "initialize")) == 1, "initialize sent once only")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


# ---------------------------------------------------------------- hostile input
@scenario
def hostile_stdin(t):
    d = Daemon("hostile-stdin")
    s = Shim("hostile-stdin", d.url(), "--max-message", "1M")
    try:
        connected(s)

        def error_for(pred, timeout=5):
            return s.wait_until(lambda m: isinstance(m, dict) and "error" in m and pred(m), timeout)
        s.send_raw(b'{"jsonrpc":"2.0","id":"nul","method":"echo","params":"a\x00b"}\n')
        s.sent_ids.append("nul")
        m = s.wait_for("nul")
        t.check(is_error(m, -32700), "NUL byte inside a string: parse error for its id")
        s.send_raw(b"\x00\x01\x02\xff\xfe binary junk \x80\x81\n")
        t.check(error_for(lambda m: m["id"] is None and m["error"]["code"] == -32700 and "byte 0" in m["error"]["message"]) is not None,
                "binary junk: parse error with id null")
        # over the cap (1 MiB): answered with the id found before the cut, the next line survives
        big = b'{"jsonrpc":"2.0","id":"huge","method":"echo","params":{"x":"' + b"y" * (2 << 20) + b'"}}\n'
        s.sent_ids.append("huge")
        s.send_raw(big)
        i = s.request("echo", {"after": "huge"})
        m = s.wait_for("huge", 10)
        t.check(is_error(m, -32600) and "limit" in m["error"]["message"], "line over the cap: -32600 for its own id")
        m = s.wait_for(i, 10)
        t.check(m and m["result"]["params"] == {"after": "huge"}, "the line after the over-cap one is not lost")
        # invalid UTF-8, a shim-owned id
        s.send_raw(b'{"jsonrpc":"2.0","id":"u8","method":"echo","params":"\xc3\x28"}\n')
        s.sent_ids.append("u8")
        t.check(is_error(s.wait_for("u8"), -32700), "invalid UTF-8: parse error for its id")
        # an id that looks like the shim's own but is not is an ordinary id
        s.sent_ids.append("alwaysup-000000000000-1")
        s.send({"jsonrpc": "2.0", "id": "alwaysup-000000000000-1", "method": "ping"})
        m = s.wait_for("alwaysup-000000000000-1")
        t.check(m and m.get("result") == {}, "a look-alike alwaysup- id is forwarded like any other")
        i = s.request("echo")
        t.check(s.wait_for(i) is not None, "still serving after all of it")
        with s.lock:                                      # the id-less errors were expected
            nulls = [x for x in s.all if isinstance(x, dict) and x.get("id", 0) is None]
            s.all = [x for x in s.all if x not in nulls]
        t.check(len(nulls) == 1, "exactly one id-less error, for the binary junk (%d)" % len(nulls))
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def client_ids_never_refused_nor_confused(t):
    """No client id is refused for its value (null aside), not even the shim's
    old string prefix, and a client request with the id of the shim's own
    pending replay waits for it instead of being confused with it."""
    d = Daemon("ids", args=["--mcp-strict"])
    s = Shim("ids", d.url(), "--log-level", "debug")
    try:
        i = s.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                     "clientInfo": {"name": "c", "version": "1"}}, id="init")
        t.check((s.wait_for(i, 5) or {}).get("result"), "initialize with a string id answered")
        s.notify("notifications/initialized")
        for odd in ("alwaysup-0123456789ab-1", -7, 2 ** 53 - 1, "", 0):
            m = s.wait_for(s.request("echo", {"odd": True}, id=odd), 5)
            t.check(m and "result" in m, "a request with id %r is answered, not refused: %r" % (odd, m))
        d.cmd("initdelay 800")
        drop_noticed(d, s)
        time.sleep(0.3)                          # the replayed initialize (id 1) is now pending at the daemon
        clash = s.request("tools/list", id=1)
        m = s.wait_for(clash, 5)
        t.check(m and "tools" in (m.get("result") or {}), "the request with the replay's id got its own answer: %r" % (m,))
        inits = methods(d, "initialize")
        t.check(len(inits) == 2 and inits[1]["id"] == 1, "the replay used id 1: %r" % [x.get("id") for x in inits])
        last = d.log().rsplit(" open\n", 1)[-1]
        names = [json.loads(l.split(" recv ", 1)[1]).get("method") for l in last.splitlines() if " recv " in l]
        t.check(names[:3] == ["initialize", "notifications/initialized", "tools/list"],
                "the client's id 1 reached the daemon only after the shim's id 1 was answered: %r" % names)
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def mcp_slow_initialize_is_not_dead(t):
    """A daemon that answers the replayed initialize after 4 s, far past the
    handshake timeout, while keepalive pings go every 0.5 s: one connection,
    the queued call answered once it has."""
    d = Daemon("slowinit", args=["--mcp-strict"])
    s = Shim("slowinit", d.url(), "--handshake-timeout", "1", "--ping-interval", "0.5", "--ping-timeout", "2",
             "--log-level", "debug")
    try:
        mcp_init(s)
        d.cmd("initdelay 4000")
        drop_noticed(d, s)
        t0 = time.monotonic()
        i = s.request("tools/call", {"name": "echo", "arguments": {}})
        m = s.wait_for(i, 10)
        took = time.monotonic() - t0
        t.check(m and "result" in m, "the call made meanwhile is answered: %r" % (m,))
        t.timing(3.5 < took < 6, "answered as soon as the slow initialize was (%.1f s)" % took)
        MEASURED["daemon answering initialize after 4 s: queued call answered after"] = "%.2f s" % took
        t.check(len(methods(d, "initialize")) == 2, "one replay, not torn down and retried")
        t.check(d.log().count(" ping ") >= 3, "pings went on while the session was set up")
        t.check("no answer to the replayed initialize" not in s.log(), "not treated as dead")
        # with an overall bound shorter than the daemon's delay, the attempt fails and is retried
        s.stop()
        d.cmd("initdelay 3000")
        s = Shim("slowinit2", d.url(), "--setup-timeout", "1", "--queue-timeout", "20")
        m = s.wait_for(s.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                                "clientInfo": {"name": "c", "version": "1"}}), 5)
        t.check(m and "result" in m, "a cold start waits for the slow initialize (the client's own request)")
        s.notify("notifications/initialized")
        d.cmd("drop")
        t.check(wait_log(s, r"no answer to the replayed initialize within 1", 5), "--setup-timeout bounds the replay")
        d.cmd("initdelay 0")
        m = s.wait_for(s.request("tools/list"), 10)
        t.check(m and "result" in m, "and the next attempt, quick again, carries the session")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def mcp_initialize_survives_crash_loop(t):
    """The daemon dies on receiving initialize three times in a row: the
    client's initialize is never failed for it, at a cold start or later."""
    d = Daemon("crashloop", args=["--mcp-strict"])
    d.cmd("initdrop 3")
    s = Shim("crashloop", d.url(), "--init-grace", "30", "--log-level", "debug")
    try:
        t0 = time.monotonic()
        m = mcp_init(s)
        took = time.monotonic() - t0
        t.check(m and m.get("result", {}).get("serverInfo", {}).get("name") == "testd",
                "cold start: the client's initialize is answered by the daemon after three crashes: %r" % (m,))
        MEASURED["cold start, daemon crashing 3 times on initialize: initialize answered after"] = "%.2f s" % took
        t.check(len(methods(d, "initialize")) == 4, "sent to each new connection until one answered")
        d.cmd("initdrop 3")
        drop_noticed(d, s)
        t0 = time.monotonic()
        m = s.wait_for(s.request("tools/call", {"name": "echo", "arguments": {}}), 15)
        t.check(m and "result" in m, "live session: the call works once the replay survives: %r" % (m,))
        MEASURED["live session, replayed initialize crashing the daemon 3 times: call answered after"] = \
            "%.2f s" % (time.monotonic() - t0)
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def mcp_refused_session_is_quoted(t):
    """A daemon that refuses the replayed initialize is not "unreachable": a
    queued request's error quotes the refusal; "already initialized" means
    it still holds the session, so the shim carries on without the replay."""
    d = Daemon("refusedq", args=["--mcp-strict"])
    s = Shim("refusedq", d.url(), "--queue-timeout", "1.5")
    try:
        mcp_init(s)
        d.cmd("initerror on")
        d.cmd("drop")
        m = s.wait_for(s.request("tools/list"), 5)
        err = (m or {}).get("error") or {}
        t.check("refused the session" in err.get("message", "") and "initialize refused by the test daemon" in err.get("message", ""),
                "the queued request's error quotes the daemon's refusal: %r" % (err,))
        t.check((err.get("data") or {}).get("reason") == "daemon_refused", "data.reason is daemon_refused")
        t.check("unreachable" not in err.get("message", ""), "not called unreachable")
        d.cmd("initerror already")
        m = s.wait_for(s.request("tools/list"), 5)
        t.check(m and "result" in m, "an \"already initialized\" answer: carried on without the replay: %r" % (m,))
        t.check("still holds the session" in s.log(), "and said so in the log")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def hostile_stdin_100mib_line(t):
    d = Daemon("hostile-100m")
    s = Shim("hostile-100m", d.url())
    try:
        connected(s)
        junk = b'{"jsonrpc":"2.0","id":"junk","method":"echo","params":"' + b"\xff" * (100 << 20) + b'"}\n'
        s.sent_ids.append("junk")
        t0 = time.monotonic()
        s.send_raw(junk)
        i = s.request("echo", {"after": "100MiB"})
        m = s.wait_for("junk", 30)
        t.check(is_error(m, -32700), "a 100 MiB line of invalid UTF-8: parse error for its id")
        m = s.wait_for(i, 30)
        t.check(m and m["result"]["params"] == {"after": "100MiB"}, "the next request still answered")
        MEASURED["100 MiB bad line rejected"] = "%.2f s" % (time.monotonic() - t0)
        with open("/proc/%d/status" % s.proc.pid) as f:
            rss = [l for l in f if l.startswith("VmHWM")]
        s.check_clean(t)
        if rss:
            MEASURED["shim peak RSS after the 100 MiB line"] = rss[0].split(":")[1].strip()
    finally:
        s.stop()
        d.stop()


@scenario
def hostile_daemon_frames(t):
    d = Daemon("hostile-frames")
    s = Shim("hostile-frames", d.url(), "--log-level", "debug", "--ping-interval", "1", "--ping-timeout", "2",
             "--backoff-max", "0.3")
    cases = [
        ("masked frame", "818100000000ab", 1002), ("reserved opcode", "8300", 1002), ("reserved control opcode", "8b00", 1002),
        ("fragmented ping", "090161", 1002), ("ping over 125 bytes", "897e007e" + "61" * 126, 1002),
        ("continuation with nothing to continue", "800161", 1002), ("RSV bits", "c10161", 1002),
        ("bad UTF-8 text", "8103eda080", 1007), ("1-byte close", "880161", 1002), ("close code 1005", "880203ed", 1002),
        ("close code 5000", "88021388", 1002), ("2 GiB length", "827f0000000080000000", 1009),
        ("top bit of the 64-bit length", "817f8000000000000000", 1002), ("non-minimal length", "817e0005" + "61" * 5, 1002),
    ]
    try:
        connected(s)
        for what, hexframe, code in cases:
            before = d.log().count(" close %d" % code)
            d.cmd("sendraw " + hexframe)
            ok = False
            deadline = time.monotonic() + 3 * SLOW
            while time.monotonic() < deadline:
                if d.log().count(" close %d" % code) > before:
                    ok = True
                    break
                time.sleep(0.01)
            t.check(ok, "%s: the shim fails the connection with %d" % (what, code))
            t.check(wait_conns(d, 1, 5) is not None, "%s: and reconnects" % what)
            i = s.request("echo", {"after": what})
            m = s.wait_for(i, 5)
            t.check(m and "result" in m, "%s: traffic flows again" % what)
        # text that is not JSON, JSON that is not JSON-RPC: logged, never on stdout
        d.cmd("send this is not json")
        d.cmd('send {"op":"status","ok":true}')
        d.cmd("sendbin \xff\xfe")
        i = s.request("echo")
        t.check(s.wait_for(i) is not None, "non-JSON text and binary from the daemon are dropped, traffic continues")
        t.check("not JSON-RPC" in s.log() and "not JSON" in s.log(), "both drops are logged")
        # a flood of pings: every one answered, nothing else disturbed
        for k in range(2000):
            d.proc.stdin.write("ping flood-%d\n" % k)
        d.proc.stdin.flush()
        for k in range(2000):
            d.proc.stdout.readline()
        i = s.request("echo", {"after": "flood"})
        t.check(s.wait_for(i, 5) is not None, "answered during a ping flood")
        time.sleep(0.3)
        t.check(d.log().count("pong flood-") == 2000, "all 2000 pings answered (%d)" % d.log().count("pong flood-"))
        # a slow trickle: one byte every 0.3 s of a 35-byte notification; keepalive must not cut it
        note = b'{"jsonrpc":"2.0","method":"slow/x"}'
        frame = bytes([0x81, len(note)]) + note
        for byte in frame:
            d.cmd("sendraw %02x" % byte)
            time.sleep(0.3)
        m = s.wait_until(lambda x: isinstance(x, dict) and x.get("method") == "slow/x", 3)
        t.check(m is not None, "a frame trickled over %.0f s arrives whole" % (len(frame) * 0.3))
        t.check(d.log().count(" open") == len(cases) + 1, "no reconnect during the trickle")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def hostile_handshakes(t):
    d = Daemon("hostile-hs")
    s = Shim("hostile-hs", d.url(), "--log-level", "debug")
    try:
        connected(s)
        for mode, want in (("endless-head", "over the limit"), ("endless-line", "over the limit")):
            d.cmd("mode " + mode)
            d.cmd("drop")
            t.check(wait_log(s, want, 5), "%s: refused once the head passes 16 KiB" % mode)
        d.cmd("mode normal")
        i = s.request("echo")
        t.check(s.wait_for(i, 5) is not None, "works again afterwards")
        with open("/proc/%d/status" % s.proc.pid) as f:
            rss = int([l for l in f if l.startswith("VmRSS")][0].split()[1])
        if not WRAP:                                      # valgrind's own footprint would dominate
            t.check(rss < 20000, "memory stays small after endless heads (%d KiB)" % rss)
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def log_file_rotates_and_json_lines(t):
    """--log-max-size moves a full --log-file to FILE.1 (once: never a FILE.2)
    and starts afresh, in either format; --log-format json writes one object
    per line with time, level, event, daemon and message; stderr gets the
    same lines, stdout none."""
    for fmt in ("json", "text"):
        d = Daemon("logrotate-" + fmt)
        path = os.path.join(LOGDIR, "rotating-%s.log" % fmt)
        for f in (path, path + ".1", path + ".2"):
            if os.path.exists(f):
                os.unlink(f)
        with open(path, "w") as f:
            f.write("an older line from before\n")
        s = Shim("logrotate-" + fmt, d.url(), "--log-level", "debug", "--log-file", path, "--log-max-size", "4K",
                 "--log-format", fmt)
        try:
            connected(s)
            ids = [s.request("echo", {"n": i}) for i in range(150)]
            got = [s.wait_for(i, 10) for i in ids]
            t.check(all(m and "result" in m for m in got), "%s: every request answered while the log rotates" % fmt)
            d.cmd("drop")
            t.check(wait_log(s, "lost"), "%s: a drop logged" % fmt)
            t.check(connected(s), "%s: reconnected" % fmt)
            last = s.request("echo", {"last": True})
            t.check(s.wait_for(last, 10) is not None, "%s: answered after the reconnect" % fmt)
            time.sleep(0.3)
            t.check(os.path.exists(path + ".1"), "%s: FILE.1 made" % fmt)
            t.check(not os.path.exists(path + ".2"), "%s: one old file only, never FILE.2" % fmt)
            cur, old = read_text(path), read_text(path + ".1")
            t.check(0 < len(cur.encode()) <= 4096 and 0 < len(old.encode()) <= 4096,
                    "%s: both files within 4 KiB (%d, %d bytes)" % (fmt, len(cur.encode()), len(old.encode())))
            t.check("an older line from before" not in cur + old, "%s: the oldest lines went with the rotations" % fmt)
            # FILE.1 then FILE, in order: the newest line (the last answer's) ends them
            newest = (old + cur).rstrip("\n").rsplit("\n", 1)[-1]
            t.check(re.search(r"result to %s \(echo\)" % json.dumps(last), newest) is not None,
                    "%s: the newest line ends FILE.1 + FILE: %r" % (fmt, newest[-200:]))
            lines = [ln for ln in (old + cur).splitlines() if ln]
            if fmt == "json":
                bad = []
                for ln in lines:
                    try:
                        o = json.loads(ln)
                        if list(o) != ["time", "level", "event", "daemon", "message"] or o["level"] not in ("error", "warn", "info", "debug") \
                                or not re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", o["time"]) or o["daemon"] != d.url() + "/":
                            bad.append(ln)
                    except ValueError:
                        bad.append(ln)
                t.check(lines and not bad, "json: every line an object with time, level, event, daemon, message: %r" % bad[:2])
                events = {json.loads(ln)["event"] for ln in lines}
                t.check("lost" in events, "json: events are named (%s)" % sorted(events)[:12])
                err = [ln for ln in read_text(s.stderr_path).splitlines() if ln and not re.match(r"==\d+==", ln)]   # not valgrind's
                t.check(err and all(ln.startswith("{") for ln in err), "json: stderr gets the same JSON lines")
            else:
                t.check(lines and all(re.match(r"\d{4}-\d\d-\d\dT\S+Z alwaysup (error|warn|info|debug): ", ln) for ln in lines),
                        "text: every line is TIME alwaysup LEVEL: MESSAGE")
            s.check_clean(t)
        finally:
            s.stop()
            d.stop()


def main():
    chosen, jobs = scenario_args(SCENARIOS, 6)
    if chosen is None:
        return 0
    for name in os.listdir(LOGDIR):
        if name.endswith(".log"):
            os.unlink(os.path.join(LOGDIR, name))
    # the longest scenarios start first
    results = run_scenarios(chosen, jobs, first=("outage_over_a_minute", "default_backoff_schedule"))
    scan = Checks("sanitizer-and-valgrind-reports")
    scan_logs(scan)
    results.append(scan)
    print("  %s %-40s %4d logs" % ("ok  " if not scan.failed else "FAIL", scan.name, scan.passed + scan.failed))
    for n in scan.notes:
        print("       " + n)
    if MEASURED:
        print("  measured:")
        for k, v in MEASURED.items():
            print("    %s: %s" % (k, v))
    return summary(results)


if __name__ == "__main__":
    sys.exit(main())
