#!/usr/bin/env bash
# run_http_bench.sh: wrk against coronet's examples/http_hello (epoll and io_uring backends),
# nginx (one worker) and a Boost.Beast server (tests/bench/http/beast_hello.cpp), all answering
# GET / with "Hello, World!" (text/plain, 13 bytes), in one run; prints markdown tables.
# Installs and builds nothing: it checks for wrk, nginx and the beast_hello binary (Boost
# headers) and says which apt packages are missing.
#
#   tests/bench/http/run_http_bench.sh [BUILD_DIR]     (default: build/release)
#
# Environment knobs (defaults in brackets):
#   SERVERS ["epoll uring nginx beast"]   which servers; also epoll2 / uring2: http_hello
#                                         --threads 2 (two loops), for the 1-vs-2-loop rows
#                                         base_epoll / base_uring: http_hello of the build in
#                                         $BASE_BUILD (an A/B of two commits)
#   REF [nginx]                           the ratio column's reference server; "loops" compares
#                                         epoll2 with epoll and uring2 with uring; "base"
#                                         compares epoll with base_epoll and uring with base_uring
#   BASE_BUILD []                         another build directory (release preset), for
#                                         base_epoll / base_uring
#   CONNS ["1 100 1000"]                  wrk -c (always -t1: one wrk thread)
#   PIPELINE ["0 16"]                     0 = one request per write; N = N pipelined requests
#                                         per write (pipeline.lua)
#   WARMUP [1], DURATION [5]              whole seconds (wrk takes no fractions): a wrk warm-up
#                                         run (discarded), then the measured run, per cell and
#                                         server
#   REPEAT [1]                            rounds; a cell shows the best req/s and the lowest
#                                         server CPU per request of its rounds
#   CPU [1]                               the core every server and wrk are pinned to (taskset)
#
# Per cell and server: wrk's req/s and request count; server CPU = utime+stime from
# /proc/PID/stat (for nginx: master + worker) sampled right before and right after the measured
# wrk run, so the connects and closes of that run are inside it; wrk's own CPU (bash `time`);
# server CPU µs / request, and its ratio to nginx's in the same cell and round. Servers and wrk
# share one core, so req/s says how the core was split, CPU per request says what each request
# cost the server. All servers stay up for the whole run (idle ones use no CPU); the order of the
# servers rotates between rounds. Loopback only; every server started is killed on exit.
# With the defaults: 4 servers x 3 x 2 cells x ~6.5 s = about 2.7 minutes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
build="${1:-build/release}"
if [[ ! -d "$build" && -d "$root/$build" ]]; then build="$root/$build"; fi

SERVERS="${SERVERS:-epoll uring nginx beast}"
CONNS="${CONNS:-1 100 1000}"
PIPELINE="${PIPELINE:-0 16}"
WARMUP="${WARMUP:-1}"
DURATION="${DURATION:-5}"
REPEAT="${REPEAT:-1}"
CPU="${CPU:-1}"

hello="$build/examples/http_hello/http_hello"
beast="$build/tests/bench/beast_hello"

# --- what is there -------------------------------------------------------------------------
missing_pkgs=()
problems=()
command -v wrk >/dev/null 2>&1 || missing_pkgs+=(wrk)
command -v taskset >/dev/null 2>&1 || missing_pkgs+=(util-linux)
for s in $SERVERS; do
    case "$s" in
    epoll | uring | epoll2 | uring2)
        [[ -x "$hello" ]] || problems+=("$hello not found: cmake --preset release && cmake --build --preset release")
        ;;
    base_epoll | base_uring)
        [[ -x "${BASE_BUILD:-}/examples/http_hello/http_hello" ]] ||
            problems+=("BASE_BUILD='${BASE_BUILD:-}' has no examples/http_hello/http_hello")
        ;;
    nginx)
        command -v nginx >/dev/null 2>&1 || missing_pkgs+=("nginx-light (or nginx)")
        ;;
    beast)
        if [[ ! -e /usr/include/boost/beast.hpp ]]; then
            missing_pkgs+=(libboost-dev)
            problems+=("beast_hello needs the Boost headers; after installing, re-run cmake and build target beast_hello")
        elif [[ ! -x "$beast" ]]; then
            problems+=("$beast not found: re-run 'cmake --preset release' (it adds beast_hello once Boost is there) and build it")
        fi
        ;;
    *)
        problems+=("unknown server '$s' (epoll uring epoll2 uring2 nginx beast base_epoll base_uring)")
        ;;
    esac
