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
#   sharded  the same over TCP with --redis-sharded (SPUBLISH/SSUBSCRIBE) on the same Redis
#   cluster  the same with --redis-sharded on a Redis Cluster of three masters (loopback TCP),
#            each process seeded with another node; Redis CPU is the room's master's
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
REDIS_CLI="$(command -v redis-cli || true)"
load="$build/tests/bench/ws_broadcast_load"
# shellcheck source-path=SCRIPTDIR source=bench_common.sh
source "$here/bench_common.sh"

problems=()
command -v taskset >/dev/null 2>&1 || problems+=("taskset not found (apt-get install util-linux)")
[[ -x "$load" ]] || problems+=("$load not found (build target ws_broadcast_load)")
[[ -x "$rooms" ]] || problems+=("$rooms not found (build target ws_rooms)")
[[ -n "$REDIS_SERVER" && -x "$REDIS_SERVER" ]] || problems+=("redis-server not found (apt-get install redis-server)")
[[ -n "$REDIS_CLI" ]] || problems+=("redis-cli not found (apt-get install redis-tools)")
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
cluster_pids=()
cleanup() {
    stop_all
    for p in $redis_pid "${cluster_pids[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

sock="$work/redis.sock"
tcp_port="$(free_port)"
taskset -c "$CPU" "$REDIS_SERVER" --port "$tcp_port" --bind 127.0.0.1 --unixsocket "$sock" \
    --unixsocketperm 700 --save "" --appendonly no --dir "$work" --logfile "$work/redis.log" \
    --daemonize no &
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
tcp_url="redis://127.0.0.1:$tcp_port"

# Three masters, a third of the slots each, introduced to each other (as redis-cli --cluster
# create does with no replicas).
cluster_ports=()
for ((k = 0; k < 3; ++k)); do
    p="$(free_port)"
    mkdir -p "$work/node$k"
    taskset -c "$CPU" "$REDIS_SERVER" --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
        --cluster-port $((p + 1)) --cluster-config-file "$work/node$k/nodes.conf" --save "" \
        --appendonly no --dir "$work/node$k" --logfile "$work/node$k/redis.log" --daemonize no &
    cluster_pids+=($!)
    cluster_ports+=("$p")
done
for p in "${cluster_ports[@]}"; do
    for ((i = 0; i < 200; ++i)); do
        "$REDIS_CLI" -p "$p" ping >/dev/null 2>&1 && break
        sleep 0.05
    done
done
"$REDIS_CLI" -p "${cluster_ports[0]}" cluster addslotsrange 0 5460 >/dev/null
"$REDIS_CLI" -p "${cluster_ports[1]}" cluster addslotsrange 5461 10922 >/dev/null
"$REDIS_CLI" -p "${cluster_ports[2]}" cluster addslotsrange 10923 16383 >/dev/null
for p in "${cluster_ports[@]:1}"; do
    "$REDIS_CLI" -p "${cluster_ports[0]}" cluster meet 127.0.0.1 "$p" $((p + 1)) >/dev/null
done
for ((i = 0; i < 200; ++i)); do
    ok=0
    for p in "${cluster_ports[@]}"; do
        "$REDIS_CLI" -p "$p" cluster info | grep -q cluster_state:ok && ok=$((ok + 1))
    done
    ((ok == 3)) && break
    sleep 0.05
done
((ok == 3)) || {
    echo "run_ws_redis: the Redis Cluster did not form" >&2
    exit 1
}
# The master that owns room "bench"'s channel: its CPU is the cluster's cost per broadcast.
slot="$("$REDIS_CLI" -p "${cluster_ports[0]}" cluster keyslot coronet:room:bench)"
room_master=$((slot <= 5460 ? 0 : slot <= 10922 ? 1 : 2))

{
    machine_line
    echo "# $("$REDIS_SERVER" --version | cut -d' ' -f1-3); pinned to CPUs $CPU: redis-server, servers and ws_broadcast_load"
    echo "# BACKEND=$BACKEND SIZE=$SIZE WARMUP=$WARMUP DURATION=$DURATION REPEAT=$REPEAT"
    echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

setups=(local publish redis sharded cluster)
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
            redis | sharded | cluster)
                first=("$url")
                second=("$url")
                [[ "$s" == sharded ]] && first=("$tcp_url" --redis-sharded) && second=("${first[@]}")
                if [[ "$s" == cluster ]]; then
                    first=("redis://127.0.0.1:${cluster_ports[0]}" --redis-sharded)
                    second=("redis://127.0.0.1:${cluster_ports[1]}" --redis-sharded)
                fi
                start_printing "$n" "${common[@]}" --redis "${first[@]}"
                start_printing "$n-send" "${common[@]}" --redis "${second[@]}"
                pids=("${pid[$n]}" "${pid[$n-send]}")
                extra=(--sender-port "${port[$n-send]}")
                ;;
            esac
            rpid="$redis_pid"
            [[ "$s" == cluster ]] && rpid="${cluster_pids[$room_master]}"
            pidargs=()
            for p in "${pids[@]}"; do pidargs+=(--server-pid "$p"); done
            limit="$(awk -v w="$WARMUP" -v d="$DURATION" -v r="$r" 'BEGIN{printf "%d", w + d + 60 + r / 500}')"
            if ! timeout "$limit" taskset -c "$CPU" "$load" --port "${port[$n]}" --receivers "$r" \
                --size "$SIZE" --window "$w" --warmup "$WARMUP" --duration "$DURATION" \
                "${pidargs[@]}" --redis-pid "$rpid" "${extra[@]}" >"$work/load.out" 2>"$work/load.err"; then
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
            [[ -n "${pid[$n-send]:-}" ]] && stop_one "$n-send"
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
