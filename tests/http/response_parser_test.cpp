#include <coronet/http/parser.hpp>

#include <doctest/doctest.h>

#include <ostream> // doctest prints std::error_code through it
#include <string>
#include <string_view>
#include <vector>

using namespace coronet::http;

namespace {

response_head parse_ok(std::string_view msg, bool head_request = false) {
    response_parser p;
    p.set_head_request(head_request);
    REQUIRE(p.parse(msg) == parse_status::complete);
    return p.head();
}

int status_of_response(std::string_view msg) {
    response_parser p;
    REQUIRE(p.parse(msg) == parse_status::error);
    return status_of(p.error());
}

} // namespace

TEST_SUITE("http.response_parser") {

    TEST_CASE("the RFC 9110 example response parses with its status, fields and Content-Length") {
        // RFC 9110 §6 (also RFC 9112 §1): the server's answer to the curl example.
        const std::string body = "Hello World! My content includes a trailing CRLF.\r\n";
        const std::string msg =
            "HTTP/1.1 200 OK\r\nDate: Mon, 27 Jul 2009 12:28:53 GMT\r\nServer: Apache\r\n"
            "Last-Modified: Wed, 22 Jul 2009 19:15:56 GMT\r\nETag: \"34aa387-d-1568eb00\"\r\n"
            "Accept-Ranges: bytes\r\nContent-Length: 51\r\nVary: Accept-Encoding\r\n"
            "Content-Type: text/plain\r\n\r\n" +
            body;
        REQUIRE(body.size() == 51);
        response_parser p;
        REQUIRE(p.parse(msg) == parse_status::complete);
        const auto& h = p.head();
        CHECK(h.status == 200);
        CHECK(h.reason == "OK");
        CHECK(h.version_minor == 1);
        CHECK(h.headers.size() == 8);
        CHECK(h.headers.get("etag") == "\"34aa387-d-1568eb00\"");
        CHECK(h.body == body_kind::content_length);
        CHECK(h.content_length == 51);
        CHECK(h.keep_alive);
        CHECK(std::string_view(msg).substr(p.head_size()) == body);
    }

    TEST_CASE("a response to HEAD has no body whatever its framing headers say") {
        auto h = parse_ok("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", true);
        CHECK(h.body == body_kind::none);
        auto c = parse_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true);
        CHECK(c.body == body_kind::none);
    }

    TEST_CASE("1xx, 204 and 304 responses have no body") {
        for (const char* msg : {
                 "HTTP/1.1 100 Continue\r\n\r\n",
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
                 "Upgrade\r\n\r\n",
                 "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
                 "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
                 "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"x\"\r\n\r\n",
             }) {
            CAPTURE(msg);
            auto h = parse_ok(msg);
            CHECK(h.body == body_kind::none);
            CHECK(h.keep_alive);
        }
    }

    TEST_CASE("a chunked response is chunked and wins over Content-Length") {
        auto h = parse_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        CHECK(h.body == body_kind::chunked);
        auto both =
            parse_ok("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        CHECK(both.body == body_kind::chunked); // RFC 9112 §6.3 rule 3
    }

    TEST_CASE("a Content-Length response is read to its length and 0 means no body") {
        auto h = parse_ok("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found");
        CHECK(h.status == 404);
        CHECK(h.body == body_kind::content_length);
        CHECK(h.content_length == 9);
        auto zero = parse_ok("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        CHECK(zero.body == body_kind::none);
    }

    TEST_CASE(
        "a response without framing, or with a final coding other than chunked, ends at close") {
        auto h = parse_ok("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end");
        CHECK(h.body == body_kind::until_close);
        CHECK_FALSE(h.keep_alive);
        auto gz = parse_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
        CHECK(gz.body == body_kind::until_close); // RFC 9112 §6.3 rule 4 (responses)
        CHECK_FALSE(gz.keep_alive);
    }

    TEST_CASE("HTTP/1.0 responses close unless they say keep-alive") {
        auto h = parse_ok("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        CHECK(h.version_minor == 0);
        CHECK_FALSE(h.keep_alive);
        auto k = parse_ok("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        CHECK(k.keep_alive);
        auto c = parse_ok("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        CHECK_FALSE(c.keep_alive);
    }

    TEST_CASE("the reason phrase may be empty or missing") {
        CHECK(parse_ok("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n").reason.empty());
        CHECK(parse_ok("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").status == 200);
        CHECK(parse_ok("HTTP/1.1 599 Odd But Fine\r\nContent-Length: 0\r\n\r\n").reason ==
              "Odd But Fine");
    }

    TEST_CASE("repeated Set-Cookie fields are kept in order") {
        auto h = parse_ok("HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nSET-COOKIE: "
                          "c=3\r\nContent-Length: 0\r\n\r\n");
        std::vector<std::string_view> cookies;
        for (const auto& f : h.headers.fields())
            if (iequals(f.name, "Set-Cookie"))
                cookies.push_back(f.value);
        CHECK(cookies == std::vector<std::string_view>{"a=1", "b=2", "c=3"});
        CHECK(h.headers.count("set-cookie") == 3);
        CHECK(h.headers.get("Set-cookie") == "a=1");
    }

    TEST_CASE("malformed responses are refused") {
        CHECK(status_of_response("HTTP/1.1 20 OK\r\n\r\n") == 400);
        CHECK(status_of_response("HTTP/1.1 2000 OK\r\n\r\n") == 400);
        CHECK(status_of_response("HTTP/1.1 099 Low\r\n\r\n") == 400);
        CHECK(status_of_response("HTTP/1.1 abc OK\r\n\r\n") == 400);
        CHECK(status_of_response("HTTP/1.1  200 OK\r\n\r\n") == 400);
        CHECK(status_of_response("http/1.1 200 OK\r\n\r\n") == 400);
        CHECK(status_of_response("HTTP/2.0 200 OK\r\n\r\n") == 505);
        CHECK(status_of_response("\r\nHTTP/1.1 200 OK\r\n\r\n") == 400);
        CHECK(status_of_response("HTTP/1.1 200 OK\nContent-Length: 0\n\n") == 400);
        CHECK(status_of_response("HTTP/1.1 200 OK\r\nX : y\r\n\r\n") == 400);
        CHECK(status_of_response("HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n") == 400);
        CHECK(status_of_response(
                  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n") == 400);
        CHECK(status_of_response("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n") == 400);
        CHECK(status_of_response(
                  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n") == 400);
        CHECK(status_of_response("HTTP/1.1 200 O\x01K\r\n\r\n") == 400);
    }

    TEST_CASE("a response split at every byte parses to the same head as in one piece") {
        const std::vector<std::string> messages = {
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n\r\nhello",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            "HTTP/1.0 404 Not Found\r\nConnection: keep-alive\r\nTransfer-Encoding: "
            "chunked\r\n\r\n0\r\n\r\n",
            "HTTP/1.1 200\r\n\r\nrest",
        };
        for (const auto& msg : messages) {
            CAPTURE(msg);
            response_parser whole;
            REQUIRE(whole.parse(msg) == parse_status::complete);
            response_parser split;
            for (std::size_t i = 1; i < whole.head_size(); ++i)
                REQUIRE(split.parse(std::string_view(msg).substr(0, i)) == parse_status::need_more);
            REQUIRE(split.parse(msg) == parse_status::complete);
            const auto& a = split.head();
            const auto& b = whole.head();
            CHECK(split.head_size() == whole.head_size());
            CHECK(a.status == b.status);
            CHECK(a.reason == b.reason);
            CHECK(a.version_minor == b.version_minor);
            CHECK(a.body == b.body);
            CHECK(a.content_length == b.content_length);
            CHECK(a.keep_alive == b.keep_alive);
            REQUIRE(a.headers.size() == b.headers.size());
            for (std::size_t i = 0; i < a.headers.size(); ++i) {
                CHECK(a.headers.fields()[i].name == b.headers.fields()[i].name);
                CHECK(a.headers.fields()[i].value == b.headers.fields()[i].value);
            }
        }
    }

    TEST_CASE("reset and a 100 Continue then the final response on one buffer") {
        const std::string buf =
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
        response_parser p;
        REQUIRE(p.parse(buf) == parse_status::complete);
        CHECK(p.head().status == 100);
        std::string_view rest = std::string_view(buf).substr(p.head_size());
        p.reset();
        REQUIRE(p.parse(rest) == parse_status::complete);
        CHECK(p.head().status == 201);
        CHECK(rest.substr(p.head_size()) == "ok");
    }

    TEST_CASE("limits apply to responses: head bytes, field count, body size") {
        parser_limits limits;
        limits.max_header_bytes = 64;
        limits.max_header_count = 2;
        limits.max_body_size = 10;
        {
            response_parser p(limits);
            REQUIRE(p.parse("HTTP/1.1 200 OK\r\nX: " + std::string(60, 'a') + "\r\n\r\n") ==
                    parse_status::error);
            CHECK(status_of(p.error()) == 431);
        }
        {
            response_parser p(limits);
            REQUIRE(p.parse("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n") ==
                    parse_status::error);
            CHECK(status_of(p.error()) == 431);
        }
        {
            response_parser p(limits);
            REQUIRE(p.parse("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n") ==
                    parse_status::error);
            CHECK(status_of(p.error()) == 413);
        }
        {
            response_parser p(limits);
            CHECK(p.parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n") ==
                  parse_status::complete);
        }
    }

} // TEST_SUITE
