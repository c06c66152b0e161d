// core_pingpong: request/response round trips over coronet::core.
//
//   core_pingpong server [--host 127.0.0.1] [--port 0] [--backend epoll|uring]
//                        [--tls-cert FILE --tls-key FILE]
//   core_pingpong client --port P [--host 127.0.0.1] [--conns N] [--warmup S] [--duration S]
//                        [--server-pid PID]
//   core_pingpong tls-client --port P --ca FILE --mode echo|handshake [--resume]
//                        [--host 127.0.0.1] [--conns N] [--warmup S] [--duration S]
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
//   Both lines end with "hs=H resumed=U ossl_allocs=O": TLS handshakes completed, how many of
//   them resumed a session, and OpenSSL's own allocations (CRYPTO_malloc/realloc, counted
//   through CRYPTO_set_mem_functions; they never go through operator new).
//   With --tls-cert/--tls-key every connection is TLS: tls_stream::server over the accepted
//   tcp_stream, handshake() under a 10 s with_timeout, then the same 64-byte echo through the
//   tls_stream. A client's close_notify (or a reset) ends the connection.
//
// client: a plain epoll client (no coronet), identical for every server it measures
//   (tests/bench/epoll_echo_floor.c speaks the same protocol). It opens N connections, each
//   sending a 64-byte request and waiting for the 64-byte echo in lockstep. After `--warmup`
//   seconds it sends SIGUSR1 to `--server-pid` (if given) and counts round trips for
//   `--duration` seconds, then sends SIGUSR2, prints
//   "client conns=N rt=R seconds=S rt_per_s=X cpu_us=C" (C: the client's own CPU time)
//   and closes the connections 0.3 s later (after the server closed its window).
//
// tls-client: a plain OpenSSL client (blocking handshakes, then non-blocking sockets in the
//   same level-triggered epoll lockstep as `client`; SSL_read/SSL_write directly on the fd,
//   read-ahead on). It verifies the server's certificate against --ca and the IP address.
//   --mode echo: N connections handshake first (before the warm-up), then 64-byte round
//     trips as `client`.
//   --mode handshake: N threads (--conns), each looping: connect, full TLS handshake, one
//     64-byte round trip, SSL_shutdown (close_notify, not waiting for the server's), close.
//     With --resume each connection offers the newest TLS 1.3 ticket its thread received on
//     the previous connection (SSL_set_session); the report counts SSL_session_reused hits.
//   Prints "client conns=N rt=R seconds=S rt_per_s=X cpu_us=C hs=H resumed=U" (handshake
//   mode: rt counts connections, each one handshake plus one round trip).
//
// All modes raise RLIMIT_NOFILE to its hard limit.
#include <coronet/core/accept_loop.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/signal.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/tls.hpp>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <fcntl.h>
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
#include <thread>
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
    if (n == 0)
        n = 1;
    for (;;) {
        if (void* p = std::malloc(n))
            return p;
        std::new_handler h = std::get_new_handler();
        if (h == nullptr)
            throw std::bad_alloc();
        h();
    }
}
void* counted_alloc_aligned(std::size_t n, std::align_val_t al) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    std::size_t a = static_cast<std::size_t>(al);
    if (a < sizeof(void*))
        a = sizeof(void*);
    if (n == 0)
        n = 1;
    for (;;) {
        void* p = nullptr;
        if (::posix_memalign(&p, a, n) == 0)
            return p;
        std::new_handler h = std::get_new_handler();
        if (h == nullptr)
            throw std::bad_alloc();
        h();
    }
}
void counted_free(void* p) noexcept {
    if (p == nullptr)
        return;
    g_frees.fetch_add(1, std::memory_order_relaxed);
    std::free(p);
}
} // namespace

void* operator new(std::size_t n) {
    return counted_alloc(n);
}
void* operator new[](std::size_t n) {
    return counted_alloc(n);
}
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
void* operator new(std::size_t n, std::align_val_t al) {
    return counted_alloc_aligned(n, al);
}
void* operator new[](std::size_t n, std::align_val_t al) {
    return counted_alloc_aligned(n, al);
}
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
void operator delete(void* p) noexcept {
    counted_free(p);
}
void operator delete[](void* p) noexcept {
    counted_free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    counted_free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    counted_free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
    counted_free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
    counted_free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
    counted_free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
    counted_free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
    counted_free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
    counted_free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    counted_free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    counted_free(p);
}

