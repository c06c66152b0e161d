// docs/ws_hub.md, "Threads: a hub over every loop": a room server on every core whose rooms
// span the loops, and a unicast to a connection on any loop. Compiled (test docs.snippets
// checks the text).
// [docs:begin]
#include <coronet/core/loop_group.hpp>
#include <coronet/core/serve_group.hpp>
#include <coronet/ws/hub_group.hpp>
#include <coronet/ws/server.hpp>

#include <span>
#include <string>

namespace core = coronet::core;
namespace ws = coronet::ws;

// The same handler as on one loop: `conn.owner()` is the hub of the connection's loop, and
// its broadcast_room reaches the room's members on every loop.
auto rooms() {
    return ws::events<>()
        .on_open([](auto& c) { c.conn.join(c.info.path()); })
        .on_message([](auto& c, ws::message& m) {
            const ws::prepared_message pm(m.type, std::as_bytes(std::span(m.data)));
            c.conn.owner().broadcast_room_except(c.info.path(), pm, c.conn.id());
        });
}

core::task<void> one_loop(ws::hub& hub, core::tcp_listener& listener) {
    ws::server srv(hub.as_session_handler(rooms()));
    co_await srv.serve(listener); // until the group stops
    listener.close();
}

int rooms_on_every_core(const core::endpoint& ep) {
    core::loop_group loops;    // one loop per core
    ws::hub_group hubs(loops); // hub i belongs to loop i; destroyed before the loops
    auto listeners = core::listen_group(loops, ep, core::listen_options());
    if (!listeners)
        return 1;
    loops.run([&](core::loop&, std::size_t i) { return one_loop(hubs.at(i), (*listeners)[i]); });
    return 0;
}
// [docs:end]

// [docs:begin send_to]
// From any loop: a direct message to connection `id`, wherever it lives.
core::task<void> tell(ws::hub& here, std::uint64_t id, std::string text) {
    auto sent = co_await here.send_to(id, ws::prepared_message::text(text));
    if (!sent && sent.error() == ws::hub_errc::not_found) {
        // gone (or never existed)
    }
}
// [docs:end send_to]
