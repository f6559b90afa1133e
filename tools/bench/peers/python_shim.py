#!/usr/bin/env python3
"""peer-python: a websockets line bridge.

The stdio <-> WebSocket shim as people write it today with the `websockets`
package: stdin lines go to the daemon, the daemon's messages go to stdout,
one per line, and the connection is retried forever (0.25 s, x1.5, capped at
5 s). Lines read while the daemon is down wait in an asyncio.Queue and are
sent once it is back. It exits when stdin closes.

    python3 python_shim.py ws://127.0.0.1:8079

Used by tools/bench/bench.c as the "peer-python" contender.
"""
import asyncio
import sys

import websockets

URL = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8079"
MAX_MESSAGE = 256 * 1024 * 1024   # big tool results: don't let the 1 MiB default cut them
current = None                    # the open connection, if any


def log(text):
    print(f"python_shim: {text}", file=sys.stderr, flush=True)


async def read_stdin(queue):
    """Forward stdin lines into the queue; return at EOF."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_MESSAGE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        line = line.rstrip(b"\r\n")
        if line:
            await queue.put(line.decode())


async def send_queued(ws, queue):
    while True:
        line = await queue.get()
        await ws.send(line)


async def bridge(queue):
    global current
    out = sys.stdout.buffer
    delay = 0.25
    while True:
        try:
            async with websockets.connect(URL, max_size=MAX_MESSAGE) as ws:
                log(f"connected to {URL}")
                current = ws
                delay = 0.25
                sender = asyncio.create_task(send_queued(ws, queue))
                try:
                    async for message in ws:
                        if isinstance(message, str):
                            message = message.encode()
                        out.write(message + b"\n")
                        out.flush()
                finally:
                    current = None
                    sender.cancel()
            log("connection closed")
        except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as e:
            log(f"connection failed: {e!r}")
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 5.0)


async def main():
    queue = asyncio.Queue()
    task = asyncio.create_task(bridge(queue))
    await read_stdin(queue)
    if current is not None:   # the client is gone: say goodbye, then stop
        await current.close()
    task.cancel()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
