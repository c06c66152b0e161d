#!/usr/bin/python3
"""http_ws interop: real WebSocket clients against the upgrade routes of examples/http_ws_echo.

    http_ws_interop.py PATH/TO/http_ws_echo BACKEND(epoll|uring)

One http_ws_echo serves plain HTTP + ws://, a second one HTTPS + wss:// (a CA and a
localhost/127.0.0.1 certificate made by the openssl CLI). Against them:
  - plain HTTP (Python's http.client): GET / and a plain GET /echo are ordinary pages; GET
    /echo/NAME without an upgrade is 426 with `Upgrade: websocket`; an upgrade with
    Sec-WebSocket-Version 8 is 426 with `Sec-WebSocket-Version: 13`; one without a key is 400;
  - python websockets (10.x): the subprotocol echo.v1 is chosen, text and binary messages of
    0 B to 1 MiB and fragmented ones echo unchanged, ping/pong, close(4001) is echoed; /echo/NAME
    answers "hello NAME" (the path parameter reached the session); over ws:// and wss://;
  - a raw socket writes the upgrade request and a first masked frame in one sendall: the echo
    of that frame follows the 101;
  - node `ws` (tests/interop/ws_peer.js client, unchanged): its whole echo suite (up to 16 MiB,
    fragments with pings between them, a pipelined burst, close 4001) over ws:// and wss://;
  - SIGTERM with a websockets session open: the session is closed with 1001 (going away) and
    the server exits 0.
Compression is off: examples/http_ws_echo leaves permessage-deflate off (the bridge's default);
ws_echo_interop.py covers compressed interop.

The node setup (`ws` per package-lock.json, npm ci into $CORONET_INTEROP_NODE_DIR when
tests/interop/node_modules is missing), the certificates and the process helpers are those of
ws_echo_interop.py, imported from it. Every step has a deadline. Exit 0: pass, 1: fail, 77:
skipped (no openssl CLI, no python websockets, io_uring unavailable, or node `ws` unavailable
after every python check passed).
"""

import asyncio
import base64
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # a test run leaves no __pycache__ in the source tree
import ws_echo_interop as base  # noqa: E402  (node setup, certificates, process helpers)

SKIP = 77
STEP_TIMEOUT = 60
START_TIMEOUT = 15
SIZES = [0, 125, 126, 64 * 1024, 1024 * 1024]
Failure, Skip, check, log = base.Failure, base.Skip, base.check, base.log


def start_server(binary, backend, tls=None):
    """Starts http_ws_echo; returns (process, port). Raises Skip without io_uring."""
    cmd = [binary, "--port", "0", "--backend", backend]
    if tls is not None:
        cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = base.read_line(proc, time.monotonic() + START_TIMEOUT)
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
        raise Failure(f"http_ws_echo did not start: {line!r} {err}")
    return proc, int(m.group(1))


# ---------------------------------------------------------------------------------------------
# Plain HTTP on the same routes


def http_get(port, path, headers=None, ctx=None):
    if ctx is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=STEP_TIMEOUT)
    else:
        conn = http.client.HTTPSConnection("localhost", port, timeout=STEP_TIMEOUT, context=ctx)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def plain_http(port, ctx, label):
    status, _, body = http_get(port, "/", ctx=ctx)
    check(status == 200 and b"http_ws_echo" in body, f"{label} GET /: {status} {body!r}")
    status, _, body = http_get(port, "/echo", ctx=ctx)
    check(status == 200 and b"WebSocket echo endpoint" in body,
          f"{label} plain GET /echo: {status} {body!r}")
    status, hdrs, _ = http_get(port, "/echo/bob", ctx=ctx)
    check(status == 426 and "websocket" in hdrs.get("upgrade", "").lower(),
          f"{label} plain GET /echo/bob: {status} {hdrs}")
    key = base64.b64encode(os.urandom(16)).decode()
    up = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key}
    status, hdrs, _ = http_get(port, "/echo", dict(up, **{"Sec-WebSocket-Version": "8"}), ctx)
    check(status == 426 and hdrs.get("sec-websocket-version") == "13",
          f"{label} version 8: {status} {hdrs}")
    del up["Sec-WebSocket-Key"]
    status, _, body = http_get(port, "/echo", dict(up, **{"Sec-WebSocket-Version": "13"}), ctx)
    check(status == 400, f"{label} no key: {status} {body!r}")
    log(f"ok: {label} plain GET pages, 426 without upgrade, 426 for version 8, 400 without key")


