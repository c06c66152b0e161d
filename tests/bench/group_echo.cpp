// group_echo: the 64-byte echo server of core_pingpong on a core::loop_group, to measure what
// several loops cost per message and how connections should reach them.
//
//   group_echo [--port 0] [--loops N] [--backend epoll|uring] [--accept reuse_port|handoff]
//   group_echo churn --port P --server-pid PID [--threads 2] [--warmup S] [--duration S]
//
// --accept reuse_port: one SO_REUSEPORT listener per loop (core::listen_group + serve on each
//   loop); the kernel spreads connections.
// --accept handoff: one listener on loop 0; each accepted socket goes to the next loop in
//   round-robin order through a cross-loop post (the socket is dup'ed out of loop 0's
//   tcp_stream, which core has no other way to hand over), and runs there.
//
// Driven by `core_pingpong client` (tests/bench/README.md): prints
// "listening on 127.0.0.1:PORT backend=KIND loops=N accept=MODE" (flushed); SIGUSR1 opens a
// window, SIGUSR2 closes it and prints
// "window rt=R cpu_us=C wall_us=W per_loop=R0/R1/..." (C: getrusage RUSAGE_SELF, every
// thread); SIGINT/SIGTERM stop the group and exit 0.
//
// churn: a connection-rate client (plain blocking sockets, N threads), each thread looping
// connect, one 64-byte round trip, close; SIGUSR1/SIGUSR2 to the server around the measured
// window like core_pingpong's client; prints "churn threads=N conns=C seconds=S conns_per_s=X".
// The server's window line then counts round trips = connections.
#include <coronet/core/loop_group.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/serve_group.hpp>
#include <coronet/core/signal.hpp>
#include <coronet/core/socket.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace core = coronet::core;

