// docs/ws.md, "Handlers": one handler model for ws::server, http_ws routes and the hub. Below
// the shown part, main() serves both handlers on a standalone server and on an upgrade route
// and checks the replies (test docs.snippet.ws_handlers).
// [docs:begin]
#include <coronet/http/router.hpp>
#include <coronet/http_ws/upgrade_route.hpp>
#include <coronet/ws/handler.hpp>
#include <coronet/ws/server.hpp>

#include <cstdio>
#include <string>

namespace core = coronet::core;
namespace ws = coronet::ws;
namespace http = coronet::http;
namespace http_ws = coronet::http_ws;

// Coroutine style: the handler owns the conversation; returning closes with 1000.
core::task<void> echo(ws::session& s, ws::handshake_info& info) {
    while (auto m = co_await s.receive())
        if (!co_await s.send_text(std::string(info.path()) + " " + m->data))
            break;
}

// Event style: hooks, per-connection state typed at compile time, and up to 8 messages of one
// connection handled at once (each call's sends stay in its own order).
struct visit {
    explicit visit(ws::handshake_info& info) : room(info.param("room")) {}
    std::string room; // empty on a standalone server: it has no path parameters
    int seen = 0;
};

auto shout() {
    return ws::events<>()
        .with_state<visit>()
        .on_message([](auto& c, ws::message& m) -> core::task<void> {
            ++c.state.seen;
            auto sent = co_await c.conn.send_text(c.state.room + "#" +
                                                  std::to_string(c.state.seen) + " " + m.data);
            (void)sent; // a failed send ends the receive loop by itself
        })
        .on_close([](auto& c, std::uint16_t code, std::string_view) {
            std::printf("%s: %d messages, closed with %u\n", c.state.room.c_str(), c.state.seen,
                        unsigned(code));
        })
        .concurrency(8);
}

// The same handler values serve a standalone server and an upgrade route unchanged.
void mount(ws::server_options so, http::router& routes) {
    ws::server standalone(shout(), so);
    routes.get("/rooms/:room", http_ws::upgrade_route(shout()));
    routes.get("/echo", http_ws::upgrade_route(echo));
    (void)standalone;
}
// [docs:end]

#include <coronet/core/loop.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/when.hpp>
#include <coronet/http/server.hpp>

#include <cstdint>
#include <cstdio>
#include <variant>

namespace {

bool check(bool ok, const char* what) {
    std::fprintf(stderr, "%s: %s\n", ok ? "ok" : "FAILED", what);
    return ok;
}

core::task<bool> ask(std::string url, std::string text, std::string want) {
    const ws::connect_options opts; // not ws::connect_options{} here: docs/core.md, g++ 12
    auto c = co_await ws::connect(url, opts);
    if (!c)
        co_return false;
    auto sent = co_await (*c)->send_text(text);
    auto got = co_await (*c)->receive();
    auto closed = co_await (*c)->close();
    co_return sent&& got && got->data == want&& closed;
}

core::task<bool> talk(std::uint16_t ws_port, std::uint16_t http_port) {
    const std::string ws_base = "ws://127.0.0.1:" + std::to_string(ws_port);
    const std::string http_base = "ws://127.0.0.1:" + std::to_string(http_port);
    bool ok = check(co_await ask(ws_base + "/x", "hi", "#1 hi"), "events on ws::server");
    ok &= check(co_await ask(http_base + "/rooms/blue", "hi", "blue#1 hi"),
                "the same events on an upgrade route, with the path parameter");
    ok &= check(co_await ask(http_base + "/echo", "hi", "/echo hi"),
                "a coroutine handler on an upgrade route");
    co_return ok;
}

core::task<int> run_checks(core::loop& lp) {
    auto ws_listener = core::tcp_listener::bind(lp, core::endpoint::loopback_v4(0)).value();
    auto http_listener = core::tcp_listener::bind(lp, core::endpoint::loopback_v4(0)).value();
    http::router routes;
    mount(ws::server_options{}, routes);
    ws::server standalone(shout(), ws::server_options{});
    http::server web(routes, http::server_options{});
    auto r = co_await core::when_any(standalone.serve(ws_listener), web.serve(http_listener),
                                     talk(ws_listener.local_endpoint().value().port(),
                                          http_listener.local_endpoint().value().port()));
    co_return r.index() == 2 && std::get<2>(r) ? 0 : 1;
}

} // namespace

int main() {
    core::loop lp;
    return core::run(lp, run_checks(lp));
}
