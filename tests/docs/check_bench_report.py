#!/usr/bin/env python3
"""docs.bench_report: scripts/bench-report turns driver outputs into the summary of
docs/benchmarks.md. Fed made-up rounds, it must print the median over rounds of the per-round
ratios (not a ratio of bests), mark a met target, and splice between the markers only."""
import os
import subprocess
import sys
import tempfile

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
report = os.path.join(root, "scripts", "bench-report")


def fail(msg):
    print("check_bench_report: " + msg)
    sys.exit(1)


with tempfile.TemporaryDirectory() as d:
    ws = []
    # Per round, coronet epoll / floor: 1.10, 0.90, 1.00 -> median 1.00 (a ratio of the bests,
    # 1.8 / 2.0, would say 0.90). io_uring / floor: 1.5, 1.4, 1.6 -> 1.50.
    for r, (e, fe, u, fu, b) in enumerate([(2.2, 2.0, 3.0, 2.0, 4.0), (1.8, 2.0, 2.8, 2.0, 4.0),
                                             (2.0, 2.0, 3.2, 2.0, 4.0)]):
        for server, v in (("epoll", e), ("ideal_epoll", fe), ("uring", u), ("ideal_uring", fu),
                          ("beast", b)):
            ws.append(f"round={r} server={server} conns=100 size=20 mode=bin msgs=1 "
                      f"server_cpu_us_per_msg={v}")
    with open(os.path.join(d, "ws_echo.txt"), "w") as f:
        f.write("# a comment line\n" + "\n".join(ws) + "\n")
    with open(os.path.join(d, "memory_http.txt"), "w") as f:
        f.write("round=0 server=epoll http_rss conns=10 idle_b_per_conn=2048 "
                "heap_idle_b_per_conn=512\n")
    subprocess.run([sys.executable, report, d], check=True)
    summary = open(os.path.join(d, "summary.md")).read()
    rows = [l for l in summary.splitlines() if l.startswith("| ws echo") and "C floor" in l]
    if len(rows) != 1:
        fail(f"expected one ws echo floor row, got {rows}")
    if "**1.00×** ✔ (2.00 µs)" not in rows[0] or "**1.50×** (3.00 µs)" not in rows[0]:
        fail("wrong medians: " + rows[0])
    beast = [l for l in summary.splitlines() if "Boost.Beast" in l]
    if not beast or "**0.50×** ✔" not in beast[0]:
        fail(f"wrong Beast row: {beast}")
    http = [l for l in summary.splitlines() if "HTTP keep-alive" in l]
    if not http or "**0.5 KiB** ✔ (RSS 2.0)" not in http[0]:
        fail(f"wrong memory row: {http}")
    if "1000 conns" in summary:
        fail("a row without measurements was printed")
    doc = os.path.join(d, "doc.md")
    with open(doc, "w") as f:
        f.write("before\n<!-- bench-summary:begin -->\nOLD-CONTENT\n<!-- bench-summary:end -->\nafter\n")
    subprocess.run([sys.executable, report, d, "--splice", doc], check=True)
    text = open(doc).read()
    if "OLD-CONTENT" in text or not text.startswith("before\n") or not text.endswith("after\n") \
            or rows[0] not in text:
        fail("splice went wrong:\n" + text)
print("check_bench_report: ok")
