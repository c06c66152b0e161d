#include <coronet/core/async_mutex.hpp>

#include <coronet/core/scope.hpp>
#include <coronet/core/timer.hpp>

#include <testing/backends.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <vector>

namespace core = coronet::core;
using namespace std::chrono_literals;

namespace {

core::task<void> holder(core::async_mutex& m, int id, std::vector<int>& order) {
    auto locked = co_await m.lock();
    REQUIRE(locked);
    order.push_back(id);
    auto slept = co_await core::sleep_for(1ms); // hold it across a suspension
    (void)slept;
    order.push_back(id);
    m.unlock();
}

core::task<void> fifo(std::vector<int>& order) {
    core::async_mutex m;
    core::task_scope scope;
    for (int i = 0; i < 4; ++i)
        scope.spawn(holder(m, i, order));
    co_await scope.join();
    CHECK_FALSE(m.locked());
}

core::task<void> waiter(core::async_mutex& m, bool& canceled) {
    auto locked = co_await m.lock();
    canceled = !locked && locked.error() == core::errc::operation_canceled;
    if (locked)
        m.unlock();
}

core::task<void> cancel_a_waiter(bool& canceled, bool& still_locked_by_owner) {
    core::async_mutex m;
    REQUIRE(m.try_lock());
    core::task_scope scope;
    scope.spawn(waiter(m, canceled));
    scope.request_stop();
    co_await scope.join();
    still_locked_by_owner = m.locked();
    m.unlock();
    CHECK_FALSE(m.locked());
}

} // namespace

TEST_SUITE("core.async_mutex") {

    TEST_CASE_TEMPLATE("coroutines take the lock one at a time in arrival order", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        std::vector<int> order;
        core::run(lp, fifo(order));
        CHECK(order == std::vector<int>{0, 0, 1, 1, 2, 2, 3, 3});
    }

    TEST_CASE_TEMPLATE("a cancelled waiter leaves without the lock", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        bool canceled = false;
        bool still_locked = false;
        core::run(lp, cancel_a_waiter(canceled, still_locked));
        CHECK(canceled);
        CHECK(still_locked);
    }

} // TEST_SUITE
