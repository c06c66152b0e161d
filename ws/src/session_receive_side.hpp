#pragma once

// What a session keeps for receiving, behind session.hpp's pointer: shared by session.cpp and
// session_send.cpp (a send counts as a message for the idle timeout).

#include <coronet/ws/session.hpp>

#include "keepalive.hpp"
#include "message_reader.hpp"

namespace coronet::ws {

// Everything the receiving side keeps between calls, in one allocation made with the session.
struct session::receive_side {
    detail::message_reader reader;
    detail::keepalive alive;

    receive_side(role r, const session_options& o)
        : reader(r, o.limits, o.agreed_deflate),
          alive(o.ping_interval, o.pong_timeout, o.idle_timeout, core::clock::now()) {}
};

// What many sessions never need, made on first use: a server session without compression holds
// none of it until it receives a message in pieces through receive_view(), a close frame with
// a reason, or has to keep the unsent tail of a small frame; a client makes it with its first
// send.
struct session::spare_parts {
    std::vector<std::byte> tx;   ///< header + masked copy of the payload (client role), or the
                                 ///< unsent tail of a small frame (server role, while it waits)
    std::vector<std::byte> zout; ///< the compressed message being sent
    std::string close_reason;    ///< the peer's
    std::string assembled;       ///< receive_view()'s message when it came in pieces
};

struct session::pending_event {
    detail::message_reader::event ev;
    std::error_code fill_error; ///< assemble(): its plain wait for bytes failed (ev is spent)
};

} // namespace coronet::ws
