#pragma once

// The hub's Redis backplane: room broadcasts shared between processes over Redis pub/sub
// (docs/scaling.md "Many machines: the backplane").

#include <coronet/core/task.hpp>
#include <coronet/ws/backplane.hpp>
#include <coronet/ws/hub.hpp>
#include <coronet/ws_redis/export.hpp>
#include <coronet/ws_redis/options.hpp>
#include <coronet/ws_redis/url.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace coronet::ws_redis {

namespace detail {
struct backplane_impl;
}

/// Settings of a `redis_backplane`; every limit has a safe default.
struct backplane_options {
    /// A room's channel is this prefix followed by the room's name.
    std::string channel_prefix = "coronet:room:";
    /// The prefix of the backplane's other names: the unicast channel (`KEY_PREFIX unicast`),
    /// each process's room sizes (hash `KEY_PREFIX sizes:ORIGIN`) and the live processes
    /// (sorted set `KEY_PREFIX origins`).
    std::string key_prefix = "coronet:";
    /// How often this process writes its room sizes for `cluster_room_size` (its entry expires
    /// after three intervals without a write: a process that died stops counting). Zero: never
    /// (cluster_room_size then counts only the processes that do).
    std::chrono::milliseconds size_interval{1000};
    /// Sharded pub/sub (Redis 7: SPUBLISH / SSUBSCRIBE); false: PUBLISH / SUBSCRIBE. Sharded,
    /// the URL may name any node of a Redis Cluster: the backplane reads the cluster's slot map
    /// (CLUSTER SLOTS), connects to every master and sends each channel and key to the master
    /// of its slot, so the cluster spreads the rooms over its masters.
    bool sharded = false;
    /// Broadcasts waiting to be published (while the command connection is busy). One more is
    /// dropped and counted (`lost_publishes`, `queue_full`): memory stays bounded.
    std::size_t max_queued_publishes = 4096;
    /// The same bound in bytes of queued envelopes (payloads plus 18 bytes each).
    std::size_t max_queued_bytes = 16 * 1024 * 1024;
    /// Reconnection: the first wait after a failure, doubled after each failed attempt up to
    /// `reconnect_max`; each wait is drawn at random in [wait/2, wait] (jitter, so that many
    /// processes do not hammer a restarted Redis together).
    std::chrono::milliseconds reconnect_min{100};
    /// The longest wait between two connection attempts.
    std::chrono::milliseconds reconnect_max{5000};
    /// Deadlines and limits of the two Redis connections.
    options redis;
};

/// Counters of a `redis_backplane` (monotonic, except `connected`, `queued` and `rooms`).
struct backplane_stats {
    bool connected = false;      ///< the link is up now (its connections to every Redis server)
    std::size_t rooms = 0;       ///< rooms with local members (subscribed, or about to be)
    std::size_t queued = 0;      ///< broadcasts waiting to be published now
    std::uint64_t published = 0; ///< broadcasts Redis accepted (PUBLISH answered)
    std::uint64_t lost_publishes = 0;   ///< broadcasts that did not go out: Redis down (link not
                                        ///< up), the queue full, or the link failing under them
    std::uint64_t queue_full = 0;       ///< of lost_publishes: dropped for a full queue
    std::uint64_t received = 0;         ///< messages of other processes fanned out here
    std::uint64_t own_echoes = 0;       ///< this process's own messages coming back (dropped)
    std::uint64_t gaps = 0;             ///< messages of other processes seen missing (sequence
                                        ///< gaps, per origin and room)
    std::uint64_t malformed = 0;        ///< messages on our channels that are not ours (dropped)
    std::uint64_t unicasts = 0;         ///< unicasts handed to Redis (hub::send_to to an id that
                                        ///< is not in this process)
    std::uint64_t unicasts_read = 0;    ///< unicasts of other processes read (every process
                                        ///< reads every one; the hub that has the connection
                                        ///< counts it in `hub_stats::remote_unicasts`)
    std::uint64_t connects = 0;         ///< successful connections (both links up)
    std::uint64_t reconnects = 0;       ///< of connects: after a failure
    std::uint64_t failures = 0;         ///< links lost or connection attempts failed
    std::size_t shards = 0;             ///< Redis servers the link uses now: a cluster's masters
                                        ///< (sharded), else 1; 0 while it is down
    std::uint64_t redirects = 0;        ///< MOVED and ASK replies of a cluster followed
    std::uint64_t topology_changes = 0; ///< changes of the cluster's slot map followed (a
                                        ///< MOVED, a shard channel dropped): read again in
                                        ///< place, or the link rebuilt for a new node
};

