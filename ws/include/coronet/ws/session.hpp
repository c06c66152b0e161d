#pragma once

#include <coronet/core/async_mutex.hpp>
#include <coronet/core/buffered_reader.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/stream.hpp>
#include <coronet/core/task.hpp>
#include <coronet/ws/error.hpp>
#include <coronet/ws/export.hpp>
#include <coronet/ws/frame.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace coronet::ws {

/// Session settings; every limit has a safe default.
struct session_options {
    frame_limits limits;
    /// After sending a close frame, how long to wait for the peer's before closing TCP.
    std::chrono::milliseconds close_timeout{5'000};
};

/// A whole received message.
struct message {
    opcode type = opcode::text;  ///< text or binary
    std::string data;            ///< the payload (UTF-8 checked for text)
    bool is_text() const noexcept { return type == opcode::text; }
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
    session(const session&) = delete;
    session& operator=(const session&) = delete;
    ~session();

    /// The next whole message. Pings are answered with pongs and pongs are dropped on the way.
    /// Errors: `errc::closed` after a close handshake (see close_code/close_reason), a protocol
    /// error (the session sent the matching close frame first), the stream's errors
    /// (`core::errc::end_of_stream` when the peer left without a close frame: code 1006).
    core::task<core::result<message>> receive();

    /// Sends a text message (must be UTF-8; not checked here) or a binary message, in one frame.
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

    /// The peer's close code (1005 if its close frame had none, 1006 if it left without one,
    /// 0 while open).
    std::uint16_t close_code() const noexcept { return close_code_; }
    const std::string& close_reason() const noexcept { return close_reason_; }
    bool is_open() const noexcept { return !close_sent_ && !close_received_; }
    role side() const noexcept { return role_; }
    core::stream& stream() noexcept { return *stream_; }

private:
    core::task<core::result<void>> send_frame(opcode op, std::span<const std::byte> payload);
    core::task<core::result<void>> send_close(std::uint16_t code, std::string_view reason);
    core::task<void> fail(std::error_code ec);
    core::task<core::result<message>> receive_impl();

    core::stream_ptr stream_;
    role role_;
    session_options opts_;
    core::buffered_reader reader_;
    frame_decoder decoder_;
    core::async_mutex send_lock_;
    std::vector<std::byte> tx_;  ///< header + masked copy of the payload (client role)
    bool receiving_ = false;
    bool close_sent_ = false;
    bool close_received_ = false;
    std::uint16_t close_code_ = 0;
    std::string close_reason_;
};

}  // namespace coronet::ws
