#pragma once

// permessage-deflate (RFC 7692): the I/O-free negotiation shared by the standalone server, the
// client and the http_ws bridge, and the zlib codec the session uses.

#include <coronet/core/result.hpp>
#include <coronet/ws/export.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct z_stream_s; // zlib's, kept out of the public headers

namespace coronet::ws {

/// What both ends agreed on in the handshake (RFC 7692 §7.1). "server_*" parameters constrain
/// what the server compresses (and the client inflates), "client_*" the other direction.
struct deflate_params {
    bool server_no_context_takeover = false;  ///< the server resets its compressor per message
    bool client_no_context_takeover = false;  ///< the client resets its compressor per message
    std::uint8_t server_max_window_bits = 15; ///< LZ77 window of the server's compressor, 8-15
    std::uint8_t client_max_window_bits = 15; ///< LZ77 window of the client's compressor, 8-15
    bool operator==(const deflate_params&) const = default;
};

/// permessage-deflate settings, for either side. Off by default: compression costs CPU and,
/// with context takeover, memory per connection (docs/ws.md lists the cost of each setting).
struct deflate_options {
    /// Server: accept an offer. Client: make one.
    bool enabled = false;
    /// Server: always answer with server_no_context_takeover (the hub does, so one compressed
    /// broadcast frame fits every receiver). Client: offer it.
    bool server_no_context_takeover = false;
    /// Server: always ask the client to reset its context per message (the server then keeps
    /// no inflate state between messages). Client: offer it.
    bool client_no_context_takeover = false;
    /// Server: the largest window it compresses with (it also honours a smaller one the client
    /// asks for). Client: asked for when below 15. 8-15.
    std::uint8_t server_max_window_bits = 15;
    /// Server: the window it asks the client to compress with, when the offer allows (below
    /// 15). Client: offered with this value when below 15, else offered without a value. 8-15.
    std::uint8_t client_max_window_bits = 15;

    /// zlib compression level (0-9; -1: zlib's default, 6).
    int level = -1;
    /// zlib memLevel (1-9): memory for the compressor's hash tables, 2^(mem_level+9) bytes.
    int mem_level = 8;
    /// Messages shorter than this go uncompressed.
    std::size_t min_size = 64;
    /// Send a message uncompressed when compressing did not make it smaller. Only where this
    /// end keeps no compression context: with context takeover, once a message went through
    /// the compressor the peer's window must see it, so it is sent compressed.
    bool skip_incompressible = true;
};

/// One parameter of an extension offer or answer: `name[=value]` (a quoted value unquoted).
struct extension_param {
    std::string name;
    std::optional<std::string> value;
};

/// One element of a Sec-WebSocket-Extensions list (RFC 6455 §9.1).
struct extension {
    std::string name;
    std::vector<extension_param> params;
};

/// Parses the values of every Sec-WebSocket-Extensions field line (a list may span lines),
/// in order; empty list elements are skipped. `nullopt` if a value breaks the RFC 6455 §9.1
/// grammar (tokens, `;`, `=`, token or quoted-string values whose content is a token).
CORONET_WS_EXPORT std::optional<std::vector<extension>>
parse_extensions(std::span<const std::string_view> field_values);

/// The server's choice (RFC 7692 §5): the agreed parameters and the answer to send as the
/// Sec-WebSocket-Extensions value.
struct deflate_agreement {
    deflate_params params;
    std::string response;
};

/// Server side, I/O-free: the first acceptable permessage-deflate offer in `offers`, or
/// nullopt (compression off). Offers with unknown, repeated or invalid parameters are declined
/// (RFC 7692 §5.1), and so is everything when `opts.enabled` is false.
CORONET_WS_EXPORT std::optional<deflate_agreement>
negotiate_deflate(std::span<const extension> offers, const deflate_options& opts);

/// Client side: the Sec-WebSocket-Extensions value offering permessage-deflate per `opts`.
CORONET_WS_EXPORT std::string deflate_offer(const deflate_options& opts);

/// Client side: checks the server's Sec-WebSocket-Extensions answer (every field line's value)
/// against what `deflate_offer(opts)` offered. No answer: nullopt (no compression). Errors (the
/// client must fail the connection, RFC 7692 §5; both equal `errc::bad_handshake`):
/// `handshake_errc::unoffered_extension` for an extension other than permessage-deflate, or any
/// when `opts.enabled` is false; `handshake_errc::invalid_extension` for a malformed list, more
/// than one answer, a parameter that was not offered, repeated or out of range, a window larger
/// than requested, or a missing answer to server_no_context_takeover or server_max_window_bits
/// that was offered.
CORONET_WS_EXPORT core::result<std::optional<deflate_params>>
accept_deflate_answer(std::span<const std::string_view> field_values, const deflate_options& opts);

/// Compresses whole messages for one direction (RFC 7692 §7.2.1). With `no_context_takeover`
/// each message is compressed on its own and the zlib state is borrowed from a per-thread pool
/// only while compressing, so an idle deflater holds no memory; with context takeover it owns
/// its state (about 2^(window_bits+2) + 2^(mem_level+9) bytes) from its first message on. A
/// window of 8 bits cannot be produced by zlib's raw deflate: `usable()` is false then and the
/// session sends that direction uncompressed (always allowed). Not thread-safe.
class CORONET_WS_EXPORT deflater {
public:
    deflater(int window_bits, bool no_context_takeover, int level = -1, int mem_level = 8) noexcept;
    deflater(const deflater&) = delete;
    deflater& operator=(const deflater&) = delete;
    ~deflater();