# ---------------------------------------------------------------------------------------------
# python websockets


async def websockets_client(base_url, ctx, label):
    import websockets
    async with websockets.connect(base_url + "/echo", subprotocols=["other", "echo.v1"],
                                  compression=None, max_size=None, ssl=ctx,
                                  open_timeout=STEP_TIMEOUT, close_timeout=STEP_TIMEOUT,
                                  ping_interval=None) as ws:
        check(ws.subprotocol == "echo.v1", f"{label}: subprotocol {ws.subprotocol!r}")

        async def echo(msg, what):
            await asyncio.wait_for(ws.send(msg), STEP_TIMEOUT)
            got = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
            want = msg
            if isinstance(msg, list):
                want = "".join(msg) if isinstance(msg[0], str) else b"".join(msg)
            check(type(got) is type(want) and got == want,
                  f"{label} {what}: sent {base.describe(want)}, got {base.describe(got)}")

        for n in SIZES:
            await echo(base.make_text(n), f"text {n} B")
            await echo(base.make_binary(n, n), f"binary {n} B")
        await echo([base.make_text(300), "", base.make_text(70000)], "fragmented text")
        await echo([base.make_binary(7, 1), base.make_binary(90000, 2)], "fragmented binary")
        pong = await asyncio.wait_for(ws.ping(b"websockets ping"), STEP_TIMEOUT)
        await asyncio.wait_for(pong, STEP_TIMEOUT)
        await asyncio.wait_for(ws.close(4001, "websockets says bye"), STEP_TIMEOUT)
        check(ws.close_code == 4001, f"{label}: close code {ws.close_code}, wanted 4001")
    log(f"ok: {label} /echo: subprotocol echo.v1, echoes 0 B..1 MiB, fragments, ping, close 4001")

    async with websockets.connect(base_url + "/echo/alice", compression=None, ssl=ctx,
                                  open_timeout=STEP_TIMEOUT, close_timeout=STEP_TIMEOUT,
                                  ping_interval=None) as ws:
        await asyncio.wait_for(ws.send("first"), STEP_TIMEOUT)
        hello = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
        got = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
        check(hello == "hello alice" and got == "first", f"{label} /echo/alice: {hello!r} {got!r}")
    check(ws.close_code == 1000, f"{label} /echo/alice: close code {ws.close_code}")
    log(f"ok: {label} /echo/alice: the path parameter reached the session")


# ---------------------------------------------------------------------------------------------
# The first frame in the same write as the upgrade request


def first_frame_with_request(port, label):
    key = base64.b64encode(os.urandom(16)).decode()
    payload = "sent with the request".encode()
    mask = os.urandom(4)
    frame = bytes([0x81, 0x80 | len(payload)]) + mask + \
        bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    request = (f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT) as s:
        s.sendall(request + frame)
        buf = b""
        deadline = time.monotonic() + STEP_TIMEOUT
        want = 2 + len(payload)
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0 and len(buf) >= end + 4 + want:
                break
            check(time.monotonic() < deadline, f"{label}: no 101 and echo in time: {buf!r}")
            chunk = s.recv(4096)
            check(chunk, f"{label}: connection closed: {buf!r}")
            buf += chunk
        head, rest = buf[:end].decode(), buf[end + 4:]
        check(head.startswith("HTTP/1.1 101"), f"{label}: {head!r}")
        check(rest[:want] == bytes([0x81, len(payload)]) + payload,
              f"{label}: the first frame's echo is {rest[:want]!r}")
    log(f"ok: {label} a frame in the same write as the upgrade request is echoed")


# ---------------------------------------------------------------------------------------------
# node `ws` (ws_peer.js client mode: the whole echo suite)


