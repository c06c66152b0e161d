#pragma once

// What links the hubs of a hub_group: the process-wide room directory, the group's backplane,
// and the envelopes that carry one broadcast to the other loops. Not installed.

#include <coronet/core/loop.hpp>
#include <coronet/ws/backplane.hpp>
#include <coronet/ws/hub.hpp>

#include "hub_state.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace coronet::ws::detail {

/// Owned by the hub_group and by every piece of work posted between its loops (envelopes,
/// backplane updates), so the hubs outlive whatever is still on its way to them.
struct hub_group_state : std::enable_shared_from_this<hub_group_state> {
    static constexpr std::size_t max_loops = 256;

    std::vector<core::loop*> loops; ///< loop i runs hubs[i]
    std::vector<std::unique_ptr<hub>> hubs;
    std::atomic<std::size_t> connections{0};

    /// Members of one room on each loop. Read by every broadcast, written by joins and leaves.
    struct room_entry {
        std::vector<std::uint32_t> per_loop;
        std::size_t total = 0;
    };
    mutable std::mutex mu; ///< guards rooms, bp and bp_home
    std::unordered_map<std::string, room_entry, string_hash, std::equal_to<>> rooms;
    backplane* bp = nullptr;
    std::size_t bp_home = 0; ///< the loop whose hub the backplane was set on
    /// Rooms the backplane was told are open (only touched on bp_home's loop).
    std::unordered_set<std::string, string_hash, std::equal_to<>> told_open;

    /// A member of `room` joined (left) on loop `i`. When the room opens or closes for the
    /// process and a backplane is set, its loop is told (posted, then reconciled there).
    void joined(std::size_t i, std::string_view room);
    void left(std::size_t i, std::string_view room);
    /// Hands `m` to the other loops that should see it: the room's loops (or every loop when
    /// `room` is null), and the backplane's loop when `publish`. Called on loop `from`. True
    /// when the backplane gets it (published here, or posted to its loop).
    bool fan_out(std::size_t from, const std::string_view* room, const prepared_message& m,
                 std::uint64_t except_id, bool publish);
    /// Sets the group's backplane from loop `home` (its thread) and tells it the open rooms.
    void set_backplane(backplane* b, std::size_t home);
    backplane* current_backplane() const;
    /// The backplane and the loop it lives on (null: none).
    std::pair<backplane*, core::loop*> backplane_home() const;
    /// On hub h's loop: a broadcast another loop handed over; `publish_to` is the backplane when
    /// this loop holds it and the broadcast is to be published.
    static void receive(hub& h, const std::string_view* room, const prepared_message& m,
                        std::uint64_t except_id, backplane* publish_to);
    /// On hub h's loop: a unicast from another process; true if queued for connection `id`.
    static bool receive_unicast(hub& h, std::uint64_t id, const prepared_message& m);
    /// Called on loop `from`: queues `m` for connection `id` on its loop (there, after this
    /// returns, when that is another loop). False when `id` names no loop of the group, or (on
    /// `from` itself) when it was not queued.
    bool unicast_from(std::size_t from, std::uint64_t id, const prepared_message& m);
    std::size_t room_size(std::string_view room) const;
    std::vector<std::string> room_names() const;

private:
    /// On bp_home's loop: makes what the backplane was told match the directory for `room`.
    void reconcile(const std::string& room);
    /// Under mu: posts reconcile(room) to the backplane's loop.
    void post_reconcile_locked(std::string_view room);
};

} // namespace coronet::ws::detail
