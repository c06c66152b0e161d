// RFC 6455 §5 framing, decoded without copying: payloads are unmasked in place.
#include <coronet/ws/frame.hpp>

#include <cstring>

namespace coronet::ws {

std::size_t apply_mask(std::span<std::byte> data, std::uint32_t key, std::size_t offset) noexcept {
    unsigned char k[4] = {static_cast<unsigned char>(key >> 24),
                          static_cast<unsigned char>(key >> 16),
                          static_cast<unsigned char>(key >> 8), static_cast<unsigned char>(key)};
    auto* p = reinterpret_cast<unsigned char*>(data.data());
    std::size_t n = data.size();
    std::size_t i = 0;
    // Bring the key into phase, then XOR eight bytes at a time with the key repeated twice.
    while (i < n && ((offset + i) & 3) != 0) {
        p[i] ^= k[(offset + i) & 3];
        ++i;
    }
    unsigned char k8[8] = {k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]};
    std::uint64_t w8;
    std::memcpy(&w8, k8, 8);
    for (; i + 8 <= n; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, p + i, 8);
        w ^= w8;
        std::memcpy(p + i, &w, 8);
    }
    for (; i < n; ++i)
        p[i] ^= k[(offset + i) & 3];
    return offset + n;
}

std::size_t encode_header(std::byte* out, opcode op, bool fin, std::uint64_t payload_size,
                          bool masked, std::uint32_t mask_key, bool rsv1) noexcept {
    auto* o = reinterpret_cast<unsigned char*>(out);
    o[0] = static_cast<unsigned char>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) |
                                      static_cast<unsigned>(op));
    std::size_t n = 2;
    const unsigned char mask_bit = masked ? 0x80 : 0;
    if (payload_size < 126) {
        o[1] = static_cast<unsigned char>(mask_bit | payload_size);
    } else if (payload_size <= 0xFFFF) {
        o[1] = mask_bit | 126;
        o[2] = static_cast<unsigned char>(payload_size >> 8);
        o[3] = static_cast<unsigned char>(payload_size);
        n = 4;
    } else {
        o[1] = mask_bit | 127;
        for (int i = 0; i < 8; ++i)
            o[2 + i] = static_cast<unsigned char>(payload_size >> (56 - 8 * i));
        n = 10;
    }
    if (masked) {
        o[n] = static_cast<unsigned char>(mask_key >> 24);
        o[n + 1] = static_cast<unsigned char>(mask_key >> 16);
        o[n + 2] = static_cast<unsigned char>(mask_key >> 8);
        o[n + 3] = static_cast<unsigned char>(mask_key);
        n += 4;
    }
    return n;
}

void frame_decoder::reset() noexcept {
    in_payload_ = fin_ = masked_ = false;
    mask_ = 0;
    mask_offset_ = 0;
    remaining_ = 0;
    in_message_ = message_started_ = compressed_ = false;
    message_op_ = opcode::continuation;
    message_size_ = fragments_ = 0;
    utf8_.reset();
}

frame_decoder::step frame_decoder::fail(errc e, std::size_t consumed) noexcept {
    step s;
    s.what = kind::error;
    s.ec = make_error_code(e);
    s.consumed = consumed;
    return s;
}

