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
using coronet::testing::memory_stream;
using coronet::testing::memory_stream_pair;
using coronet::testing::run_on;
using namespace coronet::testing::upgrade_fixture;

TEST_SUITE("ws.upgrade") {

    // ---- accept_upgrade over a memory stream

    TEST_CASE_TEMPLATE("accept_upgrade answers 101 and returns the target and the headers", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        std::size_t max_read = memory_stream::unlimited;
        SUBCASE("whole reads") {}
        SUBCASE("reads of one byte") {
            max_read = 1;
        }
        server_handshake_options opts;
        opts.subprotocols = {"chat"};
        auto ex = exchange_with_server<B>(std::string(rfc_request), opts, false, max_read);
        REQUIRE_MESSAGE(ex.accepted->has_value(), ex.accepted->error().message());
        const auto& a = **ex.accepted;
        CHECK(a.target == "/chat?room=1");
        CHECK(a.subprotocol == "chat");
        CHECK(a.prefetched.empty());
        REQUIRE(a.headers.size() == 7);
        CHECK(a.headers[0] == std::pair<std::string, std::string>("Host", "server.example.com"));
        CHECK(a.headers[3] ==
              std::pair<std::string, std::string>("Sec-WebSocket-Key", std::string(rfc_key)));
        CHECK(a.headers[6] == std::pair<std::string, std::string>("Sec-WebSocket-Version", "13"));
        REQUIRE(ex.response->has_value());
        CHECK(**ex.response == "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "Sec-WebSocket-Protocol: chat\r\n"
                               "\r\n");
    }

    TEST_CASE_TEMPLATE("accept_upgrade trims optional whitespace around header values", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        std::string request =
            "GET / HTTP/1.1\r\nHost:x\r\nUpgrade: \twebsocket \r\nConnection:Upgrade\t\r\n"
            "Sec-WebSocket-Key:   dGhlIHNhbXBsZSBub25jZQ==  \r\nSec-WebSocket-Version: 13\r\n\r\n";
        auto ex = exchange_with_server<B>(std::move(request));
        REQUIRE(ex.accepted->has_value());
        REQUIRE((*ex.accepted)->headers.size() == 5);
        CHECK((*ex.accepted)->headers[3].second == rfc_key);
        CHECK(contains(ex.response->value(),
                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    }

    TEST_CASE_TEMPLATE(
        "accept_upgrade returns the bytes sent after the request in the same write as prefetched",
        B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        auto ex = exchange_with_server<B>(std::string(rfc_request) + std::string(masked_hi));
        REQUIRE(ex.accepted->has_value());
        CHECK(to_string((*ex.accepted)->prefetched) == masked_hi);
        CHECK(ex.response->value().starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    }

    TEST_CASE_TEMPLATE(
        "accept_upgrade answers a refused handshake with its status and bad_handshake", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        std::string request(rfc_request);
        std::string status_line;
        SUBCASE("version 8") {
            request.replace(request.find("Version: 13"), 11, "Version: 8");
            status_line = "HTTP/1.1 426 Upgrade Required\r\n";
        }
        SUBCASE("a POST") {
            request.replace(0, 3, "POST");
            status_line = "HTTP/1.1 400 Bad Request\r\n";
        }
        SUBCASE("HTTP/1.0") {
            request.replace(request.find("HTTP/1.1"), 8, "HTTP/1.0");
            status_line = "HTTP/1.1 400 Bad Request\r\n";
        }
        auto ex = exchange_with_server<B>(request);
        CHECK(ex.accepted->error() == ws::errc::bad_handshake);
        REQUIRE(ex.response->has_value());
        CHECK(ex.response->value().starts_with(status_line));
        CHECK_FALSE(contains(ex.response->value(), "Sec-WebSocket-Accept"));
    }

    TEST_CASE_TEMPLATE("accept_upgrade refuses an Origin outside the allow-list with 403", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        server_handshake_options opts;
        opts.allowed_origins = {"https://app.example"};
        auto ex = exchange_with_server<B>(std::string(rfc_request), opts);
        CHECK(ex.accepted->error() == ws::errc::bad_handshake);
        CHECK(ex.response->value().starts_with("HTTP/1.1 403 Forbidden\r\n"));
    }

    TEST_CASE_TEMPLATE("accept_upgrade writes the verdict byte for byte as the wire carried it "
                       "before the verdict was structured",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        std::string request(rfc_request);
        server_handshake_options opts;
        std::string expected;
        SUBCASE("101 without a subprotocol") {
            expected = "HTTP/1.1 101 Switching Protocols\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                       "\r\n";
        }
        SUBCASE("101 with a subprotocol and permessage-deflate") {
            opts.subprotocols = {"superchat"};
            opts.deflate.enabled = true;
            request.insert(request.size() - 2, "Sec-WebSocket-Extensions: permessage-deflate; "
                                               "client_max_window_bits\r\n");
            expected = "HTTP/1.1 101 Switching Protocols\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                       "Sec-WebSocket-Protocol: superchat\r\n"
                       "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                       "\r\n";
        }
        SUBCASE("400 with the reason as the body") {
            request.replace(0, 3, "PUT");
            expected = "HTTP/1.1 400 Bad Request\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\n"
                       "Connection: close\r\n"
                       "Content-Length: 36\r\n"
                       "\r\n"
                       "a WebSocket handshake must be a GET\n";
        }
        SUBCASE("400 for a malformed request line") {
            request.replace(0, 4, "GET  ");
            expected = "HTTP/1.1 400 Bad Request\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\n"
                       "Connection: close\r\n"
                       "Content-Length: 23\r\n"
                       "\r\n"
                       "malformed request line\n";
        }
        SUBCASE("403") {
            opts.allowed_origins = {"https://app.example"};
            expected = "HTTP/1.1 403 Forbidden\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\n"
                       "Connection: close\r\n"
                       "Content-Length: 19\r\n"
                       "\r\n"
                       "origin not allowed\n";
        }
        SUBCASE("426 with the version field") {
            request.replace(request.find("Version: 13"), 11, "Version: 8");
            expected = "HTTP/1.1 426 Upgrade Required\r\n"
                       "Sec-WebSocket-Version: 13\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\n"
                       "Connection: close\r\n"
                       "Content-Length: 43\r\n"
                       "\r\n"
                       "only Sec-WebSocket-Version 13 is supported\n";
        }
        SUBCASE("431") {
            opts.max_request_bytes = 64;
            expected = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\n"
                       "Connection: close\r\n"
                       "Content-Length: 28\r\n"
                       "\r\n"
                       "handshake request too large\n";
        }
        auto ex = exchange_with_server<B>(request, opts);
        REQUIRE(ex.response->has_value());
        CHECK(**ex.response == expected);
        CHECK(ex.accepted->has_value() == expected.starts_with("HTTP/1.1 101 "));
    }

    TEST_CASE_TEMPLATE("accept_upgrade answers a malformed request with 400 and bad_handshake", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        std::string request;
        const std::string tail = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                                 "dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                 "Sec-WebSocket-Version: 13\r\n\r\n";
        SUBCASE("a bare LF ending a header line") {
            request = "GET / HTTP/1.1\r\nHost: x\n" + tail;
        }
        SUBCASE("a bare CR inside a header line") {
            request = "GET / HTTP/1.1\r\nHost: x\ry\r\n" + tail;
        }
        SUBCASE("an obs-fold continuation line") {
            request = "GET / HTTP/1.1\r\nHost: x\r\n  y\r\n" + tail;
        }
        SUBCASE("a space before the colon") {
            request = "GET / HTTP/1.1\r\nHost : x\r\n" + tail;
        }
        SUBCASE("a header line without a colon") {
            request = "GET / HTTP/1.1\r\nHost x\r\n" + tail;
        }
        SUBCASE("an empty header name") {
            request = "GET / HTTP/1.1\r\n: x\r\nHost: x\r\n" + tail;
        }
        SUBCASE("a request line without a version") {
            request = "GET /\r\nHost: x\r\n" + tail;
        }
        SUBCASE("HTTP/2.0 in the request line") {
            request = "GET / HTTP/2.0\r\nHost: x\r\n" + tail;
        }
        SUBCASE("a version with extra characters") {
            request = "GET / HTTP/1.11\r\nHost: x\r\n" + tail;
        }
        SUBCASE("two spaces in the request line") {
            request = "GET  / HTTP/1.1\r\nHost: x\r\n" + tail;
        }
        SUBCASE("an empty request line") {
            request = "\r\nHost: x\r\n" + tail;
        }
        // Regressions: these were accepted.
        SUBCASE("a minor version that is not a digit") {
            request = "GET / HTTP/1.x\r\nHost: x\r\n" + tail;
        }
        SUBCASE("an empty request-target") {
            request = "GET  HTTP/1.1\r\nHost: x\r\n" + tail;
        }
        SUBCASE("a bare LF inside the request-target") {
            request = "GET /\n HTTP/1.1\r\nHost: x\r\n" + tail;
        }
        SUBCASE("a control character in the request-target") {
            constexpr char line[] = "GET /a\0b HTTP/1.1\r\nHost: x\r\n";
            request = std::string(line, sizeof line - 1) + tail;
        }
        CAPTURE(request);
        auto ex = exchange_with_server<B>(request);
        CHECK(ex.accepted->error() == ws::errc::bad_handshake);
        REQUIRE(ex.response->has_value());
        CHECK(ex.response->value().starts_with("HTTP/1.1 400 Bad Request\r\n"));
        CHECK_FALSE(contains(ex.response->value(), "Sec-WebSocket-Accept"));
    }

    TEST_CASE_TEMPLATE("accept_upgrade answers a request over max_request_bytes with 431", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        server_handshake_options opts;
        opts.max_request_bytes = 128;
        std::string request;
        SUBCASE("a complete request with a long header") {
            request = std::string(rfc_request);
            request.insert(request.find("\r\n") + 2,
                           "X-Padding: " + std::string(200, 'p') + "\r\n");
        }
        SUBCASE("bytes without an end of head") {
            request = std::string(300, 'a');
        }
        auto ex = exchange_with_server<B>(request, opts);
        CHECK(ex.accepted->error() == ws::errc::bad_handshake);
        REQUIRE(ex.response->has_value());
        CHECK(ex.response->value().starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    }

    TEST_CASE_TEMPLATE("accept_upgrade accepts a request of exactly max_request_bytes", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        server_handshake_options opts;
        opts.max_request_bytes = rfc_request.size();
        auto ex = exchange_with_server<B>(std::string(rfc_request), opts);
        CHECK(ex.accepted->has_value());
        opts.max_request_bytes = rfc_request.size() - 1;
        auto over = exchange_with_server<B>(std::string(rfc_request), opts);
        CHECK(over.accepted->error() == ws::errc::bad_handshake);
    }

    TEST_CASE_TEMPLATE("accept_upgrade reports end_of_stream when the peer closes mid-request", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        std::string request;
        SUBCASE("nothing sent") {}
        SUBCASE("half a request") {
            request = std::string(rfc_request.substr(0, 60));
        }
        SUBCASE("all but the last CRLF") {
            request = std::string(rfc_request.substr(0, rfc_request.size() - 2));
        }
        auto ex = exchange_with_server<B>(request, {}, true);
        CHECK(ex.accepted->error() == core::errc::end_of_stream);
        REQUIRE(ex.response->has_value());
        CHECK(ex.response->value().empty()); // nothing to answer to
    }

} // TEST_SUITE
