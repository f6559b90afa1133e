#!/usr/bin/python3
"""Transport tests: wss:// (TLS, the OpenSSL build build/alwaysup-tls) and
Unix domain sockets (ws+unix:, the default build build/alwaysup), the real
shim between a scripted client on its stdio and real peers:

  - nginx terminating TLS in front of build/testd (certificates from
    tests/tls/make_certs.sh: a test CA, a good server cert, a wrong host
    name, an expired one, one from an untrusted CA, a client cert for mTLS);
  - tests/tls/echo_daemon.py (Python `websockets`) serving TLS itself, and
    listening on a Unix socket.

    make build/alwaysup build/alwaysup-tls build/testd
    /usr/bin/python3 tests/tls/transports.py [-j N] [-k REGEX] [--list]

Needs the openssl CLI (certificates), nginx and python3-websockets. The TLS
scenarios fail at once, naming the make command, while build/alwaysup-tls
does not exist.

Prints one line per scenario (failures listed under it) and ends with
"N passed, M failed" (checks); exit status 1 on failure. Every wait is
bounded, and a watchdog stops the whole run after TOTAL_BUDGET seconds.
Temporary files (certificates, nginx configurations and logs, sockets, shim
and daemon logs): build/test-logs/tls/.
Environment: ALWAYSUP_TLS_BIN (the TLS build, default build/alwaysup-tls),
ALWAYSUP_BIN (the default build, default build/alwaysup), ALWAYSUP_SLOW
(stretch every deadline), ALWAYSUP_WRAP (prefix every shim, e.g. valgrind),
NGINX (default /usr/sbin/nginx), CI=true (a missing nginx or websockets is a
failure instead of a skip)."""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import harness  # noqa: E402
from harness import SLOW, WRAP, Checks, Daemon, PeerDaemon, Shim, Skip, free_port, read_text, run_scenarios, scan_logs, scenario_args, summary  # noqa: E402,F401
import tlsnginx  # noqa: E402  (nginx terminating TLS; shared with tools/conformance.py, tools/soak.py, the benchmark)
from tlsnginx import NGINX, make_certs, need_nginx, pem_to_der, presented_cert, tls_server  # noqa: E402,F401

