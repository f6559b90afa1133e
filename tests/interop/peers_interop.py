#!/usr/bin/python3
"""Interop tests: the real build/alwaysup between a scripted MCP client on its
stdio and real peers: a daemon written with the Python `websockets` library
(tests/interop/py_daemon.py, strict MCP sessions, its own keepalive pings) and
nginx as a WebSocket reverse proxy in front of it.

    /usr/bin/python3 tests/interop/peers_interop.py [-j N] [-k REGEX] [--list]

Prints one line per scenario (failures listed under it), the measured recovery
times, and ends with "N passed, M failed" (checks). Exit status 1 on failure.
Logs: build/test-logs/interop/ (nginx's files in build/test-logs/interop/nginx/).
Environment: ALWAYSUP_BIN (the shim), ALWAYSUP_SLOW (stretch every deadline),
CI=true (nginx being unusable is a failure instead of a skip)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import harness  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "tests", "tls"))
import tlsnginx  # noqa: E402
from harness import SLOW, Checks, PeerDaemon, Shim, Skip, free_port, is_sdk_id, read_text, run_scenarios, scenario_args, summary  # noqa: E402

LOGDIR = os.path.join(ROOT, "build", "test-logs", "interop")
os.makedirs(LOGDIR, exist_ok=True)
harness.LOGDIR = LOGDIR            # Shim writes its stderr log there: <name>.shim.log
DAEMON = os.path.join(HERE, "py_daemon.py")
# the daemon needs the `websockets` package: Debian's python3-websockets
DAEMON_PY = os.environ.get("PY_DAEMON_PYTHON") or ("/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable)
TOTAL_BUDGET = 55.0 * SLOW         # the whole run, watchdog included

INIT_PARAMS = {"protocolVersion": "2025-06-18", "capabilities": {"roots": {"listChanged": True}},
               "clientInfo": {"name": "interop-client", "version": "1.0"}}
UTF8_TEXT = "h\u00e9llo \u2603 \u65e5\u672c\u8a9e \U0001F600 \u0645\u0631\u062d\u0628\u0627"

SCENARIOS = []
MEASURED = []          # (label, text), printed before the summary
MEASURED_LOCK = threading.Lock()
PROCS = []             # every child we start, for the watchdog
PROCS_LOCK = threading.Lock()


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


def measured(label, seconds):
    with MEASURED_LOCK:
        MEASURED.append((label, "%.0f ms" % (seconds * 1000)))


def track(proc):
    with PROCS_LOCK:
        PROCS.append(proc)
    return proc


# ---------------------------------------------------------------- peers
class PyDaemon(PeerDaemon):
    """tests/interop/py_daemon.py on 127.0.0.1, restartable on the same port."""

    def __init__(self, name, port=None, args=(), instance="A", start=True):
        super().__init__("py_daemon")
        self.name = name
        self.log_path = os.path.join(LOGDIR, name + ".daemon.log")
        self.err_path = os.path.join(LOGDIR, name + ".daemon.stderr")
        for p in (self.log_path, self.err_path):
            if os.path.exists(p):
                os.unlink(p)
        self.port = port or free_port()
        self.args = list(args)
        self.instance = instance
        if start:
            self.start()

    def start(self, instance=None, timeout=10.0):
        if instance:
            self.instance = instance
        cmd = [DAEMON_PY, DAEMON, "--port", str(self.port), "--instance", self.instance, "--log", self.log_path] + self.args
        # the same port again: a start while it is still taken is retried until the timeout
        return self.listen(cmd, timeout * SLOW, err_path=self.err_path, stdin=subprocess.DEVNULL)

    def spawned(self, proc):
        track(proc)                   # the watchdog kills every child, a start still waiting included

    def url(self, path="/"):
        return "ws://127.0.0.1:%d%s" % (self.port, path)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def term(self, timeout=5.0):
        """SIGTERM; returns (exit status or None, seconds taken)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            rc = None
            self.kill()
        took = time.monotonic() - t0
        self.proc.stdout.close()
        return rc, took

    def stop(self):
        if self.proc:
            self.kill()

    def log(self):
        return read_text(self.log_path)

    def lives(self):
        """[(instance, [("recv", msg) | ("event", text)])] in order, one per start."""
        out = []
        for line in self.log().splitlines():
            if line.startswith("recv "):
                try:
                    item = ("recv", json.loads(line[5:]))
                except ValueError:
                    item = ("recv", line[5:])
            else:
                parts = line.split(" ", 2)
                if len(parts) < 3 or parts[1] != "event":
                    continue
                item = ("event", parts[2])
                m = re.match(r"start instance=(\S+)", parts[2])
                if m:
                    out.append((m.group(1), []))
            if out:
                out[-1][1].append(item)
        return out

    def life(self, instance):
        for inst, items in self.lives():
            if inst == instance:
                return items
        return []


