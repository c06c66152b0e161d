// node_ws_rooms: a WebSocket room server on npm `ws` (version pinned by
// tests/interop/package-lock.json), the node peer of examples/ws_rooms in
// tests/bench/ws/run_ws_broadcast.sh and run_ws_memory.sh.
//
//   node node_ws_rooms.js [--host 127.0.0.1] [--port 0] [--deflate [--threshold 64]]
//
// Same semantics as ws_rooms: a client connecting to ws://HOST:PORT/<room> joins <room> (the
// path without its leading slash and without the query), and every text or binary message it
// sends is sent, as the same type, to every other open member of that room — with
// `client.send(data)` per member, the broadcast loop of ws's README (ws frames each send; the
// payload buffer is shared, not copied). permessage-deflate off unless --deflate (then as
// node_ws_echo.js: context takeover unless the client asks otherwise, level 6, memLevel 8,
// messages of --threshold bytes or more compressed, per receiver). No optional native add-ons.
// `ws` must be resolvable (NODE_PATH). Prints "listening on HOST:PORT" once it accepts; exits 0
// on SIGINT/SIGTERM.
'use strict';

const { WebSocketServer, WebSocket } = require('ws');

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
    process.stderr.write('usage: node node_ws_rooms.js [--host ADDR] [--port N] [--deflate [--threshold B]]\n');
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

const rooms = new Map(); // room name -> Set of sockets

function roomOf(url) {
  let t = url || '/';
  if (t.startsWith('/')) t = t.slice(1);
  const q = t.indexOf('?');
  return q < 0 ? t : t.slice(0, q);
}

wss.on('connection', (ws, req) => {
  if (ws._socket && ws._socket.setNoDelay) ws._socket.setNoDelay(true);
  const name = roomOf(req.url);
  let members = rooms.get(name);
  if (!members) {
    members = new Set();
    rooms.set(name, members);
  }
  members.add(ws);
  ws.on('message', (data, isBinary) => {
    const opts = { binary: isBinary, compress: deflate && data.length >= threshold };
    for (const m of members) {
      if (m !== ws && m.readyState === WebSocket.OPEN) m.send(data, opts);
    }
  });
  ws.on('close', () => {
    members.delete(ws);
    if (members.size === 0 && rooms.get(name) === members) rooms.delete(name);
  });
  ws.on('error', () => {});
});

wss.on('listening', () => {
  const a = wss.address();
  process.stdout.write(`listening on ${a.address}:${a.port}\n`);
});

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
