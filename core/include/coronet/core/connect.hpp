#pragma once

#include <coronet/core/export.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/stream.hpp>
#include <coronet/core/task.hpp>
#include <coronet/core/tls.hpp>

#include <cstdint>
#include <string>
#include <utility>

namespace coronet::core {

/// Opens a client connection: resolves `host` (`core::resolve`: the system resolver; numeric
/// addresses without a lookup), tries each address it gives in order until one accepts, and,
/// when `tls` is not null, runs a client TLS handshake over it with `server_name` as SNI and as
/// the name (or IP address) the peer's certificate is verified against (verification as `tls`
/// was built: on unless `danger_accept_any_certificate`). The result is a `tcp_stream` or a
/// `tls_stream` over one, ready for I/O. No deadline of its own: wrap it in `with_timeout`.
/// Errors: `errc::resolve_failed`, the last address's connect error (`ECONNREFUSED`...), the
/// handshake's errors (`tls_verify_category`, `tls_category`; no other address is tried after a
/// failed handshake), `operation_canceled`. `tls` need only outlive the task: the TLS stream
/// keeps a reference to the OpenSSL context itself.
CORONET_CORE_EXPORT task<result<stream_ptr>>
connect(std::string host, std::uint16_t port, const tls_context* tls, std::string server_name);

/// `connect` with `host` as the TLS server name (plain TCP when `tls` is null). An overload
/// rather than a default argument: g++ 12 destroys a coroutine's defaulted class-type argument
/// twice (docs/core.md, "Compiler pitfalls").
inline task<result<stream_ptr>> connect(std::string host, std::uint16_t port,
                                        const tls_context* tls) {
    std::string server_name = host;
    return connect(std::move(host), port, tls, std::move(server_name));
}

} // namespace coronet::core
