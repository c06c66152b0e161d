// ws::inflater (permessage-deflate receive path, RFC 7692 §7.2.2) alone. The input:
//   byte 0: bits 0-2 the peer's window bits (8 + value: 8-15; 8 is inflated with 9), bit 3
//           no_context_takeover
//   byte 1: the cap on one message's inflated size: below 128 the value itself, 128-254
//           (value - 128) * 512, 255 256 KiB
//   then messages, each a 2-byte big-endian length and that many bytes (fewer at the end of the
//   input) of compressed payload without the 00 00 ff ff tail, as a frame carries it.
// The messages go through one inflater in pseudo-random pieces (fuzz/chunked_input.hpp), `last`
// on each message's final piece, and through another one in a single piece each. Checks:
//   - a message either inflates within the cap (never a byte more) or fails with exactly
//     errc::message_too_big or errc::invalid_payload, holding at most cap bytes;
//   - both runs give every message the same verdict and the same bytes: zlib consumes input
//     strictly in order, so where the data breaks or the output passes the cap does not depend
//     on the pieces. One exception: zlib (built without INFLATE_STRICT) does not hold a
//     distance to the window size, only to the history it still has, which is the window plus
//     what the current inflate() call wrote. Below 15 bits, a reference further back than the
//     agreed window (a peer breaking the agreement) may be resolved in one run and fail with
//     invalid_payload in the other; from such a message on, the two runs' states differ and are
//     no longer compared. With 15 bits the window holds every distance deflate can express.
//   - after a failed message, the next one starts fresh: RFC 7692 §7.2.3.1's "Hello" inflates to
//     "Hello" on the same inflater (cap exactly 5);
//   - every message that inflated, compressed again with ws::compress_message and inflated by a
//     fresh inflater (cap exactly its size), gives the same bytes.
#define FUZZ_TARGET_NAME "ws_inflate_fuzz"
#include <coronet/ws/deflate.hpp>
#include <coronet/ws/error.hpp>
#include <fuzz/chunked_input.hpp>
#include <fuzz/fuzz_check.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace {

using namespace coronet::ws;
#define CHECK FUZZ_CHECK

constexpr std::size_t max_messages = 64;
constexpr std::byte hello[] = {std::byte{0xf2}, std::byte{0x48}, std::byte{0xcd}, std::byte{0xc9},
                               std::byte{0xc9}, std::byte{0x07}, std::byte{0x00}};

struct setup {
    int window_bits = 15;
    bool no_context_takeover = false;
    std::size_t cap = 0;
};

struct verdict {
    int error = 0;   ///< 0 or the errc value
    std::string out; ///< the inflated message (on success)
    bool operator==(const verdict&) const = default;
};

std::span<const std::byte> as_bytes(std::span<const std::uint8_t> s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// One message through `inf`, in the pieces `chunked` picks (or whole), within setup.cap.
verdict inflate_message(inflater& inf, std::span<const std::uint8_t> msg, bool chunked,
                        const setup& su) {
    verdict v;
    std::string out;
    auto feed = [&](std::span<const std::uint8_t> piece, bool last) {
        const std::size_t before = out.size();
        const std::size_t left = su.cap - before;
        auto r = inf.inflate(as_bytes(piece), last, out, left);
        if (r) {
            CHECK(out.size() <= su.cap);
            return true;
        }
        CHECK(r.error() == make_error_code(errc::message_too_big) ||
              r.error() == make_error_code(errc::invalid_payload));
        // A bomb stops at the cap: the byte over that detected it is not kept.
        CHECK(out.size() - before <= left);
        v.error = r.error().value();
        return false;
    };
    if (!chunked || msg.empty()) {
        feed(msg, true);
    } else {
        coronet::fuzz::chunked_input pieces(msg);
        while (!pieces.done()) {
            const auto piece = pieces.next();
            if (!feed(piece, pieces.done()))
                break;
        }
    }
    if (v.error == 0)
        v.out = std::move(out);
    return v;
}

std::vector<verdict> run(const std::vector<std::span<const std::uint8_t>>& messages, bool chunked,
                         const setup& su) {
    inflater inf(su.window_bits, su.no_context_takeover);
    std::vector<verdict> verdicts;
    for (const auto& msg : messages) {
        verdicts.push_back(inflate_message(inf, msg, chunked, su));
        if (verdicts.back().error == 0)
            continue;
        // The inflater recovers: the next message starts from a fresh state.
        std::string out;
        auto r = inf.inflate(hello, true, out, 5);
        CHECK(r.has_value());
        CHECK(out == "Hello");
    }
    return verdicts;
}

setup setup_of(std::span<const std::uint8_t> head) {
    auto byte = [&](std::size_t i) -> unsigned { return i < head.size() ? head[i] : 0; };
    setup su;
    su.window_bits = 8 + static_cast<int>(byte(0) & 7);
    su.no_context_takeover = (byte(0) & 8) != 0;
    const unsigned c = byte(1);
    su.cap = c < 128 ? c : c < 255 ? (c - 128) * 512 : 256 * 1024;
    return su;
}

[[noreturn]] void differ(std::size_t i, const verdict& split, const verdict& whole) {
    std::fprintf(stderr,
                 "ws_inflate_fuzz: message %zu: in pieces error %d, %zu bytes; whole error %d, "
                 "%zu bytes\n",
                 i, split.error, split.out.size(), whole.error, whole.out.size());
    __builtin_trap();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> input(data, size);
    const std::size_t head = std::min<std::size_t>(size, 2);
    const setup su = setup_of(input.first(head));

    std::vector<std::span<const std::uint8_t>> messages;
    auto rest = input.subspan(head);
    while (!rest.empty() && messages.size() < max_messages) {
        if (rest.size() < 2) {
            messages.push_back(rest);
            break;
        }
        const std::size_t n = std::min<std::size_t>(rest.size() - 2, rest[0] << 8 | rest[1]);
        messages.push_back(rest.subspan(2, n));
        rest = rest.subspan(2 + n);
    }

    const auto split = run(messages, true, su);
    const auto whole = run(messages, false, su);
    CHECK(split.size() == whole.size());
    const bool strict = std::max(su.window_bits, 9) == 15;
    for (std::size_t i = 0; i < split.size(); ++i) {
        if (split[i] == whole[i])
            continue;
        const int invalid = static_cast<int>(errc::invalid_payload);
        if (!strict && (split[i].error == invalid || whole[i].error == invalid))
            break; // a reference past the agreed window, see above
        differ(i, split[i], whole[i]);
    }

    // Whatever inflated survives a round trip through the sending side's codec.
    const int bits = std::max(su.window_bits, 9);
    inflater again(bits, su.no_context_takeover);
    for (const auto& v : split) {
        if (v.error != 0)
            continue;
        std::vector<std::byte> packed;
        compress_message(std::as_bytes(std::span(v.out)), packed, bits);
        std::string out;
        auto r = again.inflate(packed, true, out, v.out.size());
        CHECK(r.has_value());
        CHECK(out == v.out);
    }
    return 0;
}
