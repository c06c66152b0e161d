#pragma once
// A client and a server ws::session joined by a loopback TCP connection, for tests.

#include <coronet/core/socket.hpp>
#include <coronet/ws/session.hpp>

#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <vector>

namespace coronet::testing {

struct session_pair {
    std::unique_ptr<ws::session> client;
    std::unique_ptr<ws::session> server;
};

/// Connects to `l` and accepts: the server session gets `server_opts`, the client `client_opts`.
inline core::task<session_pair> loopback_sessions(core::tcp_listener& l,
                                                  ws::session_options server_opts,
                                                  ws::session_options client_opts) {
    auto c = co_await core::tcp_stream::connect(endpoint_of(l));
    REQUIRE(c);
    auto a = co_await l.accept();
    REQUIRE(a);
    session_pair p;
    p.client = std::make_unique<ws::session>(std::make_unique<core::tcp_stream>(std::move(*c)),
                                             ws::role::client, std::vector<std::byte>(),
                                             std::move(client_opts));
    p.server = std::make_unique<ws::session>(std::make_unique<core::tcp_stream>(std::move(*a)),
                                             ws::role::server, std::vector<std::byte>(),
                                             std::move(server_opts));
    co_return p;
}

/// As above, the client with default options. (Not a coroutine: g++ 12 mishandles a coroutine's
/// defaulted class-type argument.)
inline core::task<session_pair> loopback_sessions(core::tcp_listener& l,
                                                  ws::session_options server_opts) {
    return loopback_sessions(l, std::move(server_opts), ws::session_options{});
}

} // namespace coronet::testing