async def node_client(node, node_path, url, ca, label):
    args = ["client", url] + (["--ca", ca] if ca else [])
    proc = await base.node_run(node, node_path, args)
    code, out, err = await base.communicate(proc, label, 4 * STEP_TIMEOUT)
    sys.stdout.write(out)
    check(code == 0 and "PASS" in out,
          f"{label}: exit {code}: {out.strip().splitlines()[-1:]} {err}")
    log(f"ok: {label}")


# ---------------------------------------------------------------------------------------------
# Graceful shutdown


async def shutdown_going_away(proc, port, label):
    import websockets
    async with websockets.connect(f"ws://127.0.0.1:{port}/echo", compression=None,
                                  open_timeout=STEP_TIMEOUT, close_timeout=STEP_TIMEOUT,
                                  ping_interval=None) as ws:
        await asyncio.wait_for(ws.send("before"), STEP_TIMEOUT)
        check(await asyncio.wait_for(ws.recv(), STEP_TIMEOUT) == "before", f"{label}: no echo")
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
            raise Failure(f"{label}: a message after SIGTERM")
        except websockets.exceptions.ConnectionClosed as e:
            check(e.code == 1001, f"{label}: closed with {e.code} {e.reason!r}, wanted 1001")
    code = await asyncio.get_running_loop().run_in_executor(None, proc.wait, START_TIMEOUT)
    check(code == 0, f"{label}: exit code {code} after SIGTERM: "
                     f"{proc.stderr.read().decode(errors='replace')}")
    log(f"ok: {label} SIGTERM closes a live session with 1001 and the server exits 0")


async def main_async(binary, backend, d, openssl):
    ca_pem, cert, key = base.make_certs(d, openssl)
    client_ctx = ssl.create_default_context(cafile=ca_pem)
    node_skip = None
    try:
        node, node_path = base.node_setup()
    except Skip as e:
        node_skip = str(e)
        log(f"note: node checks left out: {node_skip}")

    plain, tls = None, None
    try:
        plain, port = start_server(binary, backend)
        tls, tls_port = start_server(binary, backend, (cert, key))
        log(f"http_ws_echo ({backend}) on 127.0.0.1:{port} and (TLS) 127.0.0.1:{tls_port}")
        plain_http(port, None, "http://")
        plain_http(tls_port, client_ctx, "https://")
        await websockets_client(f"ws://127.0.0.1:{port}", None, "python websockets ws://")
        await websockets_client(f"wss://localhost:{tls_port}", client_ctx,
                                "python websockets wss://")
        first_frame_with_request(port, "raw socket")
        if node_skip is None:
            await node_client(node, node_path, f"ws://127.0.0.1:{port}/echo", None,
                              "node ws client ws:// /echo")
            await node_client(node, node_path, f"wss://127.0.0.1:{tls_port}/echo", ca_pem,
                              "node ws client wss:// /echo")
        for proc, name in ((plain, "http"), (tls, "https")):
            if proc.poll() is not None:
                raise Failure(f"the {name} http_ws_echo exited early ({proc.returncode}): "
                              f"{proc.stderr.read().decode(errors='replace')}")
        await shutdown_going_away(plain, port, "python websockets")
        tls.send_signal(signal.SIGTERM)
        code = tls.wait(timeout=START_TIMEOUT)
        check(code == 0, f"https http_ws_echo exit code {code} after SIGTERM")
    finally:
        base.stop(plain)
        base.stop(tls)
    return node_skip


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    binary, backend = sys.argv[1:3]
    openssl = shutil.which("openssl")
    if openssl is None:
        log("SKIP: the openssl command is not installed (Debian package: openssl)")
        return SKIP
    try:
        import websockets  # noqa: F401
    except ImportError as e:
        log(f"SKIP: {e} (Debian package python3-websockets)")
        return SKIP
    with tempfile.TemporaryDirectory(prefix="coronet-http-ws-interop-") as d:
        try:
            node_skip = asyncio.run(main_async(binary, backend, d, openssl))
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
