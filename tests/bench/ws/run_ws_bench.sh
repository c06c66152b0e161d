#!/usr/bin/env bash
# run_ws_bench.sh: ws_load (tests/bench/ws/ws_load.cpp, coronet::ws client sessions) against
# coronet's examples/ws_echo_server (epoll and io_uring backends), a Boost.Beast echo server
# (tests/bench/ws/beast_ws_echo.cpp) and node `ws` (tests/bench/ws/node_ws_echo.js), all in one
# run; prints markdown tables. The plain cells offer no compression (coronet's server would accept
# it, Beast and node run without it); cells with a mode (below) send JSON-like text, optionally
# with permessage-deflate, against the same coronet servers and deflate-enabled Beast and node
# instances.
# Builds nothing of coronet and installs no system packages: it checks for the binaries, taskset
# and node and names what is missing (the C floors, below, are compiled with gcc into a
# temporary directory). The one thing it fetches is npm `ws` at the version pinned by
# tests/interop/package-lock.json, with `npm ci` into BUILD_DIR/tests/bench/ws_node (skipped
# when that version is already there).
#
#   tests/bench/ws/run_ws_bench.sh [BUILD_DIR]     (default: build/release)
#
# Environment knobs (defaults in brackets):
#   SERVERS ["epoll uring beast node"]      which servers; also epoll2 / uring2: ws_echo_server
#                                           --threads 2 (two loops), for the 1-vs-2-loop rows;
#                                           ideal_epoll / ideal_uring: the minimal C echo floors
#                                           of $IDEAL_DIR (they validate nothing; binary cells
#                                           up to ~60 KiB)
#                                           base_epoll / base_uring: ws_echo_server of the
#                                           build in $BASE_BUILD (an A/B of two commits)
#   REF [beast]                             the ratio column's reference server; "loops"
#                                           compares epoll2 with epoll and uring2 with uring;
#                                           "floor" compares epoll with ideal_epoll and uring
#                                           with ideal_uring; "base" compares epoll with
#                                           base_epoll and uring with base_uring
#   BASE_BUILD []                           another build directory (e.g. a worktree of the
#                                           commit before a change, built with the release
#                                           preset), for base_epoll / base_uring
#   IDEAL_DIR [../shared/bench beside the repo]  ideal_epoll.c, ideal_uring.c and common.h
#   CELLS ["100:20 1000:20 100:512 10:65536"]  connections:message bytes[:mode], mode one of
#                                           bin   binary messages (the default; plain rows)
#                                           json  JSON-like text (ws_load --json), no compression
#                                           z     JSON-like text, permessage-deflate offered with
#                                                 context takeover (the default negotiation)
#                                           znc   as z, offering server_no_context_takeover +
#                                                 client_no_context_takeover
#                                           z and znc run against beastz / nodez (Beast / node
#                                           started with --deflate) instead of beast / node
#   ZMIN [0]                                ws_load --deflate-min-size: what ws_load compresses
#   NODE_THRESHOLD [64]                     node --threshold (coronet's default min_size is 64)
#   ALLOCS [0]                              1: servers run under malloc_count.so (LD_PRELOAD);
#                                           the tables get server allocations per message
#   WARMUP [1], DURATION [3]                seconds (fractions allowed): warm-up, then window
#   REPEAT [2]                              rounds; a cell shows the best msgs/s and the lowest
#                                           server CPU per message of its rounds
#   CPU [1]                                 the core every server and ws_load are pinned to
#   TEXT [0]                                1: text messages instead of binary
#   LOAD_BACKEND [uring]                    ws_load's own loop backend (uring|epoll)
#
# Per cell and server: ws_load opens the connections, runs WARMUP seconds, then counts echoes
# for DURATION seconds and reads the server's utime+stime from /proc/PID/stat (all threads) at
# the window's start and end: connects, handshakes and closes are never in it. Server and
# ws_load share one core (taskset), so msgs/s says how the core was split, server CPU µs per
# message says what a message (one received frame + one echoed frame) cost the server; its
# ratio to Beast's in the same cell and round is the number the target is about (for the JSON
# cells the ratio is to node's: that table also has the bytes on the wire per message, each
# direction, from ws_load's TCP_INFO byte counts over the window). All servers
# stay up for the whole run (idle ones use no CPU); the order of the servers rotates between
# rounds. Loopback only; every server started is killed on exit. With the defaults:
# 4 servers x 4 cells x 2 rounds x ~4.5 s = about 2.5 minutes, every ws_load under a timeout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
build="${1:-build/release}"
if [[ ! -d "$build" && -d "$root/$build" ]]; then build="$root/$build"; fi
build="$(cd "$build" && pwd)"

