#!/usr/bin/env node
// A WebSocket front for a stdio MCP server, one fresh server process per
// WebSocket connection, for the alwaysup interop tests
// (tests/interop/real_daemons.mjs, scenario B).
//
//   node per_connection_bridge.mjs --port N [--host 127.0.0.1] [--name NAME] [-- COMMAND ARGS...]
//
// Without a COMMAND it runs @modelcontextprotocol/server-everything over stdio
// (node <its dist/index.js> stdio, from tests/node_modules).
//
// One text (or binary) frame from the socket is one JSON-RPC message, written
// to the child's stdin as one line; each line the child writes on stdout is
// sent as one text frame. Back-pressure both ways: a child that does not read
// stdin pauses the socket; a socket with more than 4 MiB unsent pauses the
// child's stdout. When the socket closes the child is killed (SIGTERM, then
// SIGKILL after 1 s); when the child exits the socket is closed with 1011.
// Prints "listening N" on stdout once the port is bound; logs go to stderr.
// SIGTERM/SIGINT kill every child and exit.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';

const HERE = path.dirname(fileURLToPath(import.meta.url));

function usage(err) {
    const text = 'usage: per_connection_bridge.mjs --port N [--host H] [--name NAME] [-- COMMAND ARGS...]\n';
    if (err) {
        process.stderr.write(`per_connection_bridge: ${err}\n${text}`);
        process.exit(2);
    }
    process.stdout.write(text);
    process.exit(0);
}

function parseArgs(argv) {
    const o = { port: 0, host: '127.0.0.1', name: 'bridge', command: null };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const val = () => {
            if (i + 1 >= argv.length) usage(`${a} needs a value`);
            return argv[++i];
        };
        if (a === '--port') o.port = Number(val());
        else if (a === '--host') o.host = val();
        else if (a === '--name') o.name = val();
        else if (a === '--') {
            o.command = argv.slice(i + 1);
            break;
        } else if (a === '--help' || a === '-h') usage();
        else usage(`unknown argument ${a}`);
    }
    if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) usage('bad --port');
    if (o.command && o.command.length === 0) usage('-- needs a command');
    if (!o.command) {
        const entry = path.join(HERE, '..', 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
        if (!fs.existsSync(entry)) usage(`${entry} is missing (cd tests && npm ci)`);
        o.command = [process.execPath, entry, 'stdio'];
    }
    return o;
}

const opts = parseArgs(process.argv.slice(2));
const t0 = Date.now();
function log(msg) {
    process.stderr.write(`[${opts.name} +${((Date.now() - t0) / 1000).toFixed(3)}s] ${msg}\n`);
}
function short(s, n = 160) {
    s = String(s);
    return s.length > n ? `${s.slice(0, n)}... (${s.length} chars)` : s;
}

const MAX_UNSENT = 4 * 1024 * 1024;
const children = new Set();

function killChild(child, label) {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) {
            log(`${label}: child ${child.pid} still running 1 s after SIGTERM: SIGKILL`);
            child.kill('SIGKILL');
        }
    }, 1000);
    t.unref();
}

const wss = new WebSocketServer({ host: opts.host, port: opts.port, maxPayload: 256 * 1024 * 1024, perMessageDeflate: false });
let connections = 0;

wss.on('listening', () => {
    const port = wss.address().port;
    log(`listening on ${opts.host}:${port}; one child per connection: ${opts.command.join(' ')}`);
    process.stdout.write(`listening ${port}\n`);
});
wss.on('error', err => {
    log(`server error: ${err.message}`);
    process.exit(1);
});

wss.on('connection', (socket, req) => {
    const n = ++connections;
    const label = `conn#${n}`;
    const child = spawn(opts.command[0], opts.command.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    log(`${label}: connected from ${req.socket.remoteAddress}:${req.socket.remotePort}, subprotocol '${socket.protocol}'; ` +
        `child pid ${child.pid}`);
    let socketClosed = false;
    let childGone = false;

    // socket -> child stdin, one line per frame
    socket.on('message', (data, isBinary) => {
        let text = isBinary ? Buffer.from(data).toString('utf8') : data.toString('utf8');
        if (/[\r\n]/.test(text)) {
            // A pretty-printed message: one line, same meaning.
            try {
                text = JSON.stringify(JSON.parse(text));
            } catch {
                log(`${label}: dropped a frame with a line break that is not JSON: ${short(text)}`);
                return;
            }
        }
        if (childGone) {
            log(`${label}: frame after the child exited, dropped: ${short(text)}`);
            return;
        }
        if (!child.stdin.write(`${text}\n`)) {
            socket.pause();
            child.stdin.once('drain', () => socket.resume());
        }
    });
    child.stdin.on('error', e => log(`${label}: child stdin: ${e.message}`));

    // child stdout -> socket, one frame per line
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', chunk => {
        pending += chunk;
        let nl;
        while ((nl = pending.indexOf('\n')) >= 0) {
            let line = pending.slice(0, nl);
            pending = pending.slice(nl + 1);
            if (line.endsWith('\r')) line = line.slice(0, -1);
            if (!line.trim()) continue;
            if (socketClosed) continue;
            socket.send(line, err => {
                if (err) log(`${label}: send failed: ${err.message}`);
                if (child.stdout.isPaused() && socket.bufferedAmount < MAX_UNSENT / 2) child.stdout.resume();
            });
        }
        if (socket.bufferedAmount > MAX_UNSENT) child.stdout.pause();
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', d => {
        for (const l of d.split('\n')) if (l.trim()) log(`${label}: child stderr: ${short(l, 300)}`);
    });

    child.on('error', e => log(`${label}: child error: ${e.message}`));
    child.on('exit', (code, signal) => {
        childGone = true;
        children.delete(child);
        log(`${label}: child ${child.pid} exited (code ${code}, signal ${signal})`);
        if (!socketClosed) {
            socketClosed = true;
            socket.close(1011, 'the MCP server process exited');
        }
    });
    socket.on('close', (code, reason) => {
        log(`${label}: socket closed (${code}${reason && reason.length ? ` ${reason}` : ''}); stopping child ${child.pid}`);
        socketClosed = true;
        killChild(child, label);
    });
    socket.on('error', err => log(`${label}: socket error: ${err.message}`));
});

function shutdown(sig) {
    log(`${sig}: killing ${children.size} child(ren) and exiting`);
    for (const c of children) {
        try {
            c.kill('SIGKILL');
        } catch {
            // gone
        }
    }
    process.exit(0);
}
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => shutdown(sig));
