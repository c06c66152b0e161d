// ws_load: a WebSocket load generator on coronet::ws (tests/bench/ws/run_ws_bench.sh).
//
//   ws_load --port N [--host 127.0.0.1] [--path /] [--conns 100] [--size 20] [--warmup 1]
//   [--duration 3]
//           [--text | --json] [--deflate [--deflate-min-size B] [--deflate-level L]
//           [--no-context-takeover]]
//           [--server-pid PID] [--alloc-file PATH] [--backend uring|epoll]
//   ws_load --rss-probe --server-pid PID --port N [--path /] [--unique-paths] [--conns 2000]
//           [--json --size 4096] [--deflate ...] [--exchanges 1] [--no-echo] [--settle 0.5]
//           [--alloc-file PATH]
//
// Opens N client sessions (ws::connect, one at a time) on one loop, then each session sends
// one message of S bytes, awaits its echo and repeats, for `--warmup` seconds and then a
// measured window of `--duration` seconds. Every echo is compared byte for byte with what was
// sent (type, length and content). Messages: binary by default, each stamped with its
// connection and number in its first 16 bytes (so an echo of another connection's or an
// earlier message is wrong; a message under 16 bytes carries only the low hex digits),
// --text for text; --json for text messages that look like JSON API
// traffic (arrays of generated objects with varying ids, numbers, words and tags, padded with
// spaces to exactly S bytes; S < 40: one `{"id":…,"v":…}` object; from a fixed seed, so every run
// sends the same bytes), drawn from a pool of at least 256 KiB of distinct messages so that a
// 32 KiB deflate window never sees a message repeat; the echo must equal what was sent.
// --deflate offers permessage-deflate (RFC 7692) with the default negotiation (context
// takeover both ways, 15-bit windows) and compresses what ws_load sends from
// --deflate-min-size bytes on (default 0: every message), at zlib level --deflate-level
// (default -1: zlib's 6, as the servers); --no-context-takeover also offers
// server_no_context_takeover and client_no_context_takeover. Without --deflate nothing is
// offered (the plain rows). Prints one line:
//
//   ws_load conns=N size=S msgs=M seconds=T msgs_per_s=X client_cpu_us=C server_cpu_us=U
//           server_cpu_us_per_msg=V connect_s=K deflate=none|ctx|no_ctx up_bytes=B
//           down_bytes=D server_allocs=A
//
// msgs counts echoes that arrived inside the window. With --server-pid, server CPU is the
// server's utime+stime (/proc/PID/stat, all its threads) read at the window's start and end,
// so connection set-up and teardown are never in it; without it those fields are -1.
// up_bytes/down_bytes: TCP payload bytes ws_load's sockets sent (acknowledged) and received in
// the window (TCP_INFO tcpi_bytes_acked / tcpi_bytes_received summed over the connections):
// WebSocket frames on the wire, headers included. server_allocs: heap allocations the server
// made in the window when it runs under malloc_count.so writing to --alloc-file (else -1).
// After the window every session finishes its message in flight and closes (1000) before
// ws_load exits; exit status 1 when a connection failed or an echo was wrong.
//
// --rss-probe measures what idle connections cost the server: its VmRSS (and, with
// --alloc-file, its live heap bytes) before connecting, after the N handshakes, and after each
// connection made --exchanges round trips and everything sat idle for --settle seconds; prints
//
//   ws_rss conns=N deflate=… rss0_kb=… rss_open_kb=… rss_idle_kb=… open_b_per_conn=…
//          idle_b_per_conn=… heap0=… heap_open=… heap_idle=… heap_open_b_per_conn=…
//          heap_idle_b_per_conn=…
//
// then closes every connection. For servers that do not echo, such as examples/ws_rooms
// (where --path picks the room): --exchanges 0 only connects; --no-echo makes each exchange a
// message sent and nothing awaited; --unique-paths appends the connection's index to --path
// (a room of its own, so a message reaches nobody else).
#include "load_probes.hpp"

#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/ws/server.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
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
    std::string path = "/";
    unsigned port = 0;
    std::size_t conns = 100;
    std::size_t size = 20;
    double warmup = 1.0;
    double duration = 3.0;
    bool text = false;
    bool json = false;
    bool deflate = false;
    std::size_t deflate_min_size = 0;
    int deflate_level = -1;
    bool no_context_takeover = false;
    long server_pid = 0;
    std::string alloc_file;
    bool rss_probe = false;
    std::size_t exchanges = 1;
    bool no_echo = false;
    bool unique_paths = false;
    double settle = 0.5;
    std::optional<core::backend_kind> backend;
};

