#include <coronet/core/when.hpp>

#include <coronet/core/log.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/task.hpp>
#include <coronet/core/timer.hpp>

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

namespace core = coronet::core;
using namespace std::chrono_literals;
using coronet::testing::with_token;

namespace {

constexpr auto forever = 1h; // a sleep that only ends by cancellation

core::task<int> value_after(core::clock::duration d, int v, std::vector<int>* finish_order) {
    auto r = co_await core::sleep_for(d);
    if (!r)
        throw std::runtime_error("value_after: sleep cancelled");
    finish_order->push_back(v);
    co_return v;
}

core::task<std::string> string_now(std::string s) {
    co_return s;
}

core::task<void> void_after(core::clock::duration d, bool* done) {
    (void)co_await core::sleep_for(d);
    *done = true;
}

/// Sleeps for `d` and records the sleep's outcome and that it finished.
core::task<int> recording_sleeper(core::clock::duration d, std::error_code* outcome,
                                  bool* finished) {
    auto r = co_await core::sleep_for(d);
    *outcome = r.error();
    *finished = true;
    co_return -1;
}

core::task<int> throws_after(core::clock::duration d, std::string what) {
    (void)co_await core::sleep_for(d);
    throw std::runtime_error(what);
}

core::task<int> throws_at_once(std::string what) {
    throw std::runtime_error(what);
    co_return 0;
}

/// Requests stop at once; started after a sleeping sibling, it cancels that sleep.
core::task<void> request_stop_now(core::stop_source* src) {
    src->request_stop();
    co_return;
}

core::task<core::result<int>> sleep_then_value(core::clock::duration d, int v) {
    auto r = co_await core::sleep_for(d);
    if (!r)
        co_return r.error();
    co_return v;
}

core::task<core::result<void>> timed_sleep(core::clock::duration d,
                                           core::clock::duration* elapsed) {
    auto t0 = core::clock::now();
    auto r = co_await core::sleep_for(d);
    *elapsed = core::clock::now() - t0;
    co_return r;
}

// ---- when_all / when_any drivers --------------------------------------------------------

core::task<std::tuple<int, std::string, std::monostate>> all_three(std::vector<int>* order,
                                                                   bool* void_done) {
    co_return co_await core::when_all(value_after(30ms, 1, order), string_now("two"),
                                      void_after(1ms, void_done));
}

struct any_outcome {
    std::size_t index = 99;
    int value = 0;
    bool loser_finished_before_return = false;
    std::error_code loser_outcome;
};

core::task<void> any_of_sleeper_and_fast(any_outcome* out) {
    bool loser_finished = false;
    std::vector<int> order;
    auto v =
        co_await core::when_any(recording_sleeper(forever, &out->loser_outcome, &loser_finished),
                                value_after(1ms, 42, &order));
    out->loser_finished_before_return = loser_finished;
    out->index = v.index();
    if (v.index() == 1)
        out->value = std::get<1>(v);
}

// ---- task_scope drivers -----------------------------------------------------------------

core::task<void> count_after(core::clock::duration d, int* count) {
    (void)co_await core::sleep_for(d);
    ++*count;
}

core::task<void> spawn_and_join(int* count, std::size_t* live_after_spawn,
                                std::size_t* live_after_join) {
    core::task_scope scope;
    for (int i = 1; i <= 3; ++i)
        scope.spawn(count_after(std::chrono::milliseconds(i), count));
    *live_after_spawn = scope.size();
    co_await scope.join();
    *live_after_join = scope.size();
}

core::task<void> set_then_sleep(bool* before, std::error_code* outcome, bool* finished) {
    *before = true;
    auto r = co_await core::sleep_for(forever);
    *outcome = r.error();
    *finished = true;
}

core::task<void> throw_in_child(std::string what) {
    throw std::runtime_error(what);
    co_return;
}

core::task<void> throw_after_in_child(core::clock::duration d, std::string what) {
    (void)co_await core::sleep_for(d);
    throw std::runtime_error(what);
}

core::task<void> scope_with_failing_children(std::vector<std::string>* errors, int* count) {
    core::task_scope scope;
    scope.set_error_handler([errors](std::exception_ptr e) {
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            errors->push_back(ex.what());
        }
    });
    scope.spawn(throw_in_child("at once"));
    scope.spawn(throw_after_in_child(1ms, "later"));
    scope.spawn(count_after(5ms, count));
    scope.spawn(count_after(10ms, count));
    co_await scope.join();
}

