#pragma once

// The hub's private state: registry, rooms, heartbeat lists, ids, counters.

#include <coronet/ws/attachment_store.hpp>
#include <coronet/ws/hub.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace coronet::ws::detail {

/// Parks the awaiting coroutine in `slot` until `slot.wake()` or its stop token fires (or
/// does not suspend when `ready`).
/// (A constructor, not aggregate initialization: g++ 12 crashes on an aggregate with a
/// member initializer that refers to another member inside a coroutine.)
struct slot_wait {
    slot_wait(wake_slot& s, core::stop_token t, bool r) noexcept
        : slot(s), token(t), ready(r), cancel(&s) {}
    slot_wait(const slot_wait&) = delete;
    slot_wait& operator=(const slot_wait&) = delete;

    wake_slot& slot;
    core::stop_token token;
    bool ready;
    struct canceller : core::stop_callback_base {
        explicit canceller(wake_slot* s) noexcept : stop_callback_base(&fire), slot(s) {}
        static void fire(stop_callback_base* cb) noexcept {
            static_cast<canceller*>(cb)->slot->wake();
        }
        wake_slot* slot;
    } cancel;

    bool await_ready() const noexcept { return ready || token.stop_requested(); }
    void await_suspend(std::coroutine_handle<> h) noexcept {
        slot.waiting = h;
        cancel.attach(token.source()); // a stop already requested wakes at once (from the loop)
    }
    void await_resume() noexcept { cancel.detach(); }
};

struct hub_room {
    std::string name;
    std::vector<hub_connection*> members; ///< unordered; a member knows its index
};

struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};

struct hub_state {
    hub_options opts;
    std::unique_ptr<attachment_store> store;
    hub_stats stats;
    bool closing_all = false;

    std::unordered_map<std::uint64_t, hub_connection*> by_id;
    std::vector<hub_connection*> all; ///< a connection knows its index (swap-remove)
    std::unordered_map<std::string, std::unique_ptr<hub_room>, string_hash, std::equal_to<>> rooms;

    /// Heartbeat lists, each ordered by the time its members entered it: `idle` by last activity
    /// (a connection moves to the back on activity), `pinged` by the time of the ping.
    struct list {
        hub_connection* head = nullptr;
        hub_connection* tail = nullptr;
        std::uint8_t tag = 0;
    };
    list idle{nullptr, nullptr, 1};
    list pinged{nullptr, nullptr, 2};
    core::shared_buffer ping_frame; ///< an empty ping, shared by every heartbeat

    /// Random ids, fetched from OpenSSL in batches.
    std::uint64_t ids[32] = {};
    std::size_t ids_left = 0;

    wake_slot empty;           ///< close_all waiting for the last connection to end
    std::size_t finishing = 0; ///< ended connections whose attachment is being removed

    std::uint64_t next_id();
    void add(hub_connection& c);
    void remove(hub_connection& c) noexcept;
    bool join(hub_connection& c, std::string_view room);
    bool leave(hub_connection& c, std::string_view room);
    void leave_all(hub_connection& c) noexcept;
    void heartbeat_unlink(hub_connection& c) noexcept;
    void heartbeat_push(list& l, hub_connection& c) noexcept;
    list& list_of(std::uint8_t tag) noexcept { return tag == 1 ? idle : pinged; }
};

} // namespace coronet::ws::detail
