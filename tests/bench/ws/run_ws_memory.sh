#!/usr/bin/env bash
# run_ws_memory.sh: what an idle WebSocket connection costs a server, by what was negotiated.
# For each server and compression case, starts a fresh server under malloc_count.so, and runs
# `ws_load --rss-probe`: the server's VmRSS and live heap bytes before connecting, after CONNS
# handshakes, and after every connection made EXCHANGES round trips of a SIZE-byte JSON-like
# text message (so a compressor and an inflater exist where the negotiation keeps them) and
# sat idle for SETTLE seconds. Prints the per-connection deltas as a markdown table.
# Builds nothing; fetches npm ws (pinned) like run_ws_bench.sh when a node server is asked for.
#
#   tests/bench/ws/run_ws_memory.sh [BUILD_DIR]     (default: build/release)
#
# Environment knobs (defaults in brackets):
#   SERVERS ["epoll uring node"]   epoll, uring: examples/ws_echo_server (accepts deflate by
#                                  default); node: node_ws_echo.js --deflate;
#                                  rooms-epoll, rooms-uring: examples/ws_rooms (negotiates
#                                  server_no_context_takeover); node-rooms: node_ws_rooms.js
#                                  --deflate; see ROOMS
#   ROOMS [shared]                 rooms servers only: shared: every connection joins /bench and
#                                  sends nothing (EXCHANGES ignored: a message would reach all
#                                  the others); own: connection i joins /r<i> alone and sends
#                                  EXCHANGES messages nobody receives (ws_load --no-echo), so the
#                                  server inflates them
#   CASES ["none ctx noctx"]       none: nothing offered; ctx: permessage-deflate with context
#                                  takeover both ways; noctx: server_ and client_no_context_takeover
#   CONNS [2000], SIZE [4096], EXCHANGES [1], SETTLE [1] (seconds), REPEAT [2]
#   CPU [1]                        the core servers and ws_load are pinned to
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
build="${1:-build/release}"
if [[ ! -d "$build" && -d "$root/$build" ]]; then build="$root/$build"; fi
build="$(cd "$build" && pwd)"

SERVERS="${SERVERS:-epoll uring node}"
CASES="${CASES:-none ctx noctx}"
CONNS="${CONNS:-2000}"
SIZE="${SIZE:-4096}"
EXCHANGES="${EXCHANGES:-1}"
SETTLE="${SETTLE:-1}"
REPEAT="${REPEAT:-2}"
CPU="${CPU:-1}"
ROOMS="${ROOMS:-shared}"

echo_server="$build/examples/ws_echo_server/ws_echo_server"
rooms="$build/examples/ws_rooms/ws_rooms"
load="$build/tests/bench/ws_load"
mcount="$build/tests/bench/libmalloc_count.so"
# shellcheck source-path=SCRIPTDIR source=bench_common.sh
source "$here/bench_common.sh"

problems=()
[[ -x "$load" ]] || problems+=("$load not found (build target ws_load)")
[[ -f "$mcount" ]] || problems+=("$mcount not found (build target malloc_count)")
for s in $SERVERS; do
    case "$s" in
    epoll | uring) [[ -x "$echo_server" ]] || problems+=("$echo_server not found") ;;
    rooms-epoll | rooms-uring) [[ -x "$rooms" ]] || problems+=("$rooms not found (build target ws_rooms)") ;;
    node | node-rooms) command -v node >/dev/null 2>&1 || problems+=("node not found (apt-get install nodejs npm)") ;;
    *) problems+=("unknown server '$s'") ;;
    esac
done
for c in $CASES; do
    case "$c" in none | ctx | noctx) ;; *) problems+=("unknown case '$c' (none ctx noctx)") ;; esac
done
if ((${#problems[@]})); then
    for p in "${problems[@]}"; do echo "run_ws_memory: $p" >&2; done
    exit 1
fi
ws_version=""
if [[ " $SERVERS " == *" node"* ]]; then ws_npm_ci run_ws_memory; fi

raise_nofile $((CONNS + 100))
work="$(mktemp -d /tmp/ws_memory.XXXXXX)"
cleanup() {
    stop_all
    rm -rf "$work"
}
trap cleanup EXIT

{
    machine_line
    echo "# node: $(node --version 2>/dev/null || echo n/a); npm ws: ${ws_version:-n/a}; ulimit -n $(ulimit -n)"
    echo "# CONNS=$CONNS SIZE=$SIZE EXCHANGES=$EXCHANGES SETTLE=$SETTLE REPEAT=$REPEAT CPU=$CPU ROOMS=$ROOMS"
    echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

name() {
    case "$1" in
    epoll) echo "coronet ws_echo_server epoll" ;; uring) echo "coronet ws_echo_server uring" ;;
    rooms-epoll) echo "coronet ws_rooms epoll" ;; rooms-uring) echo "coronet ws_rooms uring" ;;
    node) echo "node ws ${ws_version} echo" ;; node-rooms) echo "node ws ${ws_version} rooms" ;;
    esac
}

