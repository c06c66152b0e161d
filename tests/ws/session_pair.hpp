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

/// Connects to `l` and accepts: the server session gets `server_opts`.
inline core::task<session_pair> loopback_sessions(core::tcp_listener& l,
                                                  ws::session_options server_opts) {
    auto c = co_await core::tcp_stream::connect(endpoint_of(l));
    REQUIRE(c);
    auto a = co_await l.accept();
    REQUIRE(a);
    session_pair p;
    p.client = std::make_unique<ws::session>(std::make_unique<core::tcp_stream>(std::move(*c)),
                                             ws::role::client);
    p.server = std::make_unique<ws::session>(std::make_unique<core::tcp_stream>(std::move(*a)),
                                             ws::role::server, std::vector<std::byte>(),
                                             std::move(server_opts));
    co_return p;
}

} // namespace coronet::testing
