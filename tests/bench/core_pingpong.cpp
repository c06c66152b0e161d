// core_pingpong: request/response round trips over coronet::core.
//
//   core_pingpong server [--host 127.0.0.1] [--port 0] [--backend epoll|uring]
//   core_pingpong client --port P [--host 127.0.0.1] [--conns N] [--warmup S] [--duration S]
//                        [--server-pid PID]
//
// server: a coronet echo server (accept_loop + task_scope + tcp_stream). Each connection reads
//   exactly 64 bytes (read_some until 64 arrived) and writes them back (write_all), forever.
//   Prints "listening on 127.0.0.1:PORT" (flushed) once it accepts. Signals (received through
//   signal_set, blocked before anything starts):
//     SIGUSR1          starts the measurement window: snapshots round trips, heap allocations
//                      (global operator new, counted in this binary) and CPU time
//                      (getrusage RUSAGE_SELF, user + sys);
//     SIGUSR2          ends it and prints one line (flushed) to stdout:
//                      "window rt=R cpu_us=C allocs=A frees=F wall_us=W"
//     SIGINT/SIGTERM   stops accepting, cancels the connections, joins them, prints
//                      "exit rt=... cpu_us=... allocs=..." (totals since start) and exits 0.
//
// client: a plain epoll client (no coronet), identical for every server it measures
//   (tests/bench/epoll_echo_floor.c speaks the same protocol). It opens N connections, each
//   sending a 64-byte request and waiting for the 64-byte echo in lockstep. After `--warmup`
//   seconds it sends SIGUSR1 to `--server-pid` (if given) and counts round trips for
//   `--duration` seconds, then sends SIGUSR2, prints
//   "client conns=N rt=R seconds=S rt_per_s=X cpu_us=C" (C: the client's own CPU time)
//   and closes the connections 0.3 s later (after the server closed its window).
//
// Both modes raise RLIMIT_NOFILE to its hard limit.
#include <coronet/core/accept_loop.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/signal.hpp>
#include <coronet/core/socket.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <vector>

// ---- heap allocation counting -----------------------------------------------------------
// Every global operator new/delete of the process (libcoronet_core.so and libstdc++ included:
// the executable's definitions interpose) is counted here. Counting only; memory comes from
// malloc. Relaxed atomics: the server is single-threaded, the counters just must not race with
// a helper thread if one ever appears.
namespace {
std::atomic<std::uint64_t> g_allocs{0};
std::atomic<std::uint64_t> g_frees{0};

void* counted_alloc(std::size_t n) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    if (n == 0) n = 1;
    for (;;) {
        if (void* p = std::malloc(n)) return p;
        std::new_handler h = std::get_new_handler();
        if (h == nullptr) throw std::bad_alloc();
        h();
    }
}
void* counted_alloc_aligned(std::size_t n, std::align_val_t al) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    std::size_t a = static_cast<std::size_t>(al);
    if (a < sizeof(void*)) a = sizeof(void*);
    if (n == 0) n = 1;
    for (;;) {
        void* p = nullptr;
        if (::posix_memalign(&p, a, n) == 0) return p;
        std::new_handler h = std::get_new_handler();
        if (h == nullptr) throw std::bad_alloc();
        h();
    }
}
void counted_free(void* p) noexcept {
    if (p == nullptr) return;
    g_frees.fetch_add(1, std::memory_order_relaxed);
    std::free(p);
}
}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    try {
        return counted_alloc(n);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    try {
        return counted_alloc(n);
    } catch (...) {
        return nullptr;
    }
}
void* operator new(std::size_t n, std::align_val_t al) { return counted_alloc_aligned(n, al); }
void* operator new[](std::size_t n, std::align_val_t al) { return counted_alloc_aligned(n, al); }
void* operator new(std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
    try {
        return counted_alloc_aligned(n, al);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
    try {
        return counted_alloc_aligned(n, al);
    } catch (...) {
        return nullptr;
    }
}
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    counted_free(p);
}

namespace core = coronet::core;

namespace {

constexpr std::size_t msg_size = 64;

void raise_nofile_limit() {
    ::rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
}

std::uint64_t cpu_us() {
    ::rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    auto us = [](const ::timeval& tv) {
        return static_cast<std::uint64_t>(tv.tv_sec) * 1'000'000u +
               static_cast<std::uint64_t>(tv.tv_usec);
    };
    return us(ru.ru_utime) + us(ru.ru_stime);
}

std::uint64_t wall_us() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
}

[[noreturn]] void usage(int code) {
    std::fputs(
        "usage: core_pingpong server [--host ADDR] [--port N] [--backend epoll|uring]\n"
        "       core_pingpong client --port N [--host ADDR] [--conns N] [--warmup S]\n"
        "                            [--duration S] [--server-pid PID]\n",
        code == 0 ? stdout : stderr);
    std::exit(code);
}

