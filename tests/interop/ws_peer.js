#!/usr/bin/env node
// Node `ws` peer for tests/interop/ws_echo_interop.py and http_ws_interop.py.
//
//   node ws_peer.js client URL [--ca FILE] [--deflate MODE] [--quick]
//       Against an echo server (examples/ws_echo_server): text and binary messages of
//       0 B / 125 B / 126 B / 64 KiB / 16 MiB, a pipelined burst, fragmented sends (fin:false
//       chunks, one with a ping between the fragments), 60 copies of a JSON-like message, a ping,
//       then close(4001, reason), and checks the server echoes the close code. Prints "ok: ..."
//       per check.
//   node ws_peer.js server [--cert FILE --key FILE] [--deflate MODE] [--quick]
//       Listens on 127.0.0.1:0, prints "listening on 127.0.0.1:PORT", and drives one client in
//       echo mode (examples/ws_client --echo): sends the same messages (plus fragmented ones and
//       a ping), checks every echo, closes with 1000 and checks the client's close code.
//
// --deflate (permessage-deflate, RFC 7692; `threshold: 0` so that small messages are compressed
// too):
//   off      (default) not offered / not accepted; the other side must not offer either.
//   on       offered / accepted with ws's defaults; it must be agreed, and every text message of
//            64 KiB or more that the other side sends must arrive compressed (RSV1).
//   small    as on, with server_no_context_takeover, client_no_context_takeover and 9-bit
//            windows both ways; the agreement must have exactly these.
//   refused  offered / accepted, but the other side refuses (client) or does not offer
//            (server): nothing may be agreed.
// Prints "negotiated: LABEL: ..." with the Sec-WebSocket-Extensions answer and ws's agreed params.
// --quick leaves out the 16 MiB messages.
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
const QUICK_SIZES = SIZES.filter((n) => n <= 64 * 1024);
const MUST_COMPRESS = 64 * 1024;
const MAX_FRAME = 16 * 1024 * 1024; // coronet's default max_frame_size
const DEFLATE_MODES = {
  off: false,
  on: { threshold: 0 },
  small: {
    threshold: 0,
    serverNoContextTakeover: true,
    clientNoContextTakeover: true,
    serverMaxWindowBits: 9,
    clientMaxWindowBits: 9,
  },
  refused: { threshold: 0 },
};

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
    // ws inflates a compressed message before emitting it: the flag belongs to this message.
    const m = { data: Buffer.isBuffer(data) ? data : Buffer.concat(data), isBinary, compressed: ws._coronetCompressed === true };
    ws._coronetCompressed = false;
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

// Checks the agreement against --deflate, logs it, and marks each incoming compressed message
// (ws's receiver calls decompress() for the frames of a message with RSV1 before emitting it).
function checkDeflate(ws, mode, label, offer) {
  const pmd = ws._extensions['permessage-deflate'];
  const params = pmd ? JSON.stringify(pmd.params) : 'none';
  log(`negotiated: ${label}${offer !== undefined ? ` (offer ${JSON.stringify(offer || null)})` : ''}: ` +
      `extensions '${ws.extensions}', params ${params}`);
  if (mode === 'off' || mode === 'refused') {
    if (ws.extensions !== '') die(`${label}: negotiated extensions: ${ws.extensions}`);
    return;
  }
  if (!pmd) die(`${label}: permessage-deflate not agreed`);
  if (mode === 'small') {
    const p = pmd.params;
    if (p.server_no_context_takeover !== true || p.client_no_context_takeover !== true ||
        p.server_max_window_bits !== 9 || p.client_max_window_bits !== 9)
      die(`${label}: agreed ${params}, wanted no context takeover and 9-bit windows both ways`);
  }
  const decompress = pmd.decompress.bind(pmd);
  pmd.decompress = (data, fin, cb) => {
    ws._coronetCompressed = true;
    decompress(data, fin, cb);
  };
}

