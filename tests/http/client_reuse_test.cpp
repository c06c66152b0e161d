#include <coronet/http/client.hpp>

#include <coronet/http/error.hpp>

#include "client_fixture.hpp"

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <string>
#include <system_error>
#include <vector>

namespace core = coronet::core;
namespace http = coronet::http;
using coronet::testing::run_on;
using namespace coronet::testing::client_fixture;

namespace {

core::task<void> reuse_client(raw_server& srv) {
    http::client c(client_test_options());
    auto a = co_await c.fetch(srv.url("/one"));
    REQUIRE_MESSAGE(a, a.error().message());
    auto b = co_await c.fetch(srv.url("/two"));
    REQUIRE_MESSAGE(b, b.error().message());
    CHECK(a->body == "1");
    CHECK(b->body == "2");
    CHECK(srv.accepts == 1);
    REQUIRE(srv.requests.size() == 2);
    CHECK(srv.requests[0].request_line() == "GET /one HTTP/1.1");
    CHECK(srv.requests[1].request_line() == "GET /two HTTP/1.1");
}

core::task<void> reuse_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1",
                          "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"}}});
    co_await with_raw_server(srv, reuse_client(srv));
}

core::task<void> not_reused_client(raw_server& srv) {
    http::client c(client_test_options());
    auto a = co_await c.fetch(srv.url("/one"));
    REQUIRE_MESSAGE(a, a.error().message());
    CHECK(a->body == "1");
    CHECK_FALSE(a->keep_alive);
    auto b = co_await c.fetch(srv.url("/two"));
    REQUIRE_MESSAGE(b, b.error().message());
    CHECK(b->body == "2");
    CHECK(srv.accepts == 2);
    CHECK(srv.requests.size() == 2);
}

core::task<void> connection_close_case(core::loop& lp) {
    // The server keeps its side open: the client must not reuse it because of the header alone.
    raw_server srv(lp, {{{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n1"}},
                        {{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"}}});
    co_await with_raw_server(srv, not_reused_client(srv));
}

core::task<void> http10_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n1"}},
                        {{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"}}});
    co_await with_raw_server(srv, not_reused_client(srv));
}

core::task<void> idle_closed_client(raw_server& srv, std::string method) {
    http::client c(client_test_options());
    auto a = co_await c.fetch(srv.url("/first"));
    REQUIRE_MESSAGE(a, a.error().message());
    CHECK(a->body == "1");
    CHECK(a->keep_alive);
    // The server closes the idle connection before the next request is sent.
    bool closed = co_await srv.closed.wait();
    REQUIRE(closed);
    auto b = co_await c.fetch(srv.url("/second"), request(method, method == "POST" ? "p" : ""));
    if (method == "GET") {
        REQUIRE_MESSAGE(b, b.error().message());
        CHECK(b->body == "2");
        CHECK(srv.accepts == 2);
        REQUIRE(srv.requests.size() == 2);
        CHECK(srv.requests[1].request_line() == "GET /second HTTP/1.1");
    } else {
        // Not idempotent: the failure is reported, no second connection carries the request.
        REQUIRE_FALSE(b);
        CHECK((b.error() == http::errc::unexpected_eof ||
               b.error() == std::errc::connection_reset || b.error() == std::errc::broken_pipe));
        CHECK(srv.accepts == 1);
        CHECK(srv.requests.size() == 1);
    }
}

core::task<void> idle_closed_case(core::loop& lp, std::string method) {
    raw_server srv(lp, {{{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"}, true},
                        {{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"}}});
    co_await with_raw_server(srv, idle_closed_client(srv, method));
}

core::task<void> max_idle_zero_client(raw_server& srv) {
    http::client_options o = client_test_options();
    o.max_idle_per_origin = 0;
    http::client c(o);
    auto a = co_await c.fetch(srv.url());
    REQUIRE_MESSAGE(a, a.error().message());
    auto b = co_await c.fetch(srv.url());
    REQUIRE_MESSAGE(b, b.error().message());
    CHECK(srv.accepts == 2);
}

core::task<void> max_idle_zero_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"}},
                        {{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"}}});
    co_await with_raw_server(srv, max_idle_zero_client(srv));
}

} // namespace

TEST_SUITE("http.client") {

    TEST_CASE_TEMPLATE("two fetches of the same origin share one keep-alive connection", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return reuse_case(lp); });
    }

    TEST_CASE_TEMPLATE("after a Connection: close response the next fetch opens a new connection",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return connection_close_case(lp); });
    }

    TEST_CASE_TEMPLATE("an HTTP/1.0 response without keep-alive is not reused", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return http10_case(lp); });
    }

    TEST_CASE_TEMPLATE("max_idle_per_origin 0 keeps no connection for reuse", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return max_idle_zero_case(lp); });
    }

    TEST_CASE_TEMPLATE(
        "a GET on a reused connection the server closed while idle is retried once on a new one", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return idle_closed_case(lp, "GET"); });
    }

    TEST_CASE_TEMPLATE("a POST on a reused connection the server closed while idle is not retried",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return idle_closed_case(lp, "POST"); });
    }

} // TEST_SUITE
