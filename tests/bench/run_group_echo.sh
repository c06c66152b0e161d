#!/usr/bin/env bash
# Echo on a loop group: server CPU per message with 1 and 2 loops, and SO_REUSEPORT listeners
# (one per loop) against one acceptor handing sockets over; plus the cost of a cross-thread
# loop::post. Prints markdown tables. Builds nothing.
#
#   tests/bench/run_group_echo.sh [BUILD_DIR]            # default build/release
#   CONNS=100 WARMUP=1 DURATION=3 REPEAT=3 BACKENDS="epoll uring" tests/bench/run_group_echo.sh
#
# The load is core_pingpong's client (64-byte lockstep request/response over N connections);
# the server is group_echo. CPU is the server's getrusage (every thread) over the measured window.
set -euo pipefail
BUILD=${1:-build/release}
CONNS=${CONNS:-100}
WARMUP=${WARMUP:-1}
DURATION=${DURATION:-3}
REPEAT=${REPEAT:-3}
BACKENDS=${BACKENDS:-"epoll uring"}
CHURN_THREADS=${CHURN_THREADS:-2}
ECHO="$BUILD/tests/bench/group_echo"
CLIENT="$BUILD/tests/bench/core_pingpong"
POST="$BUILD/tests/bench/post_cost"
pids=()
trap 'for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done' EXIT

one_run() { # backend loops accept [churn] -> the server's window line
    local out port pid line
    out=$(mktemp)
    "$ECHO" --backend "$1" --loops "$2" --accept "$3" >"$out" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.05; done
    port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out" | head -1)
    if [ "${4:-}" = churn ]; then
        "$ECHO" churn --port "$port" --threads "$CHURN_THREADS" --warmup "$WARMUP" \
            --duration "$DURATION" --server-pid "$pid" >/dev/null
    else
        "$CLIENT" client --port "$port" --conns "$CONNS" --warmup "$WARMUP" \
            --duration "$DURATION" --server-pid "$pid" >/dev/null
    fi
    sleep 0.2
    kill -TERM "$pid"
    wait "$pid" || true
    line=$(grep '^window' "$out" | tail -1)
    rm -f "$out"
    echo "$line"
}

table() { # title: persistent connections (echo) or one round trip per connection (churn)
echo
echo "| backend | loops | accept | $2/s | server CPU µs per 1k $2 | vs 1 loop | per-loop split |"
echo "|---|---|---|---|---|---|---|"
for b in $BACKENDS; do
    base=""
    for cfg in "1 reuse_port" "2 reuse_port" "2 handoff"; do
        set -- $cfg
        best_cpu=""; best_line=""
        for _ in $(seq "$REPEAT"); do
            line=$(one_run "$b" "$1" "$2" "$MODE")
            rt=$(sed -n 's/.*rt=\([0-9]*\).*/\1/p' <<<"$line")
            cpu=$(sed -n 's/.*cpu_us=\([0-9]*\).*/\1/p' <<<"$line")
            per=$(awk -v c="$cpu" -v r="$rt" 'BEGIN { printf "%.1f", c * 1000 / r }')
            if [ -z "$best_cpu" ] || awk -v a="$per" -v b="$best_cpu" 'BEGIN { exit !(a < b) }'; then
                best_cpu=$per; best_line=$line
            fi
        done
        rt=$(sed -n 's/.*rt=\([0-9]*\).*/\1/p' <<<"$best_line")
        wall=$(sed -n 's/.*wall_us=\([0-9]*\).*/\1/p' <<<"$best_line")
        split=$(sed -n 's/.*per_loop=\([0-9/]*\).*/\1/p' <<<"$best_line")
        rate=$(awk -v r="$rt" -v w="$wall" 'BEGIN { printf "%.0f", r * 1e6 / w }')
        [ -z "$base" ] && base=$best_cpu
        ratio=$(awk -v a="$best_cpu" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
        echo "| $b | $1 | $2 | $rate | $best_cpu | ${ratio}× | $split |"
    done
done
}
MODE=echo table echo msgs
MODE=churn table churn conns

echo
# Two posters (plain threads, or loops of the same backend: msg_ring between io_uring loops) post
# to one loop: back to back (burst 0: the loop stays awake) and in bursts of 64 or 8 with a 20 µs
# pause (the loop falls asleep between bursts and must be woken). Median of 5.
echo "| posters | post | backend | bursts | CPU ns per message (median of 5) |"
echo "|---|---|---|---|---|"
for from in threads loops; do
for b in $BACKENDS; do
    for burst in 0 64 8; do
        for m in node function; do
            ns=$(for _ in 1 2 3 4 5; do
                "$POST" --from "$from" --mode "$m" --backend "$b" --posters 2 \
                    --messages 300000 --burst "$burst" |
                    sed -n 's/.*cpu_ns_per_msg=\([0-9.]*\).*/\1/p'
            done | sort -n | sed -n 3p)
            echo "| $from | $m | $b | $burst | $ns |"
        done
    done
done
done
