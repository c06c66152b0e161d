#!/usr/bin/env bash
# run_ws_bench.sh: ws_load (tests/bench/ws/ws_load.cpp, coronet::ws client sessions) against
# coronet's examples/ws_echo_server (epoll and io_uring backends), a Boost.Beast echo server
# (tests/bench/ws/beast_ws_echo.cpp) and node `ws` (tests/bench/ws/node_ws_echo.js), all in one
# run; prints markdown tables. Compression is off everywhere (coronet has no permessage-deflate
# yet; Beast and node are configured without it).
# Builds nothing and installs no system packages: it checks for the binaries, taskset and node
# and names what is missing. The one thing it fetches is npm `ws` at the version pinned by
# tests/interop/package-lock.json, with `npm ci` into BUILD_DIR/tests/bench/ws_node (skipped
# when that version is already there).
#
#   tests/bench/ws/run_ws_bench.sh [BUILD_DIR]     (default: build/release)
#
# Environment knobs (defaults in brackets):
#   SERVERS ["epoll uring beast node"]      which servers
#   CELLS ["100:20 1000:20 100:512 10:65536"]  connections:message bytes
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
# ratio to Beast's in the same cell and round is the number the target is about. All servers
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
CELLS="${CELLS:-100:20 1000:20 100:512 10:65536}"
WARMUP="${WARMUP:-1}"
DURATION="${DURATION:-3}"
REPEAT="${REPEAT:-2}"
CPU="${CPU:-1}"
TEXT="${TEXT:-0}"
LOAD_BACKEND="${LOAD_BACKEND:-uring}"

echo_server="$build/examples/ws_echo_server/ws_echo_server"
beast="$build/tests/bench/beast_ws_echo"
load="$build/tests/bench/ws_load"
lockdir="$root/tests/interop"        # package.json + package-lock.json pinning npm ws
nodedir="$build/tests/bench/ws_node" # npm ci target

# --- what is there -------------------------------------------------------------------------
missing_pkgs=()
problems=()
command -v taskset >/dev/null 2>&1 || missing_pkgs+=(util-linux)
[[ -x "$load" ]] || problems+=("$load not found: cmake --preset release && cmake --build --preset release")
for s in $SERVERS; do
    case "$s" in
    epoll | uring)
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
    *)
        problems+=("unknown server '$s' (epoll uring beast node)")
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
if [[ " $SERVERS " == *" node "* ]]; then
    ws_version="$(node -e 'const l=require(process.argv[1]);const p=l.packages&&l.packages["node_modules/ws"];process.stdout.write(p?p.version:"")' "$lockdir/package-lock.json")"
    if [[ -z "$ws_version" ]]; then
        echo "run_ws_bench: $lockdir/package-lock.json does not pin ws" >&2
        exit 1
    fi
    have="$(node -e 'try{process.stdout.write(require(process.argv[1]).version)}catch(e){}' "$nodedir/node_modules/ws/package.json" 2>/dev/null || true)"
    if [[ "$have" != "$ws_version" ]] || ! cmp -s "$lockdir/package-lock.json" "$nodedir/package-lock.json"; then
        mkdir -p "$nodedir"
        cp "$lockdir/package.json" "$lockdir/package-lock.json" "$nodedir/"
        echo "# npm ci (ws $ws_version) into $nodedir" >&2
        if ! (cd "$nodedir" && timeout 120 npm ci --no-audit --no-fund --ignore-scripts --omit=optional >"$nodedir/npm.log" 2>&1); then
            echo "run_ws_bench: npm ci failed (log: $nodedir/npm.log); or leave node out: SERVERS=\"epoll uring beast\"" >&2
            tail -5 "$nodedir/npm.log" >&2
            exit 1
        fi
    fi
fi

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
if (($(ulimit -n) < 2100)); then
    echo "run_ws_bench: ulimit -n is $(ulimit -n); 1000 connections need more" >&2
fi

work="$(mktemp -d /tmp/ws_bench.XXXXXX)"
declare -A pid port
started=()
cleanup() {
    for p in "${started[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    sleep 0.3
    for p in "${started[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# Starts a server that prints "listening on HOST:PORT"; sets pid[$1], port[$1].
start_printing() {
    local name="$1"
    shift
    taskset -c "$CPU" "$@" >"$work/$name.out" 2>"$work/$name.err" &
    local p=$!
    started+=("$p")
    local i
    for ((i = 0; i < 200; ++i)); do
        if grep -q '^listening on ' "$work/$name.out" 2>/dev/null; then break; fi
        if ! kill -0 "$p" 2>/dev/null; then break; fi
        sleep 0.05
    done
    local line
    line="$(grep -m1 '^listening on ' "$work/$name.out" || true)"
    if [[ -z "$line" ]]; then
        echo "run_ws_bench: $name did not start:" >&2
        cat "$work/$name.err" >&2
        exit 1
    fi
    pid[$name]=$p
    port[$name]="${line##*:}"
    port[$name]="${port[$name]%% *}"
}

for s in $SERVERS; do
    case "$s" in
    epoll | uring) start_printing "$s" "$echo_server" --port 0 --backend "$s" ;;
    beast) start_printing beast "$beast" --port 0 ;;
    node) NODE_PATH="$nodedir/node_modules" start_printing node node "$here/node_ws_echo.js" --port 0 ;;
    esac
