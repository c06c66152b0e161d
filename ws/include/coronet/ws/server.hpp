#pragma once

#include <coronet/core/socket.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/task.hpp>
#include <coronet/core/tls.hpp>
#include <coronet/ws/export.hpp>
#include <coronet/ws/handler.hpp>
#include <coronet/ws/session.hpp>
#include <coronet/ws/upgrade.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace coronet::ws {

/// Standalone server settings (no HTTP layer involved).
struct server_options {
    server_handshake_options handshake;
    session_options session;
    /// From the accept: the TLS handshake and the upgrade request (a connection that sends
    /// nothing is closed after this long).
    std::chrono::milliseconds handshake_timeout{10'000};
    /// More are answered 503, and so is every new connection while
    /// `session.memory_budget` is exhausted (counted as `ws.over_budget`).
    std::size_t max_connections = 10'000;
    const core::tls_context* tls = nullptr; ///< wss:// with this context
    /// On shutdown, how long sessions (sent 1001) may take to finish before they are cancelled.
    std::chrono::milliseconds shutdown_grace{5'000};
    /// Request header names (case-insensitive) to copy into the handler's
    /// `handshake_info::headers()` for the session's lifetime, e.g. {"Cookie"}. Nothing else is
    /// kept (as `http_ws::upgrade_options::keep_headers`).
    std::vector<std::string> keep_headers;
};

/// A WebSocket server on core alone: accepts TCP (or TLS) connections, reads and answers the
/// opening handshake (permessage-deflate per `handshake.deflate`; refusals are answered and the
/// connection closed gracefully), and runs `handler` (ws/handler.hpp: a coroutine or a
/// `ws::events`, the same value an http_ws upgrade route takes) for each session with its
/// `handshake_info` (target, kept headers, subprotocol, agreed deflate; no path parameters).
/// A coroutine handler that returns leaves a session still open to be closed with 1000; one
/// that throws, with 1011 (the exception is logged by the accept scope). Serves until the
/// caller's stop token fires (logged once, info) or the listener fails or is closed (logged
/// once by `core::accept_loop`), then shuts down gracefully: stops accepting, sends every session
/// close 1001 "going away" (`session::close_on`: a handler's receive() ends with errc::closed),
/// waits up to `shutdown_grace`, then cancels what is left and joins it. Single-threaded.
class CORONET_WS_EXPORT server {
public:
    explicit server(session_handler handler, server_options opts = {});
    core::task<void> serve(core::tcp_listener& listener);
    std::size_t connections() const noexcept { return live_; }

private:
    struct opened; // a session and what the handler sees of its handshake (server.cpp)
    core::task<void> connection(core::stream_ptr stream, core::stop_token draining);
    core::task<std::unique_ptr<opened>> open(core::stream_ptr stream);
    session_handler handler_;
    server_options opts_;
    /// The settings of every session without compression, shared by all of them.
    std::shared_ptr<const session_options> plain_session_;
    std::size_t live_ = 0;
};

/// Client settings.
struct connect_options {
    client_handshake_options handshake;
    session_options session;
    std::chrono::milliseconds connect_timeout{10'000}; ///< resolve + connect + TLS + handshake
    /// For wss://: null means a context verifying against the system store (verification is
    /// always on unless the context says otherwise).
    const core::tls_context* tls = nullptr;
};

/// Opens a client session to a `ws://` or `wss://` URL (parsed by `core::url`: IPv6 literals in
/// brackets, the port defaulting to 80 or 443, the fragment dropped), through `core::connect`.
/// Errors: `core::url_errc` for a malformed URL or another scheme (`bad_scheme`), resolver,
/// connect and TLS errors, the handshake's errors (`request_upgrade`), `timed_out`.
CORONET_WS_EXPORT core::task<core::result<std::unique_ptr<session>>> connect(std::string url,
                                                                             connect_options opts);

} // namespace coronet::ws
