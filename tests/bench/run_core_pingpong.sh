#!/usr/bin/env bash
# run_core_pingpong.sh: runs core_pingpong against coronet (epoll, uring) and the C epoll floor
# for 1, 100 and 1000 connections and prints a markdown table. Builds nothing.
#
#   tests/bench/run_core_pingpong.sh [BUILD_DIR]      (default: build/release)
#
# Environment knobs (defaults in brackets):
#   WARMUP [1]        seconds of traffic before the measurement window
#   DURATION [3]      seconds of the measurement window
#   REPEAT [3]        rounds; each round runs every server x conns once, interleaved
#   CONNS ["1 100 1000"], SERVERS ["epoll uring floor"]
#
# Per cell: round trips/s and the client's CPU utilisation as measured by the client; server
# CPU (getrusage user+sys) per round trip and server CPU utilisation, both over the server's own
# window (opened by the client's SIGUSR1, closed by its SIGUSR2); heap allocations per round
# trip in that window (global operator new, coronet only). With REPEAT > 1 a cell shows the best round trips/s, the lowest
# CPU per round trip and the highest allocation count of its rounds (noise only ever makes a
# run slower; an allocation is never noise). Loopback only; every server started is killed on
# exit. Whole run with the defaults: about 2.5 minutes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-build/release}"
if [[ ! -d "$build" && -d "$root/$build" ]]; then build="$root/$build"; fi
pingpong="$build/tests/bench/core_pingpong"
floor="$build/tests/bench/epoll_echo_floor"
for exe in "$pingpong" "$floor"; do
    if [[ ! -x "$exe" ]]; then
        echo "run_core_pingpong: $exe not found; build the bench targets first" >&2
        exit 1
    fi
done

WARMUP="${WARMUP:-1}"
DURATION="${DURATION:-3}"
REPEAT="${REPEAT:-3}"
CONNS="${CONNS:-1 100 1000}"
SERVERS="${SERVERS:-epoll uring floor}"

work="$(mktemp -d /tmp/core_pingpong.XXXXXX)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits up to $2 tenths of a second for a line matching $3 in file $1; prints it.
wait_for_line() {
    local file="$1" tenths="$2" pattern="$3" i line
    for ((i = 0; i < tenths; ++i)); do
        line="$(grep -m1 -E "$pattern" "$file" 2>/dev/null || true)"
        if [[ -n "$line" ]]; then
            echo "$line"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

stop_server() {
    local i
    kill -TERM "$server_pid" 2>/dev/null || true
    for ((i = 0; i < 30; ++i)); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

# One measurement: server kind, connections, round. Appends a result line to $work/results.
measure() {
    local kind="$1" conns="$2" round="$3" out="$work/server.out" listening port client window
    : >"$out"
    case "$kind" in
    epoll | uring) "$pingpong" server --port 0 --backend "$kind" >"$out" 2>&1 & ;;
    floor) "$floor" --port 0 >"$out" 2>&1 & ;;
    esac
    server_pid=$!
    if ! listening="$(wait_for_line "$out" 50 '^listening on ')"; then
        echo "run_core_pingpong: $kind server did not start:" >&2
        cat "$out" >&2
        exit 1
    fi
    port="${listening#listening on *:}"
    port="${port%% *}"
    if ! client="$(timeout $((${WARMUP%.*} + ${DURATION%.*} + 30)) "$pingpong" client \
        --port "$port" --conns "$conns" --warmup "$WARMUP" --duration "$DURATION" \
        --server-pid "$server_pid")"; then
        echo "run_core_pingpong: client failed against $kind, $conns connections" >&2
        cat "$out" >&2
        exit 1
    fi
    if ! window="$(wait_for_line "$out" 50 '^window ')"; then
        echo "run_core_pingpong: $kind server reported no window" >&2
        exit 1
    fi
    stop_server
    echo "  $kind conns=$conns round=$round: $client | $window" >&2
    # kind conns round rt_per_s server_rt cpu_us allocs wall_us client_cpu_us client_seconds
    awk -v kind="$kind" -v conns="$conns" -v round="$round" -v c="$client" -v w="$window" '
        function field(line, key,   n, i, a, kv) {
            n = split(line, a, " ")
            for (i = 1; i <= n; ++i) { split(a[i], kv, "="); if (kv[1] == key) return kv[2] }
            return ""
        }
        BEGIN {
            print kind, conns, round, field(c, "rt_per_s"), field(w, "rt"), field(w, "cpu_us"),
                  field(w, "allocs"), field(w, "wall_us"), field(c, "cpu_us"), field(c, "seconds")
        }' >>"$work/results"
}

echo "run_core_pingpong: $pingpong, warm-up ${WARMUP}s, window ${DURATION}s, $REPEAT round(s)," \
    "loadavg $(cut -d' ' -f1-3 /proc/loadavg)" >&2
: >"$work/results"
for ((round = 1; round <= REPEAT; ++round)); do
    for conns in $CONNS; do
        for kind in $SERVERS; do
            measure "$kind" "$conns" "$round"
        done
    done
done

echo "run_core_pingpong: done, loadavg $(cut -d' ' -f1-3 /proc/loadavg)" >&2
awk -v servers="$SERVERS" -v conns_list="$CONNS" '
    {
        key = $1 " " $2
        rtps = $4 + 0; rt = $5 + 0; cpu = $6 + 0; allocs = $7 + 0; wall = $8 + 0
        cpu_rt = rt > 0 ? cpu / rt : 0
        util = wall > 0 ? 100 * cpu / wall : 0
        a_rt = rt > 0 ? allocs / rt : 0
        ccpu = $10 > 0 ? $9 / ($10 * 1e4) : 0
        if (!(key in best_rtps) || rtps > best_rtps[key]) { best_rtps[key] = rtps; cutil_at[key] = ccpu }
        if (!(key in best_cpu) || cpu_rt < best_cpu[key]) { best_cpu[key] = cpu_rt; util_at[key] = util }
        if (!(key in worst_a) || a_rt > worst_a[key]) { worst_a[key] = a_rt; allocs_at[key] = allocs }
    }
    END {
        names["epoll"] = "coronet epoll"; names["uring"] = "coronet uring"; names["floor"] = "C epoll floor"
        print "| server | conns | round trips/s | client CPU % | server CPU µs / round trip | server CPU % | allocs / round trip (allocs in window) |"
        print "|---|---:|---:|---:|---:|---:|---:|"
        ns = split(servers, sv, " "); nc = split(conns_list, cv, " ")
        for (j = 1; j <= nc; ++j) for (i = 1; i <= ns; ++i) {
            key = sv[i] " " cv[j]
            if (!(key in best_rtps)) continue
            a = sv[i] == "floor" ? "n/a" : sprintf("%.4f (%d)", worst_a[key], allocs_at[key])
            printf "| %s | %d | %.0f | %.0f | %.2f | %.0f | %s |\n", names[sv[i]], cv[j],
                   best_rtps[key], cutil_at[key], best_cpu[key], util_at[key], a
        }
    }' "$work/results"
