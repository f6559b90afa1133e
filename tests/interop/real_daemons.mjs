#!/usr/bin/env node
// Interop tests against daemons nobody on this project wrote: the official MCP
// TypeScript SDK client, over stdio, through build/alwaysup, to
//   A. supergateway 4.x (--outputTransport ws) in front of
//      @modelcontextprotocol/server-everything (one stdio child for the gateway),
//   B. server-everything behind per_connection_bridge.mjs (one fresh stdio child
//      per WebSocket connection), which also lets server-everything's requests
//      to the client (sampling/createMessage, elicitation/create, roots/list)
//      be answered; B2: an elicitation is pending when the daemon dies,
//   C. the SDK test daemon mcp_ws_daemon.mjs with injected faults: it dies on
//      initialize three times in a row (cold start, live session), takes 15 s
//      to answer initialize (live session, cold start), or floods
//      notifications at a client that stops reading stdout for 45 s.
// Each daemon is restarted mid-session; the recovery time (new daemon
// listening -> first successful call) is printed in the "ok" line.
//
//   cd tests && npm ci && node interop/real_daemons.mjs [-k REGEX]
//
// Environment: ALWAYSUP_BIN (default <repo>/build/alwaysup). Logs of every
// shim and daemon go to <repo>/build/test-logs/interop/real.<scenario>.*.log;
// each scenario's shim keeps its remembered state in
// .../interop/real-state/<scenario> (emptied first).
// Prints one line per scenario ("ok NAME (timings)" or "FAIL NAME: why"),
// details as "  # ..." lines, and ends with "N passed, M failed"; exits 1 on
// any failure. Every wait is bounded; a watchdog ends the run at 170 s.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
    CreateMessageRequestSchema,
    ElicitRequestSchema,
    ListRootsRequestSchema,
    LoggingMessageNotificationSchema,
    McpError,
    ResourceUpdatedNotificationSchema
} from '@modelcontextprotocol/sdk/types.js';
import {
    REPO, SHIM, now, sleep, ms, withTimeout, describeError, freePort, readText, children, setChildKiller,
    killAllChildren, startWithRetries, ShimSession, ScenarioCtx, runSuite
} from './common.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MODULES = path.join(REPO, 'tests', 'node_modules');
const SDK_DAEMON = path.join(HERE, 'mcp_ws_daemon.mjs');
const BRIDGE = path.join(HERE, 'per_connection_bridge.mjs');
const SUPERGATEWAY = path.join(MODULES, 'supergateway', 'dist', 'index.js');
const EVERYTHING_PKG = path.join(MODULES, '@modelcontextprotocol', 'server-everything');
// server-everything's bin (dist/index.js) takes the transport as its first argument; stdio is the default
const EVERYTHING = path.join(EVERYTHING_PKG, 'dist', 'index.js');
const LOGDIR = path.join(REPO, 'build', 'test-logs', 'interop');
const WATCHDOG_MS = 170_000;

function readVersion(pkgDir) {
    try {
        return JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version;
    } catch {
        return '?';
    }
}

// A process and all its descendants (by parent pid, from /proc), root first.
// supergateway starts its child in a process group of its own (detached), so
// killing a group is not enough: the tree is read before anything is killed.
function processTree(root) {
    const kids = new Map();
    let entries = [];
    try {
        entries = fs.readdirSync('/proc');
    } catch {
        return [root];
    }
    for (const d of entries) {
        if (!/^\d+$/.test(d)) continue;
        let st;
        try {
            st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        } catch {
            continue;
        }
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
        const ppid = Number(f[1]);
        if (!kids.has(ppid)) kids.set(ppid, []);
        kids.get(ppid).push(Number(d));
    }
    const out = [root];
    for (let i = 0; i < out.length; i++) for (const k of kids.get(out[i]) || []) out.push(k);
    return out;
}
function killTree(pid, sig = 'SIGKILL') {
    for (const p of processTree(pid)) {
        try {
            process.kill(p, sig);
        } catch {
            // gone
        }
    }
}

// Every process we start (daemons with their trees, shims) is killed with its tree, so that nothing outlives the run.
setChildKiller(p => {
    if (p.pid) killTree(p.pid);
});
for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
        console.log(`FAIL interrupted: ${sig}`);
        killAllChildren();
        process.exit(1);
    });
}

// Splits a stream into lines; calls fn(line) for each.
function onLines(stream, fn) {
    let pending = '';
    stream.setEncoding('utf8');
    stream.on('data', d => {
        pending += d;
        let nl;
        while ((nl = pending.indexOf('\n')) >= 0) {
            const line = pending.slice(0, nl);
            pending = pending.slice(nl + 1);
            fn(line);
        }
    });
    stream.on('end', () => {
        if (pending) fn(pending);
        pending = '';
    });
}

