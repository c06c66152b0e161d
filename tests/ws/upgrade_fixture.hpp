#pragma once
// What the ws.upgrade tests share (tests/ws/upgrade_*_test.cpp): the RFC 6455 §1.2 handshake
// as header fields and edits of it, checks of a verdict or a handshake error, and both ends of
// a handshake over memory_stream (the server side run by accept_upgrade, the client side by
// request_upgrade against a scripted server).

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

namespace coronet::testing::upgrade_fixture {

using ws::check_upgrade;
using ws::field;
using ws::server_handshake_options;

inline constexpr std::string_view rfc_key = "dGhlIHNhbXBsZSBub25jZQ==";
inline constexpr std::string_view rfc_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The client handshake of RFC 6455 §1.2, as header fields.
inline std::vector<field> rfc_fields() {
    return {{"Host", "server.example.com"},   {"Upgrade", "websocket"},
            {"Connection", "Upgrade"},        {"Sec-WebSocket-Key", rfc_key},
            {"Origin", "http://example.com"}, {"Sec-WebSocket-Protocol", "chat, superchat"},
            {"Sec-WebSocket-Version", "13"}};
}

/// `fields` with every field named `name` (case-insensitively as written here) removed.
inline std::vector<field> without(std::vector<field> fields, std::string_view name) {
    std::erase_if(fields, [&](const field& f) { return f.first == name; });
    return fields;
}

/// `fields` with the value of `name` replaced.
inline std::vector<field> with(std::vector<field> fields, std::string_view name,
                               std::string_view value) {
    for (auto& f : fields)
        if (f.first == name)
            f.second = value;
    return fields;
}

/// `fields` with one more field at the end.
inline std::vector<field> plus(std::vector<field> fields, std::string_view name,
                               std::string_view value) {
    fields.emplace_back(name, value);
    return fields;
}

inline ws::upgrade_verdict check(const std::vector<field>& fields,
                                 const server_handshake_options& opts = {},
                                 std::string_view method = "GET", int minor = 1) {
    return check_upgrade(method, minor, fields, opts);
}

inline bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

using fields_t = std::vector<ws::response_field>;

/// True if the verdict sends a field named exactly `name`.
inline bool has_field(const ws::upgrade_verdict& v, std::string_view name) {
    return std::any_of(v.fields.begin(), v.fields.end(),
                       [&](const ws::response_field& f) { return f.first == name; });
}

/// The checks every refusal passes: a reason, nothing of an acceptance, and no field but the
/// version a 426 names (the writer adds its own framing).
inline void check_refusal(const ws::upgrade_verdict& v, int status) {
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
inline void check_handshake_error(const std::error_code& ec, ws::handshake_errc expected) {
    CAPTURE(ec.message());
    CHECK(ec == expected);
    CHECK(ec.category() == ws::handshake_category());
    CHECK(ec == ws::errc::bad_handshake);
    CHECK(ec != ws::errc::protocol_error);
}

inline std::string to_string(const std::vector<std::byte>& bytes) {
    return std::string(core::as_string(bytes));
}

// ---- I/O helpers on memory_stream

/// Writes `data`, optionally shuts down, then reads every byte until end of stream.
inline core::task<core::result<std::string>> talk(core::stream& s, std::string data,
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
inline core::task<core::result<ws::accepted_upgrade>> serve(core::stream& s,
                                                            server_handshake_options opts) {
    auto r = co_await ws::accept_upgrade(s, std::move(opts));
    (void)co_await s.shutdown();
    co_return r;
}

struct server_exchange {
    std::optional<core::result<ws::accepted_upgrade>> accepted;
    std::optional<core::result<std::string>> response; ///< every byte the server wrote
};

inline core::task<void> server_exchange_case(core::loop& lp, std::string request,
                                             server_handshake_options opts,
                                             bool shutdown_after_write, std::size_t max_read,
                                             server_exchange& out) {
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

inline constexpr std::string_view rfc_request = "GET /chat?room=1 HTTP/1.1\r\n"
                                                "Host: server.example.com\r\n"
                                                "Upgrade: websocket\r\n"
                                                "Connection: Upgrade\r\n"
                                                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                                "Origin: http://example.com\r\n"
                                                "Sec-WebSocket-Protocol: chat, superchat\r\n"
                                                "Sec-WebSocket-Version: 13\r\n"
                                                "\r\n";

/// A masked text frame "Hi" a client could send right behind its request.
inline constexpr std::string_view masked_hi = "\x81\x82\x01\x02\x03\x04\x49\x6b";

// ---- the scripted server for request_upgrade

/// The value of `name` in a request head written by request_upgrade (exact spelling).
inline std::string header_value(std::string_view head, std::string_view name) {
    const std::string needle = "\r\n" + std::string(name) + ": ";
    auto at = head.find(needle);
    if (at == std::string_view::npos)
        return {};
    at += needle.size();
    return std::string(head.substr(at, head.find("\r\n", at) - at));
}

/// Reads the client's request head, then writes `response` with every "{accept}" replaced by
/// the accept value for the key the client sent. Returns the request head.
inline core::task<core::result<std::string>> scripted_server(core::stream& s,
                                                             std::string response) {
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
inline core::task<core::result<ws::client_upgrade>>
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

inline core::task<void> client_exchange_case(core::loop& lp, std::string response,
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

inline constexpr std::string_view good_101 = "HTTP/1.1 101 Switching Protocols\r\n"
                                             "Upgrade: websocket\r\n"
                                             "Connection: Upgrade\r\n"
                                             "Sec-WebSocket-Accept: {accept}\r\n"
                                             "\r\n";

/// An unmasked server text frame "Hello" (RFC 6455 §5.7).
inline constexpr std::string_view server_hello = "\x81\x05Hello";

} // namespace coronet::testing::upgrade_fixture
