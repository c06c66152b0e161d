#include <coronet/core/offload.hpp>
#include <coronet/core/resolve.hpp>

#include <netdb.h>
#include <sys/socket.h>

#include <string>
#include <utility>

namespace coronet::core {
namespace {

result<std::vector<endpoint>> lookup(const std::string& host, const std::string& service,
                                     int family) {
    ::addrinfo hints{};
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
    ::addrinfo* res = nullptr;
    if (::getaddrinfo(host.c_str(), service.c_str(), &hints, &res) != 0)
        return errc::resolve_failed;
    std::vector<endpoint> out;
    for (auto* ai = res; ai != nullptr; ai = ai->ai_next)
        out.emplace_back(ai->ai_addr, ai->ai_addrlen);
    ::freeaddrinfo(res);
    if (out.empty())
        return errc::resolve_failed;
    return out;
}

} // namespace

task<result<std::vector<endpoint>>> resolve(std::string host, std::uint16_t port, int family) {
    // Numeric addresses need no pool round trip.
    if (auto ep = endpoint::from_ip(host, port); ep && (family == 0 || ep->family() == family))
        co_return std::vector<endpoint>{*ep};
    // Named, not a temporary of the co_await expression: g++ 12 destroys such a temporary
    // twice when it owns a lambda with non-trivial captures.
    auto call = offload([host = std::move(host), service = std::to_string(port), family] {
        return lookup(host, service, family);
    });
    co_return co_await call;
}

} // namespace coronet::core