struct options {
    std::string mode;
    std::string host = "127.0.0.1";
    unsigned port = 0;
    std::optional<core::backend_kind> backend;
    unsigned conns = 1;
    double warmup = 1.0;
    double duration = 5.0;
    long server_pid = 0;
};

options parse(int argc, char** argv) {
    if (argc < 2) usage(2);
    options o;
    o.mode = argv[1];
    if (o.mode == "--help" || o.mode == "-h") usage(0);
    if (o.mode != "server" && o.mode != "client") usage(2);
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") usage(0);
        if (i + 1 >= argc) usage(2);
        const char* v = argv[++i];
        char* end = nullptr;
        if (a == "--host") {
            o.host = v;
        } else if (a == "--port") {
            unsigned long p = std::strtoul(v, &end, 10);
            if (*end != '\0' || p > 65535) usage(2);
            o.port = static_cast<unsigned>(p);
        } else if (a == "--backend") {
            if (std::strcmp(v, "uring") == 0) o.backend = core::backend_kind::uring;
            else if (std::strcmp(v, "epoll") == 0) o.backend = core::backend_kind::epoll;
            else usage(2);
        } else if (a == "--conns") {
            unsigned long n = std::strtoul(v, &end, 10);
            if (*end != '\0' || n == 0 || n > 100000) usage(2);
            o.conns = static_cast<unsigned>(n);
        } else if (a == "--warmup") {
            o.warmup = std::strtod(v, &end);
            if (*end != '\0' || o.warmup < 0) usage(2);
        } else if (a == "--duration") {
            o.duration = std::strtod(v, &end);
            if (*end != '\0' || o.duration <= 0) usage(2);
        } else if (a == "--server-pid") {
            o.server_pid = std::strtol(v, &end, 10);
            if (*end != '\0' || o.server_pid <= 0) usage(2);
        } else {
            usage(2);
        }
    }
    return o;
}

// ---- server -----------------------------------------------------------------------------

std::uint64_t g_round_trips = 0;  // loop thread only

struct snapshot {
    std::uint64_t rt, cpu, allocs, frees, wall;
    static snapshot take() {
        return {g_round_trips, cpu_us(), g_allocs.load(std::memory_order_relaxed),
                g_frees.load(std::memory_order_relaxed), wall_us()};
    }
};

void print_delta(const char* tag, const snapshot& from, const snapshot& to) {
    std::printf("%s rt=%llu cpu_us=%llu allocs=%llu frees=%llu wall_us=%llu\n", tag,
                static_cast<unsigned long long>(to.rt - from.rt),
                static_cast<unsigned long long>(to.cpu - from.cpu),
                static_cast<unsigned long long>(to.allocs - from.allocs),
                static_cast<unsigned long long>(to.frees - from.frees),
                static_cast<unsigned long long>(to.wall - from.wall));
    std::fflush(stdout);
}

core::task<void> echo(core::tcp_stream s) {
    std::byte buf[msg_size];
    for (;;) {
        std::size_t have = 0;
        while (have < msg_size) {
            auto n = co_await s.read_some({buf + have, msg_size - have});
            if (!n) co_return;  // end of stream, reset or cancelled
            have += *n;
        }
        if (!co_await s.write_all({buf, msg_size})) co_return;
        ++g_round_trips;
    }
}

core::task<int> serve(core::loop& lp, core::endpoint ep) {
    core::signal_set signals(lp, {SIGINT, SIGTERM, SIGUSR1, SIGUSR2});
    auto listener = core::tcp_listener::bind(lp, ep);
    if (!listener) {
        std::fprintf(stderr, "core_pingpong: cannot listen on %s: %s\n", ep.to_string().c_str(),
                     listener.error().message().c_str());
        co_return 1;
    }
    core::task_scope scope;
    scope.spawn(core::accept_loop(*listener, scope,
                                  [](core::tcp_stream s) { return echo(std::move(s)); }));
    std::printf("listening on %s backend=%s\n", listener->local_endpoint()->to_string().c_str(),
                std::string(core::to_string(lp.backend())).c_str());
    std::fflush(stdout);

    const snapshot start = snapshot::take();
    snapshot window_start = start;
    for (;;) {
        auto sig = co_await signals.wait();
        if (!sig) break;
        if (*sig == SIGUSR1) {
            window_start = snapshot::take();
        } else if (*sig == SIGUSR2) {
            print_delta("window", window_start, snapshot::take());
        } else {
            break;  // SIGINT / SIGTERM
        }
    }
    listener->close();
    scope.request_stop();
    co_await scope.join();
    print_delta("exit", start, snapshot::take());
    co_return 0;
}

int run_server(const options& o) {
    auto ep = core::endpoint::from_ip(o.host, static_cast<std::uint16_t>(o.port));
    if (!ep) {
        std::fprintf(stderr, "core_pingpong: invalid --host %s\n", o.host.c_str());
        return 2;
    }
    // Before the loop (and any thread) exists.
    core::block_signals({SIGINT, SIGTERM, SIGUSR1, SIGUSR2});
    core::loop_options lo;
    lo.backend = o.backend;
    core::loop lp(lo);
    return core::run(lp, serve(lp, *ep));
}

