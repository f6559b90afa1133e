#!/usr/bin/python3
"""Proxy and failover tests: the real build/alwaysup through HTTP CONNECT
proxies (tinyproxy, run unprivileged from a generated config, and the
standard-library proxy in tests/proxy/connect_proxy.py, which answers
"502 Bad Gateway" where tinyproxy says "500 Unable to connect"), and with
several daemon URLs (build/testd daemons that die and come back).

    /usr/bin/python3 tests/proxy/proxy_failover.py [-j N] [-k REGEX] [--list]

Prints the features the shim under test accepts, one line per scenario
(failures listed under it), and ends with "N passed, M failed" (checks).
Exit status 1 on failure. Every wait is bounded; the whole run is stopped
(and failed) after 85 s. A shim that exits when it should not (e.g. status 2
for an option it does not know yet) fails its scenario at once, quoting the
shim's stderr, instead of waiting out the deadlines.

Logs and generated configs: build/test-logs/proxy/ (tinyproxy-NAME/ holds
each tinyproxy's tinyproxy.conf, tinyproxy.log and stderr).
Environment: ALWAYSUP_BIN (the shim), ALWAYSUP_TLS_BIN (a shim with wss://
for the https_proxy cases; default: ALWAYSUP_BIN if it has TLS, else
build/alwaysup-tls), TINYPROXY (default: tinyproxy on $PATH), ALWAYSUP_SLOW
(stretch every deadline), CI=true (a missing tinyproxy fails instead of
skipping).

What the shim is expected to do (the contract these tests check):
  --proxy http://HOST:PORT (ALWAYSUP_PROXY): every connection through that
      HTTP CONNECT proxy, loopback daemons included; --proxy '' means no
      proxy, whatever the environment says.
  --proxy-user-env VAR: "user:password" from $VAR, sent as
      Proxy-Authorization: Basic; the password never appears in any log.
  http_proxy/HTTP_PROXY for ws://, https_proxy/HTTPS_PROXY for wss://, else
      ALL_PROXY/all_proxy; NO_PROXY/no_proxy: comma-separated host names or
      domain suffixes ("example.com" and ".example.com" match
      sub.example.com; curl-style, a suffix matches on a dot boundary only);
      "*" means no proxy. Environment proxies are not used for localhost,
      127.0.0.0/8 and ::1.
  At info level, at the first connect: a line with "via proxy HOST:PORT"
      (none when no proxy is used).
  A proxy's refusal (407, 401, 403, 500, 502) is a failed attempt, logged with
      the proxy's status line, then backoff and retry, never an exit.
  Several URLs (argv, or ALWAYSUP_URL separated by spaces or commas): URL1
      first; a failed attempt moves on ("trying the next daemon URL"); a
      healthy connection stays where it is; the session is replayed to
      whichever daemon answers."""
import base64
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import SLOW, Checks, Daemon, Shim, Skip, free_port, read_text, run_scenarios, scenario_args, summary  # noqa: E402
from connect_proxy import ConnectProxy  # noqa: E402

LOGDIR = os.path.join(ROOT, "build", "test-logs", "proxy")
os.makedirs(LOGDIR, exist_ok=True)
harness.LOGDIR = LOGDIR            # Shim and Daemon write their logs there
SHIM = harness.SHIM
TINYPROXY = os.environ.get("TINYPROXY") or shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
TOTAL_BUDGET = 85.0 * SLOW

# The runner's own proxy settings must not leak into the shims: each case
# sets exactly the variables it tests.
PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
              "no_proxy", "NO_PROXY")
LEAKED = {k: os.environ.pop(k) for k in PROXY_VARS if k in os.environ}

SCENARIOS = []
MEASURED = []
MEASURED_LOCK = threading.Lock()
PROCS = []
PROCS_LOCK = threading.Lock()
PROXY_PASSWORD = "pw-Zq8rT1x-never-logged"
PROXY_USER = "proxyuser"


def track(proc):
    with PROCS_LOCK:
        PROCS.append(proc)
    return proc


def measured(label, text):
    with MEASURED_LOCK:
        MEASURED.append((label, text))


class ShimGone(Exception):
    """The shim exited while a scenario still needed it."""

    def __init__(self, s, doing=""):
        text = read_text(s.stderr_path).strip().splitlines()
        tail = " | ".join(text[-3:]) if text else "(nothing on stderr)"
        super().__init__("%s: shim exited with status %s%s: %s" %
                         (s.name, s.proc.returncode, (" while " + doing) if doing else "", tail))


def scenario(fn):
    """A scenario; a ShimGone ends it with one clear failure."""
    @functools.wraps(fn)
    def run(t):
        try:
            fn(t)
        except ShimGone as e:
            t.check(False, str(e))
    SCENARIOS.append(run)
    return run


# ---------------------------------------------------------------- peers
class TDaemon(Daemon):
    """harness.Daemon (build/testd), tracked for the watchdog; host is where
    it binds (testd --host)."""

    def __init__(self, name, host="127.0.0.1", args=(), instance=None, start=True):
        self.host = host
        if not start:                         # reserve a port, start later
            self.name = name
            self.log_path = os.path.join(LOGDIR, name + ".daemon.log")
            if os.path.exists(self.log_path):
                os.unlink(self.log_path)
            self.args = ["--host", host] + list(args)
            self.instance = instance or name
            self.proc = None
            self.port = free_port()
            return
        super().__init__(name, args=["--host", host] + list(args), instance=instance)

    def start(self, instance=None, args=None):
        super().start(instance, args)
        track(self.proc)
        return self

    def url(self, path="", host=None):
        h = host or self.host
        if ":" in h:
            h = "[%s]" % h
        return "ws://%s:%d%s" % (h, self.port, path)

    def accepts(self, since=None):
        """TCP connections this daemon accepted (since the 'start instance
        NAME' line of a life, if given)."""
        log = self.log()
        if since:
            k = log.find("start instance %s " % since)
            if k < 0:
                return None                   # no such life: never a vacuous 0
            log = log[k:]
        return len(re.findall(r"^conn \d+ accept", log, re.M))

    def life(self, instance):
        """JSON messages received in the life that started as instance."""
        log = self.log()
        k = log.find("start instance %s " % instance)
        if k < 0:
            return []
        out = []
        for line in log[k:].splitlines()[1:]:
            if line.startswith("start instance "):
                break
            parts = line.split(" ", 3)
            if len(parts) == 4 and parts[0] == "conn" and parts[2] == "recv":
                try:
                    out.append(json.loads(parts[3]))
                except ValueError:
                    out.append(parts[3])
        return out