void usage(std::FILE* out) {
    std::fputs("usage: ws_load --port N [--host ADDR] [--path /P] [--conns N] [--size BYTES] "
               "[--warmup S]\n"
               "               [--duration S] [--text | --json] [--deflate [--deflate-min-size B]\n"
               "               [--deflate-level L] [--no-context-takeover]] [--server-pid PID] "
               "[--alloc-file PATH]\n"
               "               [--backend uring|epoll]\n"
               "       ws_load --rss-probe --server-pid PID --port N [--path /P] [--unique-paths] "
               "[--conns N]\n"
               "               [--json --size B] [--deflate ...] [--exchanges K] [--no-echo] "
               "[--settle S]\n"
               "               [--alloc-file PATH]\n",
               out);
}

// ---- JSON-like messages ------------------------------------------------------------------

// splitmix64: a fixed, portable sequence (std distributions differ between libraries).
struct splitmix {
    std::uint64_t s;
    std::uint64_t next() {
        std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    std::uint64_t below(std::uint64_t n) { return next() % n; }
};

constexpr const char* words[] = {
    "alpha",  "amber",   "anchor",  "apple",  "arrow", "aspen",  "atlas",   "badge",
    "basil",  "beacon",  "birch",   "blaze",  "bloom", "breeze", "brook",   "cable",
    "canyon", "cedar",   "cinder",  "cobalt", "comet", "coral",  "cosmos",  "crane",
    "dawn",   "delta",   "drift",   "dune",   "ember", "falcon", "fern",    "flint",
    "frost",  "garnet",  "glacier", "harbor", "hazel", "heron",  "indigo",  "iris",
    "jade",   "juniper", "kestrel", "lagoon", "lark",  "lotus",  "maple",   "meadow",
    "mesa",   "nova",    "oasis",   "onyx",   "orbit", "otter",  "pebble",  "pine",
    "quartz", "raven",   "ridge",   "river",  "sage",  "summit", "thistle", "willow"};
constexpr const char* kinds[] = {"order", "trade", "quote", "cancel", "fill", "position"};
constexpr const char* venues[] = {"XNAS", "XNYS", "BATS", "ARCX", "IEXG"};

std::string digits(splitmix& r, std::size_t n) {
    std::string d;
    d += static_cast<char>('1' + r.below(9));
    while (d.size() < n)
        d += static_cast<char>('0' + r.below(10));
    return d;
}

// One object of an API feed; `ts` grows from object to object.
std::string json_object(splitmix& r, std::uint64_t& ts) {
    std::string o = "{\"id\":" + digits(r, 6 + r.below(3));
    o += ",\"type\":\"";
    o += kinds[r.below(std::size(kinds))];
    o += "\",\"user\":\"";
    o += words[r.below(std::size(words))];
    o += '_';
    o += words[r.below(std::size(words))];
    o += "\",\"venue\":\"";
    o += venues[r.below(std::size(venues))];
    o += "\",\"price\":" + std::to_string(1 + r.below(4999)) + "." +
         std::to_string(10 + r.below(90));
    o += ",\"qty\":" + std::to_string(1 + r.below(500));
    ts += 1 + r.below(900);
    o += ",\"ts\":" + std::to_string(ts);
    o += ",\"tags\":[";
    for (std::uint64_t i = 0, n = r.below(4); i < n; ++i) {
        if (i != 0)
            o += ',';
        o += '"';
        o += words[r.below(std::size(words))];
        o += '"';
    }
    o += "],\"ok\":";
    o += r.below(5) == 0 ? "false" : "true";
    if (r.below(3) == 0) {
        o += ",\"note\":\"";
        for (std::uint64_t i = 0, n = 2 + r.below(4); i < n; ++i) {
            if (i != 0)
                o += ' ';
            o += words[r.below(std::size(words))];
        }
        o += '"';
    }
    o += '}';
    return o;
}

// Exactly `size` bytes: an array of objects padded with spaces, or one small object.
std::string json_message(splitmix& r, std::size_t size, std::uint64_t& ts) {
    std::string m = "[";
    for (;;) {
        std::string o = json_object(r, ts);
        std::size_t need = m.size() + (m.size() > 1 ? 1 : 0) + o.size() + 1;
        if (need > size)
            break;
        if (m.size() > 1)
            m += ',';
        m += o;
    }
    if (m.size() > 1) {
        m += ']';
        m.append(size - m.size(), ' ');
        return m;
    }
    // Too small for one feed object: {"id":D,"v":D} (12 bytes of syntax), or a quoted number.
    if (size >= 14) {
        std::size_t free = size - 12;
        std::size_t a = (free + 1) / 2;
        return "{\"id\":" + digits(r, a) + ",\"v\":" + digits(r, free - a) + "}";
    }
    if (size >= 3)
        return "\"" + digits(r, size - 2) + "\"";
    return digits(r, size == 0 ? 1 : size).substr(0, size);
}

// Enough distinct messages that a 32 KiB window never holds a repeat (at least 256 KiB).
std::vector<std::string> json_pool(std::size_t size) {
    splitmix r{0x636f726f6e6574ULL}; // "coronet"
    std::uint64_t ts = 1'732'000'000'000ULL;
    std::size_t n =
        std::max<std::size_t>(64, (256 * 1024 + size - 1) / std::max<std::size_t>(size, 1));
    std::vector<std::string> pool;
    pool.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
        pool.push_back(json_message(r, size, ts));
    return pool;
}

// ---- the load ----------------------------------------------------------------------------

struct shared_state {
    bool stop = false;
    std::uint64_t echoes = 0; // every echo received, warm-up included
    std::size_t failures = 0;
};

struct message_source {
    const options& o;
    std::vector<std::string> pool; // --json
    std::string binary;            // otherwise
};

// One message and its echo; false (and a line on stderr) when it failed. Every byte of the
// echo is compared with what was sent (the echo is read in place, through receive_view).
core::task<bool> round_trip(ws::session& s, const options& o, const std::string& payload,
                            std::size_t id) {
    bool text = o.text || o.json;
    auto sent = text ? co_await s.send_text(payload)
                     : co_await s.send_binary(std::as_bytes(std::span(payload)));
    if (!sent) {
        std::fprintf(stderr, "ws_load: conn %zu: send: %s\n", id, sent.error().message().c_str());
        co_return false;
    }
    auto m = co_await s.receive_view();
    if (!m) {
        std::fprintf(stderr, "ws_load: conn %zu: receive: %s\n", id, m.error().message().c_str());
        co_return false;
    }
    if (m->is_text() != text || m->data != payload) {
        std::fprintf(stderr, "ws_load: conn %zu: wrong echo (%zu bytes, %zu sent)\n", id,
                     m->data.size(), payload.size());
        co_return false;
    }
    co_return true;
}

// The k-th message of connection `id`. --json: one of the pool's. Otherwise the connection's
// own buffer with its first bytes (up to 16) stamped with the connection and the message
// number in hex digits (valid UTF-8 for --text), so an echo that belongs to another connection
// or an earlier message, or that lost or reordered bytes, differs from what was sent.
const std::string& next_payload(message_source& src, std::string& own, std::size_t id,
                                std::uint64_t k) {
    if (src.o.json)
        return src.pool[(id * 7919 + k) % src.pool.size()];
    constexpr char hex[] = "0123456789abcdef";
    std::uint64_t stamp = (static_cast<std::uint64_t>(id) << 40) ^ k;
    std::size_t n = std::min<std::size_t>(own.size(), 16);
    for (std::size_t i = 0; i < n; ++i)
        own[i] = hex[(stamp >> (4 * i)) & 0xf];
    return own;
}

// One connection: send, await the echo, repeat until told to stop; then close.
core::task<void> pump(ws::session& s, message_source& src, shared_state& st, std::size_t id) {
    std::string own = src.o.json ? std::string() : src.binary;
    for (std::uint64_t k = 1; !st.stop; ++k) {
        if (!co_await round_trip(s, src.o, next_payload(src, own, id, k), id)) {
            ++st.failures;
            co_return;
        }
        ++st.echoes;
    }
    (void)co_await s.close();
}

// --rss-probe: `n` round trips, then nothing.
core::task<void> exchange(ws::session& s, message_source& src, shared_state& st, std::size_t id,
                          std::size_t n) {
    std::string own = src.o.json ? std::string() : src.binary;
    for (std::uint64_t k = 1; k <= n; ++k) {
        if (src.o.no_echo) {
            const std::string& p = next_payload(src, own, id, k);
            auto sent = (src.o.text || src.o.json)
                            ? co_await s.send_text(p)
                            : co_await s.send_binary(std::as_bytes(std::span(p)));
            if (!sent) {
                std::fprintf(stderr, "ws_load: conn %zu: send: %s\n", id,
                             sent.error().message().c_str());
                ++st.failures;
                co_return;
            }
            continue;
        }
        if (!co_await round_trip(s, src.o, next_payload(src, own, id, k), id)) {
            ++st.failures;
            co_return;
        }
        ++st.echoes;
    }
}

core::task<void> close_one(ws::session& s) {
    (void)co_await s.close();
}

const char* deflate_name(const std::optional<ws::deflate_params>& d) {
    if (!d)
        return "none";
    if (d->server_no_context_takeover && d->client_no_context_takeover)
        return "no_ctx";
    if (d->server_no_context_takeover)
        return "no_server_ctx";
    if (d->client_no_context_takeover)
        return "no_client_ctx";
    return "ctx";
}

core::clock::duration as_dur(double s) {
    return std::chrono::duration_cast<core::clock::duration>(std::chrono::duration<double>(s));
}

core::task<int> run_load(options o) {
    std::string url = "ws://" + o.host + ":" + std::to_string(o.port) + o.path;
    ws::connect_options co;
    if (o.deflate) {
        co.handshake.deflate.enabled = true;
        co.handshake.deflate.min_size = o.deflate_min_size;
        co.handshake.deflate.level = o.deflate_level;
        co.handshake.deflate.server_no_context_takeover = o.no_context_takeover;
        co.handshake.deflate.client_no_context_takeover = o.no_context_takeover;
    }
    message_source src{o, {}, {}};
    if (o.json)
        src.pool = json_pool(o.size);
    else
        src.binary.assign(o.size, 'x');
    bench::alloc_counters allocs(o.alloc_file);

    long rss0 = o.rss_probe ? bench::proc_rss_kb(o.server_pid) : -1;
    double heap0 = allocs.live_bytes();

    std::vector<std::unique_ptr<ws::session>> sessions;
    sessions.reserve(o.conns);
    auto c0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < o.conns; ++i) {
        // A named string, not a ?: temporary inside co_await (g++ 12 destroys such a temporary
        // twice).
        std::string target = url;
        if (o.unique_paths)
            target += std::to_string(i);
        auto s = co_await ws::connect(target, co);
        if (!s) {
            std::fprintf(stderr, "ws_load: connect %zu/%zu to %s: %s\n", i + 1, o.conns,
                         url.c_str(), s.error().message().c_str());
            co_return 1;
        }
        sessions.push_back(std::move(*s));
    }
    double connect_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count();
    const char* agreed = deflate_name(sessions.front()->compression());
    for (const auto& s : sessions) {
        if (std::strcmp(deflate_name(s->compression()), agreed) != 0) {
            std::fprintf(stderr, "ws_load: connections agreed on different compression\n");
            co_return 1;
        }
    }
    if (o.deflate && !sessions.front()->compression())
        std::fprintf(stderr, "ws_load: permessage-deflate offered but not agreed\n");

