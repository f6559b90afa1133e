#!/usr/bin/env node
// Interop tests: the official MCP TypeScript SDK client, over stdio, through
// build/alwaysup, to a WebSocket MCP daemon (mcp_ws_daemon.mjs, also built on
// the SDK) that this program kills, restarts, freezes and starts late.
//
//   cd tests && npm ci && node interop/sdk_interop.mjs
//
// Environment: ALWAYSUP_BIN (default <repo>/build/alwaysup). Logs of every
// shim and daemon go to <repo>/build/test-logs/interop/<scenario>.*.log; each
// scenario's shim keeps its remembered state in .../interop/sdk-state/<scenario>
// (emptied first), never in the user's home.
// Prints one line per scenario ("ok NAME (timings)" or "FAIL NAME: why"),
// details as "  # ..." lines, and ends with "N passed, M failed"; exits 1 on
// any failure. Every wait is bounded; a watchdog ends the run at 110 s.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { McpError, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const SHIM = process.env.ALWAYSUP_BIN ? path.resolve(process.env.ALWAYSUP_BIN) : path.join(REPO, 'build', 'alwaysup');
const DAEMON = path.join(HERE, 'mcp_ws_daemon.mjs');
const LOGDIR = path.join(REPO, 'build', 'test-logs', 'interop');
const WATCHDOG_MS = 110_000;

const now = () => performance.now();
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
const ms = x => `${Math.round(x)} ms`;