frame_decoder::step frame_decoder::decode(std::span<std::byte> in) noexcept {
    const auto* b = reinterpret_cast<const unsigned char*>(in.data());
    if (!in_payload_) {
        if (in.size() < 2)
            return {};
        const bool fin = (b[0] & 0x80) != 0;
        const bool rsv1 = (b[0] & 0x40) != 0;
        if ((b[0] & 0x30) != 0)
            return fail(errc::protocol_error, 0); // RSV2/RSV3: no extension owns them
        const unsigned raw_op = b[0] & 0x0F;
        const bool masked = (b[1] & 0x80) != 0;
        std::uint64_t len = b[1] & 0x7F;
        std::size_t header = 2;
        if (len == 126) {
            if (in.size() < 4)
                return {};
            len = (std::uint64_t{b[2]} << 8) | b[3];
            if (len < 126)
                return fail(errc::protocol_error, 0); // not the minimal encoding
            header = 4;
        } else if (len == 127) {
            if (in.size() < 10)
                return {};
            len = 0;
            for (int i = 0; i < 8; ++i)
                len = (len << 8) | b[2 + i];
            if (len >> 63)
                return fail(errc::protocol_error, 0);
            if (len <= 0xFFFF)
                return fail(errc::protocol_error, 0);
            header = 10;
        }
        if (masked != (role_ == role::server))
            return fail(errc::protocol_error, 0);
        if (masked) {
            if (in.size() < header + 4)
                return {};
            mask_ = (std::uint32_t{b[header]} << 24) | (std::uint32_t{b[header + 1]} << 16) |
                    (std::uint32_t{b[header + 2]} << 8) | b[header + 3];
            header += 4;
        }

        const bool control = raw_op >= 0x8;
        if (control) {
            if (raw_op > 0xA)
                return fail(errc::protocol_error, 0);
            if (!fin || len > 125)
                return fail(errc::protocol_error, 0);
            if (rsv1)
                return fail(errc::protocol_error, 0);
            if (in.size() < header + len)
                return {}; // control frames are returned whole
            step s;
            s.what = kind::control;
            s.op = static_cast<opcode>(raw_op);
            s.consumed = header + static_cast<std::size_t>(len);
            s.payload = in.subspan(header, static_cast<std::size_t>(len));
            if (masked)
                apply_mask(s.payload, mask_, 0);
            if (s.op == opcode::close) {
                if (len == 1)
                    return fail(errc::protocol_error, 0);
                if (len >= 2) {
                    const auto* pl = reinterpret_cast<const unsigned char*>(s.payload.data());
                    std::uint16_t code = static_cast<std::uint16_t>((pl[0] << 8) | pl[1]);
                    if (!valid_close_code(code))
                        return fail(errc::invalid_close_code, 0);
                    utf8_validator v;
                    if (!v.feed(s.payload.subspan(2)) || !v.complete())
                        return fail(errc::invalid_payload, 0);
                }
            }
            return s;
        }

        if (raw_op > 0x2)
            return fail(errc::protocol_error, 0);
        const opcode op = static_cast<opcode>(raw_op);
        if (op == opcode::continuation) {
            if (!in_message_)
                return fail(errc::protocol_error, 0);
            if (rsv1)
                return fail(errc::protocol_error, 0); // RSV1 only on a message's first frame
        } else {
            if (in_message_)
                return fail(errc::protocol_error, 0); // a new message inside one
            if (rsv1 && !rsv1_allowed_)
                return fail(errc::protocol_error, 0);
            in_message_ = true;
            message_started_ = false;
            message_op_ = op;
            compressed_ = rsv1;
            message_size_ = 0;
            fragments_ = 0;
            utf8_.reset();
        }
        if (len > limits_.max_frame_size)
            return fail(errc::message_too_big, 0);
        if (len > limits_.max_message_size - message_size_)
            return fail(errc::message_too_big, 0);
        if (limits_.max_fragments != 0 && ++fragments_ > limits_.max_fragments)
            return fail(errc::message_too_big, 0);
        message_size_ += len;
        in_payload_ = true;
        fin_ = fin;
        masked_ = masked;
        mask_offset_ = 0;
        remaining_ = len;
        // The header is consumed now; the payload follows in this or later calls.
        step s = decode(in.subspan(header));
        s.consumed += header;
        return s;
    }

    // Payload bytes of the current data frame.
    std::size_t n = in.size() < remaining_ ? in.size() : static_cast<std::size_t>(remaining_);
    if (n == 0 && remaining_ != 0)
        return {};
    step s;
    s.what = kind::data;
    s.op = message_op_;
    s.compressed = compressed_;
    s.payload = in.subspan(0, n);
    s.consumed = n;
    if (masked_)
        mask_offset_ = apply_mask(s.payload, mask_, mask_offset_);
    remaining_ -= n;
    s.message_start = !message_started_;
    message_started_ = true;
    if (message_op_ == opcode::text && !compressed_ && !utf8_.feed(s.payload))
        return fail(errc::invalid_payload, 0);
    if (remaining_ == 0) {
        in_payload_ = false;
        if (fin_) {
            if (message_op_ == opcode::text && !compressed_ && !utf8_.complete())
                return fail(errc::invalid_payload, 0);
            s.message_end = true;
            in_message_ = false;
        }
    }
    return s;
}

} // namespace coronet::ws
