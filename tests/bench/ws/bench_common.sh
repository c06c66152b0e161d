# shellcheck shell=bash disable=SC2154  # root, build, work, CPU: set by the sourcing driver
# bench_common.sh: shell helpers shared by the ws benchmark drivers (run_ws_bench.sh,
# run_ws_memory.sh, run_ws_broadcast.sh). Sourced, not run. Expects `set -euo pipefail`, `root`
# (the repository) and `build` (the build directory) set by the caller.

lockdir="$root/tests/interop"        # package.json + package-lock.json pinning npm ws
nodedir="$build/tests/bench/ws_node" # npm ci target

# npm ws at the version tests/interop/package-lock.json pins, installed with `npm ci` into
# $nodedir once per build dir; sets ws_version. $1: the driver's name, for messages.
ws_npm_ci() {
    local me="$1" have
    ws_version="$(node -e 'const l=require(process.argv[1]);const p=l.packages&&l.packages["node_modules/ws"];process.stdout.write(p?p.version:"")' "$lockdir/package-lock.json")"
    if [[ -z "$ws_version" ]]; then
        echo "$me: $lockdir/package-lock.json does not pin ws" >&2
        exit 1
    fi
    have="$(node -e 'try{process.stdout.write(require(process.argv[1]).version)}catch(e){}' "$nodedir/node_modules/ws/package.json" 2>/dev/null || true)"
    if [[ "$have" != "$ws_version" ]] || ! cmp -s "$lockdir/package-lock.json" "$nodedir/package-lock.json"; then
        mkdir -p "$nodedir"
        cp "$lockdir/package.json" "$lockdir/package-lock.json" "$nodedir/"
        echo "# npm ci (ws $ws_version) into $nodedir" >&2
        if ! (cd "$nodedir" && timeout 120 npm ci --no-audit --no-fund --ignore-scripts --omit=optional >"$nodedir/npm.log" 2>&1); then
            echo "$me: npm ci failed (log: $nodedir/npm.log); or leave node out" >&2
            tail -5 "$nodedir/npm.log" >&2
            exit 1
        fi
    fi
}

# Every process start_printing started; killed (TERM, then KILL) by stop_all / on exit.
started=()
declare -A pid port

# A loopback port nobody listens on now, nor on the port after it (a Redis Cluster node's bus).
free_port() {
    local p
    for ((;;)); do
        p=$((20000 + RANDOM % 20000))
        if ! ss -Htln "( sport = :$p or sport = :$((p + 1)) )" | grep -q .; then
            echo "$p"
            return
        fi
    done
}

# Starts `"$@"` pinned to $CPU, waits for its "listening on HOST:PORT" line (which may start
# with one word, as the C floors' "ideal_uring(defer) listening on ..."); sets pid[$1],
# port[$1]. Output goes to $work/NAME.out / .err. $work must exist.
start_printing() {
    local name="$1"
    shift
    taskset -c "$CPU" "$@" >"$work/$name.out" 2>"$work/$name.err" &
    local p=$!
    started+=("$p")
    local i
    for ((i = 0; i < 200; ++i)); do
        if grep -Eq '^([^ ]+ )?listening on ' "$work/$name.out" 2>/dev/null; then break; fi
        if ! kill -0 "$p" 2>/dev/null; then break; fi
        sleep 0.05
    done
    local line
    line="$(grep -E -m1 '^([^ ]+ )?listening on ' "$work/$name.out" || true)"
    if [[ -z "$line" ]]; then
        echo "$name did not start:" >&2
        cat "$work/$name.err" >&2
        exit 1
    fi
    pid[$name]=$p
    port[$name]="${line##*:}"
    port[$name]="${port[$name]%% *}"
}

# Stops one server started by start_printing (by its pid) and waits for it.
stop_one() {
    local p="${pid[$1]}"
    kill -TERM "$p" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; ++i)); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

stop_all() {
    local p
    for p in "${started[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    sleep 0.3
    for p in "${started[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}

# Raises the soft open-files limit (65536, else the hard limit); warns below $1.
raise_nofile() {
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
    if (($(ulimit -n) < $1)); then
        echo "# warning: ulimit -n is $(ulimit -n) (hard $(ulimit -Hn)); $1 wanted" >&2
    fi
}

machine_line() {
    echo "# machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(uname -r)"
}