// ---- OpenSSL allocation counting ------------------------------------------------------
// OpenSSL allocates through CRYPTO_malloc (plain malloc by default), never through operator new.
// main() installs these before anything touches OpenSSL.
namespace {
std::atomic<std::uint64_t> g_ossl_allocs{0};
void* ossl_malloc(std::size_t n, const char*, int) {
    g_ossl_allocs.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n);
}
void* ossl_realloc(void* p, std::size_t n, const char*, int) {
    g_ossl_allocs.fetch_add(1, std::memory_order_relaxed);
    return std::realloc(p, n);
}
void ossl_free(void* p, const char*, int) {
    std::free(p);
}
} // namespace

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
        "                            [--tls-cert FILE --tls-key FILE]\n"
        "       core_pingpong client --port N [--host ADDR] [--conns N] [--warmup S]\n"
        "                            [--duration S] [--server-pid PID]\n"
        "       core_pingpong tls-client --port N --ca FILE --mode echo|handshake [--resume]\n"
        "                            [--host ADDR] [--conns N] [--warmup S] [--duration S]\n"
        "                            [--server-pid PID]\n",
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
    std::string tls_cert, tls_key, ca;
    bool handshake_mode = false;
    bool resume = false;
};

options parse(int argc, char** argv) {
    if (argc < 2)
        usage(2);
    options o;
    o.mode = argv[1];
    if (o.mode == "--help" || o.mode == "-h")
        usage(0);
    if (o.mode != "server" && o.mode != "client" && o.mode != "tls-client")
        usage(2);
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h")
            usage(0);
        if (a == "--resume") {
            o.resume = true;
            continue;
        }
        if (i + 1 >= argc)
            usage(2);
        const char* v = argv[++i];
        char* end = nullptr;
        if (a == "--host") {
            o.host = v;
        } else if (a == "--port") {
            unsigned long p = std::strtoul(v, &end, 10);
            if (*end != '\0' || p > 65535)
                usage(2);
            o.port = static_cast<unsigned>(p);
        } else if (a == "--backend") {
            if (std::strcmp(v, "uring") == 0)
                o.backend = core::backend_kind::uring;
            else if (std::strcmp(v, "epoll") == 0)
                o.backend = core::backend_kind::epoll;
            else
                usage(2);
        } else if (a == "--conns") {
            unsigned long n = std::strtoul(v, &end, 10);
            if (*end != '\0' || n == 0 || n > 100000)
                usage(2);
            o.conns = static_cast<unsigned>(n);
        } else if (a == "--warmup") {
            o.warmup = std::strtod(v, &end);
            if (*end != '\0' || o.warmup < 0)
                usage(2);
        } else if (a == "--duration") {
            o.duration = std::strtod(v, &end);
            if (*end != '\0' || o.duration <= 0)
                usage(2);
        } else if (a == "--tls-cert") {
            o.tls_cert = v;
        } else if (a == "--tls-key") {
            o.tls_key = v;
        } else if (a == "--ca") {
            o.ca = v;
        } else if (a == "--mode") {
            if (std::strcmp(v, "handshake") == 0)
                o.handshake_mode = true;
            else if (std::strcmp(v, "echo") != 0)
                usage(2);
        } else if (a == "--server-pid") {
            o.server_pid = std::strtol(v, &end, 10);
            if (*end != '\0' || o.server_pid <= 0)
                usage(2);
        } else {
            usage(2);
        }
    }
    if (o.tls_cert.empty() != o.tls_key.empty())
        usage(2);
    if (o.mode == "tls-client" && o.ca.empty())
        usage(2);
    return o;
}

// ---- server -----------------------------------------------------------------------------

std::uint64_t g_round_trips = 0; // loop thread only
std::uint64_t g_handshakes = 0;  // TLS handshakes completed
std::uint64_t g_resumed = 0;     // of which resumed a session

struct snapshot {
    std::uint64_t rt, cpu, allocs, frees, wall, hs, resumed, ossl;
    static snapshot take() {
        return {g_round_trips,
                cpu_us(),
                g_allocs.load(std::memory_order_relaxed),
                g_frees.load(std::memory_order_relaxed),
                wall_us(),
                g_handshakes,
                g_resumed,
                g_ossl_allocs.load(std::memory_order_relaxed)};
    }
};