// The messages both modes send and expect back unchanged. `opts.sizes`: the message sizes;
// `opts.mustCompress`: large text echoes must arrive compressed.
async function roundTrips(ws, box, label, opts) {
  let compressed = 0;
  const next = async (what) => {
    const m = await box.next(what);
    if (m.compressed) compressed++;
    return m;
  };
  for (const n of opts.sizes) {
    const t = makeText(n);
    await send(ws, t, { binary: false });
    const mt = await next(`text ${n}`);
    expectSame(mt, false, Buffer.from(t), `${label} text ${n} B`);
    if (opts.mustCompress && n >= MUST_COMPRESS && !mt.compressed)
      die(`${label} text ${n} B: the echo arrived uncompressed (no RSV1)`);
    const b = makeBinary(n, n + 1);
    // Random bytes do not compress, and ws has no "skip if larger": compressed, 16 MiB of them
    // make a frame ~5 KiB over the other side's 16 MiB max_frame_size (1009). Sent plain (RSV1
    // clear on a compressing connection); the echo comes back compressed.
    const plain = opts.mustCompress && n >= MAX_FRAME;
    await send(ws, b, { binary: true, compress: !plain });
    expectSame(await next(`binary ${n}`), true, b, `${label} binary ${n} B`);
    log(`ok: ${label} text + binary ${n} B`);
  }
  // Fragmented: three chunks, the middle one empty, then one with a ping between fragments.
  const parts = [makeText(1000), '', makeText(70000)];
  for (let i = 0; i < parts.length; i++)
    await send(ws, parts[i], { binary: false, fin: i === parts.length - 1 });
  const mf = await next('fragmented text');
  expectSame(mf, false, Buffer.from(parts.join('')), `${label} fragmented text`);
  if (opts.mustCompress && !mf.compressed) die(`${label} fragmented text: the echo arrived uncompressed`);
  const bparts = [makeBinary(10, 1), makeBinary(200000, 2), makeBinary(3, 3)];
  await send(ws, bparts[0], { binary: true, fin: false });
  ws.ping(Buffer.from('between fragments'));
  await send(ws, bparts[1], { binary: true, fin: false });
  await send(ws, bparts[2], { binary: true, fin: true });
  expectSame(await next('fragmented binary'), true, Buffer.concat(bparts), `${label} fragmented binary`);
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
    expectSame(await next(`burst ${i}`), i % 2 === 1, want, `${label} burst message ${i}`);
  }
  log(`ok: ${label} 200 pipelined messages`);

  // One JSON-like message 60 times: context takeover (or its absence) matters here.
  const items = [];
  for (let k = 0; k < 10; k++) items.push({ sku: `item-${k}`, qty: k, price: 9.99, tags: ['a', 'b'] });
  const series = [];
  for (let i = 0; i < 60; i++)
    series.push(JSON.stringify({ type: 'update', room: 'lobby', seq: i % 4, user: { id: 4242, name: 'coronet' }, items }));
  await Promise.all(series.map((m) => send(ws, m, { binary: false })));
  for (let i = 0; i < series.length; i++)
    expectSame(await next(`repeated ${i}`), false, Buffer.from(series[i]), `${label} repeated message ${i}`);
  log(`ok: ${label} 60 repeated JSON-like messages`);
  if (opts.deflate !== 'off') log(`ok: ${label} ${compressed} messages arrived compressed`);
}

function modeOptions(deflate, quick) {
  return {
    deflate,
    sizes: quick ? QUICK_SIZES : SIZES,
    mustCompress: deflate === 'on' || deflate === 'small',
  };
}

async function client(url, ca, deflate, quick) {
  const opts = { perMessageDeflate: DEFLATE_MODES[deflate], maxPayload: MAX_PAYLOAD };
  if (ca) opts.ca = fs.readFileSync(ca);
  const ws = new WebSocket(url, opts);
  const box = inbox(ws);
  await withTimeout(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  }), 'open');
  const label = `node ws client ${url.split(':')[0]}:// --deflate ${deflate}`;
  checkDeflate(ws, deflate, label);
  await roundTrips(ws, box, label, modeOptions(deflate, quick));
  ws.close(4001, 'node says bye');
  const c = await box.closed('close handshake');
  if (c.code !== 4001) die(`${label}: server echoed close code ${c.code}, wanted 4001`);
  log(`ok: ${label} close 4001 echoed`);
}

async function server(cert, key, deflate, quick) {
  const opts = { perMessageDeflate: DEFLATE_MODES[deflate], maxPayload: MAX_PAYLOAD };
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
  const label = `ws_client --echo -> node ws server ${cert ? 'wss' : 'ws'}:// --deflate ${deflate}`;
  const offer = req.headers['sec-websocket-extensions'];
  if ((deflate === 'off' || deflate === 'refused') && offer) die(`${label}: client offered extensions: ${offer}`);
  const box = inbox(ws);
  checkDeflate(ws, deflate, label, offer);
  await roundTrips(ws, box, label, modeOptions(deflate, quick));
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
  const deflate = opt('--deflate') || 'off';
  const quick = rest.includes('--quick');
  const usage = 'usage: ws_peer.js client URL [--ca FILE] | server [--cert FILE --key FILE]' +
    ' [--deflate off|on|small|refused] [--quick]';
  if (!(deflate in DEFLATE_MODES)) die(usage);
  if (mode === 'client' && rest[0]) await client(rest[0], opt('--ca'), deflate, quick);
  else if (mode === 'server') await server(opt('--cert'), opt('--key'), deflate, quick);
  else die(usage);
  log('PASS');
  process.exit(0);
}

main().catch((e) => die(String(e && e.stack || e)));
