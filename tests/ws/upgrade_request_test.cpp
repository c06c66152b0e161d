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

    // ---- request_upgrade against a scripted server

    TEST_CASE_TEMPLATE("request_upgrade sends a valid request and accepts a correct 101", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        auto ex = exchange_with_client<B>(std::string(good_101));
        REQUIRE_MESSAGE(ex.upgraded->has_value(), ex.upgraded->error().message());
        CHECK((*ex.upgraded)->subprotocol.empty());
        CHECK((*ex.upgraded)->prefetched.empty());
        const std::string& req = ex.request->value();
        CHECK(req.starts_with("GET /chat HTTP/1.1\r\n"));
        CHECK(header_value(req, "Host") == "server.example.com");
        CHECK(header_value(req, "Upgrade") == "websocket");
        CHECK(header_value(req, "Connection") == "Upgrade");
        CHECK(header_value(req, "Sec-WebSocket-Version") == "13");
        CHECK(ws::valid_client_key(header_value(req, "Sec-WebSocket-Key")));
        CHECK_FALSE(contains(req, "Sec-WebSocket-Protocol"));
        CHECK_FALSE(contains(req, "Origin"));
        // The server side accepts what the client sent.
        const std::vector<std::string> names = {"Host", "Upgrade", "Connection",
                                                "Sec-WebSocket-Key", "Sec-WebSocket-Version"};
        std::vector<std::string> values;
        for (const auto& name : names)
            values.push_back(header_value(req, name));
        std::vector<field> fields;
        for (std::size_t i = 0; i < names.size(); ++i)
            fields.emplace_back(names[i], values[i]);
        CHECK(check_upgrade("GET", 1, fields, {}).status == 101);
    }

    TEST_CASE_TEMPLATE("request_upgrade uses a fresh key for every handshake", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        auto first = exchange_with_client<B>(std::string(good_101));
        auto second = exchange_with_client<B>(std::string(good_101));
        CHECK(header_value(first.request->value(), "Sec-WebSocket-Key") !=
              header_value(second.request->value(), "Sec-WebSocket-Key"));
    }

    TEST_CASE_TEMPLATE("request_upgrade returns the frame bytes sent with the 101 as prefetched", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        auto ex = exchange_with_client<B>(std::string(good_101) + std::string(server_hello));
        REQUIRE(ex.upgraded->has_value());
        CHECK(to_string((*ex.upgraded)->prefetched) == server_hello);
    }

    TEST_CASE_TEMPLATE("request_upgrade accepts header names and tokens in any case", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        auto ex = exchange_with_client<B>("HTTP/1.1 101 Switching Protocols\r\nupgrade: "
                                          "WebSocket\r\nCONNECTION: keep-alive, upgrade\r\n"
                                          "sec-websocket-accept: {accept}\r\n\r\n");
        CHECK(ex.upgraded->has_value());
    }

    TEST_CASE_TEMPLATE("request_upgrade accepts Upgrade and Connection split across field lines", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        // Regression: only the first Connection line was looked at.
        auto ex = exchange_with_client<B>(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
        CHECK(ex.upgraded->has_value());
    }

    TEST_CASE_TEMPLATE(
        "request_upgrade refuses a response that is not a valid 101 with an error naming the fault",
        B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        std::string response;
        auto expected = ws::handshake_errc::unexpected_status;
        SUBCASE("status 200") {
            response = "HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: {accept}\r\n\r\n";
        }
        SUBCASE("status 400 with a body") {
            response = "HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\n\r\nnope";
        }
        SUBCASE("status 1010") {
            expected = ws::handshake_errc::malformed_response;
            response = "HTTP/1.1 1010 Switching\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: {accept}\r\n\r\n";
        }
        SUBCASE("HTTP/1.0") {
            expected = ws::handshake_errc::malformed_response;
            response =
                "HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: {accept}\r\n\r\n";
        }
        SUBCASE("a wrong accept value") {
            expected = ws::handshake_errc::bad_accept;
            response =
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        }
        SUBCASE("no accept value") {
            expected = ws::handshake_errc::bad_accept;
            response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
                       "Upgrade\r\n\r\n";
        }
        SUBCASE("the accept value twice") {
            expected = ws::handshake_errc::bad_accept;
            response =
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Accept: {accept}\r\n\r\n";
        }
        SUBCASE("no Upgrade") {
            expected = ws::handshake_errc::no_upgrade_websocket;
            response = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: {accept}\r\n\r\n";
        }
        SUBCASE("another Upgrade") {
            expected = ws::handshake_errc::no_upgrade_websocket;
            response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: {accept}\r\n\r\n";
        }
        SUBCASE("no Connection") {
            expected = ws::handshake_errc::no_connection_upgrade;
            response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Sec-WebSocket-Accept: {accept}\r\n\r\n";
        }
        SUBCASE("Connection without upgrade") {
            expected = ws::handshake_errc::no_connection_upgrade;
            response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
                       "keep-alive\r\n"
                       "Sec-WebSocket-Accept: {accept}\r\n\r\n";
        }
        SUBCASE("an extension that was not requested") {
            expected = ws::handshake_errc::unoffered_extension;
            response =
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: "
                "permessage-deflate\r\n\r\n";
        }
        SUBCASE("an empty extensions header before a real one") {
            expected = ws::handshake_errc::unoffered_extension;
            // Regression: only the first Sec-WebSocket-Extensions line was looked at.
            response =
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: \r\n"
                "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
        }
        SUBCASE("a subprotocol that was not offered") {
            expected = ws::handshake_errc::unoffered_subprotocol;
            response =
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
        }
        SUBCASE("a status line of another protocol") {
            expected = ws::handshake_errc::malformed_response;
            response = "SSH-2.0-OpenSSH_9.2\r\n\r\n";
        }
        SUBCASE("a status without three digits") {
            expected = ws::handshake_errc::malformed_response;
            response = "HTTP/1.1 10 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        }
        SUBCASE("a malformed header line") {
            expected = ws::handshake_errc::malformed_response;
            response =
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade : websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: {accept}\r\n\r\n";
        }
        CAPTURE(response);
        auto ex = exchange_with_client<B>(response);
        REQUIRE_FALSE(ex.upgraded->has_value());
        check_handshake_error(ex.upgraded->error(), expected);
    }

    TEST_CASE_TEMPLATE("request_upgrade reports the status of a response other than 101", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        std::string response;
        int status = 0;
        SUBCASE("a redirect") {
            status = 302;
            response = "HTTP/1.1 302 Found\r\nLocation: wss://elsewhere.example/chat\r\n\r\n";
        }
        SUBCASE("a refused origin without a reason phrase") {
            status = 403;
            response = "HTTP/1.1 403\r\nContent-Length: 0\r\n\r\n";
        }
        SUBCASE("another version as a 426") {
            status = 426;
            response = "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"
                       "Content-Length: 0\r\n\r\n";
        }
        SUBCASE("an HTTP/1.0 server's 404") {
            status = 404;
            response = "HTTP/1.0 404 Not Found\r\n\r\n";
        }
        auto ex = exchange_with_client<B>(response);
        REQUIRE_FALSE(ex.upgraded->has_value());
        const std::error_code ec = ex.upgraded->error();
        check_handshake_error(ec, ws::handshake_errc::unexpected_status);
        CHECK(ws::handshake_status(ec) == status);
        CHECK(contains(ec.message(), std::to_string(status)));
    }

    TEST_CASE_TEMPLATE("request_upgrade refuses a response head over max_response_bytes", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        // "{accept}" becomes the 28-character accept value.
        const std::size_t head_size = good_101.size() - 8 + 28;
        ws::client_handshake_options opts;
        opts.max_response_bytes = head_size;
        CHECK(exchange_with_client<B>(std::string(good_101), opts).upgraded->has_value());
        opts.max_response_bytes = head_size - 1;
        auto over = exchange_with_client<B>(std::string(good_101), opts);
        REQUIRE_FALSE(over.upgraded->has_value());
        check_handshake_error(over.upgraded->error(), ws::handshake_errc::response_too_large);
    }

} // TEST_SUITE
