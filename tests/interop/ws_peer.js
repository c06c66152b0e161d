#!/usr/bin/env node
// Node `ws` peer for tests/interop/ws_echo_interop.py (compression off: permessage-deflate is
// not implemented by coronet::ws yet).
//
//   node ws_peer.js client URL [--ca FILE]
//       Against an echo server (examples/ws_echo_server): text and binary messages of
//       0 B / 125 B / 126 B / 64 KiB / 16 MiB, a pipelined burst, fragmented sends (fin:false
//       chunks, one with a ping between the fragments), a ping, then close(4001, reason), and
//       checks the server echoes the close code. Prints "ok: ..." per check.
//   node ws_peer.js server [--cert FILE --key FILE]
//       Listens on 127.0.0.1:0, prints "listening on 127.0.0.1:PORT", and drives one client in
//       echo mode (examples/ws_client --echo): sends the same messages (plus fragmented ones and
//       a ping), checks every echo, closes with 1000 and checks the client's close code.
//
// Exit 0: pass, 1: fail. Every wait is bounded (STEP_MS); the whole run too (TOTAL_MS).
'use strict';

const fs = require('fs');
const https = require('https');
const { WebSocket, WebSocketServer } = require('ws');

const STEP_MS = 60_000;
const TOTAL_MS = 240_000;
const MAX_PAYLOAD = 64 * 1024 * 1024;
const SIZES = [0, 125, 126, 64 * 1024, 16 * 1024 * 1024];

function log(msg) { process.stdout.write(msg + '\n'); }
function die(msg) {
  log('FAIL: ' + msg);
  process.exit(1);
}
setTimeout(() => die(`gave up after ${TOTAL_MS} ms`), TOTAL_MS).unref();
process.on('unhandledRejection', (e) => die(String(e && e.stack || e)));

