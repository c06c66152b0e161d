#include <coronet/http/server.hpp>

#include <coronet/core/log.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>

#include <testing/log_capture.hpp>

#include "server_fixture.hpp"

#include <doctest/doctest.h>

#include <sys/socket.h>

#include <string>
#include <system_error>

namespace core = coronet::core;
namespace http = coronet::http;
namespace ct = coronet::testing;
using ct::raw_client;
using namespace std::chrono_literals;
using namespace coronet::testing::server_fixture;

namespace {

// ---- graceful shutdown ---------------------------------------------------------------------

core::task<void> graceful_shutdown_finishes_requests(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe& p) -> core::task<void> {
        auto idle = co_await rs.connect();
        CHECK((co_await exchange(idle, get("/id/1"))).status == 200);
        auto busy = co_await rs.connect();
        REQUIRE(co_await busy.send(get("/slow/300")));
        REQUIRE(co_await wait_for(p.slow_started, 3s));
        rs.stop();
        // The idle keep-alive connection is closed without a response.
        co_await expect_closed(idle);
        // The request in progress completes, told that the connection closes.
        auto r = co_await read_one(busy, false, 3s);
        CHECK(r.status == 200);
        CHECK(r.body == "slow done");
        CHECK(r.header_has_token("connection", "close"));
        co_await expect_closed(busy);
        const double took = co_await rs.join();
        CHECK(rs.returned());
        CHECK(p.slow_finished);
        CHECK(took < 1500);
        // No more connections are served (the listener stays the caller's: the kernel may
        // still queue a connect, but nobody answers it).
        auto late = co_await raw_client::connect(rs.endpoint());
        if (late) {
            REQUIRE(co_await late->send(get("/id/9")));
            auto end = co_await late->wait_end(300ms);
            CHECK(end.extra.empty());
        }
    });
}

core::task<void> graceful_shutdown_cancels_after_grace(core::loop& lp) {
    http::server_options o = test_options();
    o.shutdown_grace = 100ms;
    co_await with_server(lp, o, [](running_server& rs, probe& p) -> core::task<void> {
        auto busy = co_await rs.connect();
        REQUIRE(co_await busy.send(get("/slow/5000")));
        REQUIRE(co_await wait_for(p.slow_started, 3s));
        rs.stop();
        const double took = co_await rs.join();
        CHECK(rs.returned());
        CHECK(took >= 80);
        CHECK(took < 1500);
        CHECK(p.slow_cancelled);
        CHECK_FALSE(p.slow_finished);
        auto end = co_await busy.wait_end(3s);
        CHECK(end.closed());
    });
}

// ---- why serving stopped (issue 13, item 9) ------------------------------------------------

using coronet::testing::capture_sink;
using coronet::testing::sink_installed;

core::task<void> stop_is_logged(core::loop& lp) {
    capture_sink sink;
    sink_installed on(sink);
    probe p;
    http::router routes = test_routes(p);
    running_server rs(lp, routes, test_options(), co_await core::get_stop_token());
    auto c = co_await rs.connect();
    CHECK((co_await exchange(c, get("/id/1"))).status == 200);
    rs.stop();
    (void)co_await rs.join();
    CHECK(rs.returned());
    REQUIRE(sink.lines.size() == 1);
    CHECK(sink.lines[0].first == core::log_level::info);
    CHECK(sink.lines[0].second.find("stop requested") != std::string::npos);
}

core::task<void> serve_and_flag(http::server& srv, core::tcp_listener& l, bool& returned) {
    co_await srv.serve(l);
    returned = true;
}

core::task<void> listener_failure_is_logged(core::loop& lp) {
    capture_sink sink;
    sink_installed on(sink);
    probe p;
    http::router routes = test_routes(p);
    core::tcp_listener l = listen_local(lp);
    http::server srv(routes, test_options());
    bool returned = false;
    core::task_scope scope(co_await core::get_stop_token());
    scope.spawn(serve_and_flag(srv, l, returned));
    // A listening socket shut down for reading fails every accept with EINVAL.
    REQUIRE(::shutdown(l.native_handle(), SHUT_RD) == 0);
    co_await scope.join(); // serve() returns by itself: nobody asked it to stop
    CHECK(returned);
    REQUIRE(sink.lines.size() == 1);
    CHECK(sink.lines[0].first == core::log_level::error);
    CHECK(sink.lines[0].second.find(std::make_error_code(std::errc::invalid_argument).message()) !=
          std::string::npos);
}

} // namespace

TEST_SUITE("http.server") {
    SERVER_CASE("serve logs one line when it is asked to stop", stop_is_logged)
    SERVER_CASE("serve logs the listener's error once when accepting fails and returns",
                listener_failure_is_logged)
    SERVER_CASE(
        "graceful shutdown lets a request finish with Connection: close and closes idle ones",
        graceful_shutdown_finishes_requests)
    SERVER_CASE("graceful shutdown cancels a handler still running after the grace period",
                graceful_shutdown_cancels_after_grace)
}
