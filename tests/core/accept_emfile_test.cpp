#include <coronet/core/accept_loop.hpp>

#include <coronet/core/log.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>

#include <testing/backends.hpp>
#include <testing/process.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace core = coronet::core;
using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

// ---- the child: an echo server with 32 descriptors ----------------------------------------

constexpr int port_fd = 3; // the child writes its port here
constexpr int log_fd = 4;  // and every log line here
constexpr rlim_t child_fd_limit = 32;

/// Forwards every log line to a pipe, one write per line (non-blocking: never stalls the loop).
class pipe_log_sink final : public core::log_sink {
public:
    explicit pipe_log_sink(int fd) noexcept : fd_(fd) {}
    void log(core::log_level, std::string_view message) noexcept override {
        std::string line(message);
        line += '\n';
        [[maybe_unused]] auto n = ::write(fd_, line.data(), line.size());
    }

private:
    int fd_;
};

core::task<void> echo(core::tcp_stream s) {
    char buf[256];
    for (;;) {
        auto r = co_await s.read_some(
            core::mutable_buffer(reinterpret_cast<std::byte*>(buf), sizeof buf));
        if (!r)
            co_return;
        if (!co_await s.write_all(core::const_buffer(reinterpret_cast<std::byte*>(buf), *r)))
            co_return;
    }
}

core::task<void> serve(core::loop& lp) {
    auto l = core::tcp_listener::bind(lp, core::endpoint::loopback_v4(0));
    if (!l)
        co_return;
    auto ep = l->local_endpoint();
    if (!ep)
        co_return;
    const std::uint16_t port = ep->port();
    if (::write(port_fd, &port, sizeof port) != sizeof port)
        co_return;
    ::close(port_fd);
    core::task_scope scope;
    core::accept_loop_options o;
    o.min_backoff = 5ms;
    o.max_backoff = 50ms;
    co_await core::accept_loop(
        *l, scope, [](core::tcp_stream s) { return echo(std::move(s)); }, o);
    co_await scope.join();
}

/// UBSan's vptr check on a type-cache miss needs a pipe(2), which fails once the child is out
/// of descriptors, and then reports a false "invalid vptr". Run the error_category calls the
/// accept loop makes while starved once beforehand, so they hit the cache instead.
void warm_sanitizer_type_cache() {
    for (int e : {EMFILE, ECONNABORTED, EBADF}) {
        const std::error_code ec = core::errno_code(e);
        volatile bool sink = core::detail::accept_needs_backoff(ec);
        sink = core::detail::accept_error_is_transient(ec);
        sink = ec == core::errc::operation_canceled;
        sink = ec == std::errc::bad_file_descriptor;
        sink = ec == std::errc::invalid_argument;
        (void)sink;
        (void)ec.message();
    }
}

/// The child's main: runs until SIGTERM. Exit codes only for setup failures.
int child_main(int port_w, int log_w, core::backend_kind kind) {
    warm_sanitizer_type_cache();
    if (::dup2(port_w, port_fd) < 0 || ::dup2(log_w, log_fd) < 0)
        return 10;
    ::close_range(log_fd + 1, ~0U, 0); // nothing inherited counts against the limit
    ::fcntl(log_fd, F_SETFL, O_NONBLOCK);
    ::rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = child_fd_limit;
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 11;
    pipe_log_sink sink(log_fd);
    core::set_log_sink(&sink);
    core::loop_options opts;
    opts.backend = kind;
    core::loop lp(opts);
    core::run(lp, serve(lp));
    return 12; // serve() only returns on a setup failure
}

// ---- the parent: plain blocking sockets with timeouts ----------------------------------------

/// Reads from `fd` until `pred(text)` holds or `timeout` passes; returns everything read.
template <class Pred>
std::string read_until(int fd, milliseconds timeout, Pred pred, std::string text = {}) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred(text)) {
        auto left =
            std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            break;
        ::pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
            continue;
        char buf[4096];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    return text;
}

/// A blocking connection to 127.0.0.1:port with 5 s send/receive timeouts, or -1 (errno set).
int connect_to(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ::timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ::sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<::sockaddr*>(&a), sizeof a) != 0) {
        const int e = errno;
        ::close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/// Sends `msg` and waits (bounded by SO_RCVTIMEO) for it to come back.
bool echoes(int fd, const std::string& msg) {
    if (::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size()))
        return false;
    auto back =
        read_until(fd, 5000ms, [&](const std::string& t) { return t.size() >= msg.size(); });
    return back == msg;
}

bool contains(const std::string& text, std::string_view what) {
    return text.find(what) != std::string::npos;
}

