#pragma once

// Test helpers for ws::frame_decoder: building frames the way a peer does, and feeding bytes to
// a decoder the way a connection does (unconsumed bytes kept, the next read appended to them),
// with the step invariants checked on every call.

#include <coronet/ws/frame.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <ostream> // doctest prints std::error_code through it
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace coronet::ws::testing {

using bytes = std::vector<std::byte>;

inline bytes make_bytes(std::initializer_list<int> values) {
    bytes out;
    out.reserve(values.size());
    for (int v : values)
        out.push_back(static_cast<std::byte>(v));
    return out;
}

inline bytes to_bytes(std::string_view s) {
    bytes out(s.size());
    for (std::size_t i = 0; i < s.size(); ++i)
        out[i] = static_cast<std::byte>(s[i]);
    return out;
}

inline std::string to_string(std::span<const std::byte> b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

inline void append(bytes& out, std::span<const std::byte> more) {
    out.insert(out.end(), more.begin(), more.end());
}

/// One frame as a peer sends it: header from encode_header, payload masked with apply_mask
/// when `masked` (a client's frames).
inline bytes make_frame(opcode op, bool fin, std::string_view payload, bool masked,
                        std::uint32_t key = 0x37fa213d, bool rsv1 = false) {
    bytes out(14 + payload.size());
    const std::size_t header =
        encode_header(out.data(), op, fin, payload.size(), masked, key, rsv1);
    out.resize(header + payload.size());
    for (std::size_t i = 0; i < payload.size(); ++i)
        out[header + i] = static_cast<std::byte>(payload[i]);
    if (masked)
        apply_mask(std::span<std::byte>(out).subspan(header), key, 0);
    return out;
}

/// A client's frame (masked), as a server receives it.
inline bytes client_frame(opcode op, bool fin, std::string_view payload,
                          std::uint32_t key = 0x37fa213d, bool rsv1 = false) {
    return make_frame(op, fin, payload, true, key, rsv1);
}

/// A server's frame (unmasked), as a client receives it.
inline bytes server_frame(opcode op, bool fin, std::string_view payload) {
    return make_frame(op, fin, payload, false);
}

/// The role that receives frames masked as `f`'s second byte says.
inline role receiver_of(const bytes& f) {
    return (std::to_integer<int>(f.at(1)) & 0x80) != 0 ? role::server : role::client;
}

struct message {
    opcode op = opcode::continuation;
    std::string payload;
    bool compressed = false;
    bool operator==(const message&) const = default;
};

inline std::ostream& operator<<(std::ostream& os, const message& m) {
    return os << "message{op " << static_cast<int>(m.op) << " size " << m.payload.size() << "}";
}

/// What a decoder made of a byte stream: whole messages and control frames in arrival order
/// (as one list, so interleaving is compared too), and the error if it stopped on one.
struct outcome {
    std::vector<message> events; // data messages and control frames (op tells them apart)
    std::error_code ec;
    std::size_t error_feed = 0; // 1-based index of the feed() call that reported the error
    std::size_t feeds = 0;
    bool mid_message = false; // bytes of an unfinished message were seen at the end
    bool operator==(const outcome& o) const {
        return events == o.events && ec == o.ec && mid_message == o.mid_message;
    }
};

inline std::ostream& operator<<(std::ostream& os, const outcome& o) {
    os << "outcome{" << o.events.size() << " events";
    for (const auto& e : o.events)
        os << ' ' << e;
    return os << " ec " << o.ec.message() << " at feed " << o.error_feed << "}";
}

/// Feeds byte slices to one decoder like a connection: each slice is appended to the unconsumed
/// bytes, the decoder called until it needs more, and every call's `consumed` dropped (need_more
/// calls included). Checks each step: consumed within the input, payload a view into the
/// consumed bytes, message_start exactly on a message's first data, one op per message.
class feeder {
public:
    explicit feeder(role r, frame_limits limits = {}, bool allow_rsv1 = false)
        : decoder_(r, limits) {
        decoder_.allow_rsv1(allow_rsv1);
    }

    /// Returns false once the decoder has reported an error (then or earlier).
    bool feed(std::span<const std::byte> slice) {
        if (out_.ec)
            return false;
        ++out_.feeds;
        append(pending_, slice);
        for (;;) {
            const std::span<std::byte> in(pending_);
            const auto s = decoder_.decode(in);
            REQUIRE(s.consumed <= in.size());
            if (!s.payload.empty()) {
                CHECK(s.payload.data() >= in.data());
                CHECK(s.payload.data() + s.payload.size() <= in.data() + s.consumed);
            }
            switch (s.what) {
            case frame_decoder::kind::need_more:
                CHECK(s.payload.empty());
                break;
            case frame_decoder::kind::error:
                CHECK(s.ec);
                out_.ec = s.ec;
                out_.error_feed = out_.feeds;
                return false;
            case frame_decoder::kind::control:
                CHECK(s.consumed > 0);
                CHECK((s.op == opcode::close || s.op == opcode::ping || s.op == opcode::pong));
                out_.events.push_back({s.op, to_string(s.payload), false});
                break;
            case frame_decoder::kind::data:
                CHECK(s.consumed > 0);
                CHECK((s.op == opcode::text || s.op == opcode::binary));
                CHECK(s.message_start == !in_message_);
                if (s.message_start) {
                    current_ = {s.op, {}, s.compressed};
                    in_message_ = true;
                }
                CHECK(s.op == current_.op);
                CHECK(s.compressed == current_.compressed);
                current_.payload.append(to_string(s.payload));
                if (s.message_end) {
                    out_.events.push_back(current_);
                    in_message_ = false;
                }
                break;
            }
            pending_.erase(pending_.begin(),
                           pending_.begin() + static_cast<std::ptrdiff_t>(s.consumed));
            if (s.what == frame_decoder::kind::need_more) {
                // A need_more that consumed a header leaves nothing behind to decode.
                if (s.consumed == 0 || pending_.empty())
                    break;
            }
        }
        return true;
    }

    bool feed(const bytes& slice) { return feed(std::span<const std::byte>(slice)); }

    /// The outcome so far; `pending()` bytes are those not consumed yet.
    outcome result() const {
        outcome o = out_;
        o.mid_message = in_message_ || decoder_.in_message();
        return o;
    }
    std::size_t pending() const { return pending_.size(); }
    frame_decoder& decoder() { return decoder_; }

private:
    frame_decoder decoder_;
    bytes pending_;
    outcome out_;
    message current_;
    bool in_message_ = false;
};

/// Decodes `stream` in one read.
inline outcome decode_whole(role r, const bytes& stream, frame_limits limits = {},
                            bool allow_rsv1 = false) {
    feeder f(r, limits, allow_rsv1);
    f.feed(stream);
    return f.result();
}

/// Decodes `stream` one byte per read.
inline outcome decode_bytewise(role r, const bytes& stream, frame_limits limits = {},
                               bool allow_rsv1 = false) {
    feeder f(r, limits, allow_rsv1);
    for (std::size_t i = 0; i < stream.size(); ++i)
        if (!f.feed(std::span<const std::byte>(stream).subspan(i, 1)))
            break;
    return f.result();
}

/// Decodes `stream` in two reads split at `at`.
inline outcome decode_split(role r, const bytes& stream, std::size_t at, frame_limits limits = {},
                            bool allow_rsv1 = false) {
    feeder f(r, limits, allow_rsv1);
    const std::span<const std::byte> all(stream);
    if (f.feed(all.first(at)))
        f.feed(all.subspan(at));
    return f.result();
}

} // namespace coronet::ws::testing