void print_delta(const char* tag, const snapshot& from, const snapshot& to) {
    std::printf("%s rt=%llu cpu_us=%llu allocs=%llu frees=%llu wall_us=%llu hs=%llu resumed=%llu "
                "ossl_allocs=%llu\n",
                tag, static_cast<unsigned long long>(to.rt - from.rt),
                static_cast<unsigned long long>(to.cpu - from.cpu),
                static_cast<unsigned long long>(to.allocs - from.allocs),
                static_cast<unsigned long long>(to.frees - from.frees),
                static_cast<unsigned long long>(to.wall - from.wall),
                static_cast<unsigned long long>(to.hs - from.hs),
                static_cast<unsigned long long>(to.resumed - from.resumed),
                static_cast<unsigned long long>(to.ossl - from.ossl));
    std::fflush(stdout);
}

core::task<void> echo(core::tcp_stream s) {
    std::byte buf[msg_size];
    for (;;) {
        std::size_t have = 0;
        while (have < msg_size) {
            auto n = co_await s.read_some({buf + have, msg_size - have});
            if (!n)
                co_return; // end of stream, reset or cancelled
            have += *n;
        }
        if (!co_await s.write_all({buf, msg_size}))
            co_return;
        ++g_round_trips;
    }
}

// A client gets this long to finish its TLS handshake.
constexpr auto handshake_timeout = std::chrono::seconds(10);

core::task<void> echo_tls(core::tcp_stream s, const core::tls_context& ctx) {
    auto tls = core::tls_stream::server(ctx, std::make_unique<core::tcp_stream>(std::move(s)));
    auto hs = co_await core::with_timeout(handshake_timeout, tls->handshake());
    if (!hs)
        co_return; // bad hello, timeout, peer gone: this connection only
    ++g_handshakes;
    if (tls->session_reused())
        ++g_resumed;
    std::byte buf[msg_size];
    for (;;) {
        std::size_t have = 0;
        while (have < msg_size) {
            auto n = co_await tls->read_some({buf + have, msg_size - have});
            if (!n)
                co_return; // close_notify, reset, truncation or cancelled
            have += *n;
        }
        if (!co_await tls->write_all({buf, msg_size}))
            co_return;
        ++g_round_trips;
    }
}

