#!/usr/bin/python3
"""A test daemon that speaks the EX-AI daemon's JSON "op" protocol
(/work/shared/exai/protocol.md; shapes follow the public EX-AI-MCP-Server
daemon where the note leaves them open), written with the `websockets`
library (asyncio API, v10.4) like tests/interop/py_daemon.py. Used by
tests/exai/selftest.py and tests/exai/exai_interop.mjs.

    exai_daemon.py --port N [--token T] [--instance NAME] [--log FILE]
                   [--ack-timeout S] [--progress-interval S] [--store-ttl S]
                   [--hello-timeout S] [--hello-delay S] [--retry-after S]
                   [--status-interval S] [--send-unknown] [--fresh-session-ids]
                   [--ok-false] [--ack-all] [--extra-tool NAME]...
                   [--chunk-interval S] [--ping-interval S]

Prints "listening N" on stdout once bound (--port 0: an ephemeral port).

Connection: the first message must be {"op":"hello","session_id":S,"token":T}
within --hello-timeout (default 10 s; else close 4002 "hello timeout").
Not JSON / not an object / op other than "hello" -> {"op":"hello_ack",
"ok":false,"error":"invalid hello"} and close 4000 "invalid hello". With
--token, a token that differs -> {"op":"hello_ack","ok":false,"error":"invalid
token"} and close 4001 "invalid token". Otherwise {"op":"hello_ack","ok":true,
"session_id":S} (S generated when absent; with --fresh-session-ids the ack
carries a new daemon-side id every time, as some EX-AI versions do). With
--hello-delay S the ack is sent S seconds late, and a message that arrives
meanwhile closes the connection 4000 "message before hello_ack".

After the ack:
  {"op":"list_tools"} -> {"op":"list_tools_res","tools":[...]} (fixed order,
      then each --extra-tool, which behaves like echo)
  {"op":"call_tool","request_id":R,"name":T,"arguments":{...}}: the suffixes
      _EXAI-WS -EXAI-WS _EXAI_WS -EXAI_WS are stripped from T. Then, in the
      order of the public daemon:
      unknown tool -> error TOOL_NOT_FOUND; bad arguments -> VALIDATION_ERROR;
      R finished within --store-ttl (default 300 s) -> the stored
          call_tool_res again (event store-hit), the tool does not run;
      R still running, or the same tool + arguments still running under
          another R -> {"op":"call_tool_res","request_id":R,"error":{"code":
          "OVER_CAPACITY","message":"This request is already being processed
          ... Please wait N seconds and try again ...","details":
          {"retry_after_secs":N,"original_request_id":R0}}} (N: --retry-after,
          default 1; the public daemon's default is 5) (event in-progress);
      else the tool runs (event exec, counted per (tool, request_id)).
      Results and progress go to the connection that sent the call; when it
      is gone they are dropped (event undeliverable) but still stored. A
      running tool is not stopped by its connection closing.
  anything else -> {"op":"error","error":{"code":"INVALID_REQUEST",
      "message":"Unknown operation: X"}}; invalid JSON -> {"op":"error",
      "error":{"code":"INVALID_JSON",...}}.

call_tool_res: success {"op":"call_tool_res","request_id":R,"ok":true,
"outputs":[{"type":"text","text":...}]}; failure {"op":"call_tool_res",
"request_id":R,"error":{"code":...,"message":...}} (no "ok" member, as the
public daemon; --ok-false adds "ok":false).

Tools:
  echo {text}          outputs [text]
  sleep {seconds}      call_tool_ack {"timeout":--ack-timeout (default 300),
                       "accepted":true,"name":"sleep"}, progress every
                       --progress-interval (default 1 s) with message
                       "sleep: E of S s", then outputs ["slept S"]
  stream {parts}       ack, one stream_chunk per part (a list of strings, or a
                       count N: "part 1 " ... "part N"), every --chunk-interval
                       (0.05 s), stream_complete, then outputs [the whole text]
  stream_only {parts}  the same, but call_tool_res carries "outputs":[]
  stream_bare {parts}  the same, but call_tool_res is {"op":"call_tool_res",
                       "request_id":R,"ok":true}: no outputs, no text
  fail {}              error {"code":"TOOL_EXECUTION_ERROR","message":
                       "fail: this tool always fails"}
  fail_string {}       error "fail_string: this tool always fails (string error)"
  legacy_text {text}   {"op":"call_tool_res","request_id":R,"text":text}
                       (an older daemon: no "ok", no "outputs")
  counter {}           outputs ["N"]: how many times counter has run in this
                       daemon life, this run included
  big {bytes}          outputs [bytes x 'x']
  whoami {}            outputs [--instance]
  hang {}              ack, then never answers
--ack-all: every call that runs is acked first, not only the slow tools.
--status-interval S: {"op":"status",...} to every acked connection every S s.
--send-unknown: {"op":"weird","note":...} right after every hello_ack, and
  {"op":"weird","request_id":R} just before every call_tool_res.

Control channel (stdin, one command per line; answers "ok ..." / "err ..."):
  drop              abort every connection's TCP (no close frame)
  close CODE [WHY]  close frame to every connection
  conns             "ok N": open connections
  forget            empty the result store
  send JSON         JSON verbatim to every acked connection
  status            a status broadcast now
  quit              like SIGTERM
  EOF on stdin changes nothing.
SIGTERM/SIGINT: every connection is closed with 1001 "going away", exit 0.

--log FILE appends "recv <json>" per message received (a hello's token is
replaced by "<redacted N chars>"; long lines are cut), "send <json>" per
message sent, and "<time> event <what> k=v ... instance=I" per event:
  start port= pid=; open conn=; hello ok conn= session= given=0|1 acked=;
  hello refused conn= code= reason="..."; hello timeout conn=; early-message
  conn=; call conn= tool= request_id=; exec tool= request_id= n= total= conn=;
  progress request_id= message="..."; store-hit tool= request_id= conn=;
  in-progress tool= request_id= original= conn=; result tool= request_id=
  ok=0|1 delivered=0|1; undeliverable op= request_id= conn=; close conn=
  sent= rcvd=; drop conns=; signal ...; exit.
Several lives of the daemon may share one file."""
import argparse
import asyncio
import json
import os
import signal
import sys
import time
import uuid

