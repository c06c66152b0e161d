#include <coronet/core/async_semaphore.hpp>

#include <coronet/core/async_event.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/stop.hpp>

#include <testing/backends.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

namespace core = coronet::core;

namespace {

struct tally {
    int running = 0;
    int most = 0;
    std::vector<int> order;
    std::vector<int> canceled;
};

// Holds a unit until `done` is set, counting how many hold one at once.
core::task<void> handler(core::async_semaphore& s, core::async_event& done, int id, tally& t) {
    auto r = co_await s.acquire();
    if (!r) {
        t.canceled.push_back(id);
        co_return;
    }
    ++t.running;
    t.most = std::max(t.most, t.running);
    t.order.push_back(id);
    (void)co_await done.wait(core::stop_token());
    --t.running;
    s.release();
}

core::task<void> at_most_two(tally& t) {
    core::async_semaphore s(2);
    core::async_event done;
    core::task_scope scope;
    for (int i = 0; i < 6; ++i)
        scope.spawn(handler(s, done, i, t));
    CHECK(s.available() == 0);
    CHECK(s.waiting() == 4);
    CHECK(t.running == 2);
    done.set();
    co_await scope.join();
    CHECK(s.available() == 2);
}

core::task<void> no_overtaking(bool& newcomer_got_one, std::size_t& available_after) {
    core::async_semaphore s(1);
    core::async_event done;
    tally t;
    core::task_scope scope;
    REQUIRE(s.try_acquire());
    scope.spawn(handler(s, done, 1, t)); // waits
    s.release();                         // handed to the waiter, which has not run yet
    newcomer_got_one = s.try_acquire();
    available_after = s.available();
    done.set();
    co_await scope.join();
}

core::task<void> cancel_a_waiter(tally& t) {
    core::async_semaphore s(0);
    core::async_event done;
    done.set();
    core::task_scope scope;
    core::stop_source first_only;
    {
        core::task_scope inner(first_only.token());
        inner.spawn(handler(s, done, 1, t));
        scope.spawn(handler(s, done, 2, t));
        first_only.request_stop();
        co_await inner.join();
    }
    CHECK(s.waiting() == 1);
    s.release(3);
    co_await scope.join();
    CHECK(s.available() == 3);
}

} // namespace

TEST_SUITE("core.async_semaphore") {

    TEST_CASE_TEMPLATE("a semaphore of two runs at most two holders at once in arrival order", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        tally t;
        core::run(lp, at_most_two(t));
        CHECK(t.most == 2);
        CHECK(t.order == std::vector<int>{0, 1, 2, 3, 4, 5});
        CHECK(t.canceled.empty());
    }

    TEST_CASE_TEMPLATE("a released unit goes to the waiter, not to a later try_acquire", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        bool newcomer = true;
        std::size_t available = 1;
        core::run(lp, no_overtaking(newcomer, available));
        CHECK_FALSE(newcomer);
        CHECK(available == 0);
    }

    TEST_CASE_TEMPLATE("a cancelled acquire leaves without a unit and the next waiter gets it", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        tally t;
        core::run(lp, cancel_a_waiter(t));
        CHECK(t.canceled == std::vector<int>{1});
        CHECK(t.order == std::vector<int>{2});
    }

} // TEST_SUITE
