#!/usr/bin/env node
// peer-node: a bridge on the npm `ws` package, of the kind Node users write.
//
// stdin lines go to the daemon, the daemon's messages go to stdout, one per
// line; the connection is retried forever (0.25 s, x1.5, capped at 5 s) and
// lines read while it is down are queued and sent once it is back. It exits
// when stdin closes.
//
//   node node_shim.mjs ws://127.0.0.1:8079
//
// Used by tools/bench/bench.c as the "peer-node" contender; `ws` comes from
// tools/bench/peers/node_modules (npm ci --prefix tools/bench/peers).
import readline from 'node:readline';
import WebSocket from 'ws';

const url = process.argv[2] ?? 'ws://127.0.0.1:8079';
const NL = Buffer.from('\n');
const queue = [];
let ws = null;
let delay = 250;

function connect() {
  ws = new WebSocket(url, { maxPayload: 256 * 1024 * 1024 });
  ws.on('open', () => {
    console.error(`node_shim: connected to ${url}`);
    delay = 250;
    for (const line of queue) ws.send(line);
    queue.length = 0;
  });
  ws.on('message', (data) => {
    process.stdout.write(Buffer.concat([data, NL]));
  });
  ws.on('error', (err) => console.error(`node_shim: ${err.message}`));
  ws.on('close', () => {
    setTimeout(connect, delay);
    delay = Math.min(delay * 1.5, 5000);
  });
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  if (!line) return;
  if (ws.readyState === WebSocket.OPEN) ws.send(line);
  else queue.push(line);
});
rl.on('close', () => process.exit(0));

connect();
