#include <coronet/http/client.hpp>

#include "client_fixture.hpp"

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace core = coronet::core;
namespace http = coronet::http;
using coronet::testing::run_on;
using namespace coronet::testing::client_fixture;

namespace {

core::task<void> content_length_client(raw_server& srv) {
    http::client c(client_test_options());
    http::client_request req = request("POST", "data");
    req.headers = {{"X-Custom", "one two"}, {"Accept", "text/plain"}};
    auto r = co_await c.fetch(srv.url("/submit?x=1"), req);
    REQUIRE_MESSAGE(r, r.error().message());
    CHECK(r->status == 201);
    CHECK(r->reason == "Created");
    CHECK(r->version_minor == 1);
    CHECK(r->header("x-served-by") == "raw");
    CHECK(r->body == "hello");
    CHECK(r->keep_alive);

    REQUIRE(srv.requests.size() == 1);
    const raw_request& got = srv.requests[0];
    CHECK(got.request_line() == "POST /submit?x=1 HTTP/1.1");
    CHECK(got.values("host") == std::vector<std::string>{srv.host()});
    CHECK(got.header("x-custom") == "one two");
    CHECK(got.header("accept") == "text/plain");
    CHECK(got.values("content-length") == std::vector<std::string>{"4"});
    CHECK(got.body == "data");
}

core::task<void> content_length_case(core::loop& lp) {
    raw_server srv(
        lp, {{{"HTTP/1.1 201 Created\r\nX-Served-By: raw\r\nContent-Length: 5\r\n\r\nhello"}}});
    co_await with_raw_server(srv, content_length_client(srv));
}

core::task<void> get_has_no_content_length_client(raw_server& srv) {
    http::client c(client_test_options());
    auto r = co_await c.fetch(srv.url("/plain"));
    REQUIRE_MESSAGE(r, r.error().message());
    CHECK(r->body == "ok");
    REQUIRE(srv.requests.size() == 1);
    CHECK(srv.requests[0].request_line() == "GET /plain HTTP/1.1");
    CHECK(srv.requests[0].values("content-length").empty());
    CHECK(srv.requests[0].body.empty());
}

core::task<void> get_has_no_content_length_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"}}});
    co_await with_raw_server(srv, get_has_no_content_length_client(srv));
}

core::task<void> chunked_client(raw_server& srv) {
    http::client c(client_test_options());
    auto r = co_await c.fetch(srv.url("/chunked"));
    REQUIRE_MESSAGE(r, r.error().message());
    CHECK(r->status == 200);
    CHECK(r->body == "hello, world");
    // The trailer section was consumed exactly: the next response on the connection parses.
    auto again = co_await c.fetch(srv.url("/after"));
    REQUIRE_MESSAGE(again, again.error().message());
    CHECK(again->body == "next");
    CHECK(srv.accepts == 1);
}

core::task<void> chunked_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5;name=value\r\nhello\r\n"
                          "7 ; q=\"a b\";flag\r\n, world\r\n"
                          "0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"}}});
    co_await with_raw_server(srv, chunked_client(srv));
}

core::task<void> until_close_client(raw_server& srv) {
    http::client c(client_test_options());
    auto r = co_await c.fetch(srv.url());
    REQUIRE_MESSAGE(r, r.error().message());
    CHECK(r->status == 200);
    CHECK(r->body == "everything until the end");
    CHECK_FALSE(r->keep_alive);
    auto again = co_await c.fetch(srv.url());
    REQUIRE_MESSAGE(again, again.error().message());
    CHECK(again->body == "second");
    CHECK(srv.accepts == 2);
}

core::task<void> until_close_case(core::loop& lp) {
    raw_server srv(
        lp,
        {{{"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\neverything until the end"}, true},
         {{"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"}}});
    co_await with_raw_server(srv, until_close_client(srv));
}

core::task<void> large_bodies_client(raw_server& srv, std::string expected) {
    http::client c(client_test_options());
    auto a = co_await c.fetch(srv.url("/cl"));
    REQUIRE_MESSAGE(a, a.error().message());
    CHECK(a->body.size() == expected.size());
    CHECK(a->body == expected);
    auto b = co_await c.fetch(srv.url("/chunked"));
    REQUIRE_MESSAGE(b, b.error().message());
    CHECK(b->body.size() == expected.size());
    CHECK(b->body == expected);
    CHECK(srv.accepts == 1);
}

