#include <coronet/http/server.hpp>

#include "server_fixture.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <string_view>

namespace core = coronet::core;
using namespace coronet::testing::server_fixture;

namespace {

// ---- request bodies ------------------------------------------------------------------------

core::task<void> chunked_request_body(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        auto r = co_await exchange(c, "POST /echo HTTP/1.1\r\nHost: t\r\nX-Tag: chunky\r\n"
                                      "Transfer-Encoding: chunked\r\n\r\n"
                                      "5;ext=1\r\nhello\r\n"
                                      "7;a=b;c=\"quoted\"\r\n, world\r\n"
                                      "0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n");
        CHECK(r.status == 200);
        CHECK(r.body == "hello, world");
        CHECK(r.header("x-tag") == "chunky");
        // The trailers were consumed: the next request on the connection parses cleanly.
        auto n = co_await exchange(c, get("/id/2"));
        CHECK(n.status == 200);
        CHECK(n.body == "id 2");
    });
}

core::task<void> content_length_request_body(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        auto r = co_await exchange(c, post("/echo", "hello world", "X-Tag: cl\r\n"));
        CHECK(r.status == 200);
        CHECK(r.body == "hello world");
        CHECK(r.header("x-tag") == "cl");
        CHECK(r.header("content-length") == "11");
    });
}

core::task<void> body_in_small_writes(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        std::string body;
        for (int i = 0; i < 600; ++i)
            body += static_cast<char>('a' + (i * 7) % 26);
        co_await send_in_pieces(c, post("/echo", body, "X-Tag: pieces\r\n"), 13);
        auto a = co_await read_one(c);
        CHECK(a.status == 200);
        CHECK(a.body == body);
        CHECK(a.header("x-tag") == "pieces");
        CHECK(a.header("x-path") == "/echo");

        std::string chunked = "POST /echo HTTP/1.1\r\nHost: t\r\nX-Tag: chunked-pieces\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n";
        std::string expect;
        for (int i = 0; i < 20; ++i) {
            std::string part(static_cast<std::size_t>(5 + i), static_cast<char>('A' + i));
            expect += part;
            char size[16];
            std::snprintf(size, sizeof size, "%zx", part.size());
            chunked += std::string(size) + "\r\n" + part + "\r\n";
        }
        chunked += "0\r\n\r\n";
        co_await send_in_pieces(c, chunked, 7);
        auto b = co_await read_one(c);
        CHECK(b.status == 200);
        CHECK(b.body == expect);
        CHECK(b.header("x-tag") == "chunked-pieces");
        CHECK(b.header("x-path") == "/echo");
    });
}

/// A request head of many fields for /head-view, and what /head-view answers for it.
struct viewed_head {
    std::string head;
    std::string expected;
};

viewed_head many_field_head(std::string_view framing, std::size_t body_bytes) {
    viewed_head v;
    v.head = "POST /head-view?q=1&r=two HTTP/1.1\r\nHost: test\r\n";
    v.expected = "POST /head-view?q=1&r=two /head-view q=1&r=two\nHost: test\n";
    for (int i = 0; i < 20; ++i) {
        const std::string name = "X-Field-" + std::to_string(i);
        const std::string value = "value-" + std::string(static_cast<std::size_t>(i), 'v');
        v.head += name + ": " + value + "\r\n";
        v.expected += name + ": " + value + "\n";
    }
    v.head += std::string(framing) + "\r\n\r\n";
    v.expected += std::string(framing.substr(0, framing.find(':'))) + ": " +
                  std::string(framing.substr(framing.find(':') + 2)) + "\n";
    v.expected += "body " + std::to_string(body_bytes) + "\n";
    return v;
}

// Regression (issue 14): the head is parsed once, so a body that makes the reader grow or
// compact its buffer must move the head's views with its bytes. The first request of the burst
// is consumed before the second's body arrives, so the reader compacts with the head in it, and
// the 600 KiB body makes it grow several times; the third request proves the framing held.
core::task<void> moved_head_keeps_its_views(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        const std::size_t size = 600 * 1024;
        const std::string body(size, 'b');
        viewed_head sized = many_field_head("Content-Length: " + std::to_string(size), size);
        REQUIRE(co_await c.send(get("/id/1", "X-Pad: " + std::string(2000, 'p') + "\r\n") +
                                sized.head + body + get("/id/3")));
        CHECK((co_await read_one(c)).body == "id 1");
        auto a = co_await read_one(c);
        CHECK(a.status == 200);
        CHECK(a.body == sized.expected);
        CHECK((co_await read_one(c)).body == "id 3");

        viewed_head chunked = many_field_head("Transfer-Encoding: chunked", size);
        std::string chunks;
        for (int i = 0; i < 6; ++i)
            chunks += "19000\r\n" + std::string(100 * 1024, 'c') + "\r\n";
        chunks += "0\r\n\r\n";
        REQUIRE(co_await c.send(get("/id/4") + chunked.head + chunks + get("/id/6")));
        CHECK((co_await read_one(c)).body == "id 4");
        auto b = co_await read_one(c);
        CHECK(b.status == 200);
        CHECK(b.body == chunked.expected);
        CHECK((co_await read_one(c)).body == "id 6");
    });
}

