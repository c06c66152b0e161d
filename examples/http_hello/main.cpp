// http_hello: the HTTP/1.1 server of coronet::http.
//
//   http_hello [--host 127.0.0.1] [--port 8080] [--backend uring|epoll]
//              [--tls-cert FILE --tls-key FILE]
//
// GET /             "Hello, World!" as text/plain (the classic plaintext benchmark)
// GET /json/:name   {"message":"Hello, NAME!"}
// POST /echo        answers with the request body (Content-Length or chunked)
//
// Prints "listening on HOST:PORT" once it accepts; exits cleanly on SIGINT/SIGTERM (graceful
// shutdown: stops accepting, lets requests in progress finish).
#include <coronet/core/loop.hpp>
#include <coronet/core/signal.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/tls.hpp>
#include <coronet/core/when.hpp>
#include <coronet/http/server.hpp>

#include <common/server_cli.hpp>
#include <common/stop_signal.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

namespace core = coronet::core;
namespace http = coronet::http;

namespace {

core::task<http::reply> hello(http::request&) {
    co_return http::response::text("Hello, World!");
}

core::task<http::reply> json(http::request& req) {
    std::string name(req.param("name"));
    std::string escaped;
    for (char c : name) {
        if (c == '"' || c == '\\')
            escaped += '\\';
        if (static_cast<unsigned char>(c) >= 0x20)
            escaped += c;
    }
    co_return http::response::json("{\"message\":\"Hello, " + escaped + "!\"}");
}

core::task<http::reply> echo(http::request& req) {
    http::response r(200);
    r.set("Content-Type",
          std::string(req.header("content-type").empty() ? "application/octet-stream"
                                                         : req.header("content-type")));
    r.body = std::string(req.body());
    co_return r;
}

core::task<void> wait_signal(core::signal_set& signals) {
    co_await coronet::examples::wait_for_stop_signal(signals, "http_hello");
}

core::task<int> serve(core::loop& lp, core::endpoint ep, const core::tls_context* tls) {
    auto listener = core::tcp_listener::bind(lp, ep);
    if (!listener) {
        std::fprintf(stderr, "http_hello: cannot listen on %s: %s\n", ep.to_string().c_str(),
                     listener.error().message().c_str());
        co_return 1;
    }
    http::router routes;
    routes.get("/", hello).get("/json/:name", json).post("/echo", echo);
    http::server_options so;
    so.tls = tls;
    http::server srv(routes, so);
    core::signal_set signals(lp, {SIGINT, SIGTERM});
    std::printf("listening on %s\n", listener->local_endpoint()->to_string().c_str());
    std::fflush(stdout);
    // The server runs until the signal arrives; when_any then stops it gracefully.
    (void)co_await core::when_any(srv.serve(*listener), wait_signal(signals));
    co_return 0;
}

} // namespace

int main(int argc, char** argv) {
    auto o = coronet::examples::parse_server_cli(argc, argv, "http_hello", 8080,
                                                 "serve HTTPS (ALPN http/1.1)");
    auto ep = core::endpoint::from_ip(o.host, static_cast<std::uint16_t>(o.port));
    if (!ep) {
        std::fprintf(stderr, "http_hello: invalid --host %s\n", o.host.c_str());
        return 2;
    }
    core::tls_context tls = coronet::examples::server_tls(o, "http_hello", {"http/1.1"});
    core::block_signals({SIGINT, SIGTERM});
    coronet::examples::log_info_to_stderr();
    core::loop lp(o.loop_options());
    return core::run(lp, serve(lp, *ep, tls.valid() ? &tls : nullptr));
}
