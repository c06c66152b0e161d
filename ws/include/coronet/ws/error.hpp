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
    bad_handshake,      ///< the opening handshake was refused (no close frame: no session yet)
    closed,             ///< the session is closed; no more messages
    queue_full,         ///< a send met a full queue: dropped, or the session closed with 1008
    keepalive_timeout,  ///< no pong within pong_timeout after a keepalive ping (sent 1011)
    idle_timeout,       ///< no message either way within idle_timeout (sent 1001)
    over_budget, ///< the memory budget refused a message's bytes (sent 1013, try again later)
};

/// The category of ws::errc, named "coronet.ws".
CORONET_WS_EXPORT const std::error_category& ws_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), ws_category()};
}

/// The close code to send for `ec` (1001, 1002, 1007, 1008, 1009, 1013; 1011 for anything
/// else).
CORONET_WS_EXPORT std::uint16_t close_code_of(const std::error_code& ec) noexcept;

/// True if `code` may appear in a close frame on the wire (RFC 6455 §7.4.1, IANA registry):
/// 1000-1003, 1007-1014, 3000-4999.
CORONET_WS_EXPORT bool valid_close_code(std::uint16_t code) noexcept;

} // namespace coronet::ws

template <>
struct std::is_error_code_enum<coronet::ws::errc> : std::true_type {};
