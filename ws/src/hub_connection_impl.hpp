#pragma once

// What a hub connection holds beyond its public face (hub.hpp): the outgoing queue and its
// writer, unicast sends waiting for room, rooms, metadata, closing, heartbeats and the
// auto-response. `hub::serve` keeps a hub_connection_impl in its coroutine frame; the public
// hub_connection's members forward here. Not installed.

#include <coronet/core/buffer.hpp>
#include <coronet/core/intrusive_list.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/waiter_queue.hpp>
#include <coronet/ws/hub.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coronet::ws::detail {

/// A growable ring of shared frames (no allocation while empty).
class CORONET_WS_EXPORT frame_ring {
public:
    frame_ring() = default;
    frame_ring(const frame_ring&) = delete;
    frame_ring& operator=(const frame_ring&) = delete;
    /// True when it holds no frame.
    bool empty() const noexcept { return size_ == 0; }
    /// Frames held.
    std::size_t size() const noexcept { return size_; }
    /// The i-th frame from the front (i < size()).
    core::shared_buffer& operator[](std::size_t i) noexcept {
        return slots_[(head_ + i) & (slots_.size() - 1)];
    }
    /// Appends a frame, doubling the ring when full (the bytes never move: only the handles).
    void push_back(core::shared_buffer b);
    /// Removes the first frame and returns its size.
    std::size_t pop_front() noexcept;
    /// Removes the last frame and returns its size.
    std::size_t pop_back() noexcept;

private:
    std::vector<core::shared_buffer> slots_; ///< power-of-two size
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};
/// A unicast send waiting for room in a connection's queue. It lives in the sending coroutine's
/// frame, linked into the connection's list in arrival order. When room frees up the writer
/// queues its frame (so nothing can take the room first) and then wakes it.
/// Each request has a waiter queue of its own rather than sharing one per connection: the
/// writer must wake the very sender whose frame it queued, and a cancelled sender leaves a
/// shared queue at once while its request would still sit in the list.
struct space_request : core::intrusive_list_hook<> {
    explicit space_request(core::shared_buffer f) noexcept : frame(std::move(f)) {}

    core::shared_buffer frame;
    std::error_code outcome;  ///< set before the wake: zero once queued, or errc::closed
    core::waiter_queue woken; ///< the sender, parked until its frame is queued or refused

    /// True once the sender's stop token took it off `woken`: nobody waits for this room.
    bool abandoned() const noexcept { return woken.empty(); }
};

/// Tells apart the list hook a connection uses for the hub's heartbeat lists.
struct heartbeat_tag;
class hub_connection_impl;
/// A heartbeat list of the hub (idle or pinged); a connection is in at most one.
using heartbeat_list = core::intrusive_list<hub_connection_impl, heartbeat_tag>;
/// Tells apart the list hook of the hub's parked writers.
struct parked_writer_tag;
/// The hub's writers parked on an empty queue, in the order they parked (see writer()).
using parked_writer_list = core::intrusive_list<hub_connection_impl, parked_writer_tag>;

/// What few hub connections use (hub_connection_impl::extras()).
struct hub_connection_extras {
    std::map<std::string, std::string, std::less<>> meta;
    std::string close_reason; ///< of the close the hub or the app asked for
    // Auto-response (matched by the reader, see set_auto_response).
    std::string auto_request;
    core::shared_buffer auto_frame; ///< the answer, encoded once, shared by every answer
    std::string held;               ///< receive_some: the start of a possible request
    std::string joined;             ///< receive_view: held and the rest, when it held
    opcode auto_type = opcode::text;
    opcode held_type = opcode::text; ///< the held message's type
    bool auto_set = false;
    bool holding = false; ///< held is the start of the message being read
};

