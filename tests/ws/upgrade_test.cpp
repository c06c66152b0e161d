#include <coronet/ws/upgrade.hpp>

#include <coronet/core/buffer.hpp>
#include <coronet/core/buffered_reader.hpp>
#include <coronet/core/error.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/task.hpp>
#include <coronet/core/when.hpp>
#include <coronet/ws/error.hpp>
#include <coronet/ws/handshake.hpp>

#include <testing/backends.hpp>
#include <testing/memory_stream.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
using coronet::testing::memory_stream;
using coronet::testing::memory_stream_pair;
using coronet::testing::run_on;
using ws::check_upgrade;
using ws::field;
using ws::server_handshake_options;

namespace {

constexpr std::string_view rfc_key = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view rfc_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The client handshake of RFC 6455 §1.2, as header fields.
std::vector<field> rfc_fields() {
    return {{"Host", "server.example.com"},   {"Upgrade", "websocket"},
            {"Connection", "Upgrade"},        {"Sec-WebSocket-Key", rfc_key},
            {"Origin", "http://example.com"}, {"Sec-WebSocket-Protocol", "chat, superchat"},
            {"Sec-WebSocket-Version", "13"}};
}

/// `fields` with every field named `name` (case-insensitively as written here) removed.
std::vector<field> without(std::vector<field> fields, std::string_view name) {
    std::erase_if(fields, [&](const field& f) { return f.first == name; });
    return fields;
}

/// `fields` with the value of `name` replaced.
std::vector<field> with(std::vector<field> fields, std::string_view name, std::string_view value) {
    for (auto& f : fields)
        if (f.first == name)
            f.second = value;
    return fields;
}

/// `fields` with one more field at the end.
std::vector<field> plus(std::vector<field> fields, std::string_view name, std::string_view value) {
    fields.emplace_back(name, value);
    return fields;
}

ws::upgrade_verdict check(const std::vector<field>& fields,
                          const server_handshake_options& opts = {},
                          std::string_view method = "GET", int minor = 1) {
    return check_upgrade(method, minor, fields, opts);
}

bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

using fields_t = std::vector<ws::response_field>;

/// True if the verdict sends a field named exactly `name`.
bool has_field(const ws::upgrade_verdict& v, std::string_view name) {
    return std::any_of(v.fields.begin(), v.fields.end(),
                       [&](const ws::response_field& f) { return f.first == name; });
}

/// The checks every refusal passes: a reason, nothing of an acceptance, and no field but the
/// version a 426 names (the writer adds its own framing).
void check_refusal(const ws::upgrade_verdict& v, int status) {
    CHECK(v.status == status);
    CHECK_FALSE(v.reason.empty());
    CHECK(v.accept.empty());
    CHECK(v.subprotocol.empty());
    CHECK_FALSE(v.deflate.has_value());
    if (status == 426)
        CHECK(v.fields == fields_t{{"Sec-WebSocket-Version", "13"}});
    else
        CHECK(v.fields.empty());
}

/// The error `request_upgrade` returned is `expected`, and still a bad_handshake to callers that
/// ask only that.
void check_handshake_error(const std::error_code& ec, ws::handshake_errc expected) {
    CAPTURE(ec.message());
    CHECK(ec == expected);
    CHECK(ec.category() == ws::handshake_category());
    CHECK(ec == ws::errc::bad_handshake);
    CHECK(ec != ws::errc::protocol_error);
}

std::string to_string(const std::vector<std::byte>& bytes) {
    return std::string(core::as_string(bytes));
}

// ---- I/O helpers on memory_stream

/// Writes `data`, optionally shuts down, then reads every byte until end of stream.
core::task<core::result<std::string>> talk(core::stream& s, std::string data,
                                           bool shutdown_after_write) {
    if (!data.empty()) {
        auto w = co_await s.write_all(core::as_bytes(data));
        if (!w)
            co_return w.error();
    }
    if (shutdown_after_write) {
        auto sh = co_await s.shutdown();
        if (!sh)
            co_return sh.error();
    }
    std::string got;
    char buf[512];
    for (;;) {
        auto n = co_await s.read_some(
            core::mutable_buffer(reinterpret_cast<std::byte*>(buf), sizeof buf));
        if (!n) {
            if (n.error() == core::errc::end_of_stream)
                co_return got;
            co_return n.error();
        }
        got.append(buf, *n);
    }
}

/// accept_upgrade, then the end of our sending side so that the peer's read-to-EOF finishes.
core::task<core::result<ws::accepted_upgrade>> serve(core::stream& s,
                                                     server_handshake_options opts) {
    auto r = co_await ws::accept_upgrade(s, std::move(opts));
    (void)co_await s.shutdown();
    co_return r;
}

struct server_exchange {
    std::optional<core::result<ws::accepted_upgrade>> accepted;
    std::optional<core::result<std::string>> response; ///< every byte the server wrote
};

core::task<void> server_exchange_case(core::loop& lp, std::string request,
                                      server_handshake_options opts, bool shutdown_after_write,
                                      std::size_t max_read, server_exchange& out) {
    auto [client, server] = memory_stream_pair(lp);
    server->set_max_read(max_read);
    auto [accepted, response] = co_await core::when_all(
        serve(*server, std::move(opts)), talk(*client, std::move(request), shutdown_after_write));
    out.accepted = std::move(accepted);
    out.response = std::move(response);
}

/// Sends `request` to accept_upgrade on a memory stream pair and collects both sides.
template <class B>
server_exchange exchange_with_server(std::string request, server_handshake_options opts = {},
                                     bool shutdown_after_write = false,
                                     std::size_t max_read = memory_stream::unlimited) {
    server_exchange out;
    run_on<B>([&](core::loop& lp) {
        return server_exchange_case(lp, std::move(request), std::move(opts), shutdown_after_write,
                                    max_read, out);
    });
    REQUIRE(out.accepted.has_value());
    REQUIRE(out.response.has_value());
    return out;
}

constexpr std::string_view rfc_request = "GET /chat?room=1 HTTP/1.1\r\n"
                                         "Host: server.example.com\r\n"
                                         "Upgrade: websocket\r\n"
                                         "Connection: Upgrade\r\n"
                                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                         "Origin: http://example.com\r\n"
                                         "Sec-WebSocket-Protocol: chat, superchat\r\n"
                                         "Sec-WebSocket-Version: 13\r\n"
                                         "\r\n";

/// A masked text frame "Hi" a client could send right behind its request.
constexpr std::string_view masked_hi = "\x81\x82\x01\x02\x03\x04\x49\x6b";

// ---- the scripted server for request_upgrade

/// The value of `name` in a request head written by request_upgrade (exact spelling).
std::string header_value(std::string_view head, std::string_view name) {
    const std::string needle = "\r\n" + std::string(name) + ": ";
    auto at = head.find(needle);
    if (at == std::string_view::npos)
        return {};
    at += needle.size();
    return std::string(head.substr(at, head.find("\r\n", at) - at));
}

/// Reads the client's request head, then writes `response` with every "{accept}" replaced by
/// the accept value for the key the client sent. Returns the request head.
core::task<core::result<std::string>> scripted_server(core::stream& s, std::string response) {
    core::buffered_reader rd(s);
    auto head = co_await rd.read_until("\r\n\r\n", 16 * 1024);
    if (!head)
        co_return head.error();
    std::string request(core::as_string(*head));
    const std::string accept = ws::accept_key(header_value(request, "Sec-WebSocket-Key"));
    for (auto at = response.find("{accept}"); at != std::string::npos;
         at = response.find("{accept}"))
        response.replace(at, 8, accept);
    auto w = co_await s.write_all(core::as_bytes(response));
    if (!w)
        co_return w.error();
    (void)co_await s.shutdown();
    co_return request;
}

/// request_upgrade, then the end of our sending side so that a server still waiting for a
/// request head (because none was sent) reads end of stream.
core::task<core::result<ws::client_upgrade>>
request_then_shutdown(core::stream& s, std::string host, std::string target,
                      ws::client_handshake_options opts) {
    auto r = co_await ws::request_upgrade(s, std::move(host), std::move(target), std::move(opts));
    (void)co_await s.shutdown();
    co_return r;
}

struct client_exchange {
    std::optional<core::result<ws::client_upgrade>> upgraded;
    std::optional<core::result<std::string>> request; ///< the head the client sent
};

core::task<void> client_exchange_case(core::loop& lp, std::string response,
                                      ws::client_handshake_options opts, std::string host,
                                      std::string target, client_exchange& out) {
    auto [client, server] = memory_stream_pair(lp);
    auto [upgraded, request] = co_await core::when_all(
        request_then_shutdown(*client, std::move(host), std::move(target), std::move(opts)),
        scripted_server(*server, std::move(response)));
    out.upgraded = std::move(upgraded);
    out.request = std::move(request);
}

/// Runs request_upgrade for `host` and `target` against a server that answers `response` (see
/// scripted_server).
template <class B>
client_exchange exchange_with_client(std::string response, ws::client_handshake_options opts = {},
                                     std::string host = "server.example.com",
                                     std::string target = "/chat") {
    client_exchange out;
    run_on<B>([&](core::loop& lp) {
        return client_exchange_case(lp, std::move(response), std::move(opts), std::move(host),
                                    std::move(target), out);
    });
    REQUIRE(out.upgraded.has_value());
    REQUIRE(out.request.has_value());
    return out;
}

constexpr std::string_view good_101 = "HTTP/1.1 101 Switching Protocols\r\n"
                                      "Upgrade: websocket\r\n"
                                      "Connection: Upgrade\r\n"
                                      "Sec-WebSocket-Accept: {accept}\r\n"
                                      "\r\n";

/// An unmasked server text frame "Hello" (RFC 6455 §5.7).
constexpr std::string_view server_hello = "\x81\x05Hello";

} // namespace

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
