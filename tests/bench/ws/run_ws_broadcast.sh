#!/usr/bin/env bash
# run_ws_broadcast.sh: one sender and N receivers in one room: examples/ws_rooms (the hub; epoll
# and io_uring) beside node `ws` (tests/bench/ws/node_ws_rooms.js), in one run; prints a markdown
# table. Load: ws_broadcast_load (coronet::ws client sessions on one loop, at most WINDOW
# broadcasts in flight, every receiver checks it gets every message once and in order). Every
# server runs under malloc_count.so (LD_PRELOAD), so allocations per broadcast are counted
# (every malloc/calloc/realloc/memalign of the whole process in the window; node's JS heap is
# not malloc and is not counted). Builds nothing; fetches npm ws (pinned) like run_ws_bench.sh.
#
#   tests/bench/ws/run_ws_broadcast.sh [BUILD_DIR]     (default: build/release)
#
# Environment knobs (defaults in brackets):
#   SERVERS ["epoll uring node"]    also epoll2 / uring2: ws_rooms --threads 2 (receivers spread
#                                   over two loops by SO_REUSEPORT, one hub_group); floor_epoll /
#                                   floor_uring: tests/bench/ws/broadcast_floor.c, the plain-C
#                                   floor (validates nothing, one send per receiver per read);
#                                   base_epoll / base_uring: ws_rooms of the build in
#                                   $BASE_BUILD (an A/B of two commits)
#   REF [node]                      the ratio column's reference server; "loops" compares epoll2
#                                   with epoll and uring2 with uring; "floor" compares epoll,
#                                   epoll2 with floor_epoll and uring, uring2 with floor_uring;
#                                   "base" compares epoll with base_epoll and uring with base_uring
#   BASE_BUILD []                   another build directory (e.g. a worktree of the base commit
#                                   built with the release preset), for base_epoll / base_uring
#   RECEIVERS ["1000 10000"]        receivers per cell (plus the sender)
#   SIZE [64]                       message bytes (≥ 16)
#   WINDOW [8]                      broadcasts in flight
#   WARMUP [1], DURATION [3]        seconds
#   REPEAT [2]                      rounds; a cell shows the best deliveries/s and the lowest
#                                   server CPU per delivery of its rounds
#   CPU [1]                         the core servers and the load generator are pinned to
#   LOAD_BACKEND [uring]
#
# Every server is started fresh for each cell and round (so its connection count starts at 0)
# and stopped after it. The load generator connects N + 1 sessions one at a time (outside the
# window), waits until every receiver is in the room, warms up, measures, closes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
build="${1:-build/release}"
if [[ ! -d "$build" && -d "$root/$build" ]]; then build="$root/$build"; fi
build="$(cd "$build" && pwd)"

SERVERS="${SERVERS:-epoll uring node}"
RECEIVERS="${RECEIVERS:-1000 10000}"
SIZE="${SIZE:-64}"
WINDOW="${WINDOW:-8}"
WARMUP="${WARMUP:-1}"
DURATION="${DURATION:-3}"
REPEAT="${REPEAT:-2}"
CPU="${CPU:-1}"
REF="${REF:-node}"
LOAD_BACKEND="${LOAD_BACKEND:-uring}"

rooms="$build/examples/ws_rooms/ws_rooms"
load="$build/tests/bench/ws_broadcast_load"
mcount="$build/tests/bench/libmalloc_count.so"
floor="$build/tests/bench/broadcast_floor"
# shellcheck source-path=SCRIPTDIR source=bench_common.sh
source "$here/bench_common.sh"

problems=()
command -v taskset >/dev/null 2>&1 || problems+=("taskset not found (apt-get install util-linux)")
[[ -x "$load" ]] || problems+=("$load not found (build target ws_broadcast_load)")
[[ -f "$mcount" ]] || problems+=("$mcount not found (build target malloc_count)")
for s in $SERVERS; do
    case "$s" in
    epoll | uring | epoll2 | uring2) [[ -x "$rooms" ]] || problems+=("$rooms not found (build target ws_rooms)") ;;
    node) command -v node >/dev/null 2>&1 || problems+=("node not found (apt-get install nodejs npm)") ;;
    floor_epoll | floor_uring) [[ -x "$floor" ]] || problems+=("$floor not found (build target broadcast_floor)") ;;
    base_epoll | base_uring)
        [[ -x "${BASE_BUILD:-}/examples/ws_rooms/ws_rooms" ]] ||
            problems+=("BASE_BUILD='${BASE_BUILD:-}' has no examples/ws_rooms/ws_rooms") ;;
    *) problems+=("unknown server '$s' (epoll uring epoll2 uring2 node floor_epoll floor_uring base_epoll base_uring)") ;;
    esac
