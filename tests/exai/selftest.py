#!/usr/bin/python3
"""Self-test of tests/exai/exai_daemon.py: drives the daemon directly with a
Python `websockets` client (asyncio API, v10.4), no shim involved.

    /usr/bin/python3 tests/exai/selftest.py [-k REGEX]

Prints "ok NAME (time)" or "FAIL NAME: why" per scenario and ends with
"N passed, M failed"; exit status 1 on any failure. Every wait is bounded; a
watchdog ends the run at 120 s. Logs: build/test-logs/exai/selftest.<name>.*"""
import argparse
import asyncio
import json
import os
import re
import signal
import sys
import time

import websockets
import websockets.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DAEMON = os.path.join(HERE, "exai_daemon.py")
PY = os.environ.get("PY_DAEMON_PYTHON") or ("/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable)
LOGDIR = os.path.join(ROOT, "build", "test-logs", "exai")
WATCHDOG = 120.0
EXPECTED_TOOLS = ["echo", "sleep", "stream", "stream_only", "stream_bare", "fail", "fail_string", "legacy_text",
                  "counter", "big", "whoami", "hang"]
DAEMONS = []


class Failed(Exception):
    pass


class Checks:
    def __init__(self):
        self.problems = []
        self.times = []

    def check(self, cond, msg):
        if not cond:
            self.problems.append(msg)
        return cond

    def must(self, cond, msg):
        if not cond:
            raise Failed(msg)

    def time(self, label, seconds):
        self.times.append("%s %.0f ms" % (label, seconds * 1000))


class Daemon:
    """exai_daemon.py on 127.0.0.1 with its stdin control channel."""

    def __init__(self, name, args=(), port=0):
        self.name = name
        self.args = list(args)
        self.port = port
        self.proc = None
        self.log_path = os.path.join(LOGDIR, "selftest.%s.daemon.log" % name)
        self.err_path = os.path.join(LOGDIR, "selftest.%s.daemon.stderr" % name)
        for p in (self.log_path, self.err_path):
            if os.path.exists(p):
                os.unlink(p)

    async def start(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            err = open(self.err_path, "a")
            self.proc = await asyncio.create_subprocess_exec(
                PY, DAEMON, "--port", str(self.port), "--log", self.log_path, *self.args,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err)
            err.close()
            DAEMONS.append(self)
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), max(0.5, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                line = b""
            m = re.match(rb"listening (\d+)", line)
            if m:
                self.port = int(m.group(1))
                return self
            await self.kill()
            if time.monotonic() >= deadline:
                raise Failed("daemon %s did not start (%r); see %s" % (self.name, line, self.err_path))
            await asyncio.sleep(0.1)   # e.g. the port not yet free

    @property
    def url(self):
        return "ws://127.0.0.1:%d/" % self.port

    async def ctl(self, cmd, timeout=3.0):
        self.proc.stdin.write((cmd + "\n").encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        return line.decode().strip()

    async def kill(self):
        if self.proc and self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            await asyncio.wait_for(self.proc.wait(), 5)

    async def term(self, timeout=5.0):
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            rc = None
            await self.kill()
        return rc, time.monotonic() - t0

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8") as f:
                return f.read()
        except OSError:
            return ""

    def events(self, what):
        """The event lines 'event <what> ...' as dicts of their k=v fields."""
        out = []
        for line in self.log().splitlines():
            if not re.match(r"^[\d.]+ event ", line):
                continue
            rest = line.split(" event ", 1)[1]
            if not (rest == what or rest.startswith(what + " ")):
                continue
            out.append(fields(rest[len(what):]))
        return out


def fields(text):
    d = {}
    for m in re.finditer(r'(\w[\w-]*)=("(?:[^"\\]|\\.)*"|\S*)', text):
        v = m.group(2)
        d[m.group(1)] = json.loads(v) if v.startswith('"') else v
    return d


async def connect(d, session="sess-1", token=None, hello=True, timeout=5.0):
    ws = await websockets.connect(d.url, open_timeout=timeout, close_timeout=1, max_size=None,
                                  ping_interval=None)
    if hello:
        msg = {"op": "hello", "session_id": session}
        if token is not None:
            msg["token"] = token
        await ws.send(json.dumps(msg))
        ack = await recv(ws, timeout)
        if not (isinstance(ack, dict) and ack.get("op") == "hello_ack" and ack.get("ok") is True):
            await ws.close()
            raise Failed("hello not acked: %r" % (ack,))
        ws.ack = ack
    return ws


async def recv(ws, timeout=5.0):
    raw = await asyncio.wait_for(ws.recv(), timeout)
    return json.loads(raw)


async def recv_until(ws, pred, timeout=5.0, what="a message"):
    """Messages received until (and including) the first that satisfies pred."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failed("no %s within %.1f s (got %s)" % (what, timeout, short(got)))
        try:
            m = await recv(ws, left)
        except asyncio.TimeoutError:
            raise Failed("no %s within %.1f s (got %s)" % (what, timeout, short(got)))
        got.append(m)
        if pred(m):
            return got


def short(x, n=300):
    s = json.dumps(x, ensure_ascii=False)
    return s if len(s) <= n else s[:n] + "..."


async def call(ws, rid, name, arguments=None, timeout=5.0):
    """Sends call_tool; returns (all messages for rid, the call_tool_res)."""
    await ws.send(json.dumps({"op": "call_tool", "request_id": rid, "name": name,
                              "arguments": {} if arguments is None else arguments}))
    got = await recv_until(ws, lambda m: m.get("op") == "call_tool_res" and m.get("request_id") == rid,
                           timeout, "call_tool_res for %s" % rid)
    return got, got[-1]


def text_of(res):
    outs = res.get("outputs")
    if isinstance(outs, list) and outs and isinstance(outs[0], dict):
        return outs[0].get("text")
    return None


async def closed(ws, timeout=3.0):
    """(code, reason) once the server has closed the connection."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.exceptions.ConnectionClosed:
        pass
    except asyncio.TimeoutError:
        raise Failed("the connection was not closed within %.1f s" % timeout)
    return ws.close_code, ws.close_reason


SCENARIOS = []


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


# ------------------------------------------------------------ scenarios
@scenario
async def hello_ok(t):
    d = await Daemon("hello_ok").start()
    ws = await connect(d, session="sess-abc")
    t.check(ws.ack == {"op": "hello_ack", "ok": True, "session_id": "sess-abc"}, "ack %r" % ws.ack)
    await ws.close()
    ws = await connect(d, session="sess-abc", token="anything")
    t.check(ws.ack.get("session_id") == "sess-abc", "ack with a token when none is required: %r" % ws.ack)
    await ws.close()
    ws = await websockets.connect(d.url, open_timeout=5, ping_interval=None)
    await ws.send(json.dumps({"op": "hello", "token": ""}))
    ack = await recv(ws)
    t.check(ack.get("ok") is True and isinstance(ack.get("session_id"), str) and len(ack["session_id"]) >= 8,
            "hello without session_id not acked with a generated id: %r" % ack)
    await ws.close()
    await asyncio.sleep(0.1)
    ev = d.events("hello ok")
    t.check(len(ev) == 3, "%d 'hello ok' events, expected 3" % len(ev))
    if len(ev) == 3:
        t.check(ev[0].get("session") == "sess-abc" and ev[0].get("given") == "1", "event %r" % ev[0])
        t.check(ev[2].get("given") == "0" and ev[2].get("session") == ack.get("session_id"), "event %r" % ev[2])
    await d.term()


@scenario
async def hello_fresh_session_ids(t):
    d = await Daemon("hello_fresh", ["--fresh-session-ids"]).start()
    ws = await connect(d, session="given-1")
    t.check(ws.ack.get("session_id") not in (None, "", "given-1"), "ack kept the given id: %r" % ws.ack)
    await ws.close()
    await asyncio.sleep(0.1)
    ev = d.events("hello ok")
    t.check(ev and ev[0].get("session") == "given-1" and ev[0].get("acked") == ws.ack.get("session_id"),
            "events %r" % ev)
    await d.term()


@scenario
async def hello_bad_token(t):
    good, bad = "good-T0KEN-5ec", "wrong-T0KEN-9aa"
    d = await Daemon("hello_bad_token", ["--token", good]).start()
    for label, tok in (("wrong token", bad), ("no token", None), ("empty token", "")):
        ws = await websockets.connect(d.url, open_timeout=5, ping_interval=None)
        msg = {"op": "hello", "session_id": "s"}
        if tok is not None:
            msg["token"] = tok
        await ws.send(json.dumps(msg))
        ack = await recv(ws)
        t.check(ack == {"op": "hello_ack", "ok": False, "error": "invalid token"}, "%s: ack %r" % (label, ack))
        code, reason = await closed(ws)
        t.check((code, reason) == (4001, "invalid token"), "%s: closed %r %r" % (label, code, reason))
    ws = await connect(d, token=good)
    t.check(ws.ack.get("ok") is True, "good token refused")
    _, res = await call(ws, "r1", "echo", {"text": "after auth"})
    t.check(text_of(res) == "after auth", "echo after auth: %r" % res)
    await ws.close()
    await asyncio.sleep(0.1)
    t.check(len(d.events("hello refused")) == 3, "%d 'hello refused' events" % len(d.events("hello refused")))
    log = d.log()
    t.check(good not in log and bad not in log, "a token value is in the daemon log")
    t.check("<redacted" in log, "the hello token is not shown redacted in the recv lines")
    await d.term()


@scenario
async def hello_malformed(t):
    d = await Daemon("hello_malformed").start()
    cases = [("not JSON", "this is not json"), ("op list_tools first", json.dumps({"op": "list_tools"})),
             ("call_tool first", json.dumps({"op": "call_tool", "request_id": "x", "name": "echo",
                                              "arguments": {"text": "x"}})),
             ("array", "[1,2]"), ("session_id a number", json.dumps({"op": "hello", "session_id": 5}))]
    for label, raw in cases:
        ws = await websockets.connect(d.url, open_timeout=5, ping_interval=None)
        await ws.send(raw)
        ack = await recv(ws)
        t.check(ack == {"op": "hello_ack", "ok": False, "error": "invalid hello"}, "%s: ack %r" % (label, ack))
        code, reason = await closed(ws)
        t.check((code, reason) == (4000, "invalid hello"), "%s: closed %r %r" % (label, code, reason))
    await asyncio.sleep(0.1)
    ev = d.events("exec")
    t.check(not ev, "a tool ran before a hello: %r" % ev)
    await d.term()


@scenario
async def hello_timeout(t):
    d = await Daemon("hello_timeout", ["--hello-timeout", "0.5"]).start()
    ws = await websockets.connect(d.url, open_timeout=5, ping_interval=None)
    t0 = time.monotonic()
    code, reason = await closed(ws, 3)
    dt = time.monotonic() - t0
    t.time("closed after", dt)
    t.check(code == 4002 and reason == "hello timeout", "closed %r %r" % (code, reason))
    t.check(0.3 <= dt <= 2.0, "closed after %.2f s, expected about 0.5 s" % dt)
    await d.term()


@scenario
async def hello_delay_and_early_message(t):
    d = await Daemon("hello_delay", ["--hello-delay", "0.6"]).start()
    ws = await websockets.connect(d.url, open_timeout=5, ping_interval=None)
    t0 = time.monotonic()
    await ws.send(json.dumps({"op": "hello", "session_id": "s"}))
    ack = await recv(ws, 3)
    dt = time.monotonic() - t0
    t.time("ack after", dt)
    t.check(ack.get("ok") is True and dt >= 0.5, "ack %r after %.2f s" % (ack, dt))
    await ws.close()
    ws = await websockets.connect(d.url, open_timeout=5, ping_interval=None)
    await ws.send(json.dumps({"op": "hello", "session_id": "s"}))
    await ws.send(json.dumps({"op": "list_tools"}))
    code, reason = await closed(ws, 3)
    t.check((code, reason) == (4000, "message before hello_ack"), "early message: closed %r %r" % (code, reason))
    await asyncio.sleep(0.1)
    t.check(len(d.events("early-message")) == 1, "no early-message event")
    await d.term()


@scenario
async def list_tools_order(t):
    d = await Daemon("list_tools", ["--extra-tool", "extra_one", "--extra-tool", "extra_two"]).start()
    ws = await connect(d)
    await ws.send(json.dumps({"op": "list_tools"}))
    await ws.send(json.dumps({"op": "list_tools"}))
    a = await recv(ws)
    b = await recv(ws)
    for m in (a, b):
        t.check(m.get("op") == "list_tools_res" and set(m) == {"op", "tools"}, "answer %s" % short(m))
    names = [x.get("name") for x in a.get("tools", [])]
    t.check(names == EXPECTED_TOOLS + ["extra_one", "extra_two"], "names %r" % names)
    t.check(a == b, "two list_tools answers differ")
    for tool in a.get("tools", []):
        t.check(set(tool) == {"name", "description", "inputSchema"} and isinstance(tool["description"], str)
                and tool["inputSchema"].get("type") == "object", "tool %s" % short(tool))
    _, res = await call(ws, "x1", "extra_one", {"text": "extra!"})
    t.check(text_of(res) == "extra!", "extra tool: %s" % short(res))
    await ws.close()
    d2 = await Daemon("list_tools_plain").start()
    ws = await connect(d2)
    await ws.send(json.dumps({"op": "list_tools"}))
    m = await recv(ws)
    t.check([x["name"] for x in m["tools"]] == EXPECTED_TOOLS, "plain names %r" % [x["name"] for x in m["tools"]])
    await ws.close()
    await d.term()
    await d2.term()


@scenario
async def tools_instant(t):
    d = await Daemon("tools_instant", ["--instance", "INST-A"]).start()
    ws = await connect(d)
    msg = "h\u00e9llo \u2603 \U0001F600 \"q\" \\ \n tab\t"
    got, res = await call(ws, "e1", "echo", {"text": msg})
    t.check(res == {"op": "call_tool_res", "request_id": "e1", "ok": True, "outputs": [{"type": "text", "text": msg}]},
            "echo: %s" % short(res))
    t.check(len(got) == 1, "echo sent more than its result: %s" % short(got))
    _, res = await call(ws, "e2", "echo_EXAI-WS", {"text": "suffix"})
    t.check(text_of(res) == "suffix", "echo_EXAI-WS: %s" % short(res))
    _, res = await call(ws, "e3", "echo-EXAI_WS", {"text": "suffix2"})
    t.check(text_of(res) == "suffix2", "echo-EXAI_WS: %s" % short(res))
    _, res = await call(ws, "l1", "legacy_text", {"text": "old style"})
    t.check(res == {"op": "call_tool_res", "request_id": "l1", "text": "old style"}, "legacy_text: %s" % short(res))
    _, res = await call(ws, "f1", "fail")
    t.check(res == {"op": "call_tool_res", "request_id": "f1",
                    "error": {"code": "TOOL_EXECUTION_ERROR", "message": "fail: this tool always fails"}},
            "fail: %s" % short(res))
    _, res = await call(ws, "f2", "fail_string")
    t.check(res == {"op": "call_tool_res", "request_id": "f2",
                    "error": "fail_string: this tool always fails (string error)"}, "fail_string: %s" % short(res))
    _, res = await call(ws, "u1", "nosuch")
    err = res.get("error") or {}
    t.check(isinstance(err, dict) and err.get("code") == "TOOL_NOT_FOUND" and "nosuch" in err.get("message", "")
            and "ok" not in res, "unknown tool: %s" % short(res))
    _, res = await call(ws, "v1", "echo", {"txt": "wrong"})
    err = res.get("error") or {}
    t.check(isinstance(err, dict) and err.get("code") == "VALIDATION_ERROR", "bad arguments: %s" % short(res))
    _, res = await call(ws, "w1", "whoami")
    t.check(text_of(res) == "INST-A", "whoami: %s" % short(res))
    counts = []
    for i in range(3):
        _, res = await call(ws, "c%d" % i, "counter")
        counts.append(text_of(res))
    t.check(counts == ["1", "2", "3"], "counter gave %r" % counts)
    _, res = await call(ws, "b1", "big", {"bytes": 3 * 1024 * 1024})
    bt = text_of(res) or ""
    t.check(len(bt) == 3 * 1024 * 1024 and set(bt) == {"x"}, "big gave %d chars" % len(bt))
    await ws.close()
    await asyncio.sleep(0.1)
    ex = d.events("exec")
    t.check(all(e.get("n") == "1" for e in ex), "an instant tool ran twice under one request id: %r" % ex)
    t.check([e.get("tool") for e in ex if e.get("tool") == "counter"] == ["counter"] * 3, "counter exec events")
    await d.term()


@scenario
async def ok_false_and_ack_all(t):
    d = await Daemon("ok_false", ["--ok-false", "--ack-all", "--ack-timeout", "42"]).start()
    ws = await connect(d)
    got, res = await call(ws, "f1", "fail")
    t.check(res.get("ok") is False and isinstance(res.get("error"), dict), "--ok-false fail: %s" % short(res))
    t.check(got[0].get("op") == "call_tool_ack", "--ack-all: no ack before the fail result")
    got, res = await call(ws, "e1", "echo", {"text": "a"})
    t.check(got[0] == {"op": "call_tool_ack", "request_id": "e1", "accepted": True, "timeout": 42, "name": "echo"},
            "--ack-all echo ack: %s" % short(got[0]))
    await ws.close()
    await d.term()


@scenario
async def tool_sleep_progress(t):
    d = await Daemon("sleep", ["--progress-interval", "0.3", "--ack-timeout", "77"]).start()
    ws = await connect(d)
    t0 = time.monotonic()
    got, res = await call(ws, "s1", "sleep", {"seconds": 1.2}, timeout=5)
    dt = time.monotonic() - t0
    t.time("sleep 1.2", dt)
    t.check(got[0] == {"op": "call_tool_ack", "request_id": "s1", "accepted": True, "timeout": 77, "name": "sleep"},
            "first message is not the ack: %s" % short(got[0]))
    prog = [m for m in got if m.get("op") == "progress"]
    t.check(len(prog) >= 3, "%d progress messages, expected >= 3" % len(prog))
    t.check(all(set(m) == {"op", "request_id", "message"} and m["request_id"] == "s1"
                and re.match(r"^sleep: [\d.]+ of 1\.2 s$", m["message"]) for m in prog), "progress %s" % short(prog))
    t.check(text_of(res) == "slept 1.2" and res.get("ok") is True, "result %s" % short(res))
    t.check(1.1 <= dt <= 2.5, "took %.2f s" % dt)
    await asyncio.sleep(0.1)
    pe = d.events("progress")
    t.check([e.get("message") for e in pe] == [m["message"] for m in prog], "progress events differ from the messages")
    # default interval (1 s) for a 2.5 s sleep: 2 progress messages
    d2 = await Daemon("sleep_default").start()
    ws2 = await connect(d2)
    got, res = await call(ws2, "s2", "sleep", {"seconds": 2.5}, timeout=6)
    prog = [m for m in got if m.get("op") == "progress"]
    t.check(len(prog) == 2, "default interval: %d progress messages for 2.5 s, expected 2" % len(prog))
    t.check(got[0].get("timeout") == 300, "default ack timeout %r" % got[0].get("timeout"))
    await ws.close()
    await ws2.close()
    await d.term()
    await d2.term()


@scenario
async def tool_stream(t):
    d = await Daemon("stream", ["--chunk-interval", "0.02"]).start()
    ws = await connect(d)
    parts = ["alpha ", "b\u00e9ta ", "gamma"]
    got, res = await call(ws, "st1", "stream", {"parts": parts})
    t.check(got[0].get("op") == "call_tool_ack", "no ack first: %s" % short(got[0]))
    chunks = [m for m in got if m.get("op") == "stream_chunk"]
    t.check([c.get("chunk") for c in chunks] == parts and all(c.get("request_id") == "st1" for c in chunks),
            "chunks %s" % short(chunks))
    ops = [m.get("op") for m in got]
    t.check(ops[-2:] == ["stream_complete", "call_tool_res"], "order %r" % ops)
    t.check(text_of(res) == "".join(parts), "stream result %s" % short(res))
    got, res = await call(ws, "st2", "stream_only", {"parts": 3})
    chunks = [m.get("chunk") for m in got if m.get("op") == "stream_chunk"]
    t.check(chunks == ["part 1 ", "part 2 ", "part 3 "], "stream_only chunks %r" % chunks)
    t.check(res == {"op": "call_tool_res", "request_id": "st2", "ok": True, "outputs": []}, "stream_only res %s" % short(res))
    got, res = await call(ws, "st3", "stream_bare", {"parts": ["x", "y"]})
    chunks = [m.get("chunk") for m in got if m.get("op") == "stream_chunk"]
    t.check(chunks == ["x", "y"], "stream_bare chunks %r" % chunks)
    t.check(res == {"op": "call_tool_res", "request_id": "st3", "ok": True}, "stream_bare res %s" % short(res))
    await ws.close()
    await d.term()


@scenario
async def store_by_request_id(t):
    d = await Daemon("store").start()
    ws = await connect(d)
    _, r1 = await call(ws, "same-rid", "counter")
    _, r2 = await call(ws, "same-rid", "counter")
    _, r3 = await call(ws, "other-rid", "counter")
    t.check((text_of(r1), text_of(r2), text_of(r3)) == ("1", "1", "2"),
            "counter by rid: %r" % [text_of(r) for r in (r1, r2, r3)])
    t.check(r1 == r2, "the stored answer differs: %s vs %s" % (short(r1), short(r2)))
    _, f1 = await call(ws, "fail-rid", "fail")
    _, f2 = await call(ws, "fail-rid", "fail")
    t.check(f1 == f2, "a stored error differs")
    ws.close_timeout = 1
    await ws.close()
    ws = await connect(d, session="another")   # the store is not per connection
    _, r4 = await call(ws, "same-rid", "counter")
    t.check(text_of(r4) == "1", "from another connection: %s" % short(r4))
    await ws.close()
    await asyncio.sleep(0.1)
    ex = [(e["tool"], e["request_id"], e["n"]) for e in d.events("exec")]
    t.check(ex == [("counter", "same-rid", "1"), ("counter", "other-rid", "1"), ("fail", "fail-rid", "1")],
            "exec events %r" % ex)
    t.check(len(d.events("store-hit")) == 3, "%d store-hit events, expected 3" % len(d.events("store-hit")))
    await d.term()


@scenario
async def store_ttl(t):
    d = await Daemon("store_ttl", ["--store-ttl", "0.5"]).start()
    ws = await connect(d)
    _, r1 = await call(ws, "t1", "counter")
    _, r2 = await call(ws, "t1", "counter")
    await asyncio.sleep(0.8)
    _, r3 = await call(ws, "t1", "counter")
    t.check([text_of(r) for r in (r1, r2, r3)] == ["1", "1", "2"], "%r" % [text_of(r) for r in (r1, r2, r3)])
    await ws.close()
    await asyncio.sleep(0.1)
    t.check([e["n"] for e in d.events("exec")] == ["1", "2"], "exec n %r" % [e["n"] for e in d.events("exec")])
    await d.term()


@scenario
async def in_progress_same_request_id(t):
    d = await Daemon("in_progress_rid", ["--progress-interval", "10"]).start()
    ws = await connect(d)
    await ws.send(json.dumps({"op": "call_tool", "request_id": "p1", "name": "sleep", "arguments": {"seconds": 1}}))
    ack = await recv(ws)
    t.check(ack.get("op") == "call_tool_ack", "no ack: %s" % short(ack))
    _, dup = await call(ws, "p1", "sleep", {"seconds": 1})
    err = dup.get("error") or {}
    t.check(isinstance(err, dict) and err.get("code") == "OVER_CAPACITY"
            and "already being processed" in err.get("message", "")
            and (err.get("details") or {}).get("retry_after_secs") == 1
            and (err.get("details") or {}).get("original_request_id") == "p1", "in-progress answer %s" % short(dup))
    t.check("ok" not in dup, "the in-progress answer has an ok member")
    got = await recv_until(ws, lambda m: m.get("op") == "call_tool_res", 3, "the first call's result")
    t.check(text_of(got[-1]) == "slept 1", "first result %s" % short(got[-1]))
    _, again = await call(ws, "p1", "sleep", {"seconds": 1})
    t.check(again == got[-1], "the repeat after completion is not the stored result: %s" % short(again))
    await ws.close()
    await asyncio.sleep(0.1)
    t.check([e["n"] for e in d.events("exec")] == ["1"], "exec events %r" % d.events("exec"))
    t.check(len(d.events("in-progress")) == 1 and len(d.events("store-hit")) == 1, "in-progress/store-hit events")
    await d.term()


@scenario
async def in_progress_same_arguments(t):
    d = await Daemon("in_progress_args", ["--progress-interval", "10", "--retry-after", "3"]).start()
    ws = await connect(d)
    await ws.send(json.dumps({"op": "call_tool", "request_id": "a", "name": "sleep", "arguments": {"seconds": 0.8}}))
    await recv(ws)
    _, dup = await call(ws, "b", "sleep", {"seconds": 0.8})
    err = dup.get("error") or {}
    t.check(isinstance(err, dict) and (err.get("details") or {}).get("retry_after_secs") == 3
            and (err.get("details") or {}).get("original_request_id") == "a" and "wait 3 seconds" in err.get("message", ""),
            "same tool+arguments, other request id: %s" % short(dup))
    await ws.send(json.dumps({"op": "call_tool", "request_id": "c", "name": "sleep", "arguments": {"seconds": 0.5}}))
    m = await recv(ws)
    t.check(m.get("op") == "call_tool_ack" and m.get("request_id") == "c", "other arguments did not run: %s" % short(m))
    got = await recv_until(ws, lambda m: m.get("op") == "call_tool_res" and m.get("request_id") == "a", 3, "result a")
    t.check(any(x.get("request_id") == "c" and x.get("op") == "call_tool_res" for x in got), "result c missing")
    _, again = await call(ws, "b", "sleep", {"seconds": 0.8}, timeout=3)   # no longer in flight: runs
    t.check(text_of(again) == "slept 0.8", "b after a finished: %s" % short(again))
    await ws.close()
    await asyncio.sleep(0.1)
    t.check(sorted(e["request_id"] for e in d.events("exec")) == ["a", "b", "c"], "exec %r" % d.events("exec"))
    await d.term()


@scenario
async def drop_and_resend(t):
    d = await Daemon("drop", ["--progress-interval", "0.2"]).start()
    ws = await connect(d)
    await ws.send(json.dumps({"op": "call_tool", "request_id": "d1", "name": "sleep", "arguments": {"seconds": 1.5}}))
    await recv(ws)
    await asyncio.sleep(0.3)
    t.check(await d.ctl("conns") == "ok 1", "conns before drop")
    t.check(await d.ctl("drop") == "ok 1", "drop answer")
    code, _ = await closed(ws, 2)
    t.check(code == 1006, "after drop the client saw close code %r, expected 1006 (no close frame)" % code)
    await asyncio.sleep(0.1)
    t.check(await d.ctl("conns") == "ok 0", "conns after drop")
    ws = await connect(d)
    _, r = await call(ws, "d1", "sleep", {"seconds": 1.5})
    t.check((r.get("error") or {}).get("code") == "OVER_CAPACITY", "resend while running: %s" % short(r))
    await asyncio.sleep(1.5)
    _, r = await call(ws, "d1", "sleep", {"seconds": 1.5})
    t.check(text_of(r) == "slept 1.5", "resend after completion: %s" % short(r))
    await ws.close()
    await asyncio.sleep(0.1)
    t.check([e["n"] for e in d.events("exec")] == ["1"], "exec %r" % d.events("exec"))
    res = d.events("result")
    t.check(len(res) == 1 and res[0].get("delivered") == "0", "result event %r" % res)
    t.check(len(d.events("undeliverable")) >= 1, "no undeliverable events")
    await d.term()


@scenario
async def restart_forgets(t):
    d = await Daemon("restart", ["--instance", "A"]).start()
    ws = await connect(d)
    _, r = await call(ws, "rr", "counter")
    t.check(text_of(r) == "1", "A: %s" % short(r))
    await ws.close()
    port = d.port
    await d.kill()
    d2 = Daemon("restart2", ["--instance", "B"], port=port)
    d2.log_path = d.log_path     # one file for both lives
    await d2.start()
    ws = await connect(d2)
    _, r = await call(ws, "rr", "counter")
    t.check(text_of(r) == "1", "B answered the repeated request id with %s, expected a fresh run" % short(r))
    _, w = await call(ws, "w", "whoami")
    t.check(text_of(w) == "B", "whoami %s" % short(w))
    await ws.close()
    await asyncio.sleep(0.1)
    ex = [(e["instance"], e["request_id"], e["n"]) for e in d2.events("exec") if e["tool"] == "counter"]
    t.check(ex == [("A", "rr", "1"), ("B", "rr", "1")], "exec %r" % ex)
    t.check(len(d2.events("start")) == 2, "two start events in the shared log")
    await d2.term()


@scenario
async def status_and_unknown_ops(t):
    d = await Daemon("status_unknown", ["--status-interval", "0.2", "--send-unknown"]).start()
    ws = await connect(d)
    weird = await recv(ws)
    t.check(weird.get("op") == "weird" and "request_id" not in weird, "after the ack: %s" % short(weird))
    st = await recv_until(ws, lambda m: m.get("op") == "status", 2, "a status message")
    t.check(st[-1].get("instance") == "exai", "status %s" % short(st[-1]))
    got, res = await call(ws, "e1", "echo", {"text": "x"})
    mine = [m for m in got if m.get("request_id") == "e1"]
    t.check([m.get("op") for m in mine] == ["weird", "call_tool_res"], "ops for e1: %r" % [m.get("op") for m in mine])
    await ws.close()
    await d.term()


@scenario
async def op_errors(t):
    d = await Daemon("op_errors").start()
    ws = await connect(d)
    await ws.send(json.dumps({"op": "frobnicate", "request_id": "z"}))
    m = await recv(ws)
    t.check(m.get("op") == "error" and (m.get("error") or {}).get("code") == "INVALID_REQUEST"
            and "frobnicate" in m["error"].get("message", "") and m.get("request_id") == "z", "unknown op: %s" % short(m))
    await ws.send("{not json")
    m = await recv(ws)
    t.check(m.get("op") == "error" and (m.get("error") or {}).get("code") == "INVALID_JSON", "bad JSON: %s" % short(m))
    await ws.send(json.dumps({"op": "call_tool", "name": "echo", "arguments": {"text": "x"}}))
    m = await recv(ws)
    t.check(m.get("op") == "error", "call_tool without request_id: %s" % short(m))
    await ws.send(json.dumps({"op": "hello", "session_id": "again"}))
    m = await recv(ws)
    t.check(m.get("op") == "error", "a second hello: %s" % short(m))
    _, r = await call(ws, "ok", "echo", {"text": "still fine"})
    t.check(text_of(r) == "still fine", "echo after the errors: %s" % short(r))
    await ws.close()
    await d.term()


@scenario
async def control_channel(t):
    d = await Daemon("control").start()
    a = await connect(d, session="a")
    b = await connect(d, session="b")
    t.check(await d.ctl("conns") == "ok 2", "conns")
    t.check(await d.ctl('send {"op":"custom","x":1}') == "ok", "send")
    for ws in (a, b):
        m = await recv(ws)
        t.check(m == {"op": "custom", "x": 1}, "broadcast %s" % short(m))
    t.check(await d.ctl("status") == "ok", "status")
    m = await recv(a)
    t.check(m.get("op") == "status", "status broadcast %s" % short(m))
    await recv(b)
    _, r = await call(a, "k1", "counter")
    t.check((await d.ctl("forget")).startswith("ok 1"), "forget")
    _, r2 = await call(a, "k1", "counter")
    t.check((text_of(r), text_of(r2)) == ("1", "2"), "after forget %r" % ((text_of(r), text_of(r2)),))
    t.check(await d.ctl("close 4100 bye now") == "ok 2", "close")
    for ws in (a, b):
        code, reason = await closed(ws, 3)
        t.check((code, reason) == (4100, "bye now"), "close -> %r %r" % (code, reason))
    t.check((await d.ctl("bogus")).startswith("err"), "unknown command not refused")
    t.check(await d.ctl("quit") == "ok", "quit")
    rc = await asyncio.wait_for(d.proc.wait(), 5)
    t.check(rc == 0, "exit status after quit %r" % rc)


@scenario
async def sigterm(t):
    d = await Daemon("sigterm", ["--progress-interval", "10"]).start()
    ws = await connect(d)
    await ws.send(json.dumps({"op": "call_tool", "request_id": "h", "name": "hang", "arguments": {}}))
    ack = await recv(ws)
    t.check(ack.get("op") == "call_tool_ack", "hang ack %s" % short(ack))
    try:
        m = await recv(ws, 0.7)
        t.check(False, "hang answered: %s" % short(m))
    except asyncio.TimeoutError:
        pass
    rc, took = await d.term()
    t.time("SIGTERM -> exit", took)
    code, reason = await closed(ws, 2)
    t.check(code == 1001, "closed %r %r, expected 1001" % (code, reason))
    t.check(rc == 0 and took < 3, "exit %r after %.2f s" % (rc, took))


# ------------------------------------------------------------ driver
async def run_one(fn):
    t = Checks()
    t0 = time.monotonic()
    fatal = None
    try:
        await asyncio.wait_for(fn(t), 30)
    except Failed as e:
        fatal = str(e)
    except asyncio.TimeoutError:
        fatal = "scenario budget (30 s) exceeded"
    except Exception as e:   # noqa: BLE001 - report, never hang
        fatal = "%s: %s" % (type(e).__name__, e)
    for d in list(DAEMONS):
        try:
            await d.kill()
        except Exception:   # noqa: BLE001
            pass
    DAEMONS.clear()
    why = ([fatal] if fatal else []) + t.problems
    times = " (%s)" % ", ".join(t.times + ["%.1f s" % (time.monotonic() - t0)])
    if why:
        print("FAIL %s: %s%s" % (fn.__name__, "; ".join(why), times), flush=True)
        return False
    print("ok %s%s" % (fn.__name__, times), flush=True)
    return True


async def main(pattern):
    os.makedirs(LOGDIR, exist_ok=True)
    chosen = [f for f in SCENARIOS if not pattern or re.search(pattern, f.__name__)]
    passed = failed = 0
    for fn in chosen:
        if await run_one(fn):
            passed += 1
        else:
            failed += 1
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return failed


def watchdog_fire(*_):
    print("FAIL watchdog: the run exceeded %d s" % WATCHDOG, flush=True)
    for d in DAEMONS:
        try:
            d.proc.kill()
        except Exception:   # noqa: BLE001
            pass
    print("0 passed, 1 failed", flush=True)
    os._exit(1)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", default=None, help="run only scenarios whose name matches this regex")
    a = ap.parse_args()
    signal.signal(signal.SIGALRM, watchdog_fire)
    signal.alarm(int(WATCHDOG))
    failures = asyncio.run(main(a.k))
    sys.exit(1 if failures else 0)
