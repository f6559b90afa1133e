#!/usr/bin/python3
"""WebSocket conformance run: the Autobahn|Testsuite fuzzing-server cases of
sections 1-7, 9 and 10 (301 cases), played by `build/testd --conformance`
against `build/echo_client` (the echo client built on alwaysup.h).

    tools/conformance.py [--scale quick|full] [--out tests/CONFORMANCE.md]
                         [--cases LIST] [--client PATH] [--testd PATH]

Builds nothing: build/testd and build/echo_client must exist. Prints one line
per case and a summary, writes the table as Markdown to --out, exits non-zero
if any case FAILED (or the client or testd misbehaved), and ends with the line
"N passed, M failed" (N: cases not FAILED) for tests/run.sh.

--scale quick (for `make test`) scales section 9 down: message and fragment
sizes / 16, 100 round trips instead of 1000. --scale full plays the suite's
exact sizes and counts (`make conformance`). --cases takes testd's filter,
e.g. "2.*,6.4.*,7.1.6". --client may be another build of the echo client
(sanitized, or deliberately broken to check that the judging can fail).
Standard library only.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERDICTS = ["OK", "NON-STRICT", "INFO", "FAILED"]


def line_for(case):
    return "%-8s %-10s %9.3fs  %s" % (case["id"], case["verdict"], case["duration"], case["description"])


def md_cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=["quick", "full"], default="quick", help="section 9 sizes (default quick)")
    ap.add_argument("--out", default="tests/CONFORMANCE.md", help="Markdown report (default tests/CONFORMANCE.md)")
    ap.add_argument("--cases", help="only these cases, e.g. '1.*,6.4.*,7.1.6'")
    ap.add_argument("--client", default="build/echo_client", help="echo client binary")
    ap.add_argument("--testd", default="build/testd", help="testd binary")
    ap.add_argument("--agent", default="alwaysup", help="agent name sent to the server")
    ap.add_argument("--timeout", type=float, help="give up after this many seconds (default 300 quick, 1800 full)")
    args = ap.parse_args()
    os.chdir(ROOT)
    timeout = args.timeout or (300.0 if args.scale == "quick" else 1800.0)
    for path in (args.testd, args.client):
        if not os.access(path, os.X_OK):
            print("conformance: %s is missing (build it first)" % path, file=sys.stderr)
            print("0 passed, 1 failed")
            return 2

    tmp = tempfile.mkdtemp(prefix="conformance-")
    report = os.path.join(tmp, "report.json")
    cmd = [args.testd, "--conformance", "--section9-scale", args.scale, "--port", "0", "--report", report]
    if args.cases:
        cmd += ["--cases", args.cases]
    testd = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    first = testd.stdout.readline().split()
    if len(first) != 2 or first[0] != "listening":
        print("conformance: testd did not start (%r)" % first, file=sys.stderr)
        testd.kill()
        print("0 passed, 1 failed")
        return 1
    port = int(first[1])

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

    print("conformance: %s against %s on port %d, section 9 scale %s" % (args.client, args.testd, port, args.scale), flush=True)
    problems = []
    started = time.monotonic()
    try:
        client = subprocess.run([args.client, "--agent", args.agent, "ws://127.0.0.1:%d" % port],
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

    for case in cases:
        if case["verdict"] not in VERDICTS:       # NOT RUN: the client never got to it
            case["verdict"], case["note"] = "FAILED", "not run: " + (case.get("note") or "no connection for this case")
            case["close"] = "-"
        if case["id"] not in live:
            print(line_for(case))
            print("%-8s %s" % ("", case["note"]))
    counts = {v: sum(1 for c in cases if c["verdict"] == v) for v in VERDICTS}
    total = len(cases)
    summary = "OK %d, NON-STRICT %d, INFO %d, FAILED %d of %d" % (
        counts["OK"], counts["NON-STRICT"], counts["INFO"], counts["FAILED"], total)
    print()
    print(summary)
    print("total time %.1f s (section 9 scale %s)" % (elapsed, data.get("section9_scale", args.scale)))
    for p in problems:
        print("problem: " + p)

    if args.out:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        rows = ["# WebSocket conformance of alwaysup.h", "",
                "The Autobahn|Testsuite fuzzing-server cases of sections 1-7, 9 and 10, played by "
                "`build/testd --conformance` against `build/echo_client` (the echo client built on "
                "alwaysup.h's `au_client_*` layer). Generated by `tools/conformance.py --scale %s`; "
                "do not edit by hand." % args.scale, "",
                "- Date: %s" % now,
                "- Client: `%s`%s" % (args.client, " (cases %s)" % args.cases if args.cases else ""),
                "- Section 9 scale: **%s**: %s" % (data.get("section9_scale", args.scale), data.get("section9_note", "")),
                "- Summary: **%s**" % summary,
                "- Total time: %.1f s" % elapsed]
        for p in problems:
            rows.append("- Problem: %s" % p)
        rows += ["", "Verdicts: OK = Pass; NON-STRICT = allowed, weaker behaviour; INFO = informational case with "
                 "an accepted outcome; FAILED = anything else, including a close verdict other than OK "
                 "(FAILED: wrong side closed, UNCLEAN: no clean closing handshake, WRONG CODE) and any client "
                 "frame the fuzzer would reject. Durations run from the server's 101 to the end of the closing "
                 "handshake.", "",
                 "| Case | Description | Verdict | Close | Duration | Note |",
                 "|---|---|---|---|---:|---|"]
        for c in cases:
            rows.append("| %s | %s | %s | %s | %.3f s | %s |" % (
                c["id"], md_cell(c["description"]), c["verdict"], c["close"], c["duration"], md_cell(c["note"])))
        out_path = args.out if os.path.isabs(args.out) else os.path.join(ROOT, args.out)
        with open(out_path, "w", encoding="utf-8") as f:
            f.write("\n".join(rows) + "\n")
        print("wrote %s" % os.path.relpath(out_path, ROOT))

    failed = counts["FAILED"]
    print("%d passed, %d failed" % (total - failed, failed))
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
