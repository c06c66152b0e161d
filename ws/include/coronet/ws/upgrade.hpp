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

/// A header field the handshake sends: name and value, owned.
using response_field = std::pair<std::string, std::string>;

/// The verdict on an upgrade request (RFC 6455 §4.2.1-4.2.2), I/O-free: shared by the
/// standalone server and the http_ws bridge, each of which writes the response its own way (as
/// Boost.Beast's `build_response` returns a response object, not text).
struct upgrade_verdict {
    int status = 400;        ///< 101 to accept; 400, 403 (Origin), 426 (version) otherwise
    std::string reason;      ///< why it was refused (for logs and the error body); empty on 101
    std::string accept;      ///< Sec-WebSocket-Accept when accepted
    std::string subprotocol; ///< the chosen one, or empty
    /// permessage-deflate as agreed (its answer is in `fields`), or nullopt.
    std::optional<deflate_params> deflate;
    /// The header fields to send, in order, without framing (Content-Length, Content-Type,
    /// Connection: close are the writer's). On 101: `Upgrade: websocket`, `Connection: Upgrade`,
    /// `Sec-WebSocket-Accept`, then `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` when
    /// chosen. On a refusal: `Sec-WebSocket-Version: 13` with 426 (RFC 6455 §4.4), else none.
    std::vector<response_field> fields;
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
/// bounded by `max_request_bytes`), answers 101 or the error status (the verdict's fields; a
/// refusal adds `Content-Type: text/plain`, `Connection: close` and the reason as its body), and
/// returns what the session needs. Errors: `errc::bad_handshake` (after answering the error
/// status: 400, 403, 426, or 431 for a request over the limit), the stream's errors. Wrap it in
/// `with_timeout` for a handshake deadline.
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
/// fresh random key, reads the response head (at most `max_response_bytes`) and checks it
/// (RFC 6455 §4.1). Errors, each a `handshake_errc` equal to `errc::bad_handshake`, in the order
/// checked: `invalid_request_field` (before anything is sent: CR, LF or NUL in `host`, `target`
/// or an option), `response_too_large`, `malformed_response`, `unexpected_status` (any status
/// but 101; `handshake_status(ec)` gives it), `no_upgrade_websocket`, `no_connection_upgrade`,
/// `bad_accept`, `unoffered_extension` / `invalid_extension` (per `accept_deflate_answer`),
/// `unoffered_subprotocol`; and the stream's errors.
CORONET_WS_EXPORT core::task<core::result<client_upgrade>>
request_upgrade(core::stream& s, std::string host, std::string target,
                client_handshake_options opts);

} // namespace coronet::ws
