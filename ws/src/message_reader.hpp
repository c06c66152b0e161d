#pragma once

// The receiving half of a session without its I/O: bytes from the peer in, events out.

#include <coronet/ws/deflate.hpp>
#include <coronet/ws/error.hpp>
#include <coronet/ws/export.hpp>
#include <coronet/ws/frame.hpp>
#include <coronet/ws/session.hpp>
#include <coronet/ws/utf8.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

namespace coronet::ws::detail {

/// Sans-I/O reader of a peer's messages (RFC 6455 §5-§8, RFC 7692 §7.2.2): owns the frame
/// decoder, inflating, UTF-8 validation of inflated text (incrementally, across pieces), the
/// control-frame policy and auto-response matching. The session's driver hands it the bytes it
/// holds and acts on each event: reads more, returns data, sends a pong, an auto-response or a
/// close, or fails the connection. Not thread-safe.
///
/// Feeding rule (as frame_decoder): pass every unconsumed byte, drop `consumed` bytes after each
/// call, append new bytes after the unconsumed ones. Bytes of a compressed frame that are not
/// inflated yet stay unconsumed at the front of the input, so no event's view outlives the
/// bytes it points into.
class CORONET_WS_EXPORT message_reader {
public:
    /// `limits` are the application's: with compression, `max_message_size` caps the inflated
    /// size and the wire limits get a little slack (data that does not compress grows).
    /// `agreed`: permessage-deflate as agreed (nullopt: none). Each data event of a compressed
    /// message carries at most `max_chunk` (> 0) inflated bytes.
    message_reader(role r, const frame_limits& limits, const std::optional<deflate_params>& agreed,
                   std::size_t max_chunk = session::max_inflated_chunk);
    message_reader(const message_reader&) = delete;
    message_reader& operator=(const message_reader&) = delete;
    ~message_reader();

    /// What the driver must do.
    enum class kind : std::uint8_t {
        need_more,     ///< read more bytes, then call again
        data,          ///< `chunk`: the next piece of a message (possibly empty)
        ping,          ///< answer with a pong carrying `payload` (RFC 6455 §5.5.2)
        pong,          ///< `payload`: a pong, to observe (nothing to answer)
        auto_response, ///< a message equal to the auto-response request: send `payload` as a
                       ///< message of the request's type (`chunk.type`)
        close,         ///< the peer's close frame: `close_code` (1005 if none) and `payload` (its
                       ///< reason); echo it unless ours went out, then end (RFC 6455 §5.5.1)
        error,         ///< `ec`: send close_code_of(ec) and drop the connection (RFC 6455 §7.1.7)
    };
    /// One event. Views (`chunk.data`, `payload`) point into the input or into the reader and
    /// stay valid until the next call or until the input's consumed bytes are dropped and more
    /// are read, whichever comes first.
    struct event {
        kind what = kind::need_more;
        std::size_t consumed = 0;     ///< bytes of the input used; drop them before the next call
        message_chunk chunk;          ///< data; auto_response: only `type`
        std::string_view payload;     ///< ping, pong, auto_response, close
        std::uint16_t close_code = 0; ///< close
        std::error_code ec;           ///< error
    };

    /// Decodes from `in` (unconsumed bytes; payloads are unmasked in place).
    event next(std::span<std::byte> in);

    /// How many more bytes the driver may usefully read: the rest of a large frame (up to
    /// 1 MiB). Only a hint; a frame's announced length must not turn into memory on its own.
    std::size_t read_hint() const noexcept;

    /// A one-frame message of `type` (text or binary) equal to `request` becomes an
    /// auto_response event carrying `response` instead of data. Replaces an earlier pair.
    void set_auto_response(std::string request, std::string response, opcode type);
    void clear_auto_response() noexcept;
    /// The driver answered an auto_response event.
    void count_auto_response() noexcept { ++auto_responses_; }
    /// Auto-responses answered so far.
    std::uint64_t auto_responses() const noexcept { return auto_responses_; }

private:
    struct auto_pair {
        std::string request;
        std::string response;
        opcode type = opcode::text;
    };

    event inflate_next(std::span<std::byte> in, std::size_t skip);
    event data_event(message_chunk c, std::size_t consumed) const;
    static event control_event(const frame_decoder::step& s);
    static event error_event(std::error_code ec, std::size_t consumed);

    // Inflating's state, made only when permessage-deflate was agreed: a plain session's
    // reader carries none of it.
    struct inflating_state {
        inflating_state(int bits, bool reset) : z(bits, reset) {}
        inflater z;
        // The compressed frame piece being inflated (its bytes at the front of the input).
        std::string zin; ///< the inflated chunk handed out last
        std::uint64_t inflated_size = 0;
        std::size_t pending = 0; ///< bytes of the piece not given to the inflater yet
        utf8_validator utf8;
        opcode op = opcode::text;
        bool active = false;      ///< a piece is not fully inflated yet
        bool piece_ends = false;  ///< the piece ends its message
        bool first = false;       ///< the next chunk is the message's first
        bool release_zin = false; ///< a compressed message ended: trim zin on the next call
    };

    frame_decoder decoder_;
    std::unique_ptr<inflating_state> z_; ///< null without permessage-deflate
    std::unique_ptr<auto_pair> auto_;    ///< null while no auto-response is set
    std::uint64_t auto_responses_ = 0;
    std::uint64_t max_message_size_;
    std::size_t max_chunk_;
};

} // namespace coronet::ws::detail