SERVERS="${SERVERS:-epoll uring beast node}"
IDEAL_DIR="${IDEAL_DIR:-$root/../shared/bench}"
CELLS="${CELLS:-100:20 1000:20 100:512 10:65536}"
WARMUP="${WARMUP:-1}"
DURATION="${DURATION:-3}"
REPEAT="${REPEAT:-2}"
CPU="${CPU:-1}"
REF="${REF:-beast}"
TEXT="${TEXT:-0}"
LOAD_BACKEND="${LOAD_BACKEND:-uring}"
ZMIN="${ZMIN:-0}"
NODE_THRESHOLD="${NODE_THRESHOLD:-64}"
ALLOCS="${ALLOCS:-0}"

echo_server="$build/examples/ws_echo_server/ws_echo_server"
beast="$build/tests/bench/beast_ws_echo"
load="$build/tests/bench/ws_load"
mcount="$build/tests/bench/libmalloc_count.so"
# shellcheck source-path=SCRIPTDIR source=bench_common.sh
source "$here/bench_common.sh" # lockdir, nodedir, ws_npm_ci, start_printing, stop_all

# --- what is there -------------------------------------------------------------------------
missing_pkgs=()
problems=()
command -v taskset >/dev/null 2>&1 || missing_pkgs+=(util-linux)
[[ -x "$load" ]] || problems+=("$load not found: cmake --preset release && cmake --build --preset release")
((ALLOCS == 0)) || [[ -f "$mcount" ]] || problems+=("$mcount not found (ALLOCS=1): build target malloc_count")
for cell in $CELLS; do
    [[ "$cell" =~ ^[0-9]+:[0-9]+(:(bin|json|z|znc))?$ ]] ||
        problems+=("bad cell '$cell' (conns:bytes[:bin|json|z|znc])")
done
for s in $SERVERS; do
    case "$s" in
    epoll | uring | epoll2 | uring2)
        [[ -x "$echo_server" ]] || problems+=("$echo_server not found: cmake --preset release && cmake --build --preset release")
        ;;
    beast)
        if [[ ! -e /usr/include/boost/beast.hpp ]]; then
            missing_pkgs+=(libboost-dev)
            problems+=("beast_ws_echo needs the Boost headers; after installing, re-run cmake and build target beast_ws_echo")
        elif [[ ! -x "$beast" ]]; then
            problems+=("$beast not found: re-run 'cmake --preset release' (it adds beast_ws_echo once Boost is there) and build it")
        fi
        ;;
    node)
        command -v node >/dev/null 2>&1 || missing_pkgs+=(nodejs)
        command -v npm >/dev/null 2>&1 || missing_pkgs+=(npm)
        [[ -f "$lockdir/package-lock.json" && -f "$lockdir/package.json" ]] ||
            problems+=("$lockdir/package.json + package-lock.json (pinning npm ws) not found")
        ;;
    base_epoll | base_uring)
        [[ -x "${BASE_BUILD:-}/examples/ws_echo_server/ws_echo_server" ]] ||
            problems+=("BASE_BUILD='${BASE_BUILD:-}' has no examples/ws_echo_server/ws_echo_server")
        ;;
    ideal_epoll | ideal_uring)
        [[ -f "$IDEAL_DIR/$s.c" && -f "$IDEAL_DIR/common.h" ]] ||
            problems+=("$IDEAL_DIR/$s.c not found (set IDEAL_DIR)")
        command -v gcc >/dev/null 2>&1 || missing_pkgs+=(gcc)
        ;;
    *)
        problems+=("unknown server '$s' (epoll uring epoll2 uring2 beast node ideal_epoll ideal_uring base_epoll base_uring)")
        ;;
    esac