function withTimeout(promise, timeoutMs, what) {
    let timer;
    const guard = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no result within ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

function describeError(e) {
    if (e instanceof McpError) {
        let hint = '';
        if (e.code === -32002) hint = ' [the daemon got a request on a session nobody initialized]';
        if (e.code === -32001) hint = ' [SDK request timeout: nobody answered]';
        return `McpError ${e.code}: ${e.message}${hint}`;
    }
    return e && e.message ? e.message : String(e);
}

function freePort() {
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

// Every child process we start, so that nothing outlives the run.
const children = new Set();
function killAllChildren() {
    for (const p of children) {
        try {
            p.kill('SIGKILL');
        } catch {
            // gone
        }
    }
}
process.on('exit', killAllChildren);

// ---------------------------------------------------------------- the daemon
class Daemon {
    constructor(port, instance, logStream) {
        this.port = port;
        this.instance = instance;
        this.log = logStream;
        this.proc = null;
        this.exited = null;
    }
    // Starts the daemon and resolves with the time it printed "listening".
    async start(timeoutMs = 5000) {
        const deadline = now() + timeoutMs;
        for (let attempt = 1; ; attempt++) {
            try {
                return await this._startOnce(Math.max(500, deadline - now()));
            } catch (e) {
                if (attempt >= 5 || now() > deadline) throw e;
                await sleep(100); // e.g. the port not yet released by a daemon just killed
            }
        }
    }
    _startOnce(timeoutMs) {
        return new Promise((resolve, reject) => {
            const p = spawn(process.execPath, [DAEMON, '--port', String(this.port), '--instance', this.instance], {
                stdio: ['ignore', 'pipe', 'pipe']
            });
            this.proc = p;
            this.exited = null;
            children.add(p);
            p.stderr.on('data', d => this.log.write(d));
            let out = '';
            let done = false;
            const timer = setTimeout(() => {
                if (done) return;
                done = true;
                p.kill('SIGKILL');
                reject(new Error(`daemon ${this.instance} did not print "listening" within ${timeoutMs} ms`));
            }, timeoutMs);
            p.stdout.on('data', d => {
                out += d.toString();
                if (!done && /^listening \d+$/m.test(out)) {
                    done = true;
                    clearTimeout(timer);
                    resolve(now());
                }
            });
            p.on('exit', (code, signal) => {
                children.delete(p);
                this.exited = { code, signal, at: now() };
                if (!done) {
                    done = true;
                    clearTimeout(timer);
                    reject(new Error(`daemon ${this.instance} exited before listening (code ${code}, signal ${signal})`));
                }
            });
        });
    }
    get alive() {
        return this.proc && !this.exited;
    }
    signal(sig) {
        if (this.alive) this.proc.kill(sig);
    }
    // Sends sig and waits (bounded) for the process to be gone.
    async kill(sig = 'SIGKILL', timeoutMs = 3000) {
        if (!this.alive) return;
        const p = this.proc;
        const gone = new Promise(resolve => p.once('exit', resolve));
        p.kill(sig);
        try {
            await withTimeout(gone, timeoutMs, `daemon ${this.instance} exit after ${sig}`);
        } catch (e) {
            p.kill('SIGKILL');
            await withTimeout(gone, 2000, `daemon ${this.instance} exit after SIGKILL`);
            throw e;
        }
    }
}

// ------------------------------------------------- one client through the shim
class Session {
    constructor(ctx, label, extraArgs) {
        this.ctx = ctx;
        this.label = label;
        this.args = [`ws://127.0.0.1:${ctx.port}`, '--log-level', 'debug', ...extraArgs];
        this.logPath = path.join(LOGDIR, `${ctx.name}${label ? `.${label}` : ''}.shim.log`);
        this.log = fs.createWriteStream(this.logPath);
        this.errors = [];
        this.stdoutProblems = [];
        this.stdoutLines = 0;
        this.sentMethods = [];
        this.listChanged = [];
        this.exit = null;
        this.closing = false;
        this.proc = null;

        const transport = new StdioClientTransport({
            command: SHIM,
            args: this.args,
            // The shim remembers the daemon's InitializeResult per URL (by default under
            // $XDG_STATE_HOME or ~/.local/state); keep each scenario's state apart and fresh.
            env: { ALWAYSUP_STATE_DIR: ctx.stateDir },
            stderr: 'pipe',
            maxBufferSize: 64 * 1024 * 1024 // the SDK's default (10 MiB) is too small for the 8 MiB test
        });
        transport.stderr.pipe(this.log);
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
                this._tapStdout(p.stdout);
                // The SDK adds one 'drain' listener per blocked write; 500 concurrent calls trip
                // Node's leak warning (harmless), so lift the limit on this pipe.
                p.stdin.setMaxListeners(0);
            }
        };
        // Record what the client sends.
        const origSend = transport.send.bind(transport);
        transport.send = (m, o) => {
            if (m && typeof m.method === 'string') this.sentMethods.push(m.method);
            return origSend(m, o);
        };
        // Parse errors of the SDK's stdio reader land here (Protocol.connect chains it).
        const seen = new WeakSet();
        transport.onerror = e => {
            if (e && typeof e === 'object') seen.add(e);
            this.errors.push(`transport.onerror: ${describeError(e)}`);
        };

        this.client = new Client({ name: 'alwaysup-interop', version: '1.0.0' }, { capabilities: {} });
        this.client.onerror = e => {
            if (e && typeof e === 'object' && seen.has(e)) return;
            this.errors.push(`client.onerror: ${describeError(e)}`);
        };
        this.client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
            this.listChanged.push(now());
        });
        this.notifications = [];
        this.client.fallbackNotificationHandler = async n => {
            this.notifications.push(n.method);
        };
    }

    _tapStdout(stream) {
        const decoder = new TextDecoder('utf-8', { fatal: true });
        let pending = [];
        const check = buf => {
            this.stdoutLines++;
            const problem = why => {
                if (this.stdoutProblems.length < 5)
                    this.stdoutProblems.push(`${why}: ${JSON.stringify(buf.subarray(0, 120).toString('utf8'))}`);
            };
            let text;
            try {
                text = decoder.decode(buf);
            } catch {
                return problem('stdout line is not valid UTF-8');
            }
            if (text.length === 0) return problem('empty stdout line');
            let v;
            try {
                v = JSON.parse(text);
            } catch {
                return problem('stdout line is not JSON');
            }
            if (!v || typeof v !== 'object' || Array.isArray(v) || v.jsonrpc !== '2.0')
                return problem('stdout line is not a JSON-RPC 2.0 message');
            if (!('method' in v) && !('id' in v)) return problem('stdout line has neither method nor id');
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
        stream.on('end', () => {
            if (pending.length) {
                const rest = Buffer.concat(pending);
                if (rest.length) this.stdoutProblems.push(`stdout ended inside a line (${rest.length} bytes without a newline)`);
            }
        });
    }

    shimLogTail(lines = 3) {
        try {
            const t = fs.readFileSync(this.logPath, 'utf8').trim().split('\n');
            return t.slice(-lines).join(' | ');
        } catch {
            return '';
        }
    }
    // Why a call may have failed beyond the error itself: the shim died.
    exitNote() {
        if (!this.exit || this.closing) return '';
        return ` [the shim exited: code ${this.exit.code}, signal ${this.exit.signal}; stderr: ${this.shimLogTail()}]`;
    }

    async connect(timeoutMs = 15000) {
        try {
            await withTimeout(this.client.connect(this.transport, { timeout: timeoutMs }), timeoutMs + 1000, 'client.connect');
        } catch (e) {
            await sleep(50);
            throw new Error(`client.connect failed: ${describeError(e)}${this.exitNote()}`);
        }
    }
    async callTool(name, args = {}, timeoutMs = 5000) {
        return this.client.callTool({ name, arguments: args }, undefined, { timeout: timeoutMs });
    }
    // callTool that must succeed; returns the first text content.
    async text(name, args = {}, timeoutMs = 5000, what = name) {
        let res;
        try {
            res = await withTimeout(this.callTool(name, args, timeoutMs), timeoutMs + 2000, what);
        } catch (e) {
            await sleep(20);
            throw new Error(`${what} failed: ${describeError(e)}${this.exitNote()}`);
        }
        if (res.isError) throw new Error(`${what}: tool error ${JSON.stringify(res.content).slice(0, 200)}`);
        const c = res.content && res.content[0];
        if (!c || c.type !== 'text') throw new Error(`${what}: no text content in ${JSON.stringify(res).slice(0, 200)}`);
        return c.text;
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
            this.errors.push(`close: ${describeError(e)}`);
        }
        if (this.proc && !this.exit) {
            this.proc.kill('SIGKILL');
            await sleep(50);
        }
        return wasRunning && this.exit ? this.exit.at - t : null;
    }
}

