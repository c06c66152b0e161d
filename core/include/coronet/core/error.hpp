#pragma once

#include <coronet/core/export.hpp>

#include <system_error>

namespace coronet::core {

/// Error codes of the core layer. Expected network outcomes are values of this enum (or plain
/// `std::errc` / errno values from the system category), carried in `core::result<T>`.
enum class errc {
    /// The operation was cancelled through its stop token before it produced a result.
    operation_canceled = 1,
    /// The operation's deadline (`with_timeout`) expired before it produced a result.
    timed_out,
    /// The peer closed its sending side: a read found end of stream.
    end_of_stream,
    /// A buffered read exceeded its size limit before finding the delimiter or count.
    limit_exceeded,
    /// The stream is unusable: an earlier write was cancelled or failed half-way.
    stream_broken,
    /// The object was used after close() or was never opened.
    not_open,
    /// The host name could not be resolved (getaddrinfo failure; message carries gai_strerror).
    resolve_failed,
    /// An address string could not be parsed.
    invalid_address,
    /// A buffer could not grow: its `memory_budget` (the servers' total for buffered peer data)
    /// is used up. Servers shed load on it (HTTP 503, WebSocket close 1013).
    over_budget,
};

/// The error category of `core::errc`; its name is "coronet.core".
CORONET_CORE_EXPORT const std::error_category& core_category() noexcept;

/// Makes an error_code of the core category. Found by ADL for `std::error_code ec = errc::x`.
inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), core_category()};
}

/// An errno value as an error_code of the system category.
inline std::error_code errno_code(int err) noexcept {
    return {err, std::system_category()};
}

} // namespace coronet::core

template <>
struct std::is_error_code_enum<coronet::core::errc> : std::true_type {};