def received(items):
    return [m for kind, m in items if kind == "recv"]


def events(items, prefix=""):
    return [e for kind, e in items if kind == "event" and e.startswith(prefix)]



# ---------------------------------------------------------------- client helpers
def new_shim(name, url, *args):
    """harness.Shim with a fresh state directory (the shim remembers
    InitializeResults in $XDG_STATE_HOME, which harness puts under LOGDIR)."""
    shutil.rmtree(os.path.join(LOGDIR, "state", name), ignore_errors=True)
    return Shim(name, url, *args)


def is_error(m, code=-32000):
    return isinstance(m, dict) and isinstance(m.get("error"), dict) and m["error"].get("code") == code


def wait_log(s, pattern, timeout=5.0, count=1):
    """Until the shim's log has `count` lines matching pattern."""
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        if len(re.findall(pattern, s.log())) >= count:
            return True
        if s.proc.poll() is not None:
            return len(re.findall(pattern, s.log())) >= count
        time.sleep(0.01)
    return False


def started(t, s):
    """False (and the reason noted) when the shim exited right away, e.g. it
    does not know one of the flags yet."""
    time.sleep(0.15)
    if s.proc.poll() is None:
        return True
    t.check(False, "%s is running (it exited with %s: %s)" % (s.name, s.proc.returncode, s.log().strip()[-300:]))
    return False


def alive(t, s):
    return t.check(s.proc.poll() is None, "%s still running" % s.name)


def jsonrpc_only(t, s):
    """Nothing that is not JSON-RPC 2.0 (a hello ack, say) reached the client."""
    with s.lock:
        bad = [m for m in s.all if not (isinstance(m, dict) and m.get("jsonrpc") == "2.0")]
    t.check(not bad, "%s: only JSON-RPC 2.0 messages on stdout (got %r)" % (s.name, bad[:2]))


def list_changed(s):
    with s.lock:
        return [m for m in s.all if isinstance(m, dict) and m.get("method") == "notifications/tools/list_changed"]


def mcp_start(t, s, instance, level="debug"):
    """initialize + notifications/initialized (+ logging/setLevel); True when it worked."""
    i = s.request("initialize", INIT_PARAMS)
    m = s.wait_for(i, 5)
    ok = t.check(m is not None and "result" in m, "initialize answered: %r" % (m,))
    if ok:
        r = m["result"]
        t.check(r.get("protocolVersion") == "2025-06-18", "protocolVersion 2025-06-18")
        t.check(r.get("serverInfo") == {"name": "py-daemon", "version": instance},
                "serverInfo names py-daemon %s: %r" % (instance, r.get("serverInfo")))
        t.check(r.get("capabilities") == {"tools": {"listChanged": True}, "logging": {}}, "capabilities passed through")
    s.notify("notifications/initialized")
    if level:
        m = s.wait_for(s.request("logging/setLevel", {"level": level}), 5)
        ok = t.check(m is not None and m.get("result") == {}, "logging/setLevel answered: %r" % (m,)) and ok
    return ok


def echo(s, text, timeout=5.0):
    i = s.request("tools/call", {"name": "echo", "arguments": {"text": text}})
    return s.wait_for(i, timeout)


def echo_ok(m, text):
    return isinstance(m, dict) and m.get("result") == {"content": [{"type": "text", "text": text}]}


def call(s, method, params=None, timeout=5.0):
    return s.wait_for(s.request(method, params), timeout)


def restart_and_call(t, s, d, instance, label, text="after restart"):
    """Restarts the (already stopped) daemon and makes a tools/call the moment it
    listens; checks it succeeded and records daemon listening -> answer."""
    d.start(instance=instance)
    t0 = d.listening_at
    m = echo(s, text, 10)
    took = time.monotonic() - t0
    ok = t.check(echo_ok(m, text), "tools/call on the restarted daemon succeeds without the client re-initializing: %r" % (m,))
    if ok:
        measured(label, took)
    return ok