done
if ((${#problems[@]})); then
    for p in "${problems[@]}"; do echo "run_ws_broadcast: $p" >&2; done
    exit 1
fi
ws_version=""
if [[ " $SERVERS " == *" node "* ]]; then ws_npm_ci run_ws_broadcast; fi

maxr=0
for r in $RECEIVERS; do ((r > maxr)) && maxr=$r; done
raise_nofile $((maxr + 100))
work="$(mktemp -d /tmp/ws_broadcast.XXXXXX)"
cleanup() {
    stop_all
    rm -rf "$work"
}
trap cleanup EXIT

{
    machine_line
    echo "# node: $(node --version 2>/dev/null || echo n/a); npm ws: ${ws_version:-n/a}; ulimit -n $(ulimit -n)"
    echo "# pinned to CPU $CPU: servers and ws_broadcast_load; SIZE=$SIZE WINDOW=$WINDOW WARMUP=$WARMUP DURATION=$DURATION REPEAT=$REPEAT LOAD_BACKEND=$LOAD_BACKEND"
    echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

name() {
    case "$1" in
    epoll) echo "coronet ws_rooms epoll" ;; uring) echo "coronet ws_rooms uring" ;;
    epoll2) echo "coronet ws_rooms epoll, 2 loops" ;; uring2) echo "coronet ws_rooms uring, 2 loops" ;;
    node) echo "node ws ${ws_version} rooms" ;;
    floor_epoll) echo "C floor epoll" ;; floor_uring) echo "C floor uring" ;;
    base_epoll) echo "coronet ws_rooms epoll (BASE_BUILD)" ;; base_uring) echo "coronet ws_rooms uring (BASE_BUILD)" ;;
    esac
}

