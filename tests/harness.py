"""Shared pieces of the integration tests: the test daemon, the shim under a
scripted client, and a check counter. Standard library only."""
import argparse
import json
import os
import re
import queue
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
SHIM = os.environ.get("ALWAYSUP_BIN", os.path.join(BUILD, "alwaysup"))
TESTD = os.path.join(BUILD, "testd")
# e.g. "valgrind --error-exitcode=99 --leak-check=full": prefixed to every shim
WRAP = os.environ.get("ALWAYSUP_WRAP", "").split()
# slower runs (sanitizers, valgrind) stretch every deadline by this factor
SLOW = float(os.environ.get("ALWAYSUP_SLOW", "1"))
# absolute: each shim's XDG_STATE_HOME lives under it, and the XDG rules
# (which the shim follows) ignore a relative XDG_STATE_HOME
LOGDIR = os.path.abspath(os.environ.get("ALWAYSUP_LOGDIR", os.path.join(BUILD, "test-logs", "integration")))
os.makedirs(LOGDIR, exist_ok=True)


def read_text(path):
    """A log file's text so far; empty if it does not exist yet."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def is_sdk_id(x):
    """An id as the official SDK clients send them: a JSON integer every JSON reader keeps exact."""
    return isinstance(x, int) and not isinstance(x, bool) and abs(x) <= 2 ** 53 - 1


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_once(argv, env=None, timeout=10.0):
    """Runs argv to its end with stdin closed; returns (exit status, stdout,
    stderr) as text, CRLF made LF. Output goes through files, not pipes: a
    helper the wrapper starts (Wine's wineserver) can inherit pipes and hold
    them open long after the program has exited. The exit status is None if
    it was still running after timeout seconds (then it is killed)."""
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, env=env)
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = None
        out = []
        for f in (fo, fe):
            f.seek(0)
            out.append(f.read().decode("utf-8", "replace").replace("\r\n", "\n"))
    return rc, out[0], out[1]


class Checks:
    """Counts checks for one scenario; never raises, so a scenario reports
    every failure it sees."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.notes = []

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            self.notes.append("FAILED: " + what)
        return cond

    def timing(self, cond, what):
        """A deadline check. Under valgrind (ALWAYSUP_WRAP) the clock measures
        valgrind, so the check is not made at all: not counted as passed."""
        if WRAP:
            return True
        return self.check(cond, what)

    def note(self, text):
        self.notes.append(text)


class Daemon:
    """tools/testd on loopback, scripted through its stdin."""

    def __init__(self, name, port=0, args=(), instance=None):
        self.name = name
        self.log_path = os.path.join(LOGDIR, name + ".daemon.log")
        if os.path.exists(self.log_path):
            os.unlink(self.log_path)          # one scenario, one log (restarts append)
        self.args = list(args)
        self.instance = instance or name
        self.proc = None
        self.port = port
        self.start()

    def start(self, instance=None, args=None):
        if instance:
            self.instance = instance
        cmd = [TESTD, "--port", str(self.port), "--log", self.log_path, "--instance", self.instance]
        cmd += self.args if args is None else list(args)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline()
        if not line.startswith("listening "):
            raise RuntimeError("testd did not start: %r" % line)
        self.port = int(line.split()[1])
        return self

    def url(self, path=""):
        return "ws://127.0.0.1:%d%s" % (self.port, path)

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self, instance=None):
        self.kill()
        return self.start(instance)

    def log(self):
        return read_text(self.log_path)

    def received(self):
        """JSON messages this daemon received, in order, over all its lives."""
        out = []
        for line in self.log().splitlines():
            parts = line.split(" ", 3)
            if len(parts) == 4 and parts[0] == "conn" and parts[2] == "recv":
                try:
                    out.append(json.loads(parts[3]))
                except ValueError:
                    out.append(parts[3])
        return out


