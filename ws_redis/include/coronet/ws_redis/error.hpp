#pragma once

#include <coronet/ws_redis/export.hpp>

#include <system_error>

namespace coronet::ws_redis {

/// Why a Redis connection or subscriber failed or refused a call. A Redis error reply
/// (`-ERR ...`) is not one of these: it is a `reply` of type `reply_type::error`. Transport
/// failures keep their own codes (`core::errc::end_of_stream`, `ECONNRESET`, `ECONNREFUSED`,
/// `core::errc::timed_out`, TLS categories...).
enum class errc {
    /// The URL is not `redis://`, `rediss://` or `unix://` in the forms `url::parse` accepts.
    bad_url = 1,
    /// The server sent bytes that are not RESP (hiredis' reader refused them), or a reply of a
    /// shape the call cannot use (a subscribe confirmation that is not one).
    protocol_error,
    /// One reply needed more than `options::max_reply_bytes` (bytes buffered plus the memory of
    /// its values). The connection is closed: what follows on the wire cannot be trusted.
    reply_too_large,
    /// AUTH was answered with an error reply (wrong password or user, or no password set).
    auth_failed,
    /// SELECT was answered with an error reply (no such database).
    select_failed,
    /// A call that returns no `reply` (`publish`, `subscribe`...) was answered with an error
    /// reply: the server refused it (an ACL rule, a command not known to this server, a shard
    /// channel of another slot in a cluster). `connection::command` shows the error's text.
    error_reply,
    /// The call needs something the object does not have: a subscriber asked to unsubscribe
    /// from no channel, a command with no arguments.
    invalid_argument,
    /// More than `options::max_queued_messages` pushes arrived while nobody called `next()`.
    queue_overflow,
    /// The connection was closed by `close()` (or was never opened).
    closed,
};

/// The category of ws_redis::errc, named "coronet.ws_redis".
CORONET_WS_REDIS_EXPORT const std::error_category& redis_category() noexcept;

/// Makes an error_code of the ws_redis category (found by ADL).
inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), redis_category()};
}

} // namespace coronet::ws_redis

template <>
struct std::is_error_code_enum<coronet::ws_redis::errc> : std::true_type {};
