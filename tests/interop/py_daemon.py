#!/usr/bin/python3
"""A WebSocket JSON-RPC daemon written with the `websockets` library (asyncio
API, v10.4), the way Python MCP daemons usually are: `websockets.serve` with
its own keepalive pings, no subprotocol selected, one MCP session per
connection. Used by tests/interop/peers_interop.py.

    py_daemon.py [--port N] [--instance NAME] [--ping-interval S]
                 [--hello] [--hello-token TOKEN] [--require-initialized]
                 [--log FILE]

Prints "listening N" when ready. Behaves like a strict MCP server (Python MCP
SDK): a request other than initialize/ping before initialize gets -32002
"Server not initialized" (with --require-initialized, also before the
notifications/initialized notification, as the SDK really does). Methods:
initialize, ping, tools/list, tools/call (tool "echo"), whoami, sleep {ms},
logging/setLevel, getlevel. With --hello the first message must be
{"op":"hello",...} (carrying "token" when --hello-token is given); it is
answered {"ok":true}, anything else {"ok":false,"error":...} and close 1008.
SIGTERM/SIGINT: every connection is closed with 1001 (going away), then exit 0.

--log FILE appends one line per received message, "recv <json>", and one per
event, "event <what> ..."; several lives of the daemon may share one file."""
import argparse
import asyncio
import json
import os
import signal
import sys
import time

import websockets
import websockets.exceptions
from websockets.legacy.server import WebSocketServerProtocol

PROTOCOL_VERSION = "2025-06-18"

ARGS = None
LOG = None
CONNS = set()
NEXT_CONN = [1]


def log(line):
    if LOG is not None:
        LOG.write("%.3f %s\n" % (time.time(), line) if line.startswith("event ") else line + "\n")
        LOG.flush()


def event(text):
    log("event " + text)


class Protocol(WebSocketServerProtocol):
    """Logs the keepalive pings websockets sends and the pongs that answer them."""

    conn_id = 0

    async def ping(self, data=None):
        waiter = await super().ping(data)
        cid = self.conn_id
        t0 = time.monotonic()
        event("ping conn=%d" % cid)

        def done(fut):
            if fut.cancelled() or fut.exception() is not None:
                event("ping-unanswered conn=%d" % cid)
            else:
                event("pong conn=%d after=%.1fms" % (cid, (time.monotonic() - t0) * 1000))
        waiter.add_done_callback(done)
        return waiter


def result(id_, res):
    return {"jsonrpc": "2.0", "id": id_, "result": res}