def check_replay(t, items, s, level="debug"):
    """The messages the shim sent to a new daemon life before the client's own:
    initialize (own integer id, same params), notifications/initialized, setLevel.
    The shim's ids are plain JSON integers, as SDK clients send, and never equal
    the id of a client request this daemon life also received (those were
    pending when the shim chose its ids)."""
    msgs = [m for m in received(items) if isinstance(m, dict) and "jsonrpc" in m]   # not the hello
    methods = [m.get("method") for m in msgs]
    shim_methods = ("initialize", "logging/setLevel", "resources/subscribe")
    client_ids = {json.dumps(m.get("id")) for m in msgs if "id" in m and m.get("method") not in shim_methods}

    def own_id(m):
        i = m.get("id")
        return is_sdk_id(i) and json.dumps(i) not in client_ids
    t.check(methods[:1] == ["initialize"], "first message to the new daemon is initialize (got %r)" % (methods[:4],))
    if methods[:1] == ["initialize"]:
        first = msgs[0]
        t.check(own_id(first), "replayed initialize has the shim's own integer id (%r), not a pending client's" % (first.get("id"),))
        t.check(first.get("params") == INIT_PARAMS, "replayed initialize carries the client's params: %r" % (first.get("params"),))
    try:
        k_init = methods.index("notifications/initialized")
        k_level = methods.index("logging/setLevel")
        k_call = methods.index("tools/call")
        t.check(0 < k_init < k_call, "notifications/initialized sent after initialize, before the client's call")
        t.check(k_level < k_call and msgs[k_level].get("params") == {"level": level},
                "logging/setLevel %s replayed before the client's call" % level)
        t.check(own_id(msgs[k_level]), "replayed setLevel has the shim's own integer id (%r)" % (msgs[k_level].get("id"),))
    except ValueError:
        t.check(False, "new daemon received initialized, setLevel and the call (got %r)" % (methods,))
    t.check(not events(items, "not-initialized"), "new daemon never answered 'Server not initialized'")


# ---------------------------------------------------------------- scenarios
@scenario
def normal_session(t):
    d = PyDaemon("py-normal", instance="A")
    s = new_shim("py-normal", d.url(), "--log-level", "debug")
    try:
        if not started(t, s):
            return
        mcp_start(t, s, "A", level=None)
        m = call(s, "tools/list")
        tools = m.get("result", {}).get("tools") if isinstance(m, dict) else None
        t.check(isinstance(tools, list) and [x.get("name") for x in tools] == ["echo"], "tools/list returns the echo tool: %r" % (m,))
        m = echo(s, UTF8_TEXT)
        t.check(echo_ok(m, UTF8_TEXT), "tools/call echo round-trips multi-byte UTF-8: %r" % (m,))
        t.check(b"\\u" not in json.dumps(m, ensure_ascii=False).encode() if m else False, "answer arrived as raw UTF-8")
        idle_from = len(events(d.life("A"), "pong conn=1"))
        time.sleep(2.5)
        items = d.life("A")
        pongs = len(events(items, "pong conn=1")) - idle_from
        t.check(pongs >= 3, "daemon's 0.5 s keepalive pings answered by the shim while idle (%d pongs in 2.5 s)" % pongs)
        t.check(not events(items, "ping-unanswered"), "no daemon ping went unanswered")
        t.check(len(events(items, "open ")) == 1 and not events(items, "close "), "still the one connection after the idle time")
        m = call(s, "whoami")
        t.check(m is not None and m.get("result") == {"instance": "A"}, "whoami after idle: same daemon: %r" % (m,))
        t.check("lost" not in s.log(), "shim never lost the connection")
        t.check(not list_changed(s), "no list_changed without a reconnect")
        jsonrpc_only(t, s)
        s.check_clean(t)
        s.close_stdin()
        t.check(s.wait_exit(3) == 0, "exit 0 on stdin EOF")
        time.sleep(0.2)
        closes = events(d.life("A"), "close conn=1")
        t.check(closes and "sent=1000" in closes[0] and "rcvd=1000" in closes[0], "clean close 1000 on exit: %r" % (closes,))
    finally:
        s.stop()
        d.stop()