import websockets
import websockets.exceptions

ARGS = None
LOG = None
CONNS = {}            # conn id -> Conn
NEXT_CONN = [1]
STORE = {}            # request_id -> (finished_at, call_tool_res dict)
RUNNING_BY_RID = {}   # request_id -> call key
RUNNING_BY_KEY = {}   # call key -> original request_id
EXEC_COUNT = {}       # (tool, request_id) -> executions in this life
TOOL_RUNS = {}        # tool -> executions in this life
TASKS = set()
STOP = None
SUFFIXES = ("_EXAI-WS", "-EXAI-WS", "_EXAI_WS", "-EXAI_WS")
LOG_CUT = 2000


def log(line):
    if LOG is not None:
        if len(line) > LOG_CUT:
            line = line[:LOG_CUT] + "...(%d chars)" % len(line)
        LOG.write(line + "\n")
        LOG.flush()


def event(text):
    log("%.3f event %s instance=%s" % (time.time(), text, ARGS.instance))


def q(s):
    """A value for a log field: JSON-quoted when it has spaces or quotes."""
    s = str(s)
    if s == "" or any(c in s for c in ' "=\n\t'):
        return json.dumps(s, ensure_ascii=False)
    return s


def schema(props, required=()):
    return {"type": "object", "properties": props, "required": list(required)}


