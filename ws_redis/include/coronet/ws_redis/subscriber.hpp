#pragma once

#include <coronet/core/result.hpp>
#include <coronet/core/task.hpp>
#include <coronet/ws_redis/error.hpp>
#include <coronet/ws_redis/export.hpp>
#include <coronet/ws_redis/options.hpp>
#include <coronet/ws_redis/url.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace coronet::ws_redis {

namespace detail {
struct subscriber_impl;
}

/// One message received on a subscribed channel.
struct message {
    std::string channel;  ///< the channel (or shard channel) it was published on
    std::string payload;  ///< the published bytes
    bool sharded = false; ///< true for an `smessage` (SPUBLISH to a shard channel)
    /// No payload: the server dropped this shard channel by itself (a Redis Cluster node whose
    /// slot moved away sends `sunsubscribe` unasked). Subscribe again on the slot's new owner.
    bool dropped = false;
};

/// A Redis connection in subscriber mode (RESP2: a connection that subscribed only receives
/// pushes, so publishing goes through a separate `connection`). Subscriptions to channels
/// (SUBSCRIBE/UNSUBSCRIBE) and Redis 7 shard channels (SSUBSCRIBE/SUNSUBSCRIBE) may be mixed;
/// `next()` yields the `message` and `smessage` pushes in the order they arrive.
///
/// A (un)subscribe call returns once the server confirmed every channel it names, so a message
/// published after `subscribe` returned is delivered. Pushes that arrive while a call waits for
/// its confirmations are kept for `next()` (at most `options::max_queued_messages`).
/// Delivery is at most once: a message published while the subscriber is not connected is
/// never seen. Errors fail the subscriber as they fail a `connection` (there is no reconnect);
/// `next()` then returns the error, and so does every later call.
///
/// A handle to state on the heap: movable. Not thread-safe: one loop's thread. One coroutine
/// may wait in `next()` while others (un)subscribe. Destroying it (or `close()`) with calls
/// pending is a broken invariant.
class CORONET_WS_REDIS_EXPORT subscriber {
public:
    /// A closed subscriber (every call fails with `errc::closed`).
    subscriber() noexcept;
    subscriber(subscriber&& o) noexcept;
    subscriber& operator=(subscriber&& o) noexcept;
    subscriber(const subscriber&) = delete;
    subscriber& operator=(const subscriber&) = delete;
    ~subscriber();

    /// Connects, authenticates and selects as `connection::connect` does.
    static core::task<core::result<subscriber>> connect(url where, options opts);
    /// `connect` with default options.
    static core::task<core::result<subscriber>> connect(url where);

    /// `SUBSCRIBE` to `channels` and waits for the server's confirmation of each (within
    /// `options::command_timeout`; past it the subscriber fails with `core::errc::timed_out`).
    /// Errors: `errc::invalid_argument` for an empty list, `errc::error_reply`, the
    /// connection's errors.
    core::task<core::result<void>> subscribe(std::vector<std::string> channels);
    /// `UNSUBSCRIBE` from `channels` (named: an empty list is `errc::invalid_argument`), as
    /// `subscribe`. Messages already queued for `next()` stay queued.
    core::task<core::result<void>> unsubscribe(std::vector<std::string> channels);
    /// `SSUBSCRIBE` to shard channels (Redis 7), as `subscribe`. In a cluster, all the channels
    /// of one call must hash to one slot and the connection must be to that slot's node.
    core::task<core::result<void>> ssubscribe(std::vector<std::string> channels);
    /// `SUNSUBSCRIBE` from shard channels, as `unsubscribe`. A `sunsubscribe` push for a channel
    /// no call asked to leave (a Redis Cluster node drops the shard channels of a slot that moved
    /// away) is yielded by `next()` as a `message` with `dropped` set.
    core::task<core::result<void>> sunsubscribe(std::vector<std::string> channels);

    /// The next message: a queued one at once, else waits for one (no deadline: cancel it
    /// through the stop token, `core::errc::operation_canceled`). Errors: the connection's
    /// (`core::errc::end_of_stream` when the server went away...), `errc::closed`.
    core::task<core::result<message>> next();

    /// Messages received and not yet taken by `next()`.
    std::size_t queued() const noexcept;
    /// True from a successful `connect` until the subscriber fails or is closed.
    bool is_open() const noexcept;
    /// Why the subscriber failed (`errc::closed` after close(); zero while it works).
    std::error_code error() const noexcept;
    /// Closes the stream at once. No call may be pending. Idempotent.
    void close() noexcept;

private:
    explicit subscriber(std::unique_ptr<detail::subscriber_impl> impl) noexcept;
    core::task<core::result<void>> change(const char* verb, std::vector<std::string> channels);

    std::unique_ptr<detail::subscriber_impl> impl_;
};

} // namespace coronet::ws_redis
