// ws_broadcast_load: one sender and N receivers in one room of a broadcast server
// (examples/ws_rooms, tests/bench/ws/node_ws_rooms.js), on coronet::ws client sessions on one
// loop (tests/bench/ws/run_ws_broadcast.sh).
//
//   ws_broadcast_load --port N [--host 127.0.0.1] [--room bench] [--receivers 1000] [--size 64]
//                     [--window 8] [--warmup 1] [--duration 3] [--server-pid PID]...
//                     [--alloc-file PATH] [--backend uring|epoll] [--sender-port N]
//                     [--redis-pid PID]
//
// Connects the receivers to ws://HOST:PORT/ROOM one at a time, then the sender (to
// --sender-port when given: another process sharing the room, e.g. through Redis). The sender
// first repeats a binary "hello" (sequence 0) until every receiver has one, so all are members,
// then sends binary messages of SIZE bytes (≥ 16: a little-endian sequence number, the send
// time in steady-clock nanoseconds, then filler) with at most WINDOW broadcasts in flight:
// broadcast s may go out once every receiver has broadcast s - WINDOW. Every receiver checks that
// it gets every sequence number once and in order. After WARMUP seconds it measures for DURATION
// seconds and prints one line:
//
//   ws_broadcast receivers=N size=S window=W deliveries=D broadcasts=B seconds=T
//       deliveries_per_s=X client_cpu_us=C server_cpu_us=U server_cpu_us_per_delivery=V
//       server_allocs=A server_allocs_per_broadcast=P connect_s=K latency_p50_us=L50
//       latency_p99_us=L99 redis_cpu_us=R
//
// deliveries: messages the receivers got in the window; broadcasts = deliveries / N. Server
// CPU (/proc/PID/stat, all threads; summed over every --server-pid), Redis' CPU (--redis-pid,
// else -1) and allocations (malloc_count.so writing to --alloc-file, else -1) are read at the
// window's edges. Latency: from the sender's write to each receiver's read of a message, over
// every delivery in the window (client-side coroutine scheduling included). Then every connection
// closes (1000). Exit status 1 when a connection failed, a receiver saw a gap or a repeat, or
// nothing was delivered.
#include "load_probes.hpp"

#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/ws/server.hpp>

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
namespace bench = coronet::bench;