struct capturing_sink : core::log_sink {
    void log(core::log_level level, std::string_view message) noexcept override {
        if (level == core::log_level::error)
            messages.emplace_back(message);
    }
    std::vector<std::string> messages;
};

core::task<void> scope_default_handler() {
    core::task_scope scope;
    scope.spawn(throw_in_child("nobody handles me"));
    co_await scope.join();
}

struct sleeper_record {
    bool started = false;
    bool finished = false;
    std::error_code outcome;
};

core::task<void> scope_request_stop(std::vector<sleeper_record>* recs) {
    core::task_scope scope;
    for (auto& r : *recs)
        scope.spawn(set_then_sleep(&r.started, &r.outcome, &r.finished));
    scope.request_stop();
    co_await scope.join();
}

core::task<void> spawn_checks_started(bool* started_at_spawn, sleeper_record* rec) {
    core::task_scope scope;
    scope.spawn(set_then_sleep(&rec->started, &rec->outcome, &rec->finished));
    *started_at_spawn = rec->started && !rec->finished;
    scope.request_stop();
    co_await scope.join();
}

core::task<void> scope_linked_to_parent(core::stop_source* parent, sleeper_record* rec,
                                        bool* scope_token_stopped) {
    core::task_scope scope(co_await core::get_stop_token());
    scope.spawn(set_then_sleep(&rec->started, &rec->outcome, &rec->finished));
    scope.spawn(request_stop_now(parent));
    co_await scope.join();
    *scope_token_stopped = scope.token().stop_requested();
}

core::task<void> record_token(core::stop_source** out) {
    *out = (co_await core::get_stop_token()).source();
}

core::task<void> scope_twice(int* count, core::stop_source** child_token_source,
                             core::stop_source** scope_token_source) {
    core::task_scope scope;
    *scope_token_source = scope.token().source();
    scope.spawn(record_token(child_token_source));
    scope.spawn(count_after(1ms, count));
    co_await scope.join();
    scope.spawn(count_after(1ms, count));
    scope.spawn(count_after(2ms, count));
    co_await scope.join();
}

core::task<std::tuple<>> all_of_nothing() {
    co_return co_await core::when_all();
}

core::task<int> join_empty_scope(bool* ready) {
    core::task_scope scope;
    *ready = scope.join().await_ready();
    co_await scope.join();
    co_return static_cast<int>(scope.size());
}

} // namespace