// ------------------------------------------------------------------ a daemon
// Any daemon: a command, and the line on its stdout that says it is listening.
class Daemon {
    constructor(ctx, instance, args, readyRe) {
        this.ctx = ctx;
        this.instance = instance;
        this.args = args;
        this.readyRe = readyRe;
        this.log = ctx.daemonLog;
        this.proc = null;
        this.exited = null;
        this.lines = []; // {t, text}: stdout and stderr, each line cut at 4000 chars
        this.listeningAt = null;
        this.onexit = null;
    }
    async start(timeoutMs = 10000) {
        this.listeningAt = await startWithRetries(t => this._startOnce(t), timeoutMs, { attempts: 5, floorMs: 1000, pauseMs: 100 });
        return this.listeningAt;
    }
    _startOnce(timeoutMs) {
        return new Promise((resolve, reject) => {
            const p = spawn(process.execPath, this.args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO });
            this.proc = p;
            this.exited = null;
            children.add(p);
            const t0 = this.ctx.t0;
            const record = (tag, line) => {
                const t = now();
                this.log.write(`[${((t - t0) / 1000).toFixed(3)} ${this.instance} ${tag}] ${line}\n`);
                this.lines.push({ t, text: line.length > 4000 ? line.slice(0, 4000) : line });
            };
            let done = false;
            const timer = setTimeout(() => {
                if (done) return;
                done = true;
                killTree(p.pid);
                reject(new Error(`daemon ${this.instance} did not say it was listening within ${timeoutMs} ms`));
            }, timeoutMs);
            onLines(p.stderr, line => record('err', line));
            onLines(p.stdout, line => {
                record('out', line);
                if (!done && this.readyRe.test(line)) {
                    done = true;
                    clearTimeout(timer);
                    resolve(now());
                }
            });
            p.on('exit', (code, signal) => {
                children.delete(p);
                this.exited = { code, signal, at: now() };
                this.log.write(`[${((now() - t0) / 1000).toFixed(3)} ${this.instance}] exited (code ${code}, signal ${signal})\n`);
                if (!done) {
                    done = true;
                    clearTimeout(timer);
                    reject(new Error(`daemon ${this.instance} exited before listening (code ${code}, signal ${signal})`));
                }
                this.onexit?.(this.exited);
            });
        });
    }
    get alive() {
        return this.proc && !this.exited;
    }
    // SIGKILL the daemon and everything it started; waits (bounded) for it to be gone.
    async kill(timeoutMs = 3000) {
        if (!this.alive) return;
        const p = this.proc;
        const gone = new Promise(resolve => p.once('exit', resolve));
        killTree(p.pid);
        await withTimeout(gone, timeoutMs, `daemon ${this.instance} exit after SIGKILL`);
    }
    find(re, since = 0) {
        return this.lines.find(l => l.t >= since && re.test(l.text)) || null;
    }
    count(re) {
        return this.lines.filter(l => re.test(l.text)).length;
    }
    async waitLine(re, timeoutMs, since = 0) {
        const deadline = now() + timeoutMs;
        for (;;) {
            const l = this.find(re, since);
            if (l) return l;
            if (now() >= deadline) return null;
            await sleep(20);
        }
    }
}

const DAEMON_KINDS = {
    // supergateway --stdio "node <server-everything> stdio" --outputTransport ws --port P
    supergateway: (ctx, instance) => new Daemon(ctx, instance, [
        SUPERGATEWAY, '--stdio', `"${process.execPath}" "${EVERYTHING}" stdio`,
        '--outputTransport', 'ws', '--port', String(ctx.port)
    ], /Listening on port \d+/),
    bridge: (ctx, instance) => new Daemon(ctx, instance,
        [BRIDGE, '--port', String(ctx.port), '--name', instance], /^listening \d+$/),
    sdk: (ctx, instance, extra = []) => new Daemon(ctx, instance,
        [SDK_DAEMON, '--port', String(ctx.port), '--instance', instance, ...extra], /^listening \d+$/)
};


// ------------------------------------------------- one client through the shim
class Session extends ShimSession {
    constructor(ctx, { url, capabilities = {}, extraArgs = [], label = '' }) {
        const args = [url, '--log-level', 'debug', ...extraArgs];
        const logPath = path.join(LOGDIR, `real.${ctx.name}${label ? `.${label}` : ''}.shim.log`);
        const log = fs.createWriteStream(logPath);
        super(ctx, {
            command: SHIM,
            args,
            env: { ALWAYSUP_STATE_DIR: ctx.stateDir },
            stderr: log,
            clientName: 'alwaysup-real-daemons',
            capabilities,
            strictTap: false
        });
        this.args = args;
        this.logPath = logPath;
        this.log = log;
        this.answered = new Map(); // response id -> how many responses the client got for it
        this.daemonRequests = []; // {t, method, id}: requests to the client, as seen on stdout
        this.cancels = []; // {t, requestId, reason}: notifications/cancelled, as seen on stdout
        this.logs = []; // {t, level, data}
        this.updates = []; // {t, uri}
        this.served = { roots: [], sampling: [], elicitation: [] };
        this.lateProgress = []; // {t, progress, total}: see onClientError

        this.client.setNotificationHandler(LoggingMessageNotificationSchema, n => {
            this.logs.push({ t: now(), level: n.params.level, data: n.params.data });
        });
        this.client.setNotificationHandler(ResourceUpdatedNotificationSchema, n => {
            this.updates.push({ t: now(), uri: n.params.uri });
        });
        // Requests from the daemon to the client, answered so that each answer says which it was.
        if (capabilities.roots) {
            this.client.setRequestHandler(ListRootsRequestSchema, async () => {
                this.served.roots.push(now());
                const k = this.served.roots.length;
                return { roots: [{ uri: `file:///alwaysup-interop/root-${k}`, name: `root ${k}` }] };
            });
        }
        if (capabilities.sampling) {
            this.client.setRequestHandler(CreateMessageRequestSchema, async req => {
                this.served.sampling.push(now());
                const m = req.params.messages[0];
                const text = m && m.content && m.content.type === 'text' ? m.content.text : '?';
                return {
                    model: 'alwaysup-test-model',
                    role: 'assistant',
                    stopReason: 'endTurn',
                    content: { type: 'text', text: `sampled #${this.served.sampling.length}: ${text}` }
                };
            });
        }
        if (capabilities.elicitation) {
            this.client.setRequestHandler(ElicitRequestSchema, async () => {
                this.served.elicitation.push(now());
                return { action: 'accept', content: { name: `Ada Lovelace #${this.served.elicitation.length}`, check: true } };
            });
        }
    }
    // SDK 1.32.2 runs notification handlers a microtask later but handles a response at
    // once: a progress notification that arrives in the same stdout chunk as its result
    // finds its handler gone. It did reach the client; the scenario counts it from here.
    onClientError(e) {
        const m = describeError(e).match(/^Received a progress notification for an unknown token: (\{.*\})$/);
        if (m) {
            try {
                const n = JSON.parse(m[1]);
                this.lateProgress.push({ t: now(), progress: n.params.progress, total: n.params.total });
                return true;
            } catch {
                // not ours: recorded as an error
            }
        }
        return false;
    }
    onStdoutMessage(v, text, problem) {
        if (v.method === 'notifications/cancelled' && v.params)
            this.cancels.push({ t: now(), requestId: v.params.requestId, reason: v.params.reason });
        else if ('method' in v && 'id' in v) this.daemonRequests.push({ t: now(), method: v.method, id: v.id });
        if (!('method' in v)) {
            const key = JSON.stringify(v.id);
            const n = (this.answered.get(key) || 0) + 1;
            this.answered.set(key, n);
            if (n === 2) problem(`request ${key} answered more than once`);
        }
    }