core::task<int> serve(core::loop& lp, core::endpoint ep, const core::tls_context* tls) {
    core::signal_set signals(lp, {SIGINT, SIGTERM, SIGUSR1, SIGUSR2});
    auto listener = core::tcp_listener::bind(lp, ep);
    if (!listener) {
        std::fprintf(stderr, "core_pingpong: cannot listen on %s: %s\n", ep.to_string().c_str(),
                     listener.error().message().c_str());
        co_return 1;
    }
    core::task_scope scope;
    scope.spawn(core::accept_loop(*listener, scope, [tls](core::tcp_stream s) {
        return tls != nullptr ? echo_tls(std::move(s), *tls) : echo(std::move(s));
    }));
    std::printf("listening on %s backend=%s%s\n", listener->local_endpoint()->to_string().c_str(),
                std::string(core::to_string(lp.backend())).c_str(), tls != nullptr ? " tls" : "");
    std::fflush(stdout);

    const snapshot start = snapshot::take();
    snapshot window_start = start;
    for (;;) {
        auto sig = co_await signals.wait();
        if (!sig)
            break;
        if (*sig == SIGUSR1) {
            window_start = snapshot::take();
        } else if (*sig == SIGUSR2) {
            print_delta("window", window_start, snapshot::take());
        } else {
            break; // SIGINT / SIGTERM
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
    core::tls_context tls;
    if (!o.tls_cert.empty()) {
        core::tls_server_options so;
        so.cert_file = o.tls_cert;
        so.key_file = o.tls_key;
        auto ctx = core::tls_context::server(so);
        if (!ctx) {
            std::fprintf(stderr, "core_pingpong: TLS setup failed: %s\n",
                         ctx.error().message().c_str());
            return 2;
        }
        tls = std::move(*ctx);
    }
    // Before the loop (and any thread) exists.
    core::block_signals({SIGINT, SIGTERM, SIGUSR1, SIGUSR2});
    core::loop_options lo;
    lo.backend = o.backend;
    core::loop lp(lo);
    return core::run(lp, serve(lp, *ep, tls.valid() ? &tls : nullptr));
}

// ---- client (plain epoll, level-triggered) --------------------------------------------

struct conn {
    int fd = -1;
    std::size_t have = 0; // response bytes received so far
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
    for (std::size_t i = 0; i < msg_size; ++i)
        request[i] = static_cast<unsigned char>('a' + i % 26);

    std::vector<conn> conns(o.conns);
    for (unsigned i = 0; i < o.conns; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            std::perror("socket");
            return 1;
        }
        if (::connect(fd, reinterpret_cast<::sockaddr*>(&sa), sizeof sa) != 0) {
            std::fprintf(stderr, "core_pingpong client: connect #%u: %s\n", i,
                         std::strerror(errno));
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
    for (auto& c : conns)
        send_request(c);

    using clk = std::chrono::steady_clock;
    const auto t0 = clk::now();
    const auto warm_end =
        t0 + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.warmup));
    const auto measure_end = warm_end + std::chrono::duration_cast<clk::duration>(
                                            std::chrono::duration<double>(o.duration));
    bool measuring = o.warmup <= 0;
    if (measuring && o.server_pid > 0)
        ::kill(static_cast<pid_t>(o.server_pid), SIGUSR1);
    clk::time_point measure_start = t0;
    std::uint64_t measure_cpu = cpu_us();
    std::uint64_t rt = 0;
    std::vector<::epoll_event> events(o.conns < 1024 ? o.conns : 1024);
    unsigned char buf[msg_size];
    for (;;) {
        int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 1000);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            std::perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; ++i) {
            conn& c = conns[events[i].data.u32];
            ssize_t r = ::recv(c.fd, buf, msg_size - c.have, MSG_DONTWAIT);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
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
            if (c.have < msg_size)
                continue;
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
            if (o.server_pid > 0)
                ::kill(static_cast<pid_t>(o.server_pid), SIGUSR1);
        } else if (measuring && now >= measure_end) {
            if (o.server_pid > 0)
                ::kill(static_cast<pid_t>(o.server_pid), SIGUSR2);
            const double secs = std::chrono::duration<double>(now - measure_start).count();
            std::printf("client conns=%u rt=%llu seconds=%.3f rt_per_s=%.0f cpu_us=%llu\n", o.conns,
                        static_cast<unsigned long long>(rt), secs, static_cast<double>(rt) / secs,
                        static_cast<unsigned long long>(cpu_us() - measure_cpu));
            std::fflush(stdout);
            break;
        }
    }
    // Keep the (now idle) connections open a moment so the server handles SIGUSR2 before it
    // sees 1000 connections close: their teardown must not land in the measurement window.
    if (o.server_pid > 0)
        ::usleep(300'000);
    for (auto& c : conns)
        ::close(c.fd);
    ::close(ep);
    return 0;
}

// ---- tls-client (plain OpenSSL; no coronet) -----------------------------------------------

[[noreturn]] void ssl_die(const char* what) {
    std::fprintf(stderr, "core_pingpong tls-client: %s: ", what);
    ERR_print_errors_fp(stderr);
    std::fprintf(stderr, "(errno: %s)\n", std::strerror(errno));
    std::exit(1);
}

thread_local SSL_SESSION* t_latest = nullptr; // newest session (ticket) this thread received

int keep_session(SSL*, SSL_SESSION* sess) {
    if (t_latest != nullptr)
        SSL_SESSION_free(t_latest);
    t_latest = sess;
    return 1; // we keep the reference
}

SSL_CTX* client_ctx(const options& o) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == nullptr)
        ssl_die("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_load_verify_locations(ctx, o.ca.c_str(), nullptr) != 1)
        ssl_die("--ca");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    // One recv per burst of records instead of header + body reads.
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, &keep_session);
    return ctx;
}

bool client_addr(const options& o, ::sockaddr_in& sa) {
    sa = {};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(o.port));
    if (o.port == 0 || ::inet_pton(AF_INET, o.host.c_str(), &sa.sin_addr) != 1) {
        std::fprintf(stderr, "core_pingpong: need --port and an IPv4 --host\n");
        return false;
    }
    return true;
}

