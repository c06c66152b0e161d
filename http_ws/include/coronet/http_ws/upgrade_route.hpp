#pragma once

#include <coronet/core/task.hpp>
#include <coronet/http/message.hpp>
#include <coronet/http/router.hpp>
#include <coronet/http_ws/export.hpp>
#include <coronet/http_ws/upgrade_request.hpp>
#include <coronet/ws/handler.hpp>
#include <coronet/ws/session.hpp>
#include <coronet/ws/upgrade.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace coronet::http_ws {

/// An application's own admission check, run after the handshake is valid and before the 101
/// is sent, while the whole HTTP request is still there (every header, the query, the peer's
/// cookies): return a response to refuse (e.g. 401 or 403; it is sent as an ordinary HTTP
/// response), or nullopt to accept. It may attach per-connection state with
/// `up.emplace_state<T>(...)`. If it throws, the server answers 500.
using admission_check = std::function<core::task<std::optional<http::response>>(
    http::request& req, upgrade_request& up)>;

/// How an upgrade route accepts WebSocket sessions. Every field has a safe default.
struct upgrade_options {
    /// What the opening handshake accepts, passed to `ws::check_upgrade` as is: subprotocols
    /// (the server's preference order), the Origin allow-list (empty: any origin; a browser
    /// app should list its own origin, RFC 6455 §10.2), and permessage-deflate (`deflate`, off
    /// by default, RFC 7692): the session compresses as the 101 agreed, with this policy.
    ws::server_handshake_options handshake;
    /// Limits, timeouts, keepalive and slow-reader policy of every session of the route.
    ws::session_options session;
    /// Request header names (case-insensitive) to copy into `upgrade_request::headers()` for
    /// the session's lifetime, e.g. {"Cookie", "User-Agent"}. Nothing else is kept.
    std::vector<std::string> keep_headers;
    /// Optional; see admission_check.
    admission_check admit;
};

namespace detail {
struct route_state;
} // namespace detail

/// An HTTP route handler that turns WebSocket upgrade requests into `ws::session`s (server
/// role) over the connection's own `core::stream`: plain TCP gives `ws://`, an HTTPS server
/// `wss://`. Register it like any handler, on GET (HEAD falls back to it):
///
/// ```cpp
/// routes.get("/chat/:room", http_ws::upgrade_route(chat_session, chat_options, chat_page));
/// ```
///
/// For each request it is called with:
/// 1. Not a WebSocket upgrade (no `Upgrade: websocket` and no `Sec-WebSocket-Key`): the `plain`
///    handler answers it when there is one, otherwise 426 Upgrade Required with
///    `Upgrade: websocket` (RFC 9110 §15.5.22): the resource exists, but only as a WebSocket.
/// 2. `ws::check_upgrade` with `options.handshake`: a refusal is answered as an ordinary HTTP
///    response with a one-line reason body — 400 (not a GET, not HTTP/1.1, missing Host,
///    Upgrade, Connection or a valid Sec-WebSocket-Key), 426 with `Sec-WebSocket-Version: 13`
///    (another version), 403 (Origin not on the allow-list).
/// 3. `options.admit`, if set: may refuse with its own response and may attach state.
/// 4. The 101 (with the accept key, the chosen subprotocol and whatever else the verdict
///    carries) goes out and the connection is taken over (http::connection_takeover): the
///    session starts with the bytes the client sent right behind its request (a first frame in
///    the same packet is not lost), and the handler runs.
///
/// Other methods on the same path are the router's business: a POST gets 405 with `Allow`
/// unless the application registered one. Taken-over sessions stay owned by the http server:
/// they count against `max_connections`, and on graceful shutdown each session is told
/// `close_on(draining)`, so it sends close 1001 (going away) and its receive() ends with
/// `ws::errc::closed` once the peer answers; what is still running after `shutdown_grace` is
/// cancelled.
///
/// Copies share one immutable state (copying is cheap); a session keeps that state alive while
/// it runs. Not thread-safe to modify; serving from several loops at once is fine as long as
/// the handlers themselves are.
class CORONET_HTTP_WS_EXPORT upgrade_route {
public:
    /// A route whose sessions run `handler` (ws/handler.hpp: a coroutine callable as
    /// `core::task<void>(ws::session&, ws::handshake_info&)` or a `ws::events`; the same
    /// handler serves a standalone `ws::server`). It sees the route's path parameters, the kept
    /// headers, the subprotocol, the agreed deflate and what `admit` attached; when a coroutine
    /// handler returns, a session still open is closed with 1000; if it throws, with 1011, and
    /// the exception goes on to the http server's error hook (logged; the server keeps
    /// serving). `plain` (optional) answers the requests that are not upgrades. Throws
    /// std::invalid_argument if `handler` is empty.
    explicit upgrade_route(ws::session_handler handler, upgrade_options options = {},
                           http::handler plain = {});

    /// The http::handler entry point: the reply to `req` (a 101 takeover or an HTTP response).
    /// Also usable from an application's own handler (e.g. after custom routing). Errors are
    /// responses; exceptions only from the application's callbacks.
    core::task<http::reply> operator()(http::request& req) const;

    /// The options the route was built with.
    const upgrade_options& options() const noexcept;

private:
    std::shared_ptr<const detail::route_state> state_;
};

/// True if `req` attempts a WebSocket upgrade: an `Upgrade` field holding the `websocket` token
/// (case-insensitive, on any of its field lines) or a `Sec-WebSocket-Key` field. Such a request
/// is validated (and possibly refused) rather than handed to the `plain` handler.
CORONET_HTTP_WS_EXPORT bool is_websocket_upgrade(const http::request& req) noexcept;

} // namespace coronet::http_ws
