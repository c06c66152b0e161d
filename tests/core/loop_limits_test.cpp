#include <coronet/core/loop.hpp>

#include <coronet/core/accept_loop.hpp>
#include <coronet/core/async_event.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/when.hpp>

#include <testing/backends.hpp>

#include "loop_access.hpp"

#include <doctest/doctest.h>

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace core = coronet::core;
using namespace std::chrono_literals;

namespace {

core::task<void> echo(core::tcp_stream s) {
    std::byte buf[256];
    for (;;) {
        auto n = co_await s.read_some(buf);
        if (!n)
            co_return;
        auto w = co_await s.write_all({buf, *n}); // bound first: see docs/core.md, g++ 12
        if (!w)
            co_return;
    }
}

core::task<core::result<void>> idle_then_active(core::loop& lp, std::size_t idle_count,
                                                bool& echoed) {
    auto l = core::tcp_listener::bind(lp, core::endpoint::loopback_v4(0));
    REQUIRE(l);
    auto ep = *l->local_endpoint();
    core::task_scope scope;
    scope.spawn(
        core::accept_loop(*l, scope, [](core::tcp_stream s) { return echo(std::move(s)); }));

    // Each idle connection leaves a read pending on the server: one completion-queue slot each.
    std::vector<core::tcp_stream> idle;
    for (std::size_t i = 0; i < idle_count; ++i) {
        auto c = co_await core::tcp_stream::connect(ep);
        REQUIRE(c);
        idle.push_back(std::move(*c));
    }
    auto active = co_await core::tcp_stream::connect(ep);
    REQUIRE(active);
    REQUIRE(co_await active->write_all(core::as_bytes("ping")));
    std::byte buf[4];
    std::size_t got = 0;
    while (got < 4) {
        auto n = co_await core::with_timeout(5s,
                                             [](core::tcp_stream& s, std::byte* b, std::size_t len)
                                                 -> core::task<core::result<std::size_t>> {
                                                 co_return co_await s.read_some({b, len});
                                             }(*active, buf + got, 4 - got));
        if (!n)
            break;
        got += *n;
    }
    echoed = got == 4 && core::as_string({buf, 4}) == "ping";
    scope.request_stop();
    co_await scope.join();
    co_return core::result<void>{};
}

void raise_fd_limit(rlim_t want) {
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

core::task<void> sleep_then_count(core::clock::duration d, int& woke) {
    auto r = co_await core::sleep_for(d);
    if (r)
        ++woke;
}

} // namespace

TEST_SUITE("core.loop") {

    TEST_CASE_TEMPLATE("a sleep destroyed while it waits leaves the timers of its loop", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        int woke = 0;
        {
            core::loop lp(coronet::testing::options<B>());
            {
                auto t = sleep_then_count(1ms, woke);
                t.handle().resume(); // suspends in the sleep: its timer is queued
            } // the frame goes while the timer waits; a node left behind would fire into it
            core::run(lp, sleep_then_count(20ms, woke));
            CHECK(woke == 1);
        }
        {
            // The loop goes first: its timers are told, and the frame leaves them alone.
            auto lp = std::make_unique<core::loop>(coronet::testing::options<B>());
            auto t = sleep_then_count(1h, woke);
            t.handle().resume();
            lp.reset();
        }
        CHECK(woke == 1);
    }

    // Regression: the io_uring backend once capped operations in flight at half of a 2048-entry
    // completion queue, so ~1020 idle connections (each with a read pending) starved accept and
    // every other connection in the backlog.
    TEST_CASE_TEMPLATE("a loop with 1100 idle connections still serves an active one", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        raise_fd_limit(4096);
        core::loop lp(coronet::testing::options<B>());
        bool echoed = false;
        auto r = core::run(lp, idle_then_active(lp, 1100, echoed));
        CHECK(r);
        CHECK(echoed);
    }

    TEST_CASE("a backend forced through loop_options is the one that runs") {
        core::loop_options o;
        o.backend = core::backend_kind::epoll;
        core::loop lp(o);
        CHECK(lp.backend() == core::backend_kind::epoll);
        CHECK(core::to_string(lp.backend()) == "epoll");
    }

} // TEST_SUITE

namespace {

core::task<void> receive_on_many(core::loop& lp, std::size_t conns, bool& all_right,
                                 std::size_t& distinct_rx_buffers) {
    auto l = core::tcp_listener::bind(lp, core::endpoint::loopback_v4(0));
    REQUIRE(l);
    auto ep = *l->local_endpoint();
    std::vector<core::tcp_stream> clients;
    std::vector<core::tcp_stream> servers;
    for (std::size_t i = 0; i < conns; ++i) {
        auto c = co_await core::tcp_stream::connect(ep);
        REQUIRE(c);
        auto s = co_await l->accept();
        REQUIRE(s);
        clients.push_back(std::move(*c));
        servers.push_back(std::move(*s));
    }
    all_right = true;
    std::vector<const std::byte*> seen;
    // Every server side keeps its received view (its lent buffer) while the next ones receive,
    // so the ring runs dry and later receives must fall back to the streams' own buffers.
    std::vector<std::string> got(conns);
    for (std::size_t i = 0; i < conns; ++i) {
        std::string msg = "message " + std::to_string(i);
        auto w = co_await clients[i].write_all(core::as_bytes(msg));
        REQUIRE(w);
        auto r = co_await servers[i].receive();
        REQUIRE(r);
        got[i] = std::string(core::as_string(*r));
        if (got[i] != msg)
            all_right = false;
        if (std::find(seen.begin(), seen.end(), r->data()) == seen.end())
            seen.push_back(r->data());
    }
    distinct_rx_buffers = seen.size();
    // Giving the buffers back lets receives use the ring again.
    for (auto& s : servers)
        s.release_receive_buffer();
    auto w = co_await clients[0].write_all(core::as_bytes("again"));
    REQUIRE(w);
    auto r = co_await servers[0].receive();
    REQUIRE(r);
    if (core::as_string(*r) != "again")
        all_right = false;
}

} // namespace

TEST_SUITE("core.loop") {

    TEST_CASE_TEMPLATE("receive stays correct when the provided-buffer ring runs dry", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        auto o = coronet::testing::options<B>();
        o.uring_provided_buffers = 2;     // rounded to a power of two: 2 buffers for 6 connections
        o.uring_provided_buffers_max = 2; // and no growth
        o.uring_provided_buffer_size = 4096;
        core::loop lp(o);
        bool all_right = false;
        std::size_t distinct = 0;
        core::run(lp, receive_on_many(lp, 6, all_right, distinct));
        CHECK(all_right);
        // Each receive's view is a buffer of its own: lent from the ring or the stream's own.
        CHECK(distinct == 6);
        if (B::kind == core::backend_kind::uring)
            MESSAGE("provided buffers: " << lp.has_provided_buffers());
        else
            CHECK(lp.has_provided_buffers()); // epoll lends from a pool of its own
    }

} // TEST_SUITE

namespace {

struct sleeper_log {
    std::vector<std::pair<core::clock::time_point, int>> woke; // (deadline, id) in wake order
    int cancelled = 0;
};

core::task<void> sleeper(int id, core::clock::time_point deadline, sleeper_log& log) {
    auto r = co_await core::sleep_until(deadline);
    if (r)
        log.woke.emplace_back(deadline, id);
    else
        ++log.cancelled;
}

core::task<void> many_timers(sleeper_log& log) {
    core::task_scope keep;
    core::task_scope cancel_me;
    const auto base = core::clock::now() + 5ms;
    unsigned x = 12345;
    for (int i = 0; i < 300; ++i) {
        x = x * 1103515245u + 12345u;
        auto deadline = base + std::chrono::microseconds((x >> 8) % 40000);
        if (i % 3 == 0)
            cancel_me.spawn(sleeper(i, deadline, log));
        else
            keep.spawn(sleeper(i, deadline, log));
    }
    cancel_me.request_stop(); // removes a third of the nodes from the middle of the heap
    co_await cancel_me.join();
    co_await keep.join();
}

// Timers as servers arm them: a few fixed timeouts, each armed again and again (so each kind
// comes in deadline order and the loop keeps it in a sorted list), more kinds than the loop has
// lists (the rest go to its heap), and every third one removed from the middle.
core::task<void> fixed_timeouts(sleeper_log& log) {
    core::task_scope keep;
    core::task_scope cancel_me;
    const auto base = core::clock::now() + 5ms;
    constexpr int kinds = 7;
    for (int i = 0; i < 350; ++i) {
        const int kind = i % kinds;
        auto deadline = base + std::chrono::microseconds(i * 20 + (kinds - kind) * 3000);
        if (i % 3 == 0)
            cancel_me.spawn(sleeper(i, deadline, log));
        else
            keep.spawn(sleeper(i, deadline, log));
    }
    cancel_me.request_stop();
    co_await cancel_me.join();
    co_await keep.join();
}

// Runs `sleepers` on `lp`: `cancelled` of them cancelled, `woke` woken, in deadline order.
void check_wake_order(core::loop& lp, core::task<void> (*sleepers)(sleeper_log&), int cancelled,
                      std::size_t woke) {
    sleeper_log log;
    core::run(lp, sleepers(log));
    CHECK(log.cancelled == cancelled);
    REQUIRE(log.woke.size() == woke);
    for (std::size_t i = 1; i < log.woke.size(); ++i)
        CHECK(log.woke[i - 1].first <= log.woke[i].first);
}

// A fixed timeout armed again from its own firing, as a keepalive or a periodic sweep is:
// each time it fires it goes back in `period` after the deadline it fired for.
struct periodic_timer : core::detail::timer_node {
    core::loop* lp = nullptr;
    core::clock::duration period{};
    int left = 0;
    int id = 0;
    sleeper_log* log = nullptr;
    int* running = nullptr; // timers not done yet; the last one done sets `done`
    core::async_event* done = nullptr;
    int armed_into_heap = 0;

