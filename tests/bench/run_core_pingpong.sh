#!/usr/bin/env bash
# run_core_pingpong.sh: runs core_pingpong against coronet (epoll, uring) and the C floors and
# prints markdown tables. Builds nothing. Three parts, each optional:
#
#   plain     every server x {1, 100, 1000} connections, 64-byte round trips over TCP
#             (coronet epoll/uring vs epoll_echo_floor)
#   TLS       certificates made at run time with the openssl CLI (EC P-256 CA + server
#             certificate for 127.0.0.1/localhost, in the temp dir); coronet with
#             --tls-cert/--tls-key vs epoll_tls_floor, load from `core_pingpong tls-client`
#             (plain OpenSSL): handshakes/s (new connection + handshake + one round trip +
#             close; full, and resumed with the previous connection's TLS 1.3 ticket) and
#             round trips/s over TLS at {1, 100} connections
#   syscalls  one more short pass of every cell with the server under
#             `perf stat -e raw_syscalls:sys_enter,context-switches` (whole server life:
#             syscalls per round trip / per handshake). Skipped without a working perf.
#
#   tests/bench/run_core_pingpong.sh [BUILD_DIR]      (default: build/release)
#
# Environment knobs (defaults in brackets):
#   WARMUP [1], DURATION [2]   seconds before / of the measurement window (plain)
#   REPEAT [3]                 rounds of the plain part (every server x conns, interleaved)
#   CONNS ["1 100 1000"], SERVERS ["epoll uring floor"]
#   TLS [1]                    0 skips the TLS part
#   TLS_WARMUP [0.5], TLS_DURATION [2], TLS_REPEAT [2], TLS_CONNS ["1 100"],
#   TLS_SERVERS ["epoll uring floor"], HS_THREADS [2] (client threads in handshake cells)
#   SYSCALLS [1], SYS_DURATION [1]   0 skips the syscall pass
#
# Per cell: round trips/s (or handshakes/s) and the client's CPU utilisation as measured by
# the client; server CPU (getrusage user+sys) per round trip / handshake and server CPU
# utilisation, both over the server's own window (opened by the client's SIGUSR1, closed by its
# SIGUSR2); heap allocations in that window: global operator new (coronet only) and OpenSSL's
# CRYPTO_malloc/realloc (TLS). With several rounds a cell shows the best rate, the lowest CPU
# per operation and the highest allocation count of its rounds (noise only ever makes a run
# slower; an allocation is never noise), and the lowest resumption hit rate. Loopback only;
# every server started is killed on exit. Whole run with the defaults: about 4 minutes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-build/release}"
if [[ ! -d "$build" && -d "$root/$build" ]]; then build="$root/$build"; fi
pingpong="$build/tests/bench/core_pingpong"
floor="$build/tests/bench/epoll_echo_floor"
tls_floor="$build/tests/bench/epoll_tls_floor"
for exe in "$pingpong" "$floor" "$tls_floor"; do
    if [[ ! -x "$exe" ]]; then
        echo "run_core_pingpong: $exe not found; build the bench targets first" >&2
        exit 1
    fi
done

WARMUP="${WARMUP:-1}"
DURATION="${DURATION:-2}"
REPEAT="${REPEAT:-3}"
CONNS="${CONNS:-1 100 1000}"
SERVERS="${SERVERS:-epoll uring floor}"
TLS="${TLS:-1}"
TLS_WARMUP="${TLS_WARMUP:-0.5}"
TLS_DURATION="${TLS_DURATION:-2}"
TLS_REPEAT="${TLS_REPEAT:-2}"
TLS_CONNS="${TLS_CONNS:-1 100}"
TLS_SERVERS="${TLS_SERVERS:-epoll uring floor}"
HS_THREADS="${HS_THREADS:-2}"
SYSCALLS="${SYSCALLS:-1}"
SYS_DURATION="${SYS_DURATION:-1}"

work="$(mktemp -d /tmp/core_pingpong.XXXXXX)"
server_pid=""  # the server (signals go here)
wait_pid=""    # what we started: the server, or perf around it
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    if [[ -n "$wait_pid" ]]; then
        kill -KILL "$wait_pid" 2>/dev/null || true
        wait "$wait_pid" 2>/dev/null || true
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
    wait "$wait_pid" 2>/dev/null || true
    server_pid=""
    wait_pid=""
}

