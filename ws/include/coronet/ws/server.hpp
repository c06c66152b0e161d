#pragma once

#include <coronet/core/socket.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/task.hpp>
#include <coronet/core/tls.hpp>
#include <coronet/ws/export.hpp>
#include <coronet/ws/session.hpp>
#include <coronet/ws/upgrade.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

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
};

/// What runs each accepted session: the handler owns the conversation; when it returns the
/// session is closed (with 1000 if the handler did not close it).
using session_handler = std::function<core::task<void>(session&, const accepted_upgrade&)>;

/// A WebSocket server on core alone: accepts TCP (or TLS) connections, reads and answers the
/// opening handshake (permessage-deflate per `handshake.deflate`; refusals are answered and the
/// connection closed gracefully), and runs `handler` for each session. Serves until the
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
    core::task<void> connection(core::tcp_stream s);
    session_handler handler_;
    server_options opts_;
    std::size_t live_ = 0;
    core::stop_source* drain_ = nullptr;
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

/// Opens a client session to a `ws://` or `wss://` URL. Errors: `errc::bad_handshake` (also for
/// a malformed URL), resolver, connect and TLS errors, `timed_out`.
CORONET_WS_EXPORT core::task<core::result<std::unique_ptr<session>>> connect(std::string url,
                                                                             connect_options opts);

} // namespace coronet::ws
