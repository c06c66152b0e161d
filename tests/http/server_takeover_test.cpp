#include <coronet/http/server.hpp>

#include "server_fixture.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace core = coronet::core;
namespace http = coronet::http;
namespace ct = coronet::testing;
using ct::raw_client;
using namespace std::chrono_literals;
using namespace coronet::testing::server_fixture;

namespace {

// ---- connection takeover -------------------------------------------------------------------

core::task<std::string> read_line(raw_client& c) {
    for (;;) {
        auto nl = c.buffered().find('\n');
        if (nl != std::string::npos) {
            std::string line = c.buffered().substr(0, nl + 1);
            c.buffered().erase(0, nl + 1);
            co_return line;
        }
        auto r = co_await c.fill(3s);
        REQUIRE_MESSAGE(r, r.error().message());
    }
}

const std::string upgrade_request =
    "GET /toy HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: toyline\r\n\r\n";

core::task<void> takeover_line_protocol(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe& p) -> core::task<void> {
        auto c = co_await rs.connect();
        // The upgrade request and the first protocol line in one write.
        REQUIRE(co_await c.send(upgrade_request + "first line\n"));
        auto r = co_await read_one(c);
        CHECK(r.status == 101);
        CHECK(r.header("upgrade") == "toyline");
        CHECK(r.header_has_token("connection", "upgrade"));
        CHECK_FALSE(r.has_header("content-length"));
        CHECK(co_await read_line(c) == "echo: first line\n");
        REQUIRE(co_await wait_for(p.takeover_started, 3s));
        CHECK(p.prefetched == "first line\n");
        CHECK(rs.server().connections() == 1); // the takeover runs inside the server
        REQUIRE(co_await c.send("second\nthird\n"));
        CHECK(co_await read_line(c) == "echo: second\n");
        CHECK(co_await read_line(c) == "echo: third\n");
        REQUIRE(co_await c.send("quit\n"));
        CHECK(co_await read_line(c) == "bye\n");
        co_await expect_closed(c);
        CHECK(p.takeover_ended);
        CHECK(p.lines == std::vector<std::string>{"first line", "second", "third", "quit"});
    });
}

core::task<void> takeover_cancelled_by_shutdown(core::loop& lp) {
    http::server_options o = test_options();
    o.shutdown_grace = 100ms;
    co_await with_server(lp, o, [](running_server& rs, probe& p) -> core::task<void> {
        auto c = co_await rs.connect();
        REQUIRE(co_await c.send(upgrade_request + "ping\n"));
        CHECK((co_await read_one(c)).status == 101);
        CHECK(co_await read_line(c) == "echo: ping\n");
        CHECK(rs.server().connections() == 1);
        rs.stop();
        const double took = co_await rs.join();
        CHECK(rs.returned());
        CHECK(took < 1500);
        CHECK(p.takeover_cancelled);
        CHECK(p.takeover_ended);
        CHECK(rs.server().connections() == 0);
        auto end = co_await c.wait_end(3s);
        CHECK(end.closed());
    });
}

core::task<void> takeover_sees_draining(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe& p) -> core::task<void> {
        auto c = co_await rs.connect();
        auto sent = co_await c.send(get("/drain", "Connection: Upgrade\r\nUpgrade: toyline\r\n"));
        REQUIRE(sent);
        CHECK((co_await read_one(c)).status == 101);
        REQUIRE(co_await wait_for(p.takeover_started, 3s));
        CHECK_FALSE(p.drained);
        rs.stop();
        CHECK(co_await read_line(c) == "going away\n");
        co_await expect_closed(c);
        (void)co_await rs.join();
        CHECK(p.drained);
        CHECK_FALSE(p.takeover_cancelled);
        CHECK(p.takeover_ended);
    });
}

} // namespace

TEST_SUITE("http.server") {
    SERVER_CASE("a connection takeover gets the bytes pipelined behind the upgrade request",
                takeover_line_protocol)
    SERVER_CASE("graceful shutdown cancels a connection takeover and serve returns",
                takeover_cancelled_by_shutdown)
    SERVER_CASE("a connection takeover is told through draining that the server shuts down",
                takeover_sees_draining)
}