// ------------------------------------------------------------ scenario context
class Ctx {
    constructor(name, port) {
        this.name = name;
        this.port = port;
        this.daemons = [];
        this.sessions = [];
        this.times = [];
        this.problems = [];
        this.notes = [];
        this.daemonLog = fs.createWriteStream(path.join(LOGDIR, `${name}.daemon.log`));
        this.stateDir = path.join(LOGDIR, 'sdk-state', name);
        fs.rmSync(this.stateDir, { recursive: true, force: true });
        fs.mkdirSync(this.stateDir, { recursive: true });
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
    async daemon(instance) {
        const d = new Daemon(this.port, instance, this.daemonLog);
        this.daemons.push(d);
        d.listeningAt = await d.start();
        return d;
    }
    session(extraArgs = [], label = '') {
        const s = new Session(this, label, extraArgs);
        this.sessions.push(s);
        return s;
    }
    async cleanup() {
        for (const s of this.sessions) {
            const exitMs = await s.close();
            if (exitMs !== null && exitMs > 1500) this.note(`shim took ${ms(exitMs)} to exit after stdin EOF`);
        }
        for (const d of this.daemons) {
            try {
                d.signal('SIGCONT');
                await d.kill('SIGKILL');
            } catch (e) {
                this.note(`daemon cleanup: ${e.message}`);
            }
        }
        await new Promise(resolve => this.daemonLog.end(resolve));
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

// --------------------------------------------------------------- scenarios
const TOOL_NAMES = ['bigecho', 'echo', 'sleep', 'whoami'];

async function toolsListedAndCalled(ctx) {
    await ctx.daemon('A');
    const s = ctx.session();
    const t0 = now();
    await s.connect();
    ctx.time('connect', now() - t0);
    const caps = s.client.getServerCapabilities();
    ctx.expect(caps && caps.tools && caps.tools.listChanged === true,
        `initialize result does not carry the daemon's tools.listChanged: ${JSON.stringify(caps)}`);
    const list = await withTimeout(s.client.listTools(undefined, { timeout: 5000 }), 7000, 'tools/list');
    const names = list.tools.map(t => t.name).sort();
    ctx.expect(JSON.stringify(names) === JSON.stringify(TOOL_NAMES), `tools/list gave ${JSON.stringify(names)}`);
    const msg = 'hello, \u00e9\u2603\ud83d\ude00 "quoted" \\ back\nslash\ttab \u0000 nul';
    const t1 = now();
    const got = await s.text('echo', { text: msg });
    ctx.time('echo round trip', now() - t1);
    ctx.expect(got === msg, `echo returned ${JSON.stringify(got)}, sent ${JSON.stringify(msg)}`);
    ctx.expect((await s.text('whoami')) === 'A', 'whoami is not A');
    const pingT = now();
    await withTimeout(s.client.ping({ timeout: 3000 }), 4000, 'ping');
    ctx.time('ping', now() - pingT);
    ctx.expect(s.listChanged.length === 0, `list_changed received ${s.listChanged.length} time(s) on a first connection`);
    const exitMs = await s.close();
    if (exitMs !== null) ctx.time('shim exit after stdin EOF', exitMs);
    ctx.expect(exitMs !== null && exitMs < 1000, `the shim took ${exitMs === null ? '?' : ms(exitMs)} to exit after stdin EOF`);
    ctx.expect(s.exit && s.exit.code === 0, `the shim exited with ${JSON.stringify(s.exit)} after stdin EOF`);
}

async function daemonKilledAndRestarted(ctx) {
    const a = await ctx.daemon('A');
    const s = ctx.session();
    await s.connect();
    ctx.expect((await s.text('whoami')) === 'A', 'whoami before the restart is not A');
    const tKill = now();
    await a.kill('SIGKILL');
    await sleep(300);
    const b = await ctx.daemon('B');
    const who = await s.text('whoami', {}, 8000, 'whoami after the restart');
    const tAns = now();
    ctx.time('recovery (daemon B listening -> answer)', tAns - b.listeningAt);
    ctx.time('kill -> answer', tAns - tKill);
    ctx.expect(who === 'B', `whoami after the restart answered ${JSON.stringify(who)}, expected B`);
    const e = await s.text('echo', { text: 'after restart' }, 5000, 'echo after the restart');
    ctx.expect(e === 'after restart', `echo after the restart returned ${JSON.stringify(e)}`);
    const lc = await s.waitListChanged(tKill, 3000);
    if (ctx.expect(lc !== null, 'no notifications/tools/list_changed within 3 s of the reconnect'))
        ctx.time('list_changed after B listening', lc - b.listeningAt);
    ctx.expect(s.countSent('initialize') === 1, `the client sent initialize ${s.countSent('initialize')} times`);
    if (s.notifications.length) ctx.note(`other notifications received: ${s.notifications.join(', ')}`);
}

async function callInFlightWhenDaemonDies(ctx) {
    const a = await ctx.daemon('A');
    const s = ctx.session();
    await s.connect();
    let settledAt = null;
    const call = s.callTool('sleep', { ms: 5000 }, 15000).then(
        r => ({ ok: true, r }),
        e => ({ ok: false, e })
    ).finally(() => (settledAt = now()));
    await sleep(500);
    ctx.expect(settledAt === null, 'the sleep call was answered before the daemon was killed');
    const tKill = now();
    await a.kill('SIGKILL');
    const out = await withTimeout(call, 8000, 'the call in flight');
    const dt = settledAt - tKill;
    ctx.time('kill -> error', dt);
    if (out.ok) throw new Error(`the call in flight succeeded after the daemon was killed: ${JSON.stringify(out.r).slice(0, 200)}`);
    const e = out.e;
    ctx.note(`error: ${describeError(e)}`);
    ctx.expect(e instanceof McpError, `the SDK surfaced ${e && e.constructor && e.constructor.name}, not McpError: ${describeError(e)}`);
    ctx.expect(e.code === -32000, `error code ${e.code}, expected -32000`);
    ctx.expect(/lost/i.test(e.message) && /may or may not have run/i.test(e.message),
        `error message does not say the connection was lost and the call may or may not have run: ${e.message}`);
    ctx.expect(dt < 2000, `the error came ${ms(dt)} after the kill (want < 2 s)`);
    ctx.expect(!s.exit, `the shim exited: ${JSON.stringify(s.exit)}`);
}

async function callDuringOutage(ctx) {
    const a = await ctx.daemon('A');
    const s = ctx.session();
    await s.connect();
    ctx.expect((await s.text('whoami')) === 'A', 'whoami before the outage is not A');
    await a.kill('SIGKILL');
    await sleep(300);
    let settled = null;
    const call = s.callTool('echo', { text: 'queued during the outage' }, 15000).then(
        r => ({ ok: true, r }),
        e => ({ ok: false, e })
    ).then(x => ((settled = now()), x));
    await sleep(1500);
    if (settled !== null) {
        const x = await call;
        throw new Error(`the call made during the outage was settled before the daemon came back: ${x.ok ? 'result' : describeError(x.e)}`);
    }
    const b = await ctx.daemon('B');
    const out = await withTimeout(call, 10000, 'the call made during the outage');
    if (!out.ok) throw new Error(`the call made during the outage failed after the daemon came back: ${describeError(out.e)}${s.exitNote()}`);
    ctx.time('recovery (daemon B listening -> answer)', settled - b.listeningAt);
    const t = out.r.content && out.r.content[0] && out.r.content[0].text;
    ctx.expect(t === 'queued during the outage', `the call returned ${JSON.stringify(out.r).slice(0, 200)}`);
    ctx.expect((await s.text('whoami', {}, 5000, 'whoami after the outage')) === 'B', 'whoami after the outage is not B');
}

async function coldStart(ctx) {
    const s = ctx.session();
    const t0 = now();
    let connectedAt = null;
    const conn = s.connect(15000).then(() => (connectedAt = now()));
    conn.catch(() => {});
    await sleep(1500);
    ctx.expect(connectedAt === null, `client.connect completed ${connectedAt && ms(connectedAt - t0)} before any daemon listened`);
    const a = await ctx.daemon('A');
    await withTimeout(conn, 13000, 'client.connect');
    ctx.time('connect total', connectedAt - t0);
    ctx.time('daemon listening -> connected', connectedAt - a.listeningAt);
    ctx.expect(connectedAt >= a.listeningAt, 'connect completed before the daemon listened (the default init grace is 10 s)');
    const list = await withTimeout(s.client.listTools(undefined, { timeout: 5000 }), 7000, 'tools/list');
    ctx.expect(list.tools.length === TOOL_NAMES.length, `tools/list gave ${list.tools.length} tools`);
    ctx.expect((await s.text('whoami')) === 'A', 'whoami is not A');
    ctx.expect((await s.text('echo', { text: 'cold' })) === 'cold', 'echo after the cold start failed');
}

async function coldStartInitGrace(ctx) {
    const s = ctx.session(['--init-grace', '1']);
    const t0 = now();
    await s.connect(6000);
    const tConn = now();
    ctx.time('connect (no daemon, --init-grace 1)', tConn - t0);
    ctx.expect(tConn - t0 >= 700 && tConn - t0 <= 2500, `connect took ${ms(tConn - t0)}, expected about 1 s`);
    ctx.note(`capabilities the shim answered with: ${JSON.stringify(s.client.getServerCapabilities())}; ` +
        `serverInfo ${JSON.stringify(s.client.getServerVersion())}`);
    // A call made while no daemon exists yet: answered once it is up.
    let settled = null;
    const call = s.callTool('whoami', {}, 12000).then(
        r => ({ ok: true, r }),
        e => ({ ok: false, e })
    ).then(x => ((settled = now()), x));
    await sleep(Math.max(0, 3000 - (now() - t0)));
    ctx.expect(settled === null, 'the call made before the daemon existed was settled before the daemon started');
    const a = await ctx.daemon('A');
    const out = await withTimeout(call, 12000, 'the call made before the daemon existed');
    if (!out.ok) throw new Error(`the call made before the daemon existed failed: ${describeError(out.e)}${s.exitNote()}`);
    ctx.time('recovery (daemon listening -> answer)', settled - a.listeningAt);
    const who = out.r.content && out.r.content[0] && out.r.content[0].text;
    ctx.expect(who === 'A', `whoami answered ${JSON.stringify(out.r).slice(0, 200)}`);
    ctx.expect((await s.text('echo', { text: 'late' })) === 'late', 'echo after the daemon came up failed');
    const lc = await s.waitListChanged(a.listeningAt, 3000);
    if (ctx.expect(lc !== null, 'no notifications/tools/list_changed within 3 s of the daemon coming up'))
        ctx.time('list_changed after daemon listening', lc - a.listeningAt);
    ctx.expect(s.countSent('initialize') === 1, `the client sent initialize ${s.countSent('initialize')} times`);
    if (s.notifications.length) ctx.note(`other notifications received: ${s.notifications.join(', ')}`);
}

function bigString(minBytes) {
    // 2-, 3- and 4-byte UTF-8 plus characters JSON must escape.
    const unit = '\u00e9\u2603\ud83d\ude00\u00e9\u2603\ud83d\ude00 "q" \\ \n\t/';
    const unitBytes = Buffer.byteLength(unit, 'utf8');
    return unit.repeat(Math.ceil(minBytes / unitBytes));
}

async function eightMiB(ctx) {
    await ctx.daemon('A');
    const s = ctx.session();
    await s.connect();
    const data = bigString(8 * 1024 * 1024);
    const bytes = Buffer.byteLength(data, 'utf8');
    ctx.note(`payload: ${bytes} bytes of UTF-8 (${data.length} UTF-16 units)`);
    const t = now();
    let res;
    try {
        res = await withTimeout(s.callTool('bigecho', { data }, 60000), 62000, 'bigecho');
    } catch (e) {
        throw new Error(`bigecho failed: ${describeError(e)}${s.exitNote()}`);
    }
    ctx.time('8 MiB round trip', now() - t);
    const got = res.content && res.content[0] && res.content[0].text;
    if (got !== data) {
        let i = 0;
        const n = Math.min(got ? got.length : 0, data.length);
        while (i < n && got[i] === data[i]) i++;
        throw new Error(`bigecho result differs: got ${got ? Buffer.byteLength(got, 'utf8') : 'no'} bytes, ` +
            `first difference at UTF-16 index ${i}`);
    }
    ctx.expect((await s.text('echo', { text: 'after big' })) === 'after big', 'echo after the 8 MiB call failed');
}

async function concurrent500(ctx) {
    await ctx.daemon('A');
    const s = ctx.session();
    await s.connect();
    const N = 500;
    const t = now();
    const texts = Array.from({ length: N }, (_, i) => `call ${i} \u2603 ${'x'.repeat(i % 37)}`);
    const results = await withTimeout(
        Promise.allSettled(texts.map(text => s.callTool('echo', { text }, 20000))),
        25000,
        '500 concurrent calls'
    );
    ctx.time(`${N} concurrent calls`, now() - t);
    let bad = 0;
    let first = '';
    results.forEach((r, i) => {
        const got = r.status === 'fulfilled' && r.value.content && r.value.content[0] && r.value.content[0].text;
        if (got !== texts[i]) {
            if (!bad) first = r.status === 'fulfilled' ? `#${i} got ${JSON.stringify(got)}` : `#${i}: ${describeError(r.reason)}`;
            bad++;
        }
    });
    ctx.expect(bad === 0, `${bad} of ${N} calls did not get their own text (first: ${first})`);
}

async function pingDuringOutage(ctx) {
    const a = await ctx.daemon('A');
    const s = ctx.session();
    await s.connect();
    await withTimeout(s.client.ping({ timeout: 3000 }), 4000, 'ping while up');
    await a.kill('SIGKILL');
    await sleep(300);
    const t = now();
    try {
        await withTimeout(s.client.ping({ timeout: 3000 }), 4000, 'ping during the outage');
    } catch (e) {
        throw new Error(`ping during the outage failed after ${ms(now() - t)}: ${describeError(e)}${s.exitNote()}`);
    }
    ctx.time('ping answered during the outage', now() - t);
}

async function frozenDaemon(ctx, recoverBy) {
    const a = await ctx.daemon('A');
    const s = ctx.session(['--ping-interval', '0.5', '--ping-timeout', '1']);
    await s.connect();
    ctx.expect((await s.text('whoami')) === 'A', 'whoami before the freeze is not A');
    a.signal('SIGSTOP');
    const tStop = now();
    let out;
    try {
        const r = await withTimeout(s.callTool('echo', { text: 'frozen?' }, 10000), 11000, 'the call to a frozen daemon');
        out = { ok: true, r };
    } catch (e) {
        out = { ok: false, e };
    }
    const dt = now() - tStop;
    if (out.ok) throw new Error(`the call to a frozen daemon succeeded: ${JSON.stringify(out.r).slice(0, 200)}`);
    ctx.time('freeze -> error', dt);
    ctx.note(`error: ${describeError(out.e)}`);
    ctx.expect(out.e instanceof McpError && out.e.code === -32000,
        `the call to a frozen daemon failed with ${describeError(out.e)}, expected the shim's -32000`);
    ctx.expect(dt < 4000, `the frozen daemon was noticed only after ${ms(dt)} (want < 4 s with ping 0.5/1)`);
    let expectWho = 'A';
    let tBack;
    if (recoverBy === 'SIGCONT') {
        a.signal('SIGCONT');
        tBack = now();
    } else {
        await a.kill('SIGKILL');
        const b = await ctx.daemon('B');
        tBack = b.listeningAt;
        expectWho = 'B';
    }
    const who = await s.text('whoami', {}, 8000, `whoami after ${recoverBy}`);
    ctx.time(`recovery (${recoverBy === 'SIGCONT' ? 'SIGCONT' : 'daemon B listening'} -> answer)`, now() - tBack);
    ctx.expect(who === expectWho, `whoami after ${recoverBy} answered ${JSON.stringify(who)}, expected ${expectWho}`);
}

const SCENARIOS = [
    ['tools_listed_and_called', toolsListedAndCalled, 15000],
    ['daemon_killed_and_restarted', daemonKilledAndRestarted, 20000],
    ['call_in_flight_when_daemon_dies', callInFlightWhenDaemonDies, 15000],
    ['call_during_outage', callDuringOutage, 20000],
    ['cold_start', coldStart, 20000],
    ['cold_start_init_grace', coldStartInitGrace, 20000],
    ['eight_mib_utf8_round_trip', eightMiB, 70000],
    ['concurrent_500_calls', concurrent500, 30000],
    ['ping_during_outage', pingDuringOutage, 10000],
    ['frozen_daemon_sigcont', ctx => frozenDaemon(ctx, 'SIGCONT'), 20000],
    ['frozen_daemon_restarted', ctx => frozenDaemon(ctx, 'restart'), 20000]
];

// ------------------------------------------------------------------- driver
function probeFlags() {
    const flags = [
        ['--init-grace', '1'],
        ['--no-mcp'],
        ['--list-changed', 'when-advertised'],
        ['--hello', '{"jsonrpc":"2.0","id":"h","method":"ping"}'],
        ['--hello-ack-timeout', '1']
    ];
    for (const f of flags) {
        const r = spawnSync(SHIM, [...f, 'ws://127.0.0.1:9', '--log-level', 'error'], { input: '', timeout: 4000 });
        const err = (r.stderr || '').toString().trim().split('\n').pop();
        if (r.error) console.log(`  # flag ${f[0]}: probe failed (${r.error.message})`);
        else if (r.status === 0) console.log(`  # flag ${f[0]}: accepted`);
        else console.log(`  # flag ${f[0]}: rejected (exit ${r.status}${r.signal ? `, ${r.signal}` : ''}: ${err})`);
    }
}

async function main() {
    fs.mkdirSync(LOGDIR, { recursive: true });
    let passed = 0;
    let failed = 0;
    const total = SCENARIOS.length;
    const start = now();
    const finish = () => {
        console.log(`${passed} passed, ${failed} failed`);
        process.exitCode = failed ? 1 : 0;
    };
    const watchdog = setTimeout(() => {
        console.log(`FAIL watchdog: the run exceeded ${WATCHDOG_MS / 1000} s; stopping`);
        failed += total - passed - failed;
        finish();
        killAllChildren();
        process.exit(1);
    }, WATCHDOG_MS);
    watchdog.unref();

    if (!fs.existsSync(SHIM)) {
        console.log(`FAIL setup: ${SHIM} does not exist (run make, or set ALWAYSUP_BIN)`);
        failed = total;
        finish();
        return;
    }
    // The SDK's exports map package.json to dist/, so find the package folder by walking up from its entry.
    let sdkVersion = '?';
    try {
        let dir = path.dirname(createRequire(import.meta.url).resolve('@modelcontextprotocol/sdk/client/index.js'));
        for (let i = 0; i < 6; i++, dir = path.dirname(dir)) {
            const pj = path.join(dir, 'package.json');
            if (!fs.existsSync(pj)) continue;
            const j = JSON.parse(fs.readFileSync(pj, 'utf8'));
            if (j.name === '@modelcontextprotocol/sdk') {
                sdkVersion = j.version;
                break;
            }
        }
    } catch {
        // informational only
    }
    const v = spawnSync(SHIM, ['--version'], { timeout: 3000 });
    const port = await freePort();
    console.log(`  # ${(v.stdout || '').toString().trim() || SHIM}; @modelcontextprotocol/sdk ${sdkVersion}; ` +
        `node ${process.version}; daemon port ${port}; logs in ${path.relative(process.cwd(), LOGDIR) || LOGDIR}`);
    probeFlags();

    for (const [name, fn, budget] of SCENARIOS) {
        const ctx = new Ctx(name, port);
        const t = now();
        let fatal = null;
        try {
            await withTimeout(fn(ctx), budget, `scenario budget`);
        } catch (e) {
            fatal = describeError(e);
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
            console.log(`FAIL ${name}: ${why.join('; ')}${times}`);
        }
        for (const n of ctx.notes) console.log(`  # ${n}`);
        console.log(`  # ${name}: ${ms(now() - t)}`);
    }
    console.log(`  # total ${((now() - start) / 1000).toFixed(1)} s`);
    clearTimeout(watchdog);
    finish();
}

main().catch(e => {
    console.log(`FAIL driver: ${e && e.stack ? e.stack : e}`);
    console.log('0 passed, 1 failed');
    killAllChildren();
    process.exit(1);
});