def error(id_, code, message):
    return {"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message}}


class Session:
    """One MCP session: exactly one WebSocket connection."""

    def __init__(self, ws, cid):
        self.ws = ws
        self.cid = cid
        self.initialize_seen = False
        self.initialized_notified = False
        self.level = None
        self.tasks = set()

    async def send(self, msg):
        await self.ws.send(json.dumps(msg, ensure_ascii=False))

    def ready(self):
        if ARGS.require_initialized:
            return self.initialize_seen and self.initialized_notified
        return self.initialize_seen

    async def handle(self, msg):
        """Handles one message in arrival order; returns nothing. Session state
        changes here before the next message is read, like the SDK."""
        if isinstance(msg, list):
            await self.send(error(None, -32600, "batches are not supported"))
            return
        if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
            await self.send(error(None, -32600, "Invalid Request"))
            return
        method = msg.get("method")
        if method is None:
            event("response conn=%d id=%s" % (self.cid, json.dumps(msg.get("id"))))
            return
        if "id" not in msg:
            if method == "notifications/initialized":
                self.initialized_notified = True
                event("initialized conn=%d" % self.cid)
            return
        id_ = msg["id"]
        params = msg.get("params") or {}
        if method not in ("initialize", "ping") and not self.ready():
            event("not-initialized conn=%d method=%s" % (self.cid, method))
            await self.send(error(id_, -32002, "Server not initialized"))
            return
        if method == "initialize":
            self.initialize_seen = True
            event("initialize conn=%d id=%s client=%s" % (self.cid, json.dumps(id_), json.dumps(params.get("clientInfo"))))
            await self.send(result(id_, {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {"tools": {"listChanged": True}, "logging": {}},
                "serverInfo": {"name": "py-daemon", "version": ARGS.instance},
            }))
        elif method == "ping":
            await self.send(result(id_, {}))
        elif method == "tools/list":
            await self.send(result(id_, {"tools": [{
                "name": "echo",
                "description": "Returns its text argument.",
                "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
            }]}))
        elif method == "tools/call":
            if params.get("name") != "echo":
                await self.send(error(id_, -32602, "Unknown tool: %s" % params.get("name")))
                return
            text = (params.get("arguments") or {}).get("text")
            await self.send(result(id_, {"content": [{"type": "text", "text": text}]}))
        elif method == "whoami":
            await self.send(result(id_, {"instance": ARGS.instance}))
        elif method == "sleep":
            ms = params.get("ms", 0)

            async def later():
                await asyncio.sleep(ms / 1000.0)
                try:
                    await self.send(result(id_, {"slept": ms}))
                except websockets.exceptions.ConnectionClosed:
                    pass
            task = asyncio.ensure_future(later())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif method == "logging/setLevel":
            self.level = params.get("level")
            event("setlevel conn=%d level=%s" % (self.cid, self.level))
            await self.send(result(id_, {}))
        elif method == "getlevel":
            await self.send(result(id_, {"level": self.level}))
        else:
            await self.send(error(id_, -32601, "Method not found: %s" % method))


async def hello(ws, cid):
    """True when the first message is an acceptable hello (answered ok:true)."""
    raw = await ws.recv()
    log("recv " + (raw if isinstance(raw, str) else raw.decode("utf-8", "replace")))
    try:
        msg = json.loads(raw)
    except ValueError:
        msg = None
    why = None
    if not isinstance(msg, dict) or msg.get("op") != "hello":
        why = "hello required"
    elif ARGS.hello_token is not None and msg.get("token") != ARGS.hello_token:
        why = "bad token"
    if why is None:
        event("hello-ok conn=%d" % cid)
        await ws.send(json.dumps({"ok": True}))
        return True
    event("hello-refused conn=%d why=%s" % (cid, why))
    await ws.send(json.dumps({"ok": False, "error": why}))
    await ws.close(1008, why)
    return False


async def handler(ws, path=None):
    cid = NEXT_CONN[0]
    NEXT_CONN[0] += 1
    ws.conn_id = cid
    CONNS.add(ws)
    event("open conn=%d peer=%s path=%s subprotocol=%s" % (cid, ws.remote_address[:2] if ws.remote_address else None,
                                                        ws.path, ws.subprotocol))
    session = Session(ws, cid)
    try:
        if ARGS.hello and not await hello(ws, cid):
            return
        async for raw in ws:
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            log("recv " + text)
            try:
                msg = json.loads(text)
            except ValueError:
                await session.send(error(None, -32700, "Parse error"))
                continue
            await session.handle(msg)
    except websockets.exceptions.ConnectionClosed:
        pass
    finally:
        CONNS.discard(ws)
        for task in list(session.tasks):
            task.cancel()
        rcvd = ws.close_rcvd
        sent = ws.close_sent
        event("close conn=%d sent=%s rcvd=%s" % (cid, sent.code if sent else None,
                                                 ("%d %s" % (rcvd.code, rcvd.reason)).strip() if rcvd else None))


async def main():
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda s=sig: stop.done() or stop.set_result(s))
    ping = ARGS.ping_interval if ARGS.ping_interval > 0 else None
    server = await websockets.serve(handler, "127.0.0.1", ARGS.port, create_protocol=Protocol,
                                    ping_interval=ping, ping_timeout=ping, close_timeout=2,
                                    max_size=64 * 1024 * 1024)
    port = server.sockets[0].getsockname()[1]
    event("start instance=%s port=%d pid=%d" % (ARGS.instance, port, os.getpid()))
    print("listening %d" % port, flush=True)
    sig = await stop
    event("signal %s: closing %d connection(s) with 1001" % (signal.Signals(sig).name, len(CONNS)))
    closing = [ws.close(1001, "going away") for ws in list(CONNS)]
    if closing:
        await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), 5)
    server.close()
    await server.wait_closed()
    event("exit instance=%s" % ARGS.instance)


def parse():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--instance", default="py")
    ap.add_argument("--ping-interval", type=float, default=0.5)
    ap.add_argument("--hello", action="store_true")
    ap.add_argument("--hello-token", default=None)
    ap.add_argument("--require-initialized", action="store_true")
    ap.add_argument("--log", default=None)
    return ap.parse_args()


if __name__ == "__main__":
    ARGS = parse()
    if ARGS.hello_token is not None:
        ARGS.hello = True
    if ARGS.log:
        LOG = open(ARGS.log, "a", encoding="utf-8")
    try:
        asyncio.run(main())
    except OSError as e:
        print("cannot listen: %s" % e, file=sys.stderr, flush=True)
        sys.exit(1)
    sys.exit(0)