/// A hub connection with everything it holds. The hub, its state and the connection's own
/// coroutines use these members directly.
class hub_connection_impl final : public hub_connection,
                                  public core::intrusive_list_hook<heartbeat_tag>,
                                  public core::intrusive_list_hook<parked_writer_tag> {
public:
    hub_connection_impl(hub& h, session& s, std::uint64_t id, handshake_info& info);
    hub_connection_impl(const hub_connection_impl&) = delete;
    hub_connection_impl& operator=(const hub_connection_impl&) = delete;
    ~hub_connection_impl();

    static hub_connection_impl& of(hub_connection& c) noexcept {
        return static_cast<hub_connection_impl&>(c);
    }
    static const hub_connection_impl& of(const hub_connection& c) noexcept {
        return static_cast<const hub_connection_impl&>(c);
    }

    // The public operations (hub_connection's members forward to these).
    bool join(std::string_view room);
    bool leave(std::string_view room);
    bool in_room(std::string_view room) const noexcept;
    std::vector<std::string_view> rooms() const;
    void set_meta(std::string key, std::string value);
    const std::string* meta(std::string_view key) const noexcept;
    bool erase_meta(std::string_view key);
    core::task<core::result<void>> send_text(std::string_view text);
    core::task<core::result<void>> send_binary(std::span<const std::byte> data);
    core::task<core::result<void>> send(const prepared_message& m);
    bool try_send(const prepared_message& m);
    core::task<core::result<void>> ping(std::string_view payload);
    core::task<core::result<void>> ping();
    core::task<core::result<void>> pong(std::string_view payload);
    core::task<core::result<void>> pong();
    core::task<core::result<message>> receive();
    core::task<core::result<message_chunk>> receive_some();
    core::task<core::result<message_view>> receive_view();
    void close(std::uint16_t code, std::string reason);
    void set_auto_response(std::string request, std::string response, opcode type);
    void clear_auto_response() noexcept;
    core::task<core::result<void>> set_attachment(std::vector<std::byte> data);
    core::task<core::result<std::optional<std::vector<std::byte>>>> attachment();
    core::task<core::result<void>> clear_attachment();

    using hub_connection::hub_;
    using hub_connection::id_;
    using hub_connection::info_;
    using hub_connection::session_;
    using hub_connection::state_;

    /// Queues `frame` if it fits (or the queue is empty) and wakes the writer.
    bool try_push(const core::shared_buffer& frame);
    void push(core::shared_buffer frame);
    core::task<core::result<void>> send_frame(core::shared_buffer frame);
    core::task<core::result<void>> send_control(opcode op, std::string_view payload);
    /// The reader's loop shared by receive() and receive_some() (`read` is the session's).
    template <class T>
    core::task<core::result<T>> read_next(core::task<core::result<T>> (session::*read)());
    /// What the reader does with what it read, given the auto-response rule.
    enum class auto_match : std::uint8_t { deliver, hold, answer };
    auto_match match_auto(message& m);
    auto_match match_auto(message_view& m);
    auto_match match_auto(message_chunk& c);
    /// Queues the auto-response now if it fits; false when it must wait for room.
    bool try_answer_auto();
    core::task<void> writer();
    core::task<void> watchdog();
    core::task<void> perform_close();
    core::task<core::result<void>> wait_drained();
    void grant_waiters() noexcept;
    void fail_waiters() noexcept;
    void drop_pending() noexcept;
    /// Starts a close (see close()); `drain_first`: after the queued frames are written.
    void request_close(std::uint16_t code, std::string reason, bool drain_first);
    /// Ends the connection without a closing handshake (1006 with `reason`).
    void abort(const char* reason) noexcept;
    void note_activity() noexcept;

    struct observer final : control_observer {
        hub_connection_impl* self = nullptr;
        void on_ping(session&, std::string_view) override;
        void on_pong(session&, std::string_view payload) override;
    };

    std::size_t index_ = 0;             ///< position in the hub's list of all connections
    core::task_scope* scope_ = nullptr; ///< reader, writer, watchdog
    connection_handler<hub_connection>* handler_ = nullptr; ///< this connection's run
    observer observer_;
    std::vector<std::pair<hub_room*, std::size_t>> rooms_; ///< room, index in its members

    // Outgoing queue and its writer.
    frame_ring queue_;
    std::size_t queued_bytes_ = 0;
    std::size_t in_flight_ = 0; ///< frames at the queue's front being written
    std::vector<core::const_buffer> batch_;
    std::uint64_t dropped_ = 0;
    bool writer_running_ = false;    ///< a writer is started (push() starts one, see writer())
    bool writer_retire_ = false;     ///< the hub's sweep found the writer parked a whole interval
    bool writer_done_ = false;       ///< no more writes: the stream failed or the scope stopped
    std::uint64_t parked_sweep_ = 0; ///< the hub's sweep count when the writer parked
    core::waiter_queue writer_wake_; ///< the parked writer
    core::waiter_queue drained_;     ///< perform_close waiting for the queue to empty
    core::intrusive_list<space_request> space_waiters_; ///< unicasts waiting for room

    // Closing (the reason, when there is one, is in extras_).
    bool close_requested_ = false;
    bool close_performed_ = false;
    bool drain_first_ = false;
    bool aborted_ = false;
    std::uint16_t close_code_ = 0;
    const char* abort_reason_ = "";

    // Heartbeats: the hub's list this connection is in (idle or pinged), through its base hook.
    heartbeat_list* hb_list_ = nullptr;
    core::clock::time_point last_activity_{};
    core::clock::time_point ping_sent_{};
    std::uint64_t auto_seen_ = 0; ///< the session's own auto-response count at the last look

    std::uint64_t auto_sent_ = 0; ///< auto-responses queued
    bool has_attachment_ = false;
    /// Metadata, the auto-response and the close reason: made on first use (most connections
    /// never use them, and an idle one would carry their ~190 bytes for its whole life).
    std::unique_ptr<hub_connection_extras> extras_;
    hub_connection_extras& extras() {
        if (!extras_)
            extras_ = std::make_unique<hub_connection_extras>();
        return *extras_;
    }
};

} // namespace coronet::ws::detail