    shared_state st;
    if (o.rss_probe) {
        (void)co_await core::sleep_for(as_dur(o.settle));
        long rss_open = bench::proc_rss_kb(o.server_pid);
        double heap_open = allocs.live_bytes();
        {
            core::task_scope scope;
            for (std::size_t i = 0; i < sessions.size(); ++i)
                scope.spawn(exchange(*sessions[i], src, st, i, o.exchanges));
            co_await scope.join();
        }
        (void)co_await core::sleep_for(as_dur(o.settle));
        long rss_idle = bench::proc_rss_kb(o.server_pid);
        double heap_idle = allocs.live_bytes();
        auto per = [&](double a, double b) { return (b - a) / static_cast<double>(o.conns); };
        std::printf(
            "ws_rss conns=%zu size=%zu exchanges=%zu deflate=%s rss0_kb=%ld rss_open_kb=%ld "
            "rss_idle_kb=%ld open_b_per_conn=%.0f idle_b_per_conn=%.0f heap0=%.0f heap_open=%.0f "
            "heap_idle=%.0f heap_open_b_per_conn=%.0f heap_idle_b_per_conn=%.0f\n",
            o.conns, o.size, o.exchanges, agreed, rss0, rss_open, rss_idle,
            per(1024.0 * static_cast<double>(rss0), 1024.0 * static_cast<double>(rss_open)),
            per(1024.0 * static_cast<double>(rss0), 1024.0 * static_cast<double>(rss_idle)), heap0,
            heap_open, heap_idle, heap0 >= 0 ? per(heap0, heap_open) : -1.0,
            heap0 >= 0 ? per(heap0, heap_idle) : -1.0);
        std::fflush(stdout);
        core::task_scope scope;
        for (auto& s : sessions)
            scope.spawn(close_one(*s));
        co_await scope.join();
        co_return st.failures != 0 ? 1 : 0;
    }