core::task<void> large_bodies_case(core::loop& lp) {
    std::string body(1024 * 1024 + 17, '\0');
    for (std::size_t i = 0; i < body.size(); ++i)
        body[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
    std::string cl =
        "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    static constexpr char hex[] = "0123456789abcdef";
    for (std::size_t at = 0; at < body.size(); at += 5000) {
        std::size_t n = std::min<std::size_t>(5000, body.size() - at);
        std::string size;
        for (std::size_t v = n; v != 0; v /= 16)
            size.insert(size.begin(), hex[v % 16]);
        chunked += size + "\r\n" + body.substr(at, n) + "\r\n";
    }
    chunked += "0\r\n\r\n";
    raw_server srv(lp, {{{cl, chunked}}});
    co_await with_raw_server(srv, large_bodies_client(srv, body));
}

core::task<void> continue_client(raw_server& srv) {
    http::client c(client_test_options());
    auto r = co_await c.fetch(srv.url("/upload"), request("PUT", "payload"));
    REQUIRE_MESSAGE(r, r.error().message());
    CHECK(r->status == 200);
    CHECK(r->body == "stored");
    CHECK(r->header("link").empty()); // the 103's field is not the final response's
    CHECK(r->header("x-final") == "yes");
    REQUIRE(srv.requests.size() == 1);
    CHECK(srv.requests[0].body == "payload");
}

core::task<void> continue_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 100 Continue\r\n\r\n"
                          "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                          "HTTP/1.1 200 OK\r\nX-Final: yes\r\nContent-Length: 6\r\n\r\nstored"}}});
    co_await with_raw_server(srv, continue_client(srv));
}

core::task<void> head_client(raw_server& srv) {
    http::client c(client_test_options());
    auto r = co_await c.fetch(srv.url("/big"), request("HEAD"));
    REQUIRE_MESSAGE(r, r.error().message());
    CHECK(r->status == 200);
    CHECK(r->header("content-length") == "1000");
    CHECK(r->body.empty());
    // No body bytes were expected: the next response on the same connection is read intact.
    auto next = co_await c.fetch(srv.url("/small"));
    REQUIRE_MESSAGE(next, next.error().message());
    CHECK(next->body == "abc");
    CHECK(srv.accepts == 1);
    REQUIRE(srv.requests.size() == 2);
    CHECK(srv.requests[0].request_line() == "HEAD /big HTTP/1.1");
}

core::task<void> head_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"}}});
    co_await with_raw_server(srv, head_client(srv));
}

core::task<void> no_body_statuses_client(raw_server& srv) {
    http::client c(client_test_options());
    auto a = co_await c.fetch(srv.url("/a"));
    REQUIRE_MESSAGE(a, a.error().message());
    CHECK(a->status == 204);
    CHECK(a->body.empty());
    auto b = co_await c.fetch(srv.url("/b"));
    REQUIRE_MESSAGE(b, b.error().message());
    CHECK(b->status == 304);
    CHECK(b->header("content-length") == "10");
    CHECK(b->body.empty());
    auto d = co_await c.fetch(srv.url("/c"));
    REQUIRE_MESSAGE(d, d.error().message());
    CHECK(d->status == 200);
    CHECK(d->body == "x");
    CHECK(srv.accepts == 1);
}

core::task<void> no_body_statuses_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 204 No Content\r\n\r\n",
                          "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"v1\"\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"}}});
    co_await with_raw_server(srv, no_body_statuses_client(srv));
}

} // namespace

TEST_SUITE("http.client") {

    TEST_CASE_TEMPLATE("a POST sends its request line and Host with the port and headers and a "
                       "Content-Length body "
                       "and reads a Content-Length response",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return content_length_case(lp); });
    }

    TEST_CASE_TEMPLATE("a GET without a body sends no Content-Length", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return get_has_no_content_length_case(lp); });
    }

    TEST_CASE_TEMPLATE(
        "a chunked response with extensions and trailers is decoded and the connection is reused",
        B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return chunked_case(lp); });
    }

    TEST_CASE_TEMPLATE(
        "a response without Content-Length or Transfer-Encoding is read until the server closes", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return until_close_case(lp); });
    }

    TEST_CASE_TEMPLATE("1 MiB Content-Length and chunked bodies arrive intact", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return large_bodies_case(lp); });
    }

    TEST_CASE_TEMPLATE(
        "100 Continue and 103 interim responses are skipped before the final response", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return continue_case(lp); });
    }

    TEST_CASE_TEMPLATE("a HEAD response with Content-Length has no body", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return head_case(lp); });
    }

    TEST_CASE_TEMPLATE("204 and 304 responses have no body even with Content-Length", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return no_body_statuses_case(lp); });
    }

} // TEST_SUITE
