#pragma once

#include <coronet/core/loop.hpp>
#include <coronet/core/memory_budget.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/stream.hpp>
#include <coronet/core/task.hpp>
#include <coronet/core/tls.hpp>
#include <coronet/http/export.hpp>
#include <coronet/http/parser.hpp>
#include <coronet/http/router.hpp>

#include <chrono>
#include <cstddef>

namespace coronet::http {

/// Server settings. Every limit has a safe default.
struct server_options {
    parser_limits limits;
    /// To receive a whole request head (slowloris guard) -> 408 with `Connection: close`. For a
    /// connection's first request it runs from the accept (TLS handshake included), so a
    /// connection that sends nothing is closed after this long, without a response; for a
    /// later request on a keep-alive connection it runs from the request's first byte.
    std::chrono::milliseconds header_timeout{10'000};
    /// To receive a whole request body -> 408.
    std::chrono::milliseconds body_timeout{30'000};
    /// Between requests of a keep-alive connection: after a response, the next request's first
    /// byte must come within this, or the connection is closed without a response. (Before
    /// the first request `header_timeout` applies instead.)
    std::chrono::milliseconds idle_timeout{60'000};
    /// To write one response (a peer that stops reading is cut off).
    std::chrono::milliseconds write_timeout{30'000};
    /// For a TLS handshake.
    std::chrono::milliseconds handshake_timeout{10'000};
    /// Connections served at once; more are answered 503 and closed.
    std::size_t max_connections = 10'000;
    /// The total budget for buffered request bytes, shared with every server and session that
    /// names it (null: no budget). Each connection's read buffer beyond its first 64 KiB and a
    /// chunked body being decoded beyond its first 64 KiB are charged to it. A request whose
    /// bytes the budget refuses is answered 503 with `Connection: close`; while the budget is
    /// exhausted, new connections are answered 503 and closed at once. Both are counted as
    /// `http.over_budget` (refused connections also as `http.connections_refused`). Must
    /// outlive the server.
    core::memory_budget* memory_budget = &core::memory_budget::process();
    /// After the stop request, how long live requests may finish before they are cancelled.
    std::chrono::milliseconds shutdown_grace{5'000};
    /// Serve HTTPS with this context (ALPN "http/1.1" is the caller's to configure); the
    /// context must outlive the server.
    const core::tls_context* tls = nullptr;
};

namespace detail {
class server_connection;
}

/// A strict HTTP/1.1 server (RFC 9112): keep-alive, pipelining (responses in request order,
/// written together when several requests arrived together), chunked request bodies,
/// streamed response bodies, `Expect: 100-continue`, HEAD, a cached `Date`, HTTP/1.0, header /
/// body / idle / write timeouts, a connection limit, graceful shutdown and the
/// connection-takeover interface. Malformed requests get their status (400, 413, 414, 431,
/// 501, 505) with `Connection: close`; past the memory budget, 503. Single-threaded: one server per
/// loop (run one per loop with SO_REUSEPORT listeners to use more cores). The router must outlive
/// the server.
class CORONET_HTTP_EXPORT server {
public:
    explicit server(const router& routes, server_options opts = {});
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    /// Accepts on `listener` and serves until the caller's stop token fires (logged once, info)
    /// or the listener fails or is closed (logged once by `core::accept_loop`), then shuts down
    /// gracefully: stops accepting, closes idle connections, lets requests in progress finish
    /// within `shutdown_grace` (answering them with `Connection: close`), cancels the rest, and
    /// returns once every connection task (takeovers included) has ended.
    core::task<void> serve(core::tcp_listener& listener);

    /// Serves one connection (already accepted; TLS is applied if configured) until it closes.
    /// For tests and custom accept loops. The connection counts in `connections()` but is not
    /// one of `serve`'s: a graceful shutdown neither drains nor waits for it (its takeover's
    /// `draining` never fires); cancel it through its task's stop token.
    core::task<void> serve_connection(core::stream_ptr stream);

    /// Connections being served now.
    std::size_t connections() const noexcept { return live_; }
    const server_options& options() const noexcept { return opts_; }

private:
    friend class detail::server_connection; // reads routes_, counts itself in live_
    core::task<void> connection(core::tcp_stream s, core::stop_token draining);
    core::task<void> serve_stream(core::stream_ptr stream, core::stop_token draining);

    const router& routes_;
    server_options opts_;
    std::size_t live_ = 0;
};

} // namespace coronet::http