BASE_TOOLS = [
    ("echo", "Returns its text argument.", schema({"text": {"type": "string"}}, ["text"])),
    ("sleep", "Sleeps, acknowledging the call and sending progress, then answers.",
     schema({"seconds": {"type": "number"}}, ["seconds"])),
    ("stream", "Streams its parts as stream_chunk messages, then answers with the whole text.",
     schema({"parts": {"type": ["array", "integer"], "items": {"type": "string"}}}, ["parts"])),
    ("stream_only", "Streams its parts; the final call_tool_res carries no outputs.",
     schema({"parts": {"type": ["array", "integer"], "items": {"type": "string"}}}, ["parts"])),
    ("stream_bare", "Streams its parts; the final call_tool_res has neither outputs nor text.",
     schema({"parts": {"type": ["array", "integer"], "items": {"type": "string"}}}, ["parts"])),
    ("fail", "Always fails with an error object.", schema({})),
    ("fail_string", "Always fails with an error string.", schema({})),
    ("legacy_text", "Answers like an older daemon: a top-level text member.",
     schema({"text": {"type": "string"}}, ["text"])),
    ("counter", "How many times this tool has run in this daemon life.", schema({})),
    ("big", "Returns a text of the given number of bytes.", schema({"bytes": {"type": "integer"}}, ["bytes"])),
    ("whoami", "The daemon's instance name.", schema({})),
    ("hang", "Acknowledges the call and never answers.", schema({})),
]
SLOW_TOOLS = ("sleep", "stream", "stream_only", "stream_bare", "hang")
STREAM_TOOLS = ("stream", "stream_only", "stream_bare")


def tool_list():
    tools = [{"name": n, "description": d, "inputSchema": s} for n, d, s in BASE_TOOLS]
    for extra in ARGS.extra_tool:
        tools.append({"name": extra, "description": "An extra tool (like echo).",
                      "inputSchema": schema({"text": {"type": "string"}})})
    return tools


def tool_names():
    return [t["name"] for t in tool_list()]


def normalize(name):
    if isinstance(name, str):
        for suf in SUFFIXES:
            if name.endswith(suf):
                return name[:-len(suf)]
    return name


def call_key(name, arguments):
    return name + ":" + json.dumps(arguments, sort_keys=True, ensure_ascii=False)


def ok_res(rid, text):
    return {"op": "call_tool_res", "request_id": rid, "ok": True, "outputs": [{"type": "text", "text": text}]}


def err_res(rid, error):
    res = {"op": "call_tool_res", "request_id": rid}
    if ARGS.ok_false:
        res["ok"] = False
    res["error"] = error
    return res


class Conn:
    def __init__(self, ws, cid):
        self.ws = ws
        self.cid = cid
        self.acked = False
        self.session = None

    @property
    def open(self):
        return self.ws.open

    async def send(self, msg, what=None):
        """Sends msg; False (logged) when the connection is gone."""
        text = json.dumps(msg, ensure_ascii=False)
        if not self.ws.open:
            event("undeliverable op=%s request_id=%s conn=%d" % (msg.get("op"), q(msg.get("request_id")), self.cid))
            return False
        try:
            await self.ws.send(text)
        except websockets.exceptions.ConnectionClosed:
            event("undeliverable op=%s request_id=%s conn=%d" % (msg.get("op"), q(msg.get("request_id")), self.cid))
            return False
        log("send " + text)
        return True


def parse_parts(parts):
    if isinstance(parts, bool):
        return None
    if isinstance(parts, int):
        if parts < 0 or parts > 100000:
            return None
        return ["part %d " % (i + 1) for i in range(parts)]
    if isinstance(parts, list) and all(isinstance(p, str) for p in parts):
        return parts
    return None


def validate(name, args):
    """None when the arguments are acceptable, else the error message."""
    if not isinstance(args, dict):
        return "Validation failed for 'arguments': must be an object"
    if name in ("echo", "legacy_text") and not isinstance(args.get("text"), str):
        return "Validation failed for 'text': a string is required"
    if name == "sleep":
        s = args.get("seconds")
        if isinstance(s, bool) or not isinstance(s, (int, float)) or s < 0 or s > 3600:
            return "Validation failed for 'seconds': a number from 0 to 3600 is required"
    if name in STREAM_TOOLS and parse_parts(args.get("parts")) is None:
        return "Validation failed for 'parts': a list of strings or a count is required"
    if name == "big":
        b = args.get("bytes")
        if isinstance(b, bool) or not isinstance(b, int) or b < 0 or b > 256 * 1024 * 1024:
            return "Validation failed for 'bytes': an integer from 0 to 268435456 is required"
    return None