class PeerDaemon:
    """A peer daemon started by hand (the Python `websockets` daemons under
    tests/), up once its first stdout line is "listening PORT" or "listening
    PATH" (a Unix socket). A suite subclasses it for a daemon it restarts:
    .proc is always the latest start, for the suite's watchdog."""

    def __init__(self, what):
        self.what = what            # names it in the error
        self.proc = None
        self.line = ""              # its first stdout line
        self.port = self.path = self.listening_at = None

    def spawned(self, proc):
        """Called at each start, before the wait: a subclass tracks proc."""

    def listen(self, argv, timeout=None, err_path=None, stdin=None, must=True):
        """Starts argv, stdout a pipe, and waits for "listening ...". timeout
        None: one start and a blocking read; seconds: the line waited for
        that long, a failed start (e.g. the port not yet free) retried until
        then. err_path: stderr appended there (else inherited). must=False: a
        start that does not say listening is left running, no error (the
        caller checks .port). Returns self."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if err_path:
                with open(err_path, "a") as err:
                    self.proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=err, text=True)
            else:
                self.proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, text=True)
            self.spawned(self.proc)
            self.line = ""
            if deadline is None:
                self.line = self.proc.stdout.readline()
            while deadline is not None and time.monotonic() < deadline:
                # select, not a blocking read: a daemon that hangs silent cannot stall the run
                r, _, _ = select.select([self.proc.stdout], [], [], max(0.0, min(0.2, deadline - time.monotonic())))
                if r:
                    self.line = self.proc.stdout.readline()
                    break
                if self.proc.poll() is not None:
                    break
            if self.line.startswith("listening "):
                where = self.line[len("listening "):].strip()
                if where.isdigit():
                    self.port = int(where)
                elif where:
                    self.path = where
                self.listening_at = time.monotonic()
                return self
            if not must:
                return self
            self.kill()
            if deadline is None or time.monotonic() >= deadline:
                if err_path:
                    raise RuntimeError("%s did not start (%r); see %s" % (self.what, self.line, err_path))
                raise RuntimeError("%s did not start: %r" % (self.what, self.line))
            time.sleep(0.1)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()
            self.proc.stdout.close()

    def stop(self, timeout=None):
        """SIGTERM and wait; SIGKILL after timeout seconds, if given."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


class Shim:
    """build/alwaysup with a scripted client on its stdio. A reader thread
    checks every stdout line: one whole JSON-RPC message per line."""

    def __init__(self, name, url, *args, env=None, stdin_data=None):
        self.name = name
        self.stderr_path = os.path.join(LOGDIR, name + ".shim.log")
        self.stderr = open(self.stderr_path, "w")
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("ALWAYSUP_") and k not in ("ALWAYSUP_BIN", "ALWAYSUP_WRAP", "ALWAYSUP_SLOW"):
                del e[k]
        # each shim remembers InitializeResults in its own state directory
        e["XDG_STATE_HOME"] = os.path.join(LOGDIR, "state", name)
        e.update(env or {})
        argv = WRAP + [SHIM] + list(args) + ([url] if url else [])
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, env=e)
        self.lines = queue.Queue()
        self.all = []          # every message received, in order
        self.malformed = []    # stdout lines that are not one JSON-RPC message
        self.sent_ids = []
        self.next_id = 1
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        buf = b""
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    msg = json.loads(line.decode("utf-8"))
                    if not isinstance(msg, (dict, list)):
                        raise ValueError("not an object")
                except (ValueError, UnicodeDecodeError):
                    self.malformed.append(line[:200])
                    continue
                with self.lock:
                    self.all.append(msg)
                self.lines.put(msg)
        if buf:
            self.malformed.append(b"(no newline at end) " + buf[:200])
        self.lines.put(None)

    def send_raw(self, data):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, ValueError):
            return False

    def send(self, msg):
        return self.send_raw((json.dumps(msg) + "\n").encode())

    def request(self, method, params=None, id=None):
        if id is None:
            id = self.next_id
            self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            msg["params"] = params
        self.sent_ids.append(id)
        self.send(msg)
        return id

    def notify(self, method, params=None):
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)

    def next_message(self, timeout):
        try:
            return self.lines.get(timeout=timeout * SLOW)
        except queue.Empty:
            return None

    def wait_for(self, id, timeout=5.0):
        """The answer to request id (or None), leaving other messages alone."""
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            with self.lock:
                for m in self.all:
                    if isinstance(m, dict) and m.get("id") == id and "method" not in m:
                        return m
            time.sleep(0.005)
        return None

    def wait_until(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            with self.lock:
                for m in self.all:
                    if pred(m):
                        return m
            time.sleep(0.005)
        return None

    def answers(self, id):
        with self.lock:
            return [m for m in self.all if isinstance(m, dict) and m.get("id") == id and "method" not in m]

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def wait_exit(self, timeout=5.0):
        try:
            return self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            if self.wait_exit(3) is None:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(5)
        self.stderr.close()

    def log(self):
        self.stderr.flush()
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def check_clean(self, t, unanswered=()):
        """Every stdout line was one JSON-RPC message, every request got
        exactly one answer (except those listed), nothing answered twice."""
        t.check(not self.malformed, "%s: every stdout line is one JSON-RPC message (bad: %r)" % (self.name, self.malformed[:3]))
        counts = {}
        with self.lock:
            for m in self.all:
                if isinstance(m, dict) and "id" in m and "method" not in m:
                    key = json.dumps(m["id"])
                    counts[key] = counts.get(key, 0) + 1
        sent = {json.dumps(i) for i in self.sent_ids}
        skip = {json.dumps(i) for i in unanswered}
        for i in self.sent_ids:
            k = json.dumps(i)
            if k in skip:
                continue
            t.check(counts.get(k, 0) == 1, "%s: request %s answered exactly once (got %d)" % (self.name, k, counts.get(k, 0)))
        for k, n in counts.items():
            t.check(k in sent, "%s: answer for id %s matches a request we sent" % (self.name, k))
        if self.proc.poll() is not None and self.proc.returncode not in (0,):
            t.note("%s exited with %s" % (self.name, self.proc.returncode))


# what sanitizers and valgrind print when something is wrong
_BAD = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer)|runtime error:|"
                  r"ERROR SUMMARY: [1-9]|definitely lost: [1-9]|Invalid (read|write|free)|uninitialised")


