#pragma once

#include <coronet/ws_redis/export.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace coronet::ws_redis {

/// The RESP2 type of a reply (https://redis.io/docs/reference/protocol-spec/).
enum class reply_type {
    status,  ///< a simple string (`+OK`): `str`
    error,   ///< an error reply (`-ERR ...`): `str` holds the message
    integer, ///< `:42`: `integer`
    string,  ///< a bulk string (`$3 foo`), binary-safe: `str`
    nil,     ///< the null bulk string or null array (`$-1`, `*-1`)
    array,   ///< `*2 ...`: `elements`
};

/// One reply of a Redis server, a plain value type. An error reply is a value like any other:
/// the command reached the server and was refused. Only a broken connection, a timeout or a
/// malformed reply is an error code (`core::result` of the call).
struct CORONET_WS_REDIS_EXPORT reply {
    reply_type type = reply_type::nil;
    std::int64_t integer = 0;    ///< the value of an integer reply
    std::string str;             ///< the text of a status or error reply, the bytes of a string
    std::vector<reply> elements; ///< the elements of an array

    bool is_status() const noexcept { return type == reply_type::status; }
    bool is_error() const noexcept { return type == reply_type::error; }
    bool is_integer() const noexcept { return type == reply_type::integer; }
    bool is_string() const noexcept { return type == reply_type::string; }
    bool is_nil() const noexcept { return type == reply_type::nil; }
    bool is_array() const noexcept { return type == reply_type::array; }
    /// True for the status reply `+OK`.
    bool is_ok() const noexcept { return type == reply_type::status && str == "OK"; }

    /// A readable rendering for logs and test failures: `"OK"`, `(error) ERR ...`,
    /// `(integer) 3`, `"bytes"`, `(nil)`, `[a, b]`. Not a RESP encoding.
    std::string to_string() const;
};

} // namespace coronet::ws_redis