# the tests choose the shims' "system" trust store themselves
os.environ.pop("SSL_CERT_FILE", None)
os.environ.pop("SSL_CERT_DIR", None)
LOGDIR = os.path.abspath(os.environ.get("ALWAYSUP_LOGDIR") or os.path.join(ROOT, "build", "test-logs", "tls"))   # e.g. a Wine run beside it
os.makedirs(LOGDIR, exist_ok=True)
harness.LOGDIR = LOGDIR            # Shim and Daemon write their logs there
CERTS = os.path.join(LOGDIR, "certs")
BUILD = os.path.join(ROOT, "build")
PLAIN_BIN = harness.SHIM           # ALWAYSUP_BIN or build/alwaysup
TLS_BIN = os.environ.get("ALWAYSUP_TLS_BIN", os.path.join(BUILD, "alwaysup-tls"))
TESTD = harness.TESTD
ECHO_DAEMON = os.path.join(HERE, "echo_daemon.py")
DAEMON_PY = os.environ.get("PY_DAEMON_PYTHON") or ("/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable)
TOTAL_BUDGET = 80.0 * SLOW

# what the shim's log says for a failed attempt: the first one of an outage at
# warn ("cannot reach URL: WHY" / "no session with URL: WHY"), later ones at
# debug ("attempt N failed: WHY") or, every tenth, info ("still trying ...: WHY")
FAILED_ATTEMPT = r"cannot reach|no session with|attempt \d+ failed|still trying"
# OpenSSL's verify reasons (X509_verify_cert_error_string), matched ignoring case
UNTRUSTED = r"unable to get local issuer certificate|self[- ]signed certificate in certificate chain"
# the SChannel build (alwaysup.exe) names the same two cases "untrusted CA (no trusted CA issued X)" and
# "untrusted CA (the chain ends at X, which is not ...)"
UNTRUSTED += r"|untrusted CA \((?:no trusted CA issued|the chain ends at)"
NO_ISSUER = r"unable to get local issuer certificate|untrusted CA \(no trusted CA issued"
HOST_MISMATCH = r"hostname mismatch"
IP_MISMATCH = r"ip address mismatch|hostname mismatch"
EXPIRED = r"certificate has expired"
INSECURE_WARN = r"(?im)^.*\bwarn\b.*insecure.*$"
COMMON = ("--log-level", "debug", "--backoff-max", "1")
UTF8_TEXT = "h\u00e9llo \u2603 \u65e5\u672c\u8a9e \U0001F600"
INIT_PARAMS = {"protocolVersion": "2025-06-18", "capabilities": {"sampling": {}},
               "clientInfo": {"name": "tls-tests", "version": "1"}}

SCENARIOS = []
OBJECTS = []            # everything with a .proc we start, for the watchdog
OBJECTS_LOCK = threading.Lock()
SHIM_LOCK = threading.Lock()


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


def track(obj):
    with OBJECTS_LOCK:
        OBJECTS.append(obj)
    return obj


def cert(name):
    return os.path.join(CERTS, name)


CA = cert("ca.pem")


def rel(path):
    path = os.path.abspath(path)
    return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


# ---------------------------------------------------------------- preconditions
def need_tls(t):
    """False (one failed check, at once) while the TLS build does not exist."""
    if os.access(TLS_BIN, os.X_OK):
        return True
    t.check(False, "%s missing (make build/alwaysup-tls)" % rel(TLS_BIN))
    return False


def need_testd(t):
    if os.access(TESTD, os.X_OK):
        return True
    t.check(False, "%s missing (make build/testd)" % rel(TESTD))
    return False


def need_websockets():
    r = subprocess.run([DAEMON_PY, "-c", "import websockets"], capture_output=True, timeout=10)
    if r.returncode != 0:
        raise Skip("%s cannot import websockets (apt-get install python3-websockets)" % DAEMON_PY)


# ---------------------------------------------------------------- nginx
class Nginx(tlsnginx.Nginx):
    """tlsnginx.Nginx with its directory under LOGDIR, stopped by the watchdog."""

    def __init__(self, name, upstream_port, servers):
        super().__init__(name, upstream_port, servers, LOGDIR, track=track)

def verify_reason(port, sni="localhost", cafile=CA, host=None):
    """What OpenSSL itself (Python's ssl, same library) says verifying the
    server against cafile: "ok" or the verify message."""
    ctx = ssl.create_default_context(cafile=cafile)
    try:
        with socket.create_connection(("127.0.0.1", port), 2) as raw:
            with ctx.wrap_socket(raw, server_hostname=host or sni):
                return "ok"
    except ssl.SSLCertVerificationError as e:
        return e.verify_message or str(e)
    except (OSError, ssl.SSLError) as e:
        return "error: %s" % e


# ---------------------------------------------------------------- the Python daemon
class EchoDaemon(PeerDaemon):
    """tests/tls/echo_daemon.py on 127.0.0.1 (TLS with cert/key) or on a Unix
    socket; restartable on the same port or path. Tracked as itself: the
    watchdog kills its .proc, which PeerDaemon sets at each start."""

    def __init__(self, name, unix=None, cert_file=None, key_file=None, instance="A", args=()):
        need_websockets()
        super().__init__("echo_daemon")
        self.name = name
        self.log_path = os.path.join(LOGDIR, name + ".daemon.log")
        self.err_path = os.path.join(LOGDIR, name + ".daemon.stderr")
        for p in (self.log_path, self.err_path):
            if os.path.exists(p):
                os.unlink(p)
        self.unix = unix
        self.port = None if unix else free_port()
        self.cert, self.key = cert_file, key_file
        self.instance = instance
        self.args = list(args)
        track(self)
        self.start()

    def start(self, instance=None, timeout=10.0, args=None):
        if instance:
            self.instance = instance
        if args is not None:
            self.args = list(args)
        where = ["--unix", self.unix] if self.unix else ["--port", str(self.port)]
        tls = ["--cert", self.cert, "--key", self.key] if self.cert else []
        cmd = [DAEMON_PY, ECHO_DAEMON] + where + tls + self.args + ["--instance", self.instance, "--log", self.log_path]
        # the same port or path again: a start while it is still taken is retried until the timeout
        return self.listen(cmd, timeout * SLOW, err_path=self.err_path, stdin=subprocess.DEVNULL)

    def stop(self):
        self.kill()

    def log(self):
        return read_text(self.log_path)

    def received(self):
        out = []
        for line in self.log().splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[0] == "recv":
                try:
                    out.append(json.loads(parts[2]))
                except ValueError:
                    out.append(parts[2])
        return out

    def paths(self):
        return re.findall(r"^open conn=\d+ path=(\S*)", self.log(), re.M)


# ---------------------------------------------------------------- shim helpers
def new_shim(name, url, *args, tls=True, env=None):
    """harness.Shim running the TLS build (tls=True) or the default build,
    with a fresh state directory."""
    shutil.rmtree(os.path.join(LOGDIR, "state", name), ignore_errors=True)
    with SHIM_LOCK:                  # harness.Shim runs harness.SHIM: swapped only while one starts
        saved = harness.SHIM
        harness.SHIM = TLS_BIN if tls else PLAIN_BIN
        try:
            s = Shim(name, url, *args, env=env)
        finally:
            harness.SHIM = saved
    return track(s)


def new_testd(name, args=(), instance="A"):
    return track(Daemon(name, args=args, instance=instance))


def started(t, s):
    """False (and why noted) when the shim exited right away: an option or a
    URL form it does not know yet."""
    time.sleep(0.15)
    if s.proc.poll() is None:
        return True
    t.check(False, "%s is running (it exited with %s: %s)" % (s.name, s.proc.returncode, s.log().strip()[-400:]))
    return False


def alive(t, s):
    return t.check(s.proc.poll() is None, "%s still running (exit status %s)" % (s.name, s.proc.returncode))


def count_log(s, pattern, flags=0):
    return len(re.findall(pattern, s.log(), flags))


def wait_log(s, pattern, timeout=5.0, count=1, flags=0):
    """Until the shim's log has `count` matches of pattern (False at the deadline,
    or at once if the shim exited)."""
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        if count_log(s, pattern, flags) >= count:
            return True
        if s.proc.poll() is not None:
            break
        time.sleep(0.01)
    return count_log(s, pattern, flags) >= count


def log_lines(s, pattern, flags=0):
    return [ln for ln in s.log().splitlines() if re.search(pattern, ln, flags)]


def failed_attempts_with(s, reason, flags=re.I):
    """Log lines of failed attempts whose reason matches (ignoring case)."""
    return [ln for ln in log_lines(s, FAILED_ATTEMPT) if re.search(reason, ln, flags)]


def wait_failed_attempts(s, reason, count, timeout, flags=re.I):
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        if len(failed_attempts_with(s, reason, flags)) >= count:
            return True
        if s.proc.poll() is not None:
            break
        time.sleep(0.01)
    return len(failed_attempts_with(s, reason, flags)) >= count


def tail(s, n=4):
    return " | ".join(s.log().strip().splitlines()[-n:])


def is_error(m, code=-32000):
    return isinstance(m, dict) and isinstance(m.get("error"), dict) and m["error"].get("code") == code


def has_result(m):
    return isinstance(m, dict) and "result" in m


def lost_noticed(s, seen, timeout=5.0):
    """Until the shim logged one more lost connection than `seen`."""
    return wait_log(s, r" lost: ", timeout, count=seen + 1)


def mcp_init(t, s, expect_version=None, timeout=10.0):
    i = s.request("initialize", INIT_PARAMS)
    m = s.wait_for(i, timeout)
    ok = t.check(has_result(m), "%s: initialize answered: %r (log: %s)" % (s.name, m, tail(s)))
    if ok and expect_version is not None:
        t.check(m["result"].get("serverInfo", {}).get("version") == expect_version,
                "%s: initialize answered by daemon %s: %r" % (s.name, expect_version, m["result"].get("serverInfo")))
    s.notify("notifications/initialized")
    return ok


def testd_methods(d, name):
    return [x for x in d.received() if isinstance(x, dict) and x.get("method") == name]


def no_insecure_warning(t, s):
    t.check(not re.search(r"(?i)insecure", s.log()), "%s: no 'insecure' warning while verifying" % s.name)


def finish(t, s, unanswered=()):
    """stdin EOF: exit 0 in time; every request answered exactly once."""
    alive(t, s)
    s.close_stdin()
    rc = s.wait_exit(5)
    t.check(rc == 0, "%s: exit 0 on stdin EOF (got %r)" % (s.name, rc))
    s.check_clean(t, unanswered)


def stop_all(*objs):
    for o in objs:
        if o is not None:
            try:
                o.stop()
            except Exception:
                pass


# ---------------------------------------------------------------- a. nginx + testd over wss://
@scenario
def tls_nginx_testd_traffic_and_replay(t):
    """MCP traffic over wss://localhost through nginx to testd (--ca-file),
    then testd restarts mid-session: the session is replayed."""
    if not (need_tls(t) and need_testd(t)):
        return
    d = s = ng = None
    try:
        d = new_testd("a-traffic-testd", args=["--mcp-strict"], instance="A")
        ng = Nginx("a-traffic", d.port, [tls_server(cert("server.pem"), cert("server.key"))])
        s = new_shim("a-traffic", "wss://localhost:%d/mcp" % ng.port, "--ca-file", CA, *COMMON)
        if not started(t, s):
            return
        if not mcp_init(t, s, "A"):
            return
        m = s.wait_for(s.request("echo", {"text": UTF8_TEXT, "n": [1, 2.5, None, True]}), 5)
        t.check(has_result(m) and m["result"].get("params") == {"text": UTF8_TEXT, "n": [1, 2.5, None, True]},
                "echo over TLS round-trips UTF-8 and JSON values: %r" % (m,))
        m = s.wait_for(s.request("tools/call", {"name": "echo", "arguments": {"x": 1}}), 5)
        t.check(has_result(m), "tools/call over TLS: %r" % (m,))
        m = s.wait_for(s.request("big", {"bytes": 3 << 20}), 15)
        t.check(has_result(m) and len(m["result"].get("data", "")) == 3 << 20, "a 3 MiB answer arrives whole over TLS")
        blob = "y" * (1 << 20)
        m = s.wait_for(s.request("echo", {"blob": blob}), 15)
        t.check(has_result(m) and m["result"].get("params") == {"blob": blob}, "a 1 MiB request goes out whole over TLS")
        m = s.wait_for(s.request("fragment", {"k": "v"}), 5)
        t.check(has_result(m) and m["result"].get("params") == {"k": "v"}, "fragmented answer with pings between fragments")
        m = s.wait_for(s.request("notify", {"count": 50}), 5)
        with s.lock:
            notes = [x["params"]["data"] for x in s.all if isinstance(x, dict) and x.get("method") == "notifications/message"]
        t.check(has_result(m) and notes == ["n %d" % k for k in range(1, 51)], "50 notifications in order before the result")
        d.cmd("ping over-tls")
        deadline = time.monotonic() + 3 * SLOW
        while "pong over-tls" not in d.log() and time.monotonic() < deadline:
            time.sleep(0.01)
        t.check("pong over-tls" in d.log(), "daemon's ping answered with a pong through TLS")
        paths = re.findall(r"request GET (\S+) HTTP", d.log())
        t.check(paths and all(p == "/mcp" for p in paths), "testd saw the request path /mcp through nginx: %r" % paths)
        # testd restarts mid-session
        seen = count_log(s, r" lost: ")
        d.kill()
        t.check(lost_noticed(s, seen), "shim noticed testd died behind nginx")
        time.sleep(0.3)
        d.start(instance="B")
        m = s.wait_for(s.request("tools/call", {"name": "echo", "arguments": {"after": "restart"}}), 10)
        t.check(has_result(m), "tools/call after testd restarted: strict daemon accepts it (session replayed): %r (log: %s)" % (m, tail(s)))
        inits = testd_methods(d, "initialize")
        t.check(len(inits) == 2 and inits[1].get("params") == inits[0].get("params"),
                "initialize replayed with the client's params (%d initialize seen)" % len(inits))
        t.check(len(testd_methods(d, "notifications/initialized")) == 2, "notifications/initialized replayed")
        t.check("MCP session replayed" in s.log(), "shim logged the replay")
        m = s.wait_for(s.request("echo"), 5)
        t.check(has_result(m) and m["result"].get("instance") == "B", "answered by the new testd: %r" % (m,))
        no_insecure_warning(t, s)
        finish(t, s)
        t.check(ng.wait_access(r'"GET /mcp HTTP/1.1" 101 sni="localhost" proto=TLSv1\.[23] '),
                "nginx: 101 over TLS >= 1.2 with SNI localhost (access log: %r)" % ng.access().strip()[-300:])
    finally:
        stop_all(s, ng, d)


@scenario
def tls_nginx_testd_outage_and_in_flight(t):
    """wss://127.0.0.1 (the IP address SAN; CA from ALWAYSUP_CA_FILE): an
    in-flight request when testd dies gets -32000; during the outage nginx
    answers 502 and requests queue; testd back: all answered, in order."""
    if not (need_tls(t) and need_testd(t)):
        return
    d = s = ng = None
    try:
        d = new_testd("a-outage-testd", instance="A")
        ng = Nginx("a-outage", d.port, [tls_server(cert("server.pem"), cert("server.key"))])
        s = new_shim("a-outage", "wss://127.0.0.1:%d/" % ng.port, *COMMON, env={"ALWAYSUP_CA_FILE": CA})
        if not started(t, s):
            return
        m = s.wait_for(s.request("echo", {"probe": 1}), 10)
        if not t.check(has_result(m), "connected over wss://127.0.0.1 (IP SAN) with ALWAYSUP_CA_FILE: %r (log: %s)" % (m, tail(s))):
            return
        slow = s.request("sleep", {"ms": 5000})
        time.sleep(0.2)
        seen = count_log(s, r" lost: ")
        t0 = time.monotonic()
        die = s.request("die")                       # testd _exit()s with both in flight
        m = s.wait_for(slow, 4)
        took = time.monotonic() - t0
        t.check(is_error(m, -32000), "in-flight request when testd dies gets -32000: %r" % (m,))
        t.timing(took < 2.0 * SLOW, "within 2 s (%.2f s)" % took)
        t.check(is_error(s.wait_for(die, 2), -32000), "the request that killed it gets -32000 too")
        t.check(lost_noticed(s, seen, 3), "shim logged the lost connection")
        d.proc.wait()
        t.check(wait_log(s, r"HTTP 502", 5), "nginx's 502 during the outage is logged (log: %s)" % tail(s))
        ids = [s.request("echo", {"n": k}) for k in range(10)]
        time.sleep(1.5)
        t.check(all(not s.answers(i) for i in ids), "requests wait in the queue while testd is down")
        alive(t, s)
        d.start(instance="B")
        for k, i in enumerate(ids):
            m = s.wait_for(i, 10)
            t.check(has_result(m) and m["result"].get("instance") == "B" and m["result"].get("params") == {"n": k},
                    "queued request %d answered by the new testd: %r" % (k, m))
        got = [x["params"]["n"] for x in d.received() if isinstance(x, dict) and x.get("method") == "echo"
               and isinstance(x.get("params"), dict) and "n" in x["params"]]
        t.check(got == list(range(10)), "queued requests sent in order: %r" % got)
        no_insecure_warning(t, s)
        finish(t, s)
    finally:
        stop_all(s, ng, d)


# ---------------------------------------------------------------- b. bad certificates
def refused_then_fixed(t, name, bad, reason, hosts=("localhost",), reasons=None):
    """nginx presents a bad certificate: every attempt fails with the OpenSSL
    verify reason (a warn line, then retries), the shim keeps running and a
    queued request waits; nginx reloaded with the good certificate: the shim
    connects by itself and the request is answered."""
    if not (need_tls(t) and need_testd(t)):
        return
    reasons = reasons or [reason] * len(hosts)
    d = ng = None
    shims = []
    try:
        d = new_testd(name + "-testd")
        ng = Nginx(name, d.port, [bad])
        # the fixture itself: OpenSSL (Python's ssl) sees the same reason
        for host, why in zip(hosts, reasons):
            got = verify_reason(ng.port, host=host)
            t.check(re.search(why, got, re.I) is not None, "fixture: OpenSSL itself refuses %s with %r (got %r)" % (host, why, got))
        for k, host in enumerate(hosts):
            shims.append(new_shim("%s-%d" % (name, k), "wss://%s:%d/" % (host, ng.port), "--ca-file", CA, *COMMON))
        ids = []
        for s in shims:
            if not started(t, s):
                return
            ids.append(s.request("echo", {"queued": s.name}))
        for s, host, why in zip(shims, hosts, reasons):
            wait_log(s, r"\bwarn\b.*(?:%s)" % why, 5, flags=re.I)
            warn = [ln for ln in log_lines(s, r"\bwarn\b") if re.search(why, ln, re.I)]
            t.check(bool(warn), "%s: the failed check is logged at warn with the reason %r (log: %s)" % (s.name, why, tail(s)))
            t.check(wait_failed_attempts(s, why, 2, 6), "%s: retried: at least 2 failed attempts logged with the reason (%d)"
                    % (s.name, len(failed_attempts_with(s, why))))
            alive(t, s)
        for s, i in zip(shims, ids):
            t.check(not s.answers(i), "%s: the queued request waits (not answered while the check fails)" % s.name)
        t.check(" open" not in d.log(), "no WebSocket ever reached testd through the bad certificate")
        ng.reconfigure([tls_server(cert("server.pem"), cert("server.key"))])
        for s, i in zip(shims, ids):
            m = s.wait_for(i, 10)
            t.check(has_result(m) and m["result"].get("params") == {"queued": s.name},
                    "%s: nginx reloaded with the good certificate: connected by itself, queued request answered: %r (log: %s)"
                    % (s.name, m, tail(s)))
            no_insecure_warning(t, s)
        for s in shims:
            finish(t, s)
    finally:
        stop_all(*shims)
        stop_all(ng, d)


@scenario
def tls_untrusted_ca_refused_then_fixed(t):
    # the chain up to the untrusted CA: "self-signed certificate in certificate chain"
    refused_then_fixed(t, "b-untrusted", tls_server(cert("untrusted-chain.pem"), cert("untrusted.key")), UNTRUSTED)


@scenario
def tls_wrong_host_refused_then_fixed(t):
    # DNS:wrong.example only: by name "hostname mismatch", by IP address OpenSSL says "IP address mismatch"
    refused_then_fixed(t, "b-wronghost", tls_server(cert("wrong.pem"), cert("wrong.key")), HOST_MISMATCH,
                       hosts=("localhost", "127.0.0.1"), reasons=(HOST_MISMATCH, IP_MISMATCH))


@scenario
def tls_expired_refused_then_fixed(t):
    refused_then_fixed(t, "b-expired", tls_server(cert("expired.pem"), cert("expired.key")), EXPIRED)


@scenario
def tls_verifies_by_default(t):
    """No --ca-file: the test CA is in no system store, so the good server
    (leaf only, no chain) is refused: "unable to get local issuer certificate"."""
    if not (need_tls(t) and need_testd(t)):
        return
    d = s = ng = None
    try:
        d = new_testd("b-default-testd")
        ng = Nginx("b-default", d.port, [tls_server(cert("server.pem"), cert("server.key"))])
        s = new_shim("b-default", "wss://localhost:%d/" % ng.port, *COMMON)
        if not started(t, s):
            return
        i = s.request("echo")
        t.check(wait_failed_attempts(s, NO_ISSUER, 2, 6),
                "without --ca-file a private CA is refused, retried (log: %s)" % tail(s))
        t.check(any(re.search(UNTRUSTED, ln, re.I) for ln in log_lines(s, r"\bwarn\b")), "logged at warn")
        t.check(not s.answers(i), "the request waits")
        t.check(" open" not in d.log(), "nothing reached testd")
        alive(t, s)
        s.stop()
    finally:
        stop_all(s, ng, d)


@scenario
def tls_system_trust_store_honours_SSL_CERT_FILE(t):
    """The system trust store is OpenSSL's default verify paths, which honour
    $SSL_CERT_FILE: pointed at the test CA, no --ca-file is needed."""
    if not (need_tls(t) and need_testd(t)):
        return
    d = s = ng = None
    try:
        d = new_testd("b-sysstore-testd")
        ng = Nginx("b-sysstore", d.port, [tls_server(cert("server.pem"), cert("server.key"))])
        s = new_shim("b-sysstore", "wss://localhost:%d/" % ng.port, *COMMON, env={"SSL_CERT_FILE": CA})
        if not started(t, s):
            return
        m = s.wait_for(s.request("echo"), 8)
        t.check(has_result(m), "SSL_CERT_FILE=test CA (the default verify paths): connected: %r (log: %s)" % (m, tail(s)))
        finish(t, s)
    finally:
        stop_all(s, ng, d)


@scenario
def tls_ca_file_replaces_system_store(t):
    """--ca-file is trusted instead of the system trust store, as curl's
    --cacert is (here the "system" store is $SSL_CERT_FILE = the other CA):
    a server from the --ca-file CA verifies, one from the system-store CA is
    refused and retried, so a private CA pins the daemon to that CA."""
    if not (need_tls(t) and need_testd(t)):
        return
    d = ng_ca = ng_sys = None
    shims = []
    try:
        d = new_testd("b-plus-testd")
        ng_ca = Nginx("b-plus-cafile", d.port, [tls_server(cert("server.pem"), cert("server.key"))])
        ng_sys = Nginx("b-plus-system", d.port, [tls_server(cert("untrusted.pem"), cert("untrusted.key"))])
        env = {"SSL_CERT_FILE": cert("other-ca.pem")}
        via_ca = new_shim("b-plus-cafile", "wss://localhost:%d/" % ng_ca.port, "--ca-file", CA, *COMMON, env=env)
        via_sys = new_shim("b-plus-system", "wss://localhost:%d/" % ng_sys.port, "--ca-file", CA, "--queue-timeout", "3",
                           *COMMON, env=env)
        shims = [via_ca, via_sys]
        if not all([started(t, x) for x in shims]):
            return
        m = via_ca.wait_for(via_ca.request("echo"), 8)
        t.check(has_result(m), "a server from the --ca-file CA verifies: %r (log: %s)" % (m, tail(via_ca)))
        i = via_sys.request("echo")
        m = via_sys.wait_for(i, 8)
        t.check(isinstance(m, dict) and "error" in m, "with --ca-file, a server from the system-store CA is refused "
                "(the CA file replaces the store): %r (log: %s)" % (m, tail(via_sys)))
        alive(t, via_sys)
        finish(t, via_ca)
        finish(t, via_sys)
    finally:
        stop_all(*shims)
        stop_all(ng_ca, ng_sys, d)


@scenario
def tls_sni_selects_the_server(t):
    """Two server blocks on one port: the default presents wrong.example, the
    one named localhost the good certificate. Only a client that sends SNI
    "localhost" gets (and accepts) the good one."""
    if not (need_tls(t) and need_testd(t)):
        return
    d = s = ng = None
    try:
        d = new_testd("b-sni-testd")
        ng = Nginx("b-sni", d.port, [tls_server(cert("wrong.pem"), cert("wrong.key"), server_name="_", default=True),
                                     tls_server(cert("server.pem"), cert("server.key"), server_name="localhost", default=False)])
        t.check(presented_cert(ng.port, "localhost") == pem_to_der(cert("server.pem"))
                and presented_cert(ng.port, "other.example") == pem_to_der(cert("wrong.pem")), "fixture: nginx picks the cert by SNI")
        s = new_shim("b-sni", "wss://localhost:%d/" % ng.port, "--ca-file", CA, *COMMON)
        if not started(t, s):
            return
        m = s.wait_for(s.request("echo"), 8)
        t.check(has_result(m), "SNI localhost sent: the good certificate, connected: %r (log: %s)" % (m, tail(s)))
        finish(t, s)
        t.check(ng.wait_access(r'101 sni="localhost" .* server=localhost'),
                "nginx saw SNI localhost (access log: %r)" % ng.access().strip()[-200:])
    finally:
        stop_all(s, ng, d)


# ---------------------------------------------------------------- c. mutual TLS
@scenario
def tls_mutual(t):
    """ssl_verify_client on: without a client certificate (or with one from
    an untrusted CA) every attempt fails, logged, and is retried; with
    --cert/--key (or ALWAYSUP_CERT/ALWAYSUP_KEY) it works. The SChannel
    build (it takes RSA client keys only) gets the RSA pairs, the OpenSSL
    build the EC ones."""
    if not (need_tls(t) and need_testd(t)):
        return
    d = ng = None
    shims = []
    rc, out, _ = run_bin(TLS_BIN, ["--version"], timeout=10.0)
    rsa = "tls (SChannel)" in out
    good, bad = ("client-rsa", "untrusted-client-rsa") if rsa else ("client", "untrusted")
    try:
        d = new_testd("c-mtls-testd")
        ng = Nginx("c-mtls", d.port, [tls_server(cert("server.pem"), cert("server.key"), client_ca=CA)])
        url = "wss://localhost:%d/" % ng.port
        none = new_shim("c-mtls-nocert", url, "--ca-file", CA, *COMMON)
        other = new_shim("c-mtls-othercert", url, "--ca-file", CA, "--cert", cert(bad + ".pem"), "--key", cert(bad + ".key"), *COMMON)
        flags = new_shim("c-mtls-flags", url, "--ca-file", CA, "--cert", cert(good + ".pem"), "--key", cert(good + ".key"), *COMMON)
        envs = new_shim("c-mtls-env", url, *COMMON, env={"ALWAYSUP_CA_FILE": CA, "ALWAYSUP_CERT": cert(good + ".pem"),
                                                         "ALWAYSUP_KEY": cert(good + ".key")})
        shims = [none, other, flags, envs]
        if not all([started(t, x) for x in shims]):
            return
        ids = {x.name: x.request("echo", {"from": x.name}) for x in shims}
        for x in (flags, envs):
            m = x.wait_for(ids[x.name], 8)
            t.check(has_result(m) and m["result"].get("params") == {"from": x.name},
                    "%s: with the client certificate: connected, answered: %r (log: %s)" % (x.name, m, tail(x)))
        # nginx answers 400 over TLS ("No required SSL certificate was sent"), or the handshake fails: either is a failed attempt
        why = r"400|certificate|handshake|alert|ssl|tls"
        for x in (none, other):
            t.check(wait_failed_attempts(x, why, 2, 6), "%s: failed attempts logged and retried (log: %s)" % (x.name, tail(x)))
            t.check(not x.answers(ids[x.name]), "%s: request waits" % x.name)
            alive(t, x)
        t.check(re.search(r'" 400 ', ng.access()) is not None or "SSL_do_handshake" in ng.errors(),
                "nginx refused the clients without a good certificate")
        for x in (flags, envs):
            finish(t, x)
        t.check(rc == 0, "the TLS build's --version (%r)" % (rc,))
        cn = "alwaysup-test-client-rsa" if rsa else "alwaysup-test-client"
        t.check(ng.wait_access(r'(?s)" 101 [^\n]*verify=SUCCESS dn="[^"]*CN=%s.*" 101 [^\n]*verify=SUCCESS' % cn),
                "nginx verified both client certificates (access log: %r)" % ng.access().strip()[-300:])
        for x in (none, other):
            x.stop()
    finally:
        stop_all(*shims)
        stop_all(ng, d)


# ---------------------------------------------------------------- d. --insecure
@scenario
def tls_insecure(t):
    """--insecure (and ALWAYSUP_INSECURE=1) against the untrusted-CA server:
    works, and warns "insecure" at every connect (two after a restart)."""
    if not (need_tls(t) and need_testd(t)):
        return
    d = ng = None
    shims = []
    try:
        d = new_testd("d-insecure-testd")
        ng = Nginx("d-insecure", d.port, [tls_server(cert("untrusted.pem"), cert("untrusted.key"))])
        url = "wss://localhost:%d/" % ng.port
        flag = new_shim("d-insecure-flag", url, "--insecure", *COMMON)
        env = new_shim("d-insecure-env", url, *COMMON, env={"ALWAYSUP_INSECURE": "1"})
        shims = [flag, env]
        if not all([started(t, x) for x in shims]):
            return
        for x in shims:
            m = x.wait_for(x.request("echo", {"n": 1}), 8)
            t.check(has_result(m), "%s: connected without verification: %r (log: %s)" % (x.name, m, tail(x)))
            t.check(wait_log(x, INSECURE_WARN, 2), "%s: a warn line says 'insecure'" % x.name)
        seen = {x.name: count_log(x, r" lost: ") for x in shims}
        ng.restart()
        for x in shims:
            t.check(lost_noticed(x, seen[x.name]), "%s: nginx restart noticed" % x.name)
            m = x.wait_for(x.request("echo", {"n": 2}), 10)
            t.check(has_result(m), "%s: reconnected after the restart: %r (log: %s)" % (x.name, m, tail(x)))
            n = count_log(x, INSECURE_WARN)
            t.check(n >= 2, "%s: the insecure warning at every connect: %d after two connects" % (x.name, n))
        for x in shims:
            finish(t, x)
    finally:
        stop_all(*shims)
        stop_all(ng, d)


# ---------------------------------------------------------------- e. websockets serving TLS itself
@scenario
def tls_python_websockets_daemon(t):
    """A Python websockets daemon with its own ssl context: initialize and
    calls over wss://, a restart on the same port, the session replayed."""
    if not need_tls(t):
        return
    d = s = None
    try:
        d = EchoDaemon("e-pytls", cert_file=cert("server-chain.pem"), key_file=cert("server.key"), instance="A")
        s = new_shim("e-pytls", "wss://localhost:%d/ws" % d.port, "--ca-file", CA, *COMMON)
        if not started(t, s):
            return
        mcp_init(t, s, "A")
        params = {"name": "echo", "arguments": {"text": UTF8_TEXT}}
        m = s.wait_for(s.request("tools/call", params), 5)
        t.check(has_result(m) and m["result"].get("echo") == params, "tools/call echoed over wss:// by websockets: %r" % (m,))
        big = {"blob": "z" * (2 << 20)}
        m = s.wait_for(s.request("echo", big), 15)
        t.check(has_result(m) and m["result"].get("echo") == big, "2 MiB both ways over TLS")
        t.check(d.paths() == ["/ws"], "daemon saw request path /ws: %r" % d.paths())
        seen = count_log(s, r" lost: ")
        d.kill()
        t.check(lost_noticed(s, seen), "shim noticed the daemon died")
        time.sleep(0.3)
        d.start(instance="B")
        m = s.wait_for(s.request("tools/call", params), 10)
        t.check(has_result(m) and m["result"].get("instance") == "B", "answered by the restarted daemon: %r (log: %s)" % (m, tail(s)))
        inits = [x for x in d.received() if isinstance(x, dict) and x.get("method") == "initialize"]
        t.check(len(inits) == 2, "initialize replayed to the restarted daemon (%d)" % len(inits))
        no_insecure_warning(t, s)
        finish(t, s)
    finally:
        stop_all(s, d)


@scenario
def tls_refuses_tls_1_1(t):
    """A daemon that speaks TLS 1.0/1.1 only is refused (TLS >= 1.2), retried;
    restarted with TLS 1.2+, the shim connects by itself."""
    if not need_tls(t):
        return
    d = s = None
    try:
        d = EchoDaemon("e-tls11", cert_file=cert("server.pem"), key_file=cert("server.key"), instance="OLD", args=["--max-tls", "1.1"])
        s = new_shim("e-tls11", "wss://localhost:%d/" % d.port, "--ca-file", CA, *COMMON)
        if not started(t, s):
            return
        i = s.request("echo", {"q": 1})
        # the reason depends on the server: a protocol_version alert, or (Python's asyncio server) just EOF
        t.check(wait_failed_attempts(s, r"TLS|SSL|protocol|version|handshake", 2, 6),
                "a TLS 1.1 server: failed attempts, retried (log: %s)" % tail(s))
        t.check(not s.answers(i), "the request waits")
        t.check(" path=" not in d.log(), "no WebSocket over TLS 1.1")
        alive(t, s)
        d.kill()
        d.start(instance="NEW", args=[])
        m = s.wait_for(i, 10)
        t.check(has_result(m) and m["result"].get("instance") == "NEW", "the daemon back with TLS 1.2+: connected, answered: %r (log: %s)"
                % (m, tail(s)))
        finish(t, s)
    finally:
        stop_all(s, d)


# ---------------------------------------------------------------- f. Unix domain sockets
def socket_dir():
    """build/test-logs/tls/unix, unless that path is too long for sun_path
    (108 bytes with the file name): then a short directory under /tmp."""
    d = os.path.join(LOGDIR, "unix")
    if len(d) + 24 < 100:
        os.makedirs(d, exist_ok=True)
        return d
    return tempfile.mkdtemp(prefix="alwaysup-tls-")


@scenario
def unix_socket_python_daemon(t):
    """ws+unix:///path (request path /), ws+unix:/path:/mcp and
    ws+unix:///path:/mcp (request path /mcp); the socket file missing at
    first ("unreachable", retried); the daemon restarted with the socket
    file removed and recreated: every shim reconnects."""
    if not os.access(PLAIN_BIN, os.X_OK):
        t.check(False, "%s missing (make)" % rel(PLAIN_BIN))
        return
    d = early = None
    shims = []
    try:
        path = os.path.join(socket_dir(), "echo.sock")
        if os.path.exists(path):
            os.unlink(path)
        early = new_shim("f-unix-early", "ws+unix://" + path, "--queue-timeout", "1", *COMMON, tls=False)
        root = new_shim("f-unix-root", "ws+unix://" + path, *COMMON, tls=False)
        short = new_shim("f-unix-mcp", "ws+unix:%s:/mcp" % path, *COMMON, tls=False)
        triple = new_shim("f-unix-triple", "ws+unix://%s:/mcp" % path, *COMMON, tls=False)
        shims = [root, short, triple]
        if not all([started(t, x) for x in [early] + shims]):
            return
        # no socket file yet
        waiting = {x.name: x.request("echo", {"from": x.name}) for x in (short, triple)}
        m = early.wait_for(early.request("echo", {"early": 1}), 5)
        t.check(is_error(m, -32000) and "unreachable" in m["error"].get("message", ""),
                "missing socket file: the queued request gets -32000 'unreachable' after --queue-timeout: %r" % (m,))
        t.check(wait_failed_attempts(early, r"no such file|ENOENT", 2, 5),
                "missing socket file logged ('No such file or directory') and retried (log: %s)" % tail(early))
        alive(t, early)
        early.check_clean(t)
        early.stop()
        d = EchoDaemon("f-unix", unix=path, instance="A")
        for x in (short, triple):
            m = x.wait_for(waiting[x.name], 8)
            t.check(has_result(m) and m["result"].get("path") == "/mcp" and m["result"].get("echo") == {"from": x.name},
                    "%s: connected once the socket exists, request path /mcp: %r (log: %s)" % (x.name, m, tail(x)))
        m = root.wait_for(root.request("echo", {"n": 1}), 8)
        t.check(has_result(m) and m["result"].get("path") == "/", "ws+unix://PATH: request path /: %r (log: %s)" % (m, tail(root)))
        for x in shims:
            mcp_init(t, x, "A")
        paths = sorted(d.paths())
        t.check(paths == ["/", "/mcp", "/mcp"], "daemon saw the paths /, /mcp, /mcp: %r" % paths)
        # restart: the socket file removed, then made again
        seen = {x.name: count_log(x, r" lost: ") for x in shims}
        d.kill()
        for x in shims:
            t.check(lost_noticed(x, seen[x.name]), "%s: the daemon's death noticed" % x.name)
        os.unlink(path)
        time.sleep(0.5)
        ids = {x.name: x.request("echo", {"after": x.name}) for x in shims}
        d.start(instance="B")
        for x in shims:
            m = x.wait_for(ids[x.name], 8)
            t.check(has_result(m) and m["result"].get("instance") == "B" and m["result"].get("echo") == {"after": x.name},
                    "%s: reconnected to the new socket, queued request answered: %r (log: %s)" % (x.name, m, tail(x)))
        inits = [x for x in d.received() if isinstance(x, dict) and x.get("method") == "initialize"]
        t.check(len(inits) == 6, "each shim's initialize replayed to the restarted daemon (%d of 6 seen)" % len(inits))
        for x in shims:
            finish(t, x)
    finally:
        stop_all(*shims)
        stop_all(early, d)


# ---------------------------------------------------------------- g. builds
def run_bin(binary, args, env=None, timeout=5.0):
    e = {k: v for k, v in os.environ.items() if not k.startswith("ALWAYSUP_")}
    e["XDG_STATE_HOME"] = os.path.join(LOGDIR, "state", "run-bin")
    e.update(env or {})
    rc, out, err = harness.run_once(WRAP + [binary] + list(args), env=e, timeout=timeout * SLOW)
    return rc, out, err if rc is not None else "(still running after %.0f s)" % timeout


@scenario
def default_build_refuses_wss(t):
    """The default build (no TLS): wss:// exits 2 at start, naming the rebuild
    command (TLS=openssl), from the command line and from $ALWAYSUP_URL."""
    if not os.access(PLAIN_BIN, os.X_OK):
        t.check(False, "%s missing (make)" % rel(PLAIN_BIN))
        return
    for how, args, env in (("argument", ["wss://localhost:%d/" % free_port()], None),
                           ("ALWAYSUP_URL", [], {"ALWAYSUP_URL": "wss://localhost:%d/mcp" % free_port()})):
        rc, out, err = run_bin(PLAIN_BIN, args, env)
        t.check(rc == 2, "wss:// in the %s: exit 2 at start (got %r: %s)" % (how, rc, err.strip()[-200:]))
        t.check("TLS=openssl" in err, "wss:// in the %s: the message names the rebuild (TLS=openssl): %r" % (how, err.strip()[-300:]))
        t.check(out == "", "nothing on stdout")


@scenario
def version_lists_transports(t):
    rc, out, err = run_bin(PLAIN_BIN, ["--version"])
    t.check(rc == 0, "default build --version exits 0 (%r)" % (rc,))
    line = [ln for ln in (out + err).splitlines() if "transports:" in ln]
    t.check(bool(line) and re.search(r"transports: tcp, unix\b", line[0]) is not None and "tls" not in line[0],
            "default build: 'transports: tcp, unix' (got %r)" % (line or (out + err).strip()[-200:],))
    if not need_tls(t):
        return
    rc, out, err = run_bin(TLS_BIN, ["--version"])
    t.check(rc == 0, "TLS build --version exits 0 (%r)" % (rc,))
    line = [ln for ln in (out + err).splitlines() if "transports:" in ln]
    t.check(bool(line) and re.search(r"transports: tcp, unix, tls \(OpenSSL 3\.\d+\.\d+[^)]*\)", line[0]) is not None,
            "TLS build: 'transports: tcp, unix, tls (OpenSSL 3.x.y)' (got %r)" % (line or (out + err).strip()[-200:],))


@scenario
def tls_build_plain_transports_and_mismatches(t):
    """The TLS build still speaks ws:// and ws+unix:; and the wrong protocol
    on either side is a failed attempt, retried, never a crash or a hang:
    wss:// to plain testd, wss:// to a daemon that never answers the
    ClientHello (--handshake-timeout 0.5), ws:// to nginx's TLS port."""
    if not (need_tls(t) and need_testd(t)):
        return
    d = hang = ng = u = None
    shims = []
    try:
        d = new_testd("g-plain-testd", instance="P")
        hang = new_testd("g-hang-testd")
        hang.cmd("mode hang-handshake")
        ng = Nginx("g-mismatch", d.port, [tls_server(cert("server.pem"), cert("server.key"))])
        path = os.path.join(socket_dir(), "tlsbuild.sock")
        if os.path.exists(path):
            os.unlink(path)
        u = EchoDaemon("g-tlsbuild-unix", unix=path, instance="U")
        plain = new_shim("g-plain", d.url("/"), *COMMON)
        unix = new_shim("g-unix", "ws+unix:%s:/mcp" % path, *COMMON)
        to_plain = new_shim("g-wss-to-plain", "wss://localhost:%d/" % d.port, "--ca-file", CA, "--handshake-timeout", "1", *COMMON)
        to_hang = new_shim("g-wss-to-hang", "wss://localhost:%d/" % hang.port, "--ca-file", CA, "--handshake-timeout", "0.5", *COMMON)
        to_tls = new_shim("g-ws-to-tls", "ws://127.0.0.1:%d/" % ng.port, *COMMON)
        shims = [plain, unix, to_plain, to_hang, to_tls]
        if not all([started(t, x) for x in shims]):
            return
        m = plain.wait_for(plain.request("echo", {"plain": 1}), 5)
        t.check(has_result(m) and m["result"].get("instance") == "P", "TLS build over plain ws://: %r" % (m,))
        no_insecure_warning(t, plain)
        m = unix.wait_for(unix.request("echo", {"unix": 1}), 5)
        t.check(has_result(m) and m["result"].get("path") == "/mcp", "TLS build over ws+unix: %r" % (m,))
        waiting = {x.name: x.request("echo") for x in (to_plain, to_hang, to_tls)}
        t.check(wait_failed_attempts(to_plain, r".", 2, 8), "wss:// to a plain ws:// daemon: failed attempts, retried (log: %s)" % tail(to_plain))
        t.check(wait_failed_attempts(to_hang, r".", 2, 6), "wss:// to a daemon silent after the ClientHello: bounded by the "
                "handshake timeout, retried (log: %s)" % tail(to_hang))
        t.check(wait_failed_attempts(to_tls, r"400", 2, 6), "ws:// to nginx's TLS port: its HTTP 400 logged, retried (log: %s)" % tail(to_tls))
        for x in (to_plain, to_hang, to_tls):
            t.check(not x.answers(waiting[x.name]), "%s: request waits" % x.name)
            alive(t, x)
        for x in (plain, unix):
            finish(t, x)
        for x in (to_plain, to_hang, to_tls):
            x.stop()
    finally:
        stop_all(*shims)
        stop_all(ng, d, hang, u)


# ---------------------------------------------------------------- runner
def main():
    chosen, jobs = scenario_args(SCENARIOS, 4)
    if chosen is None:
        return 0
    t_start = time.monotonic()
    for name in os.listdir(LOGDIR):
        if name.endswith(".log") or name.endswith(".stderr"):
            os.unlink(os.path.join(LOGDIR, name))
    try:
        make_certs(CERTS)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        print("  FAIL %s" % e)
        print("0 passed, 1 failed")
        return 1
    if not os.access(TLS_BIN, os.X_OK):
        print("  note: %s missing (make build/alwaysup-tls): the TLS scenarios fail at once" % rel(TLS_BIN), flush=True)

    def kill_children():
        with OBJECTS_LOCK:
            for o in OBJECTS:
                p = getattr(o, "proc", None)
                if p is not None and p.poll() is None:
                    p.kill()
    results = run_scenarios(chosen, jobs, first=("unix_socket_python_daemon", "tls_mutual", "tls_insecure"),
                            budget=TOTAL_BUDGET, on_budget=kill_children)
    scan = Checks("sanitizer-and-valgrind-reports")
    scan_logs(scan, LOGDIR)
    results.append(scan)
    print("  %s %-40s %4d logs" % ("ok  " if not scan.failed else "FAIL", scan.name, scan.passed + scan.failed))
    for n in scan.notes:
        print("       " + n)
    print("  (%.1f s in all; logs in %s)" % (time.monotonic() - t_start, rel(LOGDIR)))
    return summary(results)


if __name__ == "__main__":
    sys.exit(main())
