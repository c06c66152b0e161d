#include <coronet/http/client.hpp>

#include <coronet/core/socket.hpp>
#include <coronet/http/error.hpp>

#include "client_fixture.hpp"

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace core = coronet::core;
namespace http = coronet::http;
using coronet::testing::run_on;
using namespace std::chrono_literals;
using namespace coronet::testing::client_fixture;

namespace {

/// Fetches once per script (each on a new connection: failed connections are never reused)
/// and checks every fetch failed with `expected`.
core::task<void> expect_errors_client(raw_server& srv, http::client_options o,
                                      std::error_code expected) {
    http::client c(o);
    for (std::size_t i = 0; i < srv.scripts.size(); ++i) {
        CAPTURE(i);
        auto r = co_await c.fetch(srv.url());
        REQUIRE_FALSE(r);
        CHECK_MESSAGE(r.error() == expected, r.error().message());
    }
    CHECK(srv.accepts == static_cast<int>(srv.scripts.size()));
}

core::task<void> expect_errors_case(core::loop& lp, std::vector<conn_script> scripts,
                                    http::client_options o, std::error_code expected) {
    raw_server srv(lp, std::move(scripts));
    co_await with_raw_server(srv, expect_errors_client(srv, o, expected));
}

http::client_options small_limits() {
    http::client_options o = client_test_options();
    o.limits.max_body_size = 16;
    o.limits.max_header_bytes = 256;
    return o;
}

core::task<void> body_limit_case(core::loop& lp) {
    std::string big(17, 'b');
    std::vector<conn_script> scripts = {
        {{"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n" + big}},
        {{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + big.substr(0, 16) +
          "\r\n1\r\nb\r\n0\r\n\r\n"}},
        {{"HTTP/1.1 200 OK\r\n\r\n" + big}, true}};
    co_await expect_errors_case(lp, std::move(scripts), small_limits(), http::errc::body_too_large);
}

core::task<void> body_at_limit_client(raw_server& srv) {
    http::client c(small_limits());
    auto r = co_await c.fetch(srv.url());
    REQUIRE_MESSAGE(r, r.error().message());
    CHECK(r->body == std::string(16, 'b'));
}

core::task<void> body_at_limit_case(core::loop& lp) {
    raw_server srv(lp,
                   {{{"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n" + std::string(16, 'b')}}});
    co_await with_raw_server(srv, body_at_limit_client(srv));
}

core::task<void> header_limit_case(core::loop& lp) {
    std::string filler = "X-Filler: " + std::string(300, 'f') + "\r\n";
    std::vector<conn_script> scripts = {
        {{"HTTP/1.1 200 OK\r\n" + filler + "Content-Length: 0\r\n\r\n"}}};
    co_await expect_errors_case(lp, std::move(scripts), small_limits(),
                                http::errc::header_too_large);
}

core::task<void> bad_status_case(core::loop& lp) {
    std::vector<conn_script> scripts = {{{"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"}},
                                        {{"HTTQ/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"}},
                                        {{"HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n"}},
                                        {{"HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n"}},
                                        {{"200 OK\r\nContent-Length: 0\r\n\r\n"}}};
    co_await expect_errors_case(lp, std::move(scripts), client_test_options(),
                                http::errc::bad_status_line);
}

core::task<void> premature_eof_case(core::loop& lp) {
    std::vector<conn_script> scripts = {
        {{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"}, true},
        {{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"}, true},
        {{"HTTP/1.1 200 OK\r\nContent-Le"}, true}};
    co_await expect_errors_case(lp, std::move(scripts), client_test_options(),
                                http::errc::unexpected_eof);
}

core::task<void> response_timeout_client(raw_server& srv) {
    http::client_options o = client_test_options();
    o.response_timeout = 200ms;
    http::client c(o);
    auto start = core::clock::now();
    auto r = co_await c.fetch(srv.url("/slow"));
    auto took = core::clock::now() - start;
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(r.error() == core::errc::timed_out, r.error().message());
    CHECK(took >= 150ms);
    CHECK(took < 4s);
    CHECK(srv.requests.size() == 1); // the request went out; the answer never came
}

core::task<void> response_timeout_case(core::loop& lp) {
    raw_server srv(lp, {{{""}}});
    co_await with_raw_server(srv, response_timeout_client(srv));
}

core::task<void> refused_case(core::loop& lp) {
    std::uint16_t port = 0;
    {
        auto l = core::tcp_listener::bind(lp, core::endpoint::loopback_v4(0));
        REQUIRE(l);
        port = l->local_endpoint()->port();
    } // closed: nobody listens on the port now
    http::client c(client_test_options());
    auto r = co_await c.fetch("http://127.0.0.1:" + std::to_string(port) + "/");
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(r.error() == std::errc::connection_refused, r.error().message());
}

} // namespace

TEST_SUITE("http.client") {

    TEST_CASE_TEMPLATE("a body over max_body_size fails with body_too_large whether Content-Length "
                       "or chunked or until close",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return body_limit_case(lp); });
    }

    TEST_CASE_TEMPLATE("a body exactly max_body_size long is accepted", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return body_at_limit_case(lp); });
    }

    TEST_CASE_TEMPLATE("a response head over max_header_bytes fails with header_too_large", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return header_limit_case(lp); });
    }

    TEST_CASE_TEMPLATE(
        "a server that never answers fails the fetch with timed_out after response_timeout", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return response_timeout_case(lp); });
    }

    TEST_CASE_TEMPLATE("a fetch to a port nobody listens on fails with connection_refused", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return refused_case(lp); });
    }

    TEST_CASE_TEMPLATE("a malformed status line fails with bad_status_line", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return bad_status_case(lp); });
    }

    TEST_CASE_TEMPLATE("the server closing inside a response fails with unexpected_eof", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return premature_eof_case(lp); });
    }

} // TEST_SUITE
