// Redis Cluster's hash slots (https://redis.io/docs/reference/cluster-spec/, "Key distribution
// model"): CRC16 with the XMODEM parameters (polynomial 0x1021, initial value 0, no
// reflection), table-driven.
#include <coronet/ws_redis/cluster.hpp>

#include <array>

namespace coronet::ws_redis {

namespace {

constexpr std::array<std::uint16_t, 256> crc16_table() {
    std::array<std::uint16_t, 256> t{};
    for (unsigned i = 0; i < 256; ++i) {
        unsigned crc = i << 8;
        for (int bit = 0; bit < 8; ++bit)
            crc = (crc & 0x8000u) != 0 ? (crc << 1) ^ 0x1021u : crc << 1;
        t[i] = static_cast<std::uint16_t>(crc & 0xffffu);
    }
    return t;
}

constexpr auto table = crc16_table();

constexpr std::uint16_t crc16(std::string_view s) noexcept {
    unsigned crc = 0;
    for (char ch : s)
        crc = ((crc << 8) ^ table[((crc >> 8) ^ static_cast<unsigned char>(ch)) & 0xffu]) & 0xffffu;
    return static_cast<std::uint16_t>(crc);
}

// The check value of CRC-16/XMODEM.
static_assert(crc16("123456789") == 0x31c3);

} // namespace

std::uint16_t key_slot(std::string_view key) noexcept {
    // A hash tag: from the first '{' to the first '}' after it, when not empty.
    const auto open = key.find('{');
    if (open != std::string_view::npos) {
        const auto close = key.find('}', open + 1);
        if (close != std::string_view::npos && close > open + 1)
            key = key.substr(open + 1, close - open - 1);
    }
    return static_cast<std::uint16_t>(crc16(key) % cluster_slots);
}

} // namespace coronet::ws_redis
