#pragma once

#include <coronet/core/tls.hpp>

#include <chrono>
#include <cstddef>

namespace coronet::ws_redis {

/// Limits and deadlines of a `connection` or `subscriber`. Every field has a safe default.
struct options {
    /// Deadline for opening a connection: resolving, connecting, the TLS handshake, AUTH and
    /// SELECT together. Past it, `connect` fails with `core::errc::timed_out`.
    std::chrono::milliseconds connect_timeout{5000};
    /// Deadline for one command, from the moment it is queued to its reply (and for a
    /// subscriber's (un)subscribe confirmations). A command that times out fails the whole
    /// connection with `core::errc::timed_out`: a server that does not answer in time is
    /// treated as gone, and the next replies could not be matched any more.
    std::chrono::milliseconds command_timeout{5000};
    /// The most memory one reply may take: the bytes buffered for it before it is complete
    /// plus the values built from it. A reply over the limit fails the connection with
    /// `errc::reply_too_large` instead of growing without bound (a broken or hostile server
    /// announcing `$9999999999` gets no allocation of that size: memory follows the bytes
    /// received).
    std::size_t max_reply_bytes = 64 * 1024 * 1024;
    /// Subscriber only: pushes kept for `next()` while a subscribe call reads them off the
    /// wire. One more fails the subscriber with `errc::queue_overflow`.
    std::size_t max_queued_messages = 4096;
    /// The TLS client context for `rediss://` (its CA file, or the system store). Null: a
    /// context with the system store, built at connect. Need only outlive the `connect` call.
    const core::tls_context* tls = nullptr;
};

} // namespace coronet::ws_redis
