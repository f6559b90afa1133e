#!/usr/bin/python3
"""A tiny JSON-RPC daemon built on the Python `websockets` library (Debian's
python3-websockets, 10.x), serving TLS itself or listening on a Unix socket;
the peer of tests/tls/transports.py.

    echo_daemon.py (--port N | --unix PATH) [--cert PEM --key PEM]
                   [--max-tls 1.1] [--instance NAME] [--log FILE]

--max-tls 1.1 serves TLS 1.0 and 1.1 only (ciphers at SECLEVEL=0), to check
that a client refuses anything older than TLS 1.2.
Prints "listening PORT" (or "listening PATH") on stdout once it accepts.
Every request gets an answer at once:
    initialize  an MCP InitializeResult, serverInfo {"name": "echo-daemon",
                "version": INSTANCE}, the client's protocolVersion
    ping        {}
    anything    {"echo": PARAMS (null when absent), "instance": INSTANCE,
                 "path": REQUEST_PATH}
Notifications and responses are only logged. Log lines (--log, appended,
flushed at once): "start instance=I pid=P", "open conn=N path=P host=H",
"recv conn=N JSON", "close conn=N code=C". SIGTERM/SIGINT: exit 0."""
import argparse
import asyncio
import json
import os
import signal
import ssl
import sys

import websockets


def main():
    ap = argparse.ArgumentParser()
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int)
    where.add_argument("--unix")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--max-tls", choices=["1.1"])
    ap.add_argument("--instance", default=str(os.getpid()))
    ap.add_argument("--log")
    args = ap.parse_args()
    logf = open(args.log, "a", buffering=1) if args.log else None

    def log(text):
        if logf:
            logf.write(text + "\n")

    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if args.max_tls:
            import warnings
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        else:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(args.cert, args.key)
    conns = [0]

    async def handler(ws, *_):
        conns[0] += 1
        n = conns[0]
        path = ws.path
        log("open conn=%d path=%s host=%s" % (n, path, ws.request_headers.get("Host", "")))
        try:
            async for raw in ws:
                if isinstance(raw, bytes):
                    raw = raw.decode("utf-8", "replace")
                log("recv conn=%d %s" % (n, raw.replace("\n", "\\n")))
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(msg, dict) or "method" not in msg or "id" not in msg:
                    continue
                method, params = msg["method"], msg.get("params")
                if method == "initialize":
                    pv = params.get("protocolVersion", "2025-06-18") if isinstance(params, dict) else "2025-06-18"
                    result = {"protocolVersion": pv, "capabilities": {"tools": {}},
                              "serverInfo": {"name": "echo-daemon", "version": args.instance}}
                elif method == "ping":
                    result = {}
                else:
                    result = {"echo": params, "instance": args.instance, "path": path}
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}))
        except websockets.ConnectionClosed:
            pass
        log("close conn=%d code=%s" % (n, ws.close_code))

    async def run():
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        opts = dict(ssl=ctx, max_size=None, ping_interval=None, compression=None)
        if args.unix:
            server = await websockets.unix_serve(handler, args.unix, **opts)
            where = args.unix
        else:
            server = await websockets.serve(handler, "127.0.0.1", args.port, **opts)
            where = str(server.sockets[0].getsockname()[1])
        log("start instance=%s pid=%d" % (args.instance, os.getpid()))
        print("listening " + where, flush=True)
        await stop
        server.close()
        await server.wait_closed()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
