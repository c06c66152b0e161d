#include <coronet/core/signal.hpp>

#include <coronet/core/loop.hpp>
#include <coronet/core/when.hpp>

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>

namespace core = coronet::core;
using namespace std::chrono_literals;

using coronet::testing::run_on;

namespace {

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

} // namespace

TEST_SUITE("core.signal") {

    TEST_CASE_TEMPLATE("a blocked SIGUSR1 raised with kill is received by signal_set::wait", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        sigusr1_blocked guard;
        run_on<B>([](core::loop& lp) { return signal_arrives(lp); });
    }

} // TEST_SUITE
