#pragma once

// Self-checking attachment values shared by attachment_store_test.cpp and the crash child:
// [id: 8 bytes LE][round: 8 bytes LE][pseudo-random body][FNV-1a 64 of all before: 8 bytes LE].
// A value cut short, mixed from two writes or zero-filled fails `check_payload`.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace coronet::testing {

inline constexpr std::size_t payload_overhead = 24;

inline std::uint64_t fnv1a(const std::byte* p, std::size_t n) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (std::size_t i = 0; i < n; ++i) {
        h ^= static_cast<std::uint64_t>(p[i]);
        h *= 0x100000001b3ull;
    }
    return h;
}

inline void put_u64(std::vector<std::byte>& out, std::uint64_t v) {
    for (int i = 0; i < 8; ++i)
        out.push_back(static_cast<std::byte>(v >> (8 * i)));
}

inline std::uint64_t get_u64(const std::byte* p) noexcept {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
        v = (v << 8) | static_cast<std::uint64_t>(p[i]);
    return v;
}

/// The value for (`id`, `round`) with a body of `body_size` bytes.
inline std::vector<std::byte> make_payload(std::uint64_t id, std::uint64_t round,
                                           std::size_t body_size) {
    std::vector<std::byte> out;
    out.reserve(body_size + payload_overhead);
    put_u64(out, id);
    put_u64(out, round);
    std::uint64_t x = (id * 0x9e3779b97f4a7c15ull) ^ (round + 0x632be59bd9b4e019ull);
    for (std::size_t i = 0; i < body_size; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_back(static_cast<std::byte>(x));
    }
    put_u64(out, fnv1a(out.data(), out.size()));
    return out;
}

/// The round of a well-formed value of `id`, or nothing if it is not one.
inline std::optional<std::uint64_t> check_payload(std::uint64_t id,
                                                  const std::vector<std::byte>& v) {
    if (v.size() < payload_overhead)
        return std::nullopt;
    const std::size_t body_end = v.size() - 8;
    if (get_u64(v.data()) != id || get_u64(v.data() + body_end) != fnv1a(v.data(), body_end))
        return std::nullopt;
    const std::uint64_t round = get_u64(v.data() + 8);
    if (v != make_payload(id, round, v.size() - payload_overhead))
        return std::nullopt;
    return round;
}

/// Body sizes that vary from a few bytes to about `max` bytes, so a kill lands in writes of
/// every length.
inline std::size_t payload_body_size(std::uint64_t id, std::uint64_t round, std::size_t max) {
    return static_cast<std::size_t>((id * 7919 + round * 104729) % max);
}

} // namespace coronet::testing