TEST_SUITE("core.when") {

    TEST_CASE_TEMPLATE("when_all runs its children concurrently and returns every value", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        std::vector<int> order;
        bool void_done = false;
        auto [a, b, c] = core::run(lp, all_three(&order, &void_done));
        CHECK(a == 1);
        CHECK(b == "two");
        CHECK(c == std::monostate{});
        CHECK(void_done);
        CHECK(order == std::vector<int>{1});
    }

    TEST_CASE_TEMPLATE("when_all finishes the slow child after a fast child that started later", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        std::vector<int> order;
        auto [slow, fast] = core::run(
            lp, core::when_all(value_after(100ms, 1, &order), value_after(1ms, 2, &order)));
        CHECK(slow == 1);
        CHECK(fast == 2);
        // Run one after the other, the slow child would have finished first.
        CHECK(order == std::vector<int>{2, 1});
    }

    TEST_CASE_TEMPLATE("when_all rethrows the first exception after every child finished", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        std::error_code sleeper_outcome;
        bool sleeper_finished = false;
        CHECK_THROWS_WITH_AS(
            core::run(
                lp, core::when_all(recording_sleeper(forever, &sleeper_outcome, &sleeper_finished),
                                   throws_after(1ms, "first"), throws_after(forever, "second"))),
            "first", std::runtime_error);
        CHECK(sleeper_finished);
        CHECK(sleeper_outcome == core::errc::operation_canceled);
    }

    TEST_CASE_TEMPLATE("when_all rethrows an exception thrown before the child suspends", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        std::error_code outcome;
        bool finished = false;
        CHECK_THROWS_WITH_AS(
            core::run(lp, core::when_all(recording_sleeper(forever, &outcome, &finished),
                                         throws_at_once("sync"))),
            "sync", std::runtime_error);
        CHECK(finished);
        CHECK(outcome == core::errc::operation_canceled);
    }

    TEST_CASE_TEMPLATE("when_any returns the first finisher and cancels and awaits the losers", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        any_outcome out;
        core::run(lp, any_of_sleeper_and_fast(&out));
        CHECK(out.index == 1);
        CHECK(out.value == 42);
        CHECK(out.loser_finished_before_return);
        CHECK(out.loser_outcome == core::errc::operation_canceled);
    }

    TEST_CASE_TEMPLATE("when_any with a child that finishes at once picks that child", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        std::error_code outcome;
        bool finished = false;
        auto v = core::run(
            lp, core::when_any(string_now("now"), recording_sleeper(forever, &outcome, &finished)));
        REQUIRE(v.index() == 0);
        CHECK(std::get<0>(v) == "now");
        CHECK(finished);
        CHECK(outcome == core::errc::operation_canceled);
    }

    TEST_CASE_TEMPLATE("when_any rethrows a child's exception after every child finished", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        std::error_code outcome;
        bool finished = false;
        CHECK_THROWS_WITH_AS(
            core::run(lp, core::when_any(recording_sleeper(forever, &outcome, &finished),
                                         throws_after(1ms, "any failed"))),
            "any failed", std::runtime_error);
        CHECK(finished);
        CHECK(outcome == core::errc::operation_canceled);
    }

    TEST_CASE_TEMPLATE("when_all children stop when the caller's token stops", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        core::stop_source src;
        std::error_code outcome;
        bool finished = false;
        auto [v, ignored] =
            core::run(lp, with_token(core::when_all(recording_sleeper(forever, &outcome, &finished),
                                                    request_stop_now(&src)),
                                     src.token()));
        (void)ignored;
        CHECK(v == -1);
        CHECK(finished);
        CHECK(outcome == core::errc::operation_canceled);
    }

    TEST_CASE_TEMPLATE("when_all of no tasks returns an empty tuple at once", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        CHECK(core::run(lp, all_of_nothing()) == std::tuple<>{});
    }

} // TEST_SUITE

TEST_SUITE("core.timer") {

    TEST_CASE_TEMPLATE("sleep_for waits at least the requested duration", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        core::clock::duration elapsed{};
        auto r = core::run(lp, timed_sleep(20ms, &elapsed));
        CHECK(r.has_value());
        CHECK(elapsed >= 20ms);
    }

    TEST_CASE_TEMPLATE("a sleep is cancelled when its stop token stops", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        core::stop_source src;
        SUBCASE("while sleeping") {
            std::error_code outcome;
            bool finished = false;
            auto [v, ignored] = core::run(
                lp, with_token(core::when_all(recording_sleeper(forever, &outcome, &finished),
                                              request_stop_now(&src)),
                               src.token()));
            (void)ignored;
            CHECK(v == -1);
            CHECK(outcome == core::errc::operation_canceled);
        }
        SUBCASE("already stopped before sleeping") {
            src.request_stop();
            core::clock::duration elapsed{};
            auto r = core::run(lp, with_token(timed_sleep(forever, &elapsed), src.token()));
            CHECK(r.error() == core::errc::operation_canceled);
        }
    }

    TEST_CASE_TEMPLATE("with_timeout reports timed_out for a task that takes too long", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto t0 = core::clock::now();
        core::result<int> r = core::run(lp, core::with_timeout(10ms, sleep_then_value(forever, 5)));
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error() == core::errc::timed_out);
        CHECK(core::clock::now() - t0 >= 10ms);
    }

    TEST_CASE_TEMPLATE("with_timeout returns the value of a task that is fast enough", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        SUBCASE("after a suspension") {
            core::result<int> r = core::run(lp, core::with_timeout(10s, sleep_then_value(1ms, 5)));
            REQUIRE(r.has_value());
            CHECK(*r == 5);
        }
        SUBCASE("without a suspension") {
            core::result<int> r = core::run(lp, core::with_timeout(10s, sleep_then_value(0s, 6)));
            REQUIRE(r.has_value());
            CHECK(*r == 6);
        }
    }

    TEST_CASE_TEMPLATE("with_timeout reports operation_canceled when the caller is cancelled", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        core::stop_source src;
        auto [r, ignored] = core::run(
            lp, with_token(core::when_all(core::with_timeout(forever, sleep_then_value(forever, 5)),
                                          request_stop_now(&src)),
                           src.token()));
        (void)ignored;
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error() == core::errc::operation_canceled);
    }

} // TEST_SUITE

