#pragma once

#include <coronet/core/endpoint.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/task.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace coronet::core {

/// Resolves `host` with the system resolver (getaddrinfo, so /etc/hosts, nsswitch and
/// resolv.conf apply) on the offload pool (`offload.hpp`); the task completes on the loop.
/// Numeric addresses resolve without a lookup. `family` is AF_UNSPEC, AF_INET or AF_INET6.
/// Errors: `errc::resolve_failed` (no such host, resolver failure), `operation_canceled` (the
/// lookup itself is not interrupted; its result is dropped).
CORONET_CORE_EXPORT task<result<std::vector<endpoint>>> resolve(std::string host,
                                                                std::uint16_t port, int family = 0);

} // namespace coronet::core
