#!/usr/bin/python3
"""A small HTTP CONNECT proxy for the proxy tests, standard library only.

tinyproxy 1.11 answers a CONNECT to a port where nothing listens with
"HTTP/1.1 500 Unable to connect". Squid, nginx-based and most corporate
proxies answer "502 Bad Gateway" there. This one does that:

    CONNECT host:port    -> "HTTP/1.1 200 Connection established", then a
                            byte-for-byte tunnel until either side closes
    upstream refused     -> "HTTP/1.1 502 Bad Gateway"
    not CONNECT          -> "HTTP/1.1 405 Method Not Allowed"
    BasicAuth set, wrong -> "HTTP/1.1 407 Proxy Authentication Required"

Every request is logged, one line each, to the log file:
    CONNECT host:port -> STATUS
In-process (ConnectProxy(...).start() / .stop()) or standalone:
    tests/proxy/connect_proxy.py --port N [--log FILE] [--auth user:pass]
"""
import argparse
import base64
import os
import select
import socket
import sys
import threading
import time


class ConnectProxy:
    def __init__(self, port=0, log_path=None, auth=None, connect_timeout=2.0):
        self.log_path = log_path
        self.auth = auth                      # "user:pass" or None
        self.connect_timeout = connect_timeout
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.open = set()                     # every socket we hold, closed by stop()
        self.stopping = False
        self.thread = None
        if log_path and os.path.exists(log_path):
            os.unlink(log_path)

    def log(self, line):
        if not self.log_path:
            return
        with self.lock, open(self.log_path, "a") as f:
            f.write("%.3f %s\n" % (time.time(), line))

    def start(self):
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.open)
            self.open.clear()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def _hold(self, s):
        with self.lock:
            self.open.add(s)

    def _drop(self, s):
        with self.lock:
            self.open.discard(s)
        try:
            s.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self._hold(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        up = None
        try:
            c.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 16384:
                chunk = c.recv(4096)
                if not chunk:
                    return
                head += chunk
            head, rest = head.split(b"\r\n\r\n", 1) if b"\r\n\r\n" in head else (head, b"")
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split()
            if len(parts) != 3 or parts[0] != "CONNECT":
                self.log("%s -> 405" % lines[0][:200])
                c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            target = parts[1]
            if self.auth is not None:
                want = "Basic " + base64.b64encode(self.auth.encode()).decode()
                got = [ln.split(":", 1)[1].strip() for ln in lines[1:]
                       if ln.lower().startswith("proxy-authorization:")]
                if got != [want]:
                    self.log("CONNECT %s -> 407" % target)
                    c.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                              b"Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
            host, _, port = target.rpartition(":")
            host = host.strip("[]")
            try:
                up = socket.create_connection((host, int(port)), self.connect_timeout)
            except (OSError, ValueError) as e:
                self.log("CONNECT %s -> 502 (%s)" % (target, e))
                c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            self._hold(up)
            self.log("CONNECT %s -> 200" % target)
            c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                up.sendall(rest)
            c.settimeout(None)
            up.settimeout(None)
            self._relay(c, up)
        except OSError:
            pass
        finally:
            self._drop(c)
            if up is not None:
                self._drop(up)

    def _relay(self, a, b):
        peers = {a: b, b: a}
        while not self.stopping:
            try:
                r, _, _ = select.select([a, b], [], [], 0.5)
            except (OSError, ValueError):
                return
            for s in r:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    return                    # either side closed: close both
                try:
                    peers[s].sendall(data)
                except OSError:
                    return


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log")
    ap.add_argument("--auth")
    a = ap.parse_args()
    p = ConnectProxy(a.port, a.log, a.auth).start()
    print("listening %d" % p.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        p.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