    bool usable() const noexcept { return window_bits_ >= 9; }
    bool keeps_context() const noexcept { return !no_context_takeover_; }
    /// Compresses one whole message and appends it to `out` without the trailing
    /// 00 00 ff ff (§7.2.1). Throws std::bad_alloc if zlib cannot get memory.
    void compress(std::span<const std::byte> in, std::vector<std::byte>& out);

private:
    z_stream_s* z_ = nullptr;
    int window_bits_;
    bool no_context_takeover_;
    int level_;
    int mem_level_;
};

/// Inflates compressed messages for one direction (RFC 7692 §7.2.2), a piece at a time so that
/// messages can be streamed. State is pooled per thread between messages when the peer keeps
/// no context (`no_context_takeover`), owned from the first message on otherwise (about
/// 2^window_bits + 7 KiB). A peer that refers further back than the agreed window is refused
/// (1007) only when that history is no longer held (zlib checks distances against what it
/// holds: the window plus what the current call produced), so such a message may pass or fail
/// depending on how it was split. Not thread-safe.
class CORONET_WS_EXPORT inflater {
public:
    inflater(int window_bits, bool no_context_takeover) noexcept;
    inflater(const inflater&) = delete;
    inflater& operator=(const inflater&) = delete;
    ~inflater();

    /// Inflates the next `in` bytes of a compressed message and appends the result to `out`;
    /// `last`: the message ends with these bytes (the 00 00 ff ff tail is added here). Errors:
    /// `errc::message_too_big` once this call would append more than `max_out` bytes (a
    /// decompression bomb stops there, with at most `max_out` bytes held), `errc::invalid_payload`
    /// for data that is not a valid deflate stream. After an error, the next message starts
    /// from a fresh state.
    core::result<void> inflate(std::span<const std::byte> in, bool last, std::string& out,
                               std::size_t max_out);

    /// How far one inflate_some call got.
    struct progress {
        std::size_t consumed = 0; ///< bytes of `in` used (the rest is for the next call)
        bool done = false;        ///< all of `in` inflated (with `last`: the message ended)
    };
    /// The bounded form of inflate(), for streaming: appends at most `max_append` (> 0) bytes
    /// to `out`. When `done` is false, `out` is full: call again with the bytes of `in` past
    /// `consumed` (possibly none: zlib may still hold output) and the same `last`, until done.
    /// The caller enforces its own cap on the message's size; after stopping a message early it
    /// calls discard_message(). Errors: `errc::invalid_payload` as inflate(), after which the
    /// next message starts from a fresh state.
    core::result<progress> inflate_some(std::span<const std::byte> in, bool last, std::string& out,
                                        std::size_t max_append);

    /// Drops the message being inflated: the next one starts from a fresh state (with context
    /// takeover, the peer's later messages may then refer to history that is gone).
    void discard_message() noexcept;

private:
    core::result<bool> pump(std::span<const std::byte> in, std::string& out, std::size_t start,
                            std::size_t max_append, std::size_t& used);
    void finish_message() noexcept;
    z_stream_s* z_ = nullptr;
    int window_bits_;
    bool no_context_takeover_;
    bool ended_ = false;         ///< the data so far ended exactly with a BFINAL block
    bool fed_ = false;           ///< this message had payload bytes
    std::uint8_t tail_used_ = 0; ///< bytes of the 00 00 ff ff tail inflated so far
    bool in_tail_ = false;       ///< the message's own bytes are done, the tail is next
};

/// Compresses one whole message on its own (no context), for a frame shared by many receivers
/// (the hub's broadcast): the result inflates correctly at any receiver whose negotiated
/// window for the sender is at least `window_bits` (9-15). Appends to `out` without the tail.
CORONET_WS_EXPORT void compress_message(std::span<const std::byte> in, std::vector<std::byte>& out,
                                        int window_bits, int level = -1, int mem_level = 8);

} // namespace coronet::ws
