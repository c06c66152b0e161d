#include <coronet/http/server.hpp>

#include "server_fixture.hpp"

#include <doctest/doctest.h>

#include <ctime>
#include <regex>
#include <string>

namespace core = coronet::core;
using namespace coronet::testing::server_fixture;

namespace {

// ---- HEAD, Date, 404, 405 ------------------------------------------------------------------

core::task<void> head_on_get_route(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        auto g = co_await exchange(c, get("/id/42"));
        auto h = co_await exchange(c, "HEAD /id/42 HTTP/1.1\r\nHost: t\r\n\r\n", true);
        CHECK(h.status == 200);
        CHECK(h.header("content-length") == g.header("content-length"));
        CHECK(h.header("content-length") == "5");
        CHECK(h.header("content-type") == g.header("content-type"));
        CHECK(h.body.empty());
        // No body bytes were sent: the next response starts right away.
        auto n = co_await exchange(c, get("/id/43"));
        CHECK(n.status == 200);
        CHECK(n.body == "id 43");
    });
}

core::task<void> date_header(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        auto r = co_await exchange(c, get("/"));
        CHECK(r.header_count("date") == 1);
        std::string date = r.header("date");
        static const std::regex imf(R"(^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] )"
                                    R"((Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} )"
                                    R"([0-2][0-9]:[0-5][0-9]:[0-6][0-9] GMT$)");
        CHECK_MESSAGE(std::regex_match(date, imf), date);
        std::tm tm{};
        const char* end = ::strptime(date.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        REQUIRE(end != nullptr);
        const std::time_t when = ::timegm(&tm);
        const std::time_t now = std::time(nullptr);
        CHECK(when <= now + 1);
        CHECK(when >= now - 10);
    });
}

core::task<void> not_found_and_method_not_allowed(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        auto nf = co_await exchange(c, get("/no/such/thing"));
        CHECK(nf.status == 404);
        auto na = co_await exchange(c, post("/", "x"));
        CHECK(na.status == 405);
        CHECK(na.header_has_token("allow", "GET"));
        CHECK(na.header_has_token("allow", "HEAD"));
        CHECK_FALSE(na.header_has_token("allow", "POST"));
        auto del = co_await exchange(c, "DELETE /echo HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK(del.status == 405);
        CHECK(del.header("allow") == "POST");
        // Errors from routing keep the connection.
        auto ok = co_await exchange(c, get("/id/1"));
        CHECK(ok.status == 200);
    });
}

// ---- handler failures ----------------------------------------------------------------------

core::task<void> handler_exception(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto other = co_await rs.connect();
        CHECK((co_await exchange(other, get("/id/1"))).status == 200);
        auto c = co_await rs.connect();
        auto r = co_await exchange(c, get("/throw"));
        CHECK(r.status == 500);
        CHECK(r.header_has_token("connection", "close"));
        CHECK(r.body.find("handler failure") == std::string::npos); // no internals leak
        co_await expect_closed(c);
        auto o2 = co_await exchange(other, get("/id/2"));
        CHECK(o2.body == "id 2");
        auto fresh = co_await rs.connect();
        CHECK((co_await exchange(fresh, get("/id/3"))).body == "id 3");
    });
}

core::task<void> header_injection_refused(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        auto r = co_await exchange(c, get("/bad-header"));
        CHECK(r.status == 500);
        CHECK_FALSE(r.has_header("injected"));
        CHECK_FALSE(r.has_header("x-evil"));
        CHECK(r.header_has_token("connection", "close"));
        co_await expect_closed(c);
    });
}

} // namespace

TEST_SUITE("http.server") {
    SERVER_CASE("HEAD on a GET route sends the same headers and no body", head_on_get_route)
    SERVER_CASE("every response has one well-formed current Date header", date_header)
    SERVER_CASE("an unknown path gets 404 and a wrong method 405 with Allow",
                not_found_and_method_not_allowed)
    SERVER_CASE("a handler exception gives 500 and the server keeps serving", handler_exception)
    SERVER_CASE("a response header with CR/LF is refused with 500", header_injection_refused)
}
