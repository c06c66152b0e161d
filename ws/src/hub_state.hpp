#pragma once

// The hub's private state: registry, rooms, heartbeat lists, ids, counters.

#include <coronet/ws/attachment_store.hpp>
#include <coronet/ws/hub.hpp>

#include "hub_connection_impl.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace coronet::ws::detail {

/// One unmasked server frame (FIN set), header and payload in one shared buffer; `rsv1`: the
/// payload is compressed.
core::shared_buffer encode_frame(opcode op, std::span<const std::byte> payload, bool rsv1 = false);

/// The payload of a prepared message: the tail of its plain frame.
inline std::span<const std::byte> payload_of(const prepared_message& m) noexcept {
    const core::shared_buffer& f = m.frame();
    return {f.data() + (f.size() - m.payload_size()), m.payload_size()};
}

struct hub_room {
    std::string name;
    std::vector<hub_connection_impl*> members; ///< unordered; a member knows its index
};

struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};

struct hub_group_state;

struct hub_state {
    hub_options opts;
    std::unique_ptr<attachment_store> store;
    hub_stats stats;
    backplane* bp = nullptr; ///< rooms shared with other processes; null: none (in a group the
                             ///< group holds it)
    hub_group_state* group = nullptr; ///< the hub_group this hub belongs to, or null
    std::size_t group_index = 0;      ///< its loop's index there (the low 8 bits of its ids)
    bool closing_all = false;

    std::unordered_map<std::uint64_t, hub_connection_impl*> by_id;
    std::vector<hub_connection_impl*> all; ///< a connection knows its index (swap-remove)
    std::unordered_map<std::string, std::unique_ptr<hub_room>, string_hash, std::equal_to<>> rooms;

    /// Heartbeat lists, each ordered by the time its members entered it: `idle` by last activity
    /// (a connection moves to the back on activity), `pinged` by the time of the ping.
    heartbeat_list idle;
    heartbeat_list pinged;
    core::shared_buffer ping_frame; ///< an empty ping, shared by every heartbeat
    /// Writers parked on an empty queue, oldest first; a sweep ends those that parked before
    /// the previous sweep (retire_idle_writers), so an idle connection holds no writer frame.
    parked_writer_list parked_writers;
    std::uint64_t sweeps = 0; ///< sweeps so far (retire_idle_writers)

    /// Random ids, fetched from OpenSSL in batches.
    std::uint64_t ids[32] = {};
    std::size_t ids_left = 0;

    core::waiter_queue empty;  ///< close_all waiting for the last connection to end
    std::size_t finishing = 0; ///< ended connections whose attachment is being removed

    std::uint64_t next_id();
    void add(hub_connection_impl& c);
    void remove(hub_connection_impl& c) noexcept;
    bool join(hub_connection_impl& c, std::string_view room);
    bool leave(hub_connection_impl& c, std::string_view room);
    void leave_all(hub_connection_impl& c) noexcept;
    void heartbeat_unlink(hub_connection_impl& c) noexcept;
    void heartbeat_push(heartbeat_list& l, hub_connection_impl& c) noexcept;
    /// Wakes, to end, the writers parked since before the previous sweep.
    void retire_idle_writers() noexcept;
};

} // namespace coronet::ws::detail
