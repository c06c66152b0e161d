#include <coronet/core/serve.hpp>

#include <coronet/core/log.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/timer.hpp>

#include <testing/backends.hpp>
#include <testing/log_capture.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <utility>

namespace core = coronet::core;
namespace ct = coronet::testing;
using namespace std::chrono_literals;

using ct::endpoint_of;
using ct::listen_local;
using ct::run_on;

namespace {

/// A readiness count the connections raise and the test waits on (bounded, cancellable).
struct counter_signal {
    std::size_t value = 0;
    core::stop_source* waiting = nullptr;
    void raise() noexcept {
        ++value;
        if (waiting != nullptr)
            waiting->request_stop();
    }
};

core::task<core::result<void>> sleep_task(core::clock::duration d) {
    co_return co_await core::sleep_for(d);
}

/// Sleeps for `d` unless `wake` fires first. True if `wake` fired.
core::task<bool> sleep_unless(core::clock::duration d, core::stop_token wake) {
    core::stop_source src(co_await core::get_stop_token());
    auto forward = [&src]() noexcept { src.request_stop(); };
    core::stop_callback<decltype(forward)> hook(wake, forward);
    auto t = sleep_task(d);
    t.handle().promise().set_token(src.token());
    (void)co_await std::move(t);
    co_return wake.stop_requested();
}

/// Waits until `s.value` reaches `n`; false if 5 s went by first.
core::task<bool> wait_until(counter_signal& s, std::size_t n) {
    const auto deadline = core::clock::now() + 5s;
    while (s.value < n && core::clock::now() < deadline) {
        core::stop_source src(co_await core::get_stop_token());
        s.waiting = &src;
        auto t = sleep_task(deadline - core::clock::now());
        t.handle().promise().set_token(src.token());
        (void)co_await std::move(t);
        s.waiting = nullptr;
    }
    co_return s.value >= n;
}

/// What the connections of one test saw.
struct seen {
    counter_signal started;
    std::size_t drained = 0;   ///< saw `draining` fire
    std::size_t cancelled = 0; ///< saw their own stop token fire
    std::size_t ended = 0;
};

enum class behaviour {
    echo_once,      ///< echo one byte, return
    drain_politely, ///< wait for draining, write "bye", return
    ignore_drain,   ///< sleep on regardless (until cancelled)
};

core::task<void> run_connection(core::tcp_stream s, core::stop_token draining, seen* out,
                                behaviour b) {
    out->started.raise();
    core::stop_token own = co_await core::get_stop_token();
    if (b == behaviour::echo_once) {
        std::byte one[1];
        auto r = co_await s.read_some(one);
        if (r && *r == 1)
            (void)co_await s.write_all(core::const_buffer(one, 1));
    } else if (b == behaviour::drain_politely) {
        const bool drained = co_await sleep_unless(30s, draining);
        if (drained) {
            ++out->drained;
            (void)co_await s.write_all(core::as_bytes("bye"));
        }
    } else {
        auto slept = co_await core::sleep_for(30s);
        (void)slept;
        if (draining.stop_requested())
            ++out->drained;
    }
    if (own.stop_requested())
        ++out->cancelled;
    ++out->ended;
}

/// core::serve on a listener of its own, in a scope the test stops.
class served {
public:
    served(core::loop& lp, seen& out, behaviour b, core::serve_options o)
        : listener_(listen_local(lp)) {
        core::connection_handler h = [&out, b](core::tcp_stream s, core::stop_token d) {
            return run_connection(std::move(s), d, &out, b);
        };
        scope_.spawn(run(std::move(h), std::move(o)));
    }
    core::endpoint endpoint() const { return endpoint_of(listener_); }
    void stop() noexcept { scope_.request_stop(); }
    core::task<void> join() { co_await scope_.join(); }
    bool returned() const noexcept { return returned_; }

private:
    core::task<void> run(core::connection_handler h, core::serve_options o) {
        co_await core::serve(listener_, std::move(h), std::move(o));
        returned_ = true;
    }

