#pragma once

// The hub's backplane: what carries room broadcasts between processes (docs/scaling.md
// "Many machines: the backplane"). The hub knows only this interface; `coronet::ws_redis`
// implements it over Redis pub/sub (ws_redis/backplane.hpp).

#include <coronet/ws/export.hpp>
#include <coronet/ws/frame.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace coronet::ws {

/// What a hub tells the processes it shares rooms with, given to it with `hub::set_backplane`.
/// Every call comes on the hub's loop thread, synchronously from the hub call that caused it,
/// and must not wait: an implementation records what to do and does the I/O from its own task
/// on the same loop. It must not call back into the hub from inside these calls.
///
/// The other direction, messages other processes published, goes in through
/// `hub::deliver_remote`, which fans a message out to the room's local members and never hands
/// it back to the backplane.
///
/// Semantics a backplane should document (the Redis one does, docs/scaling.md): delivery across
/// processes is at most once, each origin's messages keep their order, and local delivery never
/// waits for, or depends on, the backplane.
class CORONET_WS_EXPORT backplane {
public:
    virtual ~backplane();

    /// `room` got its first local member (or existed when this backplane was set): start
    /// receiving what other processes publish to it.
    virtual void room_opened(std::string_view room) = 0;
    /// `room` lost its last local member: stop receiving it.
    virtual void room_closed(std::string_view room) = 0;
    /// A local room broadcast (`hub::broadcast_room`, `hub::broadcast_room_except`), once per
    /// call, whether or not the room has local members: send it to the other processes. `type`
    /// is text or binary; `payload` is the message's payload (uncompressed), valid only during
    /// the call (copy what must be kept).
    virtual void publish(std::string_view room, opcode type,
                         std::span<const std::byte> payload) = 0;
    /// A unicast (`hub::send_to`) to connection `id`, which no hub of this process has: hand it
    /// to the process that has it, if any, at most once (no answer comes back). Returns false
    /// when this backplane does not carry unicasts (the default), and send_to then fails with
    /// `hub_errc::not_found`. `payload` is valid only during the call.
    virtual bool send_to(std::uint64_t id, opcode type, std::span<const std::byte> payload);

protected:
    backplane() = default;
    backplane(const backplane&) = default;
    backplane& operator=(const backplane&) = default;
};

} // namespace coronet::ws
