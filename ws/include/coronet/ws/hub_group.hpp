#pragma once

// One logical hub over the loops of a process: a hub per loop, linked so that rooms, broadcasts
// and unicasts span every loop. Guide: docs/ws_hub.md "Threads: a hub over every loop".

#include <coronet/core/loop.hpp>
#include <coronet/core/loop_group.hpp>
#include <coronet/ws/export.hpp>
#include <coronet/ws/hub.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace coronet::ws {

namespace detail {
struct hub_group_state;
}

/// One hub per loop of a process, linked into one logical hub: what a multi-loop server
/// (`core::loop_group`) uses where a single-loop one uses a `ws::hub`.
///
///     core::loop_group loops;                 // one loop per core
///     ws::hub_group hubs(loops, opts);        // hub i belongs to loops.at(i)
///     loops.run([&](core::loop& lp, std::size_t i) { return serve(lp, hubs.at(i)); });
///
/// Each connection lives on the loop that accepted it and is served by that loop's hub
/// (`hubs.at(i).serve(...)`, or `as_session_handler`), so handlers are unchanged: they run on
/// their connection's loop and call `conn.owner()`, the hub of that loop. What the link adds:
/// - a room spans loops: `join` on any loop, and `broadcast_room(_except)` on any hub reaches
///   the room's open members on every loop. The frame is encoded once per process, and each
///   compressed variant built once per process, shared by every loop (one `shared_buffer`);
///   other loops get it through one `loop::post` each (only the loops where the room has
///   members), so each sender's broadcasts arrive in the order it made them;
/// - `broadcast(_except)` reaches every connection of every loop;
/// - `room_size` and `room_names` count every loop;
/// - connection ids are unique across the group, and their low 8 bits name the loop:
///   `hub::send_to(id, m)` and `hub::visit(id, f)` reach a connection on any loop;
/// - a backplane set on one of the hubs (`hub::set_backplane`, e.g. a `ws_redis::
///   redis_backplane` built on `at(k)`) serves the whole group: it hears rooms that open and
///   close in the process and every room broadcast of any loop, and what it delivers
///   (`deliver_remote` on hub k) reaches every loop.
///
/// Per loop, as with one hub: `find`, `for_each`, `for_each_member`, `is_member`, `size`,
/// heartbeats, `close_all`, `stats`, attachments (each hub has its own in-memory store), and
/// `max_connections` (a limit per loop).
///
/// Thread-safety: `size`, `loop_of`, `connections`, `room_size` and `room_names` from any
/// thread; hub i only on loop i's thread. At most 256 loops. Destroy it after every connection
/// ended (as a hub); a broadcast still on its way to a loop keeps the hubs alive until that loop
/// has run it (the last one frees them, on its thread).
class CORONET_WS_EXPORT hub_group {
public:
    /// A hub per loop of `loops`, built with `opts`. Throws std::invalid_argument for more than
    /// 256 loops.
    explicit hub_group(core::loop_group& loops, hub_options opts = {});
    /// A hub per loop in `loops` (non-null, each running on its own thread; hub i belongs to
    /// loops[i]).
    explicit hub_group(std::span<core::loop* const> loops, hub_options opts = {});
    hub_group(const hub_group&) = delete;
    hub_group& operator=(const hub_group&) = delete;
    ~hub_group();

    /// The number of hubs (one per loop).
    std::size_t size() const noexcept;
    /// The hub of loop `i` (< size()): use it only on that loop's thread.
    hub& at(std::size_t i) noexcept;
    /// The loop index that owns connection `id` (its low 8 bits; >= size() for an id no hub of
    /// this group made).
    static std::size_t loop_of(std::uint64_t id) noexcept { return id & 0xff; }
    /// Registered connections over every loop.
    std::size_t connections() const noexcept;
    /// Members of `room` over every loop.
    std::size_t room_size(std::string_view room) const;
    /// Names of the rooms with members on any loop.
    std::vector<std::string> room_names() const;

private:
    std::shared_ptr<detail::hub_group_state> state_;
};

} // namespace coronet::ws