@scenario
def session_continuity_sigkill(t):
    d = PyDaemon("py-continuity", instance="A")
    s = new_shim("py-continuity", d.url(), "--log-level", "debug")
    try:
        if not started(t, s):
            return
        mcp_start(t, s, "A")
        m = call(s, "getlevel")
        t.check(m is not None and m.get("result") == {"level": "debug"}, "getlevel on the first daemon: debug")
        t.check(echo_ok(echo(s, "before"), "before"), "tools/call before the restart")
        t.check(not list_changed(s), "no list_changed before the restart")
        d.kill()
        t.check(wait_log(s, r"connection to \S+ lost", 5), "shim noticed the SIGKILL")
        time.sleep(0.3)
        restart_and_call(t, s, d, "B", "SIGKILL, restart: daemon listening -> first tools/call answered")
        m = call(s, "getlevel")
        t.check(m is not None and m.get("result") == {"level": "debug"}, "getlevel on the new daemon: debug (replayed): %r" % (m,))
        m = call(s, "whoami")
        t.check(m is not None and m.get("result") == {"instance": "B"}, "answered by the new daemon: %r" % (m,))
        t.check(s.wait_until(lambda x: isinstance(x, dict) and x.get("method") == "notifications/tools/list_changed", 3) is not None,
                "client told notifications/tools/list_changed after the reconnect")
        t.check(len(list_changed(s)) == 1, "exactly one list_changed (%d)" % len(list_changed(s)))
        check_replay(t, d.life("B"), s)
        t.check(not re.search(r"no request with that id", s.log()), "the shim expected every answer it got")
        jsonrpc_only(t, s)
        alive(t, s)
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def graceful_shutdown_1001(t):
    d = PyDaemon("py-sigterm", instance="A")
    s = new_shim("py-sigterm", d.url(), "--log-level", "debug")
    try:
        if not started(t, s):
            return
        mcp_start(t, s, "A")
        t.check(echo_ok(echo(s, "before"), "before"), "tools/call before the shutdown")
        rc, took = d.term()
        t.check(rc == 0, "daemon exited 0 on SIGTERM (%r)" % (rc,))
        t.check(took < 3 * SLOW, "daemon's graceful close took %.2f s" % took)
        closes = events(d.life("A"), "close conn=1")
        t.check(closes and "sent=1001" in closes[0], "daemon sent close 1001: %r" % (closes,))
        t.check(closes and "rcvd=None" not in closes[0], "shim answered the close frame: %r" % (closes,))
        if closes and "rcvd=1001" not in closes[0]:
            t.note("note: shim answered close 1001 with %s" % closes[0].split("rcvd=")[-1])
        t.check(wait_log(s, r"1001", 3), "shim's log mentions 1001")
        time.sleep(0.3)
        restart_and_call(t, s, d, "B", "SIGTERM (close 1001), restart: daemon listening -> first tools/call answered")
        m = call(s, "getlevel")
        t.check(m is not None and m.get("result") == {"level": "debug"}, "session replayed after 1001: getlevel %r" % (m,))
        t.check(s.wait_until(lambda x: isinstance(x, dict) and x.get("method") == "notifications/tools/list_changed", 3) is not None,
                "list_changed after the reconnect")
        check_replay(t, d.life("B"), s)
        jsonrpc_only(t, s)
        alive(t, s)
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def no_mcp_no_replay(t):
    d = PyDaemon("py-nomcp", instance="A")
    s = new_shim("py-nomcp", d.url(), "--no-mcp", "--log-level", "debug")
    try:
        if not started(t, s):
            return
        mcp_start(t, s, "A")
        t.check(echo_ok(echo(s, "before"), "before"), "tools/call before the restart")
        d.kill()
        t.check(wait_log(s, r"connection to \S+ lost", 5), "shim noticed the SIGKILL")
        time.sleep(0.3)
        d.start(instance="B")
        m = echo(s, "after", 10)
        t.check(is_error(m, -32002), "without replay the strict daemon answers -32002 Server not initialized: %r" % (m,))
        items = d.life("B")
        methods = [x.get("method") for x in received(items) if isinstance(x, dict)]
        t.check("initialize" not in methods and "logging/setLevel" not in methods and "notifications/initialized" not in methods,
                "--no-mcp: nothing replayed to the new daemon (got %r)" % (methods,))
        time.sleep(0.5)
        t.check(not list_changed(s), "--no-mcp: no list_changed injected")
        jsonrpc_only(t, s)
        alive(t, s)
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def hello_token_across_restart(t):
    d = PyDaemon("py-hello", instance="A", args=["--hello", "--hello-token", "s3cret"])
    s = new_shim("py-hello", d.url(), "--hello", '{"op":"hello","token":"s3cret"}', "--log-level", "debug")
    try:
        if not started(t, s):
            return
        mcp_start(t, s, "A")
        t.check(echo_ok(echo(s, "before"), "before"), "tools/call after the hello")
        d.kill()
        t.check(wait_log(s, r"connection to \S+ lost", 5), "shim noticed the SIGKILL")
        time.sleep(0.3)
        restart_and_call(t, s, d, "B", "hello + SIGKILL, restart: daemon listening -> first tools/call answered")
        m = call(s, "getlevel")
        t.check(m is not None and m.get("result") == {"level": "debug"}, "session replayed after the hello: %r" % (m,))
        check_replay(t, d.life("B"), s)
        for inst in ("A", "B"):
            items = d.life(inst)
            first = received(items)[:1]
            t.check(first == [{"op": "hello", "token": "s3cret"}], "daemon %s: the hello is the first message (%r)" % (inst, first))
            t.check(len(events(items, "hello-ok")) == 1 and not events(items, "hello-refused"), "daemon %s: hello accepted once" % inst)
        jsonrpc_only(t, s)
        alive(t, s)
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def hello_wrong_token(t):
    d = PyDaemon("py-hello-bad", instance="A", args=["--hello", "--hello-token", "s3cret"])
    s = new_shim("py-hello-bad", d.url(), "--hello", '{"op":"hello","token":"wrong"}', "--queue-timeout", "1",
             "--log-level", "debug")
    try:
        if not started(t, s):
            return
        t0 = time.monotonic()
        i = s.request("tools/list")
        m = s.wait_for(i, 4)
        took = time.monotonic() - t0
        t.check(is_error(m, -32000), "queued request gets the shim's -32000 after --queue-timeout 1: %r" % (m,))
        t.check(0.8 <= took <= 3 * SLOW, "answered after about 1 s (%.2f s)" % took)
        if is_error(m, -32000):
            t.check("hello" in m["error"]["message"].lower(), "the error tells the client the hello was refused: %r" % (m["error"]["message"],))
        time.sleep(0.5)
        items = d.life("A")
        refused = len(events(items, "hello-refused"))
        t.check(refused >= 2, "shim keeps retrying the hello (%d refused)" % refused)
        t.check(not events(items, "hello-ok"), "never accepted")
        rpc = [x for x in received(items) if not (isinstance(x, dict) and x.get("op") == "hello")]
        t.check(not rpc, "no client message reached the daemon before a hello was accepted (got %r)" % (rpc[:2],))
        jsonrpc_only(t, s)
        log = s.log()
        t.check(re.search(r"hello", log, re.I) is not None, "shim's log mentions the hello")
        t.check("bad token" in log, "shim's log gives the daemon's reason ('bad token')")
        alive(t, s)
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def safe_request_into_a_daemon_that_keeps_closing(t):
    # the daemon wants a hello the shim does not send: it closes after every first message,
    # so a re-sendable request (tools/list) must still get exactly one answer, soon
    d = PyDaemon("py-poison", instance="A", args=["--hello", "--hello-token", "s3cret"])
    s = new_shim("py-poison", d.url(), "--queue-timeout", "4", "--backoff-max", "0.5")
    try:
        if not started(t, s):
            return
        t0 = time.monotonic()
        i = s.request("tools/list")
        m = s.wait_for(i, 8)
        took = time.monotonic() - t0
        t.check(is_error(m, -32000), "a safe request re-sent into a closing daemon ends in an error: %r" % (m,))
        t.check(took < 4.5 * SLOW, "within the queue timeout at most (%.2f s)" % took)
        time.sleep(0.5)
        sent = [x for x in received(d.life("A")) if isinstance(x, dict) and x.get("method") == "tools/list"]
        t.check(1 <= len(sent) <= 3, "sent at most three times, not into every restart (%d)" % len(sent))
        alive(t, s)
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()


