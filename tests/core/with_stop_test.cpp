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

// interrupt_slot: a parked wait that another task interrupts, and what the slot reports.
struct slot_report {
    core::result<int> out = 0;
    bool waiting_during = false;
    bool interrupt_during = false;
    bool interrupted_after = false;
    bool waiting_after = true;
    bool interrupt_after = true;
    bool caller_stopped = true;
};

core::task<void> wait_in_slot(core::interrupt_slot& slot, core::result<int>& out) {
    core::async_event never;
    out = co_await slot.run(park_until_stopped(never));
}

core::task<void> interrupt_a_parked_wait(slot_report& r) {
    core::interrupt_slot slot;
    core::task_scope scope;
    scope.spawn(wait_in_slot(slot, r.out));
    co_await core::sleep_for(1ms); // the waiter parks
    r.waiting_during = slot.waiting();
    r.interrupt_during = slot.interrupt();
    co_await scope.join();
    r.interrupted_after = slot.interrupted();
    r.waiting_after = slot.waiting();
    r.interrupt_after = slot.interrupt(); // nothing runs: nothing to stop
    r.caller_stopped = scope.token().stop_requested();
}

core::task<void> slot_ends_normally(slot_report& r) {
    core::interrupt_slot slot;
    r.out = co_await slot.run(seven());
    r.interrupted_after = slot.interrupted();
    r.waiting_after = slot.waiting();
    r.interrupt_after = slot.interrupt();
}

core::task<void> caller_stop_is_not_an_interrupt(slot_report& r) {
    core::interrupt_slot slot;
    core::task_scope scope;
    scope.spawn(wait_in_slot(slot, r.out));
    co_await core::sleep_for(1ms);
    scope.request_stop();
    co_await scope.join();
    r.interrupted_after = slot.interrupted();
    r.waiting_after = slot.waiting();
}

core::task<void> detached_wait_is_out_of_reach(slot_report& r) {
    core::interrupt_slot slot;
    core::task_scope scope;
    scope.spawn(wait_in_slot(slot, r.out));
    co_await core::sleep_for(1ms);
    slot.detach();
    r.interrupt_during = slot.interrupt(); // false: the wait goes on
    r.waiting_during = slot.waiting();
    scope.request_stop(); // the caller's token still ends it
    co_await scope.join();
    r.interrupted_after = slot.interrupted();
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

    TEST_CASE_TEMPLATE("interrupt_slot stops the wait running in it, and only that wait", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        slot_report r;
        core::run(lp, interrupt_a_parked_wait(r));
        REQUIRE_FALSE(r.out);
        CHECK(r.out.error() == core::errc::operation_canceled);
        CHECK(r.waiting_during);
        CHECK(r.interrupt_during);
        CHECK(r.interrupted_after);
        CHECK_FALSE(r.waiting_after);
        CHECK_FALSE(r.interrupt_after);
        CHECK_FALSE(r.caller_stopped);
    }

    TEST_CASE_TEMPLATE("interrupt_slot yields the value of a wait that was not interrupted", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        slot_report r;
        core::run(lp, slot_ends_normally(r));
        REQUIRE(r.out);
        CHECK(*r.out == 7);
        CHECK_FALSE(r.interrupted_after);
        CHECK_FALSE(r.waiting_after);
        CHECK_FALSE(r.interrupt_after);
    }

    TEST_CASE_TEMPLATE("a wait in an interrupt_slot stops with the caller's token, which is "
                       "no interrupt",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        slot_report r;
        core::run(lp, caller_stop_is_not_an_interrupt(r));
        REQUIRE_FALSE(r.out);
        CHECK(r.out.error() == core::errc::operation_canceled);
        CHECK_FALSE(r.interrupted_after);
        CHECK_FALSE(r.waiting_after);
    }

    TEST_CASE_TEMPLATE("a detached wait cannot be interrupted", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        slot_report r;
        core::run(lp, detached_wait_is_out_of_reach(r));
        REQUIRE_FALSE(r.out);
        CHECK_FALSE(r.interrupt_during);
        CHECK_FALSE(r.waiting_during);
        CHECK_FALSE(r.interrupted_after);
    }

} // TEST_SUITE
