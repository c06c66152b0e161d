#pragma once

// The hub: many WebSocket sessions on one loop, with ids, rooms, broadcast, per-connection
// metadata and attachments, auto-responses, heartbeats and a bounded outgoing queue per
// connection. Guide: docs/ws_hub.md.

#include <coronet/core/buffer.hpp>
#include <coronet/core/intrusive_list.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/task.hpp>
#include <coronet/core/waiter_queue.hpp>
#include <coronet/core/with_stop.hpp>
#include <coronet/ws/backplane.hpp>
#include <coronet/ws/export.hpp>
#include <coronet/ws/frame.hpp>
#include <coronet/ws/handler.hpp>
#include <coronet/ws/handshake_info.hpp>
#include <coronet/ws/session.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace coronet::ws {

class attachment_store;
class hub;
class hub_connection;

/// Why a hub call failed (besides `ws::errc::closed`, the stream's and the store's errors).
enum class hub_errc {
    full = 1,   ///< the hub already has `max_connections` (the connection was closed with 1013)
    unknown_id, ///< adopt: the store holds no attachment for that id
    id_in_use,  ///< adopt: that id belongs to a live connection of this hub
    not_found,  ///< send_to: no live connection has that id
    queue_full, ///< send_to: the connection's queue has no room for the message now
};

/// The category of hub_errc, named "coronet.ws.hub".
CORONET_WS_EXPORT const std::error_category& hub_category() noexcept;

/// Makes an error_code of the hub category (found by ADL).
inline std::error_code make_error_code(hub_errc e) noexcept {
    return {static_cast<int>(e), hub_category()};
}

/// Where a hub connection is in its life.
enum class connection_state : std::uint8_t {
    connecting, ///< registered, `on_open` not yet called
    open,       ///< messages flow; broadcasts reach it
    closing,    ///< a close was requested (by the app, the hub's policy or a timeout) or the
                ///< peer's close arrived; broadcasts skip it, unicasts fail with errc::closed
    closed,     ///< ended; only seen inside `on_close`
};

