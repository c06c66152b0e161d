#include <coronet/http/server.hpp>

#include "server_fixture.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace core = coronet::core;
namespace http = coronet::http;
using namespace std::chrono_literals;
using namespace coronet::testing::server_fixture;

namespace {

// ---- malformed requests --------------------------------------------------------------------

struct bad_case {
    const char* name;
    std::string bytes;
    int status;
};

core::task<void> malformed_requests(core::loop& lp) {
    http::server_options o = test_options();
    o.limits.max_request_line = 256;
    o.limits.max_header_bytes = 1024;
    o.limits.max_body_size = 16;
    co_await with_server(lp, o, [](running_server& rs, probe&) -> core::task<void> {
        std::vector<bad_case> cases = {
            {"bad request line", "GET/ HTTP/1.1\r\nHost: t\r\n\r\n", 400},
            {"bad method token", "G(T / HTTP/1.1\r\nHost: t\r\n\r\n", 400},
            {"missing host", "GET / HTTP/1.1\r\n\r\n", 400},
            {"CL and TE",
             "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
             "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
             400},
            {"TE gzip", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
            {"TE gzip, chunked",
             "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
            {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505},
            {"huge header",
             "GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n", 431},
            {"long URI", "GET /" + std::string(400, 'u') + " HTTP/1.1\r\nHost: t\r\n\r\n", 414},
            {"body over limit", post("/echo", std::string(100, 'b')), 413},
            {"chunked body over limit",
             "POST /echo HTTP/1.1\r\nHost: t\r\n"
             "Transfer-Encoding: chunked\r\n\r\n"
             "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n",
             413},
            {"bad chunk size",
             "POST /echo HTTP/1.1\r\nHost: t\r\n"
             "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
             400},
        };
        for (auto& bc : cases) {
            auto c = co_await rs.connect();
            auto s = co_await c.send(bc.bytes);
            REQUIRE(s);
            auto r = co_await c.read_response();
            REQUIRE_MESSAGE(r, bc.name << ": " << r.error().message());
            CHECK_MESSAGE(r->status == bc.status, bc.name);
            CHECK_MESSAGE(r->header_has_token("connection", "close"), bc.name);
            auto end = co_await c.wait_end(3s);
            CHECK_MESSAGE(end.closed(), bc.name << ": " << end.how.message());
            CHECK_MESSAGE(end.extra.empty(), bc.name);
        }
        // The server is fine afterwards.
        auto c = co_await rs.connect();
        auto ok = co_await exchange(c, get("/id/1"));
        CHECK(ok.status == 200);
    });
}

// ---- connection limit ----------------------------------------------------------------------

core::task<void> connection_limit(core::loop& lp) {
    http::server_options o = test_options();
    o.max_connections = 2;
    co_await with_server(lp, o, [](running_server& rs, probe&) -> core::task<void> {
        auto a = co_await rs.connect();
        auto b = co_await rs.connect();
        CHECK((co_await exchange(a, get("/id/1"))).status == 200);
        CHECK((co_await exchange(b, get("/id/2"))).status == 200);
        CHECK(rs.server().connections() == 2);
        auto c = co_await rs.connect();
        auto r = co_await exchange(c, get("/id/3"));
        CHECK(r.status == 503);
        CHECK(r.header_has_token("connection", "close"));
        co_await expect_closed(c);
        // The two admitted connections still work.
        auto a2 = co_await exchange(a, get("/id/4"));
        CHECK(a2.body == "id 4");
        CHECK(rs.server().connections() == 2);
    });
}

} // namespace

TEST_SUITE("http.server") {
    SERVER_CASE("malformed requests get their status with Connection: close and are closed",
                malformed_requests)
    SERVER_CASE("a connection over max_connections gets 503", connection_limit)
}