async def run_tool(conn, rid, name, args):
    """Runs one tool call to its end; returns the call_tool_res. Sends the
    ack, progress and stream messages on conn (while it is open)."""
    if name in SLOW_TOOLS or ARGS.ack_all:
        await conn.send({"op": "call_tool_ack", "request_id": rid, "accepted": True,
                         "timeout": ARGS.ack_timeout, "name": name})
    if name in ("echo",) or name in ARGS.extra_tool:
        return ok_res(rid, args.get("text", ""))
    if name == "sleep":
        seconds = float(args["seconds"])
        t0 = time.monotonic()
        end = t0 + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            step = ARGS.progress_interval
            if step <= 0 or left <= step:
                await asyncio.sleep(left)
                break
            await asyncio.sleep(step)
            if end - time.monotonic() <= 0.02:
                break
            message = "sleep: %.1f of %g s" % (time.monotonic() - t0, seconds)
            event("progress request_id=%s message=%s" % (q(rid), q(message)))
            await conn.send({"op": "progress", "request_id": rid, "message": message})
        return ok_res(rid, "slept %g" % seconds)
    if name in STREAM_TOOLS:
        parts = parse_parts(args["parts"])
        for part in parts:
            await conn.send({"op": "stream_chunk", "request_id": rid, "chunk": part})
            await asyncio.sleep(ARGS.chunk_interval)
        await conn.send({"op": "stream_complete", "request_id": rid})
        if name == "stream_only":
            return {"op": "call_tool_res", "request_id": rid, "ok": True, "outputs": []}
        if name == "stream_bare":
            return {"op": "call_tool_res", "request_id": rid, "ok": True}
        return ok_res(rid, "".join(parts))
    if name == "fail":
        return err_res(rid, {"code": "TOOL_EXECUTION_ERROR", "message": "fail: this tool always fails"})
    if name == "fail_string":
        return err_res(rid, "fail_string: this tool always fails (string error)")
    if name == "legacy_text":
        return {"op": "call_tool_res", "request_id": rid, "text": args["text"]}
    if name == "counter":
        return ok_res(rid, str(TOOL_RUNS.get("counter", 0)))
    if name == "big":
        return ok_res(rid, "x" * args["bytes"])
    if name == "whoami":
        return ok_res(rid, ARGS.instance)
    if name == "hang":
        await asyncio.Event().wait()
    return err_res(rid, {"code": "INTERNAL_ERROR", "message": "no implementation for %s" % name})


async def execute(conn, rid, name, args, key):
    """One execution: counted, stored, delivered. The in-flight marks for rid
    and key were set by the caller before any await."""
    n = EXEC_COUNT.get((name, rid), 0) + 1
    EXEC_COUNT[(name, rid)] = n
    TOOL_RUNS[name] = TOOL_RUNS.get(name, 0) + 1
    event("exec tool=%s request_id=%s n=%d total=%d conn=%d" % (name, q(rid), n, TOOL_RUNS[name], conn.cid))
    try:
        res = await run_tool(conn, rid, name, args)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # a bug in this daemon: answer rather than hang the test
        res = err_res(rid, {"code": "INTERNAL_ERROR", "message": "Tool execution failed: %r" % e})
    finally:
        if RUNNING_BY_RID.get(rid) == key:
            del RUNNING_BY_RID[rid]
        if RUNNING_BY_KEY.get(key) == rid:
            del RUNNING_BY_KEY[key]
    STORE[rid] = (time.monotonic(), res)
    if ARGS.send_unknown:
        await conn.send({"op": "weird", "request_id": rid})
    delivered = await conn.send(res)
    event("result tool=%s request_id=%s ok=%d delivered=%d conn=%d" % (
        name, q(rid), 0 if "error" in res else 1, 1 if delivered else 0, conn.cid))


def stored(rid):
    rec = STORE.get(rid)
    if rec is None:
        return None
    if time.monotonic() - rec[0] > ARGS.store_ttl:
        del STORE[rid]
        return None
    return rec[1]


