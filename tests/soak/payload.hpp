// The soak client's messages: every payload is a pure function of (sender, sequence number), so
// a receiver re-derives each byte it should have got and any corruption, truncation or mix-up
// shows as a mismatch.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

namespace coronet::soak {

/// splitmix64: a fixed, portable generator (std distributions differ between libraries).
struct splitmix {
    std::uint64_t s;
    std::uint64_t next() {
        std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    std::uint64_t below(std::uint64_t n) { return next() % n; }
};

/// Who sent a message and its place in the sender's sequence (0: the join-phase hello).
struct message_id {
    std::uint32_t sender = 0;
    std::uint32_t seq = 0;
};

/// The hello a client repeats while its room fills (never verified for order).
inline std::string hello_payload(std::uint32_t sender) {
    return "s" + std::to_string(sender) + " q0 hello";
}

/// Message `seq` (≥ 1) of `sender`: "s<sender> q<seq> " and then words drawn from a generator
/// seeded with both, cut to a length drawn from it too: mostly 64-511 bytes, one in 16 up to
/// `max_size`. Words make it compressible, and most messages are over permessage-deflate's
/// 64-byte threshold, so compressed cells really compress.
inline std::string make_payload(std::uint32_t sender, std::uint32_t seq, std::size_t max_size) {
    static constexpr std::string_view words[] = {
        "alpha", "amber", "anchor", "arrow",  "aspen",  "atlas", "beacon", "birch",
        "blaze", "brook", "cedar",  "cinder", "comet",  "coral", "delta",  "drift",
        "ember", "fern",  "flint",  "frost",  "harbor", "heron", "iris",   "juniper",
        "lark",  "lotus", "maple",  "meadow", "nova",   "orbit", "quartz", "willow"};
    splitmix r{(static_cast<std::uint64_t>(sender) << 32) ^ seq ^ 0x736f616bULL};
    std::size_t size =
        r.below(16) == 0 ? 512 + r.below(max_size > 512 ? max_size - 511 : 1) : 64 + r.below(448);
    if (size > max_size)
        size = max_size;
    std::string p = "s" + std::to_string(sender) + " q" + std::to_string(seq) + " ";
    while (p.size() < size) {
        p += words[r.below(std::size(words))];
        p += ' ';
    }
    if (p.size() > size)
        p.resize(size);
    return p;
}

/// Messages whose sequence number is a multiple of 5 go as binary where the server keeps the
/// type (echo, rooms), so both opcodes are checked end to end.
inline bool sent_as_binary(std::uint32_t seq, bool binary_allowed) {
    return binary_allowed && seq != 0 && seq % 5 == 0;
}

/// Parses the "s<sender> q<seq> " prefix (nullopt when it is not there: a corrupted message).
inline std::optional<message_id> parse_id(std::string_view p) {
    auto number = [&p](char tag) -> std::optional<std::uint32_t> {
        if (p.size() < 2 || p[0] != tag)
            return std::nullopt;
        std::uint32_t v = 0;
        auto [end, ec] = std::from_chars(p.data() + 1, p.data() + p.size(), v);
        if (ec != std::errc() || end == p.data() + 1 || end == p.data() + p.size() || *end != ' ')
            return std::nullopt;
        p.remove_prefix(static_cast<std::size_t>(end - p.data()) + 1);
        return v;
    };
    auto sender = number('s');
    if (!sender)
        return std::nullopt;
    auto seq = number('q');
    if (!seq)
        return std::nullopt;
    return message_id{*sender, *seq};
}

} // namespace coronet::soak
