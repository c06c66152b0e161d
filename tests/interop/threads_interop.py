#!/usr/bin/python3
"""--threads N on the example servers: connections spread over the loops, and a signal drains
every loop.

    threads_interop.py PATH/TO/http_hello PATH/TO/ws_echo_server BACKEND(epoll|uring)

For each server, started with --threads 2 --port 0 (one SO_REUSEPORT listener per loop):
  - 64 clients connect at once and each makes one exchange (http_hello: a keep-alive GET /,
    whose "Hello, World!" must come back; ws_echo_server: an opening handshake and a masked
    text frame, whose echo must come back) and stays connected;
  - SIGTERM then: every loop logs "shutting down with N connections open" on its own. There
    must be one such line per loop, each with N > 0 (the kernel spread the connections over
    both loops), and the N must add up to 64;
  - every client then sees the graceful end (http: the server closes the idle keep-alive
    connection; ws: a close frame with code 1001 "going away") and the server exits 0.
While http_hello --threads 2 holds its port, http_hello with the default single loop must
refuse the same port (exit 1, "cannot listen"): one loop binds a plain listener, so it never
silently shares a port that is in use.
Every step has a deadline. Exit 0: pass, 1: fail, 77: skipped (io_uring unavailable).
"""

import base64
import os
import re
import signal
import socket
import subprocess
import sys
import time

CONNS = 64
LOOPS = 2
DEADLINE = 20.0


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def start(path, backend):
    proc = subprocess.Popen([path, "--port", "0", "--threads", str(LOOPS), "--backend", backend],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"listening on .*:(\d+)", line)
    if not m:
        proc.kill()
        err = proc.stderr.read()
        if backend == "uring" and "io_uring" in err:
            print("skipped: " + err.strip())
            sys.exit(77)
        fail("%s did not start: %r %r" % (path, line, err))
    return proc, int(m.group(1))


def recv_until(sock, pred, what):
    data = b""
    end = time.monotonic() + DEADLINE
    while not pred(data):
        sock.settimeout(max(0.1, end - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            fail("timed out waiting for " + what)
        if not chunk:
            return data, True
        data += chunk
    return data, False


def http_exchange(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data, _ = recv_until(s, lambda d: d.endswith(b"Hello, World!"), "the http answer")
    if not data.startswith(b"HTTP/1.1 200"):
        fail("bad http answer %r" % data[:80])
    return s


def ws_exchange(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    data, _ = recv_until(s, lambda d: b"\r\n\r\n" in d, "the 101")
    if not data.startswith(b"HTTP/1.1 101"):
        fail("bad handshake answer %r" % data[:80])
    payload = b"hello"
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    rest = data.split(b"\r\n\r\n", 1)[1]
    echo, _ = recv_until(s, lambda d: len(rest + d) >= 2 + len(payload), "the echo")
    if (rest + echo)[:2 + len(payload)] != bytes([0x81, len(payload)]) + payload:
        fail("bad echo %r" % (rest + echo))
    return s


def check_http_end(s):
    _, closed = recv_until(s, lambda d: False, "the server to close an idle connection")
    if not closed:
        fail("http connection not closed")


def check_ws_end(s):
    data, _ = recv_until(s, lambda d: len(d) >= 4, "a close frame")
    if data[0] != 0x88 or int.from_bytes(data[2:4], "big") != 1001:
        fail("expected close 1001, got %r" % data[:8])


def refuse_port_in_use(path, backend, port):
    try:
        r = subprocess.run([path, "--port", str(port), "--backend", backend],
                           capture_output=True, text=True, timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        fail("a single-loop server joined port %d in use instead of refusing it" % port)
    if r.returncode != 1 or "cannot listen" not in r.stderr:
        fail("a single-loop server on port %d in use: exit %d, %r" % (port, r.returncode,
                                                                       r.stderr))
    print("single loop on a port in use: refused (%s)" % r.stderr.strip())


def run(path, backend, exchange, check_end, label):
    proc, port = start(path, backend)
    try:
        if label == "http_hello":
            refuse_port_in_use(path, backend, port)
        socks = [exchange(port) for _ in range(CONNS)]
        proc.send_signal(signal.SIGTERM)
        for s in socks:
            check_end(s)
            s.close()
        try:
            code = proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            fail("%s did not exit after SIGTERM" % label)
        err = proc.stderr.read()
        counts = [int(n) for n in re.findall(r"shutting down with (\d+) connections? open", err)]
        print("%s (%s): per-loop connections at shutdown %s" % (label, backend, counts))
        if code != 0:
            fail("%s exited %d: %s" % (label, code, err))
        if len(counts) != LOOPS:
            fail("%s: expected %d loops to report, got %r in %r" % (label, LOOPS, counts, err))
        if sum(counts) != CONNS or min(counts) == 0:
            fail("%s: connections not spread over every loop: %r" % (label, counts))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    http_hello, ws_echo, backend = sys.argv[1:]
    run(http_hello, backend, http_exchange, check_http_end, "http_hello")
    run(ws_echo, backend, ws_exchange, check_ws_end, "ws_echo_server")
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
