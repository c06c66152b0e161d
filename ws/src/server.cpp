#include <coronet/ws/server.hpp>

#include <coronet/core/connect.hpp>
#include <coronet/core/log.hpp>
#include <coronet/core/serve.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/url.hpp>

#include "text.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace coronet::ws {
namespace {

using namespace std::chrono_literals;

struct live_guard {
    std::size_t& n;
    explicit live_guard(std::size_t& c) : n(c) { ++n; }
    ~live_guard() { --n; }
};

core::task<core::result<void>> write_text(core::stream& s, std::string text) {
    co_return co_await s.write_all(core::as_bytes(text));
}

// After an error answer: half-close, then read (and drop) what the client still sends until it
// closes too, bounded in time and bytes. Closing with unread input would send a TCP reset, and
// a reset can destroy the answer before the client reads it (RFC 9112 §9.6).
core::task<void> linger_close(core::stream& s) {
    auto sd = co_await s.shutdown();
    if (!sd)
        co_return;
    auto drain = [](core::stream& st) -> core::task<core::result<void>> {
        std::byte buf[4096];
        for (std::size_t total = 0; total < 256 * 1024;) {
            auto n = co_await st.read_some(buf);
            if (!n)
                co_return n.error();
            total += *n;
        }
        co_return core::result<void>{};
    };
    auto r = co_await core::with_timeout(1s, drain(s));
    (void)r;
}

} // namespace

namespace {

// What the handler sees of an accepted handshake: the target, the subprotocol, the agreed
// deflate and the fields the server was asked to keep.
handshake_info info_of(accepted_upgrade& up, const std::vector<std::string>& keep) {
    handshake_info info(std::move(up.target));
    info.set_subprotocol(std::move(up.subprotocol));
    info.set_deflate(up.deflate);
    for (auto& field : up.headers) { // not a structured binding: clang 14 cannot capture one
        const std::string& name = field.first;
        const bool kept = std::any_of(keep.begin(), keep.end(), [&](const std::string& k) {
            return detail::iequal(k, name);
        });
        if (kept)
            info.add_header(std::move(field.first), std::move(field.second));
    }
    return info;
}

} // namespace

server::server(session_handler handler, server_options opts)
    : handler_(std::move(handler)), opts_(std::move(opts)),
      plain_session_(std::make_shared<const session_options>(
          session_options_for(opts_.session, opts_.handshake.deflate, std::nullopt))) {}

// What a client gets when the process is out of descriptors: refused at once, not left in the
// backlog (core::accept_loop_options::refusal).
constexpr std::string_view out_of_descriptors_response =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 26\r\nConnection: close\r\n\r\nout of descriptors: retry\n";

core::task<void> server::serve(core::tcp_listener& listener) {
    core::serve_options o;
    o.accept.refusal = out_of_descriptors_response;
    o.shutdown_grace = opts_.shutdown_grace;
    o.name = "ws server";
    // On drain, open sessions are sent 1001 (close_on) and get shutdown_grace to finish their
    // closing handshake; then whatever is left is cancelled.
    core::connection_handler on_accept = [this](core::tcp_stream s, core::stop_token draining) {
        // On the heap at once: the connection's frame, which lives as long as the session,
        // then holds a pointer and no moved-from stream.
        return connection(std::make_unique<core::tcp_stream>(std::move(s)), draining);
    };
    co_await core::serve(listener, std::move(on_accept), o);
}

struct server::opened {
    opened(core::stream_ptr stream, accepted_upgrade& up, const server_options& o,
           const std::shared_ptr<const session_options>& plain)
        : info(info_of(up, o.keep_headers)),
          sess(up.deflate ? std::make_shared<const session_options>(
                                session_options_for(o.session, o.handshake.deflate, up.deflate))
                          : plain,
               std::move(stream), role::server, std::move(up.prefetched)) {}
    handshake_info info;
    session sess;
};

