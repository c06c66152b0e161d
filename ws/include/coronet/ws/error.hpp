#pragma once

#include <coronet/ws/export.hpp>

#include <cstdint>
#include <system_error>

namespace coronet::ws {

/// Why the ws layer ended a connection or refused input. Each maps to the close code sent to
/// the peer (`close_code_of`, RFC 6455 §7.4.1).
enum class errc {
    protocol_error = 1, ///< 1002: a frame broke RFC 6455 §5 (RSV bits, opcodes, masking...)
    invalid_payload,    ///< 1007: text that is not UTF-8, or a bad close reason (§8.1)
    message_too_big,    ///< 1009: a frame or message over the configured limit
    invalid_close_code, ///< 1002: a close code that may not be sent (§7.4)
    /// The opening handshake was refused (no close frame: no session yet). The server side
    /// returns it; the client side returns a `handshake_errc`, which compares equal to it.
    bad_handshake,
    closed,            ///< the session is closed; no more messages
    queue_full,        ///< a send met a full queue: dropped, or the session closed with 1008
    keepalive_timeout, ///< no pong within pong_timeout after a keepalive ping (sent 1011)
    idle_timeout,      ///< no message either way within idle_timeout (sent 1001)
    over_budget,       ///< the memory budget refused a message's bytes (sent 1013, try again later)
};

/// The category of ws::errc, named "coronet.ws".
CORONET_WS_EXPORT const std::error_category& ws_category() noexcept;

/// Makes an error_code of the ws category (found by ADL).
inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), ws_category()};
}

/// `ec == errc::x` compares `ec` with the condition x: true for ws's own code x and for every
/// code that is a kind of x, so each `handshake_errc` equals `errc::bad_handshake`. (A plain
/// `std::error_code` comparison would only match the identical code.)
inline bool operator==(const std::error_code& ec, errc e) noexcept {
    return ec == std::error_condition(static_cast<int>(e), ws_category());
}

/// Why the client side of the opening handshake (`request_upgrade`, `connect`) failed, one
/// value per thing a user can fix. Every value compares equal to `errc::bad_handshake`
/// (`ec == errc::bad_handshake` holds), so code that only asks "did the handshake fail" keeps
/// working. RFC 6455 §4.1 lists what the client checks.
enum class handshake_errc {
    invalid_url = 1,       ///< not `ws://` or `wss://` with a host, an optional port and a target
    invalid_request_field, ///< CR, LF or NUL in the host, target, origin, a subprotocol or a header
    response_too_large,    ///< the response head is over `max_response_bytes`
    /// Not an HTTP/1.1 response head: the status line or a field line, or a 101 of another
    /// HTTP version.
    malformed_response,
    /// The server answered with a status other than 101 (a refusal or a redirect): the code
    /// carries the status, see `handshake_status`.
    unexpected_status,
    no_upgrade_websocket,  ///< the 101 lacks `Upgrade: websocket`
    no_connection_upgrade, ///< the 101 lacks the `upgrade` token in `Connection`
    bad_accept,            ///< `Sec-WebSocket-Accept` missing, repeated or not the key's
    unoffered_subprotocol, ///< a `Sec-WebSocket-Protocol` the client did not offer (§4.1 item 6)
    /// An extension the client did not offer: not permessage-deflate, or deflate when it was not
    /// offered (§4.1 item 5).
    unoffered_extension,
    /// A malformed `Sec-WebSocket-Extensions`, or a permessage-deflate answer that breaks
    /// RFC 7692 §7.1: a parameter unknown, repeated or out of range, a window larger than
    /// offered, a missing answer to an offered server parameter, two answers.
    invalid_extension,
};

/// The category of handshake_errc, named "coronet.ws.handshake". Its codes map to the condition
/// `errc::bad_handshake` (`default_error_condition`).
CORONET_WS_EXPORT const std::error_category& handshake_category() noexcept;

/// Makes an error_code of the handshake category (found by ADL).
inline std::error_code make_error_code(handshake_errc e) noexcept {
    return {static_cast<int>(e), handshake_category()};
}

/// `ec == handshake_errc::x` compares as a condition: `unexpected_status` matches the code for
/// any status.
inline bool operator==(const std::error_code& ec, handshake_errc e) noexcept {
    return ec == std::error_condition(static_cast<int>(e), handshake_category());
}

/// The `handshake_errc::unexpected_status` code for the HTTP status `status` (100-999); its
/// message names the status. Outside that range: `handshake_errc::unexpected_status` itself.
CORONET_WS_EXPORT std::error_code unexpected_status_error(int status) noexcept;

/// The HTTP status the server answered instead of 101 when `ec` is
/// `handshake_errc::unexpected_status` (from `unexpected_status_error`), else 0.
CORONET_WS_EXPORT int handshake_status(const std::error_code& ec) noexcept;

/// The close code to send for `ec` (1001, 1002, 1007, 1008, 1009, 1013; 1011 for anything
/// else).
CORONET_WS_EXPORT std::uint16_t close_code_of(const std::error_code& ec) noexcept;

/// True if `code` may appear in a close frame on the wire (RFC 6455 §7.4.1, IANA registry):
/// 1000-1003, 1007-1014, 3000-4999.
CORONET_WS_EXPORT bool valid_close_code(std::uint16_t code) noexcept;

} // namespace coronet::ws

template <>
struct std::is_error_code_enum<coronet::ws::errc> : std::true_type {};

template <>
struct std::is_error_code_enum<coronet::ws::handshake_errc> : std::true_type {};
