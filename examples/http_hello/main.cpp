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

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

namespace core = coronet::core;
namespace http = coronet::http;

namespace {

struct options {
    std::string host = "127.0.0.1";
    unsigned port = 8080;
    std::optional<core::backend_kind> backend;
    std::string tls_cert;
    std::string tls_key;
};

void usage(std::FILE* out) {
    std::fputs("usage: http_hello [--host ADDR] [--port N] [--backend uring|epoll]\n"
               "                  [--tls-cert FILE --tls-key FILE] [--help]\n"
               "  --host ADDR      address to listen on (default 127.0.0.1)\n"
               "  --port N         port (default 8080; 0 picks a free one)\n"
               "  --backend NAME   force the loop backend (same as CORONET_BACKEND)\n"
               "  --tls-cert FILE  PEM certificate chain: serve HTTPS (ALPN http/1.1)\n"
               "  --tls-key FILE   PEM private key of that certificate\n",
               out);
}

bool parse(int argc, char** argv, options& o) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
        if (a == "--help" || a == "-h") {
            usage(stdout);
            std::exit(0);
        }
        const char* v = value();
        if (v == nullptr) return false;
        if (a == "--host") {
            o.host = v;
        } else if (a == "--port") {
            char* end = nullptr;
            unsigned long p = std::strtoul(v, &end, 10);
            if (*end != '\0' || p > 65535) return false;
            o.port = static_cast<unsigned>(p);
        } else if (a == "--backend") {
            if (std::strcmp(v, "uring") == 0) o.backend = core::backend_kind::uring;
            else if (std::strcmp(v, "epoll") == 0) o.backend = core::backend_kind::epoll;
            else return false;
        } else if (a == "--tls-cert") {
            o.tls_cert = v;
        } else if (a == "--tls-key") {
            o.tls_key = v;
        } else {
            return false;
        }
    }
    return o.tls_cert.empty() == o.tls_key.empty();
}

core::task<http::reply> hello(http::request&) { co_return http::response::text("Hello, World!"); }

core::task<http::reply> json(http::request& req) {
    std::string name(req.param("name"));
    std::string escaped;
    for (char c : name) {
        if (c == '"' || c == '\\') escaped += '\\';
        if (static_cast<unsigned char>(c) >= 0x20) escaped += c;
    }
    co_return http::response::json("{\"message\":\"Hello, " + escaped + "!\"}");
}

core::task<http::reply> echo(http::request& req) {
    http::response r(200);
    r.set("Content-Type", std::string(req.header("content-type").empty()
                                          ? "application/octet-stream"
                                          : req.header("content-type")));
    r.body = std::string(req.body());
    co_return r;
}

core::task<void> wait_signal(core::signal_set& signals) { (void)co_await signals.wait(); }

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

}  // namespace

int main(int argc, char** argv) {
    options o;
    if (!parse(argc, argv, o)) {
        usage(stderr);
        return 2;
    }
    auto ep = core::endpoint::from_ip(o.host, static_cast<std::uint16_t>(o.port));
    if (!ep) {
        std::fprintf(stderr, "http_hello: invalid --host %s\n", o.host.c_str());
        return 2;
    }
    core::tls_context tls;
    if (!o.tls_cert.empty()) {
        core::tls_server_options to;
        to.cert_file = o.tls_cert;
        to.key_file = o.tls_key;
        to.alpn = {"http/1.1"};
        auto ctx = core::tls_context::server(to);
        if (!ctx) {
            std::fprintf(stderr, "http_hello: TLS setup failed: %s\n", ctx.error().message().c_str());
            return 2;
        }
        tls = std::move(*ctx);
    }
    core::block_signals({SIGINT, SIGTERM});
    core::loop_options lo;
    lo.backend = o.backend;
    core::loop lp(lo);
    return core::run(lp, serve(lp, *ep, tls.valid() ? &tls : nullptr));
}
