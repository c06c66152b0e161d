#include <coronet/core/loop.hpp>

#include <coronet/core/stop.hpp>
#include <coronet/core/timer.hpp>

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
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
