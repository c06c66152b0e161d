// ws_load: a WebSocket load generator on coronet::ws (tests/bench/ws/run_ws_bench.sh).
//
//   ws_load --port N [--host 127.0.0.1] [--conns 100] [--size 20] [--warmup 1] [--duration 3]
//           [--text] [--server-pid PID] [--backend uring|epoll]
//
// Opens N client sessions (ws::connect, one at a time) on one loop, then each session sends
// one message of S bytes (binary by default, --text for text), awaits its echo (checks type,
// length and a tag byte), and repeats, for `--warmup` seconds and then a measured window of
// `--duration` seconds. Prints one line:
//
//   ws_load conns=N size=S msgs=M seconds=T msgs_per_s=X client_cpu_us=C server_cpu_us=U
//           server_cpu_us_per_msg=V connect_s=K
//
// msgs counts echoes that arrived inside the window. With --server-pid, server CPU is the
// server's utime+stime (/proc/PID/stat, all its threads) read at the window's start and end,
// so connection set-up and teardown are never in it; without it those fields are -1. After the
// window every session finishes its message in flight and closes (1000) before ws_load exits;
// exit status 1 when a connection failed or an echo was wrong.
#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/ws/server.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;

namespace {

struct options {
    std::string host = "127.0.0.1";
    unsigned port = 0;
    std::size_t conns = 100;
    std::size_t size = 20;
    double warmup = 1.0;
    double duration = 3.0;
    bool text = false;
    long server_pid = 0;
    std::optional<core::backend_kind> backend;
};

void usage(std::FILE* out) {
    std::fputs("usage: ws_load --port N [--host ADDR] [--conns N] [--size BYTES] [--warmup S]\n"
               "               [--duration S] [--text] [--server-pid PID] [--backend uring|epoll]\n",
               out);
}

// utime+stime of a process in microseconds (-1 when unreadable).
double proc_cpu_us(long pid) {
    if (pid <= 0) return -1;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    std::FILE* f = std::fopen(path, "r");
    if (f == nullptr) return -1;
    char buf[1024];
    std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    const char* p = std::strrchr(buf, ')');  // comm may hold spaces and parentheses
    if (p == nullptr) return -1;
    p += 2;                                  // field 3 (state)
    unsigned long long utime = 0, stime = 0;
    // fields 3..15: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    if (std::sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    return static_cast<double>(utime + stime) * 1e6 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double self_cpu_us() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

struct shared_state {
    bool stop = false;
    std::uint64_t echoes = 0;  // every echo received, warm-up included
    std::size_t failures = 0;
};

// One connection: send, await the echo, repeat until told to stop; then close.
core::task<void> pump(ws::session& s, const options& o, shared_state& st, std::size_t id) {
    std::string payload(o.size, 'x');
    std::uint8_t tag = 0;
    while (!st.stop) {
        ++tag;
        if (!payload.empty()) payload[0] = static_cast<char>('a' + tag % 26);
        auto sent = o.text ? co_await s.send_text(payload)
                           : co_await s.send_binary(std::as_bytes(std::span(payload)));
        if (!sent) {
            std::fprintf(stderr, "ws_load: conn %zu: send: %s\n", id, sent.error().message().c_str());
            ++st.failures;
            co_return;
        }
        auto m = co_await s.receive();
        if (!m) {
            std::fprintf(stderr, "ws_load: conn %zu: receive: %s\n", id, m.error().message().c_str());
            ++st.failures;
            co_return;
        }
        if (m->is_text() != o.text || m->data.size() != payload.size() ||
            (!payload.empty() && m->data[0] != payload[0])) {
            std::fprintf(stderr, "ws_load: conn %zu: wrong echo (%zu bytes)\n", id, m->data.size());
            ++st.failures;
            co_return;
        }
        ++st.echoes;
    }
    (void)co_await s.close();
}

core::task<int> run_load(options o) {
    std::string url = "ws://" + o.host + ":" + std::to_string(o.port) + "/";
    ws::connect_options co;
    std::vector<std::unique_ptr<ws::session>> sessions;
    sessions.reserve(o.conns);
    auto c0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < o.conns; ++i) {
        auto s = co_await ws::connect(url, co);
        if (!s) {
            std::fprintf(stderr, "ws_load: connect %zu/%zu to %s: %s\n", i + 1, o.conns, url.c_str(),
                         s.error().message().c_str());
            co_return 1;
        }
        sessions.push_back(std::move(*s));
    }
    double connect_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count();

    shared_state st;
    core::task_scope scope;
    for (std::size_t i = 0; i < sessions.size(); ++i) scope.spawn(pump(*sessions[i], o, st, i));

    auto as_dur = [](double s) {
        return std::chrono::duration_cast<core::clock::duration>(std::chrono::duration<double>(s));
    };
    (void)co_await core::sleep_for(as_dur(o.warmup));
    double srv0 = proc_cpu_us(o.server_pid);
    double cli0 = self_cpu_us();
    std::uint64_t n0 = st.echoes;
    auto t0 = std::chrono::steady_clock::now();
    (void)co_await core::sleep_for(as_dur(o.duration));
    double srv1 = proc_cpu_us(o.server_pid);
    double cli1 = self_cpu_us();
    std::uint64_t n1 = st.echoes;
    auto t1 = std::chrono::steady_clock::now();
    st.stop = true;

    double secs = std::chrono::duration<double>(t1 - t0).count();
    std::uint64_t msgs = n1 - n0;
    double srv = (srv0 >= 0 && srv1 >= 0) ? srv1 - srv0 : -1;
    std::printf("ws_load conns=%zu size=%zu msgs=%llu seconds=%.3f msgs_per_s=%.0f client_cpu_us=%.0f "
                "server_cpu_us=%.0f server_cpu_us_per_msg=%.3f connect_s=%.3f\n",
                o.conns, o.size, static_cast<unsigned long long>(msgs), secs,
                static_cast<double>(msgs) / secs, cli1 - cli0, srv,
                (srv >= 0 && msgs > 0) ? srv / static_cast<double>(msgs) : -1.0, connect_s);
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
    if (end == s || *end != '\0') return false;
    out = static_cast<std::size_t>(v);
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            usage(stdout);
            return 0;
        }
        if (a == "--text") {
            o.text = true;
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
        } else if (a == "--server-pid") {
            ok = parse_size(v, n) && n > 0;
            o.server_pid = static_cast<long>(n);
        } else if (a == "--backend") {
            std::string b = v;
            if (b == "uring") o.backend = core::backend_kind::uring;
            else if (b == "epoll") o.backend = core::backend_kind::epoll;
            else ok = false;
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
    core::loop_options lo;
    lo.backend = o.backend;
    core::loop lp(lo);
    return core::run(lp, run_load(o));
}
