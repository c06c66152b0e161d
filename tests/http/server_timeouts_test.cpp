#include <coronet/http/server.hpp>

#include <coronet/core/timer.hpp>
#include <coronet/core/when.hpp>

#include "server_fixture.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <string_view>

namespace core = coronet::core;
namespace http = coronet::http;
namespace ct = coronet::testing;
using ct::raw_client;
using ct::raw_response;
using namespace std::chrono_literals;
using namespace coronet::testing::server_fixture;

namespace {

// ---- timeouts ------------------------------------------------------------------------------

core::task<void> header_timeout_slowloris(core::loop& lp) {
    http::server_options o = test_options();
    o.header_timeout = 200ms;
    co_await with_server(lp, o, [](running_server& rs, probe&) -> core::task<void> {
        auto slow = co_await rs.connect();
        auto t0 = core::clock::now();
        REQUIRE(co_await slow.send("GET / HTTP/1.1\r\nHo"));
        // Another client is served meanwhile.
        auto good = co_await rs.connect();
        auto g = co_await exchange(good, get("/id/5"));
        CHECK(g.body == "id 5");
        auto r = co_await read_one(slow, false, 3s);
        const double waited = ms_since(t0);
        CHECK(r.status == 408);
        CHECK(r.header_has_token("connection", "close"));
        CHECK(waited >= 150);
        CHECK(waited < 2000);
        co_await expect_closed(slow);
        // The good connection is unaffected.
        auto g2 = co_await exchange(good, get("/id/6"));
        CHECK(g2.body == "id 6");
    });
}

core::task<void> dribble(raw_client& c, std::string_view bytes, core::clock::duration gap,
                         bool& stop) {
    for (char ch : bytes) {
        if (stop)
            co_return;
        if (!co_await c.send(std::string(1, ch)))
            co_return;
        if (!co_await core::sleep_for(gap))
            co_return;
    }
}

core::task<void> read_and_flag(raw_client& c, core::result<raw_response>& out, bool& stop) {
    out = co_await c.read_response(false, 5s);
    stop = true;
}

core::task<void> header_timeout_counts_from_first_byte(core::loop& lp) {
    http::server_options o = test_options();
    o.header_timeout = 300ms;
    co_await with_server(lp, o, [](running_server& rs, probe&) -> core::task<void> {
        auto slow = co_await rs.connect();
        // One byte every 40 ms: each read arrives well within 300 ms, the head never completes.
        const std::string head = "GET / HTTP/1.1\r\nHost: t\r\nX-Pad: " + std::string(100, 'p');
        bool stop = false;
        core::result<raw_response> r = core::errc::not_open;
        auto t0 = core::clock::now();
        (void)co_await core::when_all(dribble(slow, head, 40ms, stop),
                                      read_and_flag(slow, r, stop));
        REQUIRE_MESSAGE(r, r.error().message());
        CHECK(r->status == 408);
        CHECK_MESSAGE(ms_since(t0) < 1500, "408 after " << ms_since(t0) << " ms");
    });
}

core::task<void> body_timeout_counts_whole_body(core::loop& lp) {
    http::server_options o = test_options();
    o.body_timeout = 300ms;
    co_await with_server(lp, o, [](running_server& rs, probe&) -> core::task<void> {
        auto slow = co_await rs.connect();
        REQUIRE(co_await slow.send("POST /echo HTTP/1.1\r\nHost: t\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n"));
        std::string body;
        for (int i = 0; i < 60; ++i)
            body += "1\r\nx\r\n";
        bool stop = false;
        core::result<raw_response> r = core::errc::not_open;
        auto t0 = core::clock::now();
        // Tiny chunks every 40 ms: each read is quick, the body takes far more than 300 ms.
        (void)co_await core::when_all(dribble(slow, body, 40ms, stop),
                                      read_and_flag(slow, r, stop));
        REQUIRE_MESSAGE(r, r.error().message());
        CHECK(r->status == 408);
        CHECK_MESSAGE(ms_since(t0) < 1500, "408 after " << ms_since(t0) << " ms");
    });
}

core::task<void> body_timeout_stalled(core::loop& lp) {
    http::server_options o = test_options();
    o.body_timeout = 200ms;
    co_await with_server(lp, o, [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        REQUIRE(co_await c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"));
        auto r = co_await read_one(c, false, 3s);
        CHECK(r.status == 408);
        co_await expect_closed(c);
    });
}

core::task<void> idle_timeout_closes(core::loop& lp) {
    http::server_options o = test_options();
    o.idle_timeout = 200ms;
    co_await with_server(lp, o, [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        auto r = co_await exchange(c, get("/id/1"));
        CHECK(r.status == 200);
        auto t0 = core::clock::now();
        co_await expect_closed(c, 3s);
        CHECK(ms_since(t0) >= 150);
    });
}

// Issue 13, item 4: a connection that never sends a byte gets the header timeout (from the
// accept), not the idle timeout; the idle timeout is for the gaps between requests.
core::task<void> silent_connection_gets_header_timeout(core::loop& lp) {
    http::server_options o = test_options();
    o.header_timeout = 200ms;
    o.idle_timeout = 60s;
    co_await with_server(lp, o, [](running_server& rs, probe&) -> core::task<void> {
        auto quiet = co_await rs.connect();
        // Closed without a response (no 408 to a connection that asked nothing), long before
        // the 60 s idle timeout: 10 s is only this wait's bound.
        co_await expect_closed(quiet, 10s);
        // Between requests of a keep-alive connection the idle timeout applies: it outlives
        // several header timeouts and serves its next request.
        auto c = co_await rs.connect();
        CHECK((co_await exchange(c, get("/id/1"))).status == 200);
        auto end = co_await c.wait_end(700ms);
        CHECK_MESSAGE(end.how == core::errc::timed_out, "closed: " << end.how.message());
        CHECK(end.extra.empty());
        auto again = co_await exchange(c, get("/id/2"));
        CHECK(again.body == "id 2");
    });
}

} // namespace

TEST_SUITE("http.server") {
    SERVER_CASE("a client that stops inside its head gets 408 while others are served",
                header_timeout_slowloris)
    SERVER_CASE("the header timeout runs from the first byte rather than per read",
                header_timeout_counts_from_first_byte)
    SERVER_CASE("the body timeout covers the whole chunked body rather than each read",
                body_timeout_counts_whole_body)
    SERVER_CASE("a body that stalls gets 408 and the connection closes", body_timeout_stalled)
    SERVER_CASE("an idle keep-alive connection is closed without a response", idle_timeout_closes)
    SERVER_CASE("a connection that sends nothing is closed after the header timeout while a "
                "keep-alive connection between requests gets the idle timeout",
                silent_connection_gets_header_timeout)
}