    shimLog() {
        return readText(this.logPath);
    }
    shimLogTail(lines = 3) {
        return this.shimLog().trim().split('\n').slice(-lines).join(' | ');
    }
    // callTool that must succeed; returns all its text content, joined.
    async text(name, args = {}, timeoutMs = 5000, what = name, extra = {}) {
        let res;
        try {
            res = await withTimeout(this.callTool(name, args, timeoutMs, extra), timeoutMs + 2000, what);
        } catch (e) {
            await sleep(20);
            throw new Error(`${what} failed: ${describeError(e)}${this.exitNote()}`);
        }
        if (res.isError) throw new Error(`${what}: tool error ${JSON.stringify(res.content).slice(0, 300)}`);
        const texts = (res.content || []).filter(c => c.type === 'text').map(c => c.text);
        if (!texts.length) throw new Error(`${what}: no text content in ${JSON.stringify(res).slice(0, 200)}`);
        return texts.join('\n');
    }
    async request(what, fn, timeoutMs = 5000) {
        try {
            return await withTimeout(fn({ timeout: timeoutMs }), timeoutMs + 2000, what);
        } catch (e) {
            await sleep(20);
            throw new Error(`${what} failed: ${describeError(e)}${this.exitNote()}`);
        }
    }
    async toolNames() {
        const list = await this.request('tools/list', o => this.client.listTools(undefined, o));
        return list.tools.map(t => t.name);
    }
    async waitFor(pred, timeoutMs) {
        const deadline = now() + timeoutMs;
        for (;;) {
            const v = pred();
            if (v) return v;
            if (now() >= deadline) return null;
            await sleep(20);
        }
    }
}

// ------------------------------------------------------------ scenario context
class Ctx extends ScenarioCtx {
    constructor(name, port) {
        super(name, port);
        this.t0 = now();
        this.procs = [];
        this.daemonLog = fs.createWriteStream(path.join(LOGDIR, `real.${name}.daemon.log`));
        this.stateDir = path.join(LOGDIR, 'real-state', name);
        fs.rmSync(this.stateDir, { recursive: true, force: true });
        fs.mkdirSync(this.stateDir, { recursive: true });
    }
    // Starts a daemon of a kind (see DAEMON_KINDS) and waits for it to listen.
    async daemon(kind, instance, extra) {
        const d = DAEMON_KINDS[kind](this, instance, extra);
        this.daemons.push(d);
        await d.start();
        return d;
    }
    session(opts) {
        const s = new Session(this, opts);
        this.sessions.push(s);
        return s;
    }
    async cleanup() {
        for (const s of this.sessions) await s.close();
        for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) killTree(p.pid);
        for (const d of this.daemons) {
            try {
                await d.kill();
            } catch (e) {
                this.note(`daemon cleanup: ${e.message}`);
            }
        }
        await new Promise(resolve => this.daemonLog.end(resolve));
    }
}

// ------------------------------------------- server-everything, both fronts
const LEVELS = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];
const CLIENT_LEVEL = 'notice';
const SUBSCRIBED_URI = 'demo://resource/dynamic/text/1';
const BASE_TOOLS = ['echo', 'get-sum', 'trigger-long-running-operation', 'toggle-simulated-logging', 'toggle-subscriber-updates'];
// registered by server-everything in oninitialized, from the client's capabilities
const CONDITIONAL_TOOLS = { sampling: 'trigger-sampling-request', elicitation: 'trigger-elicitation-request', roots: 'get-roots-list' };

