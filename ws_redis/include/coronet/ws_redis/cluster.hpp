#pragma once

// Redis Cluster's key space: which of the 16384 hash slots a key or shard channel belongs to.

#include <coronet/ws_redis/export.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace coronet::ws_redis {

/// The number of hash slots of a Redis Cluster.
inline constexpr std::size_t cluster_slots = 16384;

/// The hash slot of `key` (a key or a shard channel) in a Redis Cluster, as `CLUSTER KEYSLOT`
/// computes it: CRC16 (XMODEM) of the key modulo 16384, where a key with a non-empty hash tag
/// (the text between its first `{` and the next `}`) hashes only its tag, so that `{user1}.a`
/// and `{user1}.b` share a slot. Computed here rather than asked of the server so that routing
/// a publish costs no round trip (no Debian package exposes this CRC; the tests check it
/// against a real server's `CLUSTER KEYSLOT`).
CORONET_WS_REDIS_EXPORT std::uint16_t key_slot(std::string_view key) noexcept;

} // namespace coronet::ws_redis
