#!/usr/bin/env python3
"""alwaysup --check against the test daemon's fault modes and real peers:
a live daemon, a dead port, a 401, a 502, a refused subprotocol, a hanging
upgrade, a daemon that never answers initialize or refuses it, a name that
does not resolve, the EX-AI daemon (good and bad token) and TLS (untrusted,
then trusted with --ca-file). Each report is checked line by line: the
verdict, the exit status, the failed step and its advice, and that stdout
holds the report only.

    tests/check/check.py [-j N] [-k REGEX] [--list] [--show]

--show prints every report (the closing note's examples).
Environment: ALWAYSUP_BIN, ALWAYSUP_TLS_BIN (default build/alwaysup-tls),
ALWAYSUP_WRAP, ALWAYSUP_SLOW. Ends with "N passed, M failed"."""
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from harness import BUILD, SHIM, SLOW, WRAP, Daemon, PeerDaemon, Skip, free_port, run_once, run_scenarios, scenario_args, summary  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
TLS_BIN = os.environ.get("ALWAYSUP_TLS_BIN", os.path.join(BUILD, "alwaysup-tls"))
PY = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
CERTS = os.path.join(BUILD, "test-certs")
SHOW = "--show" in sys.argv
if SHOW:
    sys.argv.remove("--show")
SCENARIOS = []
REPORTS = []


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


def check(args, binary=SHIM, env=None, timeout=60):
    """Runs alwaysup --check ARGS; returns (exit status, stdout, stderr, seconds)."""
    e = dict(os.environ)
    e.update(env or {})
    t0 = time.monotonic()
    rc, out, err = run_once(WRAP + [binary, "--check"] + list(args), env=e, timeout=timeout * SLOW)
    REPORTS.append("$ alwaysup --check " + " ".join(args) + "\n" + out)
    return rc, out, err, time.monotonic() - t0


def step(out, name):
    """The report line of step NAME: (status, the rest), or (None, "")."""
    m = re.search(r"^  (\S+)\s+%s\s+(?:<?\d+ ms)?\s*(.*)$" % re.escape(name), out, re.M)
    return (m.group(1), m.group(2)) if m else (None, "")


def report_only(t, out):
    """stdout is a report for a person: no JSON-RPC line leaks into it."""
    t.check(out.startswith("alwaysup --check "), "the report starts with its heading: %r" % out[:80])
    t.check(not re.search(r"^\s*\{", out, re.M), "no JSON on stdout in --check mode")
    t.check(re.search(r"^(OK|FAILED): ", out, re.M) is not None, "a verdict line ends the report")


def failed_at(t, rc, out, name, reason, advice):
    t.check(rc == 1, "exit status 1 for no session (got %r)" % rc)
    status, rest = step(out, name)
    t.check(status == "FAIL", "step %s failed (report:\n%s)" % (name, out))
    t.check(re.search(reason, rest) is not None, "the %s failure says %r: %r" % (name, reason, rest))
    t.check(re.search(r"^        fix: .*" + advice, out, re.M) is not None, "advice %r given (report:\n%s)" % (advice, out))
    t.check(re.search(r"^FAILED: no MCP session with ", out, re.M) is not None, "verdict FAILED")
    report_only(t, out)


@scenario
def live_daemon(t):
    d = Daemon("check-live")
    try:
        rc, out, err, _ = check([d.url("/mcp")])
        t.check(rc == 0, "exit status 0 for a working session (got %r, stderr %r)" % (rc, err[-300:]))
        for name in ("resolve", "connect", "upgrade", "initialize", "tools/list", "ping"):
            t.check(step(out, name)[0] == "ok", "step %s ok (report:\n%s)" % (name, out))
        t.check("server testd check-live" in step(out, "initialize")[1], "initialize names the server: %r" % step(out, "initialize")[1])
        t.check(re.search(r"^\d+ tools?\b", step(out, "tools/list")[1]) is not None, "tools counted: %r" % step(out, "tools/list")[1])
        t.check(re.search(r"^OK: an MCP session works with ws://127\.0\.0\.1:%d/mcp" % d.port, out, re.M) is not None, "verdict OK")
        report_only(t, out)
        got = d.received()
        init = [m for m in got if isinstance(m, dict) and m.get("method") == "initialize"]
        t.check(len(init) == 1 and init[0].get("id") == 1 and isinstance(init[0].get("params", {}).get("clientInfo"), dict),
                "one initialize as a client sends it, integer id: %r" % init)
        t.check(any(isinstance(m, dict) and m.get("method") == "notifications/initialized" for m in got), "notifications/initialized sent")
        t.check(any(isinstance(m, dict) and m.get("method") == "tools/list" for m in got), "tools/list asked of the daemon")
        t.check(any(isinstance(m, dict) and m.get("method") == "ping" for m in got), "the ping reached the daemon")
        t.check(re.search(r"^conn \d+ close 1000", d.log(), re.M) is not None, "the check ends with close 1000")
        t.check(len([ln for ln in d.log().splitlines() if re.match(r"conn \d+ open", ln)]) == 1, "exactly one connection: no retry")
    finally:
        d.stop()