done
if ((${#missing_pkgs[@]} || ${#problems[@]})); then
    if ((${#missing_pkgs[@]})); then
        echo "run_http_bench: missing apt packages: ${missing_pkgs[*]}" >&2
        echo "    apt-get install -y ${missing_pkgs[*]/ (or nginx)/}" >&2
    fi
    for p in "${problems[@]}"; do echo "run_http_bench: $p" >&2; done
    echo "    (or leave servers out: SERVERS=\"epoll uring\" $0)" >&2
    exit 1
fi

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
if (($(ulimit -n) < 4096)); then
    echo "run_http_bench: ulimit -n is $(ulimit -n); -c 1000 needs more" >&2
fi
clk_tck="$(getconf CLK_TCK)"

work="$(mktemp -d /tmp/http_bench.XXXXXX)"
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

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts a server that prints "listening on HOST:PORT"; sets pid[$1], port[$1].
start_printing() {
    local name="$1"
    shift
    taskset -c "$CPU" "$@" >"$work/$name.out" 2>"$work/$name.err" &
    local p=$!
    started+=("$p")
    local i
    for ((i = 0; i < 100; ++i)); do
        if grep -q '^listening on ' "$work/$name.out" 2>/dev/null; then break; fi
        if ! kill -0 "$p" 2>/dev/null; then break; fi
        sleep 0.05
    done
    local line
    line="$(grep -m1 '^listening on ' "$work/$name.out" || true)"
    if [[ -z "$line" ]]; then
        echo "run_http_bench: $name did not start:" >&2
        cat "$work/$name.err" >&2
        exit 1
    fi
    pid[$name]=$p
    port[$name]="${line##*:}"
    port[$name]="${port[$name]%% *}"
}

start_nginx() {
    local p tries
    mkdir -p "$work/nginx"
    for ((tries = 0; tries < 20; ++tries)); do
        p=$((20000 + RANDOM % 20000))
        port_free "$p" && break
    done
    sed -e "s|@PORT@|$p|g" -e "s|@DIR@|$work/nginx|g" "$here/nginx.conf.in" >"$work/nginx/nginx.conf"
    taskset -c "$CPU" nginx -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" \
        >"$work/nginx.out" 2>"$work/nginx.err" &
    local mp=$!
    started+=("$mp")
    local i
    for ((i = 0; i < 100; ++i)); do
        port_open "$p" && break
        if ! kill -0 "$mp" 2>/dev/null; then break; fi
        sleep 0.05
    done
    if ! port_open "$p"; then
        echo "run_http_bench: nginx did not start:" >&2
        cat "$work/nginx.err" "$work/nginx/error.log" >&2 2>/dev/null || true
        exit 1
    fi
    pid[nginx]=$mp
    port[nginx]=$p
}

# utime+stime in clock ticks of a process and its children (nginx: master + worker).
cpu_ticks() {
    local p total=0 f
    for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
        f="$(cat "/proc/$p/stat" 2>/dev/null)" || continue
        f="${f##*) }"   # fields from 3 on (comm may hold spaces)
        # shellcheck disable=SC2086
        set -- $f
        total=$((total + ${12} + ${13}))   # utime (14) + stime (15)
    done
    echo "$total"
}

for s in $SERVERS; do
    case "$s" in
    epoll | uring) start_printing "$s" "$hello" --port 0 --backend "$s" ;;
    epoll2 | uring2) start_printing "$s" "$hello" --port 0 --backend "${s%2}" --threads 2 ;;
    beast) start_printing beast "$beast" --port 0 ;;
    base_epoll | base_uring) start_printing "$s" "$BASE_BUILD/examples/http_hello/http_hello" --port 0 --backend "${s#base_}" ;;
    nginx) start_nginx ;;
    esac
done

# Sanity: every server answers GET / with 200 and the 13-byte body.
for s in $SERVERS; do
    out="$(wrk -t1 -c1 -d1s "http://127.0.0.1:${port[$s]}/" 2>&1 || true)"
    if ! grep -q ' requests in ' <<<"$out" || grep -q 'Non-2xx' <<<"$out"; then
        echo "run_http_bench: $s does not answer 200 on GET /:" >&2
        echo "$out" >&2
        exit 1
    fi
done

{
    echo "# machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(uname -r)"
    echo "# wrk: $(wrk -v 2>&1 | head -1 | cut -c1-40); nginx: $(nginx -v 2>&1 | cut -d/ -f2)"
    echo "# pinned to CPU $CPU: servers and wrk; WARMUP=$WARMUP DURATION=$DURATION REPEAT=$REPEAT"
    echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$work/header"

declare -A best_rps best_cpu best_pct best_wrk best_err
read -r -a servers <<<"$SERVERS"
nservers=${#servers[@]}
t0=$SECONDS
for ((round = 0; round < REPEAT; ++round)); do
    for c in $CONNS; do
        for pl in $PIPELINE; do
            for ((k = 0; k < nservers; ++k)); do
                s="${servers[$(((k + round) % nservers))]}"
                url="http://127.0.0.1:${port[$s]}/"
                args=(-t1 -c "$c" --timeout 10s)
                script=()
                if ((pl > 0)); then script=(-s "$here/pipeline.lua" "$url" -- "$pl"); else script=("$url"); fi
                taskset -c "$CPU" wrk "${args[@]}" -d "${WARMUP}s" "${script[@]}" >/dev/null 2>&1 || true
                before="$(cpu_ticks "${pid[$s]}")"
                TIMEFORMAT='%3U %3S %3R'
                { time taskset -c "$CPU" wrk "${args[@]}" -d "${DURATION}s" "${script[@]}" >"$work/wrk.out" 2>&1; } 2>"$work/wrk.time"
                after="$(cpu_ticks "${pid[$s]}")"
                reqs="$(awk '/ requests in /{print $1; exit}' "$work/wrk.out")"
                rps="$(awk '/^Requests\/sec:/{printf "%.0f", $2; exit}' "$work/wrk.out")"
                errs="$(grep -E 'Socket errors|Non-2xx' "$work/wrk.out" | sed 's/^ *//' | tr '\n' ' ' || true)"
                read -r wu ws wr <"$work/wrk.time"
                if [[ -z "$reqs" || "$reqs" == 0 ]]; then
                    echo "run_http_bench: $s c=$c pipeline=$pl: no requests" >&2
                    cat "$work/wrk.out" >&2
                    continue
                fi
                read -r cpu_us pct wrk_us < <(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$reqs" \
                    -v wu="$wu" -v ws="$ws" -v wr="$wr" \
                    'BEGIN { us = t * 1e6 / hz; printf "%.2f %.0f %.2f\n", us / n, 100 * us / 1e6 / wr, (wu + ws) * 1e6 / n }')
                echo "round=$round server=$s conns=$c pipeline=$pl reqs=$reqs rps=$rps server_cpu_us_per_req=$cpu_us server_cpu_pct=$pct wrk_cpu_us_per_req=$wrk_us ${errs}"
                key="$s|$c|$pl"
                if [[ -z "${best_rps[$key]:-}" ]] || ((rps > ${best_rps[$key]})); then best_rps[$key]=$rps; fi
                if [[ -z "${best_cpu[$key]:-}" ]] || awk -v a="$cpu_us" -v b="${best_cpu[$key]}" 'BEGIN{exit !(a < b)}'; then
                    best_cpu[$key]=$cpu_us
                    best_pct[$key]=$pct
                    best_wrk[$key]=$wrk_us
                fi
                if [[ -n "$errs" ]]; then best_err[$key]="${best_err[$key]:-}$errs"; fi
            done
        done
    done
done
echo "# measured part: $((SECONDS - t0)) s; load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

ref_label="$REF"
[[ "$REF" == loops ]] && ref_label="1 loop"
echo
echo "| server | conns | pipelined | req/s | server CPU µs / req | vs $ref_label | server CPU % | wrk CPU µs / req | wrk errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
name() {
    case "$1" in
    epoll) echo "coronet epoll" ;; uring) echo "coronet uring" ;;
    epoll2) echo "coronet epoll, 2 loops" ;; uring2) echo "coronet uring, 2 loops" ;;
    nginx) echo "nginx (1 worker)" ;; beast) echo "Boost.Beast" ;;
    base_epoll) echo "coronet epoll (BASE_BUILD)" ;; base_uring) echo "coronet uring (BASE_BUILD)" ;;
    esac
}
for c in $CONNS; do
    for pl in $PIPELINE; do
        for s in $SERVERS; do
            ref="$REF"
            if [[ "$REF" == loops ]]; then
                case "$s" in epoll2 | uring2) ref="${s%2}" ;; *) ref=none ;; esac
            elif [[ "$REF" == base ]]; then
                case "$s" in epoll | uring) ref="base_$s" ;; *) ref=none ;; esac
            fi
            nk="$ref|$c|$pl"
            key="$s|$c|$pl"
            [[ -n "${best_rps[$key]:-}" ]] || continue
            ratio="n/a"
            if [[ -n "${best_cpu[$nk]:-}" ]]; then
                ratio="$(awk -v a="${best_cpu[$key]}" -v b="${best_cpu[$nk]}" 'BEGIN{printf "%.2f", a / b}')"
            fi
            plt="no"
            ((pl > 0)) && plt="$pl"
            echo "| $(name "$s") | $c | $plt | ${best_rps[$key]} | ${best_cpu[$key]} | $ratio | ${best_pct[$key]} | ${best_wrk[$key]} | ${best_err[$key]:-} |"
        done
    done
done
