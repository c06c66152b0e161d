#!/usr/bin/env bash
# run_ws_redis.sh: room broadcast across processes through a real redis-server (the Redis
# backplane, docs/scaling.md), beside the same broadcast inside one process, in one run; prints
# a markdown table. Load: ws_broadcast_load (one sender, N receivers, every receiver checks it
# gets every message once and in order, and measures each message's latency from the sender's
# write to its own read).
#
#   tests/bench/ws/run_ws_redis.sh [BUILD_DIR]     (default: build/release)
#
# Setups, each with examples/ws_rooms --no-deflate on BACKEND:
#   local    one process, no Redis: sender and receivers on it
#   publish  one process with --redis: the same, and every broadcast is also published
#   redis    two processes with the same --redis: the sender on one, the receivers on the other
#            (each broadcast: PUBLISH by the first, delivered by Redis to the second, which
#            fans it out); server CPU is both processes', Redis' own CPU is reported beside it
#
# Environment knobs (defaults in brackets):
#   CELLS ["1000:8 100:1"]   receivers:window (window 1: one broadcast in flight, latency alone)
#   SIZE [64]                message bytes (>= 16)
#   BACKEND [epoll]          the servers' loop backend (uring|epoll)
#   WARMUP [1], DURATION [3], REPEAT [2]
#   CPU [0-1]                the cores every process is pinned to (all of them by default:
#                            latency, not only CPU, is the point here)
#   REDIS_SERVER [redis-server from PATH]
#
# A cell shows the best deliveries/s, the lowest server CPU per delivery and the lowest p50/p99
# of its rounds. Every process is started fresh per cell and round. Loopback and a Unix socket
# only; everything started is killed on exit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
build="${1:-build/release}"
if [[ ! -d "$build" && -d "$root/$build" ]]; then build="$root/$build"; fi
build="$(cd "$build" && pwd)"

CELLS="${CELLS:-1000:8 100:1}"
SIZE="${SIZE:-64}"
BACKEND="${BACKEND:-epoll}"
WARMUP="${WARMUP:-1}"
DURATION="${DURATION:-3}"
REPEAT="${REPEAT:-2}"
CPU="${CPU:-0-1}"
REDIS_SERVER="${REDIS_SERVER:-$(command -v redis-server || true)}"

rooms="$build/examples/ws_rooms/ws_rooms"
load="$build/tests/bench/ws_broadcast_load"
# shellcheck source-path=SCRIPTDIR source=bench_common.sh
source "$here/bench_common.sh"

