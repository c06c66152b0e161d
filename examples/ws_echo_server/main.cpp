// ws_echo_server: a standalone WebSocket echo server on coronet::ws (no HTTP layer linked).
//
//   ws_echo_server [--host 127.0.0.1] [--port 9001] [--backend uring|epoll] [--threads N]
//                  [--tls-cert FILE --tls-key FILE] [--ping-interval MS] [--no-deflate]
//                  [--handler-delay-ms D] [--concurrency N]
//
// Echoes every message back with its type (text as text, binary as binary). With
// --handler-delay-ms the handler sleeps D ms before each echo (simulated work), and with
// --concurrency up to N messages of one connection are handled at once (ws::events
// concurrency): 8 back-to-back messages with N=8 and D=100 are all echoed after about 100 ms
// instead of 800. Accepts a client's
// permessage-deflate offer unless --no-deflate is given. Sends no
// keepalive pings unless --ping-interval is given (benchmark clients do not expect them).
// --threads N serves on N event loops (one thread and SO_REUSEPORT listener each; 0: one per
// core). Prints "listening on HOST:PORT" once it accepts; exits cleanly on SIGINT/SIGTERM.
#include <coronet/core/loop.hpp>
#include <coronet/core/signal.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/when.hpp>
#include <coronet/ws/handler.hpp>
#include <coronet/ws/server.hpp>

#include <common/serve_loops.hpp>
#include <common/server_cli.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;

namespace {

core::task<void> echo(ws::session& s, ws::handshake_info&) {
    for (;;) {
        // A view, not a copy: the message where the session read it, valid until the next
        // receive (no allocation per message).
        auto m = co_await s.receive_view();
        if (!m)
            co_return; // closed, protocol error (already answered with its code), gone
        auto sent = m->is_text() ? co_await s.send_text(m->data)
                                 : co_await s.send_binary(core::as_bytes(m->data));
        if (!sent)
            co_return;
    }
}

/// Echoes `m` on `s` after `delay` (the simulated work of --handler-delay-ms).
core::task<void> echo_later(ws::session& s, ws::message& m, std::chrono::milliseconds delay) {
    if (delay.count() > 0)
        co_await core::sleep_for(delay);
    auto sent = m.is_text() ? co_await s.send_text(m.data)
                            : co_await s.send_binary(std::as_bytes(std::span(m.data)));
    (void)sent; // a failed send ends the session's receive loop by itself
}

struct handling {
    std::chrono::milliseconds delay{0};
    std::size_t concurrency = 1;
};

/// The plain echo, or with --handler-delay-ms / --concurrency the event style that runs up to
/// N delayed echoes of one connection at once.
ws::session_handler make_handler(handling h) {
    if (h.delay.count() == 0 && h.concurrency <= 1)
        return echo;
    return ws::events<>()
        .on_message(
            [delay = h.delay](auto& c, ws::message& m) { return echo_later(c.conn, m, delay); })
        .concurrency(h.concurrency);
}

/// Serves `listener` until the loop's stop token fires, with a server of its own loop.
core::task<void> serve_loop(const ws::server_options& so, handling h,
                            core::tcp_listener& listener) {
    ws::server srv(make_handler(h), so);
    co_await srv.serve(listener);
}

} // namespace

int main(int argc, char** argv) {
    // --ping-interval MS is this example's own flag; the rest are every example server's.
    std::chrono::milliseconds ping_interval{0};
    bool deflate = true;
    handling h;
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i) {
        if (std::strcmp(argv[i], "--no-deflate") == 0) {
            deflate = false;
            continue;
        }
        if (std::strcmp(argv[i], "--ping-interval") == 0 && i + 1 < argc) {
            ping_interval = std::chrono::milliseconds(std::strtoul(argv[++i], nullptr, 10));
            continue;
        }
        if (std::strcmp(argv[i], "--handler-delay-ms") == 0 && i + 1 < argc) {
            h.delay = std::chrono::milliseconds(std::strtoul(argv[++i], nullptr, 10));
            continue;
        }
        if (std::strcmp(argv[i], "--concurrency") == 0 && i + 1 < argc) {
            h.concurrency = std::strtoul(argv[++i], nullptr, 10);
            continue;
        }
        if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0)
            std::puts(
                "extra: --ping-interval MS     send keepalive pings (default: none)\n"
                "       --no-deflate           refuse permessage-deflate (accepted by default)\n"
                "       --handler-delay-ms D   sleep D ms before each echo (default 0)\n"
                "       --concurrency N        handle up to N messages of a connection at "
                "once (default 1)");
        args.push_back(argv[i]);
    }
    auto o = coronet::examples::parse_server_cli(static_cast<int>(args.size()), args.data(),
                                                 "ws_echo_server", 9001, "serve wss://", true);
    auto ep = core::endpoint::from_ip(o.host, static_cast<std::uint16_t>(o.port));
    if (!ep) {
        std::fprintf(stderr, "ws_echo_server: invalid --host %s\n", o.host.c_str());
        return 2;
    }
    core::tls_context tls = coronet::examples::server_tls(o, "ws_echo_server");
    coronet::examples::log_info_to_stderr();
    ws::server_options so;
    so.tls = tls.valid() ? &tls : nullptr;
    so.session.ping_interval = ping_interval;
    so.handshake.deflate.enabled = deflate;
    return coronet::examples::serve_on_loops(
        o, *ep, "ws_echo_server",
        [&](core::loop&, core::tcp_listener& l) { return serve_loop(so, h, l); });
}