// ---- streamed responses --------------------------------------------------------------------

core::task<void> streamed_with_length(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        auto r = co_await exchange(c, get("/stream-length"));
        CHECK(r.status == 200);
        CHECK_FALSE(r.chunked);
        CHECK(r.header("content-length") == "15");
        CHECK_FALSE(r.has_header("transfer-encoding"));
        CHECK(r.body == "hello, streamed");
        auto n = co_await exchange(c, get("/id/2"));
        CHECK(n.body == "id 2");
    });
}

core::task<void> streamed_chunked(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        auto r = co_await exchange(c, get("/stream-chunked"));
        CHECK(r.status == 200);
        CHECK(r.chunked);
        CHECK_FALSE(r.has_header("content-length"));
        CHECK(r.body == "one two three");
        CHECK(r.raw_body == "4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n");
        auto n = co_await exchange(c, get("/id/2"));
        CHECK(n.body == "id 2");
        // HEAD of a streamed route: the head only, and the connection stays in sync.
        auto h = co_await exchange(c, "HEAD /stream-chunked HTTP/1.1\r\nHost: t\r\n\r\n", true);
        CHECK(h.status == 200);
        CHECK(h.header_has_token("transfer-encoding", "chunked"));
        auto m = co_await exchange(c, get("/id/3"));
        CHECK(m.body == "id 3");
    });
}

core::task<void> streamed_to_http10(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        auto r = co_await exchange(c, "GET /stream-chunked HTTP/1.0\r\n\r\n");
        CHECK(r.status == 200);
        CHECK_FALSE(r.chunked);
        CHECK(r.body == "one two three"); // delimited by the close
    });
}

core::task<void> streamed_to_http10_keep_alive(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        // No chunked coding in HTTP/1.0 and no length: the close must delimit the body, so the
        // response cannot promise to keep the connection.
        auto r =
            co_await exchange(c, "GET /stream-chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        CHECK(r.status == 200);
        CHECK_FALSE(r.header_has_token("connection", "keep-alive"));
        CHECK(r.header_has_token("connection", "close"));
        CHECK(r.body == "one two three");
    });
}

// ---- Expect: 100-continue ------------------------------------------------------------------

core::task<void> expect_continue(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        auto interim =
            co_await exchange(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n"
                                 "Expect: 100-continue\r\n\r\n");
        CHECK(interim.status == 100);
        CHECK(interim.body.empty());
        CHECK(c.buffered().empty()); // nothing but the interim answer before the body
        auto r = co_await exchange(c, "continued");
        CHECK(r.status == 200);
        CHECK(r.body == "continued");
    });
}

} // namespace

TEST_SUITE("http.server") {
    SERVER_CASE("a chunked request body with extensions and trailers reaches the handler whole",
                chunked_request_body)
    SERVER_CASE("a Content-Length request body reaches the handler", content_length_request_body)
    SERVER_CASE("a request split across many small writes is read whole", body_in_small_writes)
    SERVER_CASE("a pipelined request whose large body moves the reader's buffer shows the handler "
                "its whole head",
                moved_head_keeps_its_views)
    SERVER_CASE("a streamed body with stream_length is sent with Content-Length",
                streamed_with_length)
    SERVER_CASE("a streamed body without a length is sent chunked", streamed_chunked)
    SERVER_CASE("a streamed body to an HTTP/1.0 client is delimited by the close",
                streamed_to_http10)
    SERVER_CASE("an unframed streamed body to an HTTP/1.0 keep-alive client says Connection: close",
                streamed_to_http10_keep_alive)
    SERVER_CASE("Expect: 100-continue gets 100 Continue before the body and then the response",
                expect_continue)
}
