#pragma once

#include <coronet/core/async_mutex.hpp>
#include <coronet/core/buffered_reader.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/memory_budget.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/stream.hpp>
#include <coronet/core/task.hpp>
#include <coronet/core/with_stop.hpp>
#include <coronet/ws/deflate.hpp>
#include <coronet/ws/error.hpp>
#include <coronet/ws/export.hpp>
#include <coronet/ws/frame.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace coronet::ws {

/// A whole received message.
struct message {
    opcode type = opcode::text; ///< text or binary
    std::string data;           ///< the payload (UTF-8 checked for text)
    bool is_text() const noexcept { return type == opcode::text; }
};

/// What a send does for a slow reader, the one back-pressure vocabulary of ws: a session's
/// send when `max_queued_sends` senders already wait (`session_options::slow_reader`), a hub
/// broadcast when a receiver's queue has no room (`hub_options::on_full`).
enum class backpressure_policy : std::uint8_t {
    /// wait like the others (back-pressure reaches the sender; see write_timeout). A hub
    /// broadcast never waits: there `wait` drops, as `drop` does.
    wait,
    /// close the session with 1008 and fail the send with errc::queue_full: the close frame
    /// goes out right after the frame being written (whoever holds the send lock writes it),
    /// later sends fail with errc::closed. A peer that stops reading altogether never gets it;
    /// write_timeout ends such a session.
    close,
    drop, ///< drop this message: the send fails with errc::queue_full, the session goes on
};