/// A `ws::backplane` over Redis pub/sub: give it a hub, start `run()` on the hub's loop, and
/// rooms are shared with every other process whose backplane uses the same Redis and prefix.
///
/// - A room broadcast of the hub is published once (PUBLISH, or SPUBLISH when `sharded`) on
///   `channel_prefix + room` as an envelope: a version byte, the type (text or binary), this
///   process's origin id (64 random bits), the sequence of this origin in that room, then the
///   payload. Each process fans it out to its local members with one serialization
///   (`hub::deliver_remote`); the origin drops its own echo.
/// - The backplane subscribes to a room's channel while the room has local members
///   (SUBSCRIBE/SSUBSCRIBE on the first, UNSUBSCRIBE/SUNSUBSCRIBE after the last, batched).
/// - Delivery across processes is at most once; what one origin publishes to a room arrives
///   in its order. Local delivery never depends on Redis: when Redis is down or restarts, the
///   hub keeps serving its rooms; publishes that cannot go out are counted (`lost_publishes`),
///   the backplane reconnects with bounded jittered exponential backoff and resubscribes every
///   room that still has local members; messages of other processes missed meanwhile are
///   counted from their sequences (`gaps`).
/// - Unicast across processes: `hub::send_to(id, m)` with an id that is in no hub of this
///   process publishes `m` on the unicast channel, which every backplane subscribes to; the
///   process that has connection `id` queues it there (`hub::deliver_remote_to`, `try_send`:
///   never waits), the others drop it. At most once, with no answer to the sender; every process
///   reads every unicast.
/// - Cluster-wide room sizes: every `size_interval` each process writes how many members each
///   of its rooms has (`HSET`, with an expiry of three intervals) and refreshes its entry in
///   the set of live processes; `cluster_room_size(room)` adds them up.
///
/// - Redis Cluster (`sharded`): one command connection and one subscriber per master, each
///   channel and key routed by its slot (`key_slot`). A MOVED reply is followed once and a
///   shard channel dropped by its node noticed: either has the map read again in place, and
///   the rooms whose slot moved are subscribed on their new owner (`topology_changes`); a map
///   that names a new node rebuilds the link. ASK is followed with ASKING.
///
/// Uses two connections per Redis server (one for commands, one in subscriber mode). Not
/// thread-safe: the hub's loop. The constructor attaches it to the hub (`hub::set_backplane`),
/// the destructor detaches it; `run()` must have returned before it is destroyed, and it must
/// not outlive the hub.
class CORONET_WS_REDIS_EXPORT redis_backplane final : public ws::backplane {
public:
    /// Attaches to `h` (its current rooms count as opened). Nothing connects before `run()`.
    redis_backplane(ws::hub& h, url where, backplane_options opts);
    /// As above with default options.
    redis_backplane(ws::hub& h, url where);
    redis_backplane(const redis_backplane&) = delete;
    redis_backplane& operator=(const redis_backplane&) = delete;
    /// Detaches from the hub. `run()` must have returned.
    ~redis_backplane() override;

    /// Connects, subscribes, publishes and fans out until the caller's stop token fires,
    /// reconnecting after every failure (never returns an error: failures are counted). Start it
    /// once, on the hub's loop (e.g. `scope.spawn(bp.run())`).
    core::task<void> run();

    /// The counters.
    backplane_stats stats() const noexcept;
    /// This process's origin id (random, never 0).
    std::uint64_t origin() const noexcept;
    /// True when the subscriber confirmed the channel of `room` on the current link (a message
    /// another process publishes there from now on reaches this hub).
    bool subscribed(std::string_view room) const noexcept;
    /// The Redis channel of `room`.
    std::string channel_of(std::string_view room) const;
    /// Members of `room` in every process sharing this Redis: this process's own count now,
    /// plus what every other live process wrote last (at most `size_interval` old). Call it on
    /// the hub's loop. Errors: `errc::closed` while the link to Redis is down, the connection's
    /// errors, `errc::error_reply`.
    core::task<core::result<std::size_t>> cluster_room_size(std::string room);

    // ws::backplane (called by the hub).
    void room_opened(std::string_view room) override;
    void room_closed(std::string_view room) override;
    void publish(std::string_view room, ws::opcode type,
                 std::span<const std::byte> payload) override;
    bool send_to(std::uint64_t id, ws::opcode type, std::span<const std::byte> payload) override;

private:
    std::unique_ptr<detail::backplane_impl> impl_;
};

} // namespace coronet::ws_redis
