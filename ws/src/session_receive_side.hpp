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

struct session::pending_event {
    detail::message_reader::event ev;
};

} // namespace coronet::ws
