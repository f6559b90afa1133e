#!/usr/bin/python3
"""WebSocket conformance run: the Autobahn|Testsuite fuzzing-server cases of
sections 1-7, 9 and 10 (301 cases), played by `build/testd --conformance`
against `build/echo_client` (the echo client built on alwaysup.h).

    tools/conformance.py [--scale quick|full] [--out tests/CONFORMANCE.md]
                         [--transport ws|wss|both] [--cases LIST]
                         [--client PATH] [--tls-client PATH] [--testd PATH]

Builds nothing: build/testd and build/echo_client (for wss://,
build/echo_client-tls) must exist. Prints one line
per case and a summary, writes the table as Markdown to --out, exits non-zero
if any case FAILED (or the client or testd misbehaved), and ends with the line
"N passed, M failed" (N: cases not FAILED) for tests/run.sh.

--scale quick (for `make test`) scales section 9 down: message and fragment
sizes / 16, 100 round trips instead of 1000. --scale full plays the suite's
exact sizes and counts (`make conformance`). --cases takes testd's filter,
e.g. "2.*,6.4.*,7.1.6". --client may be another build of the echo client
(sanitized, or deliberately broken to check that the judging can fail).

--transport wss plays the same cases over TLS: nginx terminates wss:// in
front of testd (tests/tls/tlsnginx.py, certificates from
tests/tls/make_certs.sh, trusted with the client's --ca-file) and the client
is --tls-client (default build/echo_client-tls). --transport both runs ws://
then wss:// and gives the table a wss:// verdict column; every case of both
runs counts. Needs nginx and the openssl CLI for wss://; logs, certificates
and nginx's configuration go to build/test-logs/conformance-tls/.
Standard library only.
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERDICTS = ["OK", "NON-STRICT", "INFO", "FAILED"]
TLS_LOGDIR = os.path.join(ROOT, "build", "test-logs", "conformance-tls")


def line_for(case):
    return "%-8s %-10s %9.3fs  %s" % (case["id"], case["verdict"], case["duration"], case["description"])


def md_cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def start_tls_front(testd_port):
    """nginx terminating TLS in front of testd: (nginx, wss:// base URL, CA file)."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "tls"))
    import tlsnginx
    os.makedirs(TLS_LOGDIR, exist_ok=True)
    certs = tlsnginx.make_certs(os.path.join(TLS_LOGDIR, "certs"))
    ng = tlsnginx.Nginx("conformance", testd_port,
                        [tlsnginx.tls_server(os.path.join(certs, "server.pem"), os.path.join(certs, "server.key"))],
                        TLS_LOGDIR)
    return ng, "wss://localhost:%d" % ng.port, os.path.join(certs, "ca.pem")


def run_once(args, transport, client_path, timeout):
    """One pass of the cases over ws:// or wss://: (cases, testd's report data,
    seconds, problems)."""
    tmp = tempfile.mkdtemp(prefix="conformance-")
    report = os.path.join(tmp, "report.json")
    cmd = [args.testd, "--conformance", "--section9-scale", args.scale, "--port", "0", "--report", report]
    if args.cases:
        cmd += ["--cases", args.cases]
    testd = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    first = testd.stdout.readline().split()
    if len(first) != 2 or first[0] != "listening":
        testd.kill()
        os.rmdir(tmp)
        return [], {}, 0.0, ["testd did not start (%r)" % first]
    port = int(first[1])
    problems = []
    nginx = None
    base, extra = "ws://127.0.0.1:%d" % port, []
    if transport == "wss":
        try:
            nginx, base, ca = start_tls_front(port)
            extra = ["--ca-file", ca]
        except Exception as e:                    # no nginx, no openssl, nginx would not start
            problems.append("no TLS front for testd: %s" % e)
            base = None

    live = {}                      # id -> case, as testd reports them

    def reader():
        for raw in testd.stdout:
            f = raw.rstrip("\n").split("\t")
            if f[0] != "result" or len(f) < 7:
                continue
            case = {"id": f[1], "verdict": f[2], "close": f[3], "duration": float(f[4]), "note": f[5], "description": f[6]}
            live[case["id"]] = case
            print(line_for(case), flush=True)
            if case["verdict"] != "OK":
                print("%-8s %s" % ("", case["note"]), flush=True)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()

    started = time.monotonic()
    out = ""
    if base:
        print("conformance: %s against %s at %s%s, section 9 scale %s" % (
            client_path, args.testd, base, " (nginx terminating TLS, testd on port %d)" % port if nginx else "",
            args.scale), flush=True)
        try:
            client = subprocess.run([client_path, "--agent", args.agent] + extra + [base],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
            if client.returncode != 0:
                problems.append("echo client exited with status %d" % client.returncode)
            out = client.stdout.strip()
        except subprocess.TimeoutExpired as e:
            problems.append("echo client did not finish within %.0f s" % timeout)
            out = (e.stdout or b"").decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    elapsed = time.monotonic() - started
    if out and (problems or "ERROR" in out or "runtime error" in out):
        print(out[-4000:], file=sys.stderr)
        if "runtime error" in out or "ERROR: AddressSanitizer" in out or "LeakSanitizer" in out:
            problems.append("sanitizer report from the echo client")
    tls_cases = None
    if nginx:
        nginx.stop()
        bad = [ln for ln in nginx.errors().splitlines() if "[alert]" in ln or "[emerg]" in ln or "[crit]" in ln]
        if bad:
            problems.append("nginx: %s" % " | ".join(bad[-3:]))
        # which cases really came over TLS: nginx's access log, one line per upgraded connection
        tls_cases = set(re.findall(r'"GET /runCase\?case=(\d+)&\S* HTTP/1\.1" 101 sni="localhost" proto=TLSv1\.[23] ',
                                   nginx.access()))

    try:
        testd.stdin.write("quit\n")
        testd.stdin.flush()
    except BrokenPipeError:
        pass
    try:
        rc = testd.wait(timeout=15)
        if rc != 0:
            problems.append("testd exited with status %d" % rc)
    except subprocess.TimeoutExpired:
        testd.kill()
        problems.append("testd did not quit")
    thread.join(timeout=5)

    try:
        with open(report, encoding="utf-8") as f:
            data = json.load(f)
        cases = data["cases"]
    except (OSError, ValueError, KeyError) as e:
        problems.append("no report from testd (%s)" % e)
        data = {"section9_scale": args.scale, "section9_note": ""}
        cases = list(live.values())
    finally:
        for name in ("report.json", "report.json.tmp"):
            try:
                os.unlink(os.path.join(tmp, name))
            except OSError:
                pass
        os.rmdir(tmp)

    for n, case in enumerate(cases, 1):
        if case["verdict"] not in VERDICTS:       # NOT RUN: the client never got to it
            case["verdict"], case["note"] = "FAILED", "not run: " + (case.get("note") or "no connection for this case")
            case["close"] = "-"
        if tls_cases is not None and str(n) not in tls_cases and case["verdict"] != "FAILED":
            case["verdict"], case["note"] = "FAILED", "no TLS 1.2+ upgrade for this case in nginx's access log; " + case["note"]
        if case["id"] not in live:
            print(line_for(case))
            print("%-8s %s" % ("", case["note"]))
    return cases, data, elapsed, problems


def summarize(cases):
    counts = {v: sum(1 for c in cases if c["verdict"] == v) for v in VERDICTS}
    return counts, "OK %d, NON-STRICT %d, INFO %d, FAILED %d of %d" % (
        counts["OK"], counts["NON-STRICT"], counts["INFO"], counts["FAILED"], len(cases))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=["quick", "full"], default="quick", help="section 9 sizes (default quick)")
    ap.add_argument("--out", default="tests/CONFORMANCE.md", help="Markdown report (default tests/CONFORMANCE.md)")
    ap.add_argument("--cases", help="only these cases, e.g. '1.*,6.4.*,7.1.6'")
    ap.add_argument("--transport", choices=["ws", "wss", "both"], default="ws",
                    help="ws:// straight to testd, wss:// through nginx terminating TLS, or both (default ws)")
    ap.add_argument("--client", default="build/echo_client", help="echo client binary for ws://")
    ap.add_argument("--tls-client", default="build/echo_client-tls", help="echo client binary for wss:// (a TLS build)")
    ap.add_argument("--testd", default="build/testd", help="testd binary")
    ap.add_argument("--agent", default="alwaysup", help="agent name sent to the server")
    ap.add_argument("--timeout", type=float, help="give up after this many seconds (default 300 quick, 1800 full)")
    args = ap.parse_args()
    os.chdir(ROOT)
    timeout = args.timeout or (300.0 if args.scale == "quick" else 1800.0)
    transports = ["ws", "wss"] if args.transport == "both" else [args.transport]
    clients = {"ws": args.client, "wss": args.tls_client}
    for path in [args.testd] + [clients[t] for t in transports]:
        if not os.access(path, os.X_OK):
            print("conformance: %s is missing (build it first)" % path, file=sys.stderr)
            print("0 passed, 1 failed")
            return 2

    runs = {}                      # transport -> (cases, data, elapsed, problems)
    for tr in transports:
        runs[tr] = run_once(args, tr, clients[tr], timeout)
    first = transports[0]
    cases, data, elapsed, _ = runs[first]
    problems = [("%s: " % tr if len(transports) > 1 or tr == "wss" else "") + p for tr in transports for p in runs[tr][3]]
    summaries = {tr: summarize(runs[tr][0]) for tr in transports}
    print()
    for tr in transports:
        print("%-6s %s" % (tr + ":", summaries[tr][1]))
        print("       total time %.1f s (section 9 scale %s)" % (runs[tr][2], runs[tr][1].get("section9_scale", args.scale)))
    for p in problems:
        print("problem: " + p)
    if not cases and not problems:
        problems.append("no cases")

    if args.out:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        how = {"ws": "ws:// straight to testd", "wss": "wss:// through nginx terminating TLS in front of testd "
               "(`build/echo_client-tls --ca-file` the test CA of tests/tls/make_certs.sh)"}
        rows = ["# WebSocket conformance of alwaysup.h", "",
                "The Autobahn|Testsuite fuzzing-server cases of sections 1-7, 9 and 10, played by "
                "`build/testd --conformance` against `build/echo_client` (the echo client built on "
                "alwaysup.h's `au_client_*` layer). Generated by `tools/conformance.py --scale %s%s`; "
                "do not edit by hand." % (args.scale, " --transport " + args.transport if args.transport != "ws" else ""), "",
                "- Date: %s" % now,
                "- Client: %s%s" % (", ".join("`%s` (%s)" % (clients[tr], tr) for tr in transports),
                                    " (cases %s)" % args.cases if args.cases else ""),
                "- Section 9 scale: **%s**: %s" % (data.get("section9_scale", args.scale), data.get("section9_note", ""))]
        for tr in transports:
            rows.append("- Summary over %s: **%s**, total time %.1f s" % (how[tr], summaries[tr][1], runs[tr][2]))
        for p in problems:
            rows.append("- Problem: %s" % p)
        rows += ["", "Verdicts: OK = Pass; NON-STRICT = allowed, weaker behaviour; INFO = informational case with "
                 "an accepted outcome; FAILED = anything else, including a close verdict other than OK "
                 "(FAILED: wrong side closed, UNCLEAN: no clean closing handshake, WRONG CODE) and any client "
                 "frame the fuzzer would reject. Durations run from the server's 101 to the end of the closing "
                 "handshake."]
        if len(transports) > 1:
            rows += ["", "Columns Verdict, Close, Duration and Note are the %s run; the wss:// columns are the same "
                     "case over TLS through nginx (nginx tunnels the WebSocket bytes unchanged after the 101, and "
                     "closes each side when the other closes)." % first]
        head = "| Case | Description | Verdict | Close | Duration | Note |"
        rule = "|---|---|---|---|---:|---|"
        if len(transports) > 1:
            head += " wss:// verdict | wss:// close | wss:// duration |"
            rule += "---|---|---:|"
        rows += ["", head, rule]
        other = {c["id"]: c for c in runs[transports[-1]][0]} if len(transports) > 1 else {}
        for c in cases:
            row = "| %s | %s | %s | %s | %.3f s | %s |" % (
                c["id"], md_cell(c["description"]), c["verdict"], c["close"], c["duration"], md_cell(c["note"]))
            if len(transports) > 1:
                o = other.get(c["id"])
                row += (" %s | %s | %.3f s |" % (o["verdict"], o["close"], o["duration"]) if o else " not run | - | - |")
            rows.append(row)
        for c in (runs[transports[-1]][0] if len(transports) > 1 else []):
            if c["id"] not in {x["id"] for x in cases}:
                rows.append("| %s | %s | not run | - | - | | %s | %s | %.3f s |" % (
                    c["id"], md_cell(c["description"]), c["verdict"], c["close"], c["duration"]))
        if len(transports) > 1:
            notes = [(c["id"], c["note"]) for c in runs[transports[-1]][0] if c["verdict"] != "OK"]
            if notes:
                rows += ["", "Notes of the wss:// cases not OK:", ""] + ["- %s: %s" % (i, md_cell(n)) for i, n in notes]
        out_path = args.out if os.path.isabs(args.out) else os.path.join(ROOT, args.out)
        with open(out_path, "w", encoding="utf-8") as f:
            f.write("\n".join(rows) + "\n")
        print("wrote %s" % os.path.relpath(out_path, ROOT))

    total = sum(len(runs[tr][0]) for tr in transports)
    failed = sum(summaries[tr][0]["FAILED"] for tr in transports)
    print("%d passed, %d failed" % (total - failed, failed + (1 if problems and not failed else 0)))
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
