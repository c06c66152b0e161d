// ws::frame_decoder alone. The first 4 input bytes choose the setup (not part of the stream):
//   byte 0: bit 0 role (0 server, 1 client), bit 1 allow_rsv1, bit 2 small limits
//   bytes 1-3: the small limits (max_frame_size, max_message_size, max_fragments)
// The rest is a stream of frames, decoded once in pseudo-random reads (fuzz/chunked_input.hpp,
// unconsumed bytes kept and offered again as a connection does) and once in a single read. Both
// must produce the same events (data runs merged between controls and message ends; the
// chunked run may have a longer prefix of the frame that failed, since it saw part of it
// before the bad byte arrived) and the same error. Every step keeps its invariants: consumed
// within the input, payload a view into the consumed bytes, control frames valid, messages
// within the limits, text valid UTF-8, errors mapping to 1002, 1007 or 1009.
#define FUZZ_TARGET_NAME "ws_frame_fuzz"
#include <coronet/ws/error.hpp>
#include <coronet/ws/frame.hpp>
#include <coronet/ws/utf8.hpp>
#include <fuzz/chunked_input.hpp>
#include <fuzz/fuzz_check.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace coronet::ws;
#define CHECK FUZZ_CHECK

struct event {
    frame_decoder::kind what = frame_decoder::kind::need_more;
    opcode op = opcode::continuation;
    std::string payload;
    bool message_start = false;
    bool message_end = false;
    bool compressed = false;
    int error = 0;

    bool operator==(const event&) const = default;
};

struct setup {
    role r = role::server;
    bool allow_rsv1 = false;
    frame_limits limits;
};

struct outcome {
    std::vector<event> events;
    std::size_t end = 0; // bytes consumed in all
};

bool inside(std::span<const std::byte> v, std::span<const std::byte> buf) {
    if (v.empty())
        return true;
    return v.data() >= buf.data() && v.data() + v.size() <= buf.data() + buf.size();
}

// Feeds `stream` in reads ending at `ends`.
outcome decode(std::span<const std::uint8_t> stream, const std::vector<std::size_t>& ends,
               const setup& su) {
    frame_decoder decoder(su.r, su.limits);
    decoder.allow_rsv1(su.allow_rsv1);
    outcome out;
    std::vector<std::byte> pending;
    std::size_t fed = 0;
    bool in_message = false;
    opcode message_op = opcode::continuation;
    std::uint64_t message_size = 0;
    std::string text; // the current uncompressed text message, for the UTF-8 check
    bool last_was_data = false;

    for (std::size_t avail : ends) {
        for (; fed < avail; ++fed)
            pending.push_back(static_cast<std::byte>(stream[fed]));
        for (;;) {
            const std::span<std::byte> in(pending);
            const auto s = decoder.decode(in);
            CHECK(s.consumed <= in.size());
            CHECK(inside(s.payload, in.first(s.consumed)));
            out.end += s.consumed;
            switch (s.what) {
            case frame_decoder::kind::need_more:
                CHECK(s.payload.empty());
                CHECK(!s.ec);
                break;
            case frame_decoder::kind::error: {
                CHECK(s.ec.category() == ws_category());
                const auto code = close_code_of(s.ec);
                CHECK(code == 1002 || code == 1007 || code == 1009);
                event e;
                e.what = s.what;
                e.error = s.ec.value();
                out.events.push_back(e);
                return out;
            }
            case frame_decoder::kind::control: {
                CHECK(s.consumed > 0);
                CHECK(s.op == opcode::close || s.op == opcode::ping || s.op == opcode::pong);
                CHECK(s.payload.size() <= 125);
                if (s.op == opcode::close) {
                    CHECK(s.payload.size() != 1);
                    if (s.payload.size() >= 2) {
                        const auto* p = reinterpret_cast<const unsigned char*>(s.payload.data());
                        CHECK(valid_close_code(static_cast<std::uint16_t>(p[0] << 8 | p[1])));
                        const std::string_view reason(reinterpret_cast<const char*>(p + 2),
                                                      s.payload.size() - 2);
                        CHECK(is_valid_utf8(reason));
                    }
                }
                event e;
                e.what = s.what;
                e.op = s.op;
                e.payload.assign(reinterpret_cast<const char*>(s.payload.data()), s.payload.size());
                out.events.push_back(std::move(e));
                last_was_data = false;
                break;
            }
            case frame_decoder::kind::data: {
                CHECK(s.consumed > 0);
                CHECK(s.op == opcode::text || s.op == opcode::binary);
                CHECK(s.message_start == !in_message);
                CHECK(!s.compressed || su.allow_rsv1);
                if (s.message_start) {
                    in_message = true;
                    message_op = s.op;
                    message_size = 0;
                    text.clear();
                }
                CHECK(s.op == message_op);
                CHECK(s.payload.size() <= su.limits.max_frame_size);
                message_size += s.payload.size();
                CHECK(message_size <= su.limits.max_message_size);
                const std::string bytes(reinterpret_cast<const char*>(s.payload.data()),
                                        s.payload.size());
                if (s.op == opcode::text && !s.compressed)
                    text += bytes;
                if (s.message_end) {
                    if (s.op == opcode::text && !s.compressed)
                        CHECK(is_valid_utf8(text));
                    in_message = false;
                }
                // Merge into the previous data run unless a control frame or a message end
                // came between.
                if (last_was_data) {
                    auto& run = out.events.back();
                    CHECK(run.op == s.op && run.compressed == s.compressed && !run.message_end);
                    run.payload += bytes;
                    run.message_end = s.message_end;
                } else {
                    event e;
                    e.what = s.what;
                    e.op = s.op;
                    e.payload = bytes;
                    e.message_start = s.message_start;
                    e.message_end = s.message_end;
                    e.compressed = s.compressed;
                    out.events.push_back(std::move(e));
                }
                last_was_data = !s.message_end;
                break;
            }
            }
            CHECK(in_message == decoder.in_message() || s.what == frame_decoder::kind::need_more ||
                  s.what == frame_decoder::kind::control);
            pending.erase(pending.begin(),
                          pending.begin() + static_cast<std::ptrdiff_t>(s.consumed));
            if (s.what == frame_decoder::kind::need_more && (s.consumed == 0 || pending.empty()))
                break;
        }
    }
    CHECK(out.end + pending.size() == stream.size());
    return out;
}

