#include <coronet/core/loop.hpp>

#include <coronet/core/log.hpp>
#include <coronet/core/resolve.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/signal.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/when.hpp>

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace core = coronet::core;
using namespace std::chrono_literals;

using coronet::testing::run_on;

namespace {

// ---- post ------------------------------------------------------------------------------------

core::task<core::result<void>> long_sleep() {
    co_return co_await core::sleep_for(5s);
}

core::task<void> woken_by_post(core::loop& lp) {
    core::stop_source woken;
    std::thread::id ran_on;
    const auto loop_thread = std::this_thread::get_id();
    // The loop sleeps (in the kernel) for up to 5 s; only the post can end that sleep early.
    std::thread poster([&lp, &woken, &ran_on] {
        lp.post([&woken, &ran_on] {
            ran_on = std::this_thread::get_id();
            woken.request_stop();
        });
    });
    auto nap = long_sleep();
    nap.handle().promise().set_token(woken.token());
    auto r = co_await std::move(nap);
    poster.join();
    CHECK(r.error() == core::errc::operation_canceled); // ended by the posted function
    CHECK(ran_on == loop_thread);
}

core::task<void> many_posts(core::loop& lp) {
    // Posts from several threads while the loop drains earlier ones: each runs exactly once, on
    // the loop thread, and none waits for a later wake-up (the loop would sleep 5 s instead).
    constexpr int threads = 4;
    constexpr int per_thread = 2000;
    const auto loop_thread = std::this_thread::get_id();
    for (int round = 0; round < 5; ++round) {
        core::stop_source all_done;
        int ran = 0;
        bool wrong_thread = false;
        std::vector<std::thread> posters;
        for (int t = 0; t < threads; ++t) {
            posters.emplace_back([&] {
                for (int i = 0; i < per_thread; ++i) {
                    lp.post([&] {
                        if (std::this_thread::get_id() != loop_thread)
                            wrong_thread = true;
                        if (++ran == threads * per_thread)
                            all_done.request_stop();
                    });
                }
            });
        }
        auto nap = long_sleep();
        nap.handle().promise().set_token(all_done.token());
        auto r = co_await std::move(nap);
        for (auto& t : posters)
            t.join();
        INFO("round " << round);
        CHECK(r.error() == core::errc::operation_canceled);
        CHECK(ran == threads * per_thread);
        CHECK_FALSE(wrong_thread);
        if (ran != threads * per_thread)
            break;
    }
}

// ---- resolve -----------------------------------------------------------------------------------

bool is_loopback(const core::endpoint& ep) {
    if (ep.family() == AF_INET) {
        auto* a = reinterpret_cast<const ::sockaddr_in*>(ep.data());
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (ep.family() == AF_INET6) {
        auto* a = reinterpret_cast<const ::sockaddr_in6*>(ep.data());
        return IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
    }
    return false;
}

core::task<void> resolve_localhost(core::loop&) {
    auto r = co_await core::with_timeout(5s, core::resolve("localhost", 8080));
    REQUIRE_MESSAGE(r, r.error().message());
    REQUIRE_FALSE(r->empty());
    for (const auto& ep : *r) {
        CHECK_MESSAGE(is_loopback(ep), ep.to_string());
        CHECK(ep.port() == 8080);
    }
    // Numeric addresses need no lookup and keep the family asked for.
    auto v4 = co_await core::resolve("127.0.0.1", 443, AF_INET);
    REQUIRE(v4);
    REQUIRE(v4->size() == 1);
    CHECK(v4->front().to_string() == "127.0.0.1:443");
}

core::task<void> resolve_invalid(core::loop&) {
    // .invalid never resolves (RFC 6761); with no resolver at all the lookup may take its time,
    // which the deadline bounds.
    auto r = co_await core::with_timeout(5s, core::resolve("nonexistent.invalid", 80));
    REQUIRE_FALSE(r);
    const bool expected =
        r.error() == core::errc::resolve_failed || r.error() == core::errc::timed_out;
    CHECK_MESSAGE(expected, r.error().message());
}

core::task<void> resolve_cancelled(core::loop&) {
    core::stop_source src;
    src.request_stop();
    auto t = core::resolve("localhost", 80);
    t.handle().promise().set_token(src.token());
    auto r = co_await std::move(t);
    CHECK(r.error() == core::errc::operation_canceled);
}

// ---- signals -----------------------------------------------------------------------------------

/// Blocks SIGUSR1 for the scope of a test and restores the previous mask afterwards.
struct sigusr1_blocked {
    sigset_t old{};
    sigusr1_blocked() {
        REQUIRE(::pthread_sigmask(SIG_SETMASK, nullptr, &old) == 0);
        core::block_signals({SIGUSR1});
    }
    ~sigusr1_blocked() {
        // Nothing may be left pending, or unblocking would kill the process.
        sigset_t pending;
        sigemptyset(&pending);
        ::sigpending(&pending);
        if (sigismember(&pending, SIGUSR1) == 1) {
            sigset_t one;
            sigemptyset(&one);
            sigaddset(&one, SIGUSR1);
            int sig = 0;
            ::sigwait(&one, &sig);
        }
        ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    }
};

core::task<core::result<int>> wait_signal(core::signal_set& s) {
    co_return co_await s.wait();
}

core::task<void> signal_arrives(core::loop& lp) {
    core::signal_set sigs(lp, {SIGUSR1});
    REQUIRE(::kill(::getpid(), SIGUSR1) == 0);
    auto r = co_await core::with_timeout(5s, wait_signal(sigs));
    REQUIRE_MESSAGE(r, r.error().message());
    CHECK(*r == SIGUSR1);

    // A wait with nothing to deliver can be cancelled.
    auto none = co_await core::with_timeout(20ms, wait_signal(sigs));
    CHECK(none.error() == core::errc::timed_out);

    // And the next signal is still delivered.
    REQUIRE(::kill(::getpid(), SIGUSR1) == 0);
    auto again = co_await core::with_timeout(5s, wait_signal(sigs));
    REQUIRE(again);
    CHECK(*again == SIGUSR1);
}

// ---- log sink ----------------------------------------------------------------------------------

class capture_sink final : public core::log_sink {
public:
    void log(core::log_level level, std::string_view message) noexcept override {
        std::lock_guard<std::mutex> lock(mu);
        lines.emplace_back(level, std::string(message));
    }
    void count(std::string_view name, std::int64_t delta) noexcept override {
        std::lock_guard<std::mutex> lock(mu);
        counters.emplace_back(std::string(name), delta);
    }
    std::mutex mu;
    std::vector<std::pair<core::log_level, std::string>> lines;
    std::vector<std::pair<std::string, std::int64_t>> counters;
};

/// Installs a sink for the scope of a test.
struct sink_installed {
    explicit sink_installed(core::log_sink& s) noexcept { core::set_log_sink(&s); }
    ~sink_installed() { core::set_log_sink(nullptr); }
    sink_installed(const sink_installed&) = delete;
    sink_installed& operator=(const sink_installed&) = delete;
};

core::task<void> throws_after_suspending() {
    (void)co_await core::sleep_for(0ms);
    throw std::runtime_error("boom");
}

core::task<void> scope_reports_to_sink(core::loop&) {
    core::task_scope scope;
    scope.spawn(throws_after_suspending());
    co_await scope.join();
}

} // namespace

TEST_SUITE("core.loop") {

    TEST_CASE_TEMPLATE("post from another thread wakes the loop and runs on the loop thread", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return woken_by_post(lp); });
    }

    TEST_CASE_TEMPLATE("posts from several threads each run once on the loop thread", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return many_posts(lp); });
    }

    TEST_CASE_TEMPLATE("a loop reports the backend it was asked for", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        CHECK(lp.backend() == B::kind);
        CHECK(core::to_string(lp.backend()) ==
              (B::kind == core::backend_kind::epoll ? "epoll" : "uring"));
        CHECK(core::loop::current() == &lp);
        CHECK_FALSE(lp.running());
    }

    TEST_CASE_TEMPLATE("CORONET_BACKEND chooses the backend of a loop built without options", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        const std::string name(core::to_string(B::kind));
        REQUIRE(::setenv("CORONET_BACKEND", name.c_str(), 1) == 0);
        core::backend_kind chosen{};
        {
            core::loop lp;
            chosen = lp.backend();
        }
        ::unsetenv("CORONET_BACKEND");
        CHECK(chosen == B::kind);
    }

    TEST_CASE("without CORONET_BACKEND a loop prefers io_uring where it works") {
        REQUIRE(std::getenv("CORONET_BACKEND") == nullptr);
        core::loop lp;
        CHECK(lp.backend() ==
              (core::uring_available() ? core::backend_kind::uring : core::backend_kind::epoll));
    }

} // TEST_SUITE