    core::task_scope scope;
    for (std::size_t i = 0; i < sessions.size(); ++i)
        scope.spawn(pump(*sessions[i], src, st, i));

    (void)co_await core::sleep_for(as_dur(o.warmup));
    bench::wire_bytes w0 = bench::wire_bytes_of(sessions);
    double a0 = allocs.allocs();
    double srv0 = bench::proc_cpu_us(o.server_pid);
    double cli0 = bench::self_cpu_us();
    std::uint64_t n0 = st.echoes;
    auto t0 = std::chrono::steady_clock::now();
    (void)co_await core::sleep_for(as_dur(o.duration));
    double srv1 = bench::proc_cpu_us(o.server_pid);
    double cli1 = bench::self_cpu_us();
    std::uint64_t n1 = st.echoes;
    auto t1 = std::chrono::steady_clock::now();
    double a1 = allocs.allocs();
    bench::wire_bytes w1 = bench::wire_bytes_of(sessions);
    st.stop = true;

    double secs = std::chrono::duration<double>(t1 - t0).count();
    std::uint64_t msgs = n1 - n0;
    double srv = (srv0 >= 0 && srv1 >= 0) ? srv1 - srv0 : -1;
    std::printf(
        "ws_load conns=%zu size=%zu msgs=%llu seconds=%.3f msgs_per_s=%.0f client_cpu_us=%.0f "
        "server_cpu_us=%.0f server_cpu_us_per_msg=%.3f connect_s=%.3f deflate=%s up_bytes=%.0f "
        "down_bytes=%.0f server_allocs=%.0f\n",
        o.conns, o.size, static_cast<unsigned long long>(msgs), secs,
        static_cast<double>(msgs) / secs, cli1 - cli0, srv,
        (srv >= 0 && msgs > 0) ? srv / static_cast<double>(msgs) : -1.0, connect_s, agreed,
        w1.up - w0.up, w1.down - w0.down, (a0 >= 0 && a1 >= 0) ? a1 - a0 : -1.0);
    std::fflush(stdout);

