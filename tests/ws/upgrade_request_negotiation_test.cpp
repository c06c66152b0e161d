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

    TEST_CASE_TEMPLATE("request_upgrade refuses an extension it did not offer", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        ws::client_handshake_options opts;
        std::string answer;
        SUBCASE("permessage-deflate when compression is off") {
            answer = "permessage-deflate";
        }
        SUBCASE("another extension to a deflate offer") {
            opts.deflate.enabled = true;
            answer = "x-webkit-deflate-frame";
        }
        SUBCASE("another extension next to permessage-deflate") {
            opts.deflate.enabled = true;
            answer = "permessage-deflate, x-foo";
        }
        CAPTURE(answer);
        auto ex = exchange_with_client<B>(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: " +
                answer + "\r\n\r\n",
            opts);
        REQUIRE_FALSE(ex.upgraded->has_value());
        check_handshake_error(ex.upgraded->error(), ws::handshake_errc::unoffered_extension);
    }

    TEST_CASE_TEMPLATE("request_upgrade refuses an invalid permessage-deflate answer", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        ws::client_handshake_options opts;
        opts.deflate.enabled = true;
        std::string answer;
        SUBCASE("a malformed list") {
            answer = "permessage-deflate; a=\"";
        }
        SUBCASE("two answers") {
            answer = "permessage-deflate, permessage-deflate";
        }
        SUBCASE("an unknown parameter") {
            answer = "permessage-deflate; x_max_window_bits=10";
        }
        SUBCASE("a repeated parameter") {
            answer = "permessage-deflate; server_no_context_takeover; server_no_context_takeover";
        }
        SUBCASE("a window out of range") {
            answer = "permessage-deflate; server_max_window_bits=16";
        }
        SUBCASE("a larger window than offered") {
            opts.deflate.client_max_window_bits = 10;
            answer = "permessage-deflate; client_max_window_bits=12";
        }
        SUBCASE("no answer to an offered server_no_context_takeover") {
            opts.deflate.server_no_context_takeover = true;
            answer = "permessage-deflate";
        }
        CAPTURE(answer);
        auto ex = exchange_with_client<B>(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: " +
                answer + "\r\n\r\n",
            opts);
        REQUIRE_FALSE(ex.upgraded->has_value());
        check_handshake_error(ex.upgraded->error(), ws::handshake_errc::invalid_extension);
    }

    TEST_CASE_TEMPLATE("request_upgrade accepts a permessage-deflate answer it offered", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        ws::client_handshake_options opts;
        opts.deflate.enabled = true;
        auto ex = exchange_with_client<B>(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: permessage-deflate; "
            "server_no_context_takeover; client_max_window_bits=12\r\n\r\n",
            opts);
        REQUIRE_MESSAGE(ex.upgraded->has_value(), ex.upgraded->error().message());
        REQUIRE((*ex.upgraded)->deflate.has_value());
        CHECK((*ex.upgraded)->deflate->server_no_context_takeover);
        CHECK((*ex.upgraded)->deflate->client_max_window_bits == 12);
        CHECK(contains(header_value(ex.request->value(), "Sec-WebSocket-Extensions"),
                       "permessage-deflate"));
    }

    TEST_CASE_TEMPLATE("request_upgrade refuses a subprotocol other than the offered ones", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        ws::client_handshake_options opts;
        opts.subprotocols = {"chat", "superchat"};
        std::string chosen;
        SUBCASE("one not offered") {
            chosen = "mqtt";
        }
        SUBCASE("an offered one in another case") {
            chosen = "CHAT";
        }
        SUBCASE("the whole offered list") {
            chosen = "chat, superchat";
        }
        auto ex = exchange_with_client<B>(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: " +
                chosen + "\r\n\r\n",
            opts);
        REQUIRE_FALSE(ex.upgraded->has_value());
        check_handshake_error(ex.upgraded->error(), ws::handshake_errc::unoffered_subprotocol);
    }

    TEST_CASE_TEMPLATE("request_upgrade offers its subprotocols and returns the one chosen", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        ws::client_handshake_options opts;
        opts.subprotocols = {"chat", "superchat"};
        opts.origin = "https://app.example";
        opts.headers = {{"Authorization", "Bearer t0ken"}};
        auto ex = exchange_with_client<B>(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: superchat\r\n\r\n",
            opts);
        REQUIRE(ex.upgraded->has_value());
        CHECK((*ex.upgraded)->subprotocol == "superchat");
        const std::string& req = ex.request->value();
        CHECK(header_value(req, "Sec-WebSocket-Protocol") == "chat, superchat");
        CHECK(header_value(req, "Origin") == "https://app.example");
        CHECK(header_value(req, "Authorization") == "Bearer t0ken");
    }

    TEST_CASE_TEMPLATE("request_upgrade accepts a 101 that chooses no subprotocol", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        ws::client_handshake_options opts;
        opts.subprotocols = {"chat"};
        auto ex = exchange_with_client<B>(std::string(good_101), opts);
        REQUIRE(ex.upgraded->has_value());
        CHECK((*ex.upgraded)->subprotocol.empty());
    }

    TEST_CASE_TEMPLATE(
        "request_upgrade refuses to send a request with CR or LF in a field it builds", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        // Regression: these went out verbatim and injected header lines.
        ws::client_handshake_options opts;
        std::string host = "server.example.com";
        std::string target = "/chat";
        SUBCASE("the host") {
            host = "server.example.com\r\nX-Injected: yes";
        }
        SUBCASE("the target") {
            target = "/chat HTTP/1.1\r\nX-Injected: yes\r\nX-Rest:";
        }
        SUBCASE("an extra header value") {
            opts.headers = {{"X-Trace", "1\r\nX-Injected: yes"}};
        }
        SUBCASE("an extra header name") {
            opts.headers = {{"X-Trace\r\nX-Injected", "yes"}};
        }
        SUBCASE("the origin") {
            opts.origin = "https://a.example\nX-Injected: yes";
        }
        SUBCASE("a subprotocol") {
            opts.subprotocols = {"chat\rX-Injected: yes"};
        }
        auto ex = exchange_with_client<B>(std::string(good_101), opts, host, target);
        REQUIRE_FALSE(ex.upgraded->has_value());
        check_handshake_error(ex.upgraded->error(), ws::handshake_errc::invalid_request_field);
        // Nothing was sent: the server read end of stream instead of a request.
        CHECK(ex.request->error() == core::errc::end_of_stream);
    }

    TEST_CASE_TEMPLATE(
        "request_upgrade reports end_of_stream when the server closes before answering", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        auto ex = exchange_with_client<B>("HTTP/1.1 101 Switching Protocols\r\nUpgr");
        CHECK(ex.upgraded->error() == core::errc::end_of_stream);
    }

} // TEST_SUITE
