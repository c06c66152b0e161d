#include <coronet/core/with_stop.hpp>

#include <coronet/core/async_event.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/timer.hpp>

#include <testing/backends.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <stdexcept>

namespace core = coronet::core;
using namespace std::chrono_literals;

namespace {

// Parks until its stop token stops (the event is never set).
core::task<core::result<int>> park_until_stopped(core::async_event& never) {
    auto r = co_await never.wait();
    if (!r)
        co_return r.error();
    co_return 1;
}

core::task<core::result<int>> seven() {
    co_return 7;
}

core::task<int> throws() {
    throw std::runtime_error("boom");
    co_return 0;
}

core::task<core::stop_token> token_seen() {
    co_return co_await core::get_stop_token();
}

core::task<void> run_under(core::stop_token extra, core::result<int>& out) {
    core::async_event never;
    out = co_await core::with_stop(extra, park_until_stopped(never));
}

core::task<void> extra_token_stops_the_task(core::result<int>& out, bool& caller_stopped) {
    core::stop_source extra;
    core::task_scope scope;
    scope.spawn(run_under(extra.token(), out));
    extra.request_stop();
    co_await scope.join();
    caller_stopped = scope.token().stop_requested();
}

core::task<void> caller_token_stops_the_task(core::result<int>& out) {
    core::stop_source extra;
    core::task_scope scope;
    scope.spawn(run_under(extra.token(), out));
    scope.request_stop();
    co_await scope.join();
    CHECK_FALSE(extra.stop_requested());
}

core::task<void> stopped_before(core::result<int>& out) {
    core::stop_source extra;
    extra.request_stop();
    co_await run_under(extra.token(), out);
}

core::task<void> plain_results(int& value, bool& caught, bool& inherited) {
    core::stop_source extra;
    auto r = co_await core::with_stop(extra.token(), seven());
    value = r ? *r : -1;
    try {
        (void)co_await core::with_stop(extra.token(), throws());
    } catch (const std::runtime_error&) {
        caught = true;
    }
    // An empty extra token changes nothing: the task inherits the caller's token.
    core::stop_token mine = co_await core::get_stop_token();
    core::stop_token seen = co_await core::with_stop(core::stop_token(), token_seen());
    inherited = seen.source() == mine.source();
}

} // namespace

TEST_SUITE("core.with_stop") {

    TEST_CASE_TEMPLATE("a task run with an extra token stops when that token stops", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        core::result<int> out = 0;
        bool caller_stopped = true;
        core::run(lp, extra_token_stops_the_task(out, caller_stopped));
        REQUIRE_FALSE(out);
        CHECK(out.error() == core::errc::operation_canceled);
        CHECK_FALSE(caller_stopped);
    }

    TEST_CASE_TEMPLATE("a task run with an extra token still stops with the caller's token", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        core::result<int> out = 0;
        core::run(lp, caller_token_stops_the_task(out));
        REQUIRE_FALSE(out);
        CHECK(out.error() == core::errc::operation_canceled);
    }

    TEST_CASE_TEMPLATE("an extra token stopped before the await stops the task at once", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        core::result<int> out = 0;
        core::run(lp, stopped_before(out));
        REQUIRE_FALSE(out);
        CHECK(out.error() == core::errc::operation_canceled);
    }

    TEST_CASE_TEMPLATE("with_stop yields the task's value and exception and changes "
                       "nothing for an empty token",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        int value = 0;
        bool caught = false;
        bool inherited = false;
        core::run(lp, plain_results(value, caught, inherited));
        CHECK(value == 7);
        CHECK(caught);
        CHECK(inherited);
    }

} // TEST_SUITE