async def handle_call(conn, msg):
    rid = msg.get("request_id")
    orig = msg.get("name")
    args = msg.get("arguments")
    if args is None:
        args = {}
    if not isinstance(rid, str) or rid == "":
        await conn.send({"op": "error", "error": {"code": "INVALID_REQUEST",
                                                  "message": "call_tool needs a request_id string"}})
        return
    name = normalize(orig)
    event("call conn=%d tool=%s request_id=%s" % (conn.cid, q(name), q(rid)))
    if not isinstance(name, str) or name not in tool_names():
        await conn.send(err_res(rid, {"code": "TOOL_NOT_FOUND", "message": "Unknown tool: %s" % orig,
                                      "details": {"requested_tool": orig}}))
        return
    why = validate(name, args)
    if why is not None:
        await conn.send(err_res(rid, {"code": "VALIDATION_ERROR", "message": why}))
        return
    cached = stored(rid)
    if cached is not None:
        event("store-hit tool=%s request_id=%s conn=%d" % (name, q(rid), conn.cid))
        await conn.send(cached)
        return
    key = call_key(name, args)
    original = None
    if rid in RUNNING_BY_RID:
        original = rid
    elif key in RUNNING_BY_KEY:
        original = RUNNING_BY_KEY[key]
    if original is not None:
        event("in-progress tool=%s request_id=%s original=%s conn=%d" % (name, q(rid), q(original), conn.cid))
        n = ARGS.retry_after
        await conn.send(err_res(rid, {
            "code": "OVER_CAPACITY",
            "message": ("This request is already being processed (request ID: %s).\n\n"
                        "The system prevents duplicate requests to avoid wasted resources. "
                        "Please wait %g seconds and try again, or modify your request "
                        "to make it unique (e.g., add a timestamp or change parameters)." % (original, n)),
            "details": {"retry_after_secs": n, "original_request_id": original,
                        "suggestion": "Wait for the original request to complete, "
                                      "or modify your request to make it unique"}}))
        return
    RUNNING_BY_RID[rid] = key
    RUNNING_BY_KEY[key] = rid
    if name in SLOW_TOOLS:
        task = asyncio.ensure_future(execute(conn, rid, name, args, key))
        TASKS.add(task)
        task.add_done_callback(TASKS.discard)
    else:
        await execute(conn, rid, name, args, key)


async def handle(conn, text):
    try:
        msg = json.loads(text)
    except ValueError as e:
        await conn.send({"op": "error", "error": {"code": "INVALID_JSON", "message": "invalid JSON: %s" % e}})
        return
    op = msg.get("op") if isinstance(msg, dict) else None
    if op == "list_tools":
        await conn.send({"op": "list_tools_res", "tools": tool_list()})
    elif op == "call_tool":
        await handle_call(conn, msg)
    else:
        err = {"code": "INVALID_REQUEST", "message": "Unknown operation: %s" % op}
        out = {"op": "error", "error": err}
        if isinstance(msg, dict) and "request_id" in msg:
            out["request_id"] = msg["request_id"]
        await conn.send(out)


def redacted(text):
    try:
        m = json.loads(text)
    except ValueError:
        return text
    if isinstance(m, dict) and "token" in m:
        t = m["token"]
        m["token"] = "<redacted %d chars>" % len(t) if isinstance(t, str) else "<redacted %s>" % type(t).__name__
        return json.dumps(m, ensure_ascii=False)
    return text


async def refuse(conn, code, reason):
    event("hello refused conn=%d code=%d reason=%s" % (conn.cid, code, q(reason)))
    await conn.send({"op": "hello_ack", "ok": False, "error": reason})
    await conn.ws.close(code, reason)


