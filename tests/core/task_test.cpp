#include <coronet/core/task.hpp>

#include <coronet/core/frame_allocator.hpp>

#include <algorithm>
#include <coronet/core/loop.hpp>
#include <coronet/core/stop.hpp>
#include <vector>

#include <testing/counted.hpp>

#include <doctest/doctest.h>

#include <coroutine>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

namespace core = coronet::core;
using coronet::testing::counted;

namespace {

core::task<void> set_flag(bool* flag) {
    *flag = true;
    co_return;
}

core::task<bool> awaits_and_checks_done(bool* ran) {
    core::task<void> t = set_flag(ran);
    co_await t;
    co_return t.done();
}

core::task<int> forty_two() {
    co_return 42;
}

core::task<std::string> greeting(std::string name) {
    co_return "hello " + name;
}

core::task<int> throws_runtime_error() {
    throw std::runtime_error("boom");
    co_return 0;
}

core::task<void> void_throws() {
    throw std::logic_error("void boom");
    co_return;
}

core::task<std::unique_ptr<int>> make_unique_int(int v) {
    co_return std::make_unique<int>(v);
}

core::task<int> add_one(int v) {
    co_return v + 1;
}

core::task<int> catches_child_exception() {
    try {
        co_await throws_runtime_error();
    } catch (const std::runtime_error& e) {
        co_return std::string(e.what()) == "boom" ? 1 : -1;
    }
    co_return 0;
}

core::task<int> takes_counted(counted c) {
    (void)c;
    co_return 1;
}

core::task<int> awaits_counted_arg(bool* alive_with_task, bool* dead_after_task) {
    {
        core::task<int> t = takes_counted(counted{});
        co_await t;
        // The argument lives in the frame until the task object is destroyed.
        *alive_with_task = counted::alive() == 1;
    }
    *dead_after_task = counted::alive() == 0;
    co_return 0;
}

core::task<int> child_returning(int i) {
    co_return i;
}

core::task<long long> million_sync_awaits() {
    long long sum = 0;
    for (int i = 0; i < 1'000'000; ++i)
        sum += co_await child_returning(i);
    co_return sum;
}

core::task<int> nested(int depth) {
    if (depth == 0)
        co_return 0;
    co_return 1 + co_await nested(depth - 1);
}

core::task<core::stop_token> token_of_child() {
    co_return co_await core::get_stop_token();
}

core::task<core::stop_token> token_of_grandchild() {
    co_return co_await token_of_child();
}

core::task<bool> child_sees_stop() {
    core::stop_token t = co_await core::get_stop_token();
    co_return t.stop_requested();
}

/// An awaitable that records the address of the awaiting coroutine's frame.
struct frame_address {
    void** out;
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) const noexcept {
        *out = h.address();
        return false;
    }
    void await_resume() const noexcept {}
};

core::task<int> record_frame(void** out) {
    co_await frame_address{out};
    co_return 0;
}

} // namespace

