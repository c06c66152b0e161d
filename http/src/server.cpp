// The HTTP server: admission (connection limit, memory budget), TLS, then one
// detail::server_connection per connection, all under core::serve's graceful shutdown.
#include <coronet/http/server.hpp>

#include <coronet/core/log.hpp>
#include <coronet/core/serve.hpp>
#include <coronet/core/timer.hpp>

#include "server_connection.hpp"
#include "wire.hpp"

#include <string>
#include <utility>

namespace coronet::http {
namespace {

using namespace std::chrono_literals;

core::task<core::result<void>> write_text(core::stream& s, std::string text) {
    co_return co_await s.write_all(core::as_bytes(text));
}

// A 503 for a connection the server cannot take, within a second.
core::task<void> refuse(core::tcp_stream s) {
    std::string out;
    detail::append_error(out, 503);
    auto w = co_await core::with_timeout(1s, write_text(s, std::move(out)));
    (void)w;
}

} // namespace

server::server(const router& routes, server_options opts) : routes_(routes), opts_(opts) {}

// What a client gets when the process is out of descriptors: refused at once, not left in the
// backlog (core::accept_loop_options::refusal).
constexpr std::string_view out_of_descriptors_response =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 26\r\nConnection: close\r\n\r\nout of descriptors: retry\n";

core::task<void> server::serve(core::tcp_listener& listener) {
    core::serve_options o;
    o.accept.refusal = out_of_descriptors_response;
    o.shutdown_grace = opts_.shutdown_grace;
    o.name = "http server";
    // On drain, idle connections close at once and busy ones finish their request (answered
    // with Connection: close) or are cancelled when the grace period ends.
    core::connection_handler on_accept = [this](core::tcp_stream s, core::stop_token draining) {
        return connection(std::move(s), draining);
    };
    co_await core::serve(listener, std::move(on_accept), o);
}

core::task<void> server::serve_connection(core::stream_ptr stream) {
    return serve_stream(std::move(stream), core::stop_token());
}

core::task<void> server::serve_stream(core::stream_ptr stream, core::stop_token draining) {
    // Not a coroutine around the connection: a plain connection runs in server_connection::
    // serve()'s frame alone. Either task takes the first head's deadline (header_timeout, the
    // TLS handshake included) when it starts.
    if (opts_.tls != nullptr)
        return detail::server_connection::serve_tls(*this, std::move(stream), draining);
    return detail::server_connection::serve(*this, std::move(stream), draining);
}

// Admission at the accept. Not a coroutine: an admitted connection runs in the frame of the
// task serve_stream returns (the accept loop spawns it at once, so the count checked here is the
// one that task's guard raises).
core::task<void> server::connection(core::tcp_stream s, core::stop_token draining) {
    // Out of connections or out of memory budget: refused at once, before a byte is read.
    const bool over_budget = opts_.memory_budget != nullptr && opts_.memory_budget->exhausted();
    if (live_ >= opts_.max_connections || over_budget) {
        core::count("http.connections_refused");
        if (over_budget)
            core::count("http.over_budget");
        return refuse(std::move(s));
    }
    return serve_stream(std::make_unique<core::tcp_stream>(std::move(s)), draining);
}

} // namespace coronet::http
