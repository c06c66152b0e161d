#include <coronet/core/connect.hpp>

#include <coronet/core/resolve.hpp>
#include <coronet/core/socket.hpp>

#include <memory>
#include <utility>

namespace coronet::core {

task<result<stream_ptr>> connect(std::string host, std::uint16_t port, const tls_context* tls,
                                 std::string server_name) {
    auto addrs = co_await resolve(std::move(host), port);
    if (!addrs)
        co_return addrs.error();
    std::error_code last = make_error_code(errc::resolve_failed);
    for (const auto& ep : *addrs) {
        auto c = co_await tcp_stream::connect(ep);
        if (!c) {
            // A name may resolve to addresses the peer does not listen on (::1 beside
            // 127.0.0.1): the next one may still answer.
            last = c.error();
            continue;
        }
        stream_ptr s = std::make_unique<tcp_stream>(std::move(*c));
        if (tls == nullptr)
            co_return std::move(s);
        // A failed handshake is the server's answer, not an unreachable address: trying the
        // next address would only hide it.
        auto t = tls_stream::client(*tls, std::move(s), std::move(server_name));
        auto hs = co_await t->handshake();
        if (!hs)
            co_return hs.error();
        co_return stream_ptr(std::move(t));
    }
    co_return last;
}

} // namespace coronet::core
