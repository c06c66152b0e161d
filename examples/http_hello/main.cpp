// http_hello: the HTTP/1.1 server of coronet::http.
//
//   http_hello [--host 127.0.0.1] [--port 8080] [--backend uring|epoll] [--threads N]
//              [--tls-cert FILE --tls-key FILE]
//
// GET /             "Hello, World!" as text/plain (the classic plaintext benchmark)
// GET /json/:name   {"message":"Hello, NAME!"}
// POST /echo        answers with the request body (Content-Length or chunked)
//
// --threads N serves on N event loops (one thread and SO_REUSEPORT listener each; 0: one per
// core). Prints "listening on HOST:PORT" once it accepts; exits cleanly on SIGINT/SIGTERM
// (graceful shutdown on every loop: stops accepting, lets requests in progress finish).
#include <coronet/core/loop.hpp>
#include <coronet/core/signal.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/tls.hpp>
#include <coronet/core/when.hpp>
#include <coronet/http/server.hpp>

#include <common/serve_loops.hpp>
#include <common/server_cli.hpp>

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

/// Serves `listener` until the loop's stop token fires: one server per loop, the routes shared
/// (a router is only read while serving).
core::task<void> serve_loop(const http::router& routes, const http::server_options& so,
                            core::tcp_listener& listener) {
    http::server srv(routes, so);
    co_await srv.serve(listener);
}

} // namespace

int main(int argc, char** argv) {
    auto o = coronet::examples::parse_server_cli(argc, argv, "http_hello", 8080,
                                                 "serve HTTPS (ALPN http/1.1)", true);
    auto ep = core::endpoint::from_ip(o.host, static_cast<std::uint16_t>(o.port));
    if (!ep) {
        std::fprintf(stderr, "http_hello: invalid --host %s\n", o.host.c_str());
        return 2;
    }
    core::tls_context tls = coronet::examples::server_tls(o, "http_hello", {"http/1.1"});
    coronet::examples::log_info_to_stderr();
    http::router routes;
    routes.get("/", hello).get("/json/:name", json).post("/echo", echo);
    http::server_options so;
    so.tls = tls.valid() ? &tls : nullptr;
    return coronet::examples::serve_on_loops(
        o, *ep, "http_hello",
        [&](core::loop&, core::tcp_listener& l) { return serve_loop(routes, so, l); });
}
