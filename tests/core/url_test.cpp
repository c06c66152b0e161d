#include <coronet/core/url.hpp>

#include <doctest/doctest.h>

#include <ostream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace core = coronet::core;

namespace {

/// Parses `text`, which must be accepted.
core::url parsed(const std::string& text) {
    CAPTURE(text);
    auto u = core::url::parse(text);
    REQUIRE_MESSAGE(u, u.error().message());
    return std::move(*u);
}

} // namespace

TEST_SUITE("core.url") {

    TEST_CASE("each known scheme gets its default port and a URL without a path gets /") {
        const std::vector<std::pair<std::string, std::uint16_t>> cases = {
            {"http://example.com", 80},
            {"https://example.com", 443},
            {"ws://example.com", 80},
            {"wss://example.com", 443}};
        for (const auto& [text, port] : cases) {
            core::url u = parsed(text);
            CHECK(u.host == "example.com");
            CHECK(u.port == port);
            CHECK(u.target == "/");
            CHECK(core::default_port(u.scheme) == port);
        }
        CHECK(core::default_port("HTTPS") == 443);
        CHECK(core::default_port("ftp") == 0);
    }

    TEST_CASE("the scheme is lower-cased and the host keeps its case") {
        core::url u = parsed("HtTpS://Example.COM/A");
        CHECK(u.scheme == "https");
        CHECK(u.host == "Example.COM");
        CHECK(u.target == "/A");
    }

    TEST_CASE("explicit ports, bracketed IPv6 literals with zones and a query without a path") {
        core::url a = parsed("ws://127.0.0.1:8080/chat?room=1");
        CHECK(a.host == "127.0.0.1");
        CHECK(a.port == 8080);
        CHECK(a.target == "/chat?room=1");
        core::url b = parsed("https://[::1]:8443/v6");
        CHECK(b.host == "::1");
        CHECK(b.port == 8443);
        core::url c = parsed("wss://[fe80::1%25eth0]/");
        CHECK(c.host == "fe80::1%25eth0");
        CHECK(c.port == 443);
        core::url d = parsed("http://h?x=1");
        CHECK(d.target == "/?x=1");
        core::url e = parsed("http://h:65535");
        CHECK(e.port == 65535);
    }

    TEST_CASE("an empty port after the colon means the scheme's default") {
        CHECK(parsed("http://h:/p").port == 80);
        CHECK(parsed("wss://[::1]:").port == 443);
    }

    TEST_CASE("the fragment is dropped wherever it starts") {
        core::url a = parsed("ws://h/p?q=1#frag");
        CHECK(a.target == "/p?q=1");
        core::url b = parsed("ws://h:81#frag");
        CHECK(b.host == "h");
        CHECK(b.port == 81);
        CHECK(b.target == "/");
    }

    TEST_CASE("another scheme is parsed when the URL names its port") {
        core::url u = parsed("tcp+tls://relay.example:7000");
        CHECK(u.scheme == "tcp+tls");
        CHECK(u.port == 7000);
        CHECK_FALSE(u.secure());
        CHECK(u.authority() == "relay.example:7000");
    }

    TEST_CASE("secure() is true for https and wss only") {
        CHECK(parsed("https://h").secure());
        CHECK(parsed("wss://h").secure());
        CHECK_FALSE(parsed("http://h").secure());
        CHECK_FALSE(parsed("ws://h").secure());
    }

    TEST_CASE("authority() brackets IPv6 literals and names the port only when not the default") {
        CHECK(parsed("http://h/").authority() == "h");
        CHECK(parsed("http://h:80/").authority() == "h");
        CHECK(parsed("http://h:8080/").authority() == "h:8080");
        CHECK(parsed("wss://[::1]/").authority() == "[::1]");
        CHECK(parsed("wss://[::1]:9443/").authority() == "[::1]:9443");
        CHECK(parsed("https://h:80/").authority() == "h:80");
    }

    TEST_CASE("malformed URLs are refused with the error of the part at fault") {
        const std::vector<std::pair<std::string, core::url_errc>> cases = {
            {"h/path", core::url_errc::bad_scheme},
            {"http:/h", core::url_errc::bad_scheme},
            {"://h", core::url_errc::bad_scheme},
            {"1http://h", core::url_errc::bad_scheme},
            {"ht tp://h", core::url_errc::bad_scheme},
            {"http://", core::url_errc::bad_host},
            {"http:///path", core::url_errc::bad_host},
            {"http://:80/", core::url_errc::bad_host},
            {"http://[]:80/", core::url_errc::bad_host},
            {"http://[::1/", core::url_errc::bad_host},
            {"http://[::1]x/", core::url_errc::bad_host},
            {"http://[::1]]/", core::url_errc::bad_host},
            {"http://[g::1]/", core::url_errc::bad_host},
            {"http://::1/", core::url_errc::bad_host},
            {"http://user@h/", core::url_errc::bad_host},
            {"http://user:pw@h/", core::url_errc::bad_host},
            {"http://a b/", core::url_errc::bad_host},
            {"http://h\r\nX: y/", core::url_errc::bad_host},
            {"http://h\tx/", core::url_errc::bad_host},
            {"http://h\"/", core::url_errc::bad_host},
            {"http://h:0/", core::url_errc::bad_port},
            {"http://h:65536/", core::url_errc::bad_port},
            {"http://h:99999999999/", core::url_errc::bad_port},
            {"http://h:-1/", core::url_errc::bad_port},
            {"http://h:8a/", core::url_errc::bad_port},
            {"http://h: 80/", core::url_errc::bad_port},
            {"ftp://h/", core::url_errc::bad_port}};
        for (const auto& [text, why] : cases) {
            CAPTURE(text);
            auto u = core::url::parse(text);
            REQUIRE_FALSE(u);
            CHECK(u.error() == why);
        }
    }

    TEST_CASE("url errors have their own category and compare equal to invalid_argument") {
        std::error_code ec = core::url_errc::bad_port;
        CHECK(std::string(ec.category().name()) == "coronet.core.url");
        CHECK(ec == std::errc::invalid_argument);
        CHECK(ec.message().find("port") != std::string::npos);
        CHECK(std::error_code(core::url_errc::bad_scheme) != std::error_code(ec));
    }
}
