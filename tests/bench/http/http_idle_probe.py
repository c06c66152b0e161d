#!/usr/bin/env python3
"""http_idle_probe: what idle HTTP/1.1 keep-alive connections cost a server.

    http_idle_probe.py --port N --server-pid PID [--conns 2000] [--settle 1]
                       [--alloc-file PATH] [--path /]

Reads the server's VmRSS (and, with --alloc-file, the live heap bytes malloc_count.so keeps
there) before connecting, after CONNS connections each sent one GET and read its whole answer
(Content-Length framing; the connection stays open: keep-alive), and after SETTLE more seconds
of idleness. Prints one line:

    http_rss conns=N rss0_kb=.. rss_idle_kb=.. idle_b_per_conn=.. heap0=.. heap_idle=..
             heap_idle_b_per_conn=..

(heap fields -1 without --alloc-file), then closes every connection. Exit status 1 when a
connection failed or an answer was not a 200. Standard library only (Debian's python3).
"""
import argparse
import socket
import struct
import sys
import time

MAGIC = 0x6D616C6C6F63636E  # malloc_count.h: MALLOC_COUNTS_MAGIC


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def live_heap(path):
    if not path:
        return -1
    with open(path, "rb") as f:
        data = f.read(40)
    magic, _allocs, _reallocs, _frees, live = struct.unpack("<QQQQq", data)
    return live if magic == MAGIC else -1


def read_answer(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the answer's head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"answer {lines[0]!r}")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed inside the body")
        body += chunk


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--server-pid", type=int, required=True)
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--alloc-file", default="")
    ap.add_argument("--path", default="/")
    a = ap.parse_args()

    rss0 = rss_kb(a.server_pid)
    heap0 = live_heap(a.alloc_file)
    request = (f"GET {a.path} HTTP/1.1\r\nHost: {a.host}\r\n\r\n").encode()
    socks = []
    try:
        for _ in range(a.conns):
            s = socket.create_connection((a.host, a.port), timeout=10)
            s.sendall(request)
            read_answer(s)
            socks.append(s)
        time.sleep(a.settle)
        rss1 = rss_kb(a.server_pid)
        heap1 = live_heap(a.alloc_file)
    except (OSError, ConnectionError) as e:
        print(f"http_idle_probe: connection {len(socks)}: {e}", file=sys.stderr)
        return 1
    finally:
        for s in socks:
            s.close()
    per = lambda before, after: -1 if before < 0 or after < 0 else (after - before) // a.conns
    print(f"http_rss conns={a.conns} rss0_kb={rss0} rss_idle_kb={rss1} "
          f"idle_b_per_conn={per(rss0 * 1024, rss1 * 1024)} heap0={heap0} heap_idle={heap1} "
          f"heap_idle_b_per_conn={per(heap0, heap1)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
