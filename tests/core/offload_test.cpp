// core::offload runs blocking calls on the process-wide pool; its cases are in a suite named
// *.threads so that the tsan preset runs them.
#include <coronet/core/offload.hpp>

#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/stop.hpp>

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace core = coronet::core;
using coronet::testing::run_on;

namespace {

core::task<void> values_of_every_kind() {
    const auto loop_thread = std::this_thread::get_id();
    auto text = core::offload([] { return std::string("blocking"); });
    core::result<std::string> t = co_await text;
    REQUIRE(t);
    CHECK(*t == "blocking");
    CHECK(std::this_thread::get_id() == loop_thread);

    std::thread::id ran_on;
    auto nothing = core::offload([&ran_on] { ran_on = std::this_thread::get_id(); });
    core::result<void> v = co_await nothing;
    CHECK(v);
    CHECK(ran_on != loop_thread);

    auto failing = core::offload([]() -> core::result<int> { return core::errc::not_open; });
    core::result<int> f = co_await failing; // passed through, not nested
    REQUIRE_FALSE(f);
    CHECK(f.error() == core::errc::not_open);

    auto throwing = core::offload([]() -> int { throw std::runtime_error("disk on fire"); });
    bool caught = false;
    try {
        (void)co_await throwing;
    } catch (const std::runtime_error& e) {
        caught = std::string(e.what()) == "disk on fire";
    }
    CHECK(caught);
}

// Held by a blocked call's captures: tells whether they died off the loop thread.
struct capture_probe {
    std::shared_ptr<std::atomic<bool>> destroyed_off_loop;
    std::thread::id loop_thread;
    ~capture_probe() { destroyed_off_loop->store(std::this_thread::get_id() != loop_thread); }
};

core::task<void> await_blocked(core::offload_queue& q, std::shared_future<void> go,
                               std::shared_ptr<capture_probe> guard, core::result<int>& out) {
    auto call = core::offload(q, [go, guard = std::move(guard)] {
        go.wait();
        return 42;
    });
    out = co_await call;
}

core::task<void> cancel_while_running(core::result<int>& out, bool& destroyed_off_loop) {
    core::offload_queue q;
    std::promise<void> release;
    auto flag = std::make_shared<std::atomic<bool>>(false);
    auto guard = std::make_shared<capture_probe>(capture_probe{flag, std::this_thread::get_id()});
    {
        core::task_scope scope;
        scope.spawn(await_blocked(q, release.get_future().share(), std::move(guard), out));
        scope.request_stop();
        co_await scope.join(); // ends while the call still blocks on the pool
    }
    release.set_value();
    // Calls on one queue run in order: once this one ran, the blocked call has finished and
    // its callable (and the guard it held) is gone.
    auto after = core::offload(q, [] { return 1; });
    auto a = co_await after;
    CHECK(a);
    destroyed_off_loop = flag->load();
}

core::task<void> record(core::offload_queue& q, int i, std::vector<int>& log,
                        std::atomic<int>& inside, std::atomic<bool>& overlapped,
                        std::vector<std::thread::id>& threads) {
    auto call = core::offload(q, [i, &log, &inside, &overlapped, &threads] {
        if (inside.fetch_add(1) != 0)
            overlapped = true;
        log.push_back(i); // no lock: the queue runs one call at a time
        threads.push_back(std::this_thread::get_id());
        inside.fetch_sub(1);
    });
    auto r = co_await call;
    CHECK(r);
}

core::task<void> queue_keeps_order(std::vector<int>& log, bool& overlapped_out, bool& one_thread) {
    core::offload_queue q;
    std::atomic<int> inside{0};
    std::atomic<bool> overlapped{false};
    std::vector<std::thread::id> threads;
    {
        core::task_scope scope;
        for (int i = 0; i < 50; ++i)
            scope.spawn(record(q, i, log, inside, overlapped, threads));
        co_await scope.join();
    }
    overlapped_out = overlapped.load();
    one_thread =
        !threads.empty() && std::all_of(threads.begin(), threads.end(),
                                        [&](std::thread::id t) { return t == threads.front(); });
}

core::task<int> sum_in_parallel(int calls) {
    std::vector<int> parts(static_cast<std::size_t>(calls), 0);
    {
        core::task_scope scope;
        for (int i = 0; i < calls; ++i) {
            scope.spawn([](int k, int& slot) -> core::task<void> {
                auto call = core::offload([k] { return k * k; });
                auto r = co_await call;
                REQUIRE(r);
                slot = *r;
            }(i, parts[static_cast<std::size_t>(i)]));
        }
        co_await scope.join();
    }
    int total = 0;
    for (int p : parts)
        total += p;
    co_return total;
}

} // namespace

TEST_SUITE("core.offload.threads") {

    TEST_CASE_TEMPLATE("offload runs a call off the loop and resumes on it with its value or "
                       "exception",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop&) { return values_of_every_kind(); });
    }

    TEST_CASE_TEMPLATE("a cancelled offload ends at once and the call finishes and is dropped on "
                       "the pool",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::result<int> out = 0;
        bool destroyed_off_loop = false;
        run_on<B>([&](core::loop&) { return cancel_while_running(out, destroyed_off_loop); });
        REQUIRE_FALSE(out);
        CHECK(out.error() == core::errc::operation_canceled);
        CHECK(destroyed_off_loop);
    }

    TEST_CASE_TEMPLATE("calls through one offload queue run one at a time in order on one thread",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        std::vector<int> log;
        bool overlapped = true;
        bool one_thread = false;
        run_on<B>([&](core::loop&) { return queue_keeps_order(log, overlapped, one_thread); });
        std::vector<int> expected(50);
        for (int i = 0; i < 50; ++i)
            expected[static_cast<std::size_t>(i)] = i;
        CHECK(log == expected);
        CHECK_FALSE(overlapped);
        CHECK(one_thread);
    }

    TEST_CASE_TEMPLATE("many unordered offloads from one loop all complete", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        CHECK(core::run(lp, sum_in_parallel(200)) == 2646700);
        CHECK(core::offload_threads() >= 4);
    }

    TEST_CASE("without a loop an offloaded call runs inline") {
        REQUIRE(core::loop::current() == nullptr);
        std::thread::id ran_on;
        auto body = [](std::thread::id& where) -> core::task<core::result<int>> {
            auto call = core::offload([&where] {
                where = std::this_thread::get_id();
                return 5;
            });
            co_return co_await call;
        };
        auto t = body(ran_on);
        auto h = t.handle();
        h.resume(); // driven by hand: no loop on this thread
        REQUIRE(h.done());
        auto r = h.promise().take();
        REQUIRE(r);
        CHECK(*r == 5);
        CHECK(ran_on == std::this_thread::get_id());
    }

} // TEST_SUITE