declare -A best_rate best_cpu best_pct best_cli best_alloc cpu_round
read -r -a servers <<<"$SERVERS"
nservers=${#servers[@]}
t0=$SECONDS
for ((round = 0; round < REPEAT; ++round)); do
    for r in $RECEIVERS; do
        for ((k = 0; k < nservers; ++k)); do
            s="${servers[$(((k + round) % nservers))]}"
            n="$s-$r-$round"
            env=(env LD_PRELOAD="$mcount" MALLOC_COUNT_FILE="$work/$n.counts")
            case "$s" in
            epoll | uring) start_printing "$n" "${env[@]}" "$rooms" --port 0 --backend "$s" \
                --max-connections $((r + 10)) --no-deflate ;;
            epoll2 | uring2) start_printing "$n" "${env[@]}" "$rooms" --port 0 --backend "${s%2}" \
                --threads 2 --max-connections $((2 * (r + 10))) --no-deflate ;;
            node) start_printing "$n" "${env[@]}" NODE_PATH="$nodedir/node_modules" node "$here/node_ws_rooms.js" --port 0 ;;
            floor_epoll | floor_uring) start_printing "$n" "${env[@]}" "$floor" --port 0 --backend "${s#floor_}" ;;
            base_epoll | base_uring) start_printing "$n" "${env[@]}" "$BASE_BUILD/examples/ws_rooms/ws_rooms" --port 0 \
                --backend "${s#base_}" --max-connections $((r + 10)) --no-deflate ;;
            esac
            limit="$(awk -v w="$WARMUP" -v d="$DURATION" -v r="$r" 'BEGIN{printf "%d", w + d + 60 + r / 500}')"
            if ! timeout "$limit" taskset -c "$CPU" "$load" --port "${port[$n]}" --receivers "$r" --size "$SIZE" \
                --window "$WINDOW" --warmup "$WARMUP" --duration "$DURATION" --server-pid "${pid[$n]}" \
                --alloc-file "$work/$n.counts" --backend "$LOAD_BACKEND" >"$work/load.out" 2>"$work/load.err"; then
                echo "run_ws_broadcast: $s receivers=$r failed:" >&2
                cat "$work/load.out" "$work/load.err" >&2
                stop_one "$n"
                continue
            fi
            stop_one "$n"
            line="$(grep -m1 '^ws_broadcast ' "$work/load.out")"
            val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
            rate="$(val deliveries_per_s)"
            read -r cpu_us pct cli_us < <(awk -v s="$(val server_cpu_us)" -v d="$(val deliveries)" \
                -v t="$(val seconds)" -v c="$(val client_cpu_us)" \
                'BEGIN { printf "%.3f %.0f %.3f\n", s / d, 100 * s / 1e6 / t, c / d }')
            apb="$(val server_allocs_per_broadcast)"
            echo "round=$round server=$s receivers=$r deliveries_per_s=$rate server_cpu_us_per_delivery=$cpu_us server_cpu_pct=$pct load_cpu_us_per_delivery=$cli_us allocs_per_broadcast=$apb broadcasts=$(val broadcasts)"
            key="$s|$r"
            if [[ -z "${best_rate[$key]:-}" ]] || ((rate > ${best_rate[$key]})); then best_rate[$key]=$rate; fi
            if [[ -z "${best_cpu[$key]:-}" ]] || awk -v a="$cpu_us" -v b="${best_cpu[$key]}" 'BEGIN{exit !(a < b)}'; then
                best_cpu[$key]=$cpu_us
                best_pct[$key]=$pct
                best_cli[$key]=$cli_us
            fi
            # allocations per broadcast: the highest of the rounds
            if [[ -z "${best_alloc[$key]:-}" ]] || awk -v a="$apb" -v b="${best_alloc[$key]}" 'BEGIN{exit !(a > b)}'; then
                best_alloc[$key]=$apb
            fi
            cpu_round["$key|$round"]=$cpu_us
        done
    done
done
echo "# measured part: $((SECONDS - t0)) s; load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
ref_label="$REF"
[[ "$REF" == loops ]] && ref_label="1 loop"
[[ "$REF" == floor ]] && ref_label="C floor"
[[ "$REF" == base ]] && ref_label="BASE_BUILD"
echo "| server | receivers | msg bytes | deliveries/s | server CPU µs / delivery | vs $ref_label (best) | vs $ref_label per round | server CPU % | load CPU µs / delivery | server allocs / broadcast (highest) |"
echo "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"
for r in $RECEIVERS; do
    for s in $SERVERS; do
        key="$s|$r"
        [[ -n "${best_rate[$key]:-}" ]] || continue
        ref="$REF"
        if [[ "$REF" == loops ]]; then
            case "$s" in epoll2 | uring2) ref="${s%2}" ;; *) ref=none ;; esac
        elif [[ "$REF" == floor ]]; then
            case "$s" in epoll | epoll2) ref=floor_epoll ;; uring | uring2) ref=floor_uring ;; *) ref=none ;; esac
        elif [[ "$REF" == base ]]; then
            case "$s" in epoll | uring) ref="base_$s" ;; *) ref=none ;; esac
        fi
        ref="$ref|$r"
        ratio=n/a
        per_round=""
        if [[ -n "${best_cpu[$ref]:-}" ]]; then
            ratio="$(awk -v a="${best_cpu[$key]}" -v b="${best_cpu[$ref]}" 'BEGIN{printf "%.2f", a / b}')"
            for ((round = 0; round < REPEAT; ++round)); do
                a="${cpu_round["$key|$round"]:-}"
                b="${cpu_round["$ref|$round"]:-}"
                [[ -n "$a" && -n "$b" ]] || continue
                per_round+="${per_round:+ / }$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", a / b}')"
            done
        fi
        echo "| $(name "$s") | $r | $SIZE | ${best_rate[$key]} | ${best_cpu[$key]} | $ratio | ${per_round:-n/a} | ${best_pct[$key]} | ${best_cli[$key]} | ${best_alloc[$key]} |"
    done
done
