#pragma once

// RESP through hiredis: its sans-I/O reader (hiredis/read.h) turns bytes into `reply` values
// and redisFormatCommandArgv encodes commands. Nothing here touches a socket.

#include <coronet/core/result.hpp>
#include <coronet/ws_redis/export.hpp>
#include <coronet/ws_redis/reply.hpp>

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

struct redisReader;

namespace coronet::ws_redis::detail {

/// A RESP2 command: `*N` followed by each argument as a bulk string. Empty when `args` is
/// empty (no command has no name). Exported for the tests.
CORONET_WS_REDIS_EXPORT std::string encode_command(std::span<const std::string_view> args);

/// Parses replies out of bytes fed in any split, with a bound on the memory of one reply: the
/// bytes hiredis buffers for the reply in progress plus the values built for it (charged as
/// their size plus their text). Memory follows the bytes that arrived: an announced length or
/// element count allocates nothing by itself.
class CORONET_WS_REDIS_EXPORT resp_reader {
public:
    explicit resp_reader(std::size_t max_reply_bytes);
    resp_reader(const resp_reader&) = delete;
    resp_reader& operator=(const resp_reader&) = delete;
    ~resp_reader();

    /// Appends received bytes. Errors: `errc::reply_too_large` when the reply in progress
    /// would hold more than the limit.
    core::result<void> feed(std::span<const std::byte> bytes);
    /// The next complete reply, or nothing until more bytes arrive. Errors:
    /// `errc::protocol_error` (not RESP), `errc::reply_too_large`. After an error the reader
    /// is unusable.
    core::result<std::optional<reply>> next();

    /// The bytes hiredis holds that no complete reply has taken yet.
    std::size_t buffered() const noexcept;

    /// Where the object functions keep their accounting (hiredis' privdata).
    struct building {
        reply* root = nullptr;   ///< the reply in progress (owned)
        std::size_t charged = 0; ///< memory of its values so far
        std::size_t limit = 0;
        bool over_limit = false;
    };

private:
    redisReader* reader_;
    building state_;
};

} // namespace coronet::ws_redis::detail