done

textflag=(--backend "$LOAD_BACKEND")
((TEXT)) && textflag+=(--text)

# Sanity: every server echoes (10 connections, a short window).
for s in $SERVERS; do
    if ! out="$(timeout 20 "$load" --port "${port[$s]}" --conns 10 --size 100 --warmup 0 \
        --duration 0.2 "${textflag[@]}" 2>&1)"; then
        echo "run_ws_bench: $s does not echo:" >&2
        echo "$out" >&2
        exit 1
    fi
done

{
    echo "# machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(uname -r)"
    echo "# boost: $(awk '/define BOOST_LIB_VERSION/{gsub(/"/,"",$3);print $3}' /usr/include/boost/version.hpp 2>/dev/null || echo n/a); node: $(node --version 2>/dev/null || echo n/a); npm ws: ${ws_version:-n/a}"
    echo "# pinned to CPU $CPU: servers and ws_load; WARMUP=$WARMUP DURATION=$DURATION REPEAT=$REPEAT TEXT=$TEXT LOAD_BACKEND=$LOAD_BACKEND"
    echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

declare -A best_rate best_cpu best_pct best_cli cpu_round
read -r -a servers <<<"$SERVERS"
nservers=${#servers[@]}
limit="$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN{printf "%d", w + d + 30}')"
t0=$SECONDS
for ((round = 0; round < REPEAT; ++round)); do
    for cell in $CELLS; do
        c="${cell%%:*}"
        sz="${cell##*:}"
        for ((k = 0; k < nservers; ++k)); do
            s="${servers[$(((k + round) % nservers))]}"
            if ! timeout "$limit" taskset -c "$CPU" "$load" --port "${port[$s]}" --conns "$c" --size "$sz" \
                --warmup "$WARMUP" --duration "$DURATION" --server-pid "${pid[$s]}" "${textflag[@]}" \
                >"$work/load.out" 2>"$work/load.err"; then
                echo "run_ws_bench: $s conns=$c size=$sz failed:" >&2
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
            read -r cpu_us pct cli_us < <(awk -v s="$srv" -v n="$msgs" -v t="$secs" -v c="$cli" \
                'BEGIN { printf "%.2f %.0f %.2f\n", s / n, 100 * s / 1e6 / t, c / n }')
            echo "round=$round server=$s conns=$c size=$sz msgs=$msgs msgs_per_s=$rate server_cpu_us_per_msg=$cpu_us server_cpu_pct=$pct load_cpu_us_per_msg=$cli_us"
            key="$s|$c|$sz"
            if [[ -z "${best_rate[$key]:-}" ]] || ((rate > ${best_rate[$key]})); then best_rate[$key]=$rate; fi
            if [[ -z "${best_cpu[$key]:-}" ]] || awk -v a="$cpu_us" -v b="${best_cpu[$key]}" 'BEGIN{exit !(a < b)}'; then
                best_cpu[$key]=$cpu_us
                best_pct[$key]=$pct
                best_cli[$key]=$cli_us
            fi
            # per-round value, for the ratio within a round
            cpu_round["$key|$round"]=$cpu_us
        done
    done
done
echo "# measured part: $((SECONDS - t0)) s; load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "| server | conns | message bytes | msgs/s | server CPU µs / msg | vs Beast (best) | vs Beast per round | server CPU % | ws_load CPU µs / msg |"
echo "|---|---:|---:|---:|---:|---:|---|---:|---:|"
name() {
    case "$1" in
    epoll) echo "coronet epoll" ;; uring) echo "coronet uring" ;;
    beast) echo "Boost.Beast" ;; node) echo "node ws ${ws_version}" ;;
    esac
}
for cell in $CELLS; do
    c="${cell%%:*}"
    sz="${cell##*:}"
    bk="beast|$c|$sz"
    for s in $SERVERS; do
        key="$s|$c|$sz"
        [[ -n "${best_rate[$key]:-}" ]] || continue
        ratio="n/a"
        per_round=""
        if [[ -n "${best_cpu[$bk]:-}" ]]; then
            ratio="$(awk -v a="${best_cpu[$key]}" -v b="${best_cpu[$bk]}" 'BEGIN{printf "%.2f", a / b}')"
            for ((round = 0; round < REPEAT; ++round)); do
                a="${cpu_round["$key|$round"]:-}"
                b="${cpu_round["$bk|$round"]:-}"
                [[ -n "$a" && -n "$b" ]] || continue
                per_round+="${per_round:+ / }$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", a / b}')"
            done
        fi
        echo "| $(name "$s") | $c | $sz | ${best_rate[$key]} | ${best_cpu[$key]} | $ratio | ${per_round:-n/a} | ${best_pct[$key]} | ${best_cli[$key]} |"
    done
done