/// Session settings; every limit has a safe default.
struct session_options {
    frame_limits limits;
    /// After sending a close frame, how long to wait for the peer's before closing TCP.
    std::chrono::milliseconds close_timeout{5'000};
    /// Keepalive: while receive() waits, a ping goes out after this long without traffic from
    /// the peer; zero disables keepalive pings.
    std::chrono::milliseconds ping_interval{0};
    /// After a keepalive ping, the peer has this long to send anything (a pong or data) before
    /// the session closes with 1011 and receive() fails with errc::keepalive_timeout.
    std::chrono::milliseconds pong_timeout{10'000};
    /// No message in either direction for this long closes the session with 1001
    /// (errc::idle_timeout); zero disables it.
    std::chrono::milliseconds idle_timeout{0};
    /// Senders that may wait for the send lock before `slow_reader` applies.
    std::size_t max_queued_sends = 64;
    backpressure_policy slow_reader = backpressure_policy::wait;
    /// Bounds each write to the peer, whatever `slow_reader` says: a message (or the frames of
    /// one send_prepared call) goes out in pieces of at most 256 KiB, and the peer must take
    /// each piece within this long (a slow but steady reader is never cut off; one that stops
    /// reading is). When a piece is not taken in time, the send fails with
    /// `core::errc::timed_out` and the session is over: part of a frame may be on the wire, so
    /// no close frame can follow; the connection is closed (close_code 1006), a running
    /// receive() fails with `core::errc::timed_out` and later sends with `errc::closed`. Zero
    /// disables the bound. Default 30 s (as http::server_options::write_timeout).
    std::chrono::milliseconds write_timeout{30'000};
    /// permessage-deflate as agreed in the opening handshake (nullopt: no compression).
    /// `ws::server`, `ws::connect` and the http_ws bridge set it from the handshake's result.
    std::optional<deflate_params> agreed_deflate;
    /// The compression policy when `agreed_deflate` is set: level, mem_level, min_size,
    /// skip_incompressible (the negotiation fields are the handshake's). `ws::server`,
    /// `ws::connect` and the bridge copy their handshake's deflate options here.
    deflate_options deflate;
    /// The total budget for buffered message bytes, shared with every server and session that
    /// names it (null: no budget). Charged beyond the first 64 KiB of each: the session's read
    /// buffer and the message receive() assembles (an inflated chunk is at most
    /// session::max_inflated_chunk, within that allowance). When the budget refuses, the
    /// session closes with 1013 (try again later), receive() fails with `errc::over_budget`,
    /// and `ws.over_budget` is counted. `ws::server` (and the http server in front of the
    /// http_ws bridge) refuse new connections with 503 while it is exhausted. Must outlive the
    /// session.
    core::memory_budget* memory_budget = &core::memory_budget::process();
};

/// A whole message as `session::receive_view()` lends it: `data` is valid until the next receive
/// call on the session (receive, receive_view, receive_some, or close()).
struct message_view {
    opcode type = opcode::text; ///< text or binary
    std::string_view data;      ///< the payload (UTF-8 checked for text)
    bool is_text() const noexcept { return type == opcode::text; }
};

/// A piece of a message from the streaming receive mode (see session::receive_some).
struct message_chunk {
    opcode type = opcode::text; ///< of the whole message
    std::string_view data;      ///< valid until the next receive call
    bool first = false;         ///< the message's first bytes
    bool last = false;          ///< the message is complete after these bytes
};

class session;

/// Told of the control frames a session receives (its `set_observer`): how the one handler
/// model (ws/handler.hpp) and the hub see pings and pongs. Handlers themselves are written as
/// a coroutine or a `ws::events`, not as an observer.
class CORONET_WS_EXPORT control_observer {
public:
    virtual ~control_observer() = default;
    /// A ping arrived; the session answers it with a pong of the same payload right after.
    /// `payload` (≤ 125 bytes) is valid during the call.
    virtual void on_ping(session&, std::string_view /*payload*/) {}
    /// A pong arrived. `payload` is valid during the call.
    virtual void on_pong(session&, std::string_view /*payload*/) {}
};

/// A WebSocket connection (RFC 6455) over any core::stream, as server or client, built after
/// the opening handshake from the stream plus the bytes already read past it (the http
/// takeover's `prefetched`, or the standalone handshake reader's leftovers).
///
/// One coroutine receives at a time; any number may send: sends are serialized by an internal
/// lock, and so are the pongs the receiver answers pings with. Protocol errors close the
/// connection with their code (1002, 1007, 1009) and surface as a `ws::errc`; the peer's close
/// code and reason are kept (`close_code`, `close_reason`). Not thread-safe (its loop's thread).
class CORONET_WS_EXPORT session {
public:
    session(core::stream_ptr stream, role r, std::vector<std::byte> prefetched = {},
            session_options opts = {});
    /// As above, with settings shared with other sessions: a server's sessions of the same
    /// settings hold one copy between them instead of one each. Throws std::invalid_argument
    /// when `opts` is null.
    /// (The options come first so that `session(stream, role, {}, {})` stays unambiguous.)
    session(std::shared_ptr<const session_options> opts, core::stream_ptr stream, role r,
            std::vector<std::byte> prefetched = {});
    session(const session&) = delete;
    session& operator=(const session&) = delete;
    ~session();

    /// The next whole message. Pings are answered with pongs and pongs are dropped on the way.
    /// Errors: `errc::closed` after a close handshake (see close_code/close_reason), a protocol
    /// error (the session sent the matching close frame first), `errc::over_budget` (sent
    /// 1013; see session_options::memory_budget), the stream's errors
    /// (`core::errc::end_of_stream` when the peer left without a close frame: code 1006).
    core::task<core::result<message>> receive();

    /// As receive(), without a copy: the message's bytes where the session holds them (in the
    /// read buffer, or where it inflated them), valid until the next receive call (close(),
    /// which reads the peer's close frame when nobody receives, counts as one). A message
    /// that came in one frame and one read costs no allocation and no copy; one in several
    /// frames or reads is assembled in a buffer of the session's, freed at the next receive
    /// call (an idle session holds none). Errors as receive().
    core::task<core::result<message_view>> receive_view();

    /// Streaming receive: the next piece of a message as it arrives, without assembling it.
    /// An uncompressed piece is what one read brought of a frame (at most the read buffer,
    /// `limits.max_frame_size` + 64 KiB); a compressed message is inflated a chunk of at most
    /// `max_inflated_chunk` bytes at a time, however well it compresses. A piece may be empty.
    /// Errors as receive().
    core::task<core::result<message_chunk>> receive_some();

    /// The most inflated bytes one receive_some() chunk of a compressed message holds (64 KiB,
    /// the memory budget's free allowance).
    static constexpr std::size_t max_inflated_chunk = 64 * 1024;

    /// Sends a text message (must be UTF-8; not checked here) or a binary message, in one frame,
    /// compressed when permessage-deflate was agreed and the policy says so.
    core::task<core::result<void>> send_text(std::string_view text);
    core::task<core::result<void>> send_binary(std::span<const std::byte> data);
    /// Sends a ping (payload ≤ 125 bytes).
    core::task<core::result<void>> ping(std::string_view payload);
    core::task<core::result<void>> ping() { return ping(std::string_view()); }
    /// Starts the closing handshake: sends close(code, reason) (code valid per RFC 6455 §7.4,
    /// reason ≤ 123 bytes of UTF-8), then — unless a receive() is running, which will see the
    /// reply — reads until the peer's close frame or `close_timeout`, and closes the stream.
    /// (No default arguments: g++ 12 destroys a coroutine's defaulted class-type argument
    /// twice.)
    core::task<core::result<void>> close(std::uint16_t code, std::string reason);
    /// close(1000, "").
    core::task<core::result<void>> close() { return close(1000, std::string()); }

    /// Writes frames the caller already encoded (server role: unmasked, e.g. one broadcast
    /// frame shared by many sessions) under the send lock, in one writev, in order with the
    /// session's other sends. The bytes must stay valid until the returned task completes.
    /// Errors: `errc::closed` after a close frame went out, `errc::protocol_error` in the
    /// client role (client frames must be masked per send), the stream's errors. The slow-reader
    /// policy does not apply: the caller keeps its own queue.
    core::task<core::result<void>> send_prepared(std::span<const core::const_buffer> frames);

    /// Codec-level auto-response: a message of `type` (text or binary) whose payload equals
    /// `request` exactly (in one frame) is answered with a message of the same type carrying
    /// `response` by the receiving coroutine, and is not returned by receive() or
    /// receive_some() (e.g. a heartbeat "ping" -> "pong" that never wakes the application).
    /// Replaces an earlier pair. Throws std::invalid_argument for another opcode.
    void set_auto_response(std::string request, std::string response, opcode type = opcode::text);
    void clear_auto_response() noexcept;
    /// Messages answered by the auto-response so far.
    std::uint64_t auto_responses_sent() const noexcept;

    /// Graceful shutdown: when `going_away` fires, the session sends close 1001 ("going away")
    /// — at once if a receive() is waiting, else at the next receive() — and that receive ends
    /// with `errc::closed` after the peer's close frame or `close_timeout`. Pass a default token
    /// to clear. The token's source must outlive the session or be cleared first.
    void close_on(core::stop_token going_away) noexcept;

    /// Takes the reader back without a stop token: the receive waiting for the peer now (or,
    /// when none waits, the next wait of a receive) ends with `core::errc::operation_canceled`,
    /// as if its caller's token had stopped, and the session stays open. A receive busy with
    /// something else (answering a ping, say) finishes that first. `close()` clears a request
    /// no receive took. For a host whose reader must notice a request of its own (the hub's
    /// close), at no cost per receive.
    void interrupt_receive() noexcept;

    /// When bytes last arrived from the peer (core::clock).
    core::clock::time_point last_heard() const noexcept;

    /// The peer's close code (1005 if its close frame had none, 1006 if it left without one,
    /// 0 while open).
    std::uint16_t close_code() const noexcept { return close_code_; }
    const std::string& close_reason() const noexcept;
    /// False once a close frame went either way (or the slow-reader policy queued ours).
    bool is_open() const noexcept { return !close_sent_ && !close_queued_ && !close_received_; }
    /// The options the session was made with.
    const session_options& options() const noexcept { return *opts_; }
    /// permessage-deflate as agreed in the handshake, or nullopt.
    const std::optional<deflate_params>& compression() const noexcept {
        return opts_->agreed_deflate;
    }
    role side() const noexcept { return role_; }
    /// Observer of pings and pongs (`ws::serve_session` and the hub set it); may be null. Must
    /// outlive the session or be cleared first.
    void set_observer(control_observer* h) noexcept { observer_ = h; }
    core::stream& stream() noexcept { return *stream_; }

private:
    struct receive_side;  // the message reader and the keepalive (session_receive_side.hpp)
    struct pending_event; // a decoded event assemble_rest() or next_data() acts on first (ditto)
    struct spare_parts;   // buffers many sessions never use, made on first use (ditto)
    spare_parts& spare();
    /// Interrupts the receive's wait when the going-away token fires (see close_on).
    struct away_hook : core::stop_callback_base {
        explicit away_hook(session* s) noexcept : stop_callback_base(&fire), self(s) {}
        static void fire(core::stop_callback_base* cb) noexcept;
        session* self;
    };

    /// receive() (Out = message) and receive_view() (Out = message_view): the common steps.
    template <class Out>
    core::task<core::result<Out>> assemble();
    /// What assemble()'s next decode asks for: a whole message to hand over, the plain wait
    /// for bytes (in the loop's lent buffer), any other wait for bytes (wait_for_bytes), or
    /// anything else (assemble_rest).
    enum class quick_step : std::uint8_t { message, wait, wait_any, other };
    quick_step next_quick(pending_event& p);
    /// The rest of a receive, from the event (or failed wait) assemble() left in `pending`.
    template <class Out>
    core::task<core::result<Out>> assemble_rest(pending_event& pending);
    core::task<core::result<void>> send_frame(opcode op, std::span<const std::byte> payload);
    bool slow_reader_refuses(opcode op) noexcept;
    bool compress(opcode op, std::span<const std::byte>& payload);
    std::size_t lay_out(opcode op, std::span<const std::byte> payload, bool rsv1,
                        std::byte (&header)[14], core::const_buffer (&parts)[2]);
    core::task<void> send_queued_close();
    core::task<core::result<void>> send_started(std::span<const core::const_buffer> frames);
    core::task<core::result<void>> send_at_once(std::span<const core::const_buffer> frames);
    /// The send lock when it is free and no close waits to go out, without a coroutine frame;
    /// otherwise false, and the caller awaits lock_for_send().
    bool try_lock_for_send() noexcept;
    core::task<core::result<void>> lock_for_send();
    void close_went_out() noexcept;
    core::result<bool> write_at_once(std::span<const core::const_buffer> parts,
                                     std::span<const core::const_buffer>& rest,
                                     core::const_buffer& tail);
    core::task<core::result<void>> write_bounded(std::span<const core::const_buffer> parts);
    core::task<core::result<void>> write_timed(std::span<const core::const_buffer> parts);
    void abandon(std::error_code ec) noexcept;
    core::task<core::result<void>> send_close(std::uint16_t code, std::string_view reason);
    core::task<void> fail(std::error_code ec);
    /// One decoded data step (whole messages are assembled by the caller), or an error.
    /// `first` (may be null) is an event already decoded, acted on before decoding more.
    core::task<core::result<message_chunk>> next_data(const pending_event* first);
    /// True when the next wait for bytes is the plain one that the receive calls run inline (no
    /// abandon, no close sent, no going-away yet, no keepalive timers).
    bool plain_wait() const noexcept;
    core::task<core::result<void>> wait_for_bytes();
    core::task<core::result<void>> fill_failed(std::error_code ec, bool interrupted);
    core::task<core::result<void>> answer_going_away();
    core::task<core::result<std::size_t>> fill_with_timers();
    core::task<core::result<std::size_t>> fill_until_close_deadline();
    core::task<std::error_code> fail_over_budget();
    core::task<core::result<void>> answer_ping(std::string_view payload);
    core::task<core::result<void>> answer_auto_response(opcode type, std::string_view reply);
    core::task<std::error_code> answer_close(std::uint16_t code, std::string_view reason);

    core::stream_ptr stream_;
    std::shared_ptr<const session_options> opts_; ///< often shared with other sessions
    core::buffered_reader reader_;
    std::unique_ptr<receive_side> rx_; ///< made with the session (one allocation)
    core::async_mutex send_lock_;
    // permessage-deflate, when agreed (null otherwise: no memory for plain sessions).
    std::unique_ptr<deflater> deflater_; ///< null also when our window is 8 bits (see deflater)
    control_observer* observer_ = nullptr;
    std::size_t queued_sends_ = 0;
    core::clock::time_point close_deadline_{}; ///< for the peer's close, once ours went out
    core::stop_token going_away_;
    core::interrupt_slot fill_wait_;     ///< the receive's wait for bytes
    away_hook away_{this};               ///< on going_away_ (destroyed before fill_wait_)
    std::unique_ptr<spare_parts> spare_; ///< null until a session needs one of them
    std::error_code abandoned_;          ///< a write timed out: the session is over
    std::uint16_t close_code_ = 0;
    role role_;
    bool receiving_ = false;
    bool close_sent_ = false;
    bool close_queued_ = false; ///< the slow-reader policy's 1008 waits for the send lock
    bool close_received_ = false;
    bool receive_interrupted_ = false; ///< interrupt_receive(), for the next wait to take
};

} // namespace coronet::ws
