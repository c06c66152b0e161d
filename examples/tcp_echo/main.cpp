// tcp_echo: a TCP echo server on coronet::core alone.
//
//   tcp_echo [--host 127.0.0.1] [--port 7007] [--backend uring|epoll]
//            [--tls-cert FILE --tls-key FILE]
//
// Prints "listening on HOST:PORT" once it accepts, echoes every byte back (over TLS when given a
// certificate and key), and exits cleanly on SIGINT/SIGTERM (stops accepting, cancels the live
// connections, joins them).
#include <coronet/core/accept_loop.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/signal.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/tls.hpp>

#include <common/server_cli.hpp>
#include <common/stop_signal.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

namespace core = coronet::core;

namespace {

core::task<void> echo(core::tcp_stream s) {
    std::byte buf[16 * 1024];
    for (;;) {
        auto n = co_await s.read_some(buf);
        if (!n)
            co_return; // end of stream, reset or cancelled: the connection is done
        auto w = co_await s.write_all({buf, *n}); // bound first: see docs/core.md, g++ 12
        if (!w)
            co_return;
    }
}

// A client gets this long to finish its TLS handshake.
constexpr auto handshake_timeout = std::chrono::seconds(10);

core::task<void> echo_tls(core::tcp_stream s, const core::tls_context& ctx) {
    auto tls = core::tls_stream::server(ctx, std::make_unique<core::tcp_stream>(std::move(s)));
    auto hs = co_await core::with_timeout(handshake_timeout, tls->handshake());
    if (!hs)
        co_return; // plain-text client, bad hello, timeout: this connection only
    std::byte buf[16 * 1024];
    for (;;) {
        auto n = co_await tls->read_some(buf);
        if (!n)
            break;
        auto w = co_await tls->write_all({buf, *n});
        if (!w)
            co_return;
    }
    (void)co_await tls->shutdown(); // close_notify after the peer's
}

core::task<int> serve(core::loop& lp, core::endpoint ep, const core::tls_context* tls) {
    auto listener = core::tcp_listener::bind(lp, ep);
    if (!listener) {
        std::fprintf(stderr, "tcp_echo: cannot listen on %s: %s\n", ep.to_string().c_str(),
                     listener.error().message().c_str());
        co_return 1;
    }
    core::signal_set signals(lp, {SIGINT, SIGTERM});
    core::task_scope scope;
    scope.spawn(core::accept_loop(*listener, scope, [tls](core::tcp_stream s) {
        return tls != nullptr ? echo_tls(std::move(s), *tls) : echo(std::move(s));
    }));
    std::printf("listening on %s\n", listener->local_endpoint()->to_string().c_str());
    std::fflush(stdout);

    co_await coronet::examples::wait_for_stop_signal(signals, "tcp_echo");
    listener->close();
    scope.request_stop();
    co_await scope.join();
    co_return 0;
}

} // namespace

int main(int argc, char** argv) {
    auto o = coronet::examples::parse_server_cli(argc, argv, "tcp_echo", 7007, "echo over TLS");
    auto ep = core::endpoint::from_ip(o.host, static_cast<std::uint16_t>(o.port));
    if (!ep) {
        std::fprintf(stderr, "tcp_echo: invalid --host %s\n", o.host.c_str());
        return 2;
    }
    core::tls_context tls = coronet::examples::server_tls(o, "tcp_echo");
    core::block_signals({SIGINT, SIGTERM});
    coronet::examples::log_info_to_stderr();
    core::loop lp(o.loop_options());
    return core::run(lp, serve(lp, *ep, tls.valid() ? &tls : nullptr));
}