done
if ((${#missing_pkgs[@]} || ${#problems[@]})); then
    if ((${#missing_pkgs[@]})); then
        echo "run_ws_bench: missing apt packages: ${missing_pkgs[*]}" >&2
        echo "    apt-get install -y ${missing_pkgs[*]}" >&2
    fi
    for p in "${problems[@]}"; do echo "run_ws_bench: $p" >&2; done
    echo "    (or leave servers out: SERVERS=\"epoll uring\" $0)" >&2
    exit 1
fi

# npm ws at the pinned version (npm ci, once per build dir).
ws_version=""
if [[ " $SERVERS " == *" node "* ]]; then ws_npm_ci run_ws_bench; fi

raise_nofile 2100

work="$(mktemp -d /tmp/ws_bench.XXXXXX)"
cleanup() {
    stop_all
    rm -rf "$work"
}
trap cleanup EXIT

# A cell's mode (bin when not given) and the server instance that plays `s` in it.
mode_of() {
    local m="${1#*:}"
    [[ "$m" == *:* ]] && echo "${m#*:}" || echo bin
}
instance() { # server mode
    case "$2" in
    z | znc) case "$1" in beast) echo beastz ;; node) echo nodez ;; *) echo "$1" ;; esac ;;
    *) echo "$1" ;;
    esac
}
need_z=0
for cell in $CELLS; do
    case "$(mode_of "$cell")" in z | znc) need_z=1 ;; esac
done
instances=()
for s in $SERVERS; do
    instances+=("$s")
    if ((need_z)) && [[ "$s" == beast || "$s" == node ]]; then instances+=("${s}z"); fi
done

preload=()
if ((ALLOCS)); then
    preload=(env "LD_PRELOAD=$mcount")
fi
for s in "${instances[@]}"; do
    mc=()
    ((ALLOCS)) && mc=("MALLOC_COUNT_FILE=$work/$s.counts")
    case "$s" in
    epoll | uring) start_printing "$s" "${preload[@]}" "${mc[@]}" "$echo_server" --port 0 --backend "$s" ;;
    epoll2 | uring2) start_printing "$s" "${preload[@]}" "${mc[@]}" "$echo_server" --port 0 --backend "${s%2}" --threads 2 ;;
    beast) start_printing beast "${preload[@]}" "${mc[@]}" "$beast" --port 0 ;;
    base_epoll | base_uring)
        start_printing "$s" "${preload[@]}" "${mc[@]}" "$BASE_BUILD/examples/ws_echo_server/ws_echo_server" \
            --port 0 --backend "${s#base_}"
        ;;
    ideal_epoll | ideal_uring)
        libs=(-lcrypto)
        [[ "$s" == ideal_uring ]] && libs+=(-luring)
        gcc -O2 -w "$IDEAL_DIR/$s.c" -o "$work/$s" "${libs[@]}"
        start_printing "$s" "${preload[@]}" "${mc[@]}" "$work/$s" "$(free_port)"
        ;;
    beastz) start_printing beastz "${preload[@]}" "${mc[@]}" "$beast" --port 0 --deflate ;;
    node) NODE_PATH="$nodedir/node_modules" start_printing node "${preload[@]}" "${mc[@]}" node "$here/node_ws_echo.js" --port 0 ;;
    nodez) NODE_PATH="$nodedir/node_modules" start_printing nodez "${preload[@]}" "${mc[@]}" node "$here/node_ws_echo.js" \
        --port 0 --deflate --threshold "$NODE_THRESHOLD" ;;
    esac
done

textflag=(--backend "$LOAD_BACKEND")
((TEXT)) && textflag+=(--text)
# ws_load's message and compression flags for a mode.
mode_flags() {
    case "$1" in
    bin) printf '%s\n' "${textflag[@]}" ;;
    json) printf '%s\n' --backend "$LOAD_BACKEND" --json ;;
    z) printf '%s\n' --backend "$LOAD_BACKEND" --json --deflate --deflate-min-size "$ZMIN" ;;
    znc) printf '%s\n' --backend "$LOAD_BACKEND" --json --deflate --deflate-min-size "$ZMIN" --no-context-takeover ;;
    esac
}

# Sanity: every server echoes (10 connections, a short window); the deflate instances must
# agree to compress.
for s in "${instances[@]}"; do
    m=bin
    [[ "$s" == *z ]] && m=z
    mapfile -t mf < <(mode_flags "$m")
    if ! out="$(timeout 20 "$load" --port "${port[$s]}" --conns 10 --size 100 --warmup 0 \
        --duration 0.2 "${mf[@]}" 2>&1)"; then
        echo "run_ws_bench: $s does not echo:" >&2
        echo "$out" >&2
        exit 1
    fi
    if [[ "$m" == z && "$out" != *" deflate=ctx "* ]]; then
        echo "run_ws_bench: $s did not agree to permessage-deflate:" >&2
        echo "$out" >&2
        exit 1
    fi
done

