#include <coronet/http/parser.hpp>

#include <doctest/doctest.h>

#include <ostream> // doctest prints std::error_code through it
#include <string>
#include <string_view>
#include <vector>

using namespace coronet::http;
using namespace std::string_literals;

namespace {

// Parses `msg` in one call; returns the final status.
parse_status parse_once(request_parser& p, std::string_view msg) {
    return p.parse(msg);
}

// Feeds growing prefixes of `msg` to one parser, as the server does while bytes arrive. Every
// prefix short of the verdict must answer need_more. Returns the final status.
parse_status parse_growing(request_parser& p, std::string_view msg) {
    parse_status st = parse_status::need_more;
    for (std::size_t i = 1; i <= msg.size(); ++i) {
        st = p.parse(msg.substr(0, i));
        if (st != parse_status::need_more)
            break;
    }
    return st;
}

void check_same_head(const request_head& a, const request_head& b) {
    CHECK(a.method == b.method);
    CHECK(a.target == b.target);
    CHECK(a.path == b.path);
    CHECK(a.query == b.query);
    CHECK(a.version_minor == b.version_minor);
    CHECK(a.body == b.body);
    CHECK(a.content_length == b.content_length);
    CHECK(a.keep_alive == b.keep_alive);
    CHECK(a.upgrade == b.upgrade);
    CHECK(a.expect_continue == b.expect_continue);
    REQUIRE(a.headers.size() == b.headers.size());
    for (std::size_t i = 0; i < a.headers.size(); ++i) {
        CHECK(a.headers.fields()[i].name == b.headers.fields()[i].name);
        CHECK(a.headers.fields()[i].value == b.headers.fields()[i].value);
    }
}

bool points_into(std::string_view view, std::string_view buf) {
    return view.data() >= buf.data() && view.data() + view.size() <= buf.data() + buf.size();
}

struct malformed_case {
    const char* name;
    std::string request;
    int status;
};

// Requests every server must refuse, with the status coronet answers. Mirrors (and extends)
// the rejected half of tests/http/differential/corpus.txt.
std::vector<malformed_case> malformed_requests() {
    const std::string h = "Host: a\r\n";
    const std::string chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n";
    return {
        {"missing Host on HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
        {"two Host lines", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"Host with a path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
        {"Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400},
        {"Content-Length twice, different",
         "POST / HTTP/1.1\r\n" + h + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
        {"Content-Length twice, same",
         "POST / HTTP/1.1\r\n" + h + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 400},
        {"Content-Length list", "POST / HTTP/1.1\r\n" + h + "Content-Length: 5, 5\r\n\r\n", 400},
        {"Content-Length negative", "POST / HTTP/1.1\r\n" + h + "Content-Length: -1\r\n\r\n", 400},
        {"Content-Length with a sign", "POST / HTTP/1.1\r\n" + h + "Content-Length: +5\r\n\r\n",
         400},
        {"Content-Length in hex", "POST / HTTP/1.1\r\n" + h + "Content-Length: 0x5\r\n\r\n", 400},
        {"Content-Length empty", "POST / HTTP/1.1\r\n" + h + "Content-Length:\r\n\r\n", 400},
        {"Content-Length over 64 bits",
         "POST / HTTP/1.1\r\n" + h + "Content-Length: 18446744073709551621\r\n\r\n", 400},
        {"CL.TE smuggling",
         "POST / HTTP/1.1\r\n" + h + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n",
         400},
        {"TE.CL smuggling", chunked + "Content-Length: 5\r\n\r\n", 400},
        {"Transfer-Encoding gzip", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip\r\n\r\n",
         400},
        {"Transfer-Encoding gzip, chunked",
         "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501},
        {"Transfer-Encoding chunked, gzip",
         "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400},
        {"Transfer-Encoding xchunked",
         "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: xchunked\r\n\r\n", 400},
        {"Transfer-Encoding chunked twice in a list",
         "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, chunked\r\n\r\n", 400},
        {"Transfer-Encoding chunked in two lines", chunked + "Transfer-Encoding: chunked\r\n\r\n",
         400},
        {"Transfer-Encoding empty", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding:\r\n\r\n", 400},
        {"Transfer-Encoding with a trailing comma",
         "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked,\r\n\r\n", 400},
        {"Transfer-Encoding on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
         400},
        {"Transfer-Encoding with SP before the colon",
         "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding : chunked\r\n\r\n", 400},
        {"Transfer-Encoding folded",
         "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding:\r\n chunked\r\n\r\n", 400},
        {"Transfer-Encoding after a vertical tab",
         "POST / HTTP/1.1\r\n" + h +
             "Transfer-Encoding:\x0b"
             "chunked\r\n\r\n",
         400},
        {"SP before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
        {"HTAB before the colon", "GET / HTTP/1.1\r\n" + h + "X\t: b\r\n\r\n", 400},
        {"whitespace line after the request line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400},
        {"obs-fold", "GET / HTTP/1.1\r\n" + h + "X: a\r\n b\r\n\r\n", 400},
        {"obs-fold with HTAB", "GET / HTTP/1.1\r\n" + h + "X: a\r\n\tb\r\n\r\n", 400},
        {"field line without a colon", "GET / HTTP/1.1\r\n" + h + "X-No-Colon\r\n\r\n", 400},
        {"empty field name", "GET / HTTP/1.1\r\n" + h + ": a\r\n\r\n", 400},
        {"separator in a field name", "GET / HTTP/1.1\r\n" + h + "X(y): a\r\n\r\n", 400},
        {"NUL in a field name", "GET / HTTP/1.1\r\n" + h + "X\0: a\r\n\r\n"s, 400},
        {"NUL in a field value", "GET / HTTP/1.1\r\n" + h + "X: a\0b\r\n\r\n"s, 400},
        {"DEL in a field value",
         "GET / HTTP/1.1\r\n" + h +
             "X: a\x7f"
             "b\r\n\r\n",
         400},
        {"bare CR in a field value", "GET / HTTP/1.1\r\n" + h + "X: a\rb\r\n\r\n", 400},
        {"bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n", 400},
        {"one bare LF in the head", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400},
        {"bare CR in the request line", "GET /\r HTTP/1.1\r\n" + h + "\r\n", 400},
        {"separator in the method", "GE(T / HTTP/1.1\r\n" + h + "\r\n", 400},
        {"empty method", " / HTTP/1.1\r\n" + h + "\r\n", 400},
        {"two SP in the request line", "GET  / HTTP/1.1\r\n" + h + "\r\n", 400},
        {"SP after the version", "GET / HTTP/1.1 \r\n" + h + "\r\n", 400},
        {"HTAB as the request-line separator", "GET\t/\tHTTP/1.1\r\n" + h + "\r\n", 400},
        {"no version (HTTP/0.9)", "GET /\r\n" + h + "\r\n", 400},
        {"lowercase version", "GET / http/1.1\r\n" + h + "\r\n", 400},
        {"HTTP/1.10", "GET / HTTP/1.10\r\n" + h + "\r\n", 400},
        {"HTTP/1.x", "GET / HTTP/1.x\r\n" + h + "\r\n", 400},
        {"HTTP/2.0", "GET / HTTP/2.0\r\n" + h + "\r\n", 505},
        {"HTTP/0.9", "GET / HTTP/0.9\r\n" + h + "\r\n", 505},
        {"HTTP/3.1", "GET / HTTP/3.1\r\n" + h + "\r\n", 505},
        {"fragment in the target", "GET /a#b HTTP/1.1\r\n" + h + "\r\n", 400},
        {"non-ASCII target", "GET /caf\xe9 HTTP/1.1\r\n" + h + "\r\n", 400},
        {"bad percent-encoding", "GET /%zz HTTP/1.1\r\n" + h + "\r\n", 400},
        {"truncated percent-encoding", "GET /a% HTTP/1.1\r\n" + h + "\r\n", 400},
        {"backslash in the target", "GET /a\\b HTTP/1.1\r\n" + h + "\r\n", 400},
        {"NUL in the target", "GET /\0 HTTP/1.1\r\n"s + h + "\r\n", 400},
        {"asterisk-form on GET", "GET * HTTP/1.1\r\n" + h + "\r\n", 400},
        {"relative target", "GET a/b HTTP/1.1\r\n" + h + "\r\n", 400},
        {"authority-form on GET", "GET example.com:80 HTTP/1.1\r\n" + h + "\r\n", 400},
        {"absolute-form without an authority", "GET http:///x HTTP/1.1\r\n" + h + "\r\n", 400},
        {"absolute-form with a bad scheme", "GET 1http://a/ HTTP/1.1\r\n" + h + "\r\n", 400},
        {"CONNECT without a port", "CONNECT example.com HTTP/1.1\r\n" + h + "\r\n", 400},
        {"CONNECT with port 65536", "CONNECT example.com:65536 HTTP/1.1\r\n" + h + "\r\n", 400},
        {"Expect other than 100-continue", "GET / HTTP/1.1\r\n" + h + "Expect: 200-ok\r\n\r\n",
         417},
        {"request line over 8 KiB", "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n" + h + "\r\n",
         414},
        {"head over 64 KiB",
         "GET / HTTP/1.1\r\n" + h + "X: " + std::string(70000, 'a') + "\r\n\r\n", 431},
        {"101 field lines",
         "GET / HTTP/1.1\r\n" +
             [] {
                 std::string s;
                 for (int i = 0; i < 101; ++i)
                     s += "X-" + std::to_string(i) + ": v\r\n";
                 return s;
             }() +
             "\r\n",
         431},
        {"Content-Length over 8 MiB", "POST / HTTP/1.1\r\n" + h + "Content-Length: 8388609\r\n\r\n",
         413},
    };
}

} // namespace

TEST_SUITE("http.request_parser") {

    TEST_CASE("the RFC 9112 origin-form example parses into method, path, query and Host") {
        // RFC 9112 §3.2.1.
        const std::string msg = "GET /where?q=now HTTP/1.1\r\nHost: www.example.org\r\n\r\n";
        request_parser p;
        REQUIRE(p.parse(msg) == parse_status::complete);
        const auto& h = p.head();
        CHECK(h.method == "GET");
        CHECK(h.target == "/where?q=now");
        CHECK(h.path == "/where");
        CHECK(h.query == "q=now");
        CHECK(h.version_minor == 1);
        CHECK(h.headers.get("host") == "www.example.org");
        CHECK(h.body == body_kind::none);
        CHECK(h.keep_alive);
        CHECK(p.head_size() == msg.size());
    }

    TEST_CASE("the RFC 9110 curl example keeps every field in order") {
        // RFC 9110 §6 (and RFC 9112 §1) message example.
        const std::string msg =
            "GET /hello.txt HTTP/1.1\r\nUser-Agent: curl/7.64.1\r\nHost: www.example.com\r\n"
            "Accept-Language: en, mi\r\n\r\n";
        request_parser p;
        REQUIRE(p.parse(msg) == parse_status::complete);
        const auto& f = p.head().headers.fields();
        REQUIRE(f.size() == 3);
        CHECK(f[0].name == "User-Agent");
        CHECK(f[0].value == "curl/7.64.1");
        CHECK(f[1].name == "Host");
        CHECK(f[2].value == "en, mi");
        CHECK(list_contains(p.head().headers.get("accept-language"), "mi"));
    }

    TEST_CASE("the RFC 9112 absolute-form example yields the path and query of the URI") {
        // RFC 9112 §3.2.2.
        const std::string msg = "GET http://www.example.org/pub/WWW/TheProject.html?x=1 "
                                "HTTP/1.1\r\nHost: www.example.org\r\n\r\n";
        request_parser p;
        REQUIRE(p.parse(msg) == parse_status::complete);
        CHECK(p.head().target == "http://www.example.org/pub/WWW/TheProject.html?x=1");
        CHECK(p.head().path == "/pub/WWW/TheProject.html");
        CHECK(p.head().query == "x=1");

        request_parser bare;
        REQUIRE(bare.parse("GET http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n") ==
                parse_status::complete);
        CHECK(bare.head().path == "/");
    }

    TEST_CASE("the RFC 9112 authority-form and asterisk-form examples parse") {
        SUBCASE("CONNECT www.example.com:80 (§3.2.3)") {
            request_parser p;
            REQUIRE(
                p.parse(
                    "CONNECT www.example.com:80 HTTP/1.1\r\nHost: www.example.com:80\r\n\r\n") ==
                parse_status::complete);
            CHECK(p.head().method == "CONNECT");
            CHECK(p.head().target == "www.example.com:80");
        }
        SUBCASE("OPTIONS * (§3.2.4)") {
            request_parser p;
            REQUIRE(p.parse("OPTIONS * HTTP/1.1\r\nHost: www.example.org:8001\r\n\r\n") ==
                    parse_status::complete);
            CHECK(p.head().target == "*");
            CHECK(p.head().path == "*");
        }
    }

    TEST_CASE("every view of the head points into the caller's buffer") {
        const std::string msg = "POST /p?q HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
        request_parser p;
        REQUIRE(p.parse(msg) == parse_status::complete);
        const auto& h = p.head();
        CHECK(points_into(h.method, msg));
        CHECK(points_into(h.target, msg));
        CHECK(points_into(h.path, msg));
        CHECK(points_into(h.query, msg));
        for (const auto& f : h.headers.fields()) {
            CHECK(points_into(f.name, msg));
            CHECK(points_into(f.value, msg));
        }
        CHECK(h.body == body_kind::content_length);
        CHECK(h.content_length == 3);
        CHECK(msg.substr(p.head_size()) == "abc");
    }

    TEST_CASE("an incomplete head is need_more, not an error, until its blank line arrives") {
        request_parser p;
        std::string buf = "GET / HTTP/1.1\r\nHost: a\r\n";
        CHECK(p.parse(buf) == parse_status::need_more);
        CHECK_FALSE(p.error());
        buf += "\r";
        CHECK(p.parse(buf) == parse_status::need_more);
        buf += "\n";
        CHECK(p.parse(buf) == parse_status::complete);
        CHECK(p.parse(buf) == parse_status::complete); // idempotent once complete
    }

    TEST_CASE("a request split at every byte parses to the same head as in one piece") {
        const std::vector<std::string> messages = {
            "GET /where?q=now HTTP/1.1\r\nHost: www.example.org\r\n\r\n",
            "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: "
            "100-continue\r\n\r\nhello",
            "POST / HTTP/1.1\r\nhost: a\r\nTransfer-Encoding: chunked\r\nX: 1\r\nX: "
            "2\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, "
            "Upgrade\r\n\r\n",
            "GET http://a.example/x?y HTTP/1.0\r\nConnection: keep-alive\r\nX:\t v \t\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        };
        for (const auto& msg : messages) {
            CAPTURE(msg);
            request_parser whole;
            REQUIRE(whole.parse(msg) == parse_status::complete);
            request_parser split;
            for (std::size_t i = 1; i < whole.head_size(); ++i)
                REQUIRE(split.parse(std::string_view(msg).substr(0, i)) == parse_status::need_more);
            // The final call gets every byte received so far, body included.
            REQUIRE(split.parse(msg) == parse_status::complete);
            CHECK(split.head_size() == whole.head_size());
            check_same_head(split.head(), whole.head());
        }
    }

    TEST_CASE("a malformed or smuggling request is refused with its status") {
        const auto table = malformed_requests();
        CHECK(table.size() >= 40);
        for (const auto& row : table) {
            INFO(row.name);
            request_parser p;
            REQUIRE(parse_once(p, row.request) == parse_status::error);
            CHECK(status_of(p.error()) == row.status);
            CHECK(p.parse(row.request) == parse_status::error); // an error is final
        }
    }

    TEST_CASE("a malformed request split at every byte is refused with the same error") {
        for (const auto& row : malformed_requests()) {
            INFO(row.name);
            request_parser whole;
            (void)parse_once(whole, row.request);
            request_parser split;
            CHECK(parse_growing(split, row.request) == parse_status::error);
            CHECK(split.error() == whole.error());
        }
    }

    TEST_CASE("repeated fields are kept in order and looked up case-insensitively") {
        const std::string msg = "GET / HTTP/1.1\r\nHost: a\r\nAccept: text/html\r\nX-Trace: "
                                "1\r\naccept: application/json\r\n"
                                "ACCEPT: */*\r\n\r\n";
        request_parser p;
        REQUIRE(p.parse(msg) == parse_status::complete);
        const auto& h = p.head().headers;
        CHECK(h.size() == 5);
        CHECK(h.count("Accept") == 3);
        CHECK(h.count("aCcEpT") == 3);
        CHECK(h.get("ACCEPT") == "text/html"); // the first one
        std::vector<std::string_view> accepts;
        for (const auto& f : h.fields())
            if (iequals(f.name, "accept"))
                accepts.push_back(f.value);
        CHECK(accepts == std::vector<std::string_view>{"text/html", "application/json", "*/*"});
        CHECK(h.fields()[3].name == "accept"); // names as sent
        CHECK(h.contains("x-trace"));
        bool found = true;
        CHECK(h.get("x-missing", &found).empty());
        CHECK_FALSE(found);
    }

    TEST_CASE("field values lose surrounding whitespace and keep inner whitespace") {
        request_parser p;
        REQUIRE(p.parse("GET / HTTP/1.1\r\nHost:a\r\nX: \t a  b \t\r\nY:\r\nZ: caf\xe9\r\n\r\n") ==
                parse_status::complete);
        const auto& h = p.head().headers;
        CHECK(h.get("host") == "a");
        CHECK(h.get("x") == "a  b");
        bool found = false;
        CHECK(h.get("y", &found).empty());
        CHECK(found);
        CHECK(h.get("z") == "caf\xe9"); // obs-text is allowed in values (RFC 9110 §5.5)
    }

    TEST_CASE("the body kind and length follow RFC 9112 section 6") {
        SUBCASE("no framing headers: no body") {
            request_parser p;
            REQUIRE(p.parse("POST / HTTP/1.1\r\nHost: a\r\n\r\n") == parse_status::complete);
            CHECK(p.head().body == body_kind::none);
        }
        SUBCASE("Content-Length: 0: no body") {
            request_parser p;
            REQUIRE(p.parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n") ==
                    parse_status::complete);
            CHECK(p.head().body == body_kind::none);
        }
        SUBCASE("Content-Length with leading zeros") {
            request_parser p;
            REQUIRE(p.parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0042\r\n\r\n") ==
                    parse_status::complete);
            CHECK(p.head().body == body_kind::content_length);
            CHECK(p.head().content_length == 42);
        }
        SUBCASE("Transfer-Encoding: chunked, any case") {
            request_parser p;
            REQUIRE(p.parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n") ==
                    parse_status::complete);
            CHECK(p.head().body == body_kind::chunked);
        }
    }

    TEST_CASE("keep-alive, upgrade and 100-continue are read from the head") {
        SUBCASE("HTTP/1.1 persists unless Connection: close") {
            request_parser a;
            REQUIRE(a.parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n") ==
                    parse_status::complete);
            CHECK_FALSE(a.head().keep_alive);
        }
        SUBCASE("HTTP/1.0 closes unless Connection: keep-alive") {
            request_parser a;
            REQUIRE(a.parse("GET / HTTP/1.0\r\n\r\n") == parse_status::complete);
            CHECK(a.head().version_minor == 0);
            CHECK_FALSE(a.head().keep_alive);
            request_parser b;
            REQUIRE(b.parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") ==
                    parse_status::complete);
            CHECK(b.head().keep_alive);
        }
        SUBCASE("upgrade needs both Upgrade and Connection: upgrade") {
            request_parser a;
            REQUIRE(a.parse("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: "
                            "Upgrade\r\n\r\n") == parse_status::complete);
            CHECK(a.head().upgrade);
            request_parser b;
            REQUIRE(b.parse("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n") ==
                    parse_status::complete);
            CHECK_FALSE(b.head().upgrade);
        }
        SUBCASE("Expect: 100-continue, and an HTTP/1.0 Expect is ignored (RFC 9110 §10.1.1)") {
            request_parser a;
            REQUIRE(a.parse("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: "
                            "1\r\n\r\n") == parse_status::complete);
            CHECK(a.head().expect_continue);
            request_parser b;
            REQUIRE(b.parse("GET / HTTP/1.0\r\nExpect: whatever\r\n\r\n") ==
                    parse_status::complete);
            CHECK_FALSE(b.head().expect_continue);
        }
        SUBCASE("HTTP/1.2 is served as HTTP/1.1 (RFC 9110 §2.5)") {
            request_parser a;
            REQUIRE(a.parse("GET / HTTP/1.2\r\nHost: a\r\n\r\n") == parse_status::complete);
            CHECK(a.head().version_minor == 1);
        }
    }

    TEST_CASE("Host may be an IP literal with a port, or empty (RFC 9112 section 3.2)") {
        request_parser a;
        REQUIRE(a.parse("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n") == parse_status::complete);
        CHECK(a.head().headers.get("host") == "[::1]:8080");
        request_parser b;
        REQUIRE(b.parse("GET / HTTP/1.1\r\nHost:\r\n\r\n") == parse_status::complete);
        CHECK(b.head().headers.get("host").empty());
    }

    TEST_CASE("an extension or lowercase method is a valid token, left to the router") {
        request_parser a;
        REQUIRE(a.parse("PURGEX / HTTP/1.1\r\nHost: a\r\n\r\n") == parse_status::complete);
        CHECK(a.head().method == "PURGEX");
        request_parser b;
        REQUIRE(b.parse("get / HTTP/1.1\r\nHost: a\r\n\r\n") == parse_status::complete);
        CHECK(b.head().method == "get"); // methods are case-sensitive (RFC 9110 §9.1)
    }

    TEST_CASE("reset parses the next pipelined request from the bytes after the head") {
        const std::string buf =
            "GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: b\r\nX: y\r\n\r\n";
        request_parser p;
        REQUIRE(p.parse(buf) == parse_status::complete);
        CHECK(p.head().path == "/one");
        std::string_view rest = std::string_view(buf).substr(p.head_size());
        p.reset();
        REQUIRE(p.parse(rest) == parse_status::complete);
        CHECK(p.head().path == "/two");
        CHECK(p.head().headers.size() == 2);
        CHECK(p.head_size() == rest.size());
    }

    TEST_CASE("limits: the request line may be exactly max_request_line bytes, one more is 414") {
        parser_limits limits;
        limits.max_request_line = 64;
        const std::string prefix = "GET /";
        const std::string suffix = " HTTP/1.1\r\n";
        const std::string fits =
            prefix + std::string(64 - prefix.size() - suffix.size(), 'a') + suffix;
        REQUIRE(fits.size() == 64);
        request_parser ok(limits);
        CHECK(ok.parse(fits + "Host: a\r\n\r\n") == parse_status::complete);

        const std::string over =
            prefix + std::string(65 - prefix.size() - suffix.size(), 'a') + suffix;
        request_parser bad(limits);
        REQUIRE(bad.parse(over + "Host: a\r\n\r\n") == parse_status::error);
        CHECK(status_of(bad.error()) == 414);
    }

    TEST_CASE("limits: a request line over the limit is refused before its CRLF arrives") {
        parser_limits limits;
        limits.max_request_line = 32;
        request_parser p(limits);
        std::string buf = "GET /";
        buf += std::string(27, 'a'); // 32 bytes, still no CRLF: may yet fit
        CHECK(p.parse(buf) == parse_status::need_more);
        buf += 'a';
        REQUIRE(p.parse(buf) == parse_status::error);
        CHECK(status_of(p.error()) == 414);
    }

    TEST_CASE("limits: the head byte limit counts the whole head and answers 431") {
        parser_limits limits;
        limits.max_header_bytes = 100;
        const std::string start = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
        const std::string end = "\r\n\r\n";
        const std::string fits = start + std::string(100 - start.size() - end.size(), 'v') + end;
        REQUIRE(fits.size() == 100);
        request_parser ok(limits);
        CHECK(ok.parse(fits) == parse_status::complete);

        request_parser whole(limits);
        REQUIRE(whole.parse(start + std::string(100, 'v') + end) == parse_status::error);
        CHECK(status_of(whole.error()) == 431);

        // Without the blank line the parser gives up as soon as the head is too big.
        const std::string endless = start + std::string(80, 'v');
        request_parser growing(limits);
        CHECK(growing.parse(std::string_view(endless).substr(0, 100)) == parse_status::need_more);
        REQUIRE(growing.parse(endless) == parse_status::error);
        CHECK(status_of(growing.error()) == 431);
    }

    TEST_CASE("limits: max_header_count field lines are allowed, one more is 431") {
        parser_limits limits;
        limits.max_header_count = 3;
        request_parser ok(limits);
        CHECK(ok.parse("GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\n\r\n") ==
              parse_status::complete);
        request_parser bad(limits);
        REQUIRE(bad.parse("GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD: 3\r\n\r\n") ==
                parse_status::error);
        CHECK(status_of(bad.error()) == 431);
    }

    TEST_CASE("limits: a Content-Length over max_body_size is 413 before any body byte") {
        parser_limits limits;
        limits.max_body_size = 1000;
        request_parser ok(limits);
        REQUIRE(ok.parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n") ==
                parse_status::complete);
        CHECK(ok.head().content_length == 1000);
        request_parser bad(limits);
        REQUIRE(bad.parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n") ==
                parse_status::error);
        CHECK(status_of(bad.error()) == 413);
    }

    TEST_CASE("limits: endless empty lines before the request line are refused") {
        parser_limits limits;
        limits.max_header_bytes = 64;
        request_parser p(limits);
        std::string buf;
        parse_status st = parse_status::need_more;
        for (int i = 0; i < 100 && st == parse_status::need_more; ++i) {
            buf += "\r\n";
            st = p.parse(buf);
        }
        CHECK(st == parse_status::error);
        CHECK(buf.size() <= 70);
    }

    // Found by the fuzz campaign: CONNECT must name host:port (RFC 9112 §3.2.3).
    TEST_CASE("a CONNECT with an origin-form target is refused with 400") {
        request_parser p;
        CHECK(p.parse("CONNECT / HTTP/1.1\r\nHost: x\r\n\r\n") == parse_status::error);
        CHECK(status_of(p.error()) == 400);
    }

    TEST_CASE("a parser reset or made after another lists only its own request's fields") {
        const std::string five =
            "GET /a HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
        const std::string two = "GET /b HTTP/1.1\r\nHost: b\r\nE: 5\r\n\r\n";
        const std::string none = "GET /c HTTP/1.0\r\n\r\n";
        request_parser p;
        REQUIRE(parse_once(p, five) == parse_status::complete);
        CHECK(p.head().headers.size() == 5);
        p.reset();
        REQUIRE(parse_once(p, two) == parse_status::complete);
        REQUIRE(p.head().headers.size() == 2);
        CHECK(p.head().headers.fields()[1].name == "E");
        CHECK(p.head().headers.get("a").empty());
        {
            // A parser that goes away leaves its storage to the next one: it must come empty.
            request_parser gone;
            REQUIRE(parse_once(gone, five) == parse_status::complete);
        }
        request_parser next;
        REQUIRE(parse_once(next, two) == parse_status::complete);
        REQUIRE(next.head().headers.size() == 2);
        CHECK(next.head().headers.fields()[0].value == "b");
        CHECK(next.head().headers.fields()[1].value == "5");
        request_parser empty;
        REQUIRE(parse_once(empty, none) == parse_status::complete);
        CHECK(empty.head().headers.size() == 0);
        request_parser copy = next;
        CHECK(copy.head().headers.size() == 2);
    }

    TEST_CASE("rebase moves every view of the head with its bytes, and only those") {
        const std::string msg = "GET /p/a?q=1 HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\r\nbody";
        std::string first = msg;
        request_parser p;
        REQUIRE(parse_once(p, first) == parse_status::complete);
        std::string second = msg; // the same bytes elsewhere
        first.assign(first.size(), '#');
        p.rebase(first.data(), second.data());
        const request_head& h = p.head();
        CHECK(h.method == "GET");
        CHECK(h.target == "/p/a?q=1");
        CHECK(h.path == "/p/a");
        CHECK(h.query == "q=1");
        CHECK(h.headers.get("x-a") == "one");
        CHECK(h.headers.get("host") == "h");
        const char* lo = second.data();
        const char* hi = second.data() + second.size();
        for (std::string_view v : {h.method, h.target, h.path, h.query})
            CHECK((v.data() >= lo && v.data() < hi));

        // An absolute-form target without a path gets a "/" of the parser's own: it stays.
        std::string abs = "GET http://example.org HTTP/1.1\r\nHost: example.org\r\n\r\n";
        request_parser q;
        REQUIRE(parse_once(q, abs) == parse_status::complete);
        std::string abs2 = abs;
        q.rebase(abs.data(), abs2.data());
        abs.assign(abs.size(), '#');
        CHECK(q.head().path == "/");
        CHECK(q.head().target == "http://example.org");
        CHECK(q.head().headers.get("host") == "example.org");
    }

} // TEST_SUITE
