#!/usr/bin/python3
"""WebSocket interop: coronet's ws_echo_server and ws_client against real peers, with
permessage-deflate (RFC 7692) negotiated and without it.

    ws_echo_interop.py PATH/TO/ws_echo_server PATH/TO/ws_client BACKEND(epoll|uring)

Every check runs in two modes:
  - compressed: our side negotiates permessage-deflate (the examples' default). The peer's own
    view must show it agreed (websockets `ws.extensions`, aiohttp `ws.compress` and the
    Sec-WebSocket-Extensions answer, node `ws` the accepted params), and where the peer lets us
    see frames (websockets, node) every text message of 64 KiB or more that our side sent must
    have arrived compressed (RSV1). Our server is also driven by peers offering
    server_no_context_takeover + client_no_context_takeover with 9-bit windows (websockets and
    node), and by websockets offering server_max_window_bits=8 (zlib cannot compress with 8
    bits: we answer 8 and send uncompressed); our client by a node server imposing the same
    no-takeover 9-bit agreement. Sixty copies of one JSON-like message make context takeover
    (or its absence) matter.
  - uncompressed: ws_echo_server --no-deflate and ws_client --no-deflate. The peers still offer
    (or accept) permessage-deflate; nothing may be negotiated, and our client must not offer.

Their client -> our server (examples/ws_echo_server, ws:// and wss://):
  - python websockets (10.x), aiohttp (ClientSession.ws_connect) and node `ws` (ws_peer.js):
    text and binary messages of 0 B / 125 B / 126 B / 64 KiB / 16 MiB echo unchanged,
    fragmented sends (websockets: an iterable of fragments; node: fin:false chunks, with a
    ping between fragments), a ping, a pipelined burst, and close(4001, reason): the peer must
    see 4001 echoed back.
Our client -> their server (examples/ws_client URL --echo, ws:// and wss://):
  - a python websockets server and a node `ws` server send the same messages (and fragmented
    ones, and a ping), check every echo, close with 1000 and check the echoed code; ws_client
    must then exit 0. An aiohttp server (web.WebSocketResponse) does the same without the
    fragmented sends (aiohttp has no API for them).
The 16 MiB messages run once per peer, direction and mode (compressed over ws://, uncompressed
over wss://); the other scheme stops at 64 KiB. Every negotiation is logged ("negotiated: ...")
and summed up at the end. Certificates: a CA and a localhost/127.0.0.1 server certificate made
by the openssl CLI.

Node's `ws` comes from tests/interop/package-lock.json: tests/interop/node_modules if present,
else `npm ci` into $CORONET_INTEROP_NODE_DIR (default: ./node under the working directory, the
build tree) once, bounded in time. Without node/npm, or when the registry is unreachable, the
node checks are left out and, if everything else passed, the test exits 77 (skipped) saying why.

Every step has a deadline. Exit 0: pass, 1: fail, 77: skipped (no openssl CLI, io_uring
unavailable, python modules or node `ws` missing).
"""

import asyncio
import fcntl
import json
import os
import re
import select
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time

SKIP = 77
STEP_TIMEOUT = 60  # seconds, per step (a 16 MiB echo in pure Python included)
START_TIMEOUT = 15
NPM_TIMEOUT = 120
HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = [0, 125, 126, 64 * 1024, 16 * 1024 * 1024]
QUICK_SIZES = [n for n in SIZES if n <= 64 * 1024]
# Text messages this long that our side sends must reach a compressing peer with RSV1 set.
MUST_COMPRESS = 64 * 1024
# What each connection negotiated, as the peer saw it, for the summary at the end.
NEGOTIATED = []


def log(msg):
    print(msg, flush=True)


class Failure(Exception):
    pass