def scan_logs(t, logdir=None):
    """One check per shim log: no sanitizer report, no valgrind error, no
    definite leak. Run after every shim has exited."""
    logdir = logdir or LOGDIR
    for name in sorted(os.listdir(logdir)):
        if not name.endswith(".shim.log"):
            continue
        with open(os.path.join(logdir, name), errors="replace") as f:
            text = f.read()
        bad = [l for l in text.splitlines() if _BAD.search(l)]
        t.check(not bad, "%s: no sanitizer or valgrind report (%s)" % (name, bad[:3]))


class Skip(Exception):
    """A scenario that cannot run here (a peer is missing): loud, and a
    failure under CI=true."""


def scenario_args(scenarios, default_jobs):
    """The suites' common command line: -j N, -k REGEX, --list. Returns the
    chosen scenarios, or None after printing the list."""
    ap = argparse.ArgumentParser()
    ap.add_argument("-j", type=int, default=int(os.environ.get("ALWAYSUP_JOBS", str(default_jobs))))
    ap.add_argument("-k", default="", help="regular expression on scenario names")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    chosen = [f for f in scenarios if re.search(args.k, f.__name__)]
    if args.list:
        print("\n".join(f.__name__ for f in chosen))
        return None, args.j
    return chosen, args.j


def run_scenarios(chosen, jobs, first=(), budget=None, on_budget=None):
    """Runs each scenario (a function taking Checks) on `jobs` threads, the
    names in `first` first, printing one line each; returns every Checks.
    With a budget, the run is stopped (on_budget kills the children) and
    failed when it takes longer."""
    results = []
    lock = threading.Lock()
    pending = sorted(chosen, key=lambda f: 0 if f.__name__ in first else 1)
    in_ci = os.environ.get("CI") == "true"

    def watchdog():
        with lock:
            print("  FAIL the run exceeded %.0f s; stopping every child" % budget, flush=True)
            if on_budget:
                on_budget()
            print("%d passed, %d failed" % (sum(r.passed for r in results), sum(r.failed for r in results) + 1), flush=True)
            os._exit(1)
    dog = threading.Timer(budget, watchdog) if budget else None
    if dog:
        dog.daemon = True
        dog.start()

    def worker():
        while True:
            with lock:
                if not pending:
                    return
                fn = pending.pop(0)
            t = Checks(fn.__name__)
            t0 = time.monotonic()
            skipped = None
            try:
                fn(t)
            except Skip as e:
                skipped = str(e)
            except Exception:
                t.failed += 1
                t.notes.append("EXCEPTION: " + traceback.format_exc())
            secs = time.monotonic() - t0
            with lock:
                if skipped is not None and in_ci:
                    t.failed += 1
                    print("  FAIL %-40s required in CI but cannot run: %s" % (t.name, skipped), flush=True)
                elif skipped is not None:
                    print("  SKIP %-40s %s (CI=true makes this a failure)" % (t.name, skipped), flush=True)
                else:
                    status = "ok  " if not t.failed else "FAIL"
                    print("  %s %-40s %4d checks %6.1fs" % (status, t.name, t.passed + t.failed, secs), flush=True)
                    for n in t.notes:
                        print("       " + n.replace("\n", "\n       "), flush=True)
                results.append(t)
    threads = [threading.Thread(target=worker) for _ in range(max(1, jobs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if dog:
        dog.cancel()
    return results


def summary(results):
    """The last line every suite prints; the exit status."""
    p = sum(r.passed for r in results)
    f = sum(r.failed for r in results)
    print("%d passed, %d failed" % (p, f), flush=True)
    return 1 if f else 0
