#pragma once

#include <coronet/core/async_mutex.hpp>
#include <coronet/core/buffered_reader.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/memory_budget.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/stream.hpp>
#include <coronet/core/task.hpp>
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

/// What a send does when `max_queued_sends` senders already wait (a slow reader).
enum class slow_reader_policy : std::uint8_t {
    wait,  ///< wait like the others (back-pressure reaches the sender; see write_timeout)
    close, ///< close the session with 1008 and fail the send with errc::queue_full
    drop,  ///< drop this message: the send fails with errc::queue_full, the session goes on
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
    slow_reader_policy slow_reader = slow_reader_policy::wait;
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
    /// buffer, the message receive() assembles, an inflated piece. When the budget refuses, the
    /// session closes with 1013 (try again later), receive() fails with `errc::over_budget`,
    /// and `ws.over_budget` is counted. `ws::server` (and the http server in front of the
    /// http_ws bridge) refuse new connections with 503 while it is exhausted. Must outlive the
    /// session.
    core::memory_budget* memory_budget = &core::memory_budget::process();
};

/// A piece of a message from the streaming receive mode.
struct message_chunk {
    opcode type = opcode::text; ///< of the whole message
    std::string_view data;      ///< valid until the next receive call
    bool first = false;         ///< the message's first bytes
    bool last = false;          ///< the message is complete after these bytes
};

class session;

/// Event-style use of a session: override what you need; `run(session&, handler&)` drives the
/// session's receive loop and calls these on its coroutine.
class CORONET_WS_EXPORT session_handler_base {
public:
    virtual ~session_handler_base() = default;
    virtual void on_open(session&) {}
    /// Each whole message; may await sends.
    virtual core::task<void> on_message(session& s, message& m);
    virtual void on_ping(session&, std::string_view /*payload*/) {}
    virtual void on_pong(session&, std::string_view /*payload*/) {}
    /// The session ended: the peer's code and reason (1006 if it left without a close frame).
    virtual void on_close(session&, std::uint16_t /*code*/, std::string_view /*reason*/) {}
    /// A protocol error, timeout or transport error ended the session (on_close follows).
    virtual void on_error(session&, std::error_code) {}
};

/// Runs `h` on `s` until the session ends (see session_handler_base).
CORONET_WS_EXPORT core::task<void> run(session& s, session_handler_base& h);

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
    session(const session&) = delete;
    session& operator=(const session&) = delete;
    ~session();

    /// The next whole message. Pings are answered with pongs and pongs are dropped on the way.
    /// Errors: `errc::closed` after a close handshake (see close_code/close_reason), a protocol
    /// error (the session sent the matching close frame first), `errc::over_budget` (sent
    /// 1013; see session_options::memory_budget), the stream's errors
    /// (`core::errc::end_of_stream` when the peer left without a close frame: code 1006).
    core::task<core::result<message>> receive();

    /// Streaming receive: the next piece of a message as it arrives, without assembling it.
    /// Errors as receive().
    core::task<core::result<message_chunk>> receive_some();

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

    /// Codec-level auto-response: a text message whose payload equals `request` exactly (in one
    /// frame) is answered with a text message `response` by the receiving coroutine, and is not
    /// returned by receive() or receive_some() (e.g. a heartbeat "ping" -> "pong" that never
    /// wakes the application). Replaces an earlier pair.
    void set_auto_response(std::string request, std::string response);
    void clear_auto_response() noexcept;
    /// Messages answered by the auto-response so far.
    std::uint64_t auto_responses_sent() const noexcept { return auto_responses_sent_; }

    /// Graceful shutdown: when `going_away` fires, the session sends close 1001 ("going away")
    /// — at once if a receive() is waiting, else at the next receive() — and that receive ends
    /// with `errc::closed` after the peer's close frame or `close_timeout`. Pass a default token
    /// to clear. The token's source must outlive the session or be cleared first.
    void close_on(core::stop_token going_away) noexcept { going_away_ = going_away; }

    /// When bytes last arrived from the peer (core::clock).
    core::clock::time_point last_heard() const noexcept { return last_heard_; }

    /// The peer's close code (1005 if its close frame had none, 1006 if it left without one,
    /// 0 while open).
    std::uint16_t close_code() const noexcept { return close_code_; }
    const std::string& close_reason() const noexcept { return close_reason_; }
    bool is_open() const noexcept { return !close_sent_ && !close_received_; }
    /// The options the session was made with.
    const session_options& options() const noexcept { return opts_; }
    /// permessage-deflate as agreed in the handshake, or nullopt.
    const std::optional<deflate_params>& compression() const noexcept {
        return opts_.agreed_deflate;
    }
    role side() const noexcept { return role_; }
    /// Observer of pings and pongs (the event-style runner sets it); may be null.
    void set_observer(session_handler_base* h) noexcept { observer_ = h; }
    core::stream& stream() noexcept { return *stream_; }

private:
    core::task<core::result<void>> send_frame(opcode op, std::span<const std::byte> payload);
    core::task<core::result<void>> write_bounded(std::span<const core::const_buffer> parts);
    void abandon(std::error_code ec) noexcept;
    core::task<core::result<void>> send_close(std::uint16_t code, std::string_view reason);
    core::task<void> fail(std::error_code ec);
    /// One decoded data step (whole messages are assembled by the caller), or an error.
    core::task<core::result<message_chunk>> next_data();
    core::task<core::result<std::size_t>> fill_with_timers();
    core::task<core::result<std::size_t>> fill_until_close_deadline();
    core::task<std::error_code> fail_over_budget();

    core::stream_ptr stream_;
    role role_;
    session_options opts_;
    core::buffered_reader reader_;
    frame_decoder decoder_;
    core::async_mutex send_lock_;
    std::vector<std::byte> tx_; ///< header + masked copy of the payload (client role)
    // permessage-deflate, when agreed (null otherwise: no memory for plain sessions).
    std::unique_ptr<deflater> deflater_; ///< null also when our window is 8 bits (see deflater)
    std::unique_ptr<inflater> inflater_;
    std::vector<std::byte> zout_;    ///< the compressed message being sent
    std::string zin_;                ///< the inflated piece being returned
    core::memory_charge zin_charge_; ///< zin_'s bytes beyond 64 KiB
    utf8_validator zutf8_;           ///< inflated text, across pieces
    std::uint64_t inflated_size_ = 0;
    bool release_zin_ = false;
    bool receiving_ = false;
    session_handler_base* observer_ = nullptr;
    std::size_t queued_sends_ = 0;
    core::clock::time_point last_heard_;   ///< last bytes from the peer
    core::clock::time_point last_message_; ///< last message either way (idle timeout)
    bool ping_outstanding_ = false;
    core::clock::time_point ping_sent_;
    bool close_sent_ = false;
    bool close_received_ = false;
    core::clock::time_point close_deadline_{}; ///< for the peer's close, once ours went out
    core::stop_token going_away_;
    core::stop_source* fill_stop_ = nullptr; ///< the receive's wait for bytes, while it runs
    std::string auto_request_;
    std::string auto_response_;
    bool auto_respond_ = false;
    std::uint64_t auto_responses_sent_ = 0;
    std::uint16_t close_code_ = 0;
    std::string close_reason_;
    std::error_code abandoned_; ///< a write timed out: the session is over
};

} // namespace coronet::ws