async def hello(conn):
    """True when the connection got a successful hello_ack."""
    ws = conn.ws
    try:
        raw = await asyncio.wait_for(ws.recv(), ARGS.hello_timeout)
    except asyncio.TimeoutError:
        event("hello timeout conn=%d" % conn.cid)
        await ws.close(4002, "hello timeout")
        return False
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    log("recv " + redacted(text))
    try:
        msg = json.loads(text)
    except ValueError:
        msg = None
    if not isinstance(msg, dict) or msg.get("op") != "hello":
        await refuse(conn, 4000, "invalid hello")
        return False
    sid = msg.get("session_id")
    if sid is not None and not isinstance(sid, str):
        await refuse(conn, 4000, "invalid hello")
        return False
    token = msg.get("token", "")
    if ARGS.token is not None and token != ARGS.token:
        await refuse(conn, 4001, "invalid token")
        return False
    given = isinstance(sid, str) and sid != ""
    if not given:
        sid = str(uuid.uuid4())
    acked = str(uuid.uuid4()) if ARGS.fresh_session_ids else sid
    if ARGS.hello_delay > 0:
        try:
            early = await asyncio.wait_for(ws.recv(), ARGS.hello_delay)
        except asyncio.TimeoutError:
            early = None
        if early is not None:
            etext = early if isinstance(early, str) else early.decode("utf-8", "replace")
            log("recv " + etext)
            event("early-message conn=%d" % conn.cid)
            await ws.close(4000, "message before hello_ack")
            return False
    conn.session = sid
    conn.acked = True
    event("hello ok conn=%d session=%s given=%d acked=%s" % (conn.cid, q(sid), 1 if given else 0, q(acked)))
    await conn.send({"op": "hello_ack", "ok": True, "session_id": acked})
    if ARGS.send_unknown:
        await conn.send({"op": "weird", "note": "an op this shim has never heard of"})
    return True


async def handler(ws, path=None):
    cid = NEXT_CONN[0]
    NEXT_CONN[0] += 1
    conn = Conn(ws, cid)
    CONNS[cid] = conn
    event("open conn=%d peer=%s path=%s subprotocol=%s" % (
        cid, "%s:%s" % tuple(ws.remote_address[:2]) if ws.remote_address else None, q(ws.path), ws.subprotocol))
    try:
        if not await hello(conn):
            return
        async for raw in ws:
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            log("recv " + text)
            await handle(conn, text)
    except websockets.exceptions.ConnectionClosed:
        pass
    finally:
        CONNS.pop(cid, None)
        rcvd = ws.close_rcvd
        sent = ws.close_sent
        event("close conn=%d sent=%s rcvd=%s" % (cid, sent.code if sent else None,
                                                 q(("%d %s" % (rcvd.code, rcvd.reason)).strip()) if rcvd else None))


def status_msg():
    return {"op": "status", "instance": ARGS.instance, "t": time.time(), "sessions": len(CONNS),
            "inflight": len(RUNNING_BY_RID)}


async def broadcast(msg):
    for conn in list(CONNS.values()):
        if conn.acked and conn.open:
            await conn.send(msg)


async def status_loop():
    while True:
        await asyncio.sleep(ARGS.status_interval)
        await broadcast(status_msg())


async def control(line, out):
    parts = line.strip().split(None, 1)
    if not parts:
        return
    cmd = parts[0]
    rest = parts[1] if len(parts) > 1 else ""
    if cmd == "drop":
        n = 0
        for conn in list(CONNS.values()):
            if conn.ws.transport is not None:
                conn.ws.transport.abort()
                n += 1
        event("drop conns=%d" % n)
        out("ok %d" % n)
    elif cmd == "close":
        bits = rest.split(None, 1)
        try:
            code = int(bits[0])
        except (IndexError, ValueError):
            out("err close needs a code")
            return
        reason = bits[1] if len(bits) > 1 else ""
        conns = list(CONNS.values())
        event("close-all code=%d conns=%d" % (code, len(conns)))
        for conn in conns:
            asyncio.ensure_future(conn.ws.close(code, reason))
        out("ok %d" % len(conns))
    elif cmd == "conns":
        out("ok %d" % len(CONNS))
    elif cmd == "forget":
        n = len(STORE)
        STORE.clear()
        event("forget results=%d" % n)
        out("ok %d" % n)
    elif cmd == "send":
        try:
            msg = json.loads(rest)
        except ValueError as e:
            out("err not JSON: %s" % e)
            return
        await broadcast(msg)
        out("ok")
    elif cmd == "status":
        await broadcast(status_msg())
        out("ok")
    elif cmd == "quit":
        out("ok")
        if not STOP.done():
            STOP.set_result("quit")
    else:
        out("err unknown command %s" % cmd)


