// node_ws_echo: a WebSocket echo server on npm `ws` (version pinned by
// tests/interop/package-lock.json), the node peer in tests/bench/ws/run_ws_bench.sh.
//
//   node node_ws_echo.js [--host 127.0.0.1] [--port 0] [--deflate [--threshold 64]]
//
// `ws` must be resolvable: the driver runs it with NODE_PATH pointing at the node_modules it
// installed with `npm ci`. Echoes every message back with its type (text as text, binary as
// binary), no optional native add-ons (bufferutil, utf-8-validate). permessage-deflate off
// unless --deflate: then offers are accepted with ws's default negotiation (context takeover
// unless the client asks otherwise, 15-bit windows), zlib level 6 / memLevel 8 (zlib's
// defaults, as coronet's), and echoes of --threshold bytes or more (default 64, coronet's
// default min_size) go out compressed. The threshold is applied here, per send: ws's own
// `threshold` option only applies where this side keeps no context (with context takeover it
// compresses every message, however short).
// Prints "listening on HOST:PORT" once it accepts; exits 0 on SIGINT/SIGTERM.
'use strict';

const { WebSocketServer } = require('ws');

let host = '127.0.0.1';
let port = 0;
let deflate = false;
let threshold = 64;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; ++i) {
  if (args[i] === '--host' && i + 1 < args.length) host = args[++i];
  else if (args[i] === '--port' && i + 1 < args.length) port = Number(args[++i]);
  else if (args[i] === '--deflate') deflate = true;
  else if (args[i] === '--threshold' && i + 1 < args.length) threshold = Number(args[++i]);
  else {
    process.stderr.write('usage: node node_ws_echo.js [--host ADDR] [--port N] [--deflate [--threshold B]]\n');
    process.exit(2);
  }
}

const wss = new WebSocketServer({
  host,
  port,
  perMessageDeflate: deflate
    ? { threshold, zlibDeflateOptions: { level: 6, memLevel: 8 } }
    : false,
  clientTracking: false,
  maxPayload: 16 * 1024 * 1024,
});

wss.on('connection', (ws) => {
  if (ws._socket && ws._socket.setNoDelay) ws._socket.setNoDelay(true);
  ws.on('message', (data, isBinary) => {
    ws.send(data, { binary: isBinary, compress: deflate && data.length >= threshold });
  });
  ws.on('error', () => {});
});

wss.on('listening', () => {
  const a = wss.address();
  process.stdout.write(`listening on ${a.address}:${a.port}\n`);
});

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