    core::tcp_listener listener_;
    core::task_scope scope_;
    bool returned_ = false;
};

core::serve_options options(std::chrono::milliseconds grace) {
    core::serve_options o;
    o.shutdown_grace = grace;
    o.name = "test server";
    return o;
}

core::task<core::tcp_stream> connect_to(const core::endpoint& ep) {
    auto c = co_await core::tcp_stream::connect(ep);
    REQUIRE_MESSAGE(c, c.error().message());
    co_return std::move(*c);
}

/// Reads until the peer closes; returns what came.
core::task<std::string> read_to_end(core::tcp_stream& c) {
    std::string got;
    char buf[64];
    for (;;) {
        auto r = co_await c.read_some(core::mutable_buffer(reinterpret_cast<std::byte*>(buf), 64));
        if (!r)
            break;
        got.append(buf, *r);
    }
    co_return got;
}

core::task<void> echo_case(core::loop& lp) {
    seen out;
    served srv(lp, out, behaviour::echo_once, options(5s));
    for (char c : std::string("ab")) {
        auto s = co_await connect_to(srv.endpoint());
        auto w =
            co_await s.write_all(core::const_buffer(reinterpret_cast<const std::byte*>(&c), 1));
        REQUIRE(w);
        CHECK(co_await read_to_end(s) == std::string(1, c));
    }
    CHECK(out.started.value == 2);
    srv.stop();
    co_await srv.join();
    CHECK(srv.returned());
    CHECK(out.ended == 2);
    CHECK(out.cancelled == 0);
}

core::task<void> drain_case(core::loop& lp) {
    seen out;
    served srv(lp, out, behaviour::drain_politely, options(10s));
    auto a = co_await connect_to(srv.endpoint());
    auto b = co_await connect_to(srv.endpoint());
    REQUIRE(co_await wait_until(out.started, 2));
    srv.stop();
    CHECK(co_await read_to_end(a) == "bye");
    CHECK(co_await read_to_end(b) == "bye");
    co_await srv.join();
    CHECK(srv.returned());
    CHECK(out.drained == 2);
    CHECK(out.cancelled == 0); // they ended within the grace period
    CHECK(out.ended == 2);
}

core::task<void> grace_case(core::loop& lp) {
    seen out;
    served srv(lp, out, behaviour::ignore_drain, options(20ms));
    auto a = co_await connect_to(srv.endpoint());
    REQUIRE(co_await wait_until(out.started, 1));
    srv.stop();
    co_await srv.join();
    CHECK(srv.returned());
    // Cancelled at the end of the grace period, and joined before serve returned.
    CHECK(out.cancelled == 1);
    CHECK(out.drained == 1);
    CHECK(out.ended == 1);
    CHECK(co_await read_to_end(a) == "");
}

core::task<void> log_case(core::loop& lp) {
    ct::capture_sink sink;
    ct::sink_installed on(sink);
    seen out;
    served srv(lp, out, behaviour::drain_politely, options(5s));
    auto a = co_await connect_to(srv.endpoint());
    REQUIRE(co_await wait_until(out.started, 1));
    srv.stop();
    co_await srv.join();
    REQUIRE(sink.lines.size() == 1);
    CHECK(sink.lines[0].first == core::log_level::info);
    CHECK(sink.lines[0].second ==
          "test server: stop requested; shutting down with 1 connections open");
}

} // namespace

TEST_SUITE("core.serve") {

    TEST_CASE_TEMPLATE("serve runs the handler for each accepted connection and returns after the "
                       "stop once they have ended",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return echo_case(lp); });
    }

    TEST_CASE_TEMPLATE("on stop every live connection sees draining fire and may finish within "
                       "the grace period without being cancelled",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return drain_case(lp); });
    }

    TEST_CASE_TEMPLATE("a connection still running when the grace period ends is cancelled and "
                       "serve returns only once it has ended",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return grace_case(lp); });
    }

    TEST_CASE_TEMPLATE("a stop request is logged once with the server's name and the live count", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return log_case(lp); });
    }
}