def start_control(loop):
    fd = sys.stdin.fileno()
    try:
        os.set_blocking(fd, False)
    except OSError:
        return
    buf = bytearray()

    def out(text):
        print(text, flush=True)

    def readable():
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)   # EOF changes nothing
            return
        buf.extend(data)
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line = buf[:nl].decode("utf-8", "replace")
            del buf[:nl + 1]
            asyncio.ensure_future(control(line, out))
    try:
        loop.add_reader(fd, readable)
    except (OSError, ValueError, PermissionError):
        pass  # e.g. stdin is a regular file: no control channel


async def main():
    global STOP
    loop = asyncio.get_running_loop()
    STOP = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda s=sig: STOP.done() or STOP.set_result(s))
    ping = ARGS.ping_interval if ARGS.ping_interval > 0 else None
    server = await websockets.serve(handler, "127.0.0.1", ARGS.port, ping_interval=ping, ping_timeout=ping,
                                    close_timeout=2, max_size=64 * 1024 * 1024)
    port = server.sockets[0].getsockname()[1]
    event("start port=%d pid=%d token=%s" % (port, os.getpid(), "set" if ARGS.token is not None else "none"))
    print("listening %d" % port, flush=True)
    start_control(loop)
    status = asyncio.ensure_future(status_loop()) if ARGS.status_interval > 0 else None
    why = await STOP
    name = signal.Signals(why).name if isinstance(why, int) else why
    event("signal %s: closing %d connection(s) with 1001" % (name, len(CONNS)))
    if status:
        status.cancel()
    for task in list(TASKS):
        task.cancel()
    closing = [c.ws.close(1001, "going away") for c in list(CONNS.values())]
    if closing:
        try:
            await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), 5)
        except asyncio.TimeoutError:
            pass
    server.close()
    await server.wait_closed()
    event("exit")


def parse():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default=None, help="required hello token (default: any token is accepted)")
    ap.add_argument("--instance", default="exai")
    ap.add_argument("--log", default=None)
    ap.add_argument("--ack-timeout", type=float, default=300.0, help="the timeout a call_tool_ack announces")
    ap.add_argument("--progress-interval", type=float, default=1.0)
    ap.add_argument("--store-ttl", type=float, default=300.0)
    ap.add_argument("--hello-timeout", type=float, default=10.0)
    ap.add_argument("--hello-delay", type=float, default=0.0)
    ap.add_argument("--retry-after", type=float, default=1, help="details.retry_after_secs of the in-progress answer")
    ap.add_argument("--status-interval", type=float, default=0.0)
    ap.add_argument("--send-unknown", action="store_true")
    ap.add_argument("--fresh-session-ids", action="store_true")
    ap.add_argument("--ok-false", action="store_true")
    ap.add_argument("--ack-all", action="store_true")
    ap.add_argument("--extra-tool", action="append", default=[])
    ap.add_argument("--chunk-interval", type=float, default=0.05)
    ap.add_argument("--ping-interval", type=float, default=0.0, help="websockets keepalive pings; 0: off")
    a = ap.parse_args()
    if a.retry_after == int(a.retry_after):
        a.retry_after = int(a.retry_after)
    if a.ack_timeout == int(a.ack_timeout):
        a.ack_timeout = int(a.ack_timeout)
    return a


if __name__ == "__main__":
    ARGS = parse()
    if ARGS.log:
        LOG = open(ARGS.log, "a", encoding="utf-8")
    try:
        asyncio.run(main())
    except OSError as e:
        print("cannot listen: %s" % e, file=sys.stderr, flush=True)
        sys.exit(1)
    sys.exit(0)
