#include <coronet/core/async_event.hpp>

#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/stop.hpp>

#include <testing/backends.hpp>

#include <doctest/doctest.h>

#include <vector>

namespace core = coronet::core;

namespace {

core::task<void> wait_for(core::async_event& e, int id, std::vector<int>& passed,
                          std::vector<int>& canceled) {
    auto r = co_await e.wait();
    if (r)
        passed.push_back(id);
    else if (r.error() == core::errc::operation_canceled)
        canceled.push_back(id);
}

core::task<void> set_releases_everyone(std::vector<int>& passed, std::vector<int>& canceled,
                                       std::size_t& parked) {
    core::async_event e;
    core::task_scope scope;
    for (int i = 0; i < 3; ++i)
        scope.spawn(wait_for(e, i, passed, canceled));
    parked = e.waiting();
    e.set();
    CHECK(e.is_set());
    scope.spawn(wait_for(e, 3, passed, canceled)); // set: passes without parking
    CHECK(passed == std::vector<int>{3});
    co_await scope.join();
}

core::task<void> reset_makes_waits_park(std::vector<int>& passed, std::vector<int>& canceled) {
    core::async_event e(true);
    core::task_scope scope;
    scope.spawn(wait_for(e, 1, passed, canceled));
    e.reset();
    CHECK_FALSE(e.is_set());
    scope.spawn(wait_for(e, 2, passed, canceled));
    CHECK(e.waiting() == 1);
    scope.request_stop();
    co_await scope.join();
}

core::task<void> uncancellable_wait(core::async_event& e, bool& passed) {
    auto r = co_await e.wait(core::stop_token());
    passed = static_cast<bool>(r);
}

core::task<void> wait_that_only_set_ends(bool& passed, std::size_t& parked_after_stop) {
    core::async_event e;
    core::task_scope scope;
    scope.spawn(uncancellable_wait(e, passed));
    scope.request_stop();
    parked_after_stop = e.waiting();
    e.set();
    co_await scope.join();
}

core::task<void> answer(core::async_event& ping, core::async_event& pong, std::vector<int>& log) {
    for (int i = 0; i < 3; ++i) {
        auto r = co_await ping.wait();
        REQUIRE(r);
        ping.reset();
        log.push_back(-i);
        pong.set();
    }
}

// The single-consumer use: each side parks until the other has something for it.
core::task<void> ping_pong(std::vector<int>& log) {
    core::async_event ping;
    core::async_event pong;
    core::task_scope scope;
    scope.spawn(answer(ping, pong, log));
    for (int i = 0; i < 3; ++i) {
        log.push_back(i);
        ping.set();
        auto r = co_await pong.wait();
        REQUIRE(r);
        pong.reset();
    }
    co_await scope.join();
}

} // namespace

TEST_SUITE("core.async_event") {

    TEST_CASE_TEMPLATE("set releases every waiter and later waits pass until reset", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        std::vector<int> passed, canceled;
        std::size_t parked = 0;
        core::run(lp, set_releases_everyone(passed, canceled, parked));
        CHECK(parked == 3);
        CHECK(passed == std::vector<int>{3, 0, 1, 2});
        CHECK(canceled.empty());
    }

    TEST_CASE_TEMPLATE("after reset a wait parks and its cancellation yields operation_canceled", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        std::vector<int> passed, canceled;
        core::run(lp, reset_makes_waits_park(passed, canceled));
        CHECK(passed == std::vector<int>{1});
        CHECK(canceled == std::vector<int>{2});
    }

    TEST_CASE_TEMPLATE("a wait given an empty stop token is ended only by set", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        bool passed = false;
        std::size_t parked = 0;
        core::run(lp, wait_that_only_set_ends(passed, parked));
        CHECK(parked == 1);
        CHECK(passed);
    }

    TEST_CASE_TEMPLATE("two coroutines take turns through a pair of events", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        std::vector<int> log;
        core::run(lp, ping_pong(log));
        CHECK(log == std::vector<int>{0, 0, 1, -1, 2, -2});
    }

} // TEST_SUITE