[[noreturn]] void differ(const char* what, const outcome& split, const outcome& oneshot) {
    std::fprintf(stderr,
                 "ws_frame_fuzz: split and one-shot differ (%s): split %zu events end %zu; "
                 "one-shot %zu events end %zu\n",
                 what, split.events.size(), split.end, oneshot.events.size(), oneshot.end);
    __builtin_trap();
}

// On an error, the read that delivered a failing frame's first bytes may have produced data the
// one-shot decode never did: the one-shot run (if any) must be a prefix of the split one.
void compare(const outcome& split, const outcome& oneshot) {
    const bool failed =
        !split.events.empty() && split.events.back().what == frame_decoder::kind::error;
    if (!failed) {
        if (!(split.events == oneshot.events))
            differ("events", split, oneshot);
        if (split.end != oneshot.end)
            differ("end", split, oneshot);
        return;
    }
    if (oneshot.events.empty() || !(oneshot.events.back() == split.events.back()))
        differ("error", split, oneshot);
    auto a = split.events;
    auto b = oneshot.events;
    a.pop_back();
    b.pop_back();
    auto unfinished_run = [](const std::vector<event>& v) {
        return !v.empty() && v.back().what == frame_decoder::kind::data && !v.back().message_end;
    };
    if (unfinished_run(b)) {
        if (!unfinished_run(a))
            differ("unfinished run", split, oneshot);
        const event& sa = a.back();
        const event& sb = b.back();
        if (sa.op != sb.op || sa.message_start != sb.message_start ||
            sa.compressed != sb.compressed ||
            sa.payload.compare(0, sb.payload.size(), sb.payload) != 0)
            differ("unfinished run prefix", split, oneshot);
        a.pop_back();
        b.pop_back();
    } else if (unfinished_run(a) && a.size() == b.size() + 1) {
        a.pop_back();
    }
    if (!(a == b))
        differ("events before the error", split, oneshot);
}

setup setup_of(std::span<const std::uint8_t> head) {
    auto byte = [&](std::size_t i) -> unsigned { return i < head.size() ? head[i] : 0; };
    setup su;
    su.r = (byte(0) & 1) != 0 ? role::client : role::server;
    su.allow_rsv1 = (byte(0) & 2) != 0;
    if ((byte(0) & 4) != 0) {
        su.limits.max_frame_size = byte(1) * 2;
        su.limits.max_message_size = byte(2) * 4;
        su.limits.max_fragments = byte(3) % 8;
    }
    return su;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> input(data, size);
    const std::size_t head = size < 4 ? size : 4;
    const setup su = setup_of(input.first(head));
    const auto stream = input.subspan(head);

    std::vector<std::size_t> ends;
    std::size_t end = 0;
    coronet::fuzz::for_each_chunk(stream, [&](std::span<const std::uint8_t> chunk) {
        end += chunk.size();
        ends.push_back(end);
    });
    const outcome split = decode(stream, ends, su);
    const outcome oneshot = decode(
        stream,
        stream.empty() ? std::vector<std::size_t>{} : std::vector<std::size_t>{stream.size()}, su);
    compare(split, oneshot);
    return 0;
}
