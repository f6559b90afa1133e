#!/usr/bin/env node
// Interop tests of the shim's EX-AI dialect: the official MCP TypeScript SDK
// client, over stdio, through `build/alwaysup --daemon-protocol exai URL`, to
// tests/exai/exai_daemon.py (the EX-AI daemon's JSON "op" protocol,
// /work/shared/exai/protocol.md), which this program starts, kills, restarts
// on the same port and drops through its stdin control channel.
//
//   cd tests && node exai/exai_interop.mjs [-k REGEX]
//
// Environment: ALWAYSUP_BIN (default <repo>/build/alwaysup), ALWAYSUP_WRAP (a command
// to run it with, e.g. wine for build/alwaysup.exe), PY_DAEMON_PYTHON
// (default /usr/bin/python3: the daemon needs `websockets`), EXAI_DAEMON (another
// daemon script, default tests/exai/exai_daemon.py). Logs of every shim
// and daemon go to <repo>/build/test-logs/exai/<scenario>[.<label>].{shim.log,
// shim.stderr,daemon.log,daemon.stderr}; every shim runs with --state-dir ''.
// Prints one line per scenario ("ok NAME (timings)" or "FAIL NAME: why"),
// details as "  # ..." lines, and ends with "N passed, M failed"; exits 1 on
// any failure. Every wait is bounded; a watchdog ends the run at 170 s.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
    McpError,
    ListPromptsResultSchema,
    ListResourcesResultSchema
} from '@modelcontextprotocol/sdk/types.js';
import {
    REPO, SHIM, WRAP, shimCommand, now, sleep, ms, withTimeout, describeError as describeWith, ERROR_HINTS,
    freePort, readText, sdkVersion, children, startWithRetries, stopProcess, ShimSession, ScenarioCtx, runSuite
} from '../interop/common.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DAEMON = process.env.EXAI_DAEMON ? path.resolve(process.env.EXAI_DAEMON) : path.join(HERE, 'exai_daemon.py');
const PY = process.env.PY_DAEMON_PYTHON || (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
const LOGDIR = path.join(REPO, 'build', 'test-logs', 'exai');
const WATCHDOG_MS = 170_000;
const BASE_TOOLS = ['echo', 'sleep', 'stream', 'stream_only', 'stream_bare', 'fail', 'fail_string', 'legacy_text',
    'counter', 'big', 'whoami', 'hang'];
const ECHO_SCHEMA = { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] };

const wall = () => Date.now() / 1000; // the daemon log's clock

// Set by the preflight probe when the binary rejects --daemon-protocol exai.
let DIALECT_MISSING = null;

// No -32002 hint: that code comes from the SDK test daemon, not from an EX-AI one.
const describeError = e => describeWith(e, { [-32001]: ERROR_HINTS[-32001] });

function short(v, n = 240) {
    let s;
    try {
        s = typeof v === 'string' ? v : JSON.stringify(v);
    } catch {
        s = String(v);
    }
    if (typeof s !== 'string') s = String(v);
    return s.length > n ? `${s.slice(0, n)}...(${s.length} chars)` : s;
}

// A promise's outcome, never a rejection: {ok, r | e, at}.
function settle(promise) {
    return promise.then(
        r => ({ ok: true, r, at: now() }),
        e => ({ ok: false, e, at: now() })
    );
}

function textsOf(result) {
    if (!result || !Array.isArray(result.content)) return [];
    return result.content.filter(c => c && c.type === 'text').map(c => c.text);
}

// "<time> event <what> k=v ... instance=I" lines of a daemon log, as objects.
function daemonEvents(logPath, what) {
    const out = [];
    for (const line of readText(logPath).split('\n')) {
        const m = /^([\d.]+) event (.*)$/.exec(line);
        if (!m) continue;
        const rest = m[2];
        if (!(rest === what || rest.startsWith(`${what} `))) continue;
        const f = { t: Number(m[1]) };
        const re = /([\w][\w-]*)=("(?:[^"\\]|\\.)*"|\S*)/g;
        let x;
        const tail = rest.slice(what.length);
        while ((x = re.exec(tail))) f[x[1]] = x[2].startsWith('"') ? JSON.parse(x[2]) : x[2];
        out.push(f);
    }
    return out;
}

// The messages the daemon received ("recv <json>" lines; long ones are cut and skipped).
function daemonRecv(logPath) {
    const out = [];
    for (const line of readText(logPath).split('\n')) {
        if (!line.startsWith('recv ')) continue;
        try {
            out.push(JSON.parse(line.slice(5)));
        } catch {
            out.push({ unparsed: line.slice(5, 200) });
        }
    }
    return out;
}


