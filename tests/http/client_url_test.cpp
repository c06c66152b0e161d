#include <coronet/http/client.hpp>

#include <coronet/core/url.hpp>
#include <coronet/http/error.hpp>

#include <doctest/doctest.h>

#include <string>

namespace core = coronet::core;
namespace http = coronet::http;

TEST_SUITE("http.client") {

    TEST_CASE("url::parse fills in the default port of each scheme and the root target") {
        auto a = http::url::parse("http://example.com");
        REQUIRE(a);
        CHECK(a->scheme == "http");
        CHECK(a->host == "example.com");
        CHECK(a->port == 80);
        CHECK(a->target == "/");
        auto b = http::url::parse("https://example.com/x/y?z=1");
        REQUIRE(b);
        CHECK(b->scheme == "https");
        CHECK(b->port == 443);
        CHECK(b->target == "/x/y?z=1");
        auto c = http::url::parse("HTTP://Example.com/");
        REQUIRE(c);
        CHECK(c->scheme == "http");
    }

    TEST_CASE("url::parse reads explicit ports and IPv6 literals and a query without a path") {
        auto a = http::url::parse("http://127.0.0.1:8080/p");
        REQUIRE(a);
        CHECK(a->host == "127.0.0.1");
        CHECK(a->port == 8080);
        CHECK(a->target == "/p");
        auto b = http::url::parse("https://[::1]:8443/v6?x");
        REQUIRE(b);
        CHECK(b->host == "::1");
        CHECK(b->port == 8443);
        CHECK(b->target == "/v6?x");
        auto c = http::url::parse("http://[::1]");
        REQUIRE(c);
        CHECK(c->host == "::1");
        CHECK(c->port == 80);
        auto d = http::url::parse("http://h?x");
        REQUIRE(d);
        CHECK(d->host == "h");
        CHECK(d->target == "/?x");
        auto e = http::url::parse("http://h:65535");
        REQUIRE(e);
        CHECK(e->port == 65535);
    }

    TEST_CASE("url::parse drops the fragment since it is never sent") {
        auto a = http::url::parse("http://h/p?q=1#frag");
        REQUIRE(a);
        CHECK(a->host == "h");
        CHECK(a->target == "/p?q=1");
        auto b = http::url::parse("http://h:81#frag");
        REQUIRE(b);
        CHECK(b->host == "h");
        CHECK(b->port == 81);
        CHECK(b->target == "/");
    }

    TEST_CASE("url::parse rejects other schemes and empty hosts and bad ports and bad hosts") {
        for (const char* text : {"ftp://h/",
                                 "ws://h/",
                                 "h/path",
                                 "http:/h",
                                 "://h",
                                 "http://",
                                 "http:///path",
                                 "http://:80/",
                                 "http://[]:80/",
                                 "http://[::1/",
                                 "http://[::1]x/",
                                 "http://h:0/",
                                 "http://h:65536/",
                                 "http://h:99999999999/",
                                 "http://h:-1/",
                                 "http://h:8a/",
                                 "http://h: 80/",
                                 "http://user@h/",
                                 "http://a b/",
                                 "http://h\r\nX: y/",
                                 "http://h\r\nX/",
                                 "http://h\tx/",
                                 "http://h\"/",
                                 "http://::1/",
                                 "http://[::1]]/",
                                 "http://[g::1]/"}) {
            const std::string shown = text;
            CAPTURE(shown);
            auto u = http::url::parse(text);
            CHECK_FALSE(u);
            if (!u)
                CHECK(u.error() == http::errc::bad_request);
        }
    }

    TEST_CASE("an http::url is a core::url whose authority is the Host the client sends") {
        auto u = http::url::parse("https://[::1]:8443/x?y");
        REQUIRE(u);
        const core::url& base = *u;
        CHECK(base.secure());
        CHECK(base.authority() == "[::1]:8443");
        CHECK(base.target == "/x?y");
        auto d = http::url::parse("http://example.com:80/");
        REQUIRE(d);
        CHECK(d->authority() == "example.com");
        CHECK_FALSE(d->secure());
    }

} // TEST_SUITE
