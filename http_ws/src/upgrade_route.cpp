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
    session_handler handler; // coroutine style, or
    handler_factory factory; // event style
    upgrade_options options;
    http::handler plain;
};
} // namespace detail

namespace {

using field_view = std::pair<std::string_view, std::string_view>;

// The field lines of a response head ws built ("status line CRLF (name: value CRLF)* CRLF").
// Going through the head rather than the verdict's named members means whatever ws adds to its
// answer later (Sec-WebSocket-Extensions) reaches the client without a change here.
std::vector<field_view> fields_of(std::string_view head) {
    std::vector<field_view> out;
    auto eol = head.find("\r\n");
    if (eol == std::string_view::npos)
        return out;
    head.remove_prefix(eol + 2);
    while ((eol = head.find("\r\n")) != std::string_view::npos && eol != 0) {
        std::string_view line = head.substr(0, eol);
        head.remove_prefix(eol + 2);
        auto colon = line.find(':');
        if (colon == std::string_view::npos)
            continue;
        out.emplace_back(line.substr(0, colon), http::detail::trim_ows(line.substr(colon + 1)));
    }
    return out;
}

// The http server frames every response itself (length, connection handling), so a refusal
// keeps only ws's informative fields (e.g. Sec-WebSocket-Version: 13 on a 426).
bool framing_field(std::string_view name) noexcept {
    return http::iequals(name, "content-length") || http::iequals(name, "transfer-encoding") ||
           http::iequals(name, "connection") || http::iequals(name, "content-type");
}

http::response refusal(const ws::upgrade_verdict& v) {
    http::response r = http::response::text(v.reason + "\n", v.status);
    for (const auto& [name, value] : fields_of(v.response))
        if (!framing_field(name))
            r.set(std::string(name), std::string(value));
    return r;
}

http::response switching_protocols(const ws::upgrade_verdict& v) {
    http::response r(101);
    for (const auto& [name, value] : fields_of(v.response)) {
        if (http::iequals(name, "content-length") || http::iequals(name, "transfer-encoding"))
            continue;
        r.set(std::string(name), std::string(value));
    }
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
// runs), the request data the handler sees, and the event handler object.
class ws_takeover final : public http::connection_takeover {
public:
    ws_takeover(http::response head, std::shared_ptr<const detail::route_state> route,
                upgrade_request up, std::unique_ptr<ws::session_handler_base> events,
                std::optional<ws::deflate_params> deflate)
        : connection_takeover(std::move(head)), route_(std::move(route)), up_(std::move(up)),
          events_(std::move(events)), deflate_(deflate) {}

    core::task<void> run(http::takeover_context ctx) override {
        // The session compresses exactly as the 101 told the client, with the route's policy.
        ws::session_options so = route_->options.session;
        so.agreed_deflate = deflate_;
        so.deflate = route_->options.handshake.deflate;
        ws::session s(std::move(ctx.stream), ws::role::server, std::move(ctx.prefetched),
                      std::move(so));
        s.close_on(ctx.draining);
        std::exception_ptr failed;
        try {
            if (events_)
                co_await ws::run(s, *events_);
            else
                co_await route_->handler(s, up_);
        } catch (...) {
            failed = std::current_exception();
        }
        if (s.is_open()) {
            // A handler that returned without closing ends normally; one that threw tells the
            // peer the server failed (RFC 6455 §7.4.1) before the error reaches the server.
            core::result<void> closed;
            if (failed)
                closed = co_await s.close(1011, std::string("internal error"));
            else
                closed = co_await s.close(1000, std::string());
            (void)closed;
        }
        s.close_on(core::stop_token());
        if (failed)
            std::rethrow_exception(failed);
    }

private:
    std::shared_ptr<const detail::route_state> route_;
    upgrade_request up_;
    std::unique_ptr<ws::session_handler_base> events_;
    std::optional<ws::deflate_params> deflate_;
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
        co_return refusal(verdict);
    }

    upgrade_request up(req, opts.keep_headers, verdict.subprotocol);
    if (opts.admit) {
        std::optional<http::response> refused = co_await opts.admit(req, up);
        if (refused) {
            core::count("http_ws.upgrades_refused");
            co_return std::move(*refused);
        }
    }
    std::unique_ptr<ws::session_handler_base> events;
    if (route->factory) {
        events = route->factory(up);
        if (!events) {
            core::log(core::log_level::error, "http_ws: the handler factory returned null");
            co_return http::response::text("Internal Server Error\n", 500);
        }
    }
    core::count("http_ws.upgrades");
    co_return std::unique_ptr<http::connection_takeover>(
        std::make_unique<ws_takeover>(switching_protocols(verdict), std::move(route), std::move(up),
                                      std::move(events), verdict.deflate));
}

} // namespace

upgrade_route::upgrade_route(session_handler handler, upgrade_options options,
                             http::handler plain) {
    if (!handler)
        throw std::invalid_argument("http_ws::upgrade_route: empty session handler");
    auto st = std::make_shared<detail::route_state>();
    st->handler = std::move(handler);
    st->options = std::move(options);
    st->plain = std::move(plain);
    state_ = std::move(st);
}

upgrade_route::upgrade_route(handler_factory factory, upgrade_options options,
                             http::handler plain) {
    if (!factory)
        throw std::invalid_argument("http_ws::upgrade_route: empty handler factory");
    auto st = std::make_shared<detail::route_state>();
    st->factory = std::move(factory);
    st->options = std::move(options);
    st->plain = std::move(plain);
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