TEST_SUITE("core.task") {

    TEST_CASE("a task does not run its body until it is awaited") {
        core::loop lp;
        bool ran = false;
        core::task<void> t = set_flag(&ran);
        CHECK(t.valid());
        CHECK_FALSE(t.done());
        CHECK_FALSE(ran);
        core::run(lp, std::move(t));
        CHECK(ran);
    }

    TEST_CASE("a task returns its value to the awaiter") {
        core::loop lp;
        CHECK(core::run(lp, forty_two()) == 42);
        CHECK(core::run(lp, greeting("coronet")) == "hello coronet");
    }

    TEST_CASE("an awaited void task runs to completion and reports done") {
        core::loop lp;
        bool ran = false;
        CHECK(core::run(lp, awaits_and_checks_done(&ran)));
        CHECK(ran);
    }

    TEST_CASE("an exception thrown in a task is rethrown to the awaiter") {
        core::loop lp;
        CHECK_THROWS_WITH_AS(core::run(lp, throws_runtime_error()), "boom", std::runtime_error);
        CHECK_THROWS_WITH_AS(core::run(lp, void_throws()), "void boom", std::logic_error);
        CHECK(core::run(lp, catches_child_exception()) == 1);
    }

    TEST_CASE("a task can return a move-only value") {
        core::loop lp;
        std::unique_ptr<int> p = core::run(lp, make_unique_int(7));
        REQUIRE(p != nullptr);
        CHECK(*p == 7);
    }

    TEST_CASE("a task destroyed without being awaited destroys its arguments") {
        counted::reset();
        {
            core::task<int> t = takes_counted(counted{});
            CHECK(counted::alive() == 1); // the copy in the frame
            CHECK_FALSE(t.done());
        }
        CHECK(counted::alive() == 0);
        CHECK(counted::constructed > 0);
    }

    TEST_CASE("an awaited task's frame is destroyed with the task object after it completes") {
        core::loop lp;
        counted::reset();
        bool alive_with_task = false;
        bool dead_after_task = false;
        core::run(lp, awaits_counted_arg(&alive_with_task, &dead_after_task));
        CHECK(alive_with_task);
        CHECK(dead_after_task);
        CHECK(counted::alive() == 0);
    }

    TEST_CASE("a moved-from task is empty and a move-assigned task destroys its old frame") {
        counted::reset();
        core::task<int> a = takes_counted(counted{});
        core::task<int> b = std::move(a);
        CHECK_FALSE(a.valid()); // NOLINT(bugprone-use-after-move): the moved-from state is the test
        CHECK(b.valid());
        CHECK(counted::alive() == 1);
        b = add_one(1);
        CHECK(counted::alive() == 0);
        core::loop lp;
        CHECK(core::run(lp, std::move(b)) == 2);
    }

    TEST_CASE(
        "a million synchronously completing awaits of child tasks do not overflow the stack") {
        core::loop lp;
        constexpr long long n = 1'000'000;
        CHECK(core::run(lp, million_sync_awaits()) == n * (n - 1) / 2);
    }

    TEST_CASE("nested awaits return through every level") {
        core::loop lp;
        CHECK(core::run(lp, nested(1000)) == 1000);
    }

    TEST_CASE("a child task inherits its parent's stop token") {
        core::loop lp;
        core::stop_source src;
        SUBCASE("child") {
            core::task<core::stop_token> t = token_of_child();
            t.handle().promise().set_token(src.token());
            core::stop_token got = core::run(lp, std::move(t));
            CHECK(got.source() == &src);
        }
        SUBCASE("grandchild") {
            core::task<core::stop_token> t = token_of_grandchild();
            t.handle().promise().set_token(src.token());
            core::stop_token got = core::run(lp, std::move(t));
            CHECK(got.source() == &src);
        }
        SUBCASE("stop is visible") {
            src.request_stop();
            core::task<bool> t = child_sees_stop();
            t.handle().promise().set_token(src.token());
            CHECK(core::run(lp, std::move(t)));
        }
    }

    TEST_CASE("a task without a given token sees a token that can never stop") {
        core::loop lp;
        core::stop_token got = core::run(lp, token_of_child());
        CHECK_FALSE(got.stop_possible());
        CHECK_FALSE(got.stop_requested());
    }

    TEST_CASE("the frame allocator hands back the block it just recycled") {
        void* p = core::detail::allocate_frame(200);
        core::detail::deallocate_frame(p, 200);
        void* q = core::detail::allocate_frame(200);
        CHECK(q == p);
        // Sizes of the same 16-byte class share the free list; the next class does not.
        core::detail::deallocate_frame(q, 200);
        void* r = core::detail::allocate_frame(193);
        CHECK(r == p);
        core::detail::deallocate_frame(r, 193);
        void* other = core::detail::allocate_frame(208 + 1);
        CHECK(other != p);
        core::detail::deallocate_frame(other, 208 + 1);

        // Frames too large for the pool still work.
        void* big = core::detail::allocate_frame(100'000);
        REQUIRE(big != nullptr);
        core::detail::deallocate_frame(big, 100'000);
    }

    TEST_CASE("the frame allocator keeps a burst of ten thousand frames for the next burst") {
        // As wide as a hub broadcast to 10,000 connections (one write frame each): the second burst
        // must come entirely from the pool (the limit is 8 MiB of free frames, not 256 per class).
        constexpr std::size_t n = 10'000, size = 448;
        // From an empty pool: frames other tests left in it would take part of the 8 MiB budget.
        core::detail::release_free_frames(0);
        std::vector<void*> first(n);
        for (auto& p : first)
            p = core::detail::allocate_frame(size);
        for (void* p : first)
            core::detail::deallocate_frame(p, size);
        std::vector<void*> second(n);
        for (auto& p : second)
            p = core::detail::allocate_frame(size);
        std::sort(first.begin(), first.end());
        std::vector<void*> again = second;
        std::sort(again.begin(), again.end());
        CHECK(again == first);
        for (void* p : second)
            core::detail::deallocate_frame(p, size);
    }

    TEST_CASE("two tasks run one after the other reuse the same coroutine frame") {
        core::loop lp;
        void* first = nullptr;
        void* second = nullptr;
        core::run(lp, record_frame(&first));
        core::run(lp, record_frame(&second));
        REQUIRE(first != nullptr);
        CHECK(second == first);
    }

} // TEST_SUITE