{
    machine_line
    echo "# boost: $(awk '/define BOOST_LIB_VERSION/{gsub(/"/,"",$3);print $3}' /usr/include/boost/version.hpp 2>/dev/null || echo n/a); node: $(node --version 2>/dev/null || echo n/a); npm ws: ${ws_version:-n/a}"
    echo "# pinned to CPU $CPU: servers and ws_load; WARMUP=$WARMUP DURATION=$DURATION REPEAT=$REPEAT TEXT=$TEXT LOAD_BACKEND=$LOAD_BACKEND ZMIN=$ZMIN NODE_THRESHOLD=$NODE_THRESHOLD ALLOCS=$ALLOCS"
    echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

declare -A best_rate best_cpu best_pct best_cli best_up best_down best_alloc agreed cpu_round
read -r -a servers <<<"$SERVERS"
nservers=${#servers[@]}
limit="$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN{printf "%d", w + d + 30}')"
t0=$SECONDS
for ((round = 0; round < REPEAT; ++round)); do
    for cell in $CELLS; do
        c="${cell%%:*}"
        rest="${cell#*:}"
        sz="${rest%%:*}"
        mode="$(mode_of "$cell")"
        mapfile -t mf < <(mode_flags "$mode")
        for ((k = 0; k < nservers; ++k)); do
            s="$(instance "${servers[$(((k + round) % nservers))]}" "$mode")"
            af=()
            ((ALLOCS)) && af=(--alloc-file "$work/$s.counts")
            if ! timeout "$limit" taskset -c "$CPU" "$load" --port "${port[$s]}" --conns "$c" --size "$sz" \
                --warmup "$WARMUP" --duration "$DURATION" --server-pid "${pid[$s]}" "${mf[@]}" "${af[@]}" \
                >"$work/load.out" 2>"$work/load.err"; then
                echo "run_ws_bench: $s conns=$c size=$sz mode=$mode failed:" >&2
                cat "$work/load.out" "$work/load.err" >&2
                continue
            fi
            line="$(grep -m1 '^ws_load ' "$work/load.out")"
            val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
            msgs="$(val msgs)"
            rate="$(val msgs_per_s)"
            secs="$(val seconds)"
            srv="$(val server_cpu_us)"
            cli="$(val client_cpu_us)"
            read -r cpu_us pct cli_us up down apm < <(awk -v s="$srv" -v n="$msgs" -v t="$secs" -v c="$cli" \
                -v u="$(val up_bytes)" -v d="$(val down_bytes)" -v a="$(val server_allocs)" \
                'BEGIN { printf "%.2f %.0f %.2f %.1f %.1f %s\n", s / n, 100 * s / 1e6 / t, c / n, u / n, d / n,
                         (a < 0 ? "n/a" : sprintf("%.2f", a / n)) }')
            echo "round=$round server=$s conns=$c size=$sz mode=$mode deflate=$(val deflate) msgs=$msgs msgs_per_s=$rate server_cpu_us_per_msg=$cpu_us server_cpu_pct=$pct load_cpu_us_per_msg=$cli_us up_b_per_msg=$up down_b_per_msg=$down server_allocs_per_msg=$apm"
            key="$s|$c|$sz|$mode"
            agreed[$key]="$(val deflate)"
            if [[ -z "${best_rate[$key]:-}" ]] || ((rate > ${best_rate[$key]})); then best_rate[$key]=$rate; fi
            if [[ -z "${best_cpu[$key]:-}" ]] || awk -v a="$cpu_us" -v b="${best_cpu[$key]}" 'BEGIN{exit !(a < b)}'; then
                best_cpu[$key]=$cpu_us
                best_pct[$key]=$pct
                best_cli[$key]=$cli_us
                best_up[$key]=$up
                best_down[$key]=$down
                best_alloc[$key]=$apm
            fi
            # per-round value, for the ratio within a round
            cpu_round["$key|$round"]=$cpu_us
        done
    done
done
echo "# measured part: $((SECONDS - t0)) s; load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

name() {
    case "$1" in
    epoll) echo "coronet epoll" ;; uring) echo "coronet uring" ;;
    epoll2) echo "coronet epoll, 2 loops" ;; uring2) echo "coronet uring, 2 loops" ;;
    beast) echo "Boost.Beast" ;; node) echo "node ws ${ws_version}" ;;
    ideal_epoll) echo "C floor epoll (validates nothing)" ;; ideal_uring) echo "C floor uring (validates nothing)" ;;
    base_epoll) echo "coronet epoll (BASE_BUILD)" ;; base_uring) echo "coronet uring (BASE_BUILD)" ;;
    beastz) echo "Boost.Beast (deflate)" ;; nodez) echo "node ws ${ws_version} (deflate)" ;;
    esac
}
# ratio of key's CPU per message to ref's: best over best, then per round.
ratios() { # key ref
    local key="$1" ref="$2" r per_round="" a b
    if [[ -z "${best_cpu[$ref]:-}" ]]; then
        echo "n/a|n/a"
        return
    fi
    r="$(awk -v a="${best_cpu[$key]}" -v b="${best_cpu[$ref]}" 'BEGIN{printf "%.2f", a / b}')"
    for ((round = 0; round < REPEAT; ++round)); do
        a="${cpu_round["$key|$round"]:-}"
        b="${cpu_round["$ref|$round"]:-}"
        [[ -n "$a" && -n "$b" ]] || continue
        per_round+="${per_round:+ / }$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", a / b}')"
    done
    echo "$r|${per_round:-n/a}"
}
plain_cells=()
json_cells=()
for cell in $CELLS; do
    if [[ "$(mode_of "$cell")" == bin ]]; then plain_cells+=("$cell"); else json_cells+=("$cell"); fi