    co_await scope.join();
    if (st.failures != 0) {
        std::fprintf(stderr, "ws_load: %zu connection(s) failed\n", st.failures);
        co_return 1;
    }
    co_return msgs > 0 ? 0 : 1;
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
        if (a == "--text" || a == "--json" || a == "--deflate" || a == "--no-context-takeover" ||
            a == "--rss-probe" || a == "--no-echo" || a == "--unique-paths") {
            if (a == "--no-echo")
                o.no_echo = true;
            if (a == "--unique-paths")
                o.unique_paths = true;
            if (a == "--text")
                o.text = true;
            if (a == "--json")
                o.json = true;
            if (a == "--deflate")
                o.deflate = true;
            if (a == "--no-context-takeover")
                o.no_context_takeover = true;
            if (a == "--rss-probe")
                o.rss_probe = true;
            continue;
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
        } else if (a == "--path") {
            o.path = v;
            ok = !o.path.empty() && o.path[0] == '/';
        } else if (a == "--port") {
            ok = parse_size(v, n) && n > 0 && n < 65536;
            o.port = static_cast<unsigned>(n);
        } else if (a == "--conns") {
            ok = parse_size(v, o.conns) && o.conns > 0;
        } else if (a == "--size") {
            ok = parse_size(v, o.size);
        } else if (a == "--warmup") {
            ok = parse_double(v, o.warmup);
        } else if (a == "--duration") {
            ok = parse_double(v, o.duration) && o.duration > 0;
        } else if (a == "--deflate-min-size") {
            ok = parse_size(v, o.deflate_min_size);
        } else if (a == "--deflate-level") {
            ok = parse_size(v, n) && n <= 9;
            o.deflate_level = static_cast<int>(n);
        } else if (a == "--server-pid") {
            ok = parse_size(v, n) && n > 0;
            o.server_pid = static_cast<long>(n);
        } else if (a == "--alloc-file") {
            o.alloc_file = v;
        } else if (a == "--exchanges") {
            ok = parse_size(v, o.exchanges);
        } else if (a == "--settle") {
            ok = parse_double(v, o.settle);
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
    if (o.port == 0 || (o.text && o.json) || (o.rss_probe && o.server_pid == 0)) {
        usage(stderr);
        return 2;
    }
    bench::raise_fd_limit();
    core::loop_options lo;
    lo.backend = o.backend;
    core::loop lp(lo);
    return core::run(lp, run_load(o));
}