# Certificates for the TLS part: an EC P-256 CA and a server certificate it signs, valid for
# IP 127.0.0.1 and DNS localhost.
make_certs() {
    local d="$work/certs"
    mkdir -p "$d"
    {
        openssl ecparam -name prime256v1 -genkey -noout -out "$d/ca.key"
        openssl req -x509 -new -key "$d/ca.key" -sha256 -days 2 \
            -subj "/CN=core_pingpong CA" -out "$d/ca.pem"
        openssl ecparam -name prime256v1 -genkey -noout -out "$d/server.key"
        openssl req -new -key "$d/server.key" -subj "/CN=localhost" -out "$d/server.csr"
        printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' 'basicConstraints=CA:FALSE' \
            'keyUsage=digitalSignature' 'extendedKeyUsage=serverAuth' >"$d/ext.cnf"
        openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
            -CAcreateserial -days 2 -sha256 -extfile "$d/ext.cnf" -out "$d/server.pem"
    } >"$d/log" 2>&1 || { echo "run_core_pingpong: openssl failed:" >&2; cat "$d/log" >&2; exit 1; }
}

# field LINE KEY: the value of KEY=... in LINE.
field() {
    local kv
    for kv in $1; do
        if [[ "${kv%%=*}" == "$2" ]]; then
            echo "${kv#*=}"
            return
        fi
    done
    echo 0
}

# One measurement: test (plain|echo|hs|hsr), server kind, connections, round, and "perf" to
# run the server under perf stat (the syscall pass). Appends a line to $work/results.
measure() {
    local test="$1" kind="$2" conns="$3" round="$4" perf="${5:-}" out="$work/server.out"
    local listening port client window exitline warm dur tls_args=() client_args=() cmd=()
    : >"$out"
    if [[ "$test" == plain ]]; then
        warm="$WARMUP" dur="$DURATION"
    else
        warm="$TLS_WARMUP" dur="$TLS_DURATION"
        tls_args=(--tls-cert "$work/certs/server.pem" --tls-key "$work/certs/server.key")
    fi
    if [[ -n "$perf" ]]; then warm=0.3 dur="$SYS_DURATION"; fi
    case "$kind" in
    epoll | uring) cmd=("$pingpong" server --port 0 --backend "$kind" "${tls_args[@]}") ;;
    floor) if [[ "$test" == plain ]]; then cmd=("$floor" --port 0); else cmd=("$tls_floor" --port 0 "${tls_args[@]}"); fi ;;
    esac
    if [[ -n "$perf" ]]; then
        perf stat -x, -e raw_syscalls:sys_enter,context-switches -o "$work/perf.out" -- \
            "${cmd[@]}" >"$out" 2>&1 &
    else
        "${cmd[@]}" >"$out" 2>&1 &
    fi
    wait_pid=$!
    server_pid=$wait_pid
    if ! listening="$(wait_for_line "$out" 50 '^listening on ')"; then
        echo "run_core_pingpong: $kind server did not start:" >&2
        cat "$out" >&2
        exit 1
    fi
    if [[ -n "$perf" ]]; then server_pid="$(pgrep -P "$wait_pid" | head -1)"; fi
    port="${listening#listening on *:}"
    port="${port%% *}"
    case "$test" in
    plain) client_args=(client --conns "$conns") ;;
    echo) client_args=(tls-client --ca "$work/certs/ca.pem" --mode echo --conns "$conns") ;;
    hs) client_args=(tls-client --ca "$work/certs/ca.pem" --mode handshake --conns "$conns") ;;
    hsr) client_args=(tls-client --ca "$work/certs/ca.pem" --mode handshake --resume --conns "$conns") ;;
    esac
    if ! client="$(timeout 60 "$pingpong" "${client_args[@]}" --port "$port" --warmup "$warm" \
        --duration "$dur" --server-pid "$server_pid")"; then
        echo "run_core_pingpong: client failed against $kind, $test, $conns connections" >&2
        cat "$out" >&2
        exit 1
    fi
    if ! window="$(wait_for_line "$out" 50 '^window ')"; then
        echo "run_core_pingpong: $kind server reported no window" >&2
        exit 1
    fi
    stop_server
    exitline="$(grep -m1 '^exit ' "$out" || true)"
    local sys=0 csw=0
    if [[ -n "$perf" ]]; then
        sys="$(awk -F, '$3 ~ /raw_syscalls:sys_enter/ { print $1 }' "$work/perf.out")"
        csw="$(awk -F, '$3 ~ /context-switches/ { print $1 }' "$work/perf.out")"
    fi
    echo "  $test $kind conns=$conns round=$round${perf:+ (perf)}: $client | $window${perf:+ | $exitline sys=$sys csw=$csw}" >&2
    # test kind conns round rt_per_s server_rt cpu_us allocs wall_us client_cpu_us
    # client_seconds hs resumed ossl_allocs client_hs client_resumed exit_rt exit_hs sys csw
    echo "$test $kind $conns $round $(field "$client" rt_per_s) $(field "$window" rt)" \
        "$(field "$window" cpu_us) $(field "$window" allocs) $(field "$window" wall_us)" \
        "$(field "$client" cpu_us) $(field "$client" seconds) $(field "$window" hs)" \
        "$(field "$window" resumed) $(field "$window" ossl_allocs) $(field "$client" hs)" \
        "$(field "$client" resumed) $(field "$exitline" rt) $(field "$exitline" hs)" \
        "${sys:-0} ${csw:-0}" >>"$work/${perf:+sys}results"
}

