// The bridge: an http route handler that validates an upgrade with ws's I/O-free handshake check,
// answers it through http's own response path, and takes the connection over into a ws session.
#include <coronet/http_ws/upgrade_route.hpp>

#include <coronet/core/log.hpp>
#include <coronet/http/headers.hpp>

#include <exception>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace coronet::http_ws {

namespace detail {
struct route_state {
    ws::session_handler handler;
    upgrade_options options;
    http::handler plain;
    /// The settings of every session without compression, shared by all of them.
    std::shared_ptr<const ws::session_options> plain_session;
};
} // namespace detail

namespace {

// http frames every response itself (length, connection handling), so the verdict's fields are
// all it needs from ws: on a 101 the upgrade's, on a refusal the informative ones (e.g.
// Sec-WebSocket-Version: 13 on a 426) next to the reason as a text body.
http::response response_of(const ws::upgrade_verdict& v) {
    http::response r =
        v.status == 101 ? http::response(101) : http::response::text(v.reason + "\n", v.status);
    for (const auto& [name, value] : v.fields)
        r.set(name, value);
    return r;
}

http::response upgrade_required() {
    http::response r =
        http::response::text("426 Upgrade Required: this resource is a WebSocket endpoint\n", 426);
    r.set("Upgrade", "websocket");
    r.set("Connection", "Upgrade"); // RFC 9110 §7.8: Upgrade goes with the connection option
    return r;
}

// Owns what the session needs once the 101 is out: the route (kept alive while the session
// runs) and the handshake the handler sees.
class ws_takeover final : public http::connection_takeover {
public:
    ws_takeover(http::response head, std::shared_ptr<const detail::route_state> route,
                ws::handshake_info info)
        : connection_takeover(std::move(head)), route_(std::move(route)), info_(std::move(info)) {}

    core::task<void> run(http::takeover_context ctx) override {
        // The session compresses exactly as the 101 told the client, with the route's policy.
        ws::session s(session_options(), std::move(ctx.stream), ws::role::server,
                      std::move(ctx.prefetched));
        s.close_on(ctx.draining);
        std::exception_ptr failed;
        try {
            co_await ws::serve_session(route_->handler, s, info_);
        } catch (...) {
            failed = std::current_exception(); // serve_session closed with 1011 already
        }
        s.close_on(core::stop_token());
        if (failed)
            std::rethrow_exception(failed);
    }

private:
    // The route's shared settings, or a copy of them with the agreed compression.
    std::shared_ptr<const ws::session_options> session_options() const {
        const auto& agreed = info_.deflate();
        if (!agreed)
            return route_->plain_session;
        return std::make_shared<const ws::session_options>(ws::session_options_for(
            route_->options.session, route_->options.handshake.deflate, agreed));
    }

    std::shared_ptr<const detail::route_state> route_;
    ws::handshake_info info_;
};

core::task<http::reply> handle(std::shared_ptr<const detail::route_state> route,
                               http::request& req) {
    if (!is_websocket_upgrade(req)) {
        if (!route->plain)
            co_return upgrade_required();
        http::reply r = co_await route->plain(req);
        co_return r;
    }
    const upgrade_options& opts = route->options;
    std::vector<ws::field> fields;
    fields.reserve(req.headers().size());
    for (const auto& f : req.headers().fields())
        fields.emplace_back(f.name, f.value);
    ws::upgrade_verdict verdict =
        ws::check_upgrade(req.method(), req.version_minor(), fields, opts.handshake);
    if (verdict.status != 101) {
        core::count("http_ws.upgrades_refused");
        co_return response_of(verdict);
    }

    upgrade_request up = handshake_info_of(req, opts.keep_headers, verdict.subprotocol);
    up.set_deflate(verdict.deflate);
    if (opts.admit) {
        std::optional<http::response> refused = co_await opts.admit(req, up);
        if (refused) {
            core::count("http_ws.upgrades_refused");
            co_return std::move(*refused);
        }
    }
    core::count("http_ws.upgrades");
    co_return std::unique_ptr<http::connection_takeover>(
        std::make_unique<ws_takeover>(response_of(verdict), std::move(route), std::move(up)));
}

} // namespace

upgrade_route::upgrade_route(ws::session_handler handler, upgrade_options options,
                             http::handler plain) {
    if (!handler)
        throw std::invalid_argument("http_ws::upgrade_route: empty session handler");
    auto st = std::make_shared<detail::route_state>();
    st->handler = std::move(handler);
    st->options = std::move(options);
    st->plain = std::move(plain);
    st->plain_session = std::make_shared<const ws::session_options>(
        ws::session_options_for(st->options.session, st->options.handshake.deflate, std::nullopt));
    state_ = std::move(st);
}

core::task<http::reply> upgrade_route::operator()(http::request& req) const {
    return handle(state_, req);
}

const upgrade_options& upgrade_route::options() const noexcept {
    return state_->options;
}

bool is_websocket_upgrade(const http::request& req) noexcept {
    for (const auto& f : req.headers().fields()) {
        if (http::iequals(f.name, "upgrade") && http::list_contains(f.value, "websocket"))
            return true;
        if (http::iequals(f.name, "sec-websocket-key"))
            return true;
    }
    return false;
}

} // namespace coronet::http_ws
