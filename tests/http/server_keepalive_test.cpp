#include <coronet/http/server.hpp>

#include "server_fixture.hpp"

#include <doctest/doctest.h>

#include <string>

namespace core = coronet::core;
using namespace coronet::testing::server_fixture;

namespace {

// ---- bodies: keep-alive ----------------------------------------------------------------------

core::task<void> keep_alive_two_requests(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        auto a = co_await exchange(c, get("/id/1"));
        CHECK(a.status == 200);
        CHECK(a.version == "HTTP/1.1");
        CHECK(a.body == "id 1");
        CHECK_FALSE(a.header_has_token("connection", "close"));
        auto b = co_await exchange(c, get("/id/2"));
        CHECK(b.status == 200);
        CHECK(b.body == "id 2");
        CHECK(rs.server().connections() == 1);
    });
}

core::task<void> http10_closes_by_default(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        auto r = co_await exchange(c, "GET /id/10 HTTP/1.0\r\n\r\n");
        CHECK(r.status == 200);
        CHECK(r.body == "id 10");
        CHECK(r.header_has_token("connection", "close"));
        co_await expect_closed(c);
    });
}

core::task<void> http10_keep_alive(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        auto a = co_await exchange(c, "GET /id/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        CHECK(a.status == 200);
        CHECK(a.body == "id 1");
        CHECK(a.header_has_token("connection", "keep-alive"));
        CHECK(a.header("content-length") == "4");
        auto b = co_await exchange(c, "GET /id/2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        CHECK(b.status == 200);
        CHECK(b.body == "id 2");
    });
}

core::task<void> connection_close_closes(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        auto r = co_await exchange(c, get("/id/7", "Connection: close\r\n"));
        CHECK(r.status == 200);
        CHECK(r.body == "id 7");
        CHECK(r.header_has_token("connection", "close"));
        co_await expect_closed(c);
    });
}

// ---- pipelining ----------------------------------------------------------------------------

core::task<void> pipelined_three(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        auto s = co_await c.send(get("/id/1") + post("/echo", "second body", "X-Tag: two\r\n") +
                                 get("/id/3"));
        REQUIRE(s);
        auto a = co_await read_one(c);
        auto b = co_await read_one(c);
        auto d = co_await read_one(c);
        CHECK(a.body == "id 1");
        CHECK(b.body == "second body");
        CHECK(b.header("x-tag") == "two");
        CHECK(d.body == "id 3");
        CHECK(c.buffered().empty());
        // The connection still serves after the pipelined burst.
        auto e = co_await exchange(c, get("/id/4"));
        CHECK(e.body == "id 4");
    });
}

core::task<void> pipelined_bad_header_keeps_earlier_response(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        REQUIRE(co_await c.send(get("/id/1") + get("/bad-header")));
        auto a = co_await read_one(c);
        CHECK(a.status == 200);
        CHECK(a.body == "id 1");
        auto b = co_await read_one(c);
        CHECK(b.status == 500);
        CHECK(b.header_has_token("connection", "close"));
        co_await expect_closed(c);
    });
}

} // namespace

TEST_SUITE("http.server") {
    SERVER_CASE("two requests on one keep-alive connection get two responses",
                keep_alive_two_requests)
    SERVER_CASE("an HTTP/1.0 request is answered with Connection: close and the connection closes",
                http10_closes_by_default)
    SERVER_CASE("an HTTP/1.0 request with Connection: keep-alive keeps the connection",
                http10_keep_alive)
    SERVER_CASE("Connection: close closes the connection after the response",
                connection_close_closes)
    SERVER_CASE("three pipelined requests in one write get three responses in order",
                pipelined_three)
    SERVER_CASE("a refused header on a pipelined request does not drop the earlier response",
                pipelined_bad_header_keeps_earlier_response)
}
