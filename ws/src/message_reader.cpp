// The receiving half of a session as a state machine over bytes; session.cpp drives it.
#include "message_reader.hpp"

#include "buffer_cache.hpp"

#include <algorithm>

namespace coronet::ws::detail {
namespace {

// With permessage-deflate the limits are about messages as the application sees them
// (max_message_size caps the inflated size); on the wire, data that does not compress grows by
// a few bytes per 16 KiB block, so a 16 MiB message may arrive as a slightly larger frame.
frame_limits wire_limits(const frame_limits& app, bool compressed) noexcept {
    frame_limits l = app;
    if (!compressed)
        return l;
    auto grow = [](std::uint64_t v) {
        const std::uint64_t slack = v / 256 + 4096;
        return v > UINT64_MAX - slack ? UINT64_MAX : v + slack;
    };
    l.max_frame_size = grow(l.max_frame_size);
    l.max_message_size = grow(l.max_message_size);
    return l;
}

std::string_view text_of(std::span<const std::byte> b) noexcept {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

} // namespace

message_reader::message_reader(role r, const frame_limits& limits,
                               const std::optional<deflate_params>& agreed, std::size_t max_chunk)
    : decoder_(r, wire_limits(limits, agreed.has_value())),
      max_message_size_(limits.max_message_size), max_chunk_(std::max<std::size_t>(max_chunk, 1)) {
    if (!agreed)
        return;
    // This side inflates what the peer compresses: the peer's window and context rule.
    const bool server = r == role::server;
    const int their_bits = server ? agreed->client_max_window_bits : agreed->server_max_window_bits;
    const bool their_reset =
        server ? agreed->client_no_context_takeover : agreed->server_no_context_takeover;
    decoder_.allow_rsv1(true);
    z_ = std::make_unique<inflating_state>(their_bits, their_reset);
}

message_reader::~message_reader() = default;

message_reader::event message_reader::next(std::span<std::byte> in) {
    if (z_) {
        if (z_->release_zin) {
            // The last inflated message was handed over: its buffer goes to the thread's cache,
            // so an idle session keeps none and the next message allocates none.
            z_->release_zin = false;
            thread_buffer_cache<std::string>::give_back(z_->zin);
        }
        if (z_->active)
            return inflate_next(in, 0);
    }
    const auto s = decoder_.decode(in);
    switch (s.what) {
    case frame_decoder::kind::need_more: {
        event e;
        e.consumed = s.consumed;
        return e;
    }
    case frame_decoder::kind::error:
        return error_event(s.ec, s.consumed);
    case frame_decoder::kind::control:
        return control_event(s);
    case frame_decoder::kind::data:
        break;
    }
    if (!s.compressed) {
        message_chunk c;
        c.type = s.op;
        c.data = text_of(s.payload);
        c.first = s.message_start;
        c.last = s.message_end;
        return data_event(c, s.consumed);
    }
    inflating_state& z = *z_; // the decoder takes compressed frames only when it was agreed
    if (s.message_start) {
        z.inflated_size = 0;
        z.utf8.reset();
        z.first = true;
    }
    z.op = s.op;
    z.pending = s.payload.size();
    z.piece_ends = s.message_end;
    z.active = true;
    // The piece is the last bytes the decoder took; they stay in the input until inflated.
    return inflate_next(in, s.consumed - s.payload.size());
}

// Inflates the next chunk of the piece that starts `skip` bytes into `in`. Chunks are bounded
// so that a small frame that inflates to megabytes is handed over (or assembled) a chunk at a
// time instead of being held whole.
message_reader::event message_reader::inflate_next(std::span<std::byte> in, std::size_t skip) {
    inflating_state& z = *z_;
    const auto src = in.subspan(skip, z.pending);
    z.zin.clear();
    thread_buffer_cache<std::string>::take(z.zin);
    // The inflated size counts against max_message_size; one byte past it proves the excess,
    // so a decompression bomb ends with 1009 holding at most a chunk.
    const std::uint64_t left = max_message_size_ - z.inflated_size;
    const std::size_t room = left < max_chunk_ ? static_cast<std::size_t>(left) + 1 : max_chunk_;
    auto r = z.z.inflate_some(src, z.piece_ends, z.zin, room);
    // The excess wins over bad data that zlib found in the same step.
    if (z.zin.size() > left) {
        z.z.discard_message();
        z.active = false;
        return error_event(make_error_code(errc::message_too_big), skip);
    }
    if (!r) {
        z.active = false;
        return error_event(r.error(), skip);
    }
    z.pending -= r->consumed;
    z.inflated_size += z.zin.size();
    z.active = !r->done;
    const bool last = r->done && z.piece_ends;
    if (z.op == opcode::text && (!z.utf8.feed(z.zin) || (last && !z.utf8.complete()))) {
        z.active = false;
        return error_event(make_error_code(errc::invalid_payload), skip);
    }
    message_chunk c;
    c.type = z.op;
    c.data = z.zin;
    c.first = z.first;
    c.last = last;
    z.first = false;
    z.release_zin = last;
    return data_event(c, skip + r->consumed);
}

message_reader::event message_reader::data_event(message_chunk c, std::size_t consumed) const {
    event e;
    e.consumed = consumed;
    if (auto_ && c.first && c.last && c.type == auto_->type && c.data == auto_->request) {
        e.what = kind::auto_response;
        e.payload = auto_->response;
        e.chunk.type = c.type;
        return e;
    }
    e.what = kind::data;
    e.chunk = c;
    return e;
}

message_reader::event message_reader::control_event(const frame_decoder::step& s) {
    event e;
    e.consumed = s.consumed;
    e.payload = text_of(s.payload);
    if (s.op == opcode::ping) {
        e.what = kind::ping;
    } else if (s.op == opcode::pong) {
        e.what = kind::pong;
    } else {
        // The decoder checked the payload: empty, or a valid code and a UTF-8 reason.
        e.what = kind::close;
        e.close_code = 1005;
        if (s.payload.size() >= 2) {
            const auto* p = reinterpret_cast<const unsigned char*>(s.payload.data());
            e.close_code = static_cast<std::uint16_t>((p[0] << 8) | p[1]);
            e.payload.remove_prefix(2);
        } else {
            e.payload = {};
        }
    }
    return e;
}

message_reader::event message_reader::error_event(std::error_code ec, std::size_t consumed) {
    event e;
    e.what = kind::error;
    e.consumed = consumed;
    e.ec = ec;
    return e;
}

// How much to read at once: the rest of a large frame (up to 1 MiB), since a 64 KiB message in
// 4 KiB reads costs a decode step and a resumption per read. The reader makes at most
// buffered_reader::growth_step of room beyond what it holds, so a frame's announced length
// never turns into memory before its bytes arrive.
std::size_t message_reader::read_hint() const noexcept {
    return static_cast<std::size_t>(std::min<std::uint64_t>(decoder_.frame_left(), 1u << 20));
}

void message_reader::set_auto_response(std::string request, std::string response, opcode type) {
    if (!auto_)
        auto_ = std::make_unique<auto_pair>();
    auto_->request = std::move(request);
    auto_->response = std::move(response);
    auto_->type = type;
}

void message_reader::clear_auto_response() noexcept {
    auto_.reset();
}

} // namespace coronet::ws::detail
