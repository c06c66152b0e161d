// docs/ws_hub.md: a room server on the hub behind the standalone ws::server. Below the shown
// part, main() serves it on a free port and checks that a message reaches the other member of
// the room and not the sender (test docs.snippet.ws_hub_rooms).
// [docs:begin]
#include <coronet/core/when.hpp>
#include <coronet/ws/hub.hpp>
#include <coronet/ws/server.hpp>

#include <span>

namespace core = coronet::core;
namespace ws = coronet::ws;

// Serves rooms on `listener` until the caller's stop token fires.
core::task<void> serve_rooms(core::tcp_listener& listener) {
    ws::hub hub(ws::hub_options{}); // one per loop
    auto rooms = ws::events<>()
                     .on_open([](auto& c) { c.conn.join(c.info.path()); })
                     .on_message([&hub](auto& c, ws::message& m) {
                         ws::prepared_message pm(m.type, std::as_bytes(std::span(m.data)));
                         hub.broadcast_room_except(c.info.path(), pm, c.conn.id()); // encoded once
                     });
    ws::server srv(hub.as_session_handler(rooms),
                   ws::server_options{}); // the hub runs each session
    co_await core::when_any(srv.serve(listener), hub.heartbeats());
}
// [docs:end]

#include <coronet/core/loop.hpp>
#include <coronet/core/socket.hpp>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <variant>

namespace {

bool check(bool ok, const char* what) {
    std::fprintf(stderr, "%s: %s\n", ok ? "ok" : "FAILED", what);
    return ok;
}

core::task<bool> talk(std::uint16_t port) {
    const std::string url = "ws://127.0.0.1:" + std::to_string(port) + "/lobby";
    const ws::connect_options opts; // not ws::connect_options{} here: docs/core.md, g++ 12
    auto a = co_await ws::connect(url, opts);
    auto b = co_await ws::connect(url, opts);
    if (!check(a && b, "two clients join /lobby"))
        co_return false;
    bool ok = true;
    // b's message reaches a, so both are members before a speaks.
    auto sent = co_await (*b)->send_text("ready");
    auto got = co_await (*a)->receive();
    ok &= check(sent && got && got->data == "ready", "b's message reaches a");
    sent = co_await (*a)->send_text("hi");
    got = co_await (*b)->receive();
    ok &= check(sent && got && got->data == "hi", "a's message reaches b");
    // Closing a: the server answers with its close frame; a received nothing else first.
    auto closed = co_await (*a)->close();
    ok &= check(closed.has_value(), "a closes cleanly (its own messages never came back)");
    closed = co_await (*b)->close();
    ok &= check(closed.has_value(), "b closes cleanly");
    co_return ok;
}

core::task<int> run_checks(core::loop& lp) {
    auto listener = core::tcp_listener::bind(lp, core::endpoint::loopback_v4(0)).value();
    const std::uint16_t port = listener.local_endpoint().value().port();
    // talk() finishing first stops serve_rooms (when_any cancels the loser and awaits it).
    auto r = co_await core::when_any(serve_rooms(listener), talk(port));
    co_return r.index() == 1 && std::get<1>(r) ? 0 : 1;
}

} // namespace

int main() {
    core::loop lp;
    return core::run(lp, run_checks(lp));
}