// The connection's frame lives as long as the session: it holds the session (made by open(),
// whose frame with the handshake's temporaries is gone once the handshake is done) and runs the
// handler as serve_session does, without a frame of serve_session's own.
core::task<void> server::connection(core::stream_ptr stream, core::stop_token draining) {
    live_guard g(live_);
    std::unique_ptr<opened> o = co_await open(std::move(stream));
    if (!o)
        co_return;
    o->sess.close_on(draining);
    detail::session_run run(handler_, o->sess, o->info);
    std::exception_ptr failed;
    try {
        co_await run.handler();
    } catch (...) {
        failed = std::current_exception();
    }
    if (o->sess.is_open()) {
        auto closed = co_await run.close(failed);
        (void)closed;
    }
    run.finish(failed);
}

// Refusal when full or over budget, TLS, the upgrade: the session, or null when the
// connection ended here.
core::task<std::unique_ptr<server::opened>> server::open(core::stream_ptr stream) {
    const core::memory_budget* budget = opts_.session.memory_budget;
    const bool over_budget = budget != nullptr && budget->exhausted();
    if (over_budget)
        core::count("ws.over_budget");
    if (live_ > opts_.max_connections || over_budget) {
        // Refused before the upgrade (RFC 6455 §4.2.1 lets the server answer any HTTP status).
        auto w = co_await core::with_timeout(
            1s, write_text(*stream, "HTTP/1.1 503 Service Unavailable\r\nConnection: "
                                    "close\r\nContent-Length: 0\r\n\r\n"));
        if (w)
            co_await linger_close(*stream);
        co_return nullptr;
    }
    const auto deadline = core::clock::now() + opts_.handshake_timeout;
    if (opts_.tls != nullptr) {
        auto t = core::tls_stream::server(*opts_.tls, std::move(stream));
        auto hs = co_await core::with_timeout(opts_.handshake_timeout, t->handshake());
        if (!hs)
            co_return nullptr;
        stream = std::move(t);
    }
    auto left = deadline - core::clock::now();
    if (left < core::clock::duration::zero())
        left = core::clock::duration::zero();
    auto up = co_await core::with_timeout(left, accept_upgrade(*stream, opts_.handshake));
    if (!up) {
        // Refused (already answered): let the answer reach the client before closing.
        if (up.error() == errc::bad_handshake)
            co_await linger_close(*stream);
        co_return nullptr; // refused, timed out or gone: this connection only
    }
    co_return std::make_unique<opened>(std::move(stream), *up, opts_, plain_session_);
}

namespace {

// Everything connect_options::connect_timeout covers: resolve, connect, TLS, the handshake.
core::task<core::result<std::unique_ptr<session>>> open_session(core::url u, connect_options opts) {
    core::tls_context fallback;
    const core::tls_context* ctx = nullptr;
    if (u.secure()) {
        ctx = opts.tls;
        if (ctx == nullptr) {
            auto made = core::tls_context::client(core::tls_client_options{});
            if (!made)
                co_return made.error();
            fallback = std::move(*made);
            ctx = &fallback;
        }
    }
    auto s = co_await core::connect(u.host, u.port, ctx);
    if (!s)
        co_return s.error();
    auto up = co_await request_upgrade(**s, u.authority(), u.target, opts.handshake);
    if (!up)
        co_return up.error();
    session_options so = opts.session;
    so.deflate = opts.handshake.deflate;
    so.agreed_deflate = up->deflate;
    co_return std::make_unique<session>(std::move(*s), role::client, std::move(up->prefetched), so);
}

} // namespace

core::task<core::result<std::unique_ptr<session>>> connect(std::string url, connect_options opts) {
    auto u = core::url::parse(url);
    if (!u)
        co_return u.error();
    if (u->scheme != "ws" && u->scheme != "wss")
        co_return make_error_code(core::url_errc::bad_scheme);
    const auto timeout = opts.connect_timeout;
    co_return co_await core::with_timeout(timeout, open_session(std::move(*u), std::move(opts)));
}

} // namespace coronet::ws