/// Hub settings; every limit has a safe default.
struct hub_options {
    /// More registered connections than this are refused: `can_accept()` turns false (a server or
    /// bridge that asks it before the handshake answers 503), and `serve` closes an excess
    /// connection with 1013 (try again later).
    std::size_t max_connections = 10'000;
    /// Per-connection outgoing queue limit in bytes of encoded frames, counting the frames being
    /// written. A single frame larger than the limit is only accepted into an empty queue.
    std::size_t max_queued_bytes = 1024 * 1024;
    /// What a broadcast does when a receiver's queue is full (a unicast waits instead):
    /// `close` closes that connection with 1008 (policy violation) and drops its queued frames;
    /// `drop` (and `wait`: a broadcast never waits) drops this message for that connection only,
    /// and counts it.
    backpressure_policy on_full = backpressure_policy::close;
    /// Heartbeats: after this long without activity (a message or a piece of one, a ping or a
    /// pong from the peer) the hub pings a connection; zero disables heartbeats.
    std::chrono::milliseconds ping_interval{0};
    /// A pinged connection with no activity within this long is dropped (code 1006, see
    /// docs/ws_hub.md "Heartbeats").
    std::chrono::milliseconds pong_timeout{10'000};
    /// How often `heartbeats()` sweeps (real time).
    std::chrono::milliseconds sweep_interval{1'000};
    /// Bounds each closing handshake the hub starts (waiting for queued frames, the close frame's
    /// send and the peer's reply); a connection still alive after twice this is dropped.
    std::chrono::milliseconds close_timeout{5'000};
    /// The heartbeat clock (monotonic); null means core::clock::now. Tests inject a fake one.
    std::function<core::clock::time_point()> clock;
    /// Keep a connection's attachment in the store when the connection ends without a closing
    /// handshake (1006: the peer vanished, a heartbeat or close timeout), so that a reconnecting
    /// client can adopt it. By default every attachment is removed when its connection ends.
    bool keep_attachment_after_abnormal_close = false;
};

/// Hub-wide counters (monotonic since construction, except `connections`).
struct hub_stats {
    std::size_t connections = 0;       ///< registered now
    std::uint64_t accepted = 0;        ///< connections registered
    std::uint64_t refused = 0;         ///< over max_connections (closed with 1013)
    std::uint64_t broadcasts = 0;      ///< broadcast calls
    std::uint64_t frames_queued = 0;   ///< frames put in a queue (broadcasts, unicasts, pings,
                                       ///< pongs and auto-responses)
    std::uint64_t dropped = 0;         ///< broadcast frames dropped for a full queue (drop policy)
    std::uint64_t closed_slow = 0;     ///< connections closed with 1008 for a full queue
    std::uint64_t pings_sent = 0;      ///< heartbeat pings queued
    std::uint64_t timed_out = 0;       ///< connections dropped for a missing pong
    std::uint64_t aborted = 0;         ///< connections dropped without a closing handshake
    std::uint64_t published = 0;       ///< room broadcasts handed to the backplane
    std::uint64_t remote = 0;          ///< deliver_remote calls (messages from other processes)
    std::uint64_t from_loops = 0;      ///< broadcasts another loop of its hub_group handed it
    std::uint64_t forwarded = 0;       ///< send_to calls handed to the backplane (the id is not
                                       ///< in this process)
    std::uint64_t remote_unicasts = 0; ///< unicasts of other processes queued here
                                       ///< (deliver_remote_to)
    std::size_t writers = 0;           ///< connections' writer coroutines alive now: those with
                                       ///< frames queued or written within about two sweeps
    std::uint64_t writers_started = 0; ///< writer coroutines started (one per connection while
                                       ///< it keeps receiving; again after an idle sweep ended it)
};

/// A data message encoded once (header + payload in one `core::shared_buffer`) for any number
/// of receivers. Copies share the bytes. With permessage-deflate, `frame_for(c)` gives a
/// connection that agreed `server_no_context_takeover` a compressed frame, built on first use
/// once per distinct `server_max_window_bits` and shared by every such receiver (a message
/// compressed without context inflates at any receiver whose window is at least as large).
/// Connections whose server side keeps context (its compressor's window must match what the
/// peer saw), whose window is 8 bits, or messages under the session's `min_size` or that do not
/// shrink get the uncompressed frame, which is always valid.
///
/// Thread-safety: copies may live on different threads (the count is atomic), and `frame_for`
/// may be called on one object from several threads at once (each variant is still built once;
/// a thread that needs a variant another one is building waits for it), which is how a
/// `hub_group` shares one message between loops.
class CORONET_WS_EXPORT prepared_message {
public:
    /// Encodes an unmasked server frame (FIN set) of `type` (text or binary; text must be
    /// UTF-8, not checked here) holding a copy of `payload`. One allocation.
    prepared_message(opcode type, std::span<const std::byte> payload);
    /// A text message.
    static prepared_message text(std::string_view s) {
        return prepared_message(opcode::text, core::as_bytes(s));
    }
    /// A binary message.
    static prepared_message binary(std::span<const std::byte> b) {
        return prepared_message(opcode::binary, b);
    }
    /// Shares the frame and the compressed variants built so far.
    prepared_message(const prepared_message& o);
    prepared_message& operator=(const prepared_message& o);

    /// Text or binary.
    opcode type() const noexcept { return type_; }
    /// The payload's size (before any compression).
    std::size_t payload_size() const noexcept { return payload_size_; }
    /// The uncompressed frame, header included.
    const core::shared_buffer& frame() const noexcept { return plain_; }
    /// The frame to queue for `c` (see the class comment). Valid while this object lives.
    /// Throws std::bad_alloc if zlib cannot get memory.
    const core::shared_buffer& frame_for(const hub_connection& c) const;
    /// How many compressed variants were built (one per distinct window size used).
    std::size_t compressed_variants() const noexcept;

private:
    opcode type_;
    std::size_t payload_size_;
    core::shared_buffer plain_;
    // Per server_max_window_bits 9-15: 0 not built yet, 1 compressed_[i], 2 use plain_,
    // 3 being built by some thread.
    mutable std::atomic<std::uint8_t> variant_state_[7] = {};
    mutable core::shared_buffer compressed_[7];
};

/// A hub connection's handler (ws/handler.hpp): a coroutine callable as
/// `core::task<void>(ws::hub_connection&, ws::handshake_info&)` that owns the conversation
/// (calling `conn.receive()`; when it returns the connection is closed with 1000 after its
/// queued frames), or a `ws::events` whose hooks take `ws::context<ws::hub_connection, State>&`
/// (hooks written for `auto&` serve a `ws::session` as well). Every call runs on the hub's loop:
/// on_open and on_message on the connection's reader, on_close in `hub::serve` after it.
/// On a hub:
/// - on_ping comes before the session answers with a pong of the same payload (written by the
///   session directly, not through the connection's queue); it counts as heartbeat activity;
/// - on_pong is only a notification (heartbeats are the hub's own);
/// - on_close gets the peer's close code and reason, or 1006 and the hub's reason ("pong
///   timeout", "slow reader", "close timeout", "write failed", "handler threw", or empty when
///   the peer vanished) when no close frame was received. The connection is still in its rooms
///   then (state closed, so broadcasts skip it): a handler may tell the others it left. It
///   leaves them, and the registry, right after.
using hub_handler = any_handler<hub_connection>;

namespace detail {
struct hub_room;
struct hub_state;
struct hub_group_state;
class hub_connection_impl;
} // namespace detail

/// One WebSocket connection managed by a hub: its id, state, rooms, metadata, attachment and
/// outgoing queue. It lives in the coroutine frame that `hub::serve` (or the handler from
/// `as_session_handler`) runs it in: a pointer or reference to it is
/// valid until its `on_close` returns (look it up by id with `hub::find` when in doubt). Not
/// thread-safe: everything runs on the hub's loop.
class CORONET_WS_EXPORT hub_connection {
public:
    /// Not copyable: the hub, its rooms and its lists point at it.
    hub_connection(const hub_connection&) = delete;
    hub_connection& operator=(const hub_connection&) = delete;

    /// The hub-wide id: 64 random bits, unique among live connections and (with overwhelming
    /// probability) across restarts, never 0.
    std::uint64_t id() const noexcept { return id_; }
    /// Where the connection is in its life (see connection_state).
    connection_state state() const noexcept { return state_; }
    /// The request-target the connection was upgraded with (path and query).
    std::string_view target() const noexcept { return info_->target(); }
    /// Its opening handshake: path parameters, kept headers, subprotocol, agreed deflate, and
    /// the application's state slot (valid while the connection is).
    handshake_info& info() noexcept { return *info_; }
    const handshake_info& info() const noexcept { return *info_; }
    /// The underlying session (for its close code, subprotocol-level details, statistics). Send
    /// through the connection, not the session, so frames keep their queue order. A close the
    /// hub starts (close(), close_all, a slow reader's 1008) interrupts a receive made on it
    /// directly (session::interrupt_receive: `operation_canceled`) so the hub can run the
    /// close; receive through the connection instead.
    session& ws() noexcept { return *session_; }
    /// The hub this connection belongs to.
    hub& owner() noexcept { return *hub_; }

    // ---- rooms -----------------------------------------------------------------------------
    /// Joins `room` (created on first use). Returns false if already a member or not open.
    bool join(std::string_view room);
    /// Leaves `room` (an empty room is deleted). Returns false if not a member.
    bool leave(std::string_view room);
    /// True if a member of `room`.
    bool in_room(std::string_view room) const noexcept;
    /// The rooms this connection is in (views valid until it leaves them).
    std::vector<std::string_view> rooms() const;

    // ---- metadata --------------------------------------------------------------------------
    /// Sets a metadata value (string key -> string value), replacing an earlier one.
    void set_meta(std::string key, std::string value);
    /// The value of `key`, or null (valid until the key is set again or erased).
    const std::string* meta(std::string_view key) const noexcept;
    /// Removes `key`; false if it was not set.
    bool erase_meta(std::string_view key);
    /// Every metadata entry. A connection that never had one shares an empty map (its metadata
    /// is allocated on the first set_meta): take the reference again after set_meta.
    const std::map<std::string, std::string, std::less<>>& metadata() const noexcept;

    // ---- sending (unicast) -----------------------------------------------------------------
    /// Queues a text message (UTF-8, not checked) for this connection, waiting while its queue
    /// has no room for it. The bytes are copied before this returns (the view need not outlive
    /// the call). Completes once queued, in order with broadcasts; the writer sends it. Errors:
    /// `errc::closed` (closing or closed, also when it closes while waiting),
    /// `core::errc::operation_canceled` (the caller's stop token).
    core::task<core::result<void>> send_text(std::string_view text);
    /// As send_text, for a binary message.
    core::task<core::result<void>> send_binary(std::span<const std::byte> data);
    /// As send_text, for a prepared message (shared, not copied).
    core::task<core::result<void>> send(const prepared_message& m);
    /// Queues `m` only if the queue has room now (and no unicast is waiting): never waits, so it
    /// also works where awaiting is impossible (`on_open`). False when full or not open.
    bool try_send(const prepared_message& m);
    /// Queues a ping (RFC 6455 §5.5.2) carrying `payload` (at most 125 bytes, copied before this
    /// returns), in order with the connection's other frames, waiting for room as send_text.
    /// The peer's pong reaches `hub_handler::on_pong`; heartbeats stay the hub's own (this ping
    /// does not reset them, the pong counts as activity). Errors: `errc::protocol_error` when
    /// `payload` is longer than 125 bytes (nothing is queued, the connection goes on), and those
    /// of send_text.
    core::task<core::result<void>> ping(std::string_view payload);
    /// A ping with no payload (its frame is shared by every such ping of the hub).
    core::task<core::result<void>> ping();
    /// Queues an unsolicited pong (RFC 6455 §5.5.3: a one-way heartbeat the peer does not
    /// answer) carrying `payload`; otherwise as ping. Pongs answering the peer's pings are sent
    /// by the session itself.
    core::task<core::result<void>> pong(std::string_view payload);
    /// An unsolicited pong with no payload.
    core::task<core::result<void>> pong();
    /// Encoded bytes waiting in the outgoing queue (including frames being written).
    std::size_t queued_bytes() const noexcept;
    /// Broadcast frames dropped for this connection (drop policy).
    std::uint64_t dropped() const noexcept;

    // ---- receiving (coroutine style) -------------------------------------------------------
    /// The next whole message, for the coroutine-style body given to `hub::serve` (the event
    /// style calls it for you; one receiver at a time). Counts as heartbeat activity. Errors:
    /// `errc::closed` after a closing handshake (including one the hub or `close` started: the
    /// hub performs it here), the session's protocol and stream errors,
    /// `core::errc::operation_canceled` when the connection was dropped.
    core::task<core::result<message>> receive();
    /// Streaming receive for the coroutine-style body: the next piece of a message as it
    /// arrives, not assembled (as `session::receive_some`). `data` is valid until the next
    /// receive call on this connection. Heartbeat bookkeeping, closing and errors as receive().
    /// Auto-responses apply to whole messages here too: while the pieces of a message still
    /// spell the start of the request they are held back (at most the request's size); if the
    /// message turns out to be something else they are handed over with the piece that showed
    /// it, as one piece (`first` set).
    core::task<core::result<message_chunk>> receive_some();
    /// As receive(), without a copy (as `session::receive_view`): `data` is valid until the next
    /// receive call on this connection. Heartbeat bookkeeping, closing and errors as receive().
    core::task<core::result<message_view>> receive_view();

    // ---- closing ---------------------------------------------------------------------------
    /// Asks for a closing handshake with `code` (valid per RFC 6455 §7.4) and `reason` (≤ 123
    /// bytes of UTF-8) once the frames already queued are written, and returns at once. The
    /// connection's reader performs it (see docs/ws_hub.md "Closing"); bounded by the hub's
    /// close_timeout. Later calls are ignored.
    void close(std::uint16_t code, std::string reason);

    // ---- auto-responses --------------------------------------------------------------------
    /// Answers every message of `type` (text or binary) whose whole payload is exactly
    /// `request` with a message of the same type holding `response` (e.g. text "ping" ->
    /// "pong"), without handing the request to the handler or to receive()/receive_some(). A
    /// message of the other type with the same bytes is delivered as usual. Matched by the
    /// connection's reader on the whole message (however it was fragmented); the answer, encoded
    /// once here, goes through the outgoing queue in order with the other frames and waits for
    /// room as a unicast (the reader reads nothing meanwhile). Counts as heartbeat activity. One
    /// rule per connection; a new call replaces it. Throws std::invalid_argument for another
    /// opcode.
    void set_auto_response(std::string request, std::string response, opcode type = opcode::text);
    /// Removes the auto-response.
    void clear_auto_response() noexcept;
    /// Requests answered so far (counted when the answer is queued).
    std::uint64_t auto_responses_sent() const noexcept;

    // ---- attachment ------------------------------------------------------------------------
    /// Stores `data` as this connection's attachment (replacing an earlier one) in the hub's
    /// store under id(). Errors: the store's. Must complete before the connection ends (call it
    /// from the connection's own handler).
    core::task<core::result<void>> set_attachment(std::vector<std::byte> data);
    /// The attachment, or nullopt if none. Errors: the store's.
    core::task<core::result<std::optional<std::vector<std::byte>>>> attachment();
    /// Removes the attachment. Errors: the store's.
    core::task<core::result<void>> clear_attachment();

private:
    // Everything else a connection holds (its queue and writer, rooms, metadata, closing and
    // heartbeat state, auto-response) lives in detail::hub_connection_impl (ws/src), the type
    // `hub::serve` keeps in its coroutine frame: not in this header, and no allocation more.
    friend class detail::hub_connection_impl;
    friend class prepared_message;

    hub_connection(hub& h, session& s, std::uint64_t id, handshake_info& info) noexcept
        : hub_(&h), session_(&s), id_(id), info_(&info) {}
    ~hub_connection() = default;

    hub* hub_;
    session* session_;
    std::uint64_t id_;
    handshake_info* info_;
    connection_state state_ = connection_state::connecting;
};

/// A registry of WebSocket connections on one loop, with rooms, broadcast, heartbeats and
/// attachments (docs/ws_hub.md). Plug it into any server: the handler of `ws::server` (or an
/// http_ws upgrade route) calls `serve(session, info, handler)` for each session. A hub belongs
/// to the loop it is used on and is not thread-safe; a multi-loop server uses a `hub_group`,
/// one hub per loop linked into one (ws/hub_group.hpp; where a member says "in a group", it
/// describes a hub of one). Must outlive every `serve` call (destroying it with live
/// connections is a broken invariant: std::terminate).
class CORONET_WS_EXPORT hub {
public:
    /// A hub with an in-memory attachment store.
    explicit hub(hub_options opts = {});
    /// A hub with the given attachment store (non-null).
    hub(hub_options opts, std::unique_ptr<attachment_store> store);
    /// Not copyable: connections point at it.
    hub(const hub&) = delete;
    hub& operator=(const hub&) = delete;
    /// Requires that no connection is registered (std::terminate otherwise).
    ~hub();

    // ---- connections -----------------------------------------------------------------------
    /// True while fewer than `max_connections` are registered and the hub is not closing: ask
    /// before the opening handshake and answer 503 when false.
    bool can_accept() const noexcept;
    /// Runs one connection: registers it (or closes it with 1013 when the hub is full, 1001 while
    /// it is closing), runs `h` (see hub_handler) until it ends, then
    /// unregisters it. `info` is the connection's handshake (an http_ws route's, with its path
    /// parameters and state, or ws::server's; move it in), kept for the connection's life as
    /// `hub_connection::info()`. `s` must outlive the call. Cancelled through the caller's stop
    /// token (the connection is then dropped without a close frame).
    core::task<void> serve(session& s, handshake_info info, hub_handler h);
    /// A session handler that runs each session on this hub with `h`: hand it to `ws::server` or
    /// an http_ws upgrade route (the handshake's path parameters and state come along). The hub
    /// must outlive every session it serves.
    session_handler as_session_handler(hub_handler h);

    /// The live connection with `id` on this hub's loop, or null (in a group, see visit).
    hub_connection* find(std::uint64_t id) noexcept;
    /// Queues `m` for connection `id` if its queue has room now (never waits, like try_send),
    /// in order with its other frames; in a group, on whichever loop owns it (the caller moves
    /// to that loop and back, and `m`'s frame is shared, not copied). An id that is not in this
    /// process goes to the backplane when it carries unicasts (`backplane::send_to`; counted in
    /// `stats().forwarded`, and a success: delivery is then at most once, with no answer).
    /// Errors: `hub_errc::not_found`, `errc::closed` (not open), `hub_errc::queue_full`.
    core::task<core::result<void>> send_to(std::uint64_t id, prepared_message m);
    /// Calls `f` with connection `id` on the loop that owns it (this one, or in a group any
    /// loop: the caller moves there and back). True if the connection was live (any state but
    /// closed) and `f` ran. `f` must not wait; it may send (try_send), join, leave and close.
    core::task<bool> visit(std::uint64_t id, std::function<void(hub_connection&)> f);
    /// Registered connections (of this loop).
    std::size_t size() const noexcept;
    /// Calls `f` for every registered connection (f may send, join, leave and close, which never
    /// unregisters synchronously).
    void for_each(const std::function<void(hub_connection&)>& f);

    // ---- rooms -----------------------------------------------------------------------------
    /// Members of `room` (0 if it does not exist); in a group, on every loop.
    std::size_t room_size(std::string_view room) const;
    /// True if connection `id` of this loop is a member of `room`.
    bool is_member(std::string_view room, std::uint64_t id) const noexcept;
    /// Names of the rooms that have members; in a group, on any loop.
    std::vector<std::string> room_names() const;
    /// Calls `f` for every member of `room` on this loop (same rules as for_each).
    void for_each_member(std::string_view room, const std::function<void(hub_connection&)>& f);

    // ---- broadcast: never waits; the frame is shared by every receiver ----------------------
    /// Queues `m` for every open connection (in a group, of every loop). Returns how many of this
    /// loop received it (a full queue applies `on_full` instead); other loops deliver after the
    /// call, each counting `from_loops`.
    std::size_t broadcast(const prepared_message& m);
    /// As broadcast, skipping connection `except_id`.
    std::size_t broadcast_except(const prepared_message& m, std::uint64_t except_id);
    /// Queues `m` for every open member of `room` (in a group, on every loop where it has
    /// members; the returned count is this loop's, as for broadcast).
    std::size_t broadcast_room(std::string_view room, const prepared_message& m);
    /// As broadcast_room, skipping connection `except_id`.
    std::size_t broadcast_room_except(std::string_view room, const prepared_message& m,
                                      std::uint64_t except_id);

    // ---- backplane: rooms shared with other processes (docs/scaling.md) --------------------
    /// Gives the hub a backplane (null: none, the default). From then on it hears of every room
    /// that gets its first local member or loses its last (`room_opened` is called at once for
    /// the rooms that have members now), and every `broadcast_room`/`broadcast_room_except` is
    /// also handed to it once (`backplane::publish`, counted in `stats().published`). Not owned:
    /// it must outlive the hub or be replaced (set null) first. The previous backplane, if any,
    /// is forgotten without calls. In a group it serves every loop (see hub_group): its calls
    /// come on this hub's loop, and rooms are those of the process.
    void set_backplane(backplane* b);
    /// The backplane, or null.
    backplane* current_backplane() const noexcept;
    /// Queues `m` for every open member of `room`, like broadcast_room, without handing it to
    /// the backplane: what a backplane calls with a message another process published (counted
    /// in `stats().remote`, not in `broadcasts`); in a group, on every loop. Returns how many of
    /// this loop received it.
    std::size_t deliver_remote(std::string_view room, const prepared_message& m);
    /// Queues `m` for connection `id` if this process has it (try_send: never waits), without
    /// handing it to the backplane: what a backplane calls with a unicast another process sent.
    /// In a group, a connection of another loop gets it there, after this returns (counted in
    /// that hub's `stats().remote_unicasts`). True if queued here or handed to its loop.
    bool deliver_remote_to(std::uint64_t id, const prepared_message& m);

    // ---- heartbeats ------------------------------------------------------------------------
    /// One heartbeat sweep at `options().clock` now: pings connections idle for ping_interval
    /// and drops those pinged pong_timeout ago without activity since (not when ping_interval
    /// is zero), and ends the writer coroutine of each connection that had nothing to write
    /// since the previous sweep (it starts again with the next frame queued), so idle
    /// connections hold no writer. Work is proportional to the connections that expired, not
    /// to all.
    void sweep();
    /// Sweeps every `sweep_interval` until the caller's stop token fires. Run it on every hub:
    /// without it, writers are not ended when idle (more memory per idle connection) and there
    /// are no pings.
    core::task<void> heartbeats();

    // ---- shutdown --------------------------------------------------------------------------
    /// Stops accepting (can_accept() is false from now on, serve refuses with 1001), asks every
    /// connection to close with `code`/`reason` after its queued frames, and waits until all have
    /// ended (each bounded by close_timeout, then dropped) or the caller's stop token fires.
    core::task<void> close_all(std::uint16_t code, std::string reason);

    // ---- attachments -----------------------------------------------------------------------
    /// The attachment store.
    attachment_store& store() noexcept;
    /// Ids with an attachment in the store that belong to no live connection of this hub (what
    /// an earlier process left). Errors: the store's.
    core::task<core::result<std::vector<std::uint64_t>>> leftover_attachments();
    /// Moves the attachment of `old_id` (a leftover the app proved the peer owns) to `c`: it is
    /// stored under c.id() and then removed under old_id, so a second adopt of old_id fails with
    /// hub_errc::unknown_id (a crash between the two steps leaves both copies, never none).
    /// Errors: hub_errc::id_in_use (old_id is live here), hub_errc::unknown_id, `errc::closed`
    /// (c is not open), the store's. `c` must stay alive until it completes (call it from c's
    /// handler).
    core::task<core::result<void>> adopt(hub_connection& c, std::uint64_t old_id);

    // ---- observation -----------------------------------------------------------------------
    /// Counters.
    const hub_stats& stats() const noexcept;
    /// The options it was built with.
    const hub_options& options() const noexcept;
    /// The hub's clock (options().clock or core::clock::now).
    core::clock::time_point now() const;

private:
    friend class detail::hub_connection_impl;
    friend struct detail::hub_state;
    friend struct detail::hub_group_state;
    friend class hub_group;
    std::size_t deliver_local(const std::string_view* room, const prepared_message& m,
                              std::uint64_t except_id);
    /// serve's body, with `info` and `h` kept by the caller (as_session_handler's server keeps
    /// both for the connection's life): a hub member's frame holds no copy of them.
    core::task<void> run_member(session& s, handshake_info& info, const hub_handler& h);
    core::task<void> refuse(session& s);
    core::task<void> serve_member(session& s, handshake_info& info, const hub_handler& h);
    /// serve_member's teardown after the connection's scope ended; true when its attachment is
    /// to be removed from the store. `failed`: what on_close threw.
    bool end_member(detail::hub_connection_impl& c, connection_handler<hub_connection>& run,
                    std::exception_ptr& failed);
    core::task<void> run_handler(detail::hub_connection_impl& c,
                                 connection_handler<hub_connection>& run);
    std::size_t deliver(detail::hub_connection_impl& c, const prepared_message& m);

    std::unique_ptr<detail::hub_state> state_;
};

} // namespace coronet::ws

template <>
struct std::is_error_code_enum<coronet::ws::hub_errc> : std::true_type {};
