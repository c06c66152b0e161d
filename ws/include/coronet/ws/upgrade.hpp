#pragma once

#include <coronet/core/buffered_reader.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/stream.hpp>
#include <coronet/core/task.hpp>
#include <coronet/ws/deflate.hpp>
#include <coronet/ws/export.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coronet::ws {

/// A header field as the handshake helpers see it (ws does not depend on http).
using field = std::pair<std::string_view, std::string_view>;

/// What the server side accepts in an opening handshake.
struct server_handshake_options {
    /// Subprotocols the server speaks, in its order of preference; empty: none.
    std::vector<std::string> subprotocols;
    /// Origins allowed to connect (exact, case-insensitive); empty: any origin.
    std::vector<std::string> allowed_origins;
    /// Limit on the raw request the standalone server reads -> 431 (RFC 6585).
    std::size_t max_request_bytes = 16 * 1024;
    /// permessage-deflate (RFC 7692): off unless `deflate.enabled`.
    deflate_options deflate;
};

/// The verdict on an upgrade request (RFC 6455 §4.2.1-4.2.2), I/O-free: shared by the
/// standalone server and the http_ws bridge.
struct upgrade_verdict {
    int status = 400;        ///< 101 to accept; 400, 403 (Origin), 426 (version) otherwise
    std::string reason;      ///< why it was refused (for logs and the error body)
    std::string accept;      ///< Sec-WebSocket-Accept when accepted
    std::string subprotocol; ///< the chosen one, or empty
    /// permessage-deflate as agreed (its answer is in `response`), or nullopt.
    std::optional<deflate_params> deflate;
    /// The response head to send: "HTTP/1.1 101 Switching Protocols" with its headers, or the
    /// error response (with `Sec-WebSocket-Version: 13` for 426), CRLFCRLF-terminated.
    std::string response;
};

/// Checks an upgrade request: GET, HTTP/1.1, no body (any `Transfer-Encoding`, or a
/// `Content-Length` other than one field of zeros, is refused with 400: RFC 9110 §9.3.1 gives a
/// GET's content no meaning, and bytes after the head are frames; `Content-Length: 0` is
/// accepted), one Host, `Upgrade: websocket` and `Connection`
/// with the `upgrade` token (case-insensitive, on any of their field lines),
/// `Sec-WebSocket-Version: 13` (else 426), a key that decodes to 16 bytes, one Origin on the
/// allow-list when there is one (else 403), a well-formed Sec-WebSocket-Extensions (else 400);
/// picks a subprotocol (names compared exactly) and negotiates permessage-deflate per
/// `opts.deflate` (`negotiate_deflate`).
CORONET_WS_EXPORT upgrade_verdict check_upgrade(std::string_view method, int version_minor,
                                                std::span<const field> headers,
                                                const server_handshake_options& opts);

/// An accepted handshake read by `accept_upgrade`.
struct accepted_upgrade {
    std::string target;                    ///< the request-target (path and query)
    std::string subprotocol;               ///< the chosen one, or empty
    std::optional<deflate_params> deflate; ///< permessage-deflate as agreed, or nullopt
    std::vector<std::pair<std::string, std::string>> headers; ///< the request's fields
    std::vector<std::byte> prefetched; ///< bytes read past the request (first frames)
};

/// Standalone server side: reads one HTTP/1.1 upgrade request from `s` (without the http layer,
/// bounded by `max_request_bytes`), answers 101 or the error status, and returns what the
/// session needs. Errors: `errc::bad_handshake` (after answering the error status), the
/// stream's errors. Wrap it in `with_timeout` for a handshake deadline.
CORONET_WS_EXPORT core::task<core::result<accepted_upgrade>>
accept_upgrade(core::stream& s, server_handshake_options opts);

/// What the client side asks for.
struct client_handshake_options {
    std::vector<std::string> subprotocols;                    ///< offered, in order of preference
    std::string origin;                                       ///< sent as Origin when not empty
    std::vector<std::pair<std::string, std::string>> headers; ///< extra request fields
    std::size_t max_response_bytes = 16 * 1024;
    /// permessage-deflate: offered when `deflate.enabled` (`deflate_offer`).
    deflate_options deflate;
};

/// The client's view of an accepted handshake.
struct client_upgrade {
    std::string subprotocol;
    std::optional<deflate_params> deflate; ///< permessage-deflate as the server answered
    std::vector<std::byte> prefetched;     ///< bytes read past the 101 response (first frames)
};

/// Client side over a connected stream: sends the upgrade request for `host` and `target` with a
/// fresh random key, reads the response and checks it (101, Upgrade, Connection, the accept
/// value, no subprotocol or extension that was not offered, a valid permessage-deflate answer
/// per `accept_deflate_answer`). Errors: `errc::bad_handshake`
/// (also, before anything is sent, when `host`, `target` or an option holds CR, LF or NUL),
/// the stream's errors.
CORONET_WS_EXPORT core::task<core::result<client_upgrade>>
request_upgrade(core::stream& s, std::string host, std::string target,
                client_handshake_options opts);

} // namespace coronet::ws
