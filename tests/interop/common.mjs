// What the Node interop suites share (tests/interop/sdk_interop.mjs,
// tests/interop/real_daemons.mjs, tests/exai/exai_interop.mjs): clocks and
// bounded waits, where the shim is, child processes that must not outlive the
// run, the tap on the shim's stdout, the SDK client through the shim, and the
// driver that prints one line per scenario and ends with "N passed, M failed"
// (tests/run.sh and tests/windows.sh parse that line).

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { McpError, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHIM = process.env.ALWAYSUP_BIN ? path.resolve(process.env.ALWAYSUP_BIN) : path.join(REPO, 'build', 'alwaysup');
// ALWAYSUP_WRAP=wine runs the Windows build (tests/windows.sh; exai_interop.mjs only)
export const WRAP = process.env.ALWAYSUP_WRAP || '';
export const shimCommand = args => (WRAP ? [WRAP, [SHIM, ...args]] : [SHIM, args]);

export const now = () => performance.now();
export const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
export const ms = x => `${Math.round(x)} ms`;

export function withTimeout(promise, timeoutMs, what) {
    let timer;
    const guard = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no result within ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

// What an McpError code likely means; -32002 comes from mcp_ws_daemon.mjs, so
// exai_interop.mjs passes only the -32001 hint.
export const ERROR_HINTS = {
    [-32002]: ' [the daemon got a request on a session nobody initialized]',
    [-32001]: ' [SDK request timeout: nobody answered]'
};
export function describeError(e, hints = ERROR_HINTS) {
    if (e instanceof McpError) return `McpError ${e.code}: ${e.message}${hints[e.code] || ''}`;
    return e && e.message ? e.message : String(e);
}

export function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.unref();
        srv.on('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

export function readText(p) {
    try {
        return fs.readFileSync(p, 'utf8');
    } catch {
        return '';
    }
}

// The SDK's exports map package.json to dist/, so find the package folder by walking up from its entry.
export function sdkVersion() {
    try {
        let dir = path.dirname(createRequire(import.meta.url).resolve('@modelcontextprotocol/sdk/client/index.js'));
        for (let i = 0; i < 6; i++, dir = path.dirname(dir)) {
            const pj = path.join(dir, 'package.json');
            if (!fs.existsSync(pj)) continue;
            const j = JSON.parse(fs.readFileSync(pj, 'utf8'));
            if (j.name === '@modelcontextprotocol/sdk') return j.version;
        }
    } catch {
        // informational only
    }
    return '?';
}

// Every child process we start, so that nothing outlives the run.
export const children = new Set();
let killChild = p => p.kill('SIGKILL');
// real_daemons.mjs kills whole process trees instead (supergateway detaches its child).
export function setChildKiller(fn) {
    killChild = fn;
}
export function killAllChildren() {
    for (const p of children) {
        try {
            killChild(p);
        } catch {
            // gone
        }
    }
}
process.on('exit', killAllChildren);

// ---------------------------------------------------------------- daemons
// Starts a daemon with startOnce(msLeft), again after a failure while time and attempts remain.
export async function startWithRetries(startOnce, timeoutMs, { attempts = 5, floorMs = 500, pauseMs = 100 } = {}) {
    const deadline = now() + timeoutMs;
    for (let attempt = 1; ; attempt++) {
        try {
            return await startOnce(Math.max(floorMs, deadline - now()));
        } catch (e) {
            if (attempt >= attempts || now() > deadline) throw e;
            await sleep(pauseMs); // e.g. the port not yet released by a daemon just killed
        }
    }
}

// Sends sig to a process and waits (bounded) for it to be gone; SIGKILL if it is not.
export async function stopProcess(p, name, sig, timeoutMs) {
    const gone = new Promise(resolve => p.once('exit', resolve));
    p.kill(sig);
    try {
        await withTimeout(gone, timeoutMs, `${name} exit after ${sig}`);
    } catch (e) {
        p.kill('SIGKILL');
        await withTimeout(gone, 2000, `${name} exit after SIGKILL`);
        throw e;
    }
}

// ------------------------------------------------- one client through the shim
// Checks that every line of the shim's stdout is one JSON-RPC message: counts lines in
// s.stdoutLines, keeps the first 5 problems in s.stdoutProblems; onMessage(v, text, problem)
// sees each message that passed. real_daemons.mjs never had the empty-line and the
// unterminated-last-line checks: strict = false leaves them out.
export function tapStdout(s, stream, onMessage = () => {}, strict = true) {
    const decoder = new TextDecoder('utf-8', { fatal: true });
    let pending = [];
    const check = buf => {
        s.stdoutLines++;
        const problem = why => {
            if (s.stdoutProblems.length < 5)
                s.stdoutProblems.push(`${why}: ${JSON.stringify(buf.subarray(0, 120).toString('utf8'))}`);
        };
        let text;
        try {
            text = decoder.decode(buf);
        } catch {
            return problem('stdout line is not valid UTF-8');
        }
        if (strict && text.length === 0) return problem('empty stdout line');
        let v;
        try {
            v = JSON.parse(text);
        } catch {
            return problem('stdout line is not JSON');
        }
        if (!v || typeof v !== 'object' || Array.isArray(v) || v.jsonrpc !== '2.0')
            return problem('stdout line is not a JSON-RPC 2.0 message');
        if (!('method' in v) && !('id' in v)) return problem('stdout line has neither method nor id');
        onMessage(v, text, problem);
    };
    stream.on('data', chunk => {
        let start = 0;
        for (;;) {
            const nl = chunk.indexOf(10, start);
            if (nl < 0) {
                if (start < chunk.length) pending.push(chunk.subarray(start));
                break;
            }
            pending.push(chunk.subarray(start, nl));
            const line = pending.length === 1 ? pending[0] : Buffer.concat(pending);
            pending = [];
            check(line);
            start = nl + 1;
        }
    });
    if (!strict) return;
    stream.on('end', () => {
        if (pending.length) {
            const rest = Buffer.concat(pending);
            if (rest.length) s.stdoutProblems.push(`stdout ended inside a line (${rest.length} bytes without a newline)`);
        }
    });
}

// The SDK client over stdio to one shim process; each suite's Session extends it
// with its logs, records and calls, and defines shimLogTail(). opts: command, args,
// env, stderr (the stream the shim's stderr goes to), clientName, capabilities,
// maxBufferSize, liftListenerLimit, strictTap (see tapStdout), describeError.
export class ShimSession {
    constructor(ctx, opts) {
        this.ctx = ctx;
        this.describe = opts.describeError || describeError;
        this.errors = [];
        this.stdoutProblems = [];
        this.stdoutLines = 0;
        this.sentMethods = [];
        this.listChanged = [];
        this.notifications = [];
        this.exit = null;
        this.closing = false;
        this.proc = null;

        const transport = new StdioClientTransport({
            command: opts.command,
            args: opts.args,
            env: opts.env,
            stderr: 'pipe',
            maxBufferSize: opts.maxBufferSize
        });
        transport.stderr.pipe(opts.stderr);
        this.transport = transport;

        // Tap the raw stdout of the shim: every line must be one JSON-RPC message.
        const origStart = transport.start.bind(transport);
        transport.start = async () => {
            await origStart();
            const p = transport._process;
            this.proc = p;
            if (p) {
                children.add(p);
                p.on('exit', (code, signal) => {
                    children.delete(p);
                    this.exit = { code, signal, at: now() };
                });
                tapStdout(this, p.stdout, (v, text, problem) => this.onStdoutMessage(v, text, problem), opts.strictTap !== false);
                // The SDK adds one 'drain' listener per blocked write; 500 concurrent calls trip
                // Node's leak warning (harmless), so lift the limit on this pipe.
                if (opts.liftListenerLimit) p.stdin.setMaxListeners(0);
            }
        };
        // Record what the client sends.
        const origSend = transport.send.bind(transport);
        transport.send = (m, o) => {
            this.onSend(m);
            return origSend(m, o);
        };
        // Parse errors of the SDK's stdio reader land here (Protocol.connect chains it).
        const seen = new WeakSet();
        transport.onerror = e => {
            if (e && typeof e === 'object') seen.add(e);
            this.errors.push(`transport.onerror: ${this.describe(e)}`);
        };

        this.client = new Client({ name: opts.clientName, version: '1.0.0' }, { capabilities: opts.capabilities || {} });
        this.client.onerror = e => {
            if (e && typeof e === 'object' && seen.has(e)) return;
            if (this.onClientError(e)) return;
            this.errors.push(`client.onerror: ${this.describe(e)}`);
        };
        this.client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
            this.listChanged.push(now());
        });
        this.client.fallbackNotificationHandler = async n => {
            this.notifications.push(n.method);
        };
    }

    // Hooks for the suites: a message the client sends, one that passed the stdout
    // tap, an error the SDK client reported (true: handled, not an error).
    onSend(m) {
        if (m && typeof m.method === 'string') this.sentMethods.push(m.method);
    }
    onStdoutMessage() {}
    onClientError() {
        return false;
    }

    // Why a call may have failed beyond the error itself: the shim died.
    exitNote() {
        if (!this.exit || this.closing) return '';
        return ` [the shim exited: code ${this.exit.code}, signal ${this.exit.signal}; stderr: ${this.shimLogTail()}]`;
    }
    // pauseMs after a failure lets the exit of a dying shim be seen by exitNote.
    async connect(timeoutMs = 15000, pauseMs = 50) {
        try {
            await withTimeout(this.client.connect(this.transport, { timeout: timeoutMs }), timeoutMs + 1000, 'client.connect');
        } catch (e) {
            await sleep(pauseMs);
            throw new Error(`client.connect failed: ${this.describe(e)}${this.exitNote()}`);
        }
    }
    callTool(name, args = {}, timeoutMs = 5000, extra = {}) {
        return this.client.callTool({ name, arguments: args }, undefined, { timeout: timeoutMs, ...extra });
    }
    async waitListChanged(afterT, timeoutMs) {
        const deadline = now() + timeoutMs;
        for (;;) {
            const t = this.listChanged.find(x => x >= afterT);
            if (t !== undefined) return t;
            if (now() >= deadline) return null;
            await sleep(20);
        }
    }
    countSent(method) {
        return this.sentMethods.filter(m => m === method).length;
    }
    // Closes the client (stdin EOF to the shim); returns how long the shim took to exit.
    async close() {
        if (this.closing) return null;
        this.closing = true;
        const t = now();
        const wasRunning = this.proc && !this.exit;
        try {
            await withTimeout(this.client.close(), 7000, 'client.close');
        } catch (e) {
            this.errors.push(`close: ${this.describe(e)}`);
        }
        if (this.proc && !this.exit) {
            this.proc.kill('SIGKILL');
            await sleep(50);
        }
        return wasRunning && this.exit ? this.exit.at - t : null;
    }
}

// ------------------------------------------------------------ scenario context
export class ScenarioCtx {
    constructor(name, port) {
        this.name = name;
        this.port = port;
        this.daemons = [];
        this.sessions = [];
        this.times = [];
        this.problems = [];
        this.notes = [];
    }
    time(label, value) {
        this.times.push(`${label} ${ms(value)}`);
    }
    note(msg) {
        this.notes.push(msg);
    }
    // A failed check that does not stop the scenario.
    expect(cond, msg) {
        if (!cond) this.problems.push(msg);
        return cond;
    }
    // Problems every scenario checks: stdout purity and SDK-reported errors.
    finalChecks() {
        for (const s of this.sessions) {
            if (s.client.getServerCapabilities() && s.stdoutLines === 0)
                this.problems.push('the stdout tap saw no line although the client connected (test bug)');
            for (const p of s.stdoutProblems) this.problems.push(`shim stdout: ${p}`);
            for (const e of s.errors) this.problems.push(`SDK reported: ${e}`);
        }
    }
}

// ------------------------------------------------------------------- driver
// Runs scenarios ([name, fn(ctx), budget ms]) one after another; prints "ok NAME (timings)"
// or "FAIL NAME: why", the notes as "  # ..." lines, and ends with "N passed, M failed";
// exits 1 on any failure. filter: take "-k REGEX" from the command line. setup() prints
// the header and returns null, or why nothing can run; newCtx(name) gives a scenario's
// context; failHint() is appended to FAIL lines; describe(e) words a scenario's fatal error.
// A watchdog ends the run at watchdogMs.
export function runSuite({ scenarios, filter = false, logDir, watchdogMs, setup, newCtx, failHint = () => '', describe = describeError }) {
    const main = async () => {
        const k = filter ? process.argv.indexOf('-k') : -1;
        const re = k >= 0 ? new RegExp(process.argv[k + 1]) : null;
        const chosen = scenarios.filter(([name]) => !re || re.test(name));
        fs.mkdirSync(logDir, { recursive: true });
        let passed = 0;
        let failed = 0;
        const total = chosen.length;
        const start = now();
        const finish = () => {
            console.log(`${passed} passed, ${failed} failed`);
            process.exitCode = failed ? 1 : 0;
        };
        const watchdog = setTimeout(() => {
            console.log(`FAIL watchdog: the run exceeded ${watchdogMs / 1000} s; stopping`);
            failed += total - passed - failed;
            finish();
            killAllChildren();
            process.exit(1);
        }, watchdogMs);
        watchdog.unref();

        const unusable = await setup();
        if (unusable) {
            console.log(`FAIL setup: ${unusable}`);
            failed = total;
            finish();
            return;
        }

        for (const [name, fn, budget] of chosen) {
            const ctx = await newCtx(name);
            const t = now();
            let fatal = null;
            try {
                await withTimeout(fn(ctx), budget, 'scenario budget');
            } catch (e) {
                fatal = describe(e);
            }
            try {
                await withTimeout(ctx.cleanup(), 15000, 'cleanup');
            } catch (e) {
                ctx.note(`cleanup: ${e.message}`);
            }
            ctx.finalChecks();
            const why = [...(fatal ? [fatal] : []), ...ctx.problems];
            const times = ctx.times.length ? ` (${ctx.times.join(', ')})` : '';
            if (why.length === 0) {
                passed++;
                console.log(`ok ${name}${times}`);
            } else {
                failed++;
                console.log(`FAIL ${name}: ${why.join('; ')}${times}${failHint()}`);
            }
            for (const n of ctx.notes) console.log(`  # ${n}`);
            console.log(`  # ${name}: ${ms(now() - t)}`);
        }
        console.log(`  # total ${((now() - start) / 1000).toFixed(1)} s`);
        clearTimeout(watchdog);
        finish();
    };
    main().catch(e => {
        console.log(`FAIL driver: ${e && e.stack ? e.stack : e}`);
        console.log('0 passed, 1 failed');
        killAllChildren();
        process.exit(1);
    });
}