    void arm(core::clock::time_point at) {
        when = at;
        fire = &on_fire;
        core::detail::loop_access::add_timer(*lp, *this);
        if (!listed())
            ++armed_into_heap;
    }
    static void on_fire(core::detail::timer_node* t) noexcept {
        auto* self = static_cast<periodic_timer*>(t);
        self->log->woke.emplace_back(self->when, self->id);
        if (--self->left > 0)
            self->arm(self->when + self->period);
        else if (--*self->running == 0)
            self->done->set();
    }
};

} // namespace

TEST_SUITE("core.loop") {

    TEST_CASE_TEMPLATE("timeouts armed again from their own firing stay in the sorted lists", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        sleeper_log log;
        int running = 3;
        core::async_event done;
        std::array<periodic_timer, 3> timers;
        const auto base = core::clock::now() + 2ms;
        for (int i = 0; i < 3; ++i) {
            auto& t = timers[static_cast<std::size_t>(i)];
            t.lp = &lp;
            t.period = std::chrono::microseconds(700 + 400 * i);
            t.left = 12;
            t.id = i;
            t.log = &log;
            t.running = &running;
            t.done = &done;
            t.arm(base + std::chrono::microseconds(100 * i));
        }
        // Only these three timers are queued (the run waits on an event, not a sleep), so each
        // arming finds a list however the loop's lists are tuned.
        core::run(lp, [](core::async_event& ev) -> core::task<void> {
            auto r = co_await ev.wait();
            CHECK(r.has_value());
        }(done));
        REQUIRE(log.woke.size() == 36);
        for (std::size_t i = 1; i < log.woke.size(); ++i)
            CHECK(log.woke[i - 1].first <= log.woke[i].first);
        for (const auto& t : timers) {
            CHECK(t.left == 0);
            CHECK(!t.queued());
            // A heap-only loop would take every one of these (12 armings each) into its heap.
            CHECK(t.armed_into_heap == 0);
        }
    }

    TEST_CASE_TEMPLATE("timers fire in deadline order while others are removed from the heap", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        check_wake_order(lp, many_timers, 100, 200);
    }

    TEST_CASE_TEMPLATE("fixed timeouts armed again and again fire in deadline order", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        check_wake_order(lp, fixed_timeouts, 117, 233);
    }

} // TEST_SUITE
