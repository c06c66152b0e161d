#!/usr/bin/python3
"""TLS interop: coronet's tcp_echo --tls-cert/--tls-key against real TLS clients.

    tls_echo_interop.py PATH/TO/tcp_echo BACKEND(epoll|uring)

Makes a CA and a server certificate (DNS:localhost, IP:127.0.0.1) with the openssl CLI,
starts tcp_echo on port 0, waits for its "listening on HOST:PORT" line, then:
  - openssl s_client -tls1_2 / -tls1_3 with -verify_return_error against the CA: a line echoes;
  - openssl s_client with a wrong -verify_hostname fails (the checks above are real);
  - Python's ssl module, TLS 1.2 and 1.3, verifying against the CA: a line and 1 MiB echo,
    and unwrap() exchanges close_notify in both directions;
  - SIGTERM ends the server with exit code 0.
Every step has a deadline. Exit 0: pass, 1: fail, 77: skipped (no openssl CLI, or the backend
is unavailable here).
"""

import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

SKIP = 77
STEP_TIMEOUT = 15  # seconds, per step


def log(msg):
    print(msg, flush=True)


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def run(cmd, **kw):
    """Runs a command with the step deadline; returns the CompletedProcess."""
    return subprocess.run(cmd, capture_output=True, timeout=STEP_TIMEOUT, **kw)


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
            raise Failure(f"no line from the server in time (got {buf!r})")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 1)
        if not chunk:
            return buf.decode(errors="replace")  # the server exited
        buf += chunk
    return buf.decode(errors="replace")


def s_client_echo(openssl, port, ca_pem, version_flag, hostname="localhost"):
    """Runs s_client, sends a line, returns (echoed, exit code, stderr)."""
    line = f"hello over {version_flag} via s_client\n".encode()
    cmd = [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-verify_return_error",
           "-CAfile", ca_pem, "-servername", "localhost", "-verify_hostname", hostname,
           version_flag, "-quiet", "-no_ign_eof"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        try:
            proc.stdin.write(line)
            proc.stdin.flush()
        except BrokenPipeError:
            pass  # s_client already gave up (a refused certificate)
        got = b""
        deadline = time.monotonic() + STEP_TIMEOUT
        fd = proc.stdout.fileno()
        while len(got) < len(line) and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            got += chunk
        try:
            proc.stdin.close()  # EOF: s_client sends close_notify and exits
        except BrokenPipeError:
            pass
        proc.wait(timeout=STEP_TIMEOUT)
        err = proc.stderr.read()
        return got == line, proc.returncode, err.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def python_echo(port, ca_pem, version):
    ctx = ssl.create_default_context(cafile=ca_pem)
    ctx.minimum_version = version
    ctx.maximum_version = version
    with socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT) as raw:
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        expected_name = {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}
        check(tls.version() == expected_name[version],
              f"negotiated {tls.version()}, wanted {expected_name[version]}")
        check(tls.getpeercert()["subjectAltName"] == (("DNS", "localhost"),
                                                      ("IP Address", "127.0.0.1")),
              f"unexpected certificate {tls.getpeercert()}")

        tls.sendall(b"ping from python\n")
        check(recv_exactly(tls, 17) == b"ping from python\n", "python: line not echoed")

        # 1 MiB in 64 KiB pieces, each echo read before the next piece goes out. One thread:
        # an SSLSocket must not be read and written from two threads at once (OpenSSL's SSL
        # object is not thread-safe; doing so made this check fail now and then under load).
        payload = bytes((i * 131 + (i >> 11)) & 0xFF for i in range(1 << 20))
        back = b""
        for off in range(0, len(payload), 1 << 16):
            piece = payload[off:off + (1 << 16)]
            tls.sendall(piece)
            back += recv_exactly(tls, len(piece))
        check(back == payload, "python: 1 MiB echo differs")

        # close_notify both ways: ours, then the server's in answer.
        tls.unwrap()


def recv_exactly(tls, n):
    out = b""
    while len(out) < n:
        chunk = tls.recv(n - len(out))
        if not chunk:
            raise Failure(f"connection ended after {len(out)} of {n} bytes")
        out += chunk
    return out


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    tcp_echo, backend = sys.argv[1], sys.argv[2]
    openssl = shutil.which("openssl")
    if openssl is None:
        log("SKIP: the openssl command is not installed (Debian package: openssl)")
        return SKIP

    with tempfile.TemporaryDirectory(prefix="coronet-interop-") as d:
        ca_pem, cert, key = make_certs(d, openssl)
        server = subprocess.Popen(
            [tcp_echo, "--port", "0", "--backend", backend, "--tls-cert", cert, "--tls-key", key],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = read_line(server, time.monotonic() + STEP_TIMEOUT)
            m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
            if m is None:
                server.wait(timeout=STEP_TIMEOUT)
                err = server.stderr.read().decode(errors="replace")
                if backend == "uring" and "uring" in err.lower():
                    log(f"SKIP: io_uring unavailable: {err.strip()}")
                    return SKIP
                raise Failure(f"server did not start: {line!r} {err}")
            port = int(m.group(1))
            log(f"tcp_echo ({backend}) listening on port {port}")

            for flag in ("-tls1_2", "-tls1_3"):
                ok, code, err = s_client_echo(openssl, port, ca_pem, flag)
                check(ok and code == 0, f"s_client {flag}: echo={ok} exit={code}\n{err}")
                log(f"ok: openssl s_client {flag}")
            ok, code, _ = s_client_echo(openssl, port, ca_pem, "-tls1_3", hostname="other.example")
            check(not ok and code != 0, "s_client accepted a certificate for the wrong host name")
            log("ok: openssl s_client refuses a wrong host name")

            for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
                python_echo(port, ca_pem, v)
                log(f"ok: python ssl {v.name}")

            check(server.poll() is None, "the server exited early")
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=STEP_TIMEOUT)
            check(code == 0, f"server exit code {code} after SIGTERM: "
                             f"{server.stderr.read().decode(errors='replace')}")
            log("ok: SIGTERM, exit code 0")
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    log("PASS")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # any error is a failure with its message (SKIP is a return value)
        print(f"FAIL: {e}", flush=True)
        sys.exit(1)
