// http_ws_echo: an HTTP/1.1 server whose WebSocket routes are upgrade routes (coronet::http_ws).
//
//   http_ws_echo [--host 127.0.0.1] [--port 8080] [--backend uring|epoll]
//                [--tls-cert FILE --tls-key FILE]
//
// GET /              text/plain: what this server offers
// /echo              WebSocket echo (coroutine style): every message comes back with its type.
//                    A plain GET (no upgrade) gets a text page from the same route.
// /echo/:name        WebSocket echo (event style, one handler object per connection that keeps
//                    NAME): the first message is answered "hello NAME" before its echo.
// Both routes offer the subprotocol "echo.v1" (chosen when the client asks for it). With
// --tls-cert/--tls-key the same routes are served over HTTPS and wss://.
//
// Prints "listening on HOST:PORT" once it accepts; exits cleanly on SIGINT/SIGTERM (graceful
// shutdown: live sessions are closed with 1001 going away).
#include <coronet/core/loop.hpp>
#include <coronet/core/signal.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/tls.hpp>
#include <coronet/core/when.hpp>
#include <coronet/http/server.hpp>
#include <coronet/http_ws/upgrade_route.hpp>

#include <common/server_cli.hpp>
#include <common/stop_signal.hpp>

#include <csignal>
#include <cstdio>
#include <memory>
#include <span>
#include <string>

namespace core = coronet::core;
namespace http = coronet::http;
namespace ws = coronet::ws;
namespace http_ws = coronet::http_ws;

namespace {

core::task<http::reply> index(http::request&) {
    co_return http::response::text(
        "coronet http_ws_echo\n"
        "  ws://HOST:PORT/echo        echoes every message\n"
        "  ws://HOST:PORT/echo/NAME   answers the first message hello NAME, then echoes\n");
}

core::task<http::reply> echo_page(http::request&) {
    co_return http::response::text("a WebSocket echo endpoint: connect with ws:// to talk\n");
}

core::task<core::result<void>> send_back(ws::session& s, const ws::message& m) {
    if (m.is_text())
        co_return co_await s.send_text(m.data);
    co_return co_await s.send_binary(std::as_bytes(std::span(m.data)));
}

// Coroutine style: the handler owns the conversation.
core::task<void> echo(ws::session& s, http_ws::upgrade_request&) {
    for (;;) {
        auto m = co_await s.receive();
        if (!m)
            co_return; // closed, protocol error (already answered with its code), gone
        auto sent = co_await send_back(s, *m);
        if (!sent)
            co_return;
    }
}

// Event style: hooks, with typed per-connection state made from the handshake (the route's
// path parameter). The same value would serve a standalone ws::server unchanged.
struct greeting {
    explicit greeting(ws::handshake_info& info) : name(info.param("name")) {}
    std::string name;
    bool greeted = false;
};

core::task<void> greet_and_echo(ws::session& s, greeting& g, ws::message& m) {
    if (!g.greeted) {
        g.greeted = true;
        auto hello = co_await s.send_text("hello " + g.name);
        if (!hello)
            co_return;
    }
    auto sent = co_await send_back(s, m);
    (void)sent; // a failed send ends the session's receive loop by itself
}

auto named_echo() {
    return ws::events<>().with_state<greeting>().on_message(
        [](auto& c, ws::message& m) { return greet_and_echo(c.conn, c.state, m); });
}

core::task<void> wait_signal(core::signal_set& signals) {
    co_await coronet::examples::wait_for_stop_signal(signals, "http_ws_echo");
}

core::task<int> serve(core::loop& lp, core::endpoint ep, const core::tls_context* tls) {
    auto listener = core::tcp_listener::bind(lp, ep);
    if (!listener) {
        std::fprintf(stderr, "http_ws_echo: cannot listen on %s: %s\n", ep.to_string().c_str(),
                     listener.error().message().c_str());
        co_return 1;
    }
    http_ws::upgrade_options opts;
    opts.handshake.subprotocols = {"echo.v1"};
    http::router routes;
    routes.get("/", index)
        .get("/echo", http_ws::upgrade_route(echo, opts, echo_page))
        .get("/echo/:name", http_ws::upgrade_route(named_echo(), opts));
    http::server_options so;
    so.tls = tls;
    http::server srv(routes, so);
    core::signal_set signals(lp, {SIGINT, SIGTERM});
    std::printf("listening on %s\n", listener->local_endpoint()->to_string().c_str());
    std::fflush(stdout);
    (void)co_await core::when_any(srv.serve(*listener), wait_signal(signals));
    co_return 0;
}

} // namespace

int main(int argc, char** argv) {
    auto o = coronet::examples::parse_server_cli(argc, argv, "http_ws_echo", 8080,
                                                 "serve HTTPS and wss:// (ALPN http/1.1)");
    auto ep = core::endpoint::from_ip(o.host, static_cast<std::uint16_t>(o.port));
    if (!ep) {
        std::fprintf(stderr, "http_ws_echo: invalid --host %s\n", o.host.c_str());
        return 2;
    }
    core::tls_context tls = coronet::examples::server_tls(o, "http_ws_echo", {"http/1.1"});
    core::block_signals({SIGINT, SIGTERM});
    coronet::examples::log_info_to_stderr();
    core::loop lp(o.loop_options());
    return core::run(lp, serve(lp, *ep, tls.valid() ? &tls : nullptr));
}