@scenario
def nginx_proxy_daemon_down_then_restart(t):
    dport = free_port()
    # --require-initialized: like the real Python MCP SDK, requests wait for notifications/initialized too
    d = PyDaemon("nginx-py", port=dport, instance="A", args=["--require-initialized"], start=False)
    try:
        ng = tlsnginx.Nginx("interop", dport, [], LOGDIR, track=track, plain=True)   # plain ws:// only
    except RuntimeError as e:
        raise Skip("nginx cannot run here: %s" % e)
    s = new_shim("nginx", ng.url("/mcp"), "--log-level", "debug")
    try:
        if not started(t, s):
            return
        i_init = s.request("initialize", INIT_PARAMS)
        t.check(wait_log(s, r"HTTP 502", 5), "shim's log shows nginx's HTTP 502 to the upgrade")
        t.check(wait_log(s, r"HTTP 502", 4, count=3), "shim keeps retrying through 502s")
        t.check(s.answers(i_init) == [], "queued initialize waits while the daemon is down")
        alive(t, s)
        d.start()
        t0 = d.listening_at
        m = s.wait_for(i_init, 10)
        took = time.monotonic() - t0
        if t.check(m is not None and m.get("result", {}).get("serverInfo", {}).get("version") == "A",
                   "queued initialize answered once the daemon starts behind nginx: %r" % (m,)):
            measured("nginx, daemon started late: listening -> queued initialize answered (backoff running)", took)
        s.notify("notifications/initialized")
        m = call(s, "logging/setLevel", {"level": "debug"})
        t.check(m is not None and m.get("result") == {}, "setLevel through nginx")
        t.check(echo_ok(echo(s, UTF8_TEXT), UTF8_TEXT), "tools/call through nginx (UTF-8)")
        pongs0 = len(events(d.life("A"), "pong"))
        time.sleep(1.2)
        t.check(len(events(d.life("A"), "pong")) - pongs0 >= 1, "daemon pings answered through nginx")
        d.kill()
        t.check(wait_log(s, r"connection to \S+ lost", 5), "shim noticed the daemon died behind nginx")
        n502 = len(re.findall(r"HTTP 502", s.log()))
        # the backoff was not reset (up < --healthy-after): the next attempt meets nginx's 502
        t.check(wait_log(s, r"HTTP 502", 4, count=n502 + 1), "502s while the daemon is down the second time")
        restart_and_call(t, s, d, "B", "nginx, SIGKILL mid-session, restart: listening -> first tools/call answered")
        m = call(s, "getlevel")
        t.check(m is not None and m.get("result") == {"level": "debug"}, "session replayed through nginx: getlevel %r" % (m,))
        m = call(s, "whoami")
        t.check(m is not None and m.get("result") == {"instance": "B"}, "new daemon behind nginx: %r" % (m,))
        t.check(s.wait_until(lambda x: isinstance(x, dict) and x.get("method") == "notifications/tools/list_changed", 3) is not None,
                "list_changed after the reconnect through nginx")
        check_replay(t, d.life("B"), s)
        acc = ng.access()
        t.check(re.search(r'"GET /mcp HTTP/1.1" 502 ', acc) is not None, "nginx access log has the 502s")
        t.check(re.search(r'"GET /mcp HTTP/1.1" 101 ', acc) is not None or "open conn=" in d.log(),
                "nginx upgraded the connection (101)")
        opens = [e for e in events(d.life("A") + d.life("B"), "open ")]
        t.check(opens and all("path=/mcp" in e for e in opens), "daemon saw the /mcp path through nginx")
        jsonrpc_only(t, s)
        alive(t, s)
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()
        ng.stop()


# ---------------------------------------------------------------- runner
def main():
    chosen, jobs = scenario_args(SCENARIOS, 8)
    if chosen is None:
        return 0
    if not os.access(harness.SHIM, os.X_OK):
        print("  FAIL %s is not built (run make)" % harness.SHIM)
        print("0 passed, 1 failed")
        return 1
    t_start = time.monotonic()

    def kill_children():
        with PROCS_LOCK:
            for p in PROCS:
                if p.poll() is None:
                    p.kill()
    results = run_scenarios(chosen, jobs, budget=TOTAL_BUDGET, on_budget=kill_children)
    if MEASURED:
        print("  measured recovery (daemon listening -> first successful call):")
        for label, text in MEASURED:
            print("    %s: %s" % (label, text))
    print("  (%.1f s in all; logs in %s)" % (time.monotonic() - t_start, os.path.relpath(LOGDIR, ROOT)))
    return summary(results)


if __name__ == "__main__":
    sys.exit(main())