// Everything the client can check of server-everything's features on the
// daemon it is talking to now. `phase` names the daemon in messages; `since`
// is when that daemon started listening; log notifications below the client's
// level must not arrive after `logsSince` (for a new daemon: since it listened).
// `exercise` names the requests to the client (sampling, elicitation, roots) to trigger.
async function exerciseEverything(ctx, s, phase, since, caps, exercise, logsSince = since) {
    const t0 = now();
    // tools, including those registered only after initialize (from the client's capabilities)
    const names = await s.toolNames();
    const want = [...BASE_TOOLS, ...Object.keys(CONDITIONAL_TOOLS).filter(c => caps[c]).map(c => CONDITIONAL_TOOLS[c])];
    const missing = want.filter(n => !names.includes(n));
    ctx.expect(missing.length === 0, `${phase}: tools/list lacks ${missing.join(', ')} (has ${names.join(', ')})`);
    for (const c of Object.keys(CONDITIONAL_TOOLS))
        if (!caps[c]) ctx.expect(!names.includes(CONDITIONAL_TOOLS[c]), `${phase}: ${CONDITIONAL_TOOLS[c]} listed without the ${c} capability`);

    const msg = `${phase}: h\u00e9llo \u2603 \ud83d\ude00 "q" \\`;
    ctx.expect((await s.text('echo', { message: msg }, 5000, `${phase} echo`)) === `Echo: ${msg}`, `${phase}: echo gave the wrong text`);
    const sum = await s.text('get-sum', { a: 2, b: 40 }, 5000, `${phase} get-sum`);
    ctx.expect(/ is 42\.?$/.test(sum), `${phase}: get-sum answered ${JSON.stringify(sum)}`);

    // progress
    const progress = [];
    const tLro = now();
    const lro = await s.text('trigger-long-running-operation', { duration: 0.8, steps: 4 }, 8000, `${phase} long-running operation`,
        { onprogress: p => progress.push(p) });
    ctx.expect(/completed/i.test(lro), `${phase}: long-running operation answered ${JSON.stringify(lro).slice(0, 120)}`);
    await sleep(50);
    const late = s.lateProgress.filter(p => p.t >= tLro);
    const all = [...progress, ...late].map(p => [p.progress, p.total]);
    ctx.expect(JSON.stringify(all) === JSON.stringify([[1, 4], [2, 4], [3, 4], [4, 4]]),
        `${phase}: progress notifications ${JSON.stringify(all)}, expected 1..4 of 4`);
    if (late.length) ctx.note(`${phase}: progress ${late.map(p => p.progress).join(', ')} reached the SDK client in the same ` +
        'stdout chunk as the result and was dropped by the SDK as "unknown token" (SDK 1.32.2 runs notification ' +
        'handlers a microtask after it handled the response)');

    // the log level: each time simulated logging is switched on, server-everything sends one message
    // at a random level through sendLoggingMessage, which drops it below the level the client set
    const logStart = now();
    for (let i = 0; i < 40; i++) await s.text('toggle-simulated-logging', {}, 5000, `${phase} toggle-simulated-logging #${i + 1}`);
    await sleep(300);
    const simulated = s.logs.filter(l => l.t >= logStart && /level[- ]message/i.test(String(l.data)));
    const below = s.logs.filter(l => l.t >= logsSince && LEVELS.indexOf(l.level) < LEVELS.indexOf(CLIENT_LEVEL));
    ctx.expect(below.length === 0, `${phase}: ${below.length} log notification(s) below '${CLIENT_LEVEL}' arrived ` +
        `(${below.slice(0, 3).map(l => `${l.level}: ${JSON.stringify(l.data)}`.slice(0, 100)).join('; ')}): ` +
        'the level the client set is not applied by this daemon');
    ctx.expect(simulated.length > 0, `${phase}: no simulated log notification at or above '${CLIENT_LEVEL}' in 20 tries`);
    const byLevel = {};
    for (const l of simulated) byLevel[l.level] = (byLevel[l.level] || 0) + 1;
    ctx.note(`${phase}: simulated logging: ${simulated.length} of 20 random-level messages arrived, none below ` +
        `${CLIENT_LEVEL} expected: ${JSON.stringify(byLevel)}`);

    // the subscription: updates go to subscribers this daemon knows of
    const subStart = now();
    await s.text('toggle-subscriber-updates', {}, 5000, `${phase} toggle-subscriber-updates on`);
    const upd = await s.waitFor(() => s.updates.find(u => u.t >= subStart && u.uri === SUBSCRIBED_URI), 3000);
    ctx.expect(upd, `${phase}: no notifications/resources/updated for ${SUBSCRIBED_URI} within 3 s of toggle-subscriber-updates`);
    await s.text('toggle-subscriber-updates', {}, 5000, `${phase} toggle-subscriber-updates off`);

    // requests from the daemon to the client
    if (exercise.sampling) {
        const n0 = s.served.sampling.length;
        const out = await s.text('trigger-sampling-request', { prompt: `${phase} prompt`, maxTokens: 16 }, 8000, `${phase} sampling`);
        ctx.expect(s.served.sampling.length === n0 + 1, `${phase}: the client answered ${s.served.sampling.length - n0} sampling requests, expected 1`);
        ctx.expect(out.includes(`sampled #${n0 + 1}: `) && out.includes(`${phase} prompt`),
            `${phase}: trigger-sampling-request did not return the client's answer: ${JSON.stringify(out).slice(0, 200)}`);
    }
    if (exercise.elicitation) {
        const n0 = s.served.elicitation.length;
        const out = await s.text('trigger-elicitation-request', {}, 8000, `${phase} elicitation`);
        ctx.expect(s.served.elicitation.length === n0 + 1, `${phase}: the client answered ${s.served.elicitation.length - n0} elicitations, expected 1`);
        ctx.expect(/User provided the requested information/.test(out) && out.includes(`Name: Ada Lovelace #${n0 + 1}`),
            `${phase}: trigger-elicitation-request did not return the client's answer: ${JSON.stringify(out).slice(0, 200)}`);
    }
    if (exercise.roots) {
        // server-everything asks for the roots by itself 350 ms after notifications/initialized
        const r = await s.waitFor(() => s.served.roots.find(t => t >= since), 3000);
        if (ctx.expect(r, `${phase}: this daemon never sent roots/list to the client`))
            ctx.time(`${phase} roots/list after listening`, r - since);
        const k = s.served.roots.length;
        const out = await s.text('get-roots-list', {}, 5000, `${phase} get-roots-list`);
        ctx.expect(out.includes(`file:///alwaysup-interop/root-${k}`),
            `${phase}: get-roots-list does not show the client's latest roots answer (root-${k}): ${JSON.stringify(out).slice(0, 200)}`);
    }
    ctx.time(`${phase} checks`, now() - t0);
}

async function everythingScenario(ctx, kind, caps, exercise, urlPath) {
    const url = `ws://127.0.0.1:${ctx.port}${urlPath}`;
    const a = await ctx.daemon(kind, `${kind}-1`);
    const s = ctx.session({ url, capabilities: caps });
    const t0 = now();
    await s.connect();
    ctx.time('connect', now() - t0);
    const info = s.client.getServerVersion();
    ctx.expect(info && info.name === 'mcp-servers/everything', `serverInfo ${JSON.stringify(info)}`);
    const sc = s.client.getServerCapabilities() || {};
    ctx.expect(sc.logging && sc.resources && sc.resources.subscribe && sc.tools && sc.tools.listChanged,
        `server capabilities lack logging, resources.subscribe or tools.listChanged: ${JSON.stringify(sc)}`);
    // tools registered after initialize are announced with list_changed
    const lc1 = await s.waitFor(() => s.listChanged.length > 0, 3000);
    ctx.expect(lc1, 'no notifications/tools/list_changed after initialize (server-everything registers tools in oninitialized)');

    await s.request('logging/setLevel', o => s.client.setLoggingLevel(CLIENT_LEVEL, o));
    const levelSetAt = now();
    const rr = await s.request('resources/read', o => s.client.readResource({ uri: SUBSCRIBED_URI }, o));
    ctx.expect(rr.contents && rr.contents[0] && rr.contents[0].uri === SUBSCRIBED_URI, `resources/read ${SUBSCRIBED_URI}: ${JSON.stringify(rr).slice(0, 200)}`);
    await s.request('resources/subscribe', o => s.client.subscribeResource({ uri: SUBSCRIBED_URI }, o));

    await exerciseEverything(ctx, s, 'first daemon', a.listeningAt, caps, exercise, levelSetAt);

    // the restart: kill the daemon (and what it started), make a call while it is down, start a new one
    const tKill = now();
    await a.kill();
    await sleep(300);
    let settled = null;
    const queued = s.callTool('echo', { message: 'queued during the outage' }, 20000).then(
        r => ({ ok: true, r }),
        e => ({ ok: false, e })
    ).then(x => ((settled = now()), x));
    await sleep(700);
    ctx.expect(settled === null, 'the call made during the outage was settled before the new daemon started');
    const b = await ctx.daemon(kind, `${kind}-2`);
    const out = await withTimeout(queued, 15000, 'the call made during the outage');
    if (!out.ok) throw new Error(`the call made during the outage failed: ${describeError(out.e)}${s.exitNote()}`);
    ctx.time('recovery (new daemon listening -> first answer)', settled - b.listeningAt);
    ctx.time('kill -> first answer', settled - tKill);
    const qt = out.r.content && out.r.content[0] && out.r.content[0].text;
    ctx.expect(qt === 'Echo: queued during the outage', `the queued call returned ${JSON.stringify(out.r).slice(0, 200)}`);
    const lc2 = await s.waitFor(() => s.listChanged.find(t => t >= b.listeningAt), 3000);
    if (ctx.expect(lc2, 'no notifications/tools/list_changed after the restart'))
        ctx.note(`list_changed after the restart: ${s.listChanged.filter(t => t >= b.listeningAt).length} (the daemon's own, ` +
            'for the tools it registered after the replayed initialize, and the shim\'s)');

    await exerciseEverything(ctx, s, 'new daemon', b.listeningAt, caps, exercise);

    ctx.expect(s.countSent('initialize') === 1, `the client sent initialize ${s.countSent('initialize')} times`);
    ctx.expect(s.countSent('logging/setLevel') === 1, `the client sent logging/setLevel ${s.countSent('logging/setLevel')} times`);
    ctx.expect(s.countSent('resources/subscribe') === 1, `the client sent resources/subscribe ${s.countSent('resources/subscribe')} times`);
    ctx.expect(!s.exit, `the shim exited: ${JSON.stringify(s.exit)}`);
    return { s, a, b };
}

