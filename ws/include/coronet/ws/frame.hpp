#pragma once

#include <coronet/ws/error.hpp>
#include <coronet/ws/export.hpp>
#include <coronet/ws/utf8.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>

namespace coronet::ws {

/// Frame opcodes (RFC 6455 §5.2). Others are reserved and refused with 1002.
enum class opcode : std::uint8_t {
    continuation = 0x0,
    text = 0x1,
    binary = 0x2,
    close = 0x8,
    ping = 0x9,
    pong = 0xA,
};

/// Which end this is: a server receives masked frames and sends unmasked ones; a client the
/// other way round (RFC 6455 §5.1).
enum class role : std::uint8_t { server, client };

/// Limits on what a peer may send; exceeding one closes with 1009. The defaults allow 16 MiB
/// messages with any number of fragments (bounded by the size alone).
struct frame_limits {
    std::uint64_t max_frame_size = 16 * 1024 * 1024;
    std::uint64_t max_message_size = 16 * 1024 * 1024;
    std::uint64_t max_fragments = 0; ///< 0: unlimited
};

/// XORs `data` with the 4-byte masking key (network order in `key`) starting at key byte
/// `offset % 4`, eight bytes at a time (RFC 6455 §5.3). Returns the offset after `data`.
CORONET_WS_EXPORT std::size_t apply_mask(std::span<std::byte> data, std::uint32_t key,
                                         std::size_t offset = 0) noexcept;

/// Writes a frame header into `out` (at least 14 bytes) and returns its size. `mask_key` is
/// used when `masked` (a client's frames); `rsv1` marks a compressed message's first frame.
CORONET_WS_EXPORT std::size_t encode_header(std::byte* out, opcode op, bool fin,
                                            std::uint64_t payload_size, bool masked = false,
                                            std::uint32_t mask_key = 0, bool rsv1 = false) noexcept;

/// Sans-I/O decoder of a peer's frames into message data and control frames, with every RFC
/// 6455 rule checked as the bytes arrive: RSV bits (RSV1 only when an extension owns it, on the
/// first frame of a data message), reserved opcodes, masking by role, minimal length encodings,
/// the 64-bit length's top bit, control frames (FIN, ≤ 125 bytes, may interleave a fragmented
/// message), continuation order, close payloads (length ≠ 1, valid code, UTF-8 reason), UTF-8
/// of uncompressed text incrementally and fail-fast, and the limits. Payload bytes are unmasked
/// in place in the caller's buffer. Not thread-safe.
class CORONET_WS_EXPORT frame_decoder {
public:
    explicit frame_decoder(role r, frame_limits limits = {}) noexcept : role_(r), limits_(limits) {}

    /// Lets RSV1 mark compressed messages (permessage-deflate negotiated). Text in a compressed
    /// message is not UTF-8 checked here: it must be checked after inflating.
    void allow_rsv1(bool on) noexcept { rsv1_allowed_ = on; }

    enum class kind : std::uint8_t {
        need_more, ///< feed more bytes (not an error)
        data,      ///< `payload` holds message bytes (possibly empty), see `message_end`
        control,   ///< a whole ping, pong or close frame in `payload`
        error,     ///< see `ec`; close the connection with close_code_of(ec)
    };
    struct step {
        kind what = kind::need_more;
        std::size_t consumed = 0;     ///< bytes of the input used; drop them before the next call
        std::span<std::byte> payload; ///< unmasked, a view into the input
        opcode op = opcode::continuation; ///< data: text/binary of the message; control: its opcode
        bool message_start = false;       ///< data: first bytes of a message
        bool message_end = false;         ///< data: the message is complete after these bytes
        bool compressed = false;          ///< data: the message has RSV1 set
        std::error_code ec;
    };

    /// Decodes from `in` (unconsumed bytes; the decoder unmasks them in place). A control frame
    /// is only returned once all of it is in `in`; data comes as it arrives.
    step decode(std::span<std::byte> in) noexcept;

    /// Payload bytes of the current data frame not yet returned (0 between frames).
    std::uint64_t frame_left() const noexcept { return in_payload_ ? remaining_ : 0; }
    /// True while a fragmented message is in progress.
    bool in_message() const noexcept { return in_message_; }
    void reset() noexcept;

private:
    step fail(errc e, std::size_t consumed) noexcept;

    role role_;
    frame_limits limits_;
    bool rsv1_allowed_ = false;
    // The frame whose payload is being read.
    bool in_payload_ = false;
    bool fin_ = false;
    bool masked_ = false;
    std::uint32_t mask_ = 0;
    std::size_t mask_offset_ = 0;
    std::uint64_t remaining_ = 0;
    // The message being assembled.
    bool in_message_ = false;
    bool message_started_ = false;
    bool compressed_ = false;
    opcode message_op_ = opcode::continuation;
    std::uint64_t message_size_ = 0;
    std::uint64_t fragments_ = 0;
    utf8_validator utf8_;
};

} // namespace coronet::ws
