#!/usr/bin/env node
// A WebSocket MCP daemon built on the official MCP TypeScript SDK, for the
// alwaysup interop tests (tests/interop/sdk_interop.mjs).
//
//   node mcp_ws_daemon.mjs --port N [--host 127.0.0.1] [--instance NAME]
//                          [--strict initialized|initialize|off]
//                          [--die-on-initialize N [--die-count-file PATH]]
//                          [--init-delay MS] [--flood]
//
// Prints "listening N" on stdout once the port is bound; logs go to stderr.
// Every WebSocket connection gets its own McpServer (one MCP session per
// connection), connected through WsServerTransport below: one text frame is
// one JSON-RPC message.
//
// Strictness. The TypeScript SDK's Server does not check the session state:
// it answers tools/list or tools/call sent before initialize as if the session
// were set up (Protocol._onrequest dispatches any request that has a handler).
// The Python SDK's ServerSession refuses requests other than initialize and
// ping until the client has sent notifications/initialized (it raises
// "Received request before initialization was complete"). To catch a shim
// that talks to a fresh daemon without (re)initializing it, StrictGate does
// the same here and answers such requests with
// {"code":-32002,"message":"Server not initialized"}:
//   --strict initialized (default)  like the Python SDK: requests other than
//                                   initialize/ping are refused until the
//                                   notifications/initialized notification
//   --strict initialize             refused only until initialize arrives
//   --strict off                    the TypeScript SDK as it is
//
// Tools: echo {text}, sleep {ms}, whoami {}, bigecho {data}. The server
// advertises tools.listChanged: true. SIGTERM/SIGINT exit at once.
//
// Faults, for the fault-timing tests (tests/interop/real_daemons.mjs); all off
// by default:
//   --die-on-initialize N   the process exits (status 3) the moment an
//                           initialize request arrives, before answering it,
//                           N times in all: with --die-count-file the count is
//                           kept in that file, so a loop that restarts the
//                           daemon sees N deaths and then a daemon that works
//                           (without the file: this process only)
//   --init-delay MS         hold an initialize request, and every message after
//                           it on that connection, for MS ms before handling them
//   --flood                 adds the tool flood {count, pad}: answers at once,
//                           then sends count notifications/flood {seq, pad} one
//                           after another, each after the previous one was
//                           written to the socket (back-pressure), then one
//                           notifications/flood_done {count}; progress on stderr

import fs from 'node:fs';
import { WebSocketServer } from 'ws';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';

function parseArgs(argv) {
    const o = {
        port: 0, host: '127.0.0.1', instance: 'daemon', strict: 'initialized',
        dieOnInitialize: 0, dieCountFile: '', initDelay: 0, flood: false
    };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const val = () => {
            if (i + 1 >= argv.length) usage(`${a} needs a value`);
            return argv[++i];
        };
        if (a === '--port') o.port = Number(val());
        else if (a === '--host') o.host = val();
        else if (a === '--instance') o.instance = val();
        else if (a === '--strict') o.strict = val();
        else if (a === '--die-on-initialize') o.dieOnInitialize = Number(val());
        else if (a === '--die-count-file') o.dieCountFile = val();
        else if (a === '--init-delay') o.initDelay = Number(val());
        else if (a === '--flood') o.flood = true;
        else if (a === '--help' || a === '-h') usage();
        else usage(`unknown argument ${a}`);
    }
    if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) usage('bad --port');
    if (!['initialized', 'initialize', 'off'].includes(o.strict)) usage('bad --strict');
    if (!Number.isInteger(o.dieOnInitialize) || o.dieOnInitialize < 0) usage('bad --die-on-initialize');
    if (!Number.isFinite(o.initDelay) || o.initDelay < 0) usage('bad --init-delay');
    return o;
}
function usage(err) {
    const text = 'usage: mcp_ws_daemon.mjs --port N [--host H] [--instance NAME] [--strict initialized|initialize|off]\n' +
        '                        [--die-on-initialize N [--die-count-file PATH]] [--init-delay MS] [--flood]\n';
    if (err) {
        process.stderr.write(`mcp_ws_daemon: ${err}\n${text}`);
        process.exit(2);
    }
    process.stdout.write(text);
    process.exit(0);
}

const opts = parseArgs(process.argv.slice(2));
const t0 = Date.now();
function log(msg) {
    process.stderr.write(`[daemon ${opts.instance} +${((Date.now() - t0) / 1000).toFixed(3)}s] ${msg}\n`);
}
function short(s, n = 120) {
    s = String(s);
    return s.length > n ? `${s.slice(0, n)}... (${s.length} chars)` : s;
}