@scenario
def dead_port(t):
    rc, out, _, _ = check(["ws://127.0.0.1:%d/" % free_port()])
    failed_at(t, rc, out, "connect", r"[Cc]onnection refused", r"is the daemon running on that port")
    t.check(step(out, "resolve")[0] == "ok", "resolve ok before the failed connect")


def testd_fault(name, args=(), cmd=None, flags=(), step_name="upgrade", reason="", advice="", then=None):
    """A scenario: testd with a fault (a --mode, or a control command), one
    --check that must fail at STEP_NAME with REASON and ADVICE, then more
    checks (then(t, d)) on the same daemon."""
    def run(t):
        d = Daemon("check-" + name, args=list(args))
        try:
            if cmd:
                t.check(d.cmd(cmd) == "ok", "testd took %r" % cmd)
            rc, out, _, secs = check(list(flags) + [d.url()])
            failed_at(t, rc, out, step_name, reason, advice)
            t.check(secs < 30 * SLOW, "one attempt, bounded by its timeouts, no retry: %.1f s" % secs)
            opens = [ln for ln in d.log().splitlines() if re.match(r"conn \d+ (open|accept)", ln)]
            t.check(len([ln for ln in opens if " accept" in ln]) <= 1, "exactly one connection: no retry (%d)" % len(opens))
            if then:
                then(t, d)
        finally:
            d.stop()
    run.__name__ = name
    return scenario(run)


def _401_with_a_header(t, d):
    rc, out, _, _ = check(["-H", "Authorization: Bearer s3cret-value", d.url()])
    failed_at(t, rc, out, "upgrade", r"HTTP 401", r"did not accept the credentials")
    t.check("s3cret-value" not in out, "the header's value never appears in the report")


def _subprotocol_advice_works(t, d):
    rc, out, _, _ = check(["--subprotocol", "", d.url()])
    t.check(rc == 0, "the advice works: --subprotocol '' gives a session (report:\n%s)" % out)
    t.check("no subprotocol" in step(out, "upgrade")[1], "upgrade without a subprotocol: %r" % step(out, "upgrade")[1])


ONE_SECOND = ("--handshake-timeout", str(1 * SLOW))
testd_fault("http_401", args=["--mode", "http401"], reason=r"HTTP 401", advice=r"-H 'Authorization: Bearer \.\.\.' or --header-env",
            then=_401_with_a_header)
testd_fault("http_502", args=["--mode", "http502"], reason=r"HTTP 502 Bad Gateway", advice=r"HTTP 502 from a proxy in front of the daemon")
testd_fault("refused_subprotocol", args=["--mode", "no-subprotocol"], reason=r"HTTP 400", advice=r"try --subprotocol ''",
            then=_subprotocol_advice_works)
testd_fault("hanging_upgrade", args=["--mode", "hang-handshake"], flags=ONE_SECOND, reason=r"no handshake answer .* within",
            advice=r"is this port a WebSocket server")
testd_fault("never_answers_initialize", cmd="initdelay 600000", flags=ONE_SECOND, step_name="initialize",
            reason=r"did not answer initialize within", advice=r"--daemon-protocol exai",
            then=lambda t, d: t.check(any(m.get("method") == "initialize" for m in d.received() if isinstance(m, dict)),
                                      "the daemon did get the initialize"))
testd_fault("refuses_initialize", cmd="initerror already", step_name="initialize", reason=r"error -32600: .*already initialized",
            advice=r"another client's session")
testd_fault("crashes_at_initialize", cmd="initdrop 5", step_name="initialize", reason=r"closed|lost|end",
            advice=r"the daemon closed the connection")


@scenario
def name_does_not_resolve(t):
    rc, out, _, _ = check(["--connect-timeout", str(3 * SLOW), "ws://no-such-host.invalid:8079/"])
    failed_at(t, rc, out, "resolve", r"cannot resolve no-such-host\.invalid", r"the host name does not resolve")


@scenario
def bad_flag(t):
    rc, out, err, _ = check(["--no-such-flag", "ws://127.0.0.1:1/"])
    t.check(rc == 2, "exit status 2 for a bad flag (got %r)" % rc)
    t.check("unknown option" in err and out == "", "the reason on stderr, nothing on stdout")
    REPORTS.pop()


def exai_daemon(name, token):
    log = os.path.join(BUILD, "test-logs", name + ".log")
    return PeerDaemon("exai_daemon").listen([PY, os.path.join(ROOT, "tests", "exai", "exai_daemon.py"), "--port", "0",
                                             "--token", token, "--log", log])


