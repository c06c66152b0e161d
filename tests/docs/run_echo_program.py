#!/usr/bin/env python3
"""Runs an echo server program from the docs and checks that it does what the docs say.

    run_echo_program.py PROGRAM PORT

Starts PROGRAM (which serves a TCP echo on 127.0.0.1:PORT until SIGINT/SIGTERM), waits until
it accepts, sends two lines on two connections and expects each back byte for byte, then sends
SIGTERM and expects a clean exit (status 0) within 10 s. Exits 77 (skipped) when PORT is taken
by another program before the test starts.
"""

import errno
import signal
import socket
import subprocess
import sys
import time

SKIP = 77


def port_is_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return False
        raise
    finally:
        s.close()


def connect(proc, port, deadline):
    """Connects once the program listens; fails if it exits or the deadline passes."""
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the program exited with status {proc.returncode} before "
                               f"accepting on port {port}")
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing accepted on port {port} within 10 s")
            time.sleep(0.02)


def echo(sock, payload):
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    if got != payload:
        raise RuntimeError(f"sent {payload!r}, got back {got!r}")


def main():
    program, port = sys.argv[1], int(sys.argv[2])
    if not port_is_free(port):
        print(f"SKIPPED: port {port} is in use by another program")
        return SKIP
    proc = subprocess.Popen([program])
    try:
        deadline = time.monotonic() + 10
        first = connect(proc, port, deadline)
        second = connect(proc, port, deadline)
        with first, second:
            echo(first, b"hello from the docs test\n")
            echo(second, b"x" * 100_000)  # more than one read's worth
            echo(first, b"still there\n")
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=10)
        if status != 0:
            raise RuntimeError(f"after SIGTERM the program exited with status {status}, not 0")
    except Exception as e:  # noqa: BLE001 - any failure is the test's failure
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"ok: {program} echoed on port {port} and exited 0 on SIGTERM")
    return 0


if __name__ == "__main__":
    sys.exit(main())