problems=()
command -v taskset >/dev/null 2>&1 || problems+=("taskset not found (apt-get install util-linux)")
[[ -x "$load" ]] || problems+=("$load not found (build target ws_broadcast_load)")
[[ -x "$rooms" ]] || problems+=("$rooms not found (build target ws_rooms)")
[[ -n "$REDIS_SERVER" && -x "$REDIS_SERVER" ]] || problems+=("redis-server not found (apt-get install redis-server)")
if ((${#problems[@]})); then
    for p in "${problems[@]}"; do echo "run_ws_redis: $p" >&2; done
    exit 1
fi
if "$rooms" --redis unix:///nonexistent --help 2>&1 | grep -q "not available"; then
    echo "run_ws_redis: $rooms was built without hiredis (apt-get install libhiredis-dev, reconfigure)" >&2
    exit 1
fi

raise_nofile 2100
work="$(mktemp -d /tmp/ws_redis.XXXXXX)"
redis_pid=""
cleanup() {
    stop_all
    if [[ -n "$redis_pid" ]]; then
        kill -KILL "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

sock="$work/redis.sock"
taskset -c "$CPU" "$REDIS_SERVER" --port 0 --unixsocket "$sock" --unixsocketperm 700 --save "" \
    --appendonly no --dir "$work" --logfile "$work/redis.log" --daemonize no &
redis_pid=$!
for ((i = 0; i < 200; ++i)); do
    [[ -S "$sock" ]] && break
    sleep 0.05
done
[[ -S "$sock" ]] || {
    echo "run_ws_redis: redis-server did not start:" >&2
    cat "$work/redis.log" >&2
    exit 1
}
url="unix://$sock"

{
    machine_line
    echo "# $("$REDIS_SERVER" --version | cut -d' ' -f1-3); pinned to CPUs $CPU: redis-server, servers and ws_broadcast_load"
    echo "# BACKEND=$BACKEND SIZE=$SIZE WARMUP=$WARMUP DURATION=$DURATION REPEAT=$REPEAT"
    echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

setups=(local publish redis)
declare -A best_rate best_cpu best_p50 best_p99 best_redis
t0=$SECONDS
for ((round = 0; round < REPEAT; ++round)); do
    for cell in $CELLS; do
        r="${cell%%:*}"
        w="${cell#*:}"
        for ((k = 0; k < ${#setups[@]}; ++k)); do
            s="${setups[$(((k + round) % ${#setups[@]}))]}"
            n="$s-$r-$round"
            common=("$rooms" --port 0 --backend "$BACKEND" --max-connections $((r + 10)) --no-deflate)
            pids=()
            extra=()
            case "$s" in
            local)
                start_printing "$n" "${common[@]}"
                pids=("${pid[$n]}")
                ;;
            publish)
                start_printing "$n" "${common[@]}" --redis "$url"
                pids=("${pid[$n]}")
                ;;
            redis)
                start_printing "$n" "${common[@]}" --redis "$url"
                start_printing "$n-send" "${common[@]}" --redis "$url"
                pids=("${pid[$n]}" "${pid[$n-send]}")
                extra=(--sender-port "${port[$n-send]}")
                ;;
            esac
            pidargs=()
            for p in "${pids[@]}"; do pidargs+=(--server-pid "$p"); done
            limit="$(awk -v w="$WARMUP" -v d="$DURATION" -v r="$r" 'BEGIN{printf "%d", w + d + 60 + r / 500}')"
            if ! timeout "$limit" taskset -c "$CPU" "$load" --port "${port[$n]}" --receivers "$r" \
                --size "$SIZE" --window "$w" --warmup "$WARMUP" --duration "$DURATION" \
                "${pidargs[@]}" --redis-pid "$redis_pid" "${extra[@]}" >"$work/load.out" 2>"$work/load.err"; then
                echo "run_ws_redis: $s receivers=$r window=$w failed:" >&2
                cat "$work/load.out" "$work/load.err" >&2
            else
                line="$(grep -m1 '^ws_broadcast ' "$work/load.out")"
                val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
                rate="$(val deliveries_per_s)"
                read -r cpu_us redis_us < <(awk -v s="$(val server_cpu_us)" -v d="$(val deliveries)" \
                    -v b="$(val broadcasts)" -v rc="$(val redis_cpu_us)" \
                    'BEGIN { printf "%.3f %.2f\n", s / d, (b > 0 ? rc / b : -1) }')
                p50="$(val latency_p50_us)"
                p99="$(val latency_p99_us)"
                echo "round=$round setup=$s receivers=$r window=$w deliveries_per_s=$rate server_cpu_us_per_delivery=$cpu_us redis_cpu_us_per_broadcast=$redis_us latency_p50_us=$p50 latency_p99_us=$p99"
                key="$s|$r|$w"
                if [[ -z "${best_rate[$key]:-}" ]] || ((rate > ${best_rate[$key]})); then best_rate[$key]=$rate; fi
                lower() { [[ -z "${2:-}" ]] || awk -v a="$1" -v b="$2" 'BEGIN{exit !(a < b)}'; }
                if lower "$cpu_us" "${best_cpu[$key]:-}"; then
                    best_cpu[$key]=$cpu_us
                    best_redis[$key]=$redis_us
                fi
                if lower "$p50" "${best_p50[$key]:-}"; then best_p50[$key]=$p50; fi
                if lower "$p99" "${best_p99[$key]:-}"; then best_p99[$key]=$p99; fi
            fi
            stop_one "$n"
            [[ "$s" == redis ]] && stop_one "$n-send"
        done
    done
done
echo "# measured part: $((SECONDS - t0)) s; load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "| setup | receivers | in flight | deliveries/s | server CPU µs / delivery | vs local | Redis CPU µs / broadcast | latency p50 µs | latency p99 µs |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for cell in $CELLS; do
    r="${cell%%:*}"
    w="${cell#*:}"
    for s in "${setups[@]}"; do
        key="$s|$r|$w"
        [[ -n "${best_rate[$key]:-}" ]] || continue
        ref="local|$r|$w"
        ratio=n/a
        if [[ -n "${best_cpu[$ref]:-}" ]]; then
            ratio="$(awk -v a="${best_cpu[$key]}" -v b="${best_cpu[$ref]}" 'BEGIN{printf "%.2f", a / b}')"
        fi
        redis_col="${best_redis[$key]}"
        [[ "$s" == local ]] && redis_col="-"
        echo "| $s | $r | $w | ${best_rate[$key]} | ${best_cpu[$key]} | $ratio | $redis_col | ${best_p50[$key]} | ${best_p99[$key]} |"
    done
done