declare -A rss_open rss_idle heap_open heap_idle agreed
for ((round = 0; round < REPEAT; ++round)); do
    for s in $SERVERS; do
        for c in $CASES; do
            n="$s-$c-$round"
            env=(env LD_PRELOAD="$mcount" MALLOC_COUNT_FILE="$work/$n.counts")
            case "$s" in
            epoll | uring) start_printing "$n" "${env[@]}" "$echo_server" --port 0 --backend "$s" ;;
            rooms-epoll | rooms-uring) start_printing "$n" "${env[@]}" "$rooms" --port 0 --backend "${s#rooms-}" \
                --max-connections $((CONNS + 10)) ;;
            node) start_printing "$n" "${env[@]}" NODE_PATH="$nodedir/node_modules" node "$here/node_ws_echo.js" \
                --port 0 --deflate ;;
            node-rooms) start_printing "$n" "${env[@]}" NODE_PATH="$nodedir/node_modules" node "$here/node_ws_rooms.js" \
                --port 0 --deflate ;;
            esac
            flags=(--json --size "$SIZE" --path / --exchanges "$EXCHANGES")
            case "$s" in
            rooms-* | node-rooms)
                if [[ "$ROOMS" == own ]]; then
                    flags=(--json --size "$SIZE" --path /r --unique-paths --no-echo --exchanges "$EXCHANGES")
                else
                    flags=(--json --size "$SIZE" --path /bench --exchanges 0)
                fi
                ;;
            esac
            case "$c" in
            ctx) flags+=(--deflate) ;;
            noctx) flags+=(--deflate --no-context-takeover) ;;
            esac
            sleep 0.5 # let the server's start-up settle before the first RSS reading
            if ! out="$(timeout 300 taskset -c "$CPU" "$load" --rss-probe --port "${port[$n]}" \
                --conns "$CONNS" --settle "$SETTLE" --server-pid "${pid[$n]}" \
                --alloc-file "$work/$n.counts" "${flags[@]}" 2>&1)"; then
                echo "run_ws_memory: $s $c failed:" >&2
                echo "$out" >&2
                stop_one "$n"
                continue
            fi
            line="$(grep -m1 '^ws_rss ' <<<"$out")"
            echo "round=$round server=$s case=$c $line"
            val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
            k="$s|$c"
            agreed[$k]="$(val deflate)"
            rss_open[$k]+="${rss_open[$k]:+ / }$(awk -v b="$(val open_b_per_conn)" 'BEGIN{printf "%.1f", b / 1024}')"
            rss_idle[$k]+="${rss_idle[$k]:+ / }$(awk -v b="$(val idle_b_per_conn)" 'BEGIN{printf "%.1f", b / 1024}')"
            heap_open[$k]+="${heap_open[$k]:+ / }$(awk -v b="$(val heap_open_b_per_conn)" 'BEGIN{printf "%.1f", b / 1024}')"
            heap_idle[$k]+="${heap_idle[$k]:+ / }$(awk -v b="$(val heap_idle_b_per_conn)" 'BEGIN{printf "%.1f", b / 1024}')"
            stop_one "$n"
        done
    done
done
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "KiB per connection (each round, a fresh server per cell), $CONNS connections:"
echo
echo "| server | offered | agreed | RSS after handshake | RSS idle after the exchange | live heap after handshake | live heap idle after the exchange |"
echo "|---|---|---|---:|---:|---:|---:|"
for s in $SERVERS; do
    for c in $CASES; do
        k="$s|$c"
        [[ -n "${agreed[$k]:-}" ]] || continue
        echo "| $(name "$s") | $c | ${agreed[$k]} | ${rss_open[$k]} | ${rss_idle[$k]} | ${heap_open[$k]} | ${heap_idle[$k]} |"
    done
done