started=$(date +%s)
echo "run_core_pingpong: $pingpong, loadavg $(cut -d' ' -f1-3 /proc/loadavg)" >&2
: >"$work/results"
: >"$work/sysresults"
for ((round = 1; round <= REPEAT; ++round)); do
    for conns in $CONNS; do
        for kind in $SERVERS; do
            measure plain "$kind" "$conns" "$round"
        done
    done
done
if [[ "$TLS" == 1 ]]; then
    make_certs
    for ((round = 1; round <= TLS_REPEAT; ++round)); do
        for test in hs hsr; do
            for kind in $TLS_SERVERS; do
                measure "$test" "$kind" "$HS_THREADS" "$round"
            done
        done
        for conns in $TLS_CONNS; do
            for kind in $TLS_SERVERS; do
                measure echo "$kind" "$conns" "$round"
            done
        done
    done
fi
if [[ "$SYSCALLS" == 1 ]]; then
    if perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
        for conns in $CONNS; do
            for kind in $SERVERS; do measure plain "$kind" "$conns" 1 perf; done
        done
        if [[ "$TLS" == 1 ]]; then
            for test in hs hsr; do
                for kind in $TLS_SERVERS; do measure "$test" "$kind" "$HS_THREADS" 1 perf; done
            done
            for conns in $TLS_CONNS; do
                for kind in $TLS_SERVERS; do measure echo "$kind" "$conns" 1 perf; done
            done
        fi
    else
        echo "run_core_pingpong: perf cannot count raw_syscalls:sys_enter; no syscall pass" >&2
    fi
fi
echo "run_core_pingpong: done in $(($(date +%s) - started)) s, loadavg $(cut -d' ' -f1-3 /proc/loadavg)" >&2