namespace {

struct options {
    std::string host = "127.0.0.1";
    unsigned port = 0;
    std::string room = "bench";
    std::size_t receivers = 1000;
    std::size_t size = 64;
    std::size_t window = 8;
    double warmup = 1.0;
    double duration = 3.0;
    std::vector<long> server_pids;
    long redis_pid = 0;
    unsigned sender_port = 0; ///< 0: the receivers' port
    std::string alloc_file;
    std::optional<core::backend_kind> backend;
};

void usage(std::FILE* out) {
    std::fputs("usage: ws_broadcast_load --port N [--host ADDR] [--room NAME] [--receivers N]\n"
               "                         [--size BYTES] [--window W] [--warmup S] [--duration S]\n"
               "                         [--server-pid PID]... [--alloc-file PATH] [--backend "
               "uring|epoll]\n"
               "                         [--sender-port N] [--redis-pid PID]\n",
               out);
}

// What the receivers tell the sender: per sequence number (mod ring), how many got it.
struct shared_state {
    std::size_t receivers = 0;
    std::vector<std::uint32_t> got; // ring, indexed by seq % size
    std::uint64_t completed = 0;    // every broadcast 1..completed reached every receiver
    std::uint64_t hello_count = 0;  // receivers that got sequence 0
    std::uint64_t deliveries = 0;   // warm-up included
    std::size_t failures = 0;
    bool stop = false;
    bool measuring = false;
    std::vector<std::uint32_t> latency_us; // per delivery while measuring
    std::coroutine_handle<> sender;        // parked sender, woken when `completed` moves
};

std::uint64_t seq_of(const std::string& data) {
    std::uint64_t s = 0;
    std::memcpy(&s, data.data(), sizeof s);
    return s;
}

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void wake_sender(shared_state& st) {
    if (auto h = std::exchange(st.sender, nullptr))
        h.resume();
}

// Parks the sender until a receiver moves `completed` (or a failure).
struct wait_progress {
    shared_state& st;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept { st.sender = h; }
    void await_resume() const noexcept {}
};

core::task<void> receiver(ws::session& s, shared_state& st, std::size_t id) {
    std::uint64_t expect = 0; // the next sequence number (0: hello)
    bool hello = false;
    for (;;) {
        auto m = co_await s.receive();
        if (!m) {
            if (!st.stop) {
                std::fprintf(stderr, "ws_broadcast_load: receiver %zu: %s\n", id,
                             m.error().message().c_str());
                ++st.failures;
                wake_sender(st);
            }
            co_return;
        }
        if (m->data.size() < sizeof(std::uint64_t)) {
            std::fprintf(stderr, "ws_broadcast_load: receiver %zu: short message\n", id);
            ++st.failures;
            wake_sender(st);
            co_return;
        }
        std::uint64_t seq = seq_of(m->data);
        if (seq == 0) { // hellos may repeat until every receiver has one
            if (!hello) {
                hello = true;
                expect = 1;
                ++st.hello_count;
                wake_sender(st);
            }
            continue;
        }
        if (seq != expect) {
            std::fprintf(stderr, "ws_broadcast_load: receiver %zu: got %llu, expected %llu\n", id,
                         static_cast<unsigned long long>(seq),
                         static_cast<unsigned long long>(expect));
            ++st.failures;
            wake_sender(st);
            co_return;
        }
        ++expect;
        ++st.deliveries;
        if (st.measuring) {
            std::int64_t sent = 0;
            std::memcpy(&sent, m->data.data() + sizeof seq, sizeof sent);
            st.latency_us.push_back(static_cast<std::uint32_t>((now_ns() - sent) / 1000));
        }
        auto& n = st.got[seq % st.got.size()];
        if (++n == st.receivers) {
            n = 0;
            // Receivers get broadcasts in order, so completions come in order too.
            st.completed = seq;
            wake_sender(st);
        }
    }
}

core::task<void> sender(ws::session& s, const options& o, shared_state& st) {
    std::string payload(o.size, 'x');
    auto send_seq = [&](std::uint64_t seq) {
        std::memcpy(payload.data(), &seq, sizeof seq);
        const std::int64_t t = now_ns();
        std::memcpy(payload.data() + sizeof seq, &t, sizeof t);
        return s.send_binary(std::as_bytes(std::span(payload)));
    };
    // Hello until every receiver is in the room (one every 50 ms; duplicates are ignored).
    while (st.hello_count < st.receivers && st.failures == 0) {
        if (!co_await send_seq(0)) {
            ++st.failures;
            co_return;
        }
        (void)co_await core::sleep_for(std::chrono::milliseconds(50));
    }
    for (std::uint64_t seq = 1; !st.stop && st.failures == 0; ++seq) {
        while (seq > st.completed + o.window && !st.stop && st.failures == 0)
            co_await wait_progress{st};
        if (st.stop || st.failures != 0)
            break;
        if (auto r = co_await send_seq(seq); !r) {
            std::fprintf(stderr, "ws_broadcast_load: sender: %s\n", r.error().message().c_str());
            ++st.failures;
            co_return;
        }
    }
}

core::task<void> close_one(ws::session& s) {
    (void)co_await s.close();
}

core::clock::duration as_dur(double s) {
    return std::chrono::duration_cast<core::clock::duration>(std::chrono::duration<double>(s));
}

double servers_cpu_us(const std::vector<long>& pids) {
    if (pids.empty())
        return -1;
    double sum = 0;
    for (long p : pids) {
        const double c = bench::proc_cpu_us(p);
        if (c < 0)
            return -1;
        sum += c;
    }
    return sum;
}

double percentile(std::vector<std::uint32_t>& v, double q) {
    if (v.empty())
        return -1;
    const auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

core::task<int> run(options o) {
    std::string url = "ws://" + o.host + ":" + std::to_string(o.port) + "/" + o.room;
    const std::string sender_url = "ws://" + o.host + ":" +
                                   std::to_string(o.sender_port != 0 ? o.sender_port : o.port) +
                                   "/" + o.room;
    ws::connect_options co;
    bench::alloc_counters allocs(o.alloc_file);
    std::vector<std::unique_ptr<ws::session>> sessions;
    sessions.reserve(o.receivers + 1);
    auto c0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i <= o.receivers; ++i) { // the last one is the sender
        const std::string& to = i < o.receivers ? url : sender_url;
        auto s = co_await ws::connect(to, co);
        if (!s) {
            std::fprintf(stderr, "ws_broadcast_load: connect %zu/%zu to %s: %s\n", i + 1,
                         o.receivers + 1, to.c_str(), s.error().message().c_str());
            co_return 1;
        }
        sessions.push_back(std::move(*s));
    }
    double connect_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count();

    shared_state st;
    st.receivers = o.receivers;
    st.got.assign(4 * o.window + 4, 0);
    core::task_scope scope;
    for (std::size_t i = 0; i < o.receivers; ++i)
        scope.spawn(receiver(*sessions[i], st, i));
    scope.spawn(sender(*sessions.back(), o, st));

    // The warm-up starts once every receiver is in the room.
    while (st.hello_count < o.receivers && st.failures == 0)
        (void)co_await core::sleep_for(std::chrono::milliseconds(20));
    (void)co_await core::sleep_for(as_dur(o.warmup));
    st.latency_us.reserve(1 << 20);
    double a0 = allocs.allocs();
    double srv0 = servers_cpu_us(o.server_pids);
    double red0 = o.redis_pid > 0 ? bench::proc_cpu_us(o.redis_pid) : -1;
    double cli0 = bench::self_cpu_us();
    std::uint64_t d0 = st.deliveries;
    auto t0 = std::chrono::steady_clock::now();
    st.measuring = true;
    (void)co_await core::sleep_for(as_dur(o.duration));
    st.measuring = false;
    double srv1 = servers_cpu_us(o.server_pids);
    double red1 = o.redis_pid > 0 ? bench::proc_cpu_us(o.redis_pid) : -1;
    double cli1 = bench::self_cpu_us();
    std::uint64_t d1 = st.deliveries;
    auto t1 = std::chrono::steady_clock::now();
    double a1 = allocs.allocs();
    st.stop = true;
    wake_sender(st);

    double secs = std::chrono::duration<double>(t1 - t0).count();
    double d = static_cast<double>(d1 - d0);
    double b = d / static_cast<double>(o.receivers);
    double srv = (srv0 >= 0 && srv1 >= 0) ? srv1 - srv0 : -1;
    double al = (a0 >= 0 && a1 >= 0) ? a1 - a0 : -1;
    double red = (red0 >= 0 && red1 >= 0) ? red1 - red0 : -1;
    const double p50 = percentile(st.latency_us, 0.50);
    const double p99 = percentile(st.latency_us, 0.99);
    std::printf("ws_broadcast receivers=%zu size=%zu window=%zu deliveries=%.0f broadcasts=%.1f "
                "seconds=%.3f "
                "deliveries_per_s=%.0f client_cpu_us=%.0f server_cpu_us=%.0f "
                "server_cpu_us_per_delivery=%.4f "
                "server_allocs=%.0f server_allocs_per_broadcast=%.3f connect_s=%.3f "
                "latency_p50_us=%.0f latency_p99_us=%.0f redis_cpu_us=%.0f\n",
                o.receivers, o.size, o.window, d, b, secs, d / secs, cli1 - cli0, srv,
                (srv >= 0 && d > 0) ? srv / d : -1.0, al, (al >= 0 && b > 0) ? al / b : -1.0,
                connect_s, p50, p99, red);
    std::fflush(stdout);

    // Close the sender first (its in-flight broadcasts still reach the receivers), then the rest.
    (void)co_await sessions.back()->close();
    for (std::size_t i = 0; i < o.receivers; ++i)
        scope.spawn(close_one(*sessions[i]));
    co_await scope.join();
    if (st.failures != 0) {
        std::fprintf(stderr, "ws_broadcast_load: %zu failure(s)\n", st.failures);
        co_return 1;
    }
    co_return d > 0 ? 0 : 1;
}

bool parse_double(const char* s, double& out) {
    char* end = nullptr;
    out = std::strtod(s, &end);
    return end != s && *end == '\0' && out >= 0;
}

bool parse_size(const char* s, std::size_t& out) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(s, &end, 10);
    if (end == s || *end != '\0')
        return false;
    out = static_cast<std::size_t>(v);
    return true;
}

} // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        const char* v = argv[++i];
        std::size_t n = 0;
        bool ok = true;
        if (a == "--host") {
            o.host = v;
        } else if (a == "--port") {
            ok = parse_size(v, n) && n > 0 && n < 65536;
            o.port = static_cast<unsigned>(n);
        } else if (a == "--room") {
            o.room = v;
        } else if (a == "--receivers") {
            ok = parse_size(v, o.receivers) && o.receivers > 0;
        } else if (a == "--size") {
            ok = parse_size(v, o.size) && o.size >= 2 * sizeof(std::uint64_t);
        } else if (a == "--window") {
            ok = parse_size(v, o.window) && o.window > 0;
        } else if (a == "--warmup") {
            ok = parse_double(v, o.warmup);
        } else if (a == "--duration") {
            ok = parse_double(v, o.duration) && o.duration > 0;
        } else if (a == "--server-pid") {
            ok = parse_size(v, n) && n > 0;
            o.server_pids.push_back(static_cast<long>(n));
        } else if (a == "--redis-pid") {
            ok = parse_size(v, n) && n > 0;
            o.redis_pid = static_cast<long>(n);
        } else if (a == "--sender-port") {
            ok = parse_size(v, n) && n > 0 && n < 65536;
            o.sender_port = static_cast<unsigned>(n);
        } else if (a == "--alloc-file") {
            o.alloc_file = v;
        } else if (a == "--backend") {
            std::string b = v;
            if (b == "uring")
                o.backend = core::backend_kind::uring;
            else if (b == "epoll")
                o.backend = core::backend_kind::epoll;
            else
                ok = false;
        } else {
            ok = false;
        }
        if (!ok) {
            usage(stderr);
            return 2;
        }
    }
    if (o.port == 0) {
        usage(stderr);
        return 2;
    }
    rlim_t fds = bench::raise_fd_limit();
    if (fds < o.receivers + 64)
        std::fprintf(stderr, "ws_broadcast_load: open-files limit %llu is below %zu receivers\n",
                     static_cast<unsigned long long>(fds), o.receivers);
    core::loop_options lo;
    lo.backend = o.backend;
    core::loop lp(lo);
    return core::run(lp, run(o));
}