namespace {

constexpr std::size_t msg_size = 64;

struct alignas(64) loop_counter {
    std::atomic<std::uint64_t> rt{0};
};

struct server {
    std::size_t loops = 1;
    bool handoff = false;
    std::vector<loop_counter> counters;
    std::vector<core::tcp_listener> listeners; // reuse_port: one per loop; handoff: one
    std::vector<core::task_scope*> scopes;     // handoff: where loop i runs its connections
    std::atomic<std::size_t> next{0};
    core::serve_options opts;
    core::loop_group* group = nullptr;
};

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

struct snapshot {
    std::vector<std::uint64_t> rt;
    std::uint64_t cpu = 0;
    std::uint64_t wall = 0;
    static snapshot take(const server& s) {
        snapshot out;
        for (const auto& c : s.counters)
            out.rt.push_back(c.rt.load(std::memory_order_relaxed));
        out.cpu = cpu_us();
        out.wall = wall_us();
        return out;
    }
};

void print_window(const snapshot& a, const snapshot& b) {
    std::uint64_t total = 0;
    std::string per;
    for (std::size_t i = 0; i < a.rt.size(); ++i) {
        total += b.rt[i] - a.rt[i];
        per += (i == 0 ? "" : "/") + std::to_string(b.rt[i] - a.rt[i]);
    }
    std::printf("window rt=%llu cpu_us=%llu wall_us=%llu per_loop=%s\n",
                static_cast<unsigned long long>(total),
                static_cast<unsigned long long>(b.cpu - a.cpu),
                static_cast<unsigned long long>(b.wall - a.wall), per.c_str());
    std::fflush(stdout);
}

core::task<void> echo(core::tcp_stream s, loop_counter& count) {
    std::byte buf[msg_size];
    for (;;) {
        std::size_t have = 0;
        while (have < msg_size) {
            auto n = co_await s.read_some({buf + have, msg_size - have});
            if (!n)
                co_return;
            have += *n;
        }
        auto w = co_await s.write_all({buf, msg_size});
        if (!w)
            co_return;
        // Only this loop's thread writes its counter: no locked instruction per message.
        count.rt.store(count.rt.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
}

// Handoff: runs on loop 0 for every accepted socket and sends it to the next loop.
core::task<void> hand_over(server& srv, core::tcp_stream s) {
    const std::size_t k = srv.next.fetch_add(1, std::memory_order_relaxed) % srv.loops;
    const int fd = ::dup(s.native_handle());
    s.close();
    if (fd < 0)
        co_return;
    core::loop& target = srv.group->at(k);
    target.post([&srv, &target, k, fd] {
        srv.scopes[k]->spawn(echo(core::tcp_stream(target, fd), srv.counters[k]));
    });
}

core::task<void> watch_signals(core::loop& lp, server& srv) {
    core::signal_set signals(lp, {SIGINT, SIGTERM, SIGUSR1, SIGUSR2});
    snapshot start = snapshot::take(srv);
    for (;;) {
        auto sig = co_await signals.wait();
        if (!sig)
            co_return; // the group stopped
        if (*sig == SIGUSR1) {
            start = snapshot::take(srv);
        } else if (*sig == SIGUSR2) {
            print_window(start, snapshot::take(srv));
        } else {
            srv.group->stop();
            co_return;
        }
    }
}

core::task<void> loop_body(server& srv, core::loop& lp, std::size_t i) {
    core::task_scope local(co_await core::get_stop_token()); // stops with the group
    if (i == 0)
        local.spawn(watch_signals(lp, srv));
    if (!srv.handoff) {
        local.spawn(core::serve(
            srv.listeners[i],
            [&srv, i](core::tcp_stream s, core::stop_token) {
                return echo(std::move(s), srv.counters[i]);
            },
            srv.opts));
    } else {
        srv.scopes[i] = &local;
        if (i == 0)
            local.spawn(core::serve(
                srv.listeners[0],
                [&srv](core::tcp_stream s, core::stop_token) {
                    return hand_over(srv, std::move(s));
                },
                srv.opts));
    }
    co_await local.join();
    // On this loop, which the listener is registered with.
    if (!srv.handoff || i == 0)
        srv.listeners[i].close();
}

// One connection of the churn client: connect, 64 bytes each way, close. False on any failure.
bool one_connection(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    ::sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bool ok = ::connect(fd, reinterpret_cast<::sockaddr*>(&a), sizeof a) == 0;
    char buf[msg_size] = {};
    ok = ok && ::write(fd, buf, msg_size) == static_cast<ssize_t>(msg_size);
    std::size_t have = 0;
    while (ok && have < msg_size) {
        const auto n = ::read(fd, buf + have, msg_size - have);
        ok = n > 0;
        have += ok ? static_cast<std::size_t>(n) : 0;
    }
    // RST instead of FIN: the client does not pile up TIME_WAIT sockets over a long run.
    ::linger lg{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    ::close(fd);
    return ok;
}

int churn_main(int argc, char** argv) {
    std::uint16_t port = 0;
    int threads = 2;
    double warmup = 1;
    double duration = 3;
    long server_pid = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        const std::string v = argv[i + 1];
        if (a == "--port")
            port = static_cast<std::uint16_t>(std::atoi(v.c_str()));
        else if (a == "--threads")
            threads = std::atoi(v.c_str());
        else if (a == "--warmup")
            warmup = std::atof(v.c_str());
        else if (a == "--duration")
            duration = std::atof(v.c_str());
        else if (a == "--server-pid")
            server_pid = std::atol(v.c_str());
    }
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> done{0};
    std::atomic<std::uint64_t> failed{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&] {
            while (!stop.load(std::memory_order_relaxed)) {
                if (one_connection(port))
                    done.fetch_add(1, std::memory_order_relaxed);
                else
                    failed.fetch_add(1, std::memory_order_relaxed);
            }
        });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
    if (server_pid > 0)
        ::kill(static_cast<pid_t>(server_pid), SIGUSR1);
    const auto c0 = done.load();
    const auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(duration));
    const auto c1 = done.load();
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (server_pid > 0)
        ::kill(static_cast<pid_t>(server_pid), SIGUSR2);
    stop.store(true);
    for (auto& w : workers)
        w.join();
    std::printf("churn threads=%d conns=%llu seconds=%.3f conns_per_s=%.0f failed=%llu\n", threads,
                static_cast<unsigned long long>(c1 - c0), secs, static_cast<double>(c1 - c0) / secs,
                static_cast<unsigned long long>(failed.load()));
    return 0;
}

[[noreturn]] void usage() {
    std::fputs("usage: group_echo [--port N] [--loops N] [--backend epoll|uring] "
               "[--accept reuse_port|handoff]\n",
               stderr);
    std::exit(2);
}

} // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::string(argv[1]) == "churn")
        return churn_main(argc, argv);
    server srv;
    std::uint16_t port = 0;
    core::loop_group_options go;
    go.loops = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc)
            usage();
        const std::string v = argv[++i];
        if (a == "--port")
            port = static_cast<std::uint16_t>(std::atoi(v.c_str()));
        else if (a == "--loops")
            go.loops = static_cast<std::size_t>(std::atoi(v.c_str()));
        else if (a == "--backend" && (v == "epoll" || v == "uring"))
            go.loop.backend = v == "epoll" ? core::backend_kind::epoll : core::backend_kind::uring;
        else if (a == "--accept" && (v == "reuse_port" || v == "handoff"))
            srv.handoff = v == "handoff";
        else
            usage();
    }
    // Before any loop thread exists, so that every thread inherits the mask.
    core::block_signals({SIGINT, SIGTERM, SIGUSR1, SIGUSR2});
    core::loop_group group(go);
    srv.group = &group;
    srv.loops = group.size();
    srv.counters = std::vector<loop_counter>(srv.loops);
    srv.scopes.assign(srv.loops, nullptr);
    srv.opts.shutdown_grace = std::chrono::milliseconds(0);
    srv.opts.name = "group_echo";
    const auto ep = core::endpoint::loopback_v4(port);
    if (srv.handoff) {
        auto l = core::tcp_listener::bind(group.at(0), ep);
        if (!l) {
            std::fprintf(stderr, "group_echo: listen: %s\n", l.error().message().c_str());
            return 1;
        }
        srv.listeners.push_back(std::move(*l));
    } else {
        auto ls = core::listen_group(group, ep, core::listen_options());
        if (!ls) {
            std::fprintf(stderr, "group_echo: listen: %s\n", ls.error().message().c_str());
            return 1;
        }
        srv.listeners = std::move(*ls);
    }
    std::printf("listening on %s backend=%s loops=%zu accept=%s\n",
                srv.listeners[0].local_endpoint()->to_string().c_str(),
                std::string(core::to_string(group.at(0).backend())).c_str(), srv.loops,
                srv.handoff ? "handoff" : "reuse_port");
    std::fflush(stdout);
    group.run([&srv](core::loop& lp, std::size_t i) { return loop_body(srv, lp, i); });
    return 0;
}