class Tinyproxy:
    """tinyproxy in the foreground (-d) from a config generated under
    build/test-logs/proxy/tinyproxy-NAME/, listening on 127.0.0.1."""

    def __init__(self, name, connect_ports=(), auth=None, port=None):
        if not os.access(TINYPROXY, os.X_OK):
            raise Skip("tinyproxy not found (%s): apt-get install -y tinyproxy" % TINYPROXY)
        self.dir = os.path.join(LOGDIR, "tinyproxy-" + name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.port = port or free_port()
        self.conf = os.path.join(self.dir, "tinyproxy.conf")
        self.log_path = os.path.join(self.dir, "tinyproxy.log")
        self.err_path = os.path.join(self.dir, "tinyproxy.stderr")
        lines = [
            "# written by tests/proxy/proxy_failover.py; run as",
            "#   tinyproxy -d -c %s" % self.conf,
            "Port %d" % self.port,
            "Listen 127.0.0.1",
            "Timeout 60",
            'LogFile "%s"' % self.log_path,
            "LogLevel Info",
            'PidFile "%s"' % os.path.join(self.dir, "tinyproxy.pid"),
            "MaxClients 64",
            "Allow 127.0.0.1",
            "DisableViaHeader Yes",
        ]
        # no ConnectPort line: CONNECT to every port; with some: only those
        lines += ["ConnectPort %d" % p for p in connect_ports]
        if auth:
            lines.append("BasicAuth %s %s" % auth)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None
        self.start()

    def start(self, timeout=5.0):
        with open(self.err_path, "a") as err:
            self.proc = track(subprocess.Popen([TINYPROXY, "-d", "-c", self.conf], stdin=subprocess.DEVNULL,
                                               stdout=err, stderr=err))
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("tinyproxy exited with %s: %s" % (self.proc.returncode, self.why()))
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("tinyproxy did not listen within %.0f s: %s" % (timeout, self.why()))

    def why(self):
        text = read_text(self.err_path) + read_text(self.log_path)
        return " | ".join((text.strip().splitlines() or ["(no output)"])[-3:])

    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def log(self):
        return read_text(self.log_path)

    def connects(self, since=0):
        """CONNECT targets (host:port as sent), in order, from log offset since."""
        return re.findall(r"Request \(file descriptor \d+\): CONNECT (\S+) HTTP", self.log()[since:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class PyProxy(ConnectProxy):
    """tests/proxy/connect_proxy.py in this process (threads)."""

    def __init__(self, name, port=0, auth=None):
        super().__init__(port, os.path.join(LOGDIR, name + ".pyproxy.log"), auth)
        self.start()

    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def text(self):
        return read_text(self.log_path)


# ---------------------------------------------------------------- shim helpers
class TShim(Shim):
    """harness.Shim with a fresh state directory, tracked for the watchdog."""

    def __init__(self, name, url, *args, env=None, binary=None):
        shutil.rmtree(os.path.join(LOGDIR, "state", name), ignore_errors=True)
        with SHIM_START_LOCK:                 # Shim reads the module global SHIM: one start at a time
            saved = harness.SHIM
            if binary:
                harness.SHIM = binary
            try:
                super().__init__(name, url, *args, env=env)
            finally:
                harness.SHIM = saved
        track(self.proc)

    def text(self):
        return read_text(self.stderr_path)


SHIM_START_LOCK = threading.Lock()


def new_shim(name, urls, *args, env=None, binary=None):
    """urls: one URL, a list of URLs (argv, in order) or None."""
    if isinstance(urls, (list, tuple)):
        args = tuple(args) + tuple(urls)
        urls = None
    return TShim(name, urls, *args, env=env, binary=binary)


def is_error(m, code=-32000):
    return isinstance(m, dict) and isinstance(m.get("error"), dict) and m["error"].get("code") == code


def answer(s, i, timeout=5.0):
    """The answer to request i, or None after timeout; ShimGone if the shim
    exits first."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        got = s.answers(i)
        if got:
            return got[0]
        if s.proc.poll() is not None:
            s.reader.join(1)
            got = s.answers(i)
            if got:
                return got[0]
            raise ShimGone(s, "waiting for the answer to request %r" % (i,))
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.005)


def call(s, method, params=None, timeout=5.0):
    return answer(s, s.request(method, params), timeout)


def wait_log(s, pattern, timeout=5.0, count=1):
    """Until the shim's log has count lines matching pattern; ShimGone if the
    shim exits first."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        if len(re.findall(pattern, s.text(), re.M)) >= count:
            return True
        if s.proc.poll() is not None:
            time.sleep(0.05)
            if len(re.findall(pattern, s.text(), re.M)) >= count:
                return True
            raise ShimGone(s, "waiting for /%s/ in its log" % pattern)
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def wait_true(pred, timeout=5.0, s=None):
    """Until pred() is true; ShimGone if shim s exits first."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        if pred():
            return True
        if s is not None and s.proc.poll() is not None:
            if pred():
                return True
            raise ShimGone(s)
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def alive(t, s, what=""):
    t.check(s.proc.poll() is None, "%s: shim still running%s (exit %s)" % (s.name, what, s.proc.returncode))


def kill_noticed(d, s, timeout=5.0):
    """SIGKILL the daemon; wait until the shim logged the loss."""
    seen = s.text().count(" lost")
    d.kill()
    return wait_true(lambda: s.text().count(" lost") > seen, timeout, s)


def mcp_init(s, timeout=5.0):
    i = s.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                 "clientInfo": {"name": "proxy-tests", "version": "1"}})
    m = answer(s, i, timeout)
    s.notify("notifications/initialized")
    return m


def names(items):
    return [x.get("method") if isinstance(x, dict) else None for x in items]


def replay_first(t, items, what):
    """A strict daemon's life starts with the replayed session: initialize
    (answered), notifications/initialized, then the client's requests."""
    n = names(items)
    t.check(n[:2] == ["initialize", "notifications/initialized"],
            "%s: replayed initialize + initialized come first: %r" % (what, n[:5]))


def via(port):
    return r"via proxy 127\.0\.0\.1:%d\b" % port


def status_logged(t, s, code, reason):
    log = s.text()
    t.check(re.search(r"\b%d\b" % code, log) is not None, "%s: the proxy's %d is logged" % (s.name, code))
    t.check(("%d %s" % (code, reason)) in log,
            "%s: the proxy's status line '%d %s' is logged: %r" %
            (s.name, code, reason, [ln for ln in log.splitlines() if str(code) in ln][:2]))


def no_secret(t, text, what):
    b64 = base64.b64encode(("%s:%s" % (PROXY_USER, PROXY_PASSWORD)).encode()).decode()
    t.check(PROXY_PASSWORD not in text, "%s: the proxy password never appears" % what)
    t.check(b64 not in text, "%s: the base64 credentials never appear" % what)


# ---------------------------------------------------------------- this machine
def local_names():
    """(hostname, its address) when the machine's name resolves to an
    address we can bind (a non-loopback NAME for a local daemon), and the
    first non-loopback IPv4 address of an interface we can bind (or None)."""
    name = addr = ip = None
    h = socket.gethostname()
    if h and h != "localhost" and not re.match(r"^[\d.]+$", h):
        try:
            addrs = [a[4][0] for a in socket.getaddrinfo(h, None, socket.AF_INET, socket.SOCK_STREAM)]
        except OSError:
            addrs = []
        for a in addrs:
            if can_bind(a):
                name, addr = h, a
                break
    try:
        out = subprocess.run(["hostname", "-I"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=5).stdout.decode().split()
    except (OSError, subprocess.TimeoutExpired):
        out = []
    for a in out:
        if re.match(r"^\d+\.\d+\.\d+\.\d+$", a) and not a.startswith("127.") and can_bind(a):
            ip = a
            break
    return name, addr, ip


def can_bind(a):
    try:
        s = socket.socket()
        s.bind((a, 0))
        s.close()
        return True
    except OSError:
        return False


def shim_features(binary):
    """What the binary's argument parser accepts (the probes never connect:
    --version ends the parse)."""
    def probe(args, env=None):
        e = {k: v for k, v in os.environ.items() if not k.startswith("ALWAYSUP_")}
        e.update(env or {})
        try:
            r = subprocess.run([binary] + args + ["--version"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=5, env=e)
        except (OSError, subprocess.TimeoutExpired) as ex:
            return False, str(ex)
        return r.returncode == 0, (r.stderr.decode(errors="replace").strip() or r.stdout.decode(errors="replace").strip())
    out = {}
    out["--proxy"] = probe(["--proxy", "http://127.0.0.1:3128"])
    out["--proxy ''"] = probe(["--proxy", ""])
    out["--proxy-user-env"] = probe(["--proxy-user-env", "ALWAYSUP_TEST_CRED"], {"ALWAYSUP_TEST_CRED": "u:p"})
    out["two URLs"] = probe(["ws://127.0.0.1:1", "ws://127.0.0.1:2"])
    return out


def tls_shim():
    """A shim binary with wss:// (for the https_proxy cases), or None."""
    cands = [os.environ.get("ALWAYSUP_TLS_BIN"), SHIM, os.path.join(harness.BUILD, "alwaysup-tls")]
    for b in cands:
        if not b or not os.access(b, os.X_OK):
            continue
        try:
            r = subprocess.run([b, "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if b"tls" in r.stdout:
            return b
    return None


# ---------------------------------------------------------------- proxy: traffic
@scenario
def proxy_traffic(t):
    """An MCP session through tinyproxy (--proxy, loopback daemon), the daemon
    restarted mid-session behind the proxy."""
    d = TDaemon("traffic", args=["--mcp-strict"], instance="A")
    tp = Tinyproxy("traffic", connect_ports=[d.port])
    s = new_shim("traffic", d.url("/mcp"), "--proxy", tp.url())
    try:
        m = mcp_init(s)
        t.check(m is not None and m.get("result", {}).get("serverInfo", {}).get("version") == "A",
                "initialize answered by the daemon through the proxy: %r" % (m,))
        t.check(wait_log(s, via(tp.port), 2), "info log names the proxy: 'via proxy 127.0.0.1:%d'" % tp.port)
        t.check("127.0.0.1:%d" % d.port in tp.connects(), "tinyproxy saw CONNECT 127.0.0.1:%d: %r" % (d.port, tp.connects()))
        t.check("request GET /mcp HTTP/1.1" in d.log(), "the WebSocket handshake (path /mcp) went through the tunnel")
        t.check("Proxy-" not in d.log(), "no Proxy-* header reaches the daemon")
        m = call(s, "tools/call", {"name": "echo", "arguments": {}})
        t.check(m is not None and "result" in m, "tools/call through the proxy: %r" % (m,))
        m = call(s, "echo", {"x": "h\u00e9llo \u2603"})
        t.check(m is not None and m.get("result", {}).get("params") == {"x": "h\u00e9llo \u2603"},
                "UTF-8 round trip through the proxy")
        # a call in flight when the daemon dies behind the proxy
        slow = s.request("sleep", {"ms": 5000})
        wait_true(lambda: "sleep" in names(d.received()), 2, s)
        t0 = time.monotonic()
        seen = s.text().count(" lost")
        d.kill()
        m = answer(s, slow, 3)
        took = time.monotonic() - t0
        t.check(is_error(m, -32000), "in-flight call at the restart answered -32000: %r" % (m,))
        t.check(took < 2.0 * SLOW, "in-flight error within 2 s of the kill (%.2f s)" % took)
        wait_true(lambda: s.text().count(" lost") > seen, 3, s)
        queued = s.request("tools/call", {"name": "echo", "arguments": {}})
        n0 = len(tp.connects())
        wait_true(lambda: len(tp.connects()) > n0, 3, s)       # an attempt met the proxy's 500
        time.sleep(0.3)
        alive(t, s, " while the daemon is down behind the proxy")
        d.start(instance="B")
        t1 = time.monotonic()
        m = answer(s, queued, 8)
        t.check(m is not None and "result" in m, "queued call answered by the restarted daemon: %r" % (m,))
        if m is not None:
            measured("proxy_traffic: daemon listening -> queued call answered through tinyproxy",
                     "%.0f ms" % ((time.monotonic() - t1) * 1000))
        replay_first(t, d.life("B"), "restarted daemon behind the proxy")
        t.check("tools/call" in names(d.life("B")), "the queued call reached the new daemon")
        t.check(len(tp.connects()) >= 3, "reconnects went through the proxy too (%d CONNECTs)" % len(tp.connects()))
        t.check(all(c == "127.0.0.1:%d" % d.port for c in tp.connects()), "every CONNECT names the daemon")
        m = call(s, "echo")
        t.check(m is not None and m.get("result", {}).get("instance") == "B", "session goes on after the restart: %r" % (m,))
        s.close_stdin()
        t.check(s.wait_exit(3) == 0, "exit 0 after stdin EOF (status %s)" % s.proc.returncode)
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()
        tp.stop()


# ---------------------------------------------------------------- proxy: auth
@scenario
def proxy_auth(t):
    d = TDaemon("auth", instance="A")
    tp = Tinyproxy("auth", connect_ports=[d.port], auth=(PROXY_USER, PROXY_PASSWORD))
    try:
        proxy_auth_stages(t, d, tp)
    finally:
        d.stop()
        tp.stop()


def proxy_auth_stages(t, d, tp):
    logs = []
    # 1. no credentials: 407, retried, never an exit
    s = new_shim("auth-none", d.url(), "--proxy", tp.url(), "--queue-timeout", "2", "--log-level", "debug")
    try:
        i = s.request("echo")
        t.check(wait_log(s, r"\b407\b", 4), "without credentials: the proxy's 407 is logged")
        status_logged(t, s, 407, "Proxy Authentication Required")
        t.check(wait_true(lambda: len(tp.connects()) >= 2, 4, s), "retried after the 407 (%d CONNECTs)" % len(tp.connects()))
        m = answer(s, i, 4)
        t.check(is_error(m, -32000), "the queued request gets -32000 after --queue-timeout, not a result: %r" % (m,))
        alive(t, s, " after 407s")
        t.check(d.accepts() == 0, "nothing reached the daemon without credentials")
    finally:
        s.stop()
    # 2. wrong password: 407 too, and the wrong password is not logged either
    n0 = len(tp.connects())
    s = new_shim("auth-wrong", d.url(), "--proxy", tp.url(), "--proxy-user-env", "PROXY_CRED",
                 "--queue-timeout", "1", "--log-level", "debug", env={"PROXY_CRED": PROXY_USER + ":wrong-Pw-71Kq"})
    try:
        i = s.request("echo")
        # tinyproxy 1.11 answers wrong credentials with "401 Unauthorized" (407 only when there are none)
        t.check(wait_log(s, r"\b40[17]\b", 4), "wrong password: the proxy's 401/407 logged")
        t.check(wait_true(lambda: len(tp.connects()) >= n0 + 2, 4, s), "wrong password: retried")
        m = answer(s, i, 3)
        t.check(is_error(m, -32000), "wrong password: the request gets -32000: %r" % (m,))
        alive(t, s, " after a wrong password")
        t.check("wrong-Pw-71Kq" not in s.text(), "the wrong password is not logged either")
    finally:
        s.stop()
    # 3. right credentials from --proxy-user-env: works, across a daemon restart
    file_log = os.path.join(LOGDIR, "auth-ok.file.log")
    if os.path.exists(file_log):
        os.unlink(file_log)
    s = new_shim("auth-ok", d.url(), "--proxy", tp.url(), "--proxy-user-env", "PROXY_CRED", "--log-level", "debug",
                 "--log-file", file_log, env={"PROXY_CRED": "%s:%s" % (PROXY_USER, PROXY_PASSWORD)})
    try:
        m = call(s, "echo", {"auth": 1})
        t.check(m is not None and m.get("result", {}).get("instance") == "A", "with --proxy-user-env: answered: %r" % (m,))
        t.check(wait_log(s, via(tp.port), 1), "'via proxy 127.0.0.1:%d' logged" % tp.port)
        kill_noticed(d, s)
        d.start(instance="B")
        m = call(s, "echo", {"auth": 2}, 8)
        t.check(m is not None and m.get("result", {}).get("instance") == "B",
                "credentials sent again on the reconnect: answered by the restarted daemon: %r" % (m,))
        s.close_stdin()
        t.check(s.wait_exit(3) == 0, "exit 0 after stdin EOF")
        s.check_clean(t)
    finally:
        s.stop()
    logs = [("auth-none stderr", read_text(os.path.join(LOGDIR, "auth-none.shim.log"))),
            ("auth-wrong stderr", read_text(os.path.join(LOGDIR, "auth-wrong.shim.log"))),
            ("auth-ok stderr", read_text(os.path.join(LOGDIR, "auth-ok.shim.log"))),
            ("auth-ok --log-file", read_text(file_log))]
    t.check(logs[3][1] != "", "--log-file was written (%s)" % file_log)
    for what, text in logs:
        no_secret(t, text, what)
    no_secret(t, d.log(), "daemon log")
    t.check("Proxy-Authorization" not in d.log(), "Proxy-Authorization never reaches the daemon")


# ---------------------------------------------------------------- proxy: refusals
@scenario
def proxy_refusals(t):
    # 403: tinyproxy only allows CONNECT to port 443
    d = TDaemon("refuse403", instance="A")
    tp = Tinyproxy("refuse403", connect_ports=[443])
    s = new_shim("refuse403", d.url(), "--proxy", tp.url(), "--queue-timeout", "1.5")
    try:
        i = s.request("echo")
        t.check(wait_log(s, r"\b403\b", 4), "403 for a port not in ConnectPort is logged")
        status_logged(t, s, 403, "Access violation")
        t.check(wait_true(lambda: len(tp.connects()) >= 2, 4, s), "retried after the 403 (%d CONNECTs)" % len(tp.connects()))
        m = answer(s, i, 3)
        t.check(is_error(m, -32000), "request answered -32000 after the queue timeout: %r" % (m,))
        alive(t, s, " after 403s")
        t.check(d.accepts() == 0, "the daemon saw no connection")
    finally:
        s.stop()
        d.stop()
        tp.stop()

    # 500 (tinyproxy's answer for a refused port) while the daemon is down; then it comes up
    d = TDaemon("refuse500", instance="late", start=False)
    tp = Tinyproxy("refuse500")
    s = new_shim("refuse500", d.url(), "--proxy", tp.url())
    try:
        i = s.request("echo")
        t.check(wait_log(s, r"\b500\b", 4), "tinyproxy's 500 for the down daemon is logged")
        status_logged(t, s, 500, "Unable to connect")
        t.check(wait_true(lambda: len(tp.connects()) >= 2, 4, s), "retried (%d CONNECTs)" % len(tp.connects()))
        alive(t, s, " while tinyproxy answers 500")
        t.check(answer(s, i, 0.01) is None, "nothing answered while the daemon is down")
        d.start()
        t0 = time.monotonic()
        m = answer(s, i, 6)
        t.check(m is not None and m.get("result", {}).get("instance") == "late",
                "queued request answered once the daemon is up behind tinyproxy: %r" % (m,))
        if m is not None:
            measured("proxy_refusals: daemon up behind tinyproxy (500s before) -> queued request answered",
                     "%.0f ms" % ((time.monotonic() - t0) * 1000))
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()
        tp.stop()

    # 502 (connect_proxy.py, as squid and most proxies answer) while the daemon is down; then it comes up
    d = TDaemon("refuse502", instance="late", start=False)
    pp = PyProxy("refuse502")
    s = new_shim("refuse502", d.url(), "--proxy", pp.url())
    try:
        i = s.request("echo")
        t.check(wait_log(s, r"\b502\b", 4), "the proxy's 502 for the down daemon is logged")
        status_logged(t, s, 502, "Bad Gateway")
        t.check(wait_true(lambda: pp.text().count("-> 502") >= 2, 4, s), "retried after the 502")
        alive(t, s, " while the proxy answers 502")
        d.start()
        t0 = time.monotonic()
        m = answer(s, i, 6)
        t.check(m is not None and m.get("result", {}).get("instance") == "late",
                "queued request answered once the daemon is up behind the 502 proxy: %r" % (m,))
        if m is not None:
            measured("proxy_refusals: daemon up behind a 502 proxy -> queued request answered",
                     "%.0f ms" % ((time.monotonic() - t0) * 1000))
        t.check("-> 200" in pp.text(), "the proxy tunnelled the final connection")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()
        pp.stop()

    # the proxy itself down (connection refused), then it starts
    d = TDaemon("proxydown", instance="A")
    pport = free_port()
    s = new_shim("proxydown", d.url(), "--proxy", "http://127.0.0.1:%d" % pport)
    tp = None
    try:
        i = s.request("echo")
        t.check(wait_log(s, r"cannot reach|refused|failed", 4), "a proxy that refuses TCP is a logged failed attempt")
        time.sleep(0.5)
        alive(t, s, " while the proxy is down")
        t.check(d.accepts() == 0, "no direct connection to the daemon while the proxy is down")
        tp = Tinyproxy("proxydown", port=pport)
        t0 = time.monotonic()
        m = answer(s, i, 6)
        t.check(m is not None and m.get("result", {}).get("instance") == "A",
                "queued request answered once the proxy is up: %r" % (m,))
        if m is not None:
            measured("proxy_refusals: proxy started -> queued request answered", "%.0f ms" % ((time.monotonic() - t0) * 1000))
        t.check("127.0.0.1:%d" % d.port in tp.connects(), "it went through the proxy")
        s.check_clean(t)
    finally:
        s.stop()
        d.stop()
        if tp:
            tp.stop()


# ---------------------------------------------------------------- proxy: environment
@scenario
def proxy_env(t):
    """Which proxy the environment selects, seen in the shim's 'via proxy'
    line and in tinyproxy's log of CONNECTs."""
    name, name_addr, ip = local_names()
    tp = Tinyproxy("env")
    P = tp.url()
    bogus = "http://127.0.0.1:%d" % free_port()         # nothing listens: choosing it would show
    dlo = TDaemon("env-lo", instance="lo")
    dname = TDaemon("env-name", host=name_addr, instance="name") if name else None
    dip = TDaemon("env-ip", host=ip, instance="ip") if ip else None
    if not name:
        t.note("no non-loopback host name resolving to a bindable address here: the name cases are not run")
    if not ip:
        t.note("no non-loopback interface address here: the IP-literal cases are not run")
    wss_bin = tls_shim()
    if not wss_bin:
        t.note("no shim with wss:// (make build/alwaysup-tls or ALWAYSUP_TLS_BIN): the https_proxy cases are not run")
    elif wss_bin != SHIM:
        srcs = [os.path.join(ROOT, "alwaysup.h"), os.path.join(ROOT, "examples", "alwaysup.c")]
        stale = any(os.path.getmtime(f) > os.path.getmtime(wss_bin) for f in srcs if os.path.exists(f))
        t.note("wss:// cases use %s%s" % (os.path.relpath(wss_bin, ROOT),
                                         " (OLDER than the sources: make build/alwaysup-tls)" if stale else ""))
    inv = "daemon.example.invalid"                       # unresolvable: only who tries to resolve it matters
    cases = []

    def case(label, url, env, args=(), proxy=True, target=None, reach=True, binary=None):
        cases.append((label, url, env, list(args), proxy, target, reach, binary))

    if name:
        u = dname.url(host=name)
        tgt = "%s:%d" % (name, dname.port)
        case("http_proxy for ws://%s" % name, u, {"http_proxy": P}, target=tgt)
        case("HTTP_PROXY (upper case)", u, {"HTTP_PROXY": P}, target=tgt)
        case("ALL_PROXY when no http_proxy", u, {"ALL_PROXY": P}, target=tgt)
        case("all_proxy (lower case)", u, {"all_proxy": P}, target=tgt)
        case("http_proxy wins over ALL_PROXY", u, {"http_proxy": P, "ALL_PROXY": bogus}, target=tgt)
        case("https_proxy is not for ws://", u, {"https_proxy": P, "HTTPS_PROXY": P}, proxy=False, target=tgt)
        case("NO_PROXY names the host", u, {"http_proxy": P, "NO_PROXY": name}, proxy=False, target=tgt)
        case("no_proxy list (lower case) with the host", u, {"http_proxy": P, "no_proxy": "other.invalid,%s" % name},
             proxy=False, target=tgt)
        case("NO_PROXY=* means none", u, {"http_proxy": P, "NO_PROXY": "*"}, proxy=False, target=tgt)
        case("NO_PROXY not naming the host", u, {"http_proxy": P, "NO_PROXY": "other.invalid,.example.invalid"},
             target=tgt)
        case("--proxy '' beats http_proxy", u, {"http_proxy": P}, args=["--proxy", ""], proxy=False, target=tgt)
        case("--proxy beats http_proxy", u, {"http_proxy": bogus}, args=["--proxy", P], target=tgt)
    if ip:
        u = dip.url()
        tgt = "%s:%d" % (ip, dip.port)
        case("http_proxy for ws://%s (interface address)" % ip, u, {"http_proxy": P}, target=tgt)
        case("NO_PROXY names the IP literal", u, {"http_proxy": P, "NO_PROXY": ip}, proxy=False, target=tgt)
    # domain suffixes, with a name nobody can resolve: direct means the shim's own DNS failure
    u = "ws://%s:%d" % (inv, dlo.port)
    tgt = "%s:%d" % (inv, dlo.port)
    case("NO_PROXY=.example.invalid matches %s" % inv, u, {"http_proxy": P, "NO_PROXY": ".example.invalid"},
         proxy=False, target=tgt, reach=False)
    case("NO_PROXY=example.invalid matches %s" % inv, u, {"http_proxy": P, "NO_PROXY": "example.invalid"},
         proxy=False, target=tgt, reach=False)
    case("NO_PROXY list, second entry matches", u, {"http_proxy": P, "NO_PROXY": "other.invalid,example.invalid"},
         proxy=False, target=tgt, reach=False)
    case("NO_PROXY=.other.invalid does not match", u, {"http_proxy": P, "NO_PROXY": ".other.invalid"},
         target=tgt, reach=False)
    case("NO_PROXY=ample.invalid does not match (dot boundary, as curl)", u, {"http_proxy": P, "NO_PROXY": "ample.invalid"},
         target=tgt, reach=False)
    # loopback daemons: environment proxies are skipped
    lo_env = {"http_proxy": P, "HTTP_PROXY": P, "ALL_PROXY": P, "all_proxy": P}
    case("loopback 127.0.0.1 skips env proxies", dlo.url(), lo_env, proxy=False, target="127.0.0.1:%d" % dlo.port)
    case("loopback localhost skips env proxies", dlo.url(host="localhost"), lo_env, proxy=False,
         target="localhost:%d" % dlo.port)
    case("loopback 127.0.0.2 (127/8) skips env proxies", "ws://127.0.0.2:%d" % dlo.port, lo_env, proxy=False,
         target="127.0.0.2:%d" % dlo.port, reach=False)
    case("loopback [::1] skips env proxies", "ws://[::1]:%d" % dlo.port, lo_env, proxy=False,
         target="[::1]:%d" % dlo.port, reach=False)
    case("ALWAYSUP_PROXY applies to loopback too", dlo.url(), {"ALWAYSUP_PROXY": P}, target="127.0.0.1:%d" % dlo.port)
    case("--proxy '' beats ALWAYSUP_PROXY", dlo.url(), {"ALWAYSUP_PROXY": P, "http_proxy": P}, args=["--proxy", ""],
         proxy=False, target="127.0.0.1:%d" % dlo.port)
    if wss_bin and name:
        u = "wss://%s:%d" % (name, dname.port)       # plain testd: TLS fails after the tunnel, which is enough
        tgt = "%s:%d" % (name, dname.port)
        hs = ["--handshake-timeout", "0.5"]    # a TLS hello to plain testd fails at once, not after 10 s
        case("wss:// uses https_proxy", u, {"https_proxy": P}, target=tgt, reach=False, binary=wss_bin, args=hs)
        case("wss:// uses HTTPS_PROXY", u, {"HTTPS_PROXY": P}, target=tgt, reach=False, binary=wss_bin, args=hs)
        case("wss:// ignores http_proxy", u, {"http_proxy": P}, proxy=False, target=tgt, reach=False, binary=wss_bin, args=hs)
        case("wss:// falls back to ALL_PROXY", u, {"ALL_PROXY": P}, target=tgt, reach=False, binary=wss_bin, args=hs)

    try:
        for k, (label, url, env, args, proxy, target, reach, binary) in enumerate(cases):
            since = len(tp.log())
            s = new_shim("env-%02d" % k, url, "--log-level", "debug", *args, env=env, binary=binary)
            what = "env case '%s'" % label
            try:
                if reach:
                    m = call(s, "echo", None, 4)
                    t.check(m is not None and "result" in m, "%s: answered (%s)" % (what, "through the proxy" if proxy else "direct"))
                else:
                    # an attempt was made: through the proxy (tinyproxy logs it) or direct (the shim logs its failure)
                    wait_true(lambda: any(c == target for c in tp.connects(since)) or
                              re.search(r"cannot reach|attempt \d+ failed", s.text()) is not None, 4, s)
                    time.sleep(0.2)
                seen = tp.connects(since)
                log = s.text()
                if proxy:
                    t.check(re.search(via(tp.port), log) is not None, "%s: 'via proxy 127.0.0.1:%d' logged" % (what, tp.port))
                    t.check(target in seen or any(c.endswith(":" + target.rsplit(":", 1)[1]) for c in seen),
                            "%s: tinyproxy saw a CONNECT for the daemon (%r)" % (what, seen))
                else:
                    t.check("via proxy" not in log, "%s: no 'via proxy' line: %r" %
                            (what, [ln for ln in log.splitlines() if "via proxy" in ln][:1]))
                    t.check(not seen, "%s: tinyproxy saw no CONNECT (%r)" % (what, seen))
                alive(t, s, " (%s)" % label)
            except ShimGone as e:
                t.check(False, "%s: %s" % (what, e))
            finally:
                s.stop()
        # the CONNECT carries the host as written in the URL (the proxy resolves it), as curl does
        if name:
            t.check(any(c == "%s:%d" % (name, dname.port) for c in tp.connects()),
                    "CONNECT names the daemon's host as in the URL (%s:%d), not a resolved address" % (name, dname.port))
    finally:
        tp.stop()
        for d in (dlo, dname, dip):
            if d:
                d.stop()


# ---------------------------------------------------------------- failover
@scenario
def failover_two_daemons(t):
    a = TDaemon("fo-a", args=["--mcp-strict"], instance="A1")
    b = TDaemon("fo-b", args=["--mcp-strict"], instance="B1")
    s = new_shim("failover", [a.url(), b.url()], "--log-level", "debug")
    try:
        m = mcp_init(s)
        t.check(m is not None and m.get("result", {}).get("serverInfo", {}).get("version") == "A1",
                "URL1 first: initialize answered by A: %r" % (m,))
        m = call(s, "echo", {"phase": 1})
        t.check(m is not None and m.get("result", {}).get("instance") == "A1", "both up: traffic goes to A: %r" % (m,))
        m = call(s, "tools/call", {"name": "echo", "arguments": {}})
        t.check(m is not None and "result" in m, "tools/call on A")
        t.check(b.accepts() == 0 and b.received() == [], "both up: B sees no connection at all (%d)" % b.accepts())
        # A dies: B takes over, with the session replayed first
        kill_noticed(a, s)
        t0 = time.monotonic()
        m = call(s, "echo", {"phase": 2}, 6)
        took = time.monotonic() - t0
        t.check(m is not None and m.get("result", {}).get("instance") == "B1", "A killed: traffic continues on B: %r" % (m,))
        if m is not None:
            measured("failover: A killed -> request answered by B", "%.0f ms" % (took * 1000))
        t.check(took < 3.0 * SLOW, "switched to B within 3 s (%.2f s)" % took)
        items = b.life("B1")
        replay_first(t, items, "B")
        n = names(items)
        t.check("echo" in n and n.index("echo") > n.index("initialize") if "initialize" in n and "echo" in n else False,
                "B saw initialize before the call: %r" % n[:6])
        t.check(not any(is_error(x, -32002) for x in s.all), "no -32002 (not initialized) reached the client")
        m = call(s, "tools/call", {"name": "echo", "arguments": {}})
        t.check(m is not None and "result" in m, "tools/call on B: %r" % (m,))
        # A comes back while B is healthy: the connection stays on B
        a.start(instance="A2")
        time.sleep(1.5)
        m = call(s, "echo", {"phase": 3})
        t.check(m is not None and m.get("result", {}).get("instance") == "B1",
                "A back while B is healthy: still on B (sticky): %r" % (m,))
        t.check(a.accepts(since="A2") == 0, "the restarted A sees no connection while B is healthy (%d)" % a.accepts(since="A2"))
        # B dies: back to A
        kill_noticed(b, s)
        t0 = time.monotonic()
        m = call(s, "echo", {"phase": 4}, 6)
        took = time.monotonic() - t0
        t.check(m is not None and m.get("result", {}).get("instance") == "A2", "B killed: back to A: %r" % (m,))
        if m is not None:
            measured("failover: B killed -> request answered by A again", "%.0f ms" % (took * 1000))
        replay_first(t, a.life("A2"), "A after B died")
        t.check("MCP session replayed" in s.text(), "replays logged ('MCP session replayed')")
        alive(t, s)
        s.close_stdin()
        t.check(s.wait_exit(3) == 0, "exit 0 after stdin EOF (status %s)" % s.proc.returncode)
        s.check_clean(t)
    finally:
        s.stop()
        a.stop()
        b.stop()


@scenario
def failover_first_dead(t):
    b = TDaemon("fd-b", instance="B")
    dead1, dead2 = free_port(), free_port()
    u1, u2 = "ws://127.0.0.1:%d" % dead1, "ws://127.0.0.1:%d" % dead2
    variants = [
        ("argv URL1 URL2", [u1, b.url()], {}),
        ("ALWAYSUP_URL separated by a space", None, {"ALWAYSUP_URL": "%s %s" % (u1, b.url())}),
        ("ALWAYSUP_URL separated by a comma", None, {"ALWAYSUP_URL": "%s,%s" % (u1, b.url())}),
        ("argv dead, dead, up", [u1, u2, b.url()], {}),
    ]
    try:
        for k, (label, urls, env) in enumerate(variants):
            s = new_shim("first-dead-%d" % k, urls, "--log-level", "debug", env=env)
            try:
                t0 = time.monotonic()
                m = call(s, "echo", {"variant": k}, 4)
                took = time.monotonic() - t0
                t.check(m is not None and m.get("result", {}).get("instance") == "B", "%s: answered by the live daemon: %r" % (label, m))
                t.timing(m is not None and took < 2.0 * SLOW, "%s: first request answered within 2 s (%.2f s)" % (label, took))
                if k == 0 and m is not None:
                    measured("failover: URL1 refused, URL2 up -> first request answered", "%.0f ms" % (took * 1000))
                t.check("trying the next daemon URL" in s.text(), "%s: 'trying the next daemon URL' logged" % label)
                alive(t, s, " (%s)" % label)
                s.check_clean(t)
            except ShimGone as e:
                t.check(False, "%s: %s" % (label, e))
            finally:
                s.stop()
        # every URL dead: still running, going round all of them, the request told why
        s = new_shim("all-dead", [u1, u2], "--log-level", "debug", "--queue-timeout", "1.5")
        try:
            m = call(s, "echo", None, 4)
            t.check(is_error(m, -32000), "all URLs dead: the request gets -32000 after --queue-timeout: %r" % (m,))
            log = s.text()
            t.check(str(dead1) in log and str(dead2) in log, "all URLs dead: attempts on both URLs are logged")
            t.check(log.count("trying the next daemon URL") >= 2, "all URLs dead: goes round the list (%d moves)" %
                    log.count("trying the next daemon URL"))
            alive(t, s, " with every URL dead")
        except ShimGone as e:
            t.check(False, "all URLs dead: %s" % e)
        finally:
            s.stop()
    finally:
        b.stop()


# ---------------------------------------------------------------- runner
def main():
    chosen, jobs = scenario_args(SCENARIOS, 3)
    if chosen is None:
        return 0
    if not os.access(SHIM, os.X_OK) or not os.access(harness.TESTD, os.X_OK):
        print("  FAIL %s or %s is not built (make build/alwaysup build/testd)" % (SHIM, harness.TESTD))
        print("0 passed, 1 failed")
        return 1
    for name in os.listdir(LOGDIR):
        if name.endswith(".log"):
            os.unlink(os.path.join(LOGDIR, name))
    t_start = time.monotonic()
    print("  shim: %s" % os.path.relpath(SHIM, ROOT))
    for feat, (ok, text) in shim_features(SHIM).items():
        print("  shim accepts %-18s %s" % (feat + ":", "yes" if ok else "NO (%s)" % text.splitlines()[0][:100]))
    print("  tinyproxy: %s" % (TINYPROXY if os.access(TINYPROXY, os.X_OK) else "MISSING (apt-get install -y tinyproxy)"))
    if LEAKED:
        print("  (ignoring the runner's own %s)" % ", ".join(sorted(LEAKED)))
    sys.stdout.flush()

    def kill_children():
        with PROCS_LOCK:
            for p in PROCS:
                if p.poll() is None:
                    p.kill()
    results = run_scenarios(chosen, jobs, budget=TOTAL_BUDGET, on_budget=kill_children)
    with PROCS_LOCK:                          # nothing of ours outlives the run (they share our stdout/stderr)
        left = [p for p in PROCS if p.poll() is None]
    if left:
        print("  note: %d child process(es) still running after the scenarios; killed: %s" %
              (len(left), " ".join(str(p.args[0]) for p in left)))
        kill_children()
        for p in left:
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                pass
    if MEASURED:
        print("  measured:")
        for label, text in MEASURED:
            print("    %s: %s" % (label, text))
    print("  (%.1f s in all; logs in %s)" % (time.monotonic() - t_start, os.path.relpath(LOGDIR, ROOT)))
    return summary(results)


if __name__ == "__main__":
    sys.exit(main())
