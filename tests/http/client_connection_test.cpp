#include <coronet/http/client.hpp>

#include <coronet/core/buffered_reader.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/when.hpp>
#include <coronet/http/error.hpp>

#include "client_fixture.hpp"

#include <testing/backends.hpp>
#include <testing/memory_stream.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

namespace core = coronet::core;
namespace http = coronet::http;
namespace ct = coronet::testing;
using coronet::testing::run_on;
using namespace coronet::testing::client_fixture;

namespace {

core::task<void> memory_server(core::stream& s, std::vector<raw_request>& seen) {
    core::buffered_reader rd(s);
    const char* responses[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
        "chunked\r\n\r\n3;x=y\r\nsec\r\n3\r\nond\r\n0\r\n\r\n",
    };
    for (const char* resp : responses) {
        auto req = co_await read_request(rd);
        if (!req)
            co_return;
        seen.push_back(std::move(*req));
        auto w = co_await s.write_all(core::as_bytes(resp));
        if (!w)
            co_return;
    }
}

core::task<void> memory_client(http::client_connection& conn) {
    http::client_request a = request("POST", "abc");
    a.target = "/m?q=1";
    auto r1 = co_await conn.send(a);
    REQUIRE_MESSAGE(r1, r1.error().message());
    CHECK(r1->body == "first");
    CHECK(conn.reusable());
    auto r2 = co_await conn.send(request("GET"));
    REQUIRE_MESSAGE(r2, r2.error().message());
    CHECK(r2->body == "second");
    CHECK(conn.reusable());
}

core::task<void> memory_stream_case(core::loop& lp) {
    auto [client_end, server_end] = ct::memory_stream_pair(lp);
    client_end->set_max_read(1); // every response byte arrives in its own read
    server_end->set_max_write(3);
    std::vector<raw_request> seen;
    core::stream& server_ref = *server_end;
    http::client_connection conn(std::move(client_end), "example.test", client_test_options());
    co_await core::when_all(memory_server(server_ref, seen), memory_client(conn));
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].request_line() == "POST /m?q=1 HTTP/1.1");
    CHECK(seen[0].header("host") == "example.test");
    CHECK(seen[0].body == "abc");
    CHECK(seen[1].request_line() == "GET / HTTP/1.1");
}

core::task<void> injection_case(core::loop& lp) {
    auto [client_end, server_end] = ct::memory_stream_pair(lp);
    ct::memory_stream& client_ref = *client_end;
    http::client_connection conn(std::move(client_end), "example.test", client_test_options());
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"X-Evil", "a\r\nInjected: 1"}, {"X-Evil", "a\nb"}, {"X-Evil", "a\rb"},
        {"X-Evil\r\nInjected", "1"},    {"Bad Name", "v"},  {"", "v"}};
    for (const auto& [name, value] : bad) {
        CAPTURE(name);
        CAPTURE(value);
        http::client_request req;
        req.headers = {{name, value}};
        auto r = co_await conn.send(req);
        REQUIRE_FALSE(r);
        CHECK(r.error() == http::errc::bad_header);
    }
    CHECK(client_ref.operations() == 0); // nothing was written
    CHECK(server_end->readable() == 0);
    // A refused request sent nothing, so the connection still carries the next one.
    CHECK(conn.reusable());
    std::vector<raw_request> seen;
    co_await core::when_all(memory_server(*server_end, seen), memory_client(conn));
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].values("x-evil").empty());
    CHECK(seen[0].values("injected").empty());
}

core::task<void> bad_host_case(core::loop& lp) {
    auto [client_end, server_end] = ct::memory_stream_pair(lp);
    ct::memory_stream& client_ref = *client_end;
    http::client_connection conn(std::move(client_end), "h\r\nInjected: 1", client_test_options());
    auto r = co_await conn.send(request("GET"));
    REQUIRE_FALSE(r);
    CHECK(r.error() == http::errc::bad_request);
    CHECK(client_ref.operations() == 0);
    CHECK(server_end->readable() == 0);
}

} // namespace

TEST_SUITE("http.client") {

    TEST_CASE_TEMPLATE("client_connection works over a memory_stream with one-byte reads", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return memory_stream_case(lp); });
    }

    TEST_CASE_TEMPLATE("a request header with CR or LF or a bad name is refused with bad_header "
                       "before anything is sent and the connection stays usable",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return injection_case(lp); });
    }

    TEST_CASE_TEMPLATE("a client_connection whose Host holds CR/LF refuses to send", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return bad_host_case(lp); });
    }

} // TEST_SUITE

TEST_SUITE("http.client") {
    TEST_CASE("a caller's Content-Length or Transfer-Encoding is refused before anything is sent") {
        coronet::core::loop lp;
        auto [a, b] = coronet::testing::memory_stream_pair(lp);
        coronet::http::client_connection conn(std::move(a), "example.test");
        for (const char* name : {"Content-Length", "transfer-encoding"}) {
            coronet::http::client_request req;
            req.method = "POST";
            req.headers.emplace_back(name, "5");
            req.body = "hello";
            auto r = coronet::core::run(lp, conn.send(req));
            REQUIRE_FALSE(r);
            CHECK(r.error() == coronet::http::errc::bad_header);
        }
        CHECK(conn.reusable());
    }
} // TEST_SUITE
