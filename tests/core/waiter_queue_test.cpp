#include <coronet/core/waiter_queue.hpp>

#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/stop.hpp>

#include <testing/backends.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <vector>

namespace core = coronet::core;

namespace {

struct outcome {
    std::vector<int> resumed; // ids, in resumption order
    std::vector<int> canceled;
};

core::task<void> park(core::waiter_queue& q, int id, outcome& out) {
    auto r = co_await q.wait();
    if (r)
        out.resumed.push_back(id);
    else if (r.error() == core::errc::operation_canceled)
        out.canceled.push_back(id);
}

// Sets `flag` after wake_one returned: a waiter resumed inline would see it false.
core::task<void> park_and_check(core::waiter_queue& q, const bool& notifier_done, bool& saw) {
    auto r = co_await q.wait();
    CHECK(r);
    saw = notifier_done;
}

core::task<void> wake_one_in_order(outcome& out) {
    core::waiter_queue q;
    core::task_scope scope;
    for (int i = 0; i < 3; ++i)
        scope.spawn(park(q, i, out));
    CHECK(q.size() == 3);
    CHECK(q.wake_one());
    CHECK(q.wake_one());
    CHECK(q.size() == 1);
    CHECK(out.resumed.empty()); // deferred: nobody ran yet
    CHECK(q.wake_one());
    CHECK_FALSE(q.wake_one());
    co_await scope.join();
}

core::task<void> notify_never_resumes_inline(bool& saw) {
    core::waiter_queue q;
    core::task_scope scope;
    bool notifier_done = false;
    scope.spawn(park_and_check(q, notifier_done, saw));
    q.wake_one();
    notifier_done = true;
    co_await scope.join();
}

core::task<void> cancel_one_of_three(outcome& out, std::size_t& left_after_cancel) {
    core::waiter_queue q;
    core::task_scope scope;
    core::stop_source middle;
    scope.spawn(park(q, 0, out));
    {
        // The middle waiter runs under a token of its own.
        core::task_scope inner(middle.token());
        inner.spawn(park(q, 1, out));
        scope.spawn(park(q, 2, out));
        middle.request_stop();
        left_after_cancel = q.size();
        co_await inner.join();
    }
    CHECK(q.wake_one());
    CHECK(q.wake_one());
    co_await scope.join();
}

core::task<void> wake_then_stop(outcome& out) {
    core::waiter_queue q;
    core::task_scope scope;
    scope.spawn(park(q, 7, out));
    CHECK(q.wake_one());
    scope.request_stop(); // too late: the wake already picked it
    co_await scope.join();
}

core::task<void> wake_all_then_park_again(outcome& out, std::size_t& woken) {
    core::waiter_queue q;
    core::task_scope scope;
    for (int i = 0; i < 4; ++i)
        scope.spawn(park(q, i, out));
    woken = q.wake_all();
    scope.spawn(park(q, 9, out)); // arrives after the wake: keeps waiting
    CHECK(q.size() == 1);
    CHECK(q.wake_all() == 1);
    co_await scope.join();
}

core::task<void> stopped_before_waiting(outcome& out, std::size_t& parked) {
    core::waiter_queue q;
    core::task_scope scope;
    scope.request_stop();
    scope.spawn(park(q, 1, out));
    parked = q.size();
    co_await scope.join();
}

core::task<void> destroyed_with_waiters(outcome& out) {
    core::task_scope scope;
    {
        core::waiter_queue q;
        scope.spawn(park(q, 1, out));
        scope.spawn(park(q, 2, out));
    }
    co_await scope.join();
}

core::task<void> park_on(core::waiter_queue& q, core::stop_token tok, int id, outcome& out) {
    auto r = co_await q.wait(tok);
    if (r)
        out.resumed.push_back(id);
    else
        out.canceled.push_back(id);
}

core::task<void> explicit_token(outcome& out) {
    core::waiter_queue q;
    core::stop_source own;
    core::task_scope scope;
    scope.spawn(park_on(q, core::stop_token(), 1, out)); // only a wake ends it
    scope.spawn(park_on(q, own.token(), 2, out));
    scope.request_stop(); // the scope's token reaches neither
    CHECK(q.size() == 2);
    own.request_stop();
    CHECK(q.size() == 1);
    CHECK(q.wake_one());
    co_await scope.join();
}

} // namespace

TEST_SUITE("core.waiter_queue") {

    TEST_CASE_TEMPLATE("wake_one resumes waiters one at a time in arrival order", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        outcome out;
        core::run(lp, wake_one_in_order(out));
        CHECK(out.resumed == std::vector<int>{0, 1, 2});
        CHECK(out.canceled.empty());
    }

    TEST_CASE_TEMPLATE("a woken waiter resumes from the loop after the notifier returned", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        bool saw = false;
        core::run(lp, notify_never_resumes_inline(saw));
        CHECK(saw);
    }

    TEST_CASE_TEMPLATE("a cancelled waiter leaves the queue and the others keep their places", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        outcome out;
        std::size_t left = 0;
        core::run(lp, cancel_one_of_three(out, left));
        CHECK(left == 2);
        CHECK(out.canceled == std::vector<int>{1});
        CHECK(out.resumed == std::vector<int>{0, 2});
    }

    TEST_CASE_TEMPLATE("a waiter woken before its token stops resumes with success", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        outcome out;
        core::run(lp, wake_then_stop(out));
        CHECK(out.resumed == std::vector<int>{7});
        CHECK(out.canceled.empty());
    }

    TEST_CASE_TEMPLATE("wake_all wakes the waiters parked at the call and no later ones", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        outcome out;
        std::size_t woken = 0;
        core::run(lp, wake_all_then_park_again(out, woken));
        CHECK(woken == 4);
        CHECK(out.resumed == std::vector<int>{0, 1, 2, 3, 9});
    }

    TEST_CASE_TEMPLATE("a wait whose token already stopped never parks", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        outcome out;
        std::size_t parked = 1;
        core::run(lp, stopped_before_waiting(out, parked));
        CHECK(parked == 0);
        CHECK(out.canceled == std::vector<int>{1});
    }

    TEST_CASE_TEMPLATE("destroying a queue resumes its waiters with operation_canceled", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        outcome out;
        core::run(lp, destroyed_with_waiters(out));
        CHECK(out.canceled == std::vector<int>{1, 2});
    }

    TEST_CASE_TEMPLATE("a wait with its own token ignores the coroutine's token", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        outcome out;
        core::run(lp, explicit_token(out));
        CHECK(out.canceled == std::vector<int>{2});
        CHECK(out.resumed == std::vector<int>{1});
    }

} // TEST_SUITE