TEST_SUITE("core.resolve") {

    TEST_CASE_TEMPLATE("resolving localhost gives loopback endpoints with the port", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return resolve_localhost(lp); });
    }

    TEST_CASE_TEMPLATE("resolving a .invalid name fails with resolve_failed", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return resolve_invalid(lp); });
    }

    TEST_CASE_TEMPLATE("a resolve whose stop was requested is cancelled", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return resolve_cancelled(lp); });
    }

} // TEST_SUITE

TEST_SUITE("core.signal") {

    TEST_CASE_TEMPLATE("a blocked SIGUSR1 raised with kill is received by signal_set::wait", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        sigusr1_blocked guard;
        run_on<B>([](core::loop& lp) { return signal_arrives(lp); });
    }

} // TEST_SUITE

TEST_SUITE("core.log") {

    TEST_CASE("an installed log sink receives messages and counters") {
        capture_sink sink;
        {
            sink_installed installed(sink);
            CHECK(&core::current_log_sink() == &sink);
            core::log(core::log_level::warn, "a warning");
            core::count("test.things", 3);
        }
        CHECK(&core::current_log_sink() != &sink);
        REQUIRE(sink.lines.size() == 1);
        CHECK(sink.lines[0].first == core::log_level::warn);
        CHECK(sink.lines[0].second == "a warning");
        REQUIRE(sink.counters.size() == 1);
        CHECK(sink.counters[0].first == "test.things");
        CHECK(sink.counters[0].second == 3);
    }

    TEST_CASE_TEMPLATE("a task_scope child's exception reaches the log sink", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        capture_sink sink;
        {
            sink_installed installed(sink);
            run_on<B>([](core::loop& lp) { return scope_reports_to_sink(lp); });
        }
        REQUIRE(sink.lines.size() == 1);
        CHECK(sink.lines[0].first == core::log_level::error);
        CHECK(sink.lines[0].second.find("boom") != std::string::npos);
    }

} // TEST_SUITE
