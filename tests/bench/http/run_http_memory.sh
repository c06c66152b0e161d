#!/usr/bin/env bash
# run_http_memory.sh: what an idle HTTP/1.1 keep-alive connection costs examples/http_hello.
# For each backend and round, starts a fresh server under malloc_count.so and runs
# http_idle_probe.py: CONNS connections each send one GET, read the answer and stay open; the
# server's VmRSS and live heap bytes before and after (SETTLE seconds idle) give the cost per
# connection. Prints the rounds and a markdown table. Builds nothing.
#
#   tests/bench/http/run_http_memory.sh [BUILD_DIR]     (default: build/release)
#
# Environment knobs (defaults in brackets):
#   SERVERS ["epoll uring"]   http_hello's backend
#   CONNS [2000], SETTLE [1] (seconds), REPEAT [2], CPU [1] (the server is pinned to it)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
build="${1:-build/release}"
if [[ ! -d "$build" && -d "$root/$build" ]]; then build="$root/$build"; fi
build="$(cd "$build" && pwd)"

SERVERS="${SERVERS:-epoll uring}"
CONNS="${CONNS:-2000}"
SETTLE="${SETTLE:-1}"
REPEAT="${REPEAT:-2}"
CPU="${CPU:-1}"

hello="$build/examples/http_hello/http_hello"
mcount="$build/tests/bench/libmalloc_count.so"
# shellcheck source-path=SCRIPTDIR source=../ws/bench_common.sh
source "$here/../ws/bench_common.sh"

problems=()
[[ -x "$hello" ]] || problems+=("$hello not found (build target http_hello)")
[[ -f "$mcount" ]] || problems+=("$mcount not found (build target malloc_count)")
command -v python3 >/dev/null 2>&1 || problems+=("python3 not found (apt-get install python3)")
for s in $SERVERS; do
    case "$s" in epoll | uring) ;; *) problems+=("unknown server '$s' (epoll uring)") ;; esac
done
if ((${#problems[@]})); then
    for p in "${problems[@]}"; do echo "run_http_memory: $p" >&2; done
    exit 1
fi

raise_nofile $((CONNS + 100))
work="$(mktemp -d /tmp/http_memory.XXXXXX)"
cleanup() {
    stop_all
    rm -rf "$work"
}
trap cleanup EXIT

machine_line
echo "# CONNS=$CONNS SETTLE=$SETTLE REPEAT=$REPEAT CPU=$CPU"

declare -A rss heap
for ((round = 0; round < REPEAT; ++round)); do
    for s in $SERVERS; do
        n="$s-$round"
        start_printing "$n" env LD_PRELOAD="$mcount" MALLOC_COUNT_FILE="$work/$n.counts" \
            "$hello" --port 0 --backend "$s"
        sleep 0.5 # let the start-up settle before the first reading
        line="$(timeout 300 python3 "$here/http_idle_probe.py" --port "${port[$n]}" \
            --server-pid "${pid[$n]}" --conns "$CONNS" --settle "$SETTLE" \
            --alloc-file "$work/$n.counts")"
        stop_one "$n"
        echo "round=$round server=$s $line"
        val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
        rss[$s]+="${rss[$s]:+ / }$(awk -v b="$(val idle_b_per_conn)" 'BEGIN{printf "%.1f", b / 1024}')"
        heap[$s]+="${heap[$s]:+ / }$(awk -v b="$(val heap_idle_b_per_conn)" 'BEGIN{printf "%.1f", b / 1024}')"
    done
done

echo
echo "KiB per idle keep-alive connection (each round, a fresh server), $CONNS connections:"
echo
echo "| server | RSS | live heap |"
echo "|---|---:|---:|"
for s in $SERVERS; do
    echo "| coronet http_hello $s | ${rss[$s]} | ${heap[$s]} |"
done