@scenario
def exai_daemon_token(t):
    try:
        import websockets  # noqa: F401
    except ImportError:
        raise Skip("python3-websockets missing (tools/install-deps.sh)")
    d = exai_daemon("check-exai", "tok-123")
    try:
        url = "ws://127.0.0.1:%d/" % d.port
        rc, out, _, _ = check(["--daemon-protocol", "exai", url], env={"EXAI_WS_TOKEN": "tok-123"})
        t.check(rc == 0, "a session with the right token (report:\n%s)" % out)
        t.check(step(out, "hello")[0] == "ok", "hello answered")
        t.check(re.search(r"^[1-9]\d* tools\b", step(out, "tools/list")[1]) is not None, "the daemon's tools counted: %r" % step(out, "tools/list")[1])
        rc, out, _, _ = check(["--daemon-protocol", "exai", url], env={"EXAI_WS_TOKEN": "wrong"})
        failed_at(t, rc, out, "hello", r"invalid token", r"check the token")
        t.check("tok-123" not in out and "wrong" not in out.replace("wrong token", ""), "no token in the report")
    finally:
        d.stop()


@scenario
def exai_daemon_without_the_flag(t):
    """The seed daemon reached as if it spoke MCP: it closes at the first
    message that is not its hello, and the advice names the flag."""
    try:
        import websockets  # noqa: F401
    except ImportError:
        raise Skip("python3-websockets missing (tools/install-deps.sh)")
    d = exai_daemon("check-exai-mcp", "tok-123")
    try:
        rc, out, _, _ = check(["ws://127.0.0.1:%d/" % d.port])
        failed_at(t, rc, out, "initialize", r"invalid hello", r"--daemon-protocol exai")
    finally:
        d.stop()


@scenario
def tls_untrusted_then_ca_file(t):
    if not os.access(TLS_BIN, os.X_OK):
        raise Skip("%s missing (make build/alwaysup-tls)" % TLS_BIN)
    try:
        import websockets  # noqa: F401
    except ImportError:
        raise Skip("python3-websockets missing (tools/install-deps.sh)")
    subprocess.run(["bash", os.path.join(ROOT, "tests", "tls", "make_certs.sh"), CERTS], check=True)
    # must=False: a daemon that does not come up is this scenario's failed check
    d = PeerDaemon("echo_daemon").listen([PY, os.path.join(ROOT, "tests", "tls", "echo_daemon.py"), "--port", "0", "--cert",
                                          os.path.join(CERTS, "server.pem"), "--key", os.path.join(CERTS, "server.key")],
                                         must=False)
    try:
        t.check(d.listening_at is not None, "TLS echo daemon up: %r" % d.line)
        url = "wss://localhost:%s/" % d.line.split()[1]
        env = {"SSL_CERT_FILE": os.path.join(CERTS, "other-ca.pem")}   # a system store without the test CA
        rc, out, _, _ = check([url], binary=TLS_BIN, env=env)
        failed_at(t, rc, out, "TLS handshake", r"certificate verify failed", r"--ca-file")
        rc, out, _, _ = check(["--ca-file", os.path.join(CERTS, "ca.pem"), url], binary=TLS_BIN, env=env)
        t.check(step(out, "TLS handshake")[0] == "ok" and "verified" in step(out, "TLS handshake")[1],
                "with --ca-file the TLS step is verified (report:\n%s)" % out)
        t.check(step(out, "initialize")[0] == "ok", "and the session works over wss://")
        t.check(rc == 0, "exit status 0 over wss:// (got %r)" % rc)
    finally:
        d.stop()


@scenario
def real_daemon_supergateway(t):
    """server-everything behind supergateway (software we did not write): the
    session, and every list counted with the names it gave."""
    mods = os.path.join(ROOT, "tests", "node_modules")
    sg = os.path.join(mods, "supergateway", "dist", "index.js")
    ev = os.path.join(mods, "@modelcontextprotocol", "server-everything", "dist", "index.js")
    if not (os.path.exists(sg) and os.path.exists(ev)):
        raise Skip("tests/node_modules lacks supergateway or server-everything (tools/install-deps.sh)")
    port = free_port()
    p = subprocess.Popen(["node", sg, "--stdio", 'node "%s" stdio' % ev, "--outputTransport", "ws", "--port", str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 30 * SLOW
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line or re.search(r"Listening on port \d+", line):
                break
        rc, out, _, _ = check(["ws://127.0.0.1:%d/message" % port])
        t.check(rc == 0, "a session with server-everything through supergateway (report:\n%s)" % out)
        t.check("mcp-servers/everything" in step(out, "initialize")[1], "initialize names server-everything: %r" % step(out, "initialize")[1])
        for name in ("tools", "prompts", "resources"):
            st, rest = step(out, name + "/list")
            t.check(st == "ok" and re.match(r"[1-9]\d* %s" % name[:-1], rest) is not None, "%s counted: %r" % (name, rest))
        t.check(step(out, "ping")[0] == "ok", "ping answered by the real server")
    finally:
        os.killpg(p.pid, 15)
        p.wait()


def main():
    chosen, jobs = scenario_args(SCENARIOS, 4)
    if chosen is None:
        return 0
    results = run_scenarios(chosen, jobs)
    if SHOW:
        print("\n".join(REPORTS))
    return summary(results)


if __name__ == "__main__":
    sys.exit(main())
