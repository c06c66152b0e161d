#pragma once

// Helpers for tests of cross-thread paths (the *.threads suites that the tsan preset runs):
// several loops, each constructed and run on its own thread, and a polling wait.

#include <coronet/core/loop.hpp>
#include <coronet/core/loop_group.hpp>
#include <coronet/core/timer.hpp>

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <latch>
#include <optional>
#include <thread>
#include <vector>

namespace coronet::testing {

/// Options of a core::loop_group of `loops` loops of backend B; `use_calling_thread` as in
/// core::loop_group_options.
template <class B>
core::loop_group_options group_options(std::size_t loops, bool use_calling_thread = true) {
    core::loop_group_options o;
    o.loops = loops;
    o.loop = options<B>();
    o.use_calling_thread = use_calling_thread;
    return o;
}

/// Polls `done` on the current loop (1 ms sleeps) until it is true or `limit` passed; false on
/// timeout.
inline core::task<bool> poll_until(std::function<bool()> done,
                                   core::clock::duration limit = std::chrono::seconds(10)) {
    const auto until = core::clock::now() + limit;
    while (!done()) {
        if (core::clock::now() >= until)
            co_return false;
        (void)co_await core::sleep_for(std::chrono::milliseconds(1));
    }
    co_return true;
}

/// What a body run by `on_loops` gets: its index, its loop and every loop (all constructed, and
/// alive until every body has finished).
using loop_body = std::function<core::task<void>(int index, core::loop& lp,
                                                 const std::vector<core::loop*>& loops)>;

/// Runs `body` on `n` loops of backend B, each constructed and run on its own thread (a loop
/// runs on the thread that made it). No loop is destroyed before every body has finished, so
/// bodies may post to each other's loops. A body still running after `limit` is cancelled.
/// Checks, on the calling thread, that every body finished in time without throwing.
template <class B>
void on_loops(int n, const loop_body& body,
              core::clock::duration limit = std::chrono::seconds(20)) {
    const auto count = static_cast<std::size_t>(n);
    std::vector<core::loop*> loops(count, nullptr);
    std::vector<std::exception_ptr> errors(count);
    std::vector<char> expired(count, 0);
    std::latch built(n);
    std::latch finished(n);
    std::vector<std::thread> threads;
    for (std::size_t k = 0; k < count; ++k) {
        threads.emplace_back([&, k] {
            std::optional<core::loop> lp;
            try {
                lp.emplace(options<B>());
                loops[k] = &*lp;
            } catch (...) {
                errors[k] = std::current_exception();
            }
            built.arrive_and_wait();
            if (std::find(loops.begin(), loops.end(), nullptr) == loops.end()) {
                bool timed_out = false;
                try {
                    core::run(*lp, detail::bounded(body(static_cast<int>(k), *lp, loops), limit,
                                                   timed_out));
                } catch (...) {
                    errors[k] = std::current_exception();
                }
                expired[k] = timed_out ? 1 : 0;
            }
            // Nobody posts to this loop any more once every body has finished.
            finished.arrive_and_wait();
        });
    }
    for (auto& t : threads)
        t.join();
    for (std::size_t k = 0; k < count; ++k) {
        INFO("loop " << k);
        CHECK_MESSAGE(!expired[k], "the body did not finish in time");
        if (!errors[k])
            continue;
        try {
            std::rethrow_exception(errors[k]);
        } catch (const std::exception& e) {
            FAIL_CHECK("the body threw: " << e.what());
        } catch (...) {
            FAIL_CHECK("the body threw something that is not a std::exception");
        }
    }
}

} // namespace coronet::testing