// ---- client (plain epoll, level-triggered) --------------------------------------------

struct conn {
    int fd = -1;
    std::size_t have = 0;  // response bytes received so far
};

int run_client(const options& o) {
    ::sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(o.port));
    if (o.port == 0 || ::inet_pton(AF_INET, o.host.c_str(), &sa.sin_addr) != 1) {
        std::fprintf(stderr, "core_pingpong client: need --port and an IPv4 --host\n");
        return 2;
    }
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        std::perror("epoll_create1");
        return 1;
    }
    unsigned char request[msg_size];
    for (std::size_t i = 0; i < msg_size; ++i) request[i] = static_cast<unsigned char>('a' + i % 26);

    std::vector<conn> conns(o.conns);
    for (unsigned i = 0; i < o.conns; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            std::perror("socket");
            return 1;
        }
        if (::connect(fd, reinterpret_cast<::sockaddr*>(&sa), sizeof sa) != 0) {
            std::fprintf(stderr, "core_pingpong client: connect #%u: %s\n", i, std::strerror(errno));
            return 1;
        }
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conns[i].fd = fd;
        ::epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = i;
        if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            std::perror("epoll_ctl");
            return 1;
        }
    }
    // Blocking sockets: a 64-byte send into an idle socket never blocks in lockstep, and a
    // recv is only issued once epoll reported the socket readable.
    auto send_request = [&](conn& c) {
        ssize_t w = ::send(c.fd, request, msg_size, MSG_NOSIGNAL);
        if (w != static_cast<ssize_t>(msg_size)) {
            std::fprintf(stderr, "core_pingpong client: send: %s\n",
                         w < 0 ? std::strerror(errno) : "short write");
            std::exit(1);
        }
    };
    for (auto& c : conns) send_request(c);

    using clk = std::chrono::steady_clock;
    const auto t0 = clk::now();
    const auto warm_end = t0 + std::chrono::duration_cast<clk::duration>(
                                   std::chrono::duration<double>(o.warmup));
    const auto measure_end = warm_end + std::chrono::duration_cast<clk::duration>(
                                            std::chrono::duration<double>(o.duration));
    bool measuring = o.warmup <= 0;
    if (measuring && o.server_pid > 0) ::kill(static_cast<pid_t>(o.server_pid), SIGUSR1);
    clk::time_point measure_start = t0;
    std::uint64_t measure_cpu = cpu_us();
    std::uint64_t rt = 0;
    std::vector<::epoll_event> events(o.conns < 1024 ? o.conns : 1024);
    unsigned char buf[msg_size];
    for (;;) {
        int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 1000);
        if (n < 0) {
            if (errno == EINTR) continue;
            std::perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; ++i) {
            conn& c = conns[events[i].data.u32];
            ssize_t r = ::recv(c.fd, buf, msg_size - c.have, MSG_DONTWAIT);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (r <= 0) {
                std::fprintf(stderr, "core_pingpong client: recv: %s\n",
                             r < 0 ? std::strerror(errno) : "server closed the connection");
                return 1;
            }
            if (std::memcmp(buf, request + c.have, static_cast<std::size_t>(r)) != 0) {
                std::fprintf(stderr, "core_pingpong client: echo mismatch\n");
                return 1;
            }
            c.have += static_cast<std::size_t>(r);
            if (c.have < msg_size) continue;
            c.have = 0;
            ++rt;
            send_request(c);
        }
        const auto now = clk::now();
        if (!measuring && now >= warm_end) {
            measuring = true;
            rt = 0;
            measure_start = now;
            measure_cpu = cpu_us();
            if (o.server_pid > 0) ::kill(static_cast<pid_t>(o.server_pid), SIGUSR1);
        } else if (measuring && now >= measure_end) {
            if (o.server_pid > 0) ::kill(static_cast<pid_t>(o.server_pid), SIGUSR2);
            const double secs = std::chrono::duration<double>(now - measure_start).count();
            std::printf("client conns=%u rt=%llu seconds=%.3f rt_per_s=%.0f cpu_us=%llu\n",
                        o.conns, static_cast<unsigned long long>(rt), secs,
                        static_cast<double>(rt) / secs,
                        static_cast<unsigned long long>(cpu_us() - measure_cpu));
            std::fflush(stdout);
            break;
        }
    }
    // Keep the (now idle) connections open a moment so the server handles SIGUSR2 before it
    // sees 1000 connections close: their teardown must not land in the measurement window.
    if (o.server_pid > 0) ::usleep(300'000);
    for (auto& c : conns) ::close(c.fd);
    ::close(ep);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    options o = parse(argc, argv);
    raise_nofile_limit();
    if (o.mode == "server") return run_server(o);
    return run_client(o);
}