async function supergatewayScenario(ctx) {
    // The client advertises sampling and elicitation, so that server-everything registers its
    // trigger-* tools after initialize, but nothing makes it send those requests: through
    // supergateway 4.0.0 the client's answer cannot reach the child (supergateway broadcasts the
    // child's request and rewrites the answer's id to "<uuid>:<id>", which the child never issued).
    // No roots capability: server-everything would send roots/list on its own.
    const caps = { sampling: {}, elicitation: {} };
    const { b } = await everythingScenario(ctx, 'supergateway', caps, {}, '/message');
    // supergateway rewrites request ids to "<connection uuid>:<id>" towards its child and back
    // with parseInt: the shim's replayed requests must carry integer ids to survive that
    const replayed = b.lines.filter(l => /WebSocket → Child: .*"method":"(initialize|logging\/setLevel|resources\/subscribe)"/.test(l.text));
    const ids = replayed.map(l => {
        try {
            const m = JSON.parse(l.text.slice(l.text.indexOf('{')));
            return `${m.method}=${String(m.id).replace(/^[0-9a-f-]+:/, '')}`;
        } catch {
            return `? (${l.text.slice(0, 80)})`;
        }
    });
    ctx.expect(replayed.length === 3 && ids.every(x => /=\d+$/.test(x)),
        `the new supergateway did not see the replayed initialize, setLevel and subscribe with integer ids: ${ids.join(', ')}`);
    ctx.note(`requests the shim replayed to the new supergateway (method=id): ${ids.join(', ')}`);
    ctx.note(`connections the new supergateway saw: ${b.count(/New WebSocket connection/)}`);
}

async function bridgeScenario(ctx) {
    const caps = { sampling: {}, elicitation: {}, roots: { listChanged: true } };
    const { b } = await everythingScenario(ctx, 'bridge', caps, { sampling: true, elicitation: true, roots: true }, '');
    ctx.expect(b.count(/child pid \d+/) === 1, `the new bridge started ${b.count(/child pid \d+/)} server processes, expected 1 (one connection)`);
}