class Skip(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


# ---------------------------------------------------------------------------------------------
# Payloads


def make_text(n):
    """Text of exactly n UTF-8 bytes, with 2-, 3- and 4-byte sequences in it."""
    unit = "héllo wörld € 😀 "
    ub = len(unit.encode())
    return unit * (n // ub) + "a" * (n % ub)


def make_binary(n, seed):
    if n == 0:
        return b""
    block = bytes(((i * 131 + seed * 7 + (i >> 8)) & 0xFF) for i in range(min(n, 4093)))
    return (block * (n // len(block) + 1))[:n]


def describe(x):
    return f"{type(x).__name__} of {len(x)}"


# ---------------------------------------------------------------------------------------------
# Processes and certificates


def run(cmd, timeout=START_TIMEOUT, **kw):
    return subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)


def make_certs(d, openssl):
    ca_key, ca_pem = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr, pem = (os.path.join(d, n) for n in ("server.key", "server.csr", "server.pem"))
    ext = os.path.join(d, "server.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    steps = [
        [openssl, "req", "-x509", "-new", *ec, "-keyout", ca_key, "-out", ca_pem, "-days", "2",
         "-subj", "/CN=coronet interop CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", "-new", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
        [openssl, "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
         "-out", pem, "-days", "1", "-sha256", "-extfile", ext],
    ]
    for cmd in steps:
        r = run(cmd)
        check(r.returncode == 0, f"{' '.join(cmd)} failed: {r.stderr.decode(errors='replace')}")
    return ca_pem, pem, key


def read_line(proc, deadline):
    """Reads one stdout line of `proc` before `deadline` (no blocking past it)."""
    buf = b""
    fd = proc.stdout.fileno()
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure(f"no line from {proc.args[0]} in time (got {buf!r})")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 1)
        if not chunk:
            return buf.decode(errors="replace")  # it exited
        buf += chunk
    return buf.decode(errors="replace")


def start_echo_server(server_bin, backend, tls=None, deflate=True):
    """Starts ws_echo_server (with --no-deflate unless `deflate`); returns (process, port).
    Raises Skip without io_uring."""
    cmd = [server_bin, "--port", "0", "--backend", backend]
    if not deflate:
        cmd.append("--no-deflate")
    if tls is not None:
        cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = read_line(proc, time.monotonic() + START_TIMEOUT)
    m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
    if m is None:
        try:
            proc.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err = proc.stderr.read().decode(errors="replace")
        if backend == "uring" and "uring" in err.lower():
            raise Skip(f"io_uring unavailable: {err.strip()}")
        raise Failure(f"ws_echo_server did not start: {line!r} {err}")
    return proc, int(m.group(1))


def stop(proc):
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------------------------
# Node `ws`


def node_setup():
    """Returns (node, NODE_PATH) with `ws` installed per the lock file, or raises Skip."""
    node = shutil.which("node")
    if node is None:
        raise Skip("node is not installed (Debian package: nodejs)")
    local = os.path.join(HERE, "node_modules")
    if os.path.isfile(os.path.join(local, "ws", "package.json")):
        return node, local
    npm = shutil.which("npm")
    if npm is None:
        raise Skip("npm is not installed and tests/interop/node_modules is missing")
    d = os.path.abspath(os.environ.get("CORONET_INTEROP_NODE_DIR") or os.path.join(os.getcwd(), "node"))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(HERE, "package-lock.json"), "rb") as f:
        lock = f.read()
    want_ws = json.loads(lock)["packages"]["node_modules/ws"]["version"]
    # The epoll and uring variants may run at once: one installs, the other waits.
    with open(os.path.join(d, ".lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        installed = os.path.join(d, "node_modules", "ws", "package.json")
        stamp = os.path.join(d, "node_modules", ".coronet-lock")
        try:
            with open(installed) as f:
                have_ws = json.load(f).get("version")
            with open(stamp, "rb") as f:
                up_to_date = have_ws == want_ws and f.read() == lock
        except (OSError, ValueError):
            up_to_date = False
        if not up_to_date:
            shutil.copyfile(os.path.join(HERE, "package.json"), os.path.join(d, "package.json"))
            with open(os.path.join(d, "package-lock.json"), "wb") as f:
                f.write(lock)
            log(f"npm ci (ws {want_ws}) in {d} ...")
            cmd = [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts",
                   "--fetch-timeout=20000", "--fetch-retries=1"]
            try:
                r = subprocess.run(cmd, cwd=d, capture_output=True, timeout=NPM_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise Skip(f"npm ci did not finish in {NPM_TIMEOUT} s (registry unreachable?)")
            if r.returncode != 0:
                lines = (r.stderr or r.stdout).decode(errors="replace").strip().splitlines()
                key = [ln for ln in lines if re.search(r"\b(code|errno|network|request to)\b", ln)]
                raise Skip("npm ci failed (registry unreachable?): " + " | ".join((key or lines)[-4:]))
            with open(stamp, "wb") as f:
                f.write(lock)
    return node, os.path.join(d, "node_modules")


async def node_run(node, node_path, args):
    """Starts ws_peer.js with `args` (stdout and stderr piped)."""
    env = dict(os.environ, NODE_PATH=node_path)
    proc = await asyncio.create_subprocess_exec(
        node, os.path.join(HERE, "ws_peer.js"), *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    return proc


async def communicate(proc, what, timeout):
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise Failure(f"{what}: no exit within {timeout} s")
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


# ---------------------------------------------------------------------------------------------
# permessage-deflate as the peer sees it


def negotiated(label, answer, params):
    """Logs (and keeps for the summary) what one connection agreed on, as the peer saw it."""
    line = f"{label}: answer {answer!r}" + (f", peer's view {params}" if params else "")
    NEGOTIATED.append(line)
    log(f"negotiated: {line}")


def websockets_deflate(ws):
    """The PerMessageDeflate extension of a websockets connection, or None."""
    from websockets.extensions.permessage_deflate import PerMessageDeflate
    found = [e for e in ws.extensions if isinstance(e, PerMessageDeflate)]
    return found[0] if found else None


def websockets_params(ext, peer_is_client):
    """A websockets PerMessageDeflate's local/remote settings in RFC 7692 terms."""
    remote, local = ("server", "client") if peer_is_client else ("client", "server")
    return {f"{remote}_max_window_bits": ext.remote_max_window_bits,
            f"{remote}_no_context_takeover": ext.remote_no_context_takeover,
            f"{local}_max_window_bits": ext.local_max_window_bits,
            f"{local}_no_context_takeover": ext.local_no_context_takeover}


def check_params(label, params, expect):
    for k, v in (expect or {}).items():
        check(params.get(k) == v, f"{label}: {k} is {params.get(k)!r}, wanted {v!r} ({params})")


def count_compressed(ext):
    """Counts the messages reaching websockets' extension `ext` with RSV1 set (compressed)."""
    seen = {"messages": 0}
    decode = ext.decode

    def counting(frame, *, max_size=None):
        if frame.rsv1:
            seen["messages"] += 1
        return decode(frame, max_size=max_size)

    ext.decode = counting
    return seen


def json_like(i):
    """A JSON-like message of about 700 bytes; repeated, it makes context takeover matter."""
    items = [{"sku": f"item-{k}", "qty": k, "price": 9.99, "tags": ["a", "b"]} for k in range(10)]
    return json.dumps({"type": "update", "room": "lobby", "seq": i % 4,
                       "user": {"id": 4242, "name": "coronet"}, "items": items})


# ---------------------------------------------------------------------------------------------
# python websockets exchanges (either direction)


async def websockets_echo(ws, label, msg, what, seen=None, expect_rsv1=None):
    """Sends `msg` (a list: fragments), checks the echo. With `seen` (count_compressed):
    expect_rsv1 True -> a text echo of MUST_COMPRESS bytes or more must arrive compressed,
    False -> no echo may arrive compressed."""
    before = seen["messages"] if seen else 0
    await asyncio.wait_for(ws.send(msg), STEP_TIMEOUT)
    got = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
    want = msg
    if isinstance(msg, list):
        want = "".join(msg) if isinstance(msg[0], str) else b"".join(msg)
    check(type(got) is type(want) and got == want,
          f"{label} {what}: sent {describe(want)}, got {describe(got)}"
          + ("" if type(got) is not type(want) else " (content differs)"))
    if seen is not None:
        compressed = seen["messages"] > before
        if expect_rsv1 is True and isinstance(want, str) and len(want.encode()) >= MUST_COMPRESS:
            check(compressed, f"{label} {what}: the echo arrived uncompressed (no RSV1)")
        if expect_rsv1 is False:
            check(not compressed, f"{label} {what}: the echo arrived compressed")


async def websockets_exchange(ws, label, sizes, fragments, seen, expect_rsv1):
    """The messages of every websockets check: sizes, fragments, a repeated JSON-like series."""
    for n in sizes:
        await websockets_echo(ws, label, make_text(n), f"text {n} B", seen, expect_rsv1)
        await websockets_echo(ws, label, make_binary(n, n), f"binary {n} B", seen, expect_rsv1)
        log(f"ok: {label} text + binary {n} B")
    await websockets_echo(ws, label, fragments[0], "fragmented text", seen, expect_rsv1)
    await websockets_echo(ws, label, fragments[1], "fragmented binary", seen, expect_rsv1)
    log(f"ok: {label} fragmented text and binary")
    series = [json_like(i) for i in range(60)]
    for m in series:
        await asyncio.wait_for(ws.send(m), STEP_TIMEOUT)
    for i, m in enumerate(series):
        got = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
        check(got == m, f"{label}: repeated message {i} differs ({describe(got)} vs {describe(m)})")
    log(f"ok: {label} 60 repeated JSON-like messages")


# ---------------------------------------------------------------------------------------------
# Their client -> our server


async def websockets_client(url, ctx, mode, sizes=SIZES, factory=None, expect=None,
                            expect_rsv1=True):
    """python websockets against our server. mode "compressed": it offers (its default, or
    `factory`) and permessage-deflate must be agreed with the `expect`ed parameters (its view);
    "uncompressed": it offers and nothing may be agreed."""
    import websockets
    label = f"python websockets client {url.split(':')[0]}:// {mode}"
    kw = {"extensions": [factory]} if factory is not None else {}
    async with websockets.connect(url, compression="deflate", max_size=None, ssl=ctx,
                                  open_timeout=STEP_TIMEOUT, close_timeout=STEP_TIMEOUT,
                                  ping_interval=None, **kw) as ws:
        ext = websockets_deflate(ws)
        answer = ws.response_headers.get("Sec-WebSocket-Extensions")
        seen = None
        if mode == "uncompressed":
            check(ext is None and answer is None and ws.extensions == [],
                  f"{label}: negotiated {answer!r} {ws.extensions}")
            negotiated(label, answer, None)
        else:
            check(ext is not None, f"{label}: permessage-deflate not agreed (answer {answer!r})")
            params = websockets_params(ext, peer_is_client=True)
            negotiated(label, answer, params)
            check_params(label, params, expect)
            seen = count_compressed(ext)

        fragments = ([make_text(300), make_text(0), make_text(70000), "end"],
                     [make_binary(5, 1), make_binary(130000, 2), make_binary(1, 3)])
        await websockets_exchange(ws, label, sizes, fragments, seen, expect_rsv1)

        pong = await asyncio.wait_for(ws.ping(b"websockets ping"), STEP_TIMEOUT)
        await asyncio.wait_for(pong, STEP_TIMEOUT)
        log(f"ok: {label} ping/pong")

        burst = [make_text(i * 53) if i % 2 == 0 else make_binary(i * 53, i) for i in range(200)]
        for m in burst:
            await asyncio.wait_for(ws.send(m), STEP_TIMEOUT)
        for i, m in enumerate(burst):
            got = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
            check(got == m, f"{label}: burst message {i} differs ({describe(got)} vs {describe(m)})")
        log(f"ok: {label} 200 pipelined messages")
        if seen is not None:
            log(f"ok: {label} {seen['messages']} messages from our server arrived compressed")

        await asyncio.wait_for(ws.close(4001, "websockets says bye"), STEP_TIMEOUT)
        check(ws.close_code == 4001, f"{label}: server echoed close code {ws.close_code}, wanted 4001")
        log(f"ok: {label} close 4001 echoed")


async def aiohttp_client(url, ctx, mode, sizes=SIZES):
    """aiohttp against our server; it offers permessage-deflate (compress=15) in both modes."""
    import aiohttp
    label = f"aiohttp client {url.split(':')[0]}:// {mode}"
    timeout = aiohttp.ClientTimeout(total=None, connect=STEP_TIMEOUT, sock_read=STEP_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        ws = await asyncio.wait_for(
            session.ws_connect(url, max_msg_size=0, autoping=False, ssl=ctx,
                               compress=15, receive_timeout=STEP_TIMEOUT),
            STEP_TIMEOUT)
        answer = ws._response.headers.get("Sec-WebSocket-Extensions")
        negotiated(label, answer, {"compress": ws.compress})
        if mode == "uncompressed":
            check(ws.compress == 0 and answer is None, f"{label}: negotiated {answer!r}")
        else:
            check(ws.compress == 15 and answer is not None and
                  answer.lower().startswith("permessage-deflate"),
                  f"{label}: compress={ws.compress}, answer {answer!r}")

        async def recv():
            return await asyncio.wait_for(ws.receive(), STEP_TIMEOUT)

        for n in sizes:
            t = make_text(n)
            await asyncio.wait_for(ws.send_str(t), STEP_TIMEOUT)
            m = await recv()
            check(m.type == aiohttp.WSMsgType.TEXT and m.data == t,
                  f"{label} text {n} B: got {m.type} {describe(m.data) if m.data is not None else ''}")
            b = make_binary(n, n)
            await asyncio.wait_for(ws.send_bytes(b), STEP_TIMEOUT)
            m = await recv()
            check(m.type == aiohttp.WSMsgType.BINARY and m.data == b,
                  f"{label} binary {n} B: got {m.type} {describe(m.data) if m.data is not None else ''}")
            log(f"ok: {label} text + binary {n} B")
        for i in range(60):
            await asyncio.wait_for(ws.send_str(json_like(i)), STEP_TIMEOUT)
        for i in range(60):
            m = await recv()
            check(m.type == aiohttp.WSMsgType.TEXT and m.data == json_like(i),
                  f"{label}: repeated message {i}: got {m.type}")
        log(f"ok: {label} 60 repeated JSON-like messages")

        await asyncio.wait_for(ws.ping(b"aiohttp ping"), STEP_TIMEOUT)
        m = await recv()
        check(m.type == aiohttp.WSMsgType.PONG and m.data == b"aiohttp ping",
              f"{label}: wanted a pong, got {m.type} {m.data!r}")
        log(f"ok: {label} ping/pong")

        await asyncio.wait_for(ws.close(code=4001, message=b"aiohttp says bye"), STEP_TIMEOUT)
        check(ws.close_code == 4001, f"{label}: server echoed close code {ws.close_code}, wanted 4001")
        log(f"ok: {label} close 4001 echoed")


def node_mode_args(deflate, quick):
    return ["--deflate", deflate] + (["--quick"] if quick else [])


async def node_client(node, node_path, url, ca, deflate="off", quick=False):
    """ws_peer.js client against our server (deflate: off, on, small or refused, see there)."""
    args = ["client", url] + (["--ca", ca] if ca else []) + node_mode_args(deflate, quick)
    proc = await node_run(node, node_path, args)
    code, out, err = await communicate(proc, "node ws client", 4 * STEP_TIMEOUT)
    sys.stdout.write(out)
    NEGOTIATED.extend(ln[len("negotiated: "):] for ln in out.splitlines()
                      if ln.startswith("negotiated: "))
    check(code == 0 and "PASS" in out, f"node ws client {url} --deflate {deflate}: exit {code}\n{err}")


# ---------------------------------------------------------------------------------------------
# Our client -> their server


async def drive_ws_client(label, ws_client, backend, url, ca, server_done, extra=()):
    """Runs `ws_client URL --echo` and waits for both it and the server side's verdict."""
    cmd = [ws_client, url, "--echo", "--backend", backend, *extra]
    if ca:
        cmd += ["--cafile", ca]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        verdict = await asyncio.wait_for(asyncio.shield(server_done), 4 * STEP_TIMEOUT)
    except asyncio.TimeoutError:
        verdict = "the server side did not finish in time"
    except Exception as e:  # the server side failed
        verdict = f"{type(e).__name__}: {e}"
    code, out, err = await communicate(proc, f"{label}: ws_client", STEP_TIMEOUT)
    check(verdict is None, f"{label}: {verdict}\nws_client exit {code}, stderr: {err}")
    check(code == 0, f"{label}: ws_client exit code {code}, stderr: {err}")
    log(f"ok: {label}: ws_client exits 0")


def our_client_flags(mode):
    return ("--no-deflate",) if mode == "uncompressed" else ()


async def websockets_server_side(ws, label, sizes=SIZES, seen=None, expect_rsv1=None):
    """What the python server does with ws_client --echo; raises on a mismatch."""
    fragments = ([make_text(300), "", make_text(70000)],
                 [make_binary(7, 1), make_binary(90000, 2)])
    await websockets_exchange(ws, label, sizes, fragments, seen, expect_rsv1)
    pong = await asyncio.wait_for(ws.ping(b"server ping"), STEP_TIMEOUT)
    await asyncio.wait_for(pong, STEP_TIMEOUT)
    log(f"ok: {label} ping/pong")
    if seen is not None:
        log(f"ok: {label} {seen['messages']} messages from ws_client arrived compressed")
    await asyncio.wait_for(ws.close(1000, "done"), STEP_TIMEOUT)
    check(ws.close_code == 1000, f"{label}: client echoed close code {ws.close_code}, wanted 1000")
    log(f"ok: {label} close 1000 echoed")


async def websockets_server(ws_client, backend, ssl_ctx, ca, mode, sizes=SIZES):
    """A python websockets server with its default compression (it answers 12-bit windows both
    ways) driving ws_client --echo; "uncompressed" runs ws_client --no-deflate."""
    import websockets
    scheme = "wss" if ssl_ctx else "ws"
    label = f"ws_client --echo -> python websockets server {scheme}:// {mode}"
    done = asyncio.get_running_loop().create_future()

    async def handler(ws, path=None):
        if done.done():
            return
        try:
            offer = ws.request_headers.get("Sec-WebSocket-Extensions")
            answer = ws.response_headers.get("Sec-WebSocket-Extensions")
            ext = websockets_deflate(ws)
            seen = None
            if mode == "uncompressed":
                check(offer is None and ext is None, f"{label}: offered {offer!r}, agreed {answer!r}")
                negotiated(label, answer, None)
            else:
                check(ext is not None, f"{label}: not agreed: offer {offer!r}, answer {answer!r}")
                params = websockets_params(ext, peer_is_client=False)
                negotiated(label + f" (offer {offer!r})", answer, params)
                check_params(label, params, {"server_max_window_bits": 12, "client_max_window_bits": 12})
                seen = count_compressed(ext)
            await websockets_server_side(ws, label, sizes, seen, True)
            done.set_result(None)
        except Exception as e:
            if not done.done():
                done.set_exception(e)

    server = await websockets.serve(handler, "127.0.0.1", 0, compression="deflate", max_size=None,
                                    ssl=ssl_ctx, ping_interval=None, close_timeout=STEP_TIMEOUT)
    try:
        port = server.sockets[0].getsockname()[1]
        host = "localhost" if ssl_ctx else "127.0.0.1"
        extra = ("--ping",) if not ssl_ctx else ()  # our ping: websockets answers it
        await drive_ws_client(label, ws_client, backend, f"{scheme}://{host}:{port}/echo?x=1", ca,
                              done, extra + our_client_flags(mode))
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), STEP_TIMEOUT)


async def aiohttp_server_side(ws, label, sizes=SIZES):
    """What the aiohttp server does with ws_client --echo; raises on a mismatch."""
    import aiohttp

    async def recv():
        return await asyncio.wait_for(ws.receive(), STEP_TIMEOUT)

    for n in sizes:
        t = make_text(n)
        await asyncio.wait_for(ws.send_str(t), STEP_TIMEOUT)
        m = await recv()
        check(m.type == aiohttp.WSMsgType.TEXT and m.data == t,
              f"{label} text {n} B: got {m.type} {describe(m.data) if m.data is not None else ''}")
        b = make_binary(n, n)
        await asyncio.wait_for(ws.send_bytes(b), STEP_TIMEOUT)
        m = await recv()
        check(m.type == aiohttp.WSMsgType.BINARY and m.data == b,
              f"{label} binary {n} B: got {m.type} {describe(m.data) if m.data is not None else ''}")
        log(f"ok: {label} text + binary {n} B")
    for i in range(60):
        await asyncio.wait_for(ws.send_str(json_like(i)), STEP_TIMEOUT)
    for i in range(60):
        m = await recv()
        check(m.type == aiohttp.WSMsgType.TEXT and m.data == json_like(i),
              f"{label}: repeated message {i}: got {m.type}")
    log(f"ok: {label} 60 repeated JSON-like messages")
    await asyncio.wait_for(ws.ping(b"aiohttp server ping"), STEP_TIMEOUT)
    m = await recv()
    check(m.type == aiohttp.WSMsgType.PONG and m.data == b"aiohttp server ping",
          f"{label}: wanted a pong, got {m.type} {m.data!r}")
    log(f"ok: {label} ping/pong")
    await asyncio.wait_for(ws.close(code=1000, message=b"done"), STEP_TIMEOUT)
    check(ws.close_code == 1000, f"{label}: client echoed close code {ws.close_code}, wanted 1000")
    log(f"ok: {label} close 1000 echoed")


async def aiohttp_server(ws_client, backend, ssl_ctx, ca, mode, sizes=SIZES):
    """An aiohttp server accepting permessage-deflate (compress=True) driving ws_client --echo;
    "uncompressed" runs ws_client --no-deflate."""
    from aiohttp import web
    scheme = "wss" if ssl_ctx else "ws"
    label = f"ws_client --echo -> aiohttp server {scheme}:// {mode}"
    done = asyncio.get_running_loop().create_future()

    async def handler(request):
        # autoping off: the pong to the server's ping must reach receive() to be checked.
        ws = web.WebSocketResponse(max_msg_size=0, autoping=False, compress=True,
                                   timeout=STEP_TIMEOUT, receive_timeout=STEP_TIMEOUT)
        await ws.prepare(request)
        if done.done():
            await ws.close()
            return ws
        try:
            offer = request.headers.get("Sec-WebSocket-Extensions")
            answer = ws.headers.get("Sec-WebSocket-Extensions")
            negotiated(label + f" (offer {offer!r})", answer, {"compress": ws.compress})
            if mode == "uncompressed":
                check(offer is None and not ws.compress, f"{label}: ws_client offered {offer!r}")
            else:
                check(ws.compress == 15 and answer is not None,
                      f"{label}: offer {offer!r}, compress={ws.compress}, answer {answer!r}")
            check(request.query.get("x") == "1", f"{label}: query lost: {request.path_qs}")
            await aiohttp_server_side(ws, label, sizes)
            done.set_result(None)
        except Exception as e:
            if not done.done():
                done.set_exception(e)
        return ws

    app = web.Application()
    app.router.add_get("/echo", handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_ctx)
        await site.start()
        port = runner.addresses[0][1]
        host = "localhost" if ssl_ctx else "127.0.0.1"
        await drive_ws_client(label, ws_client, backend, f"{scheme}://{host}:{port}/echo?x=1", ca,
                              done, our_client_flags(mode))
    finally:
        await asyncio.wait_for(runner.cleanup(), STEP_TIMEOUT)


async def node_server(node, node_path, ws_client, backend, tls, ca, deflate="off", quick=False):
    """ws_peer.js server driving ws_client --echo (deflate: off, on, small or refused; with
    off and refused ws_client runs with --no-deflate)."""
    scheme = "wss" if tls else "ws"
    label = f"ws_client --echo -> node ws server {scheme}:// --deflate {deflate}"
    args = ["server"] + (["--cert", tls[0], "--key", tls[1]] if tls else []) + \
        node_mode_args(deflate, quick)
    proc = await node_run(node, node_path, args)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)).decode()
        m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m is None:
            rest = await asyncio.wait_for(proc.stderr.read(), START_TIMEOUT)
            raise Failure(f"node ws server did not start: {line!r} {rest.decode(errors='replace')}")
        port = int(m.group(1))
        host = "localhost" if tls else "127.0.0.1"

        async def node_verdict():
            code, out, err = await communicate(proc, "node ws server", 4 * STEP_TIMEOUT)
            sys.stdout.write(out)
            NEGOTIATED.extend(ln[len("negotiated: "):] for ln in out.splitlines()
                              if ln.startswith("negotiated: "))
            if code != 0 or "PASS" not in out:
                return f"node ws server exit {code}: {out.strip().splitlines()[-1:]} {err}"
            return None

        verdict = asyncio.ensure_future(node_verdict())
        done = asyncio.get_running_loop().create_future()
        verdict.add_done_callback(
            lambda f: done.set_exception(f.exception()) if f.exception()
            else (done.set_result(None) if f.result() is None else done.set_exception(Failure(f.result()))))
        flags = ("--no-deflate",) if deflate in ("off", "refused") else ()
        await drive_ws_client(label, ws_client, backend, f"{scheme}://{host}:{port}/", ca, done,
                              flags)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# ---------------------------------------------------------------------------------------------


def stop_with_sigterm(proc, name):
    if proc.poll() is not None:
        raise Failure(f"the {name} ws_echo_server exited early ({proc.returncode}): "
                      f"{proc.stderr.read().decode(errors='replace')}")
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Failure(f"{name} ws_echo_server still running {START_TIMEOUT} s after SIGTERM")
    if code != 0:
        raise Failure(f"{name} ws_echo_server exit code {code} after SIGTERM: "
                      f"{proc.stderr.read().decode(errors='replace')}")


async def main_async(server_bin, ws_client, backend, d, openssl):
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    ca_pem, cert, key = make_certs(d, openssl)
    client_ctx = ssl.create_default_context(cafile=ca_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)

    node_skip = None
    try:
        node, node_path = node_setup()
    except Skip as e:
        node_skip = str(e)
        log(f"note: node checks left out: {node_skip}")

    servers = {}  # (deflate, tls) -> (process, port)
    try:
        for deflate in (True, False):
            for tls in (False, True):
                servers[deflate, tls] = start_echo_server(server_bin, backend,
                                                          (cert, key) if tls else None, deflate)
        started = time.monotonic()

        def urls(deflate):
            return (f"ws://127.0.0.1:{servers[deflate, False][1]}/",
                    f"wss://127.0.0.1:{servers[deflate, True][1]}/chat")

        # Their clients -> our server, compressed. 16 MiB over ws://, up to 64 KiB over wss://.
        ws_url, wss_url = urls(True)
        log(f"ws_echo_server ({backend}, deflate) on {ws_url} and {wss_url}")
        default_view = {"server_max_window_bits": 15, "client_max_window_bits": 15,
                        "server_no_context_takeover": False, "client_no_context_takeover": False}
        await websockets_client(ws_url, None, "compressed", SIZES, expect=default_view)
        await websockets_client(wss_url, client_ctx, "compressed", QUICK_SIZES, expect=default_view)
        small = ClientPerMessageDeflateFactory(
            server_no_context_takeover=True, client_no_context_takeover=True,
            server_max_window_bits=9, client_max_window_bits=9)
        await websockets_client(ws_url, None, "compressed (no takeover, 9-bit windows)",
                                QUICK_SIZES, small,
                                {"server_max_window_bits": 9, "client_max_window_bits": 9,
                                 "server_no_context_takeover": True,
                                 "client_no_context_takeover": True})
        # zlib cannot compress with an 8-bit window: our server agrees to 8 and sends plain.
        eight = ClientPerMessageDeflateFactory(server_max_window_bits=8)
        await websockets_client(ws_url, None, "compressed (server_max_window_bits=8)",
                                QUICK_SIZES, eight, {"server_max_window_bits": 8},
                                expect_rsv1=False)
        await aiohttp_client(ws_url, None, "compressed", SIZES)
        await aiohttp_client(wss_url, client_ctx, "compressed", QUICK_SIZES)
        if node_skip is None:
            await node_client(node, node_path, ws_url, None, "on")
            await node_client(node, node_path, wss_url, ca_pem, "on", quick=True)
            await node_client(node, node_path, ws_url, None, "small", quick=True)

        # Their clients (offering) -> our server --no-deflate. 16 MiB over wss:// only.
        ws_url, wss_url = urls(False)
        log(f"ws_echo_server ({backend}, --no-deflate) on {ws_url} and {wss_url}")
        await websockets_client(ws_url, None, "uncompressed", QUICK_SIZES)
        await websockets_client(wss_url, client_ctx, "uncompressed", SIZES)
        await aiohttp_client(ws_url, None, "uncompressed", QUICK_SIZES)
        await aiohttp_client(wss_url, client_ctx, "uncompressed", SIZES)
        if node_skip is None:
            await node_client(node, node_path, ws_url, None, "refused", quick=True)
            await node_client(node, node_path, wss_url, ca_pem, "refused")

        # Our client -> their servers, compressed (16 MiB over ws://), then --no-deflate
        # (16 MiB over wss://).
        await websockets_server(ws_client, backend, None, None, "compressed", SIZES)
        await websockets_server(ws_client, backend, server_ctx, ca_pem, "compressed", QUICK_SIZES)
        await aiohttp_server(ws_client, backend, None, None, "compressed", SIZES)
        await aiohttp_server(ws_client, backend, server_ctx, ca_pem, "compressed", QUICK_SIZES)
        if node_skip is None:
            await node_server(node, node_path, ws_client, backend, None, None, "on")
            await node_server(node, node_path, ws_client, backend, (cert, key), ca_pem, "on",
                              quick=True)
            await node_server(node, node_path, ws_client, backend, None, None, "small",
                              quick=True)
        await websockets_server(ws_client, backend, None, None, "uncompressed", QUICK_SIZES)
        await websockets_server(ws_client, backend, server_ctx, ca_pem, "uncompressed", SIZES)
        await aiohttp_server(ws_client, backend, None, None, "uncompressed", QUICK_SIZES)
        await aiohttp_server(ws_client, backend, server_ctx, ca_pem, "uncompressed", SIZES)
        if node_skip is None:
            await node_server(node, node_path, ws_client, backend, None, None, "refused",
                              quick=True)
            await node_server(node, node_path, ws_client, backend, (cert, key), ca_pem,
                              "refused")

        for (deflate, tls), (proc, _) in servers.items():
            stop_with_sigterm(proc, ("wss" if tls else "ws") + ("" if deflate else " --no-deflate"))
        log("ok: SIGTERM, every ws_echo_server exits 0")
        log(f"checks took {time.monotonic() - started:.1f} s; negotiated, as each peer saw it:")
        for line in NEGOTIATED:
            log(f"  {line}")
    finally:
        for proc, _ in servers.values():
            stop(proc)
    return node_skip


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    server_bin, ws_client, backend = sys.argv[1:4]
    openssl = shutil.which("openssl")
    if openssl is None:
        log("SKIP: the openssl command is not installed (Debian package: openssl)")
        return SKIP
    try:
        import aiohttp  # noqa: F401
        import websockets  # noqa: F401
    except ImportError as e:
        log(f"SKIP: {e} (Debian packages python3-websockets, python3-aiohttp)")
        return SKIP
    with tempfile.TemporaryDirectory(prefix="coronet-ws-interop-") as d:
        try:
            node_skip = asyncio.run(main_async(server_bin, ws_client, backend, d, openssl))
        except Skip as e:
            log(f"SKIP: {e}")
            return SKIP
    if node_skip is not None:
        log(f"SKIP: the python checks passed; node checks left out: {node_skip}")
        return SKIP
    log("PASS")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # any error is a failure with its message (SKIP is a return value)
        print(f"FAIL: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