template <class B>
void emfile_survival() {
    // Fork first, before this test creates any loop or thread.
    int port_pipe[2];
    int log_pipe[2];
    REQUIRE(::pipe2(port_pipe, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(log_pipe, O_CLOEXEC) == 0);
    auto child = coronet::testing::child_process::run_forked(
        [&] { return child_main(port_pipe[1], log_pipe[1], B::kind); });
    ::close(port_pipe[1]);
    ::close(log_pipe[1]);
    const int port_r = port_pipe[0];
    const int log_r = log_pipe[0];

    std::string port_bytes =
        read_until(port_r, 10000ms, [](const std::string& t) { return t.size() >= 2; });
    ::close(port_r);
    REQUIRE_MESSAGE(port_bytes.size() == 2, "the child did not report its port");
    std::uint16_t port = 0;
    std::memcpy(&port, port_bytes.data(), sizeof port);
    REQUIRE(port != 0);

    // Far more connections than the child has descriptors: the kernel completes them all (the
    // backlog is large), the child accepts until EMFILE.
    std::string log;
    auto child_state = [&] {
        log = read_until(
            log_r, 200ms, [](const std::string&) { return false; }, log);
        const bool alive = child.running();
        return std::string(alive ? "child running" : "child gone") + "; child log: " + log;
    };
    std::vector<int> first_batch;
    for (int i = 0; i < 60; ++i) {
        int fd = connect_to(port);
        REQUIRE_MESSAGE(fd >= 0,
                        "connect " << i << ": " << std::strerror(errno) << "; " << child_state());
        first_batch.push_back(fd);
    }
    CHECK(echoes(first_batch.front(), "early bird"));

    log = read_until(
        log_r, 5000ms, [](const std::string& t) { return contains(t, "refusing new connections"); },
        log);
    CHECK_MESSAGE(contains(log, "refusing new connections"), "log so far: " << log);

    // The connections it had no descriptor for are refused at once (EOF or a reset), not left
    // waiting in the backlog until a descriptor frees up.
    auto refused_now = [](int fd, milliseconds within) {
        ::pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(within.count())) != 1)
            return false;
        char c = 0;
        return ::recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
    };
    CHECK(refused_now(first_batch.back(), 2000ms));
    int refused = 0;
    for (int fd : first_batch)
        refused += refused_now(fd, 0ms) ? 1 : 0;
    INFO(refused << " of " << first_batch.size() << " connections refused");
    CHECK(refused >= static_cast<int>(first_batch.size()) - static_cast<int>(child_fd_limit));

    // While starved the child must not spin: sample its CPU time over a window in which one
    // more client connects and is refused.
    auto cpu_before = child.cpu_time();
    REQUIRE(cpu_before.has_value());
    const auto wall_before = std::chrono::steady_clock::now();
    const int late = connect_to(port);
    REQUIRE_MESSAGE(late >= 0, "connect: " << std::strerror(errno) << "; " << child_state());
    CHECK(refused_now(late, 2000ms));
    ::close(late);
    ::poll(nullptr, 0, 500); // the rest of the sampling window
    const auto wall =
        std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - wall_before);
    auto cpu_after = child.cpu_time();
    REQUIRE(cpu_after.has_value());
    const auto spent = *cpu_after - *cpu_before;
    INFO("child used " << spent.count() << " ms of CPU in " << wall.count() << " ms");
    CHECK(spent < wall / 2);
    CHECK(child.running());

    // Recovery: free the descriptors, and a new connection is served.
    for (int fd : first_batch)
        ::close(fd);
    int fresh = connect_to(port);
    REQUIRE_MESSAGE(fresh >= 0, "connect: " << std::strerror(errno) << "; " << child_state());
    CHECK(echoes(fresh, "after the storm"));
    ::close(fresh);
    log = read_until(
        log_r, 5000ms, [](const std::string& t) { return contains(t, "available again"); }, log);
    CHECK_MESSAGE(contains(log, "available again"), "log so far: " << log);

    auto cpu_total = child.cpu_time();
    REQUIRE(cpu_total.has_value());
    CHECK(*cpu_total < 1000ms);
    REQUIRE(child.running()); // survived: no crash, no exit

    CHECK(child.signal(SIGTERM));
    auto status = child.wait_exit(5000ms);
    REQUIRE_MESSAGE(status.has_value(), "the child did not exit after SIGTERM");
    CHECK(WIFSIGNALED(*status));
    CHECK(WTERMSIG(*status) == SIGTERM);
    ::close(log_r);
}

} // namespace

TEST_SUITE("core.accept_loop") {

    TEST_CASE_TEMPLATE("an accept_loop out of descriptors refuses new clients at once, without "
                       "spinning, and recovers",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        emfile_survival<B>();
    }

    TEST_CASE("a refused client reads the refusal and then EOF") {
        // A plain listening socket, blocking as on io_uring: refuse_one must not block on it.
        int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(l >= 0);
        ::sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(l, reinterpret_cast<::sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(l, 8) == 0);
        ::socklen_t len = sizeof a;
        REQUIRE(::getsockname(l, reinterpret_cast<::sockaddr*>(&a), &len) == 0);

        core::detail::descriptor_reserve reserve;
        CHECK_FALSE(reserve.refuse_one(l, "nobody is waiting")); // returns at once, accepts nothing

        const int c = connect_to(ntohs(a.sin_port));
        REQUIRE(c >= 0);
        REQUIRE(::send(c, "GET / HTTP/1.1\r\n\r\n", 18, MSG_NOSIGNAL) == 18);
        const std::string refusal = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
        ::pollfd p{l, POLLIN, 0};
        REQUIRE(::poll(&p, 1, 5000) == 1);
        CHECK(reserve.refuse_one(l, refusal));
        const int flags = ::fcntl(l, F_GETFL);
        CHECK((flags & O_NONBLOCK) == 0); // the listener is left as it was

        std::string got =
            read_until(c, 5000ms, [&](const std::string& t) { return t.size() >= refusal.size(); });
        CHECK(got == refusal);
        char more = 0;
        CHECK(::recv(c, &more, 1, 0) == 0); // then EOF
        ::close(c);
        ::close(l);
    }

} // TEST_SUITE