TEST_SUITE("core.scope") {

    TEST_CASE_TEMPLATE("task_scope join waits for every spawned child", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        int count = 0;
        std::size_t live_after_spawn = 0;
        std::size_t live_after_join = 99;
        core::run(lp, spawn_and_join(&count, &live_after_spawn, &live_after_join));
        CHECK(live_after_spawn == 3);
        CHECK(count == 3);
        CHECK(live_after_join == 0);
    }

    TEST_CASE_TEMPLATE("task_scope spawn runs a child until its first suspension", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        bool started_at_spawn = false;
        sleeper_record rec;
        core::run(lp, spawn_checks_started(&started_at_spawn, &rec));
        CHECK(started_at_spawn);
        CHECK(rec.finished);
    }

    TEST_CASE_TEMPLATE("task_scope error handler gets a child's exception while the others keep "
                       "running",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        std::vector<std::string> errors;
        int count = 0;
        core::run(lp, scope_with_failing_children(&errors, &count));
        CHECK(errors == std::vector<std::string>{"at once", "later"});
        CHECK(count == 2);
    }

    TEST_CASE_TEMPLATE("task_scope without an error handler logs a child's exception", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        capturing_sink sink;
        core::set_log_sink(&sink);
        core::run(lp, scope_default_handler());
        core::set_log_sink(nullptr);
        REQUIRE(sink.messages.size() == 1);
        CHECK(sink.messages[0].find("nobody handles me") != std::string::npos);
    }

    TEST_CASE_TEMPLATE("task_scope request_stop cancels sleeping children", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        std::vector<sleeper_record> recs(5);
        core::run(lp, scope_request_stop(&recs));
        for (const auto& r : recs) {
            CHECK(r.finished);
            CHECK(r.outcome == core::errc::operation_canceled);
        }
    }

    TEST_CASE_TEMPLATE("task_scope join with no children returns at once", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        bool ready = false;
        CHECK(core::run(lp, join_empty_scope(&ready)) == 0);
        CHECK(ready);
    }

    TEST_CASE_TEMPLATE("a task_scope can spawn and join again after a join and its children see "
                       "its token",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        int count = 0;
        core::stop_source* child_token_source = nullptr;
        core::stop_source* scope_token_source = nullptr;
        core::run(lp, scope_twice(&count, &child_token_source, &scope_token_source));
        CHECK(count == 3);
        REQUIRE(scope_token_source != nullptr);
        CHECK(child_token_source == scope_token_source);
    }

    TEST_CASE_TEMPLATE("a task_scope's token stops when its parent token stops", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        core::stop_source parent;
        sleeper_record rec;
        bool scope_token_stopped = false;
        core::run(lp, with_token(scope_linked_to_parent(&parent, &rec, &scope_token_stopped),
                                 parent.token()));
        CHECK(rec.finished);
        CHECK(rec.outcome == core::errc::operation_canceled);
        CHECK(scope_token_stopped);
    }

} // TEST_SUITE

TEST_SUITE("core.loop") {

    // Regression: ~loop only restored loop::current() when the dying loop was the current one, so
    // loops destroyed out of construction order left it pointing at a destroyed loop.
    TEST_CASE_TEMPLATE("loops destroyed out of order leave loop::current at a live loop", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop outer(coronet::testing::options<B>());
        {
            std::vector<std::unique_ptr<core::loop>> loops;
            loops.push_back(std::make_unique<core::loop>(coronet::testing::options<B>()));
            loops.push_back(std::make_unique<core::loop>(coronet::testing::options<B>()));
            CHECK(core::loop::current() == loops[1].get());
            loops.erase(loops.begin()); // the first constructed dies first
            CHECK(core::loop::current() == loops[0].get());
        }
        REQUIRE(core::loop::current() == &outer);
        core::clock::duration elapsed{};
        CHECK(core::run(outer, timed_sleep(1ms, &elapsed)).has_value());
    }

} // TEST_SUITE