// B2: server-everything's elicitation/create is waiting for the client when the
// daemon dies: the call that caused it fails at once, the client is told to
// cancel the elicitation, and its late answer never reaches the next daemon.
async function bridgePendingClientRequest(ctx) {
    const a = await ctx.daemon('bridge', 'bridge-1');
    const s = ctx.session({ url: `ws://127.0.0.1:${ctx.port}`, capabilities: { elicitation: {} } });
    await s.connect();
    let hold = true;
    const pending = [];
    s.client.setRequestHandler(ElicitRequestSchema, async (req, extra) => {
        const entry = { t: now(), aborted: null };
        pending.push(entry);
        if (hold) {
            await new Promise(resolve => {
                entry.release = resolve;
                extra.signal.addEventListener('abort', () => {
                    entry.aborted = now();
                    resolve();
                });
            });
        }
        return { action: 'accept', content: { name: `late answer ${pending.length}` } };
    });
    const names = await s.toolNames();
    if (!names.includes('trigger-elicitation-request')) throw new Error(`no trigger-elicitation-request tool: ${names.join(', ')}`);
    // One answered at once first: the SDK client (1.32.2) ignores notifications/cancelled for
    // requestId 0 (`if (!notification.params.requestId) return;`), so the pending one gets id 1.
    hold = false;
    ctx.expect((await s.text('trigger-elicitation-request', {}, 8000, 'first elicitation')).includes('Name: late answer 1'),
        'the first elicitation did not return the client\'s answer');
    hold = true;
    let settled = null;
    const call = s.callTool('trigger-elicitation-request', {}, 20000).then(
        r => ({ ok: true, r }),
        e => ({ ok: false, e })
    ).then(x => ((settled = now()), x));
    const got = await s.waitFor(() => pending[1], 5000);
    if (!got) throw new Error('the daemon never sent the second elicitation/create');
    const req = s.daemonRequests.filter(r => r.method === 'elicitation/create')[1];
    await sleep(200);
    const tKill = now();
    await a.kill();
    const out = await withTimeout(call, 5000, 'the call waiting on the elicitation');
    ctx.time('kill -> the call fails', settled - tKill);
    if (out.ok) throw new Error(`the call whose elicitation was pending succeeded after the daemon died: ${JSON.stringify(out.r).slice(0, 200)}`);
    ctx.expect(out.e instanceof McpError && out.e.code === -32000, `the call failed with ${describeError(out.e)}, expected the shim's -32000`);
    const cancel = await s.waitFor(() => s.cancels.find(c => req && c.requestId === req.id), 3000);
    if (ctx.expect(cancel, `no notifications/cancelled for the pending elicitation (id ${req && JSON.stringify(req.id)}) ` +
        `after the daemon died (cancels seen: ${JSON.stringify(s.cancels)})`)) {
        ctx.time('kill -> notifications/cancelled', cancel.t - tKill);
        ctx.note(`cancel reason: ${JSON.stringify(cancel.reason)}`);
    }
    const ab = await s.waitFor(() => pending[1].aborted, 2000);
    ctx.expect(ab, 'the SDK client did not abort the pending elicitation handler');
    if (pending[1].release) pending[1].release();
    hold = false;
    await sleep(300);
    const b = await ctx.daemon('bridge', 'bridge-2');
    const text = await s.text('trigger-elicitation-request', {}, 10000, 'elicitation after the restart');
    ctx.time('recovery (new daemon listening -> elicitation answered)', now() - b.listeningAt);
    ctx.expect(text.includes(`Name: late answer ${pending.length}`) && pending.length === 3,
        `the elicitation after the restart returned ${JSON.stringify(text).slice(0, 200)} (${pending.length} elicitations seen)`);
    const dropped = s.shimLog().split('\n').filter(l => /answer_dropped|dropped the client's answer/.test(l)).length;
    ctx.note(`shim log lines about a dropped late answer from the client: ${dropped}`);
}

// --------------------------------------------- the SDK daemon, with faults
// Restarts the SDK daemon whenever it dies on initialize, as a supervisor
// would: instances named NAME1, NAME2, ... all started with the same options.
class Respawner {
    constructor(ctx, prefix, extra) {
        this.ctx = ctx;
        this.prefix = prefix;
        this.extra = extra;
        this.instances = [];
        this.stopped = false;
        this.failure = null;
    }
    async start() {
        const n = this.instances.length + 1;
        const d = DAEMON_KINDS.sdk(this.ctx, `${this.prefix}${n}`, this.extra);
        this.ctx.daemons.push(d);
        this.instances.push(d);
        // only a death on initialize (status 3) is restarted: the scenario's own SIGKILLs are final
        d.onexit = ex => {
            if (!this.stopped && ex.code === 3 && this.instances.length < 10) this.start().catch(e => (this.failure = e.message));
        };
        await d.start();
        return d;
    }
    get last() {
        return this.instances[this.instances.length - 1];
    }
    deaths() {
        return this.instances.filter(d => d.exited && d.exited.code === 3).length;
    }
    // The instance that stayed up: alive and listening.
    async up(timeoutMs) {
        const deadline = now() + timeoutMs;
        for (;;) {
            const d = this.last;
            if (d && d.alive && d.listeningAt && !d.find(/--die-on-initialize: exiting/)) return d;
            if (now() > deadline) return null;
            await sleep(20);
        }
    }
}

async function dieOnInitializeColdStart(ctx) {
    const countFile = path.join(ctx.stateDir, 'deaths');
    const s = ctx.session({ url: `ws://127.0.0.1:${ctx.port}` });
    const t0 = now();
    let connectedAt = null;
    const conn = s.connect(25000).then(() => (connectedAt = now()));
    conn.catch(() => {});
    await sleep(500);
    const r = new Respawner(ctx, 'D', ['--die-on-initialize', '3', '--die-count-file', countFile]);
    await r.start();
    await withTimeout(conn, 25000, 'client.connect');
    const d = await r.up(5000);
    if (!d) throw new Error(`no daemon instance stayed up (${r.instances.length} started, ${r.deaths()} died)`);
    ctx.expect(r.deaths() === 3, `${r.deaths()} instances died on initialize, expected 3`);
    ctx.time('recovery (4th daemon listening -> initialize answered)', connectedAt - d.listeningAt);
    ctx.time('connect total', connectedAt - t0);
    // Three deaths and the backoff after each (0.84 + 1.27 + 1.9 s) take about 5 s, 8 s on a loaded
    // machine: under the shim's --init-grace (10 s), after which it answers initialize itself.
    const info = s.client.getServerVersion();
    if (connectedAt - t0 < 9500)
        ctx.expect(info && info.name === 'alwaysup-interop-daemon',
            `the client's initialize was answered with serverInfo ${JSON.stringify(info)}, not the daemon's`);
    else ctx.note(`initialize took ${ms(connectedAt - t0)}; answered with serverInfo ${JSON.stringify(info)}`);
    const who = await s.text('whoami', {}, 5000, 'whoami');
    ctx.time('4th daemon listening -> first tools/call answered', now() - d.listeningAt);
    ctx.expect(who === d.instance, `whoami answered ${JSON.stringify(who)}, expected ${d.instance}`);
    ctx.expect((await s.text('echo', { text: 'after 3 deaths' })) === 'after 3 deaths', 'echo after the deaths failed');
    ctx.expect(s.countSent('initialize') === 1, `the client sent initialize ${s.countSent('initialize')} times`);
    ctx.note(`instances: ${r.instances.map(x => `${x.instance}${x.exited ? ` exit ${x.exited.code}` : ' up'}`).join(', ')}`);
    r.stopped = true;
    if (r.failure) ctx.problems.push(`respawning: ${r.failure}`);
}

async function dieOnInitializeLive(ctx) {
    const countFile = path.join(ctx.stateDir, 'deaths');
    const a = await ctx.daemon('sdk', 'A');
    const s = ctx.session({ url: `ws://127.0.0.1:${ctx.port}` });
    await s.connect();
    ctx.expect((await s.text('whoami')) === 'A', 'whoami before the restart is not A');
    const tKill = now();
    await a.kill();
    let settled = null;
    const call = s.callTool('whoami', {}, 25000).then(
        x => ({ ok: true, r: x }),
        e => ({ ok: false, e })
    ).then(x => ((settled = now()), x));
    await sleep(300);
    const r = new Respawner(ctx, 'D', ['--die-on-initialize', '3', '--die-count-file', countFile]);
    await r.start();
    const out = await withTimeout(call, 25000, 'the call made while the daemons died');
    if (!out.ok) throw new Error(`the call made while the daemons died on initialize failed: ${describeError(out.e)}${s.exitNote()}`);
    const d = await r.up(5000);
    if (!d) throw new Error(`no daemon instance stayed up (${r.instances.length} started, ${r.deaths()} died)`);
    ctx.expect(r.deaths() === 3, `${r.deaths()} instances died on the replayed initialize, expected 3`);
    ctx.time('recovery (4th daemon listening -> first answer)', settled - d.listeningAt);
    ctx.time('kill -> first answer', settled - tKill);
    const who = out.r.content && out.r.content[0] && out.r.content[0].text;
    ctx.expect(who === d.instance, `the queued whoami answered ${JSON.stringify(who)}, expected ${d.instance}`);
    ctx.expect((await s.text('echo', { text: 'after 3 deaths' })) === 'after 3 deaths', 'echo after the deaths failed');
    const lc = await s.waitFor(() => s.listChanged.find(t => t >= d.listeningAt), 3000);
    ctx.expect(lc, 'no notifications/tools/list_changed after the daemon came up');
    ctx.expect(s.countSent('initialize') === 1, `the client sent initialize ${s.countSent('initialize')} times`);
    const refusals = (s.shimLog().match(/lost|refused|failed/gi) || []).length;
    ctx.note(`instances: ${r.instances.map(x => `${x.instance}${x.exited ? ` exit ${x.exited.code}` : ' up'}`).join(', ')}; ` +
        `shim log lines about lost/failed connections: ${refusals}`);
    r.stopped = true;
    if (r.failure) ctx.problems.push(`respawning: ${r.failure}`);
}

async function slowInitialize(ctx) {
    const DELAY = 15000;
    const a = await ctx.daemon('sdk', 'A');
    const s = ctx.session({ url: `ws://127.0.0.1:${ctx.port}` });
    await s.connect();
    ctx.expect((await s.text('whoami')) === 'A', 'whoami before the restart is not A');
    await a.kill();
    await sleep(300);
    let settled = null;
    const call = s.callTool('echo', { text: 'waited for a slow initialize' }, 40000).then(
        x => ({ ok: true, r: x }),
        e => ({ ok: false, e })
    ).then(x => ((settled = now()), x));
    const b = await ctx.daemon('sdk', 'B', ['--init-delay', String(DELAY)]);
    const held = await b.waitLine(/--init-delay: holding initialize/, 5000);
    ctx.expect(held, 'the new daemon never received the replayed initialize');
    const released = await b.waitLine(/--init-delay: releasing initialize/, DELAY + 5000);
    if (!released) throw new Error('the new daemon never released the initialize (test bug)');
    const out = await withTimeout(call, 10000, 'the call made during the slow initialize');
    if (!out.ok) throw new Error(`the call made while the new daemon initialized slowly failed: ${describeError(out.e)}${s.exitNote()}`);
    ctx.time('recovery (new daemon listening -> first answer)', settled - b.listeningAt);
    ctx.time('initialize answered -> first answer', settled - released.t);
    ctx.expect(settled - released.t < 2000, `the call was answered ${ms(settled - released.t)} after the daemon answered initialize`);
    const t = out.r.content && out.r.content[0] && out.r.content[0].text;
    ctx.expect(t === 'waited for a slow initialize', `the call returned ${JSON.stringify(out.r).slice(0, 200)}`);
    ctx.expect((await s.text('whoami')) === 'B', 'whoami after the slow initialize is not B');
    ctx.expect(b.count(/conn#\d+: connected/) === 1, `the new daemon saw ${b.count(/conn#\d+: connected/)} connections, expected 1 (the shim must wait, not reconnect)`);
    ctx.expect(b.count(/WARNING: initialize #/) === 0, 'the new daemon got initialize more than once on one connection');
    ctx.expect(s.countSent('initialize') === 1, `the client sent initialize ${s.countSent('initialize')} times`);
}

// C2, cold: the shim starts with the daemon up but 15 s slow to answer
// initialize, longer than the shim's --init-grace (10 s).
async function slowInitializeColdStart(ctx) {
    const DELAY = 15000;
    const b = await ctx.daemon('sdk', 'B', ['--init-delay', String(DELAY)]);
    const s = ctx.session({ url: `ws://127.0.0.1:${ctx.port}` });
    const t0 = now();
    let connectedAt = null;
    const conn = s.connect(25000).then(() => (connectedAt = now()));
    conn.catch(() => {});
    const released = await b.waitLine(/--init-delay: releasing initialize/, DELAY + 5000);
    if (!released) throw new Error('the daemon never released the initialize (test bug)');
    await withTimeout(conn, 8000, 'client.connect');
    ctx.time('connect', connectedAt - t0);
    const info = s.client.getServerVersion();
    ctx.note(`initialize answered after ${ms(connectedAt - t0)} with serverInfo ${JSON.stringify(info)}` +
        (connectedAt < released.t ? ' (by the shim, after --init-grace)' : ' (by the daemon)'));
    let who;
    try {
        who = await s.text('whoami', {}, 10000, 'whoami');
    } catch (e) {
        throw new Error(`${e.message} [${(now() - released.t).toFixed(0)} ms after the daemon answered initialize]`);
    }
    ctx.time('initialize answered by the daemon -> first call answered', now() - released.t);
    ctx.expect(who === 'B', `whoami answered ${JSON.stringify(who)}`);
    ctx.expect((await s.text('echo', { text: 'slow cold' })) === 'slow cold', 'echo failed');
    ctx.expect(b.count(/conn#\d+: connected/) === 1, `the daemon saw ${b.count(/conn#\d+: connected/)} connections, expected 1`);
    ctx.expect(b.count(/REFUSED/) === 0, `the daemon refused ${b.count(/REFUSED/)} request(s) as not initialized`);
    ctx.expect(s.countSent('initialize') === 1, `the client sent initialize ${s.countSent('initialize')} times`);
}

// C3: a raw JSON-RPC client on the shim's stdio, which stops reading stdout
// for 45 s while the daemon floods notifications.
async function pausedReaderFlood(ctx) {
    const COUNT = 60000;
    const PAD = 900;
    const PAUSE = 45000;
    const a = await ctx.daemon('sdk', 'A', ['--flood']);
    const logPath = path.join(LOGDIR, `real.${ctx.name}.shim.log`);
    const log = fs.createWriteStream(logPath);
    const p = spawn(SHIM, [`ws://127.0.0.1:${ctx.port}`, '--log-level', 'debug'], {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, ALWAYSUP_STATE_DIR: ctx.stateDir }
    });
    ctx.procs.push(p);
    children.add(p);
    let exit = null;
    p.on('exit', (code, signal) => {
        children.delete(p);
        exit = { code, signal };
    });
    p.stderr.pipe(log);
    const send = m => p.stdin.write(`${JSON.stringify(m)}\n`);
    const answers = new Map();
    let next = 1;
    let floods = 0;
    let outOfOrder = 0;
    let firstDisorder = '';
    let done = null;
    let bad = 0;
    let lines = 0;
    onLines(p.stdout, line => {
        lines++;
        let m;
        try {
            m = JSON.parse(line);
        } catch {
            bad++;
            return;
        }
        if (m.method === 'notifications/flood') {
            floods++;
            if (m.params.seq !== next) {
                outOfOrder++;
                if (!firstDisorder) firstDisorder = `expected seq ${next}, got ${m.params.seq}`;
            }
            next = m.params.seq + 1;
        } else if (m.method === 'notifications/flood_done') {
            done = { t: now(), count: m.params.count };
        } else if ('id' in m && !m.method) {
            answers.set(m.id, m);
        }
    });
    const answer = async (id, timeoutMs, what) => {
        const deadline = now() + timeoutMs;
        while (!answers.has(id)) {
            if (now() > deadline) throw new Error(`${what}: no answer within ${timeoutMs} ms${exit ? ` (the shim exited: ${JSON.stringify(exit)})` : ''}`);
            await sleep(10);
        }
        return answers.get(id);
    };
    send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'paused-reader', version: '1' } } });
    const init = await answer(1, 10000, 'initialize');
    if (!init.result) throw new Error(`initialize failed: ${JSON.stringify(init).slice(0, 200)}`);
    send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'flood', arguments: { count: COUNT, pad: PAD } } });
    p.stdout.pause();
    const tPause = now();
    await a.waitLine(/flood: sending/, 5000);
    // the pause: watch the daemon's progress, to show that back-pressure reached it
    const progress = () => {
        const l = [...a.lines].reverse().find(x => /flood: (sent \d+|done)/.test(x.text));
        return l ? l.text.match(/flood: (sent \d+|done)/)[1] : 'sent 0';
    };
    const marks = [];
    while (now() - tPause < PAUSE) {
        await sleep(Math.min(5000, PAUSE - (now() - tPause)));
        marks.push(progress());
    }
    const atResume = progress();
    ctx.expect(!exit, `the shim exited during the pause: ${JSON.stringify(exit)}`);
    ctx.expect(atResume !== 'done', `the daemon finished the whole flood (${COUNT} x ${PAD} bytes) during the pause: ` +
        'the back-pressure never reached it, the test proves little (raise COUNT)');
    ctx.note(`daemon progress every 5 s of the ${PAUSE / 1000} s pause: ${marks.join(', ')}; ${floods} flood notifications read before the pause`);
    const tResume = now();
    p.stdout.resume();
    await withTimeout((async () => {
        while (!done) await sleep(20);
    })(), 40000, 'the end of the flood after the reader resumed');
    ctx.time('drain after resume', done.t - tResume);
    const r2 = await answer(2, 1000, 'the flood call');
    ctx.expect(r2.result && !r2.result.isError, `the flood call was answered ${JSON.stringify(r2).slice(0, 200)}`);
    ctx.expect(floods === COUNT, `${floods} of ${COUNT} flood notifications arrived`);
    ctx.expect(outOfOrder === 0, `${outOfOrder} flood notifications out of order (first: ${firstDisorder})`);
    ctx.expect(bad === 0, `${bad} stdout lines were not JSON`);
    send({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'whoami', arguments: {} } });
    const r3 = await answer(3, 5000, 'whoami after the flood');
    const who = r3.result && r3.result.content && r3.result.content[0] && r3.result.content[0].text;
    ctx.expect(who === 'A', `whoami after the flood answered ${JSON.stringify(r3).slice(0, 200)}`);
    ctx.expect(a.count(/conn#\d+: connected/) === 1, `the daemon saw ${a.count(/conn#\d+: connected/)} connections, expected 1`);
    p.stdin.end();
    const deadline = now() + 5000;
    while (!exit && now() < deadline) await sleep(20);
    ctx.expect(exit && exit.code === 0, `the shim exited with ${JSON.stringify(exit)} after stdin EOF`);
    await new Promise(resolve => log.end(resolve));
    const shimLog = fs.readFileSync(logPath, 'utf8');
    const lost = shimLog.split('\n').filter(l => /alwaysup (warn|error)/.test(l));
    ctx.expect(lost.length === 0, `the shim logged warnings or errors: ${lost.slice(0, 3).join(' | ')}`);
    ctx.note(`${lines} stdout lines, ${(COUNT * (PAD + 80) / 1e6).toFixed(0)} MB of notifications`);
}

const SCENARIOS = [
    ['A_supergateway_everything_restart', supergatewayScenario, 40000],
    ['B_bridge_everything_restart', bridgeScenario, 40000],
    ['B2_bridge_elicitation_pending_at_restart', bridgePendingClientRequest, 30000],
    ['C1_die_on_initialize_3x_cold_start', dieOnInitializeColdStart, 30000],
    ['C1_die_on_initialize_3x_live_session', dieOnInitializeLive, 30000],
    ['C2_initialize_takes_15s', slowInitialize, 30000],
    ['C2_cold_start_initialize_takes_15s', slowInitializeColdStart, 30000],
    ['C3_reader_paused_45s_during_flood', pausedReaderFlood, 80000]
];

// ------------------------------------------------------------------- driver
runSuite({
    scenarios: SCENARIOS,
    filter: true,
    logDir: LOGDIR,
    watchdogMs: WATCHDOG_MS,
    setup: async () => {
        const missing = [SHIM, SUPERGATEWAY, EVERYTHING].filter(f => !fs.existsSync(f));
        if (missing.length) return `missing ${missing.join(', ')} (make build/alwaysup; cd tests && npm ci)`;
        const v = spawnSync(SHIM, ['--version'], { timeout: 3000 });
        console.log(`  # ${(v.stdout || '').toString().trim().split('\n')[0] || SHIM}; supergateway ${readVersion(path.join(MODULES, 'supergateway'))}; ` +
            `server-everything ${readVersion(EVERYTHING_PKG)}; @modelcontextprotocol/sdk ` +
            `${readVersion(path.join(MODULES, '@modelcontextprotocol', 'sdk'))}; node ${process.version}; ` +
            `logs in ${path.relative(process.cwd(), LOGDIR) || LOGDIR}/real.*`);
        return null;
    },
    // a port of its own for each scenario
    newCtx: async name => new Ctx(name, await freePort())
});