// Text of exactly n UTF-8 bytes, with 2-, 3- and 4-byte sequences in it.
function makeText(n) {
  const unit = 'héllo wörld € 😀 ';
  const ub = Buffer.byteLength(unit);
  return unit.repeat(Math.floor(n / ub)) + 'a'.repeat(n % ub);
}
function makeBinary(n, seed) {
  const b = Buffer.allocUnsafe(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}
function withTimeout(p, what) {
  let t;
  return Promise.race([
    p,
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timeout: ${what}`)), STEP_MS); }),
  ]).finally(() => clearTimeout(t));
}

// Queues a socket's messages, pongs and close so the checks can await them in order.
function inbox(ws) {
  const q = [];
  const waiters = [];
  let closed = null;
  const pongs = [];
  const pongWaiters = [];
  ws.on('message', (data, isBinary) => {
    const m = { data: Buffer.isBuffer(data) ? data : Buffer.concat(data), isBinary };
    if (waiters.length) waiters.shift().resolve(m); else q.push(m);
  });
  ws.on('pong', (data) => {
    if (pongWaiters.length) pongWaiters.shift()(data); else pongs.push(data);
  });
  const closedP = new Promise((resolve) => {
    ws.on('close', (code, reason) => {
      closed = { code, reason: reason.toString() };
      while (waiters.length) waiters.shift().reject(new Error(`closed ${code} ${closed.reason}`));
      resolve(closed);
    });
  });
  ws.on('error', (e) => log(`ws error: ${e.message}`));
  return {
    next(what) {
      if (q.length) return Promise.resolve(q.shift());
      if (closed) return Promise.reject(new Error(`closed ${closed.code} before ${what}`));
      return withTimeout(new Promise((resolve, reject) => waiters.push({ resolve, reject })), what);
    },
    pong(what) {
      if (pongs.length) return Promise.resolve(pongs.shift());
      return withTimeout(new Promise((resolve) => pongWaiters.push(resolve)), what);
    },
    closed(what) { return withTimeout(closedP, what); },
  };
}

function send(ws, data, opts) {
  return withTimeout(new Promise((resolve, reject) => {
    ws.send(data, opts, (err) => (err ? reject(err) : resolve()));
  }), 'send');
}

function expectSame(m, isBinary, want, what) {
  if (m.isBinary !== isBinary) die(`${what}: got ${m.isBinary ? 'binary' : 'text'}`);
  if (!m.data.equals(want)) die(`${what}: ${m.data.length} bytes differ from the ${want.length} sent`);
}

// The messages both modes send and expect back unchanged.
async function roundTrips(ws, box, label) {
  for (const n of SIZES) {
    const t = makeText(n);
    await send(ws, t, { binary: false });
    expectSame(await box.next(`text ${n}`), false, Buffer.from(t), `${label} text ${n} B`);
    const b = makeBinary(n, n + 1);
    await send(ws, b, { binary: true });
    expectSame(await box.next(`binary ${n}`), true, b, `${label} binary ${n} B`);
    log(`ok: ${label} text + binary ${n} B`);
  }
  // Fragmented: three chunks, the middle one empty, then one with a ping between fragments.
  const parts = [makeText(1000), '', makeText(70000)];
  for (let i = 0; i < parts.length; i++)
    await send(ws, parts[i], { binary: false, fin: i === parts.length - 1 });
  expectSame(await box.next('fragmented text'), false, Buffer.from(parts.join('')), `${label} fragmented text`);
  const bparts = [makeBinary(10, 1), makeBinary(200000, 2), makeBinary(3, 3)];
  await send(ws, bparts[0], { binary: true, fin: false });
  ws.ping(Buffer.from('between fragments'));
  await send(ws, bparts[1], { binary: true, fin: false });
  await send(ws, bparts[2], { binary: true, fin: true });
  expectSame(await box.next('fragmented binary'), true, Buffer.concat(bparts), `${label} fragmented binary`);
  const p = await box.pong('pong between fragments');
  if (p.toString() !== 'between fragments') die(`${label}: pong payload ${p.toString()}`);
  log(`ok: ${label} fragmented text and binary (ping between fragments)`);

  // A ping with a payload.
  ws.ping(Buffer.from('node ping'));
  const p2 = await box.pong('pong');
  if (p2.toString() !== 'node ping') die(`${label}: pong payload ${p2.toString()}`);
  log(`ok: ${label} ping/pong`);

  // A pipelined burst: 200 messages out before any echo is read.
  const burst = [];
  for (let i = 0; i < 200; i++) burst.push(i % 2 ? makeBinary(i * 37, i) : makeText(i * 37));
  await Promise.all(burst.map((m, i) => send(ws, m, { binary: i % 2 === 1 })));
  for (let i = 0; i < burst.length; i++) {
    const want = i % 2 ? burst[i] : Buffer.from(burst[i]);
    expectSame(await box.next(`burst ${i}`), i % 2 === 1, want, `${label} burst message ${i}`);
  }
  log(`ok: ${label} 200 pipelined messages`);
}

async function client(url, ca) {
  const opts = { perMessageDeflate: false, maxPayload: MAX_PAYLOAD };
  if (ca) opts.ca = fs.readFileSync(ca);
  const ws = new WebSocket(url, opts);
  const box = inbox(ws);
  await withTimeout(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  }), 'open');
  if (ws.extensions !== '') die(`negotiated extensions: ${ws.extensions}`);
  const label = `node ws client ${url.split(':')[0]}://`;
  await roundTrips(ws, box, label);
  ws.close(4001, 'node says bye');
  const c = await box.closed('close handshake');
  if (c.code !== 4001) die(`${label}: server echoed close code ${c.code}, wanted 4001`);
  log(`ok: ${label} close 4001 echoed`);
}

async function server(cert, key) {
  const opts = { perMessageDeflate: false, maxPayload: MAX_PAYLOAD };
  let httpsServer = null;
  if (cert) {
    httpsServer = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) });
    opts.server = httpsServer;
  } else {
    opts.host = '127.0.0.1';
    opts.port = 0;
  }
  const wss = new WebSocketServer(opts);
  const listening = httpsServer
    ? new Promise((resolve) => httpsServer.listen(0, '127.0.0.1', () => resolve(httpsServer.address())))
    : new Promise((resolve) => wss.on('listening', () => resolve(wss.address())));
  const conn = new Promise((resolve) => wss.once('connection', (ws, req) => resolve({ ws, req })));
  const addr = await listening;
  log(`listening on 127.0.0.1:${addr.port}`);
  const { ws, req } = await withTimeout(conn, 'a client');
  if (req.headers['sec-websocket-extensions'])
    die(`client offered extensions: ${req.headers['sec-websocket-extensions']}`);
  const box = inbox(ws);
  const label = `ws_client --echo -> node ws server ${cert ? 'wss' : 'ws'}://`;
  await roundTrips(ws, box, label);
  ws.close(1000, 'done');
  const c = await box.closed('close handshake');
  if (c.code !== 1000) die(`${label}: client echoed close code ${c.code}, wanted 1000`);
  log(`ok: ${label} close 1000 echoed`);
  wss.close();
  if (httpsServer) httpsServer.close();
}

async function main() {
  const [mode, ...rest] = process.argv.slice(2);
  const opt = (name) => {
    const i = rest.indexOf(name);
    return i >= 0 ? rest[i + 1] : undefined;
  };
  if (mode === 'client' && rest[0]) await client(rest[0], opt('--ca'));
  else if (mode === 'server') await server(opt('--cert'), opt('--key'));
  else die('usage: ws_peer.js client URL [--ca FILE] | server [--cert FILE --key FILE]');
  log('PASS');
  process.exit(0);
}

main().catch((e) => die(String(e && e.stack || e)));
