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

    // ---- check_upgrade: accepting

    TEST_CASE("check_upgrade accepts the RFC 6455 section 1.2 request with the section 1.3 accept "
              "value") {
        const auto v = check(rfc_fields());
        CHECK(v.status == 101);
        CHECK(v.accept == rfc_accept);
        CHECK(v.subprotocol.empty()); // the server speaks none
        CHECK(v.reason.empty());
        CHECK(v.fields == fields_t{{"Upgrade", "websocket"},
                                   {"Connection", "Upgrade"},
                                   {"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}});
    }

    TEST_CASE("check_upgrade names the chosen subprotocol in the 101 response") {
        server_handshake_options opts;
        opts.subprotocols = {"chat"};
        const auto v = check(rfc_fields(), opts);
        CHECK(v.status == 101);
        CHECK(v.subprotocol == "chat");
        CHECK(v.fields == fields_t{{"Upgrade", "websocket"},
                                   {"Connection", "Upgrade"},
                                   {"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
                                   {"Sec-WebSocket-Protocol", "chat"}});
    }

    TEST_CASE("check_upgrade sends the deflate answer after the subprotocol in the 101 response") {
        server_handshake_options opts;
        opts.subprotocols = {"chat"};
        opts.deflate.enabled = true;
        opts.deflate.server_no_context_takeover = true;
        const auto v = check(plus(rfc_fields(), "Sec-WebSocket-Extensions",
                                  "permessage-deflate; client_max_window_bits"),
                             opts);
        CHECK(v.status == 101);
        REQUIRE(v.deflate.has_value());
        CHECK(v.deflate->server_no_context_takeover);
        CHECK(v.fields == fields_t{{"Upgrade", "websocket"},
                                   {"Connection", "Upgrade"},
                                   {"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
                                   {"Sec-WebSocket-Protocol", "chat"},
                                   {"Sec-WebSocket-Extensions",
                                    "permessage-deflate; server_no_context_takeover"}});
    }

    TEST_CASE("check_upgrade matches header names and the Upgrade and Connection tokens "
              "case-insensitively") {
        std::vector<field> fields = {{"host", "x"},
                                     {"UPGRADE", "WebSocket"},
                                     {"connection", "UPGRADE"},
                                     {"SEC-WEBSOCKET-KEY", rfc_key},
                                     {"sec-websocket-version", "13"}};
        const auto v = check(fields);
        CHECK(v.status == 101);
        CHECK(v.accept == rfc_accept);
    }

    TEST_CASE("check_upgrade finds the upgrade token in a Connection list") {
        SUBCASE("keep-alive then Upgrade as Firefox sends it") {
            CHECK(check(with(rfc_fields(), "Connection", "keep-alive, Upgrade")).status == 101);
        }
        SUBCASE("with extra whitespace") {
            CHECK(check(with(rfc_fields(), "Connection", "keep-alive ,\tupgrade ")).status == 101);
        }
        SUBCASE("split across two Connection fields") {
            // RFC 9110 §5.3: a list-valued field may be sent as several field lines.
            auto fields =
                plus(with(rfc_fields(), "Connection", "keep-alive"), "Connection", "Upgrade");
            CHECK(check(fields).status == 101);
        }
        SUBCASE("websocket among other Upgrade tokens") {
            CHECK(check(with(rfc_fields(), "Upgrade", "h2c, websocket")).status == 101);
        }
    }

    // ---- check_upgrade: subprotocols

    TEST_CASE("check_upgrade picks the server's most preferred subprotocol the client offered") {
        server_handshake_options opts;
        opts.subprotocols = {"v3", "superchat", "chat"};
        const auto v = check(rfc_fields(), opts); // the client offers "chat, superchat"
        CHECK(v.status == 101);
        CHECK(v.subprotocol == "superchat");
        CHECK(v.fields.back() == ws::response_field("Sec-WebSocket-Protocol", "superchat"));
    }

    TEST_CASE("check_upgrade picks no subprotocol when none is offered or none matches") {
        server_handshake_options opts;
        opts.subprotocols = {"chat"};
        SUBCASE("none offered") {
            const auto v = check(without(rfc_fields(), "Sec-WebSocket-Protocol"), opts);
            CHECK(v.status == 101);
            CHECK(v.subprotocol.empty());
            CHECK_FALSE(has_field(v, "Sec-WebSocket-Protocol"));
        }
        SUBCASE("none in common") {
            const auto v =
                check(with(rfc_fields(), "Sec-WebSocket-Protocol", "mqtt, v2.chat"), opts);
            CHECK(v.status == 101);
            CHECK(v.subprotocol.empty());
            CHECK_FALSE(has_field(v, "Sec-WebSocket-Protocol"));
        }
        SUBCASE("the server speaks none") {
            const auto v = check(rfc_fields(), {});
            CHECK(v.subprotocol.empty());
            CHECK_FALSE(has_field(v, "Sec-WebSocket-Protocol"));
        }
        SUBCASE("only a longer name is offered") {
            CHECK(check(with(rfc_fields(), "Sec-WebSocket-Protocol", "chatty"), opts)
                      .subprotocol.empty());
        }
    }

    TEST_CASE("check_upgrade finds an offered subprotocol in the second of two header lines") {
        server_handshake_options opts;
        opts.subprotocols = {"superchat"};
        auto fields = plus(with(rfc_fields(), "Sec-WebSocket-Protocol", "chat"),
                           "Sec-WebSocket-Protocol", "v2, superchat");
        const auto v = check(fields, opts);
        CHECK(v.status == 101);
        CHECK(v.subprotocol == "superchat");
    }

    TEST_CASE("check_upgrade matches subprotocol names case-sensitively") {
        // The client checks the echoed name byte for byte (RFC 6455 §4.1; browsers do): answering
        // "chat" to an offer of "CHAT" would make the client fail the connection.
        server_handshake_options opts;
        opts.subprotocols = {"chat"};
        const auto v = check(with(rfc_fields(), "Sec-WebSocket-Protocol", "CHAT"), opts);
        CHECK(v.status == 101);
        CHECK(v.subprotocol.empty());
    }

} // TEST_SUITE