awk -v servers="$SERVERS" -v conns_list="$CONNS" -v tls_servers="$TLS_SERVERS" \
    -v tls_conns="$TLS_CONNS" -v hs_threads="$HS_THREADS" '
    FNR == 1 { file++ }
    file == 1 {
        key = $1 " " $2 " " $3
        rtps = $5 + 0; rt = $6 + 0; cpu = $7 + 0; allocs = $8 + 0; wall = $9 + 0
        hs = $12 + 0; ossl = $14 + 0; chs = $15 + 0; cres = $16 + 0
        ops = ($1 == "hs" || $1 == "hsr") ? hs : rt
        cpu_op = ops > 0 ? cpu / ops : 0
        util = wall > 0 ? 100 * cpu / wall : 0
        a_op = ops > 0 ? allocs / ops : 0
        o_op = ops > 0 ? ossl / ops : 0
        ccpu = $11 > 0 ? $10 / ($11 * 1e4) : 0
        hit = chs > 0 ? 100 * cres / chs : 0
        seen[key] = 1
        if (!(key in best_rtps) || rtps > best_rtps[key]) { best_rtps[key] = rtps; cutil_at[key] = ccpu }
        if (!(key in best_cpu) || cpu_op < best_cpu[key]) { best_cpu[key] = cpu_op; util_at[key] = util }
        if (!(key in worst_a) || a_op > worst_a[key]) { worst_a[key] = a_op; allocs_at[key] = allocs }
        if (!(key in worst_o) || o_op > worst_o[key]) worst_o[key] = o_op
        if (!(key in worst_hit) || hit < worst_hit[key]) { worst_hit[key] = hit; shit[key] = hs > 0 ? 100 * ($13 + 0) / hs : 0 }
        next
    }
    file == 2 {
        key = $1 " " $2 " " $3
        ops = ($1 == "hs" || $1 == "hsr") ? $18 + 0 : $17 + 0
        sys[key] = ops > 0 ? ($19 + 0) / ops : -1
        csw[key] = ops > 0 ? ($20 + 0) / ops : -1
        nsys++
        next
    }
    function name(kind, tls) {
        if (kind == "epoll") return "coronet epoll"
        if (kind == "uring") return "coronet uring"
        return tls ? "C epoll+OpenSSL floor" : "C epoll floor"
    }
    END {
        ns = split(servers, sv, " "); nc = split(conns_list, cv, " ")
        nts = split(tls_servers, tsv, " "); ntc = split(tls_conns, tcv, " ")
        print "Plain TCP:"
        print ""
        print "| server | conns | round trips/s | client CPU % | server CPU µs / round trip | server CPU % | allocs / round trip (allocs in window) |"
        print "|---|---:|---:|---:|---:|---:|---:|"
        for (j = 1; j <= nc; ++j) for (i = 1; i <= ns; ++i) {
            key = "plain " sv[i] " " cv[j]
            if (!(key in seen)) continue
            a = sv[i] == "floor" ? "n/a" : sprintf("%.4f (%d)", worst_a[key], allocs_at[key])
            printf "| %s | %d | %.0f | %.0f | %.2f | %.0f | %s |\n", name(sv[i], 0), cv[j],
                   best_rtps[key], cutil_at[key], best_cpu[key], util_at[key], a
        }
        any_hs = 0
        for (i = 1; i <= nts; ++i) if (("hs " tsv[i] " " hs_threads) in seen) any_hs = 1
        if (any_hs) {
            print ""
            print "TLS handshakes (" hs_threads " client threads; each connection: handshake + one 64-byte round trip + close):"
            print ""
            print "| server | session | handshakes/s | resumed (client) | client CPU % | server CPU µs / handshake | server CPU % | operator new / handshake | OpenSSL allocs / handshake |"
            print "|---|---|---:|---:|---:|---:|---:|---:|---:|"
            for (t = 1; t <= 2; ++t) for (i = 1; i <= nts; ++i) {
                test = t == 1 ? "hs" : "hsr"
                key = test " " tsv[i] " " hs_threads
                if (!(key in seen)) continue
                a = tsv[i] == "floor" ? "n/a" : sprintf("%.2f", worst_a[key])
                printf "| %s | %s | %.0f | %.1f %% | %.0f | %.1f | %.0f | %s | %.0f |\n", name(tsv[i], 1),
                       t == 1 ? "full" : "resumed (TLS 1.3 ticket)", best_rtps[key], worst_hit[key],
                       cutil_at[key], best_cpu[key], util_at[key], a, worst_o[key]
            }
            print ""
            print "TLS echo (64-byte round trips over established TLS 1.3 connections):"
            print ""
            print "| server | conns | round trips/s | client CPU % | server CPU µs / round trip | server CPU % | operator new / round trip (in window) | OpenSSL allocs / round trip |"
            print "|---|---:|---:|---:|---:|---:|---:|---:|"
            for (j = 1; j <= ntc; ++j) for (i = 1; i <= nts; ++i) {
                key = "echo " tsv[i] " " tcv[j]
                if (!(key in seen)) continue
                a = tsv[i] == "floor" ? "n/a" : sprintf("%.4f (%d)", worst_a[key], allocs_at[key])
                printf "| %s | %d | %.0f | %.0f | %.2f | %.0f | %s | %.2f |\n", name(tsv[i], 1), tcv[j],
                       best_rtps[key], cutil_at[key], best_cpu[key], util_at[key], a, worst_o[key]
            }
        }
        if (nsys > 0) {
            print ""
            print "Syscalls (separate short pass, server under perf stat, whole server life):"
            print ""
            print "| test | server | conns | syscalls / op | context switches / op |"
            print "|---|---|---:|---:|---:|"
            for (j = 1; j <= nc; ++j) for (i = 1; i <= ns; ++i) {
                key = "plain " sv[i] " " cv[j]
                if (key in sys) printf "| plain round trip | %s | %d | %.2f | %.2f |\n", name(sv[i], 0), cv[j], sys[key], csw[key]
            }
            for (t = 1; t <= 2; ++t) for (i = 1; i <= nts; ++i) {
                test = t == 1 ? "hs" : "hsr"
                key = test " " tsv[i] " " hs_threads
                if (key in sys) printf "| TLS %s handshake | %s | %d threads | %.2f | %.2f |\n", t == 1 ? "full" : "resumed", name(tsv[i], 1), hs_threads, sys[key], csw[key]
            }
            for (j = 1; j <= ntc; ++j) for (i = 1; i <= nts; ++i) {
                key = "echo " tsv[i] " " tcv[j]
                if (key in sys) printf "| TLS round trip | %s | %d | %.2f | %.2f |\n", name(tsv[i], 1), tcv[j], sys[key], csw[key]
            }
        }
    }' "$work/results" "$work/sysresults"