// Blocking connect + full (or resumed) handshake; the certificate is verified against --ca and
// the server's IP address.
SSL* tls_connect(SSL_CTX* ctx, const options& o, const ::sockaddr_in& sa, bool resume) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        ssl_die("socket");
    if (::connect(fd, reinterpret_cast<const ::sockaddr*>(&sa), sizeof sa) != 0)
        ssl_die("connect");
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SSL* ssl = SSL_new(ctx);
    if (ssl == nullptr)
        ssl_die("SSL_new");
    SSL_set_fd(ssl, fd);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), o.host.c_str());
    if (resume && t_latest != nullptr)
        SSL_set_session(ssl, t_latest);
    if (SSL_connect(ssl) != 1)
        ssl_die("handshake");
    return ssl;
}

void fill_request(unsigned char* request) {
    for (std::size_t i = 0; i < msg_size; ++i)
        request[i] = static_cast<unsigned char>('a' + i % 26);
}

struct hs_counters {
    std::atomic<std::uint64_t> conns{0};
    std::atomic<std::uint64_t> resumed{0};
};

void handshake_thread(SSL_CTX* ctx, const options& o, const ::sockaddr_in& sa,
                      const std::atomic<bool>& stop, hs_counters& c) {
    unsigned char request[msg_size], buf[msg_size];
    fill_request(request);
    while (!stop.load(std::memory_order_relaxed)) {
        SSL* ssl = tls_connect(ctx, o, sa, o.resume);
        const bool reused = SSL_session_reused(ssl) == 1;
        std::size_t n = 0;
        if (SSL_write_ex(ssl, request, msg_size, &n) != 1)
            ssl_die("SSL_write");
        std::size_t have = 0;
        while (have < msg_size) { // also takes in the server's NewSessionTicket messages
            if (SSL_read_ex(ssl, buf + have, msg_size - have, &n) != 1)
                ssl_die("SSL_read");
            have += n;
        }
        if (std::memcmp(buf, request, msg_size) != 0)
            ssl_die("echo mismatch");
        SSL_shutdown(ssl); // sends close_notify; the server closes without answering
        int fd = SSL_get_fd(ssl);
        SSL_free(ssl);
        ::close(fd);
        c.conns.fetch_add(1, std::memory_order_relaxed);
        if (reused)
            c.resumed.fetch_add(1, std::memory_order_relaxed);
    }
    if (t_latest != nullptr)
        SSL_SESSION_free(t_latest);
    t_latest = nullptr;
}

void sleep_seconds(double s) {
    if (s > 0)
        std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

int run_tls_handshakes(const options& o, SSL_CTX* ctx, const ::sockaddr_in& sa) {
    hs_counters c;
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < o.conns; ++i)
        threads.emplace_back([&] { handshake_thread(ctx, o, sa, stop, c); });
    sleep_seconds(o.warmup);
    using clk = std::chrono::steady_clock;
    const std::uint64_t n0 = c.conns.load(), r0 = c.resumed.load(), cpu0 = cpu_us();
    const auto t0 = clk::now();
    if (o.server_pid > 0)
        ::kill(static_cast<pid_t>(o.server_pid), SIGUSR1);
    sleep_seconds(o.duration);
    if (o.server_pid > 0)
        ::kill(static_cast<pid_t>(o.server_pid), SIGUSR2);
    const std::uint64_t n1 = c.conns.load(), r1 = c.resumed.load(), cpu1 = cpu_us();
    const double secs = std::chrono::duration<double>(clk::now() - t0).count();
    stop = true;
    for (auto& t : threads)
        t.join();
    std::printf(
        "client conns=%u rt=%llu seconds=%.3f rt_per_s=%.0f cpu_us=%llu hs=%llu resumed=%llu\n",
        o.conns, static_cast<unsigned long long>(n1 - n0), secs,
        static_cast<double>(n1 - n0) / secs, static_cast<unsigned long long>(cpu1 - cpu0),
        static_cast<unsigned long long>(n1 - n0), static_cast<unsigned long long>(r1 - r0));
    std::fflush(stdout);
    return 0;
}

