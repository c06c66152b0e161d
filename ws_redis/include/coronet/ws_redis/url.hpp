#pragma once

#include <coronet/core/result.hpp>
#include <coronet/ws_redis/export.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace coronet::ws_redis {

/// Where a Redis server is and how to log in, parsed from a URL in one of the forms of the
/// IANA `redis`/`rediss` schemes (https://www.iana.org/assignments/uri-schemes/prov/redis):
///
/// - `redis://[[user]:password@]host[:port][/db]`: TCP, port 6379 by default;
/// - `rediss://...`: the same over TLS (`core::tls_stream`, port 6379 by default too);
/// - `unix://[[user]:password@]/path/to.sock[?db=N]`: a Unix-domain socket.
///
/// The host is a name, an IPv4 address or an IPv6 literal in brackets (checked by
/// `core::url::parse`); user and password may be percent-encoded (`%40` for `@`). A plain value
/// type: the parts are copies. The password is kept in memory as given; do not log a `url`.
struct CORONET_WS_REDIS_EXPORT url {
    /// How the server is reached.
    enum class transport_kind { tcp, tls, unix_socket };

    transport_kind transport = transport_kind::tcp;
    std::string host;       ///< tcp/tls: the host (no brackets for IPv6)
    std::uint16_t port = 0; ///< tcp/tls: the port (6379 when the URL names none)
    std::string path;       ///< unix: the socket's path
    std::string user;       ///< AUTH user name (empty: AUTH with the password alone)
    std::string password;   ///< AUTH password (empty: no AUTH)
    unsigned database = 0;  ///< SELECT this database after connecting when not 0

    /// Parses `text`. Errors: `errc::bad_url` for anything else (another scheme, an empty or
    /// bad host, a port outside 1..65535, a database that is not a decimal number, a bad
    /// percent-escape, a relative or empty socket path).
    static core::result<url> parse(std::string_view text);
};

} // namespace coronet::ws_redis
