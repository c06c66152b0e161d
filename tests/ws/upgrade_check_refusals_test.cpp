#include <coronet/ws/upgrade.hpp>

#include <coronet/core/error.hpp>
#include <coronet/ws/error.hpp>
#include <coronet/ws/handshake.hpp>

#include "upgrade_fixture.hpp"

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
using coronet::testing::run_on;
using namespace coronet::testing::upgrade_fixture;

TEST_SUITE("ws.upgrade") {

    // ---- check_upgrade: refusing

    TEST_CASE("check_upgrade refuses a method other than GET with 400") {
        check_refusal(check(rfc_fields(), {}, "POST"), 400);
        check_refusal(check(rfc_fields(), {}, "get"), 400); // methods are case-sensitive
    }

    TEST_CASE("check_upgrade refuses HTTP/1.0 with 400") {
        check_refusal(check(rfc_fields(), {}, "GET", 0), 400);
    }

    TEST_CASE("check_upgrade refuses an upgrade request that carries a body with 400") {
        // Bytes after the head are frames: a body would be frames to one reader and content to
        // another (issue 13, item 5).
        SUBCASE("Content-Length above zero") {
            check_refusal(check(plus(rfc_fields(), "Content-Length", "14")), 400);
        }
        SUBCASE("any Transfer-Encoding") {
            check_refusal(check(plus(rfc_fields(), "Transfer-Encoding", "chunked")), 400);
            check_refusal(check(plus(rfc_fields(), "transfer-encoding", "identity")), 400);
        }
        SUBCASE("a malformed or repeated Content-Length") {
            check_refusal(check(plus(rfc_fields(), "Content-Length", "")), 400);
            check_refusal(check(plus(rfc_fields(), "Content-Length", "0, 0")), 400);
            check_refusal(
                check(plus(plus(rfc_fields(), "Content-Length", "0"), "Content-Length", "0")), 400);
        }
        SUBCASE("Content-Length: 0 says there is none and is accepted") {
            CHECK(check(plus(rfc_fields(), "Content-Length", "0")).status == 101);
            CHECK(check(plus(rfc_fields(), "content-length", "00")).status == 101);
        }
    }

    TEST_CASE("check_upgrade refuses a missing or other Upgrade with 400") {
        SUBCASE("missing") {
            check_refusal(check(without(rfc_fields(), "Upgrade")), 400);
        }
        SUBCASE("h2c") {
            check_refusal(check(with(rfc_fields(), "Upgrade", "h2c")), 400);
        }
        SUBCASE("a longer token") {
            check_refusal(check(with(rfc_fields(), "Upgrade", "websocket2")), 400);
        }
        SUBCASE("empty") {
            check_refusal(check(with(rfc_fields(), "Upgrade", "")), 400);
        }
    }

    TEST_CASE("check_upgrade refuses a Connection without the upgrade token with 400") {
        SUBCASE("missing") {
            check_refusal(check(without(rfc_fields(), "Connection")), 400);
        }
        SUBCASE("keep-alive") {
            check_refusal(check(with(rfc_fields(), "Connection", "keep-alive")), 400);
        }
        SUBCASE("a token that only starts with upgrade") {
            check_refusal(check(with(rfc_fields(), "Connection", "upgrader")), 400);
        }
        SUBCASE("upgrade inside a token") {
            check_refusal(check(with(rfc_fields(), "Connection", "keep-alive upgrade")), 400);
        }
    }

    TEST_CASE("check_upgrade refuses a version other than exactly one 13 with 426") {
        SUBCASE("version 8") {
            check_refusal(check(with(rfc_fields(), "Sec-WebSocket-Version", "8")), 426);
        }
        SUBCASE("missing") {
            check_refusal(check(without(rfc_fields(), "Sec-WebSocket-Version")), 426);
        }
        SUBCASE("repeated") {
            check_refusal(check(plus(rfc_fields(), "Sec-WebSocket-Version", "13")), 426);
        }
        SUBCASE("a list") {
            check_refusal(check(with(rfc_fields(), "Sec-WebSocket-Version", "13, 8")), 426);
        }
        const auto v = check(with(rfc_fields(), "Sec-WebSocket-Version", "8"));
        CHECK(v.status == 426);
        CHECK(v.fields == fields_t{{"Sec-WebSocket-Version", "13"}}); // RFC 6455 §4.4
    }

    TEST_CASE("check_upgrade refuses a key that is not 16 bytes of base64 with 400") {
        SUBCASE("missing") {
            check_refusal(check(without(rfc_fields(), "Sec-WebSocket-Key")), 400);
        }
        SUBCASE("repeated") {
            check_refusal(check(plus(rfc_fields(), "Sec-WebSocket-Key", rfc_key)), 400);
        }
        SUBCASE("15 bytes") {
            check_refusal(check(with(rfc_fields(), "Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAA")),
                          400);
        }
        SUBCASE("17 bytes") {
            check_refusal(
                check(with(rfc_fields(), "Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAAA=")), 400);
        }
        SUBCASE("not base64") {
            check_refusal(
                check(with(rfc_fields(), "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZ!==")), 400);
        }
        SUBCASE("empty") {
            check_refusal(check(with(rfc_fields(), "Sec-WebSocket-Key", "")), 400);
        }
    }

    TEST_CASE("check_upgrade refuses a request without exactly one Host with 400") {
        // RFC 6455 §4.2.1 item 2 and RFC 9112 §3.2.
        SUBCASE("missing") {
            check_refusal(check(without(rfc_fields(), "Host")), 400);
        }
        SUBCASE("repeated") {
            check_refusal(check(plus(rfc_fields(), "Host", "evil.example")), 400);
        }
    }

    TEST_CASE("check_upgrade refuses an Origin outside the allow-list with 403") {
        server_handshake_options opts;
        opts.allowed_origins = {"https://app.example", "http://example.com"};
        SUBCASE("another origin") {
            check_refusal(check(with(rfc_fields(), "Origin", "http://evil.example"), opts), 403);
        }
        SUBCASE("no Origin") {
            check_refusal(check(without(rfc_fields(), "Origin"), opts), 403);
        }
        SUBCASE("a listed origin with a suffix") {
            check_refusal(check(with(rfc_fields(), "Origin", "http://example.com.evil"), opts),
                          403);
        }
        SUBCASE("a listed origin repeated with an unlisted one") {
            check_refusal(check(plus(rfc_fields(), "Origin", "http://evil.example"), opts), 403);
        }
        const auto v = check(with(rfc_fields(), "Origin", "null"), opts);
        CHECK(v.status == 403);
        CHECK(v.reason == "origin not allowed");
    }

    TEST_CASE("check_upgrade accepts a listed Origin case-insensitively") {
        server_handshake_options opts;
        opts.allowed_origins = {"https://app.example", "http://example.com"};
        CHECK(check(rfc_fields(), opts).status == 101);
        CHECK(check(with(rfc_fields(), "Origin", "HTTP://EXAMPLE.COM"), opts).status == 101);
        CHECK(check(with(rfc_fields(), "Origin", "https://App.Example"), opts).status == 101);
    }

    TEST_CASE("check_upgrade accepts any Origin when the allow-list is empty") {
        CHECK(check(with(rfc_fields(), "Origin", "http://anything.example")).status == 101);
        CHECK(check(without(rfc_fields(), "Origin")).status == 101);
    }

    TEST_CASE("check_upgrade checks the method before the headers") {
        // The first failing rule decides the status: a POST with version 8 is a 400, not a 426.
        check_refusal(check(with(rfc_fields(), "Sec-WebSocket-Version", "8"), {}, "POST"), 400);
    }

} // TEST_SUITE
