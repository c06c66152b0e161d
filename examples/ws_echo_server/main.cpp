// ws_echo_server: a standalone WebSocket echo server on coronet::ws (no HTTP layer linked).
//
//   ws_echo_server [--host 127.0.0.1] [--port 9001] [--backend uring|epoll]
//                  [--tls-cert FILE --tls-key FILE]
//
// Echoes every message back with its type (text as text, binary as binary). Prints
// "listening on HOST:PORT" once it accepts; exits cleanly on SIGINT/SIGTERM.
#include <coronet/core/loop.hpp>
#include <coronet/core/signal.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/when.hpp>
#include <coronet/ws/server.hpp>

#include <common/server_cli.hpp>

#include <csignal>
#include <cstdio>

namespace core = coronet::core;
namespace ws = coronet::ws;

namespace {

core::task<void> echo(ws::session& s, const ws::accepted_upgrade&) {
    for (;;) {
        auto m = co_await s.receive();
        if (!m) co_return;  // closed, protocol error (already answered with its code), gone
        auto sent = m->is_text() ? co_await s.send_text(m->data)
                                 : co_await s.send_binary(std::as_bytes(std::span(m->data)));
        if (!sent) co_return;
    }
}

core::task<void> wait_signal(core::signal_set& signals) { (void)co_await signals.wait(); }

core::task<int> serve(core::loop& lp, core::endpoint ep, const core::tls_context* tls) {
    auto listener = core::tcp_listener::bind(lp, ep);
    if (!listener) {
        std::fprintf(stderr, "ws_echo_server: cannot listen on %s: %s\n", ep.to_string().c_str(),
                     listener.error().message().c_str());
        co_return 1;
    }
    ws::server_options so;
    so.tls = tls;
    ws::server srv(echo, so);
    core::signal_set signals(lp, {SIGINT, SIGTERM});
    std::printf("listening on %s\n", listener->local_endpoint()->to_string().c_str());
    std::fflush(stdout);
    (void)co_await core::when_any(srv.serve(*listener), wait_signal(signals));
    co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
    auto o = coronet::examples::parse_server_cli(argc, argv, "ws_echo_server", 9001, "serve wss://");
    auto ep = core::endpoint::from_ip(o.host, static_cast<std::uint16_t>(o.port));
    if (!ep) {
        std::fprintf(stderr, "ws_echo_server: invalid --host %s\n", o.host.c_str());
        return 2;
    }
    core::tls_context tls = coronet::examples::server_tls(o, "ws_echo_server");
    core::block_signals({SIGINT, SIGTERM});
    core::loop lp(o.loop_options());
    return core::run(lp, serve(lp, *ep, tls.valid() ? &tls : nullptr));
}
