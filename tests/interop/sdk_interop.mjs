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
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import {
    REPO, SHIM, now, sleep, ms, withTimeout, describeError, freePort, readText, sdkVersion, children,
    startWithRetries, stopProcess, ShimSession, ScenarioCtx, runSuite
} from './common.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DAEMON = path.join(HERE, 'mcp_ws_daemon.mjs');
const LOGDIR = path.join(REPO, 'build', 'test-logs', 'interop');
const WATCHDOG_MS = 110_000;

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
    start(timeoutMs = 5000) {
        return startWithRetries(t => this._startOnce(t), timeoutMs, { attempts: 5, floorMs: 500, pauseMs: 100 });
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
        await stopProcess(this.proc, `daemon ${this.instance}`, sig, timeoutMs);
    }
}

// ------------------------------------------------- one client through the shim
class Session extends ShimSession {
    constructor(ctx, label, extraArgs) {
        const args = [`ws://127.0.0.1:${ctx.port}`, '--log-level', 'debug', ...extraArgs];
        const logPath = path.join(LOGDIR, `${ctx.name}${label ? `.${label}` : ''}.shim.log`);
        const log = fs.createWriteStream(logPath);
        super(ctx, {
            command: SHIM,
            args,
            // The shim remembers the daemon's InitializeResult per URL (by default under
            // $XDG_STATE_HOME or ~/.local/state); keep each scenario's state apart and fresh.
            env: { ALWAYSUP_STATE_DIR: ctx.stateDir },
            stderr: log,
            maxBufferSize: 64 * 1024 * 1024, // the SDK's default (10 MiB) is too small for the 8 MiB test
            liftListenerLimit: true,
            clientName: 'alwaysup-interop'
        });
        this.label = label;
        this.args = args;
        this.logPath = logPath;
        this.log = log;
    }

    shimLogTail(lines = 3) {
        return readText(this.logPath).trim().split('\n').slice(-lines).join(' | ');
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
}

// ------------------------------------------------------------ scenario context
class Ctx extends ScenarioCtx {
    constructor(name, port) {
        super(name, port);
        this.daemonLog = fs.createWriteStream(path.join(LOGDIR, `${name}.daemon.log`));
        this.stateDir = path.join(LOGDIR, 'sdk-state', name);
        fs.rmSync(this.stateDir, { recursive: true, force: true });
        fs.mkdirSync(this.stateDir, { recursive: true });
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

let port;
runSuite({
    scenarios: SCENARIOS,
    logDir: LOGDIR,
    watchdogMs: WATCHDOG_MS,
    setup: async () => {
        if (!fs.existsSync(SHIM)) return `${SHIM} does not exist (run make, or set ALWAYSUP_BIN)`;
        const v = spawnSync(SHIM, ['--version'], { timeout: 3000 });
        port = await freePort();
        console.log(`  # ${(v.stdout || '').toString().trim() || SHIM}; @modelcontextprotocol/sdk ${sdkVersion()}; ` +
            `node ${process.version}; daemon port ${port}; logs in ${path.relative(process.cwd(), LOGDIR) || LOGDIR}`);
        probeFlags();
        return null;
    },
    newCtx: name => new Ctx(name, port)
});