done
allocs_head=""
allocs_sep=""
((ALLOCS)) && allocs_head=" server allocs / msg |" && allocs_sep="---:|"
if ((${#plain_cells[@]})); then
    echo
    ref_label="Beast"
    [[ "$REF" == beast ]] || ref_label="$REF"
    [[ "$REF" == loops ]] && ref_label="1 loop"
    [[ "$REF" == floor ]] && ref_label="C floor"
    [[ "$REF" == base ]] && ref_label="BASE_BUILD"
    echo "| server | conns | message bytes | msgs/s | server CPU µs / msg | vs $ref_label (best) | vs $ref_label per round | server CPU % | ws_load CPU µs / msg |$allocs_head"
    echo "|---|---:|---:|---:|---:|---:|---|---:|---:|$allocs_sep"
    for cell in "${plain_cells[@]}"; do
        c="${cell%%:*}"
        rest="${cell#*:}"
        sz="${rest%%:*}"
        for s in $SERVERS; do
            key="$s|$c|$sz|bin"
            [[ -n "${best_rate[$key]:-}" ]] || continue
            ref="$REF"
            if [[ "$REF" == loops ]]; then
                case "$s" in epoll2 | uring2) ref="${s%2}" ;; *) ref=none ;; esac
            elif [[ "$REF" == floor ]]; then
                case "$s" in epoll | epoll2) ref=ideal_epoll ;; uring | uring2) ref=ideal_uring ;; *) ref=none ;; esac
            elif [[ "$REF" == base ]]; then
                case "$s" in epoll | uring) ref="base_$s" ;; *) ref=none ;; esac
            fi
            IFS='|' read -r ratio per_round < <(ratios "$key" "$ref|$c|$sz|bin")
            extra=""
            ((ALLOCS)) && extra=" ${best_alloc[$key]} |"
            echo "| $(name "$s") | $c | $sz | ${best_rate[$key]} | ${best_cpu[$key]} | $ratio | $per_round | ${best_pct[$key]} | ${best_cli[$key]} |$extra"
        done
    done
fi
if ((${#json_cells[@]})); then
    echo
    echo "JSON-like text messages (ws_load --json); compression as agreed (ctx: context takeover both ways; no_ctx: neither side keeps context):"
    echo
    echo "| server | conns | message bytes | compression | msgs/s | server CPU µs / msg | vs node (best) | vs node per round | server CPU % | ws_load CPU µs / msg | bytes up / msg | bytes down / msg |$allocs_head"
    echo "|---|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|$allocs_sep"
    for cell in "${json_cells[@]}"; do
        c="${cell%%:*}"
        rest="${cell#*:}"
        sz="${rest%%:*}"
        mode="$(mode_of "$cell")"
        for s0 in $SERVERS; do
            s="$(instance "$s0" "$mode")"
            key="$s|$c|$sz|$mode"
            [[ -n "${best_rate[$key]:-}" ]] || continue
            IFS='|' read -r ratio per_round < <(ratios "$key" "$(instance node "$mode")|$c|$sz|$mode")
            extra=""
            ((ALLOCS)) && extra=" ${best_alloc[$key]} |"
            echo "| $(name "$s") | $c | $sz | ${agreed[$key]} | ${best_rate[$key]} | ${best_cpu[$key]} | $ratio | $per_round | ${best_pct[$key]} | ${best_cli[$key]} | ${best_up[$key]} | ${best_down[$key]} |$extra"
        done
    done
fi