// --die-on-initialize: true if this initialize is one to die on (and counts it).
let diedHere = 0;
function dieNow() {
    if (opts.dieOnInitialize <= 0) return false;
    let died = diedHere;
    if (opts.dieCountFile) {
        try {
            died = Number(fs.readFileSync(opts.dieCountFile, 'utf8').trim()) || 0;
        } catch {
            died = 0;
        }
    }
    if (died >= opts.dieOnInitialize) return false;
    died++;
    diedHere++;
    if (opts.dieCountFile) fs.writeFileSync(opts.dieCountFile, `${died}\n`);
    log(`--die-on-initialize: exiting on this initialize (death ${died} of ${opts.dieOnInitialize})`);
    return true;
}

// An SDK Transport over one server-side ws socket.
class WsServerTransport {
    constructor(socket, label) {
        this.socket = socket;
        this.label = label;
        this.onclose = undefined;
        this.onerror = undefined;
        this.onmessage = undefined;
        this._closed = false;
    }
    async start() {
        if (this._started) throw new Error('WsServerTransport already started');
        this._started = true;
        this.socket.on('message', (data, isBinary) => {
            let msg;
            try {
                msg = JSON.parse(isBinary ? Buffer.from(data).toString('utf8') : data.toString('utf8'));
            } catch (e) {
                log(`${this.label}: frame that is not JSON (${e.message}): ${short(data)}`);
                this.onerror?.(new Error(`invalid JSON from the client: ${e.message}`));
                // JSON-RPC says a parse error gets an answer with a null id.
                this._sendRaw({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
                return;
            }
            this.onmessage?.(msg);
        });
        this.socket.on('close', (code, reason) => {
            log(`${this.label}: socket closed (${code}${reason && reason.length ? ` ${reason}` : ''})`);
            this._fireClose();
        });
        this.socket.on('error', err => {
            log(`${this.label}: socket error: ${err.message}`);
            this.onerror?.(err);
        });
    }
    _sendRaw(obj) {
        return new Promise((resolve, reject) => {
            if (this.socket.readyState !== 1 /* OPEN */) {
                reject(new Error('not connected'));
                return;
            }
            this.socket.send(JSON.stringify(obj), err => (err ? reject(err) : resolve()));
        });
    }
    async send(message) {
        return this._sendRaw(message);
    }
    async close() {
        try {
            this.socket.close(1000);
        } catch {
            // already gone
        }
        this._fireClose();
    }
    _fireClose() {
        if (this._closed) return;
        this._closed = true;
        this.onclose?.();
    }
}

// Sits between the socket and the SDK server: refuses requests that arrive
// before the session is initialized (see the strictness note at the top).
class StrictGate {
    constructor(inner, label, mode) {
        this.inner = inner;
        this.label = label;
        this.mode = mode;
        this.state = 'new'; // new -> initializing -> ready
        this.refused = 0;
        this.initializeCount = 0;
        this.held = null; // --init-delay: messages held since an initialize
        this.onclose = undefined;
        this.onerror = undefined;
        this.onmessage = undefined;
        inner.onclose = () => this.onclose?.();
        inner.onerror = e => this.onerror?.(e);
        inner.onmessage = (m, extra) => this._hold(m, extra);
    }
    _hold(m, extra) {
        if (this.held) {
            this.held.push([m, extra]);
            return;
        }
        const isInitialize = m && typeof m === 'object' && m.method === 'initialize' && 'id' in m;
        if (isInitialize && dieNow()) process.exit(3);
        if (isInitialize && opts.initDelay > 0) {
            log(`${this.label}: --init-delay: holding initialize id=${JSON.stringify(m.id)} for ${opts.initDelay} ms`);
            this.held = [[m, extra]];
            setTimeout(() => {
                const held = this.held;
                this.held = null;
                log(`${this.label}: --init-delay: releasing initialize and ${held.length - 1} later message(s)`);
                for (const [hm, he] of held) this._in(hm, he);
            }, opts.initDelay);
            return;
        }
        this._in(m, extra);
    }
    _in(m, extra) {
        const isRequest = m && typeof m === 'object' && typeof m.method === 'string' && 'id' in m;
        const isNotification = m && typeof m === 'object' && typeof m.method === 'string' && !('id' in m);
        if (isRequest) {
            log(`${this.label}: <- request ${m.method} id=${JSON.stringify(m.id)}`);
            if (m.method === 'initialize') {
                this.initializeCount++;
                if (this.initializeCount > 1) log(`${this.label}: WARNING: initialize #${this.initializeCount} on one connection`);
                if (this.state === 'new') this.state = this.mode === 'initialize' ? 'ready' : 'initializing';
            } else if (m.method !== 'ping' && this.mode !== 'off') {
                const ok = this.state === 'ready';
                if (!ok) {
                    this.refused++;
                    log(`${this.label}: REFUSED ${m.method} id=${JSON.stringify(m.id)}: session state is '${this.state}'`);
                    this.inner
                        .send({ jsonrpc: '2.0', id: m.id, error: { code: -32002, message: 'Server not initialized' } })
                        .catch(e => log(`${this.label}: could not send the refusal: ${e.message}`));
                    return;
                }
            }
        } else if (isNotification) {
            log(`${this.label}: <- notification ${m.method}`);
            if (m.method === 'notifications/initialized' && this.state === 'initializing') this.state = 'ready';
        } else {
            log(`${this.label}: <- response id=${JSON.stringify(m && m.id)}`);
        }
        this.onmessage?.(m, extra);
    }
    start() {
        return this.inner.start();
    }
    send(m, options) {
        return this.inner.send(m, options);
    }
    close() {
        return this.inner.close();
    }
}

function makeServer() {
    const server = new McpServer(
        { name: 'alwaysup-interop-daemon', version: '1.0.0' },
        { capabilities: { tools: { listChanged: true } } }
    );
    server.registerTool(
        'echo',
        { description: 'Returns its text argument verbatim.', inputSchema: { text: z.string() } },
        async ({ text }) => ({ content: [{ type: 'text', text }] })
    );
    server.registerTool(
        'sleep',
        { description: 'Answers after ms milliseconds.', inputSchema: { ms: z.number().int().min(0) } },
        async ({ ms }, extra) => {
            await new Promise(resolve => {
                const t = setTimeout(resolve, ms);
                extra.signal?.addEventListener('abort', () => {
                    clearTimeout(t);
                    resolve();
                });
            });
            return { content: [{ type: 'text', text: `slept ${ms} ms` }] };
        }
    );
    server.registerTool('whoami', { description: 'The name of this daemon instance.' }, async () => ({
        content: [{ type: 'text', text: opts.instance }]
    }));
    server.registerTool(
        'bigecho',
        { description: 'Returns its data argument verbatim (large payloads).', inputSchema: { data: z.string() } },
        async ({ data }) => ({ content: [{ type: 'text', text: data }] })
    );
    if (opts.flood) {
        server.registerTool(
            'flood',
            {
                description: 'Answers at once, then sends count notifications/flood {seq, pad}, then notifications/flood_done.',
                inputSchema: { count: z.number().int().min(1), pad: z.number().int().min(0).default(0) }
            },
            async ({ count, pad }) => {
                const padding = 'p'.repeat(pad);
                setImmediate(async () => {
                    const t = Date.now();
                    log(`flood: sending ${count} notifications of ${pad} bytes of padding`);
                    try {
                        for (let seq = 1; seq <= count; seq++) {
                            await server.server.notification({ method: 'notifications/flood', params: { seq, pad: padding } });
                            if (seq % 5000 === 0) log(`flood: sent ${seq} of ${count}`);
                        }
                        await server.server.notification({ method: 'notifications/flood_done', params: { count } });
                        log(`flood: done, ${count} sent in ${Date.now() - t} ms`);
                    } catch (e) {
                        log(`flood: stopped: ${e.message}`);
                    }
                });
                return { content: [{ type: 'text', text: `flooding ${count}` }] };
            }
        );
    }
    return server;
}

const wss = new WebSocketServer({
    host: opts.host,
    port: opts.port,
    maxPayload: 256 * 1024 * 1024,
    perMessageDeflate: false
});
let connections = 0;
wss.on('listening', () => {
    const port = wss.address().port;
    const faults = [
        opts.dieOnInitialize ? `die-on-initialize ${opts.dieOnInitialize}${opts.dieCountFile ? ` (count in ${opts.dieCountFile})` : ''}` : '',
        opts.initDelay ? `init-delay ${opts.initDelay} ms` : '',
        opts.flood ? 'flood tool' : ''
    ].filter(Boolean);
    log(`listening on ${opts.host}:${port} (strict: ${opts.strict}${faults.length ? `; ${faults.join(', ')}` : ''})`);
    process.stdout.write(`listening ${port}\n`);
});
wss.on('error', err => {
    log(`server error: ${err.message}`);
    process.exit(1);
});
wss.on('connection', (socket, req) => {
    const n = ++connections;
    const label = `conn#${n}`;
    log(`${label}: connected from ${req.socket.remoteAddress}:${req.socket.remotePort}, subprotocol '${socket.protocol}'`);
    const gate = new StrictGate(new WsServerTransport(socket, label), label, opts.strict);
    const server = makeServer();
    server.server.onerror = e => log(`${label}: server error: ${e.message}`);
    server.server.oninitialized = () => log(`${label}: notifications/initialized handled`);
    server.connect(gate).catch(e => {
        log(`${label}: connect failed: ${e.message}`);
        socket.terminate();
    });
});

for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => {
        log(`${sig}: exiting`);
        process.exit(0);
    });
}