// ---------------------------------------------------------------- the daemon
class Daemon {
    constructor(ctx, instance, args, logPath) {
        this.ctx = ctx;
        this.port = ctx.port;
        this.instance = instance;
        this.args = args;
        this.logPath = logPath;
        this.proc = null;
        this.exited = null;
        this.lines = [];
        this.lineWaiters = [];
    }
    start(timeoutMs = 8000) {
        return startWithRetries(t => this._startOnce(t), timeoutMs, { attempts: 8, floorMs: 1000, pauseMs: 150 });
    }
    _startOnce(timeoutMs) {
        return new Promise((resolve, reject) => {
            const argv = [DAEMON, '--port', String(this.port), '--instance', this.instance, '--log', this.logPath, ...this.args];
            const p = spawn(PY, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
            this.proc = p;
            this.exited = null;
            this.lines = [];
            children.add(p);
            p.stderr.on('data', d => this.ctx.daemonErr.write(d));
            p.stdin.on('error', () => {});
            let buf = '';
            let done = false;
            const timer = setTimeout(() => {
                if (done) return;
                done = true;
                p.kill('SIGKILL');
                reject(new Error(`daemon ${this.instance} did not print "listening" within ${timeoutMs} ms`));
            }, timeoutMs);
            p.stdout.on('data', d => {
                buf += d.toString();
                let nl;
                while ((nl = buf.indexOf('\n')) >= 0) {
                    const line = buf.slice(0, nl);
                    buf = buf.slice(nl + 1);
                    if (!done && /^listening \d+$/.test(line)) {
                        done = true;
                        clearTimeout(timer);
                        this.listeningAt = now();
                        this.listeningWall = wall();
                        resolve(this);
                        continue;
                    }
                    const w = this.lineWaiters.shift();
                    if (w) w(line);
                    else this.lines.push(line);
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
    // One control-channel command; resolves with its answer line.
    async ctl(cmd, timeoutMs = 3000) {
        if (!this.alive) throw new Error(`daemon ${this.instance} is not running (control "${cmd}")`);
        const answer = this.lines.length
            ? Promise.resolve(this.lines.shift())
            : new Promise(resolve => this.lineWaiters.push(resolve));
        this.proc.stdin.write(`${cmd}\n`);
        return withTimeout(answer, timeoutMs, `daemon control "${cmd}"`);
    }
    async kill(sig = 'SIGKILL', timeoutMs = 3000) {
        if (!this.alive) return;
        await stopProcess(this.proc, `daemon ${this.instance}`, sig, timeoutMs);
    }
}


// ------------------------------------------------- one client through the shim
class Session extends ShimSession {
    // opts: args (extra shim options), env (the shim's environment on top of the SDK's
    // default safe set), label, url (default true: pass ws://127.0.0.1:PORT),
    // flag (default true: pass --daemon-protocol exai).
    constructor(ctx, opts = {}) {
        const label = opts.label || '';
        const base = path.join(LOGDIR, `${ctx.name}${label ? `.${label}` : ''}`);
        const logPath = `${base}.shim.log`;
        const stderrPath = `${base}.shim.stderr`;
        for (const p of [logPath, stderrPath]) fs.rmSync(p, { force: true });
        const args = [
            ...(opts.flag === false ? [] : ['--daemon-protocol', 'exai']),
            ...(opts.url === false ? [] : [`ws://127.0.0.1:${ctx.port}`]),
            '--state-dir', '',
            '--log-file', logPath,
            '--log-level', 'debug',
            ...(opts.args || [])
        ];
        const env = opts.env || {};
        const stderrLog = fs.createWriteStream(stderrPath);
        const [command, commandArgs] = shimCommand(args);
        super(ctx, {
            command,
            args: commandArgs,
            env,
            stderr: stderrLog,
            maxBufferSize: 64 * 1024 * 1024,
            liftListenerLimit: true,
            clientName: 'alwaysup-exai-interop',
            describeError
        });
        this.label = label;
        this.logPath = logPath;
        this.stderrPath = stderrPath;
        this.args = args;
        this.env = env;
        this.stderrLog = stderrLog;
        this.out = []; // {id, method, kind, params?, at} per stdout message
        this.sent = []; // {id, method, params} per message the client sent
    }
    onSend(m) {
        if (m && typeof m.method === 'string') this.sent.push({ id: m.id, method: m.method, params: m.params, at: now() });
    }
    onStdoutMessage(v, text) {
        const rec = { id: v.id, method: v.method, at: now() };
        if ('method' in v) {
            rec.kind = 'id' in v ? 'request' : 'notification';
            rec.params = v.params;
        } else {
            rec.kind = 'error' in v ? 'error' : 'result';
            if (text.length < 65536) rec.body = 'error' in v ? v.error : v.result;
        }
        this.out.push(rec);
    }

    logs() {
        return readText(this.logPath) + readText(this.stderrPath);
    }
    shimLogTail(lines = 3) {
        const t = readText(this.stderrPath).trim() || readText(this.logPath).trim();
        return t.split('\n').slice(-lines).join(' | ');
    }
    connect(timeoutMs = 8000) {
        return super.connect(timeoutMs, 100);
    }
    callTool(name, args = {}, timeoutMs = 8000, extra = {}) {
        return super.callTool(name, args, timeoutMs, extra);
    }
    // A tools/call that must give a non-error result; returns it.
    async result(name, args = {}, timeoutMs = 8000, what = name) {
        let res;
        try {
            res = await withTimeout(this.callTool(name, args, timeoutMs), timeoutMs + 2000, what);
        } catch (e) {
            await sleep(50);
            throw new Error(`${what} failed: ${describeError(e)}${this.exitNote()}`);
        }
        if (res.isError) throw new Error(`${what}: isError result ${short(res.content)}`);
        return res;
    }
    // Its first text content.
    async text(name, args = {}, timeoutMs = 8000, what = name) {
        const res = await this.result(name, args, timeoutMs, what);
        const t = textsOf(res);
        if (!t.length) throw new Error(`${what}: no text content in ${short(res)}`);
        return t[0];
    }
    // The JSON-RPC id of the last tools/call of `name` the client sent.
    lastCallId(name) {
        const c = this.sent.filter(m => m.method === 'tools/call' && m.params && m.params.name === name).pop();
        return c ? c.id : undefined;
    }
    responsesTo(id) {
        return this.out.filter(m => (m.kind === 'result' || m.kind === 'error') && m.id === id);
    }
    // Ends the shim's stdin itself (not the SDK's close, which SIGTERMs after 2 s);
    // resolves with {code, signal, ms} or null if it did not exit within timeoutMs.
    async eof(timeoutMs) {
        this.closing = true;
        const t = now();
        if (!this.proc || this.exit) return this.exit ? { ...this.exit, ms: 0 } : null;
        this.proc.stdin.end();
        const deadline = t + timeoutMs;
        while (!this.exit && now() < deadline) await sleep(10);
        return this.exit ? { code: this.exit.code, signal: this.exit.signal, ms: this.exit.at - t } : null;
    }
    async close() {
        if (this.closed) return;
        this.closed = true;
        this.closing = true;
        try {
            await withTimeout(this.client.close(), 7000, 'client.close');
        } catch (e) {
            this.errors.push(`close: ${describeError(e)}`);
        }
        if (this.proc && !this.exit) {
            this.proc.kill('SIGKILL');
            await sleep(50);
        }
        await new Promise(resolve => this.stderrLog.end(resolve));
    }
}

// ------------------------------------------------------------ scenario context
class Ctx extends ScenarioCtx {
    constructor(name, port) {
        super(name, port);
        this.daemonErrPath = path.join(LOGDIR, `${name}.daemon.stderr`);
        this.daemonErr = fs.createWriteStream(this.daemonErrPath);
        this.cleared = new Set();
    }
    // The daemon log shared by every life started with the same label.
    daemonLog(label = '') {
        const p = path.join(LOGDIR, `${this.name}${label ? `.${label}` : ''}.daemon.log`);
        if (!this.cleared.has(p)) {
            fs.rmSync(p, { force: true });
            this.cleared.add(p);
        }
        return p;
    }
    async daemon(instance, args = [], label = '') {
        const d = new Daemon(this, instance, args, this.daemonLog(label));
        this.daemons.push(d);
        await d.start();
        return d;
    }
    session(opts = {}) {
        const s = new Session(this, opts);
        this.sessions.push(s);
        return s;
    }
    async cleanup() {
        for (const s of this.sessions) await s.close();
        for (const d of this.daemons) {
            try {
                await d.kill('SIGKILL');
            } catch (e) {
                this.note(`daemon cleanup: ${e.message}`);
            }
        }
        await new Promise(resolve => this.daemonErr.end(resolve));
    }
    finalChecks() {
        for (const s of this.sessions) {
            for (const p of s.stdoutProblems) this.problems.push(`shim stdout: ${p}`);
            for (const e of s.errors) this.problems.push(`SDK reported: ${e}`);
            if (s.notifications.length)
                this.note(`${s.label || 'shim'}: notifications other than list_changed: ${[...new Set(s.notifications)].join(', ')}`);
        }
    }
}

// A shim of this scenario must still be running.
function expectAlive(ctx, s, when) {
    ctx.expect(!s.exit, `the shim exited ${when}: code ${s.exit && s.exit.code}, signal ${s.exit && s.exit.signal}; ${s.shimLogTail()}`);
}

// --------------------------------------------------------------- scenarios

// a. initialize, ping and unknown methods are answered by the shim itself, daemon or not.
async function initWithoutDaemon(ctx) {
    const s = ctx.session();
    const t0 = now();
    await s.connect(5000);
    const dt = now() - t0;
    ctx.time('initialize (no daemon)', dt);
    // "at once" against the 10 s init grace; the time includes starting the process, which under
    // a wrapper (Wine on a loaded machine) alone can take seconds
    const bound = WRAP ? 8000 : 2000;
    ctx.expect(dt < bound, `initialize took ${ms(dt)} with no daemon running (want it answered at once, well before the 10 s grace: < ${ms(bound)})`);
    const init = s.sent.find(m => m.method === 'initialize');
    const resp = init && s.responsesTo(init.id)[0];
    const result = resp && resp.body;
    ctx.expect(result && result.protocolVersion === init.params.protocolVersion,
        `protocolVersion ${result && result.protocolVersion}, the client asked for ${init && init.params.protocolVersion}`);
    const info = s.client.getServerVersion();
    ctx.expect(info && info.name === 'ex-ws-shim', `serverInfo.name ${JSON.stringify(info && info.name)}, expected "ex-ws-shim"`);
    ctx.expect(info && typeof info.version === 'string' && info.version.length > 0, `serverInfo.version ${JSON.stringify(info && info.version)}`);
    const caps = s.client.getServerCapabilities() || {};
    ctx.expect(caps.tools && caps.tools.listChanged === true, `capabilities.tools.listChanged is not true: ${JSON.stringify(caps)}`);
    ctx.expect(!caps.prompts && !caps.resources, `capabilities advertise more than tools: ${JSON.stringify(caps)}`);
    ctx.note(`InitializeResult: ${short(result, 400)}`);
    const tp = now();
    try {
        await withTimeout(s.client.ping({ timeout: 3000 }), 4000, 'ping');
        ctx.time('ping', now() - tp);
    } catch (e) {
        ctx.expect(false, `ping with no daemon failed: ${describeError(e)}${s.exitNote()}`);
    }
    for (const [method, schema] of [['prompts/list', ListPromptsResultSchema], ['resources/list', ListResourcesResultSchema]]) {
        const out = await settle(withTimeout(s.client.request({ method, params: {} }, schema, { timeout: 3000 }), 4000, method));
        if (out.ok) ctx.expect(false, `${method} answered with a result: ${short(out.r)}`);
        else ctx.expect(out.e instanceof McpError && out.e.code === -32601,
            `${method}: ${describeError(out.e)}, expected JSON-RPC error -32601 at once`);
    }
    const s2 = ctx.session({ label: 'named', env: { MCP_SERVER_ID: 'my-exai-shim' } });
    await s2.connect(5000);
    const info2 = s2.client.getServerVersion();
    ctx.expect(info2 && info2.name === 'my-exai-shim', `with MCP_SERVER_ID=my-exai-shim, serverInfo.name is ${JSON.stringify(info2 && info2.name)}`);
    expectAlive(ctx, s, 'with no daemon');
}

// Calls made before any daemon exists wait for it (the old shim waited forever).
async function callWaitsForDaemon(ctx) {
    const s = ctx.session();
    await s.connect(5000);
    const list = settle(s.client.listTools(undefined, { timeout: 15000 }));
    const call = settle(s.callTool('echo', { text: 'before the daemon' }, 15000));
    let settledEarly = false;
    list.then(() => (settledEarly = true));
    call.then(() => (settledEarly = true));
    await sleep(1500);
    ctx.expect(!settledEarly, 'a request made before the daemon existed was settled before it started');
    const d = await ctx.daemon('A');
    const [l, c] = await withTimeout(Promise.all([list, call]), 12000, 'the requests made before the daemon existed');
    if (!l.ok) throw new Error(`tools/list made before the daemon existed failed: ${describeError(l.e)}${s.exitNote()}`);
    if (!c.ok) throw new Error(`tools/call made before the daemon existed failed: ${describeError(c.e)}${s.exitNote()}`);
    ctx.time('recovery (daemon listening -> tools/call answered)', c.at - d.listeningAt);
    ctx.time('daemon listening -> tools/list answered', l.at - d.listeningAt);
    ctx.expect(JSON.stringify(l.r.tools.map(t => t.name)) === JSON.stringify(BASE_TOOLS), `tools/list gave ${short(l.r.tools.map(t => t.name))}`);
    ctx.expect(textsOf(c.r)[0] === 'before the daemon' && !c.r.isError, `the call returned ${short(c.r)}`);
}

// b. tools/list and tools/call, every shape of call_tool_res.
async function toolsAndResults(ctx) {
    const d = await ctx.daemon('A');
    const s = ctx.session();
    await s.connect();
    const t0 = now();
    const list = await withTimeout(s.client.listTools(undefined, { timeout: 8000 }), 9000, 'tools/list');
    ctx.time('tools/list', now() - t0);
    const names = list.tools.map(t => t.name);
    ctx.expect(JSON.stringify(names) === JSON.stringify(BASE_TOOLS), `tools/list gave ${JSON.stringify(names)}, expected the daemon's ${JSON.stringify(BASE_TOOLS)} in order`);
    const echo = list.tools.find(t => t.name === 'echo');
    ctx.expect(echo && echo.description === 'Returns its text argument.' && JSON.stringify(echo.inputSchema) === JSON.stringify(ECHO_SCHEMA),
        `echo's description/inputSchema were not passed through: ${short(echo)}`);

    const msg = 'h\u00e9llo \u2603 \ud83d\ude00 "quoted" \\ back\nslash\ttab';
    const t1 = now();
    const r = await s.result('echo', { text: msg });
    ctx.time('echo round trip', now() - t1);
    ctx.expect(JSON.stringify(r.content) === JSON.stringify([{ type: 'text', text: msg }]), `echo content ${short(r.content)}`);
    ctx.expect(!r.isError, 'echo result has isError');
    const suffixed = await s.text('echo_EXAI-WS', { text: 'suffixed' }, 8000, 'echo_EXAI-WS');
    ctx.expect(suffixed === 'suffixed', `echo_EXAI-WS returned ${short(suffixed)}`);
    const legacy = await s.text('legacy_text', { text: 'from an older daemon' }, 8000, 'legacy_text');
    ctx.expect(legacy === 'from an older daemon', `legacy_text returned ${short(legacy)}`);

    for (const [tool, want] of [['fail', 'fail: this tool always fails'],
        ['fail_string', 'fail_string: this tool always fails (string error)'],
        ['nosuch', 'Unknown tool: nosuch']]) {
        const out = await settle(withTimeout(s.callTool(tool, {}), 10000, tool));
        if (!out.ok) {
            ctx.expect(false, `${tool}: came back as a JSON-RPC error (${describeError(out.e)}), expected a result with isError:true`);
            continue;
        }
        const texts = textsOf(out.r).join('\n');
        ctx.expect(out.r.isError === true, `${tool}: result without isError:true: ${short(out.r)}`);
        ctx.expect(texts.includes(want), `${tool}: text content ${short(texts)} does not carry the daemon's message "${want}"`);
    }
    const c1 = await s.text('counter');
    const c2 = await s.text('counter');
    ctx.expect(c1 === '1' && c2 === '2', `counter gave ${c1}, ${c2} (expected 1, 2: each call runs once)`);
    const st = await s.result('stream', { parts: ['alpha ', 'beta ', 'gamma'] }, 8000, 'stream');
    ctx.expect(textsOf(st).join('').includes('alpha beta gamma'), `stream result ${short(st.content)} lacks "alpha beta gamma"`);
    const n = 4 * 1024 * 1024;
    const tb = now();
    const big = await s.text('big', { bytes: n }, 20000, 'big 4 MiB');
    ctx.time('4 MiB result', now() - tb);
    ctx.expect(big.length === n && /^x+$/.test(big.slice(0, 1000)), `big returned ${big.length} chars, expected ${n}`);
    ctx.expect((await s.text('whoami')) === 'A', 'whoami is not A');

    await sleep(100);
    const recv = daemonRecv(d.logPath);
    ctx.expect(recv.length > 0 && recv[0].op === 'hello' && typeof recv[0].session_id === 'string' && recv[0].session_id.length > 0,
        `the first message on the connection was not a hello with a session_id: ${short(recv[0])}`);
    const calls = recv.filter(m => m.op === 'call_tool');
    const rids = calls.map(m => m.request_id);
    ctx.expect(calls.every(m => typeof m.request_id === 'string' && m.request_id.length > 0 && typeof m.name === 'string'
        && m.arguments && typeof m.arguments === 'object' && !Array.isArray(m.arguments)),
    `a call_tool lacks request_id/name/arguments: ${short(calls.find(m => !(typeof m.request_id === 'string')))}`);
    ctx.expect(new Set(rids).size === rids.length, `request ids repeat across distinct calls: ${short(rids)}`);
    ctx.expect(calls.some(m => m.name === 'echo_EXAI-WS'), 'the tool name echo_EXAI-WS was not forwarded as the client gave it');
    ctx.expect(recv.some(m => m.op === 'list_tools'), 'no list_tools reached the daemon');
    ctx.note(`call_tool as sent: ${short(calls[0])}`);
    const ex = daemonEvents(d.logPath, 'exec');
    ctx.expect(ex.every(e => e.n === '1'), `a call ran twice: ${short(ex.filter(e => e.n !== '1'))}`);
}

// A call_tool_res without outputs after stream_chunk messages: the chunks are the answer.
async function streamChunksOnly(ctx) {
    await ctx.daemon('A');
    const s = ctx.session();
    await s.connect();
    const bare = await s.result('stream_bare', { parts: 3 }, 8000, 'stream_bare');
    ctx.expect(textsOf(bare).join('').includes('part 1 part 2 part 3 '),
        `stream_bare (chunks "part 1 ".."part 3 ", then a call_tool_res with neither outputs nor text) gave ${short(bare.content)}; expected the concatenated chunks`);
    const only = await s.result('stream_only', { parts: 3 }, 8000, 'stream_only');
    ctx.expect(textsOf(only).join('').includes('part 1 part 2 part 3 '),
        `stream_only (chunks "part 1 ".."part 3 ", then a call_tool_res with "outputs":[]) gave ${short(only.content)}; expected the concatenated chunks (an empty outputs list after chunks)`);
}

// Things a daemon may do that a shim must tolerate.
async function toleratesDaemonExtras(ctx) {
    const d = await ctx.daemon('A', ['--status-interval', '0.2', '--send-unknown', '--fresh-session-ids',
        '--ok-false', '--ack-all', '--hello-delay', '0.5']);
    const s = ctx.session();
    await s.connect();
    const list = await withTimeout(s.client.listTools(undefined, { timeout: 8000 }), 9000, 'tools/list');
    ctx.expect(list.tools.length === BASE_TOOLS.length, `tools/list gave ${list.tools.length} tools`);
    ctx.expect((await s.text('echo', { text: 'extras' })) === 'extras', 'echo with status/unknown ops around it failed');
    const f = await settle(withTimeout(s.callTool('fail'), 9000, 'fail'));
    ctx.expect(f.ok && f.r.isError === true && textsOf(f.r).join('').includes('fail: this tool always fails'),
        `fail with "ok":false: ${f.ok ? short(f.r) : describeError(f.e)}`);
    ctx.expect((await s.text('sleep', { seconds: 1 }, 8000)) === 'slept 1', 'sleep 1 amid status broadcasts failed');
    await d.ctl('send {"op":"error","error":{"code":"INVALID_REQUEST","message":"unsolicited"}}');
    await d.ctl('send {"op":"call_tool_res","request_id":"nobody-asked","ok":true,"outputs":[{"type":"text","text":"stray"}]}');
    await d.ctl('send {"op":"progress","request_id":"nobody-asked","message":"stray"}');
    await sleep(400);
    ctx.expect((await s.text('echo', { text: 'after strays' })) === 'after strays', 'echo after stray ops failed');
    await sleep(100);
    ctx.expect(daemonEvents(d.logPath, 'early-message').length === 0,
        'the shim sent something before the (0.5 s late) hello_ack: the daemon closed the connection');
    const stray = s.out.filter(m => m.kind === 'result' || m.kind === 'error').filter(m => !s.sent.some(x => x.id === m.id));
    ctx.expect(stray.length === 0, `the shim wrote responses to ids the client never used: ${short(stray)}`);
    const notes = s.out.filter(m => m.kind === 'notification' && m.method !== 'notifications/tools/list_changed');
    ctx.expect(notes.length === 0, `status/unknown/stray ops reached the client as ${short(notes.map(m => m.method))}`);
    expectAlive(ctx, s, 'amid status/unknown ops');
}

// c. A refused hello: logged with the daemon's reason, token never logged, calls fail with "refused".
async function badToken(ctx) {
    const GOOD = 'tok-GOOD-7c1e9a44';
    const BAD = 'tok-WRONG-3f5d2b81';
    const d = await ctx.daemon('A', ['--token', GOOD]);
    const s = ctx.session({ env: { EXAI_WS_TOKEN: BAD }, args: ['--queue-timeout', '3'] });
    await s.connect();
    const t0 = now();
    const out = await settle(withTimeout(s.callTool('echo', { text: 'refused?' }, 20000), 21000, 'the call under a bad token'));
    const dt = out.at - t0;
    ctx.time('call -> error (queue timeout 3 s)', dt);
    if (out.ok && !out.r.isError) throw new Error(`the call succeeded under a bad token: ${short(out.r)}`);
    const message = out.ok ? textsOf(out.r).join(' ') : describeError(out.e);
    ctx.note(`error: ${message}`);
    ctx.expect(!out.ok && out.e instanceof McpError && out.e.code !== -32001,
        `expected a JSON-RPC error from the shim, got ${out.ok ? `an isError result ${short(out.r)}` : describeError(out.e)}`);
    ctx.expect(/refus|reject/i.test(message) && !/unreachable/i.test(message),
        `the error does not say the daemon refused (or says unreachable): ${message}`);
    ctx.expect(dt >= 2500 && dt <= 8000, `the error came after ${ms(dt)}, expected about the 3 s queue timeout`);
    await sleep(200);
    expectAlive(ctx, s, 'after the daemon refused its hello');
    const logs = s.logs();
    ctx.expect(/invalid token/.test(logs), `the shim's log does not carry the daemon's reason "invalid token": ${s.shimLogTail(2)}`);
    ctx.expect(!logs.includes(BAD), 'the (bad) token value appears in the shim log');
    const refused = daemonEvents(d.logPath, 'hello refused');
    ctx.expect(refused.length >= 1, 'the daemon saw no refused hello');
    ctx.note(`${refused.length} refused hello(s) in ${((wall() - d.listeningWall)).toFixed(1)} s`);

    const s2 = ctx.session({ label: 'good', env: { EXAI_WS_TOKEN: GOOD } });
    await s2.connect();
    ctx.expect((await s2.text('echo', { text: 'authorized' }, 8000, 'echo with the right token')) === 'authorized', 'echo with the right token failed');
    await sleep(100);
    ctx.expect(!s2.logs().includes(GOOD), 'the token value appears in the shim log (debug level) of the shim with the right token');
    const ok = daemonEvents(d.logPath, 'hello ok');
    ctx.expect(ok.length >= 1, 'no accepted hello with the right token');
}

// d. progress: notifications/progress with increasing progress and the daemon's message.
async function progressNotifications(ctx) {
    const d = await ctx.daemon('A', ['--progress-interval', '0.5']);
    const s = ctx.session();
    await s.connect();
    const prog = [];
    const t0 = now();
    const out = await settle(withTimeout(
        s.callTool('sleep', { seconds: 3 }, 15000, { onprogress: p => prog.push({ ...p, at: now() }) }), 16000, 'sleep 3 with a progressToken'));
    if (!out.ok) throw new Error(`sleep 3 failed: ${describeError(out.e)}${s.exitNote()}`);
    const dt = out.at - t0;
    ctx.time('sleep 3', dt);
    ctx.expect(textsOf(out.r)[0] === 'slept 3' && !out.r.isError, `sleep 3 returned ${short(out.r)}`);
    await sleep(100);
    const daemonMsgs = new Set(daemonEvents(d.logPath, 'progress').map(e => e.message));
    const withMsg = prog.filter(p => daemonMsgs.has(p.message));
    ctx.note(`${prog.length} progress notification(s): ${short(prog.map(p => `${p.progress}${p.total !== undefined ? `/${p.total}` : ''} ${JSON.stringify(p.message)}`), 400)}`);
    ctx.expect(prog.length >= 2, `${prog.length} notifications/progress, expected >= 2 (the daemon sent ${daemonMsgs.size} progress ops)`);
    ctx.expect(prog.every((p, i) => typeof p.progress === 'number' && (i === 0 || p.progress > prog[i - 1].progress)),
        `progress values do not increase: ${short(prog.map(p => p.progress))}`);
    ctx.expect(withMsg.length >= 2, `fewer than 2 notifications carry the daemon's progress message as params.message (daemon: ${short([...daemonMsgs])})`);
    if (prog.length) ctx.time('first progress', prog[0].at - t0);
    // Without a progressToken no progress may reach the client (the SDK reports unknown tokens).
    const plain = await s.text('sleep', { seconds: 1.5 }, 8000, 'sleep 1.5 without progressToken');
    ctx.expect(plain === 'slept 1.5', `sleep 1.5 returned ${plain}`);
    await sleep(200);
}

// e. An acknowledged call outlives the queue timeout.
async function ackKeepsCallAlive(ctx) {
    const d = await ctx.daemon('A', ['--progress-interval', '100', '--ack-timeout', '30']);
    const s = ctx.session({ args: ['--queue-timeout', '2'] });
    await s.connect();
    const t0 = now();
    const out = await settle(withTimeout(s.callTool('sleep', { seconds: 6 }, 20000), 21000, 'sleep 6'));
    const dt = out.at - t0;
    ctx.time('sleep 6 with --queue-timeout 2', dt);
    if (!out.ok) throw new Error(`sleep 6 failed after ${ms(dt)} although acknowledged (timeout 30): ${describeError(out.e)}${s.exitNote()}`);
    ctx.expect(textsOf(out.r)[0] === 'slept 6' && !out.r.isError, `sleep 6 returned ${short(out.r)}`);
    ctx.expect(daemonEvents(d.logPath, 'progress').length === 0, 'the daemon sent progress (the test wants only the ack to keep the call alive)');
    ctx.expect(daemonEvents(d.logPath, 'exec').length === 1, `the sleep ran ${daemonEvents(d.logPath, 'exec').length} times`);
}

// An acknowledged call that never answers fails after the ack's timeout + EXAI_SHIM_ACK_GRACE_SECS.
async function ackDeadlineExpires(ctx) {
    await ctx.daemon('A', ['--ack-timeout', '1']);
    const s = ctx.session({ args: ['--queue-timeout', '2'], env: { EXAI_SHIM_ACK_GRACE_SECS: '1' } });
    await s.connect();
    const t0 = now();
    const out = await settle(withTimeout(s.callTool('hang', {}, 20000), 21000, 'hang'));
    const dt = out.at - t0;
    ctx.time('hang (ack timeout 1 + grace 1) -> error', dt);
    if (out.ok && !out.r.isError) throw new Error(`hang returned a result: ${short(out.r)}`);
    if (!out.ok && out.e instanceof McpError && out.e.code === -32001)
        throw new Error(`the shim never answered the hung call (SDK timeout after ${ms(dt)})`);
    ctx.note(`error: ${out.ok ? short(out.r.content) : describeError(out.e)}`);
    ctx.expect(dt >= 1500 && dt <= 6000, `the hung call failed after ${ms(dt)}, expected about 2 s (ack timeout 1 s + grace 1 s)`);
    ctx.expect((await s.text('echo', { text: 'next' })) === 'next', 'echo after the hung call failed');
}

// f. A connection drop (no restart) mid-call: re-sent under the same request_id, runs once.
async function dropMidCall(ctx) {
    const d = await ctx.daemon('A', ['--progress-interval', '0.5']);
    const s = ctx.session();
    await s.connect();
    ctx.expect((await s.text('echo', { text: 'warm' })) === 'warm', 'echo before the drop failed');
    const t0 = now();
    const call = settle(s.callTool('sleep', { seconds: 4 }, 20000));
    await sleep(1000);
    const dropWall = wall();
    const ans = await d.ctl('drop');
    ctx.expect(ans === 'ok 1', `daemon "drop" answered ${ans}, expected one connection dropped`);
    const out = await withTimeout(call, 18000, 'the call across the drop');
    if (!out.ok) throw new Error(`the call across the drop failed after ${ms(out.at - t0)}: ${describeError(out.e)}${s.exitNote()}`);
    ctx.time('call (sleep 4) total', out.at - t0);
    ctx.time('lateness vs. 4 s', out.at - t0 - 4000);
    ctx.expect(textsOf(out.r)[0] === 'slept 4' && !out.r.isError, `the call returned ${short(out.r)}`);
    await sleep(300);
    const id = s.lastCallId('sleep');
    const answers = s.responsesTo(id);
    ctx.expect(answers.length === 1, `the client got ${answers.length} responses to the call (id ${id})`);
    const ex = daemonEvents(d.logPath, 'exec').filter(e => e.tool === 'sleep');
    ctx.expect(ex.length === 1, `the daemon ran sleep ${ex.length} times: ${short(ex)}`);
    const calls = daemonRecv(d.logPath).filter(m => m.op === 'call_tool' && m.name === 'sleep');
    const rids = [...new Set(calls.map(m => m.request_id))];
    ctx.expect(calls.length >= 2, `the call was sent ${calls.length} time(s): not re-sent after the drop`);
    ctx.expect(rids.length === 1, `the call was re-sent under a new request_id: ${short(rids)}`);
    const hellos = daemonEvents(d.logPath, 'hello ok');
    const after = hellos.find(h => h.t >= dropWall);
    if (ctx.expect(after, 'no hello after the drop')) ctx.time('drop -> new hello', (after.t - dropWall) * 1000);
    ctx.expect(new Set(hellos.map(h => h.session)).size === 1, `the session id changed across the drop: ${short(hellos.map(h => h.session))}`);
    ctx.note(`daemon answers to the re-sent call: ${daemonEvents(d.logPath, 'in-progress').length} in-progress, ` +
        `${daemonEvents(d.logPath, 'store-hit').length} from the store`);
    expectAlive(ctx, s, 'after the drop');
}

// g. A daemon restart with a call in flight: re-sent by default (may run twice)...
async function restartMidCallResent(ctx) {
    const a = await ctx.daemon('A');
    const s = ctx.session();
    await s.connect();
    ctx.expect((await s.text('whoami')) === 'A', 'whoami before the restart is not A');
    const t0 = now();
    const call = settle(s.callTool('sleep', { seconds: 3 }, 20000));
    await sleep(1000);
    const tKill = now();
    await a.kill('SIGKILL');
    const b = await ctx.daemon('B');
    const out = await withTimeout(call, 15000, 'the call across the restart');
    if (!out.ok) throw new Error(`the call across the restart failed after ${ms(out.at - t0)}: ${describeError(out.e)}${s.exitNote()}`);
    ctx.time('kill -> B listening', b.listeningAt - tKill);
    ctx.time('B listening -> result', out.at - b.listeningAt);
    ctx.expect(textsOf(out.r)[0] === 'slept 3' && !out.r.isError, `the call returned ${short(out.r)}`);
    await sleep(200);
    ctx.expect(s.responsesTo(s.lastCallId('sleep')).length === 1, 'the client got more than one response to the call');
    const ex = daemonEvents(b.logPath, 'exec').filter(e => e.tool === 'sleep');
    ctx.expect(ex.filter(e => e.instance === 'B').length === 1, `daemon B ran the call ${ex.filter(e => e.instance === 'B').length} times`);
    const rids = [...new Set(daemonRecv(b.logPath).filter(m => m.op === 'call_tool' && m.name === 'sleep').map(m => m.request_id))];
    ctx.note(`request ids of the call across the restart: ${rids.length === 1 ? 'the same' : `${rids.length} different`}`);
    ctx.expect((await s.text('whoami')) === 'B', 'whoami after the restart is not B');
}

// ... and with --no-resend it fails with -32000 "may or may not have run".
async function restartMidCallNoResend(ctx) {
    const a = await ctx.daemon('A');
    const s = ctx.session({ args: ['--no-resend'] });
    await s.connect();
    ctx.expect((await s.text('whoami')) === 'A', 'whoami before the restart is not A');
    const call = settle(s.callTool('sleep', { seconds: 3 }, 20000));
    await sleep(1000);
    const tKill = now();
    await a.kill('SIGKILL');
    await sleep(300);
    const b = await ctx.daemon('B');
    const out = await withTimeout(call, 10000, 'the call in flight');
    const dt = out.at - tKill;
    ctx.time('kill -> error', dt);
    if (out.ok) throw new Error(`with --no-resend the call in flight gave a result: ${short(out.r)}`);
    ctx.note(`error: ${describeError(out.e)}`);
    ctx.expect(out.e instanceof McpError && out.e.code === -32000, `error ${describeError(out.e)}, expected JSON-RPC -32000`);
    ctx.expect(/may or may not have run/i.test(out.e.message), `the error does not say the call may or may not have run: ${out.e.message}`);
    ctx.expect(dt < 3000, `the error came ${ms(dt)} after the kill (want < 3 s)`);
    ctx.expect((await s.text('whoami', {}, 8000, 'whoami after the restart')) === 'B', 'whoami after the restart is not B');
    await sleep(100);
    const resent = daemonRecv(b.logPath).filter(m => m.op === 'call_tool' && m.name === 'sleep');
    ctx.expect(resent.length === 1, `with --no-resend the call reached the daemons ${resent.length} times (want 1: A only)`);
}

// h. notifications/tools/list_changed after a restart that changed the tool list, not otherwise.
async function listChangedOnNewTools(ctx) {
    const a = await ctx.daemon('A');
    const s = ctx.session();
    await s.connect();
    const l1 = await withTimeout(s.client.listTools(undefined, { timeout: 8000 }), 9000, 'tools/list on A');
    ctx.expect(l1.tools.length === BASE_TOOLS.length, `tools/list on A gave ${l1.tools.length} tools`);
    await sleep(300);
    ctx.note(`list_changed on the first connection: ${s.listChanged.length}`);
    await a.kill('SIGKILL');
    const b = await ctx.daemon('B', ['--extra-tool', 'extra_one']);
    const lc = await s.waitListChanged(b.listeningAt, 6000);
    if (ctx.expect(lc !== null, 'no notifications/tools/list_changed within 6 s of a daemon with a new tool coming up'))
        ctx.time('B listening -> list_changed', lc - b.listeningAt);
    const l2 = await withTimeout(s.client.listTools(undefined, { timeout: 8000 }), 9000, 'tools/list on B');
    const names2 = l2.tools.map(t => t.name);
    ctx.expect(JSON.stringify(names2) === JSON.stringify([...BASE_TOOLS, 'extra_one']), `tools/list on B gave ${short(names2)}`);
    ctx.expect((await s.text('extra_one', { text: 'new tool' })) === 'new tool', 'the new tool failed');
    await b.kill('SIGKILL');
    const c = await ctx.daemon('C', ['--extra-tool', 'extra_one']);
    ctx.expect((await s.text('whoami', {}, 8000, 'whoami on C')) === 'C', 'whoami on C is not C');
    await sleep(2000);
    const again = s.listChanged.filter(t => t >= c.listeningAt);
    ctx.expect(again.length === 0, `list_changed ${again.length} time(s) after a restart with the same tool list`);
}

// i. The session id: EXAI_SESSION_ID in every hello; otherwise one generated id per shim process.
async function sessionId(ctx) {
    const GIVEN = 'exai-test-session-42';
    const a = await ctx.daemon('A', [], 'given');
    const s = ctx.session({ label: 'given', env: { EXAI_SESSION_ID: GIVEN } });
    await s.connect();
    await s.text('echo', { text: '1' });
    await a.kill('SIGKILL');
    const b = await ctx.daemon('B', [], 'given');
    await s.text('echo', { text: '2' }, 8000, 'echo after the restart');
    await b.ctl('drop');
    await s.text('echo', { text: '3' }, 8000, 'echo after the drop');
    await sleep(100);
    const h1 = daemonEvents(b.logPath, 'hello ok');
    ctx.expect(h1.length >= 3, `${h1.length} hellos with EXAI_SESSION_ID set, expected >= 3 (first, after restart, after drop)`);
    ctx.expect(h1.every(h => h.session === GIVEN && h.given === '1'), `with EXAI_SESSION_ID=${GIVEN} the hellos carried ${short(h1.map(h => h.session))}`);
    await s.close();
    await b.kill('SIGKILL');

    const c = await ctx.daemon('C', [], 'generated');
    const s2 = ctx.session({ label: 'generated' });
    await s2.connect();
    await s2.text('echo', { text: '1' });
    await c.ctl('drop');
    await s2.text('echo', { text: '2' }, 8000, 'echo after the drop');
    await c.kill('SIGKILL');
    const d = await ctx.daemon('D', [], 'generated');
    await s2.text('echo', { text: '3' }, 8000, 'echo after the restart');
    await sleep(100);
    const h2 = daemonEvents(d.logPath, 'hello ok');
    const ids = [...new Set(h2.map(h => h.session))];
    ctx.expect(h2.length >= 3, `${h2.length} hellos without EXAI_SESSION_ID, expected >= 3`);
    ctx.expect(h2.every(h => h.given === '1'), 'a hello without EXAI_SESSION_ID carried no session_id (the daemon had to make one up)');
    ctx.expect(ids.length === 1, `one shim process used ${ids.length} session ids across reconnects: ${short(ids)}`);
    ctx.expect(ids[0] !== GIVEN, 'the generated session id equals the one given to another shim');
    ctx.note(`generated session id ${JSON.stringify(ids[0])}${/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(ids[0] || '') ? ' (a UUID)' : ' (not UUID-shaped)'}`);
    await s2.close();
    const before = h2.length;
    const s3 = ctx.session({ label: 'generated2' });
    await s3.connect();
    await s3.text('echo', { text: 'other process' });
    await sleep(100);
    const h3 = daemonEvents(d.logPath, 'hello ok').slice(before);
    ctx.expect(h3.length >= 1 && h3.every(h => h.session !== ids[0]), `a second shim process reused the session id ${ids[0]}: ${short(h3.map(h => h.session))}`);
}

// j. stdin EOF: the shim exits within ~3 s with status 0: connected, with no daemon, with a call in flight.
async function stdinEofExit(ctx) {
    const d = await ctx.daemon('A');
    const cases = [];
    const s1 = ctx.session({ label: 'connected' });
    await s1.connect();
    await s1.text('echo', { text: 'x' });
    cases.push(['connected, idle', s1, 3000]);
    const s3 = ctx.session({ label: 'inflight' });
    await s3.connect();
    await s3.text('echo', { text: 'x' });
    const inflight = settle(s3.callTool('sleep', { seconds: 20 }, 30000));
    await sleep(500);
    cases.push(['a call in flight', s3, 3500]);
    for (const [what, s, limit] of cases) {
        const r = await s.eof(limit + 2000);
        if (!r) {
            ctx.expect(false, `${what}: the shim did not exit within ${ms(limit + 2000)} of stdin EOF`);
            continue;
        }
        ctx.time(`EOF -> exit (${what})`, r.ms);
        ctx.expect(r.ms <= limit, `${what}: exit took ${ms(r.ms)} after stdin EOF (want <= ${ms(limit)})`);
        ctx.expect(r.code === 0, `${what}: exit status ${r.code} (signal ${r.signal}), expected 0`);
    }
    const out = await withTimeout(inflight, 3000, 'the call in flight at EOF');
    ctx.note(`the call in flight at EOF: ${out.ok ? `result ${short(out.r)}` : describeError(out.e)}`);
    await d.kill('SIGKILL');
    const s2 = ctx.session({ label: 'nodaemon' });
    await s2.connect(5000);
    await sleep(1000);
    const r = await s2.eof(5000);
    if (!r) ctx.expect(false, 'with no daemon: the shim did not exit within 5 s of stdin EOF');
    else {
        ctx.time('EOF -> exit (no daemon)', r.ms);
        ctx.expect(r.ms <= 3000, `with no daemon: exit took ${ms(r.ms)} after stdin EOF`);
        ctx.expect(r.code === 0, `with no daemon: exit status ${r.code} (signal ${r.signal}), expected 0`);
    }
}

// Configured the way the old shim was: environment only, no URL, no option.
async function envOnlyConfig(ctx) {
    const TOKEN = 'tok-ENV-a1b2c3d4';
    const s = ctx.session({
        flag: false,
        url: false,
        env: {
            ALWAYSUP_DAEMON_PROTOCOL: 'exai',
            EXAI_WS_HOST: '127.0.0.1',
            EXAI_WS_PORT: String(ctx.port),
            EXAI_WS_TOKEN: TOKEN,
            MCP_SERVER_ID: 'env-configured'
        }
    });
    const t0 = now();
    try {
        await s.connect(5000);
    } catch (e) {
        throw new Error(`${e.message} [configured by environment only: is ALWAYSUP_DAEMON_PROTOCOL=exai honoured, and EXAI_WS_HOST/EXAI_WS_PORT without a URL?]`);
    }
    const dt = now() - t0;
    ctx.time('initialize (no daemon)', dt);
    ctx.expect(dt < 2000, `initialize took ${ms(dt)}: ALWAYSUP_DAEMON_PROTOCOL=exai not honoured? (want < 2 s)`);
    const info = s.client.getServerVersion();
    ctx.expect(info && info.name === 'env-configured', `serverInfo.name ${JSON.stringify(info && info.name)}, expected MCP_SERVER_ID's "env-configured"`);
    const call = settle(s.callTool('echo', { text: 'env' }, 15000));
    await sleep(500);
    const d = await ctx.daemon('A', ['--token', TOKEN]);
    const out = await withTimeout(call, 12000, 'echo');
    if (!out.ok) throw new Error(`echo failed: ${describeError(out.e)}${s.exitNote()}`);
    ctx.time('daemon listening -> answer', out.at - d.listeningAt);
    ctx.expect(textsOf(out.r)[0] === 'env', `echo returned ${short(out.r)}`);
    ctx.expect(daemonEvents(d.logPath, 'hello ok').length >= 1, 'no accepted hello (token from EXAI_WS_TOKEN)');
    ctx.expect(!s.logs().includes(TOKEN), 'the token value appears in the shim log');
}

const SCENARIOS = [
    ['init_without_daemon', initWithoutDaemon, 15000],
    ['call_waits_for_daemon', callWaitsForDaemon, 20000],
    ['tools_and_results', toolsAndResults, 30000],
    ['stream_chunks_only', streamChunksOnly, 12000],
    ['tolerates_daemon_extras', toleratesDaemonExtras, 20000],
    ['bad_token', badToken, 25000],
    ['progress_notifications', progressNotifications, 20000],
    ['ack_keeps_call_alive', ackKeepsCallAlive, 20000],
    ['ack_deadline_expires', ackDeadlineExpires, 15000],
    ['drop_mid_call', dropMidCall, 25000],
    ['restart_mid_call_resent', restartMidCallResent, 25000],
    ['restart_mid_call_no_resend', restartMidCallNoResend, 20000],
    ['list_changed_on_new_tools', listChangedOnNewTools, 30000],
    ['session_id', sessionId, 35000],
    ['stdin_eof_exit', stdinEofExit, 30000],
    ['env_only_config', envOnlyConfig, 20000]
];

// ------------------------------------------------------------------- driver
function probeDialect() {
    const r = spawnSync(...shimCommand(['--daemon-protocol', 'exai', 'ws://127.0.0.1:9', '--state-dir', '', '--log-level', 'error']),
        { input: '', timeout: 5000 });
    const err = (r.stderr || '').toString().trim().split('\n').pop();
    if (r.error) return `probe failed: ${r.error.message}`;
    if (r.status === 0) return null;
    return `exit ${r.status}${r.signal ? `, ${r.signal}` : ''}: ${err}`;
}

let port;
runSuite({
    scenarios: SCENARIOS,
    filter: true,
    logDir: LOGDIR,
    watchdogMs: WATCHDOG_MS,
    setup: async () => {
        if (!fs.existsSync(SHIM)) return `${SHIM} does not exist (run make build/alwaysup, or set ALWAYSUP_BIN)`;
        const py = spawnSync(PY, ['-c', 'import websockets'], { timeout: 5000 });
        if (py.status !== 0)
            return `${PY} cannot import websockets (set PY_DAEMON_PYTHON): ${(py.stderr || '').toString().trim().split('\n').pop()}`;
        const v = spawnSync(...shimCommand(['--version']), { timeout: 30000 });
        port = await freePort();
        console.log(`  # ${(v.stdout || '').toString().trim() || SHIM}; @modelcontextprotocol/sdk ${sdkVersion()}; ` +
            `node ${process.version}; daemon port ${port}; logs in ${path.relative(process.cwd(), LOGDIR) || LOGDIR}`);
        DIALECT_MISSING = probeDialect();
        if (DIALECT_MISSING)
            console.log(`  # this shim rejects --daemon-protocol exai (${DIALECT_MISSING}): the EX-AI dialect is not built in; every scenario will fail`);
        return null;
    },
    newCtx: name => new Ctx(name, port),
    failHint: () => (DIALECT_MISSING ? ` [this shim rejects --daemon-protocol exai: ${DIALECT_MISSING}]` : ''),
    describe: describeError
});
