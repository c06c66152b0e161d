#!/usr/bin/python3
"""--threads N on the example servers: connections spread over the loops, and a signal drains
every loop.

    threads_interop.py PATH/TO/http_hello PATH/TO/ws_echo_server PATH/TO/ws_rooms
                       BACKEND(epoll|uring)

For each server, started with --threads 2 --port 0 (one SO_REUSEPORT listener per loop):
  - 64 clients connect at once and each makes one exchange (http_hello: a keep-alive GET /,
    whose "Hello, World!" must come back; ws_echo_server: an opening handshake and a masked
    text frame, whose echo must come back) and stays connected;
  - SIGTERM then: every loop logs "shutting down with N connections open" on its own. There
    must be one such line per loop, each with N > 0 (the kernel spread the connections over
    both loops), and the N must add up to 64;
  - every client then sees the graceful end (http: the server closes the idle keep-alive
    connection; ws: a close frame with code 1001 "going away") and the server exits 0.
ws_rooms --threads 2 (one hub_group: rooms span the loops): 32 clients in room "lobby" and 8
in room "other" connect at once (each waits for the answer to a ping, which the hub's reader
gives only after the connection joined its room); then every client sends 20 numbered messages.
Every client must receive every message of every other member of its room exactly once, in
each sender's order, and nothing from the other room. On SIGTERM every loop logs "hub: stop
requested; closing N connections" (one line per loop, each N > 0, adding up to 40) and every
client gets close 1001.
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


class ws_client:
    """A minimal client of ws_rooms: masked frames out, unmasked server frames in."""

    def __init__(self, port, room):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET /%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (room, key)).encode())
        data, _ = recv_until(self.sock, lambda d: b"\r\n\r\n" in d, "the 101")
        if not data.startswith(b"HTTP/1.1 101"):
            fail("bad handshake answer %r" % data[:80])
        self.buf = data.split(b"\r\n\r\n", 1)[1]

    def send(self, opcode, payload):
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def frame(self, what):
        """The next frame: (opcode, payload)."""
        def whole(d):
            if len(d) < 2:
                return False
            n, at = d[1] & 0x7F, 2
            if n == 126:
                if len(d) < 4:
                    return False
                n, at = int.from_bytes(d[2:4], "big"), 4
            return len(d) >= at + n
        if not whole(self.buf):
            more, _ = recv_until(self.sock, lambda d: whole(self.buf + d), what)
            self.buf += more
        n, at = self.buf[1] & 0x7F, 2
        if n == 126:
            n, at = int.from_bytes(self.buf[2:4], "big"), 4
        op, payload = self.buf[0] & 0x0F, self.buf[at:at + n]
        self.buf = self.buf[at + n:]
        return op, payload


ROOMS = {"lobby": 32, "other": 8}
MESSAGES = 20


def run_rooms(path, backend):
    proc, port = start(path, backend)
    try:
        clients = [(room, ws_client(port, room)) for room, n in ROOMS.items() for _ in range(n)]
        for _, c in clients:
            # The pong comes from the connection's reader, which starts after on_open joined.
            c.send(0x9, b"joined?")
            op, payload = c.frame("the pong")
            if op != 0xA or payload != b"joined?":
                fail("expected the pong, got %r %r" % (op, payload))
        for seq in range(MESSAGES):
            for k, (room, c) in enumerate(clients):
                c.send(0x1, ("%s:%d:%d" % (room, k, seq)).encode())
        for k, (room, c) in enumerate(clients):
            expect = (ROOMS[room] - 1) * MESSAGES
            nxt = {}
            for _ in range(expect):
                op, payload = c.frame("room messages")
                if op != 0x1:
                    fail("client %d: unexpected frame %r %r" % (k, op, payload))
                r, sender, seq = payload.decode().split(":")
                sender, seq = int(sender), int(seq)
                if r != room or sender == k:
                    fail("client %d in %s got %r" % (k, room, payload))
                if seq != nxt.get(sender, 0):
                    fail("client %d: from %d expected #%d, got #%d" %
                         (k, sender, nxt.get(sender, 0), seq))
                nxt[sender] = seq + 1
            if len(nxt) != ROOMS[room] - 1:
                fail("client %d heard %d senders" % (k, len(nxt)))
        print("ws_rooms (%s): %d clients each got every message of its room once, in order" %
              (backend, len(clients)))
        proc.send_signal(signal.SIGTERM)
        for k, (_, c) in enumerate(clients):
            op, payload = c.frame("a close frame")
            if op != 0x8 or int.from_bytes(payload[:2], "big") != 1001:
                fail("client %d: expected close 1001, got %r %r" % (k, op, payload))
            c.sock.close()
        try:
            code = proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            fail("ws_rooms did not exit after SIGTERM")
        err = proc.stderr.read()
        counts = [int(n) for n in re.findall(r"hub: stop requested; closing (\d+) connections",
                                             err)]
        print("ws_rooms (%s): per-loop connections at shutdown %s" % (backend, counts))
        if code != 0:
            fail("ws_rooms exited %d: %s" % (code, err))
        if len(counts) != LOOPS or sum(counts) != len(clients) or min(counts) == 0:
            fail("ws_rooms: connections not spread over every loop: %r in %r" % (counts, err))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main():
    if len(sys.argv) != 5:
        print(__doc__)
        return 2
    http_hello, ws_echo, ws_rooms, backend = sys.argv[1:]
    run(http_hello, backend, http_exchange, check_http_end, "http_hello")
    run(ws_echo, backend, ws_exchange, check_ws_end, "ws_echo_server")
    run_rooms(ws_rooms, backend)
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