int run_tls_echo(const options& o, SSL_CTX* ctx, const ::sockaddr_in& sa) {
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        ssl_die("epoll_create1");
    unsigned char request[msg_size];
    fill_request(request);
    struct tls_conn {
        SSL* ssl = nullptr;
        std::size_t have = 0;
    };
    std::vector<tls_conn> conns(o.conns);
    for (unsigned i = 0; i < o.conns; ++i) {
        conns[i].ssl = tls_connect(ctx, o, sa, false);
        int fd = SSL_get_fd(conns[i].ssl);
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        ::epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = i;
        if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            ssl_die("epoll_ctl");
    }
    // A 64-byte record into an idle socket never blocks in lockstep.
    auto send_request = [&](tls_conn& c) {
        std::size_t n = 0;
        if (SSL_write_ex(c.ssl, request, msg_size, &n) != 1)
            ssl_die("SSL_write");
    };
    for (auto& c : conns)
        send_request(c);

    using clk = std::chrono::steady_clock;
    const auto t0 = clk::now();
    const auto warm_end =
        t0 + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.warmup));
    const auto measure_end = warm_end + std::chrono::duration_cast<clk::duration>(
                                            std::chrono::duration<double>(o.duration));
    bool measuring = o.warmup <= 0;
    if (measuring && o.server_pid > 0)
        ::kill(static_cast<pid_t>(o.server_pid), SIGUSR1);
    clk::time_point measure_start = t0;
    std::uint64_t measure_cpu = cpu_us();
    std::uint64_t rt = 0;
    std::vector<::epoll_event> events(o.conns < 1024 ? o.conns : 1024);
    unsigned char buf[msg_size];
    for (;;) {
        int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 1000);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ssl_die("epoll_wait");
        }
        for (int i = 0; i < n; ++i) {
            tls_conn& c = conns[events[i].data.u32];
            for (;;) {
                std::size_t got = 0;
                int r = SSL_read_ex(c.ssl, buf, msg_size - c.have, &got);
                if (r != 1) {
                    if (SSL_get_error(c.ssl, r) == SSL_ERROR_WANT_READ)
                        break;
                    ssl_die("SSL_read");
                }
                if (std::memcmp(buf, request + c.have, got) != 0)
                    ssl_die("echo mismatch");
                c.have += got;
                if (c.have < msg_size)
                    continue;
                c.have = 0;
                ++rt;
                send_request(c);
                break;
            }
        }
        const auto now = clk::now();
        if (!measuring && now >= warm_end) {
            measuring = true;
            rt = 0;
            measure_start = now;
            measure_cpu = cpu_us();
            if (o.server_pid > 0)
                ::kill(static_cast<pid_t>(o.server_pid), SIGUSR1);
        } else if (measuring && now >= measure_end) {
            if (o.server_pid > 0)
                ::kill(static_cast<pid_t>(o.server_pid), SIGUSR2);
            const double secs = std::chrono::duration<double>(now - measure_start).count();
            std::printf("client conns=%u rt=%llu seconds=%.3f rt_per_s=%.0f cpu_us=%llu hs=0 "
                        "resumed=0\n",
                        o.conns, static_cast<unsigned long long>(rt), secs,
                        static_cast<double>(rt) / secs,
                        static_cast<unsigned long long>(cpu_us() - measure_cpu));
            std::fflush(stdout);
            break;
        }
    }
    if (o.server_pid > 0)
        ::usleep(300'000);
    for (auto& c : conns) {
        int fd = SSL_get_fd(c.ssl);
        SSL_free(c.ssl);
        ::close(fd);
    }
    ::close(ep);
    return 0;
}

int run_tls_client(const options& o) {
    ::sockaddr_in sa{};
    if (!client_addr(o, sa))
        return 2;
    SSL_CTX* ctx = client_ctx(o);
    int rc = o.handshake_mode ? run_tls_handshakes(o, ctx, sa) : run_tls_echo(o, ctx, sa);
    SSL_CTX_free(ctx);
    return rc;
}

} // namespace

int main(int argc, char** argv) {
    // Before anything touches OpenSSL (libcoronet_core's TLS included).
    const bool ossl_counted =
        CRYPTO_set_mem_functions(&ossl_malloc, &ossl_realloc, &ossl_free) == 1;
    options o = parse(argc, argv);
    raise_nofile_limit();
    if (!ossl_counted)
        std::fputs("core_pingpong: OpenSSL allocations are not counted\n", stderr);
    if (o.mode == "server")
        return run_server(o);
    if (o.mode == "tls-client")
        return run_tls_client(o);
    return run_client(o);
}
