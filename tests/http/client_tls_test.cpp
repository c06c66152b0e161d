#include <coronet/http/client.hpp>

#include <coronet/core/tls.hpp>

#include "client_fixture.hpp"

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

namespace core = coronet::core;
namespace http = coronet::http;
using coronet::testing::run_on;
using namespace coronet::testing::client_fixture;

namespace {

core::task<void> https_client(raw_server& srv) {
    http::client_options o = client_test_options();
    o.tls = &tls().client;
    http::client c(o);
    auto a = co_await c.fetch(srv.url("/secure", "https"));
    REQUIRE_MESSAGE(a, a.error().message());
    CHECK(a->body == "secret");
    auto b = co_await c.fetch(srv.url("/again", "https"));
    REQUIRE_MESSAGE(b, b.error().message());
    CHECK(b->body == "more");
    CHECK(srv.accepts == 1);
    REQUIRE(srv.requests.size() == 2);
    CHECK(srv.requests[0].request_line() == "GET /secure HTTP/1.1");
    CHECK(srv.requests[0].header("host") == srv.host());
    CHECK(srv.handshake_errors.empty());
}

core::task<void> https_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret",
                          "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmore"}}});
    srv.tls = &tls().server;
    co_await with_raw_server(srv, https_client(srv));
}

core::task<void> https_untrusted_client(raw_server& srv) {
    http::client c(
        client_test_options()); // tls == nullptr: the system store, which lacks the test CA
    auto r = co_await c.fetch(srv.url("/secure", "https"));
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(r.error().category() == core::tls_verify_category(), r.error().message());
    CHECK(srv.requests.empty());
}

core::task<void> https_untrusted_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret"}}});
    srv.tls = &tls().server;
    co_await with_raw_server(srv, https_untrusted_client(srv));
}

core::task<void> https_to_plain_client(raw_server& srv) {
    http::client_options o = client_test_options();
    o.tls = &tls().client;
    http::client c(o);
    auto r = co_await c.fetch(srv.url("/", "https"));
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(r.error().category() == core::tls_category(), r.error().message());
}

core::task<void> https_to_plain_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"}, true, true}});
    co_await with_raw_server(srv, https_to_plain_client(srv));
}

} // namespace

TEST_SUITE("http.client") {

    TEST_CASE_TEMPLATE(
        "https with a context trusting the test CA succeeds and reuses the TLS connection", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return https_case(lp); });
    }

    TEST_CASE_TEMPLATE(
        "https verifies by default: without the test CA the fetch fails certificate verification",
        B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return https_untrusted_case(lp); });
    }

    TEST_CASE_TEMPLATE("https to a plain-text server fails the handshake", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return https_to_plain_case(lp); });
    }

} // TEST_SUITE
