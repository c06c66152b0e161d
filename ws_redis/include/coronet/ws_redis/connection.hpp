#pragma once

#include <coronet/core/result.hpp>
#include <coronet/core/task.hpp>
#include <coronet/ws_redis/error.hpp>
#include <coronet/ws_redis/export.hpp>
#include <coronet/ws_redis/options.hpp>
#include <coronet/ws_redis/reply.hpp>
#include <coronet/ws_redis/url.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

namespace coronet::ws_redis {

namespace detail {
struct connection_impl;
}

/// A Redis connection for commands (RESP2), over a TCP, TLS or Unix-domain `core::stream`.
///
/// Pipelined: every `command` call queues its encoded command at once and waits for its own
/// reply, so calls made by several coroutines of one loop are in flight together and each gets
/// its reply (Redis answers in order). Whichever caller is waiting does the I/O: the first one
/// writes what is queued, one of them reads and hands each reply to its caller; there is no
/// background task to run or join. The bytes of commands queued while a write is in progress go
/// out in the next write, so concurrent callers are batched into few syscalls.
///
/// Errors: an error reply is a `reply` (`is_error()`); a broken connection, a timeout, a
/// malformed or oversized reply is an error code, and it fails the connection: the call gets
/// it, every pending call gets it, and later calls return it at once (`error()` tells it).
/// There is no reconnect: open a new connection. Cancelling a call (its stop token) while it
/// waits for its reply leaves the connection usable (the reply is dropped when it arrives); a
/// write already started is finished, bounded by `options::command_timeout`.
///
/// A handle to state on the heap: movable, also while calls are pending. Not thread-safe: one
/// loop's thread. Destroying it (or `close()`) with calls pending is a broken invariant.
class CORONET_WS_REDIS_EXPORT connection {
public:
    /// A closed connection (every call fails with `errc::closed`).
    connection() noexcept;
    connection(connection&& o) noexcept;
    connection& operator=(connection&& o) noexcept;
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    ~connection();

    /// Connects to `where` (TLS for `rediss://`, verified against the host name with
    /// `opts.tls` or the system store), then sends `AUTH [user] password` when the URL has a
    /// password and `SELECT db` when it names a database other than 0, all within
    /// `opts.connect_timeout`. Errors: the transport's (`ECONNREFUSED`, `ENOENT` for a missing
    /// socket, `core::errc::resolve_failed`, TLS categories), `core::errc::timed_out`,
    /// `errc::auth_failed`, `errc::select_failed`, `errc::protocol_error`.
    static core::task<core::result<connection>> connect(url where, options opts);
    /// `connect` with default options (an overload: g++ 12 and coroutine default arguments,
    /// docs/core.md "Compiler pitfalls").
    static core::task<core::result<connection>> connect(url where);

    /// Sends one command, `command("SET", "k", value)`: the name, then its arguments, each
    /// anything that converts to `std::string_view` (binary-safe), and returns its reply. The
    /// arguments are encoded before this returns: they need not outlive the call. (A variadic
    /// call rather than a braced list: g++ 12 cannot compile an `std::initializer_list` made in
    /// a `co_await` expression.) Errors: see the class; `errc::closed` after `close()`,
    /// `core::errc::operation_canceled` when cancelled.
    template <class... Args>
    requires(sizeof...(Args) > 0 &&
             (std::is_convertible_v<const Args&, std::string_view> &&
              ...)) core::task<core::result<reply>> command(const Args&... args) {
        const std::string_view views[] = {std::string_view(args)...};
        return command(std::span<const std::string_view>(views));
    }
    /// As above, with the arguments in a span (the views need not outlive the call).
    /// `errc::invalid_argument` for an empty span.
    core::task<core::result<reply>> command(std::span<const std::string_view> args);
    /// As above, with the arguments in a vector. `errc::invalid_argument` for an empty one.
    core::task<core::result<reply>> command(const std::vector<std::string>& args);

    /// `PUBLISH channel message`: the number of subscribers that received it (on this server,
    /// or in its shard of a cluster). Errors: as `command`, and `errc::error_reply` when the
    /// server refused it (`command` shows the refusal's text).
    core::task<core::result<std::int64_t>> publish(std::string_view channel,
                                                   std::string_view message);
    /// `SPUBLISH shardchannel message` (Redis 7 sharded pub/sub), as `publish`.
    core::task<core::result<std::int64_t>> spublish(std::string_view channel,
                                                    std::string_view message);

    /// True from a successful `connect` until the connection fails or is closed.
    bool is_open() const noexcept;
    /// Why the connection failed (`errc::closed` after close(); zero while it works).
    std::error_code error() const noexcept;
    /// Closes the stream at once. No call may be pending. Idempotent.
    void close() noexcept;

private:
    explicit connection(std::unique_ptr<detail::connection_impl> impl) noexcept;
    core::task<core::result<reply>> queue_and_wait(std::string encoded);
    core::task<core::result<std::int64_t>> integer_of(std::string encoded);

    std::unique_ptr<detail::connection_impl> impl_;
};

} // namespace coronet::ws_redis
