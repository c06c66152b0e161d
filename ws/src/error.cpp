#include <coronet/ws/error.hpp>

#include <string>

namespace coronet::ws {
namespace {

class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "coronet.ws"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
        case errc::protocol_error:
            return "WebSocket protocol error";
        case errc::invalid_payload:
            return "invalid UTF-8 in a text message or close reason";
        case errc::message_too_big:
            return "WebSocket message too big";
        case errc::invalid_close_code:
            return "invalid WebSocket close code";
        case errc::bad_handshake:
            return "WebSocket handshake refused";
        case errc::closed:
            return "WebSocket closed";
        case errc::queue_full:
            return "WebSocket send queue full";
        case errc::keepalive_timeout:
            return "no pong within the keepalive timeout";
        case errc::idle_timeout:
            return "WebSocket idle timeout";
        case errc::over_budget:
            return "memory budget exhausted: try again later";
        }
        return "unknown coronet.ws error";
    }
};

// Status codes ride in the code's value above the enum's values, so that an error_code alone
// tells the user which status the server answered (through `connect` too) and its message says
// so; every value still compares equal to `unexpected_status`.
constexpr int status_base = 1000;

bool carries_status(int ev) noexcept {
    return ev >= status_base + 100 && ev <= status_base + 999;
}

class handshake_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "coronet.ws.handshake"; }
    std::string message(int ev) const override;
    std::error_condition default_error_condition(int) const noexcept override {
        return {static_cast<int>(errc::bad_handshake), ws_category()};
    }
    bool equivalent(int ev, const std::error_condition& cond) const noexcept override {
        if (cond.category() == *this)
            return cond.value() == ev ||
                   (cond.value() == static_cast<int>(handshake_errc::unexpected_status) &&
                    carries_status(ev));
        return cond == default_error_condition(ev);
    }
};

std::string handshake_category_impl::message(int ev) const {
    if (carries_status(ev))
        return "WebSocket handshake: the server answered " + std::to_string(ev - status_base) +
               " instead of 101 Switching Protocols";
    switch (static_cast<handshake_errc>(ev)) {
    case handshake_errc::invalid_url:
        return "WebSocket handshake: not a ws:// or wss:// URL";
    case handshake_errc::invalid_request_field:
        return "WebSocket handshake: CR, LF or NUL in a request field";
    case handshake_errc::response_too_large:
        return "WebSocket handshake: the response head is too large";
    case handshake_errc::malformed_response:
        return "WebSocket handshake: malformed HTTP/1.1 response";
    case handshake_errc::unexpected_status:
        return "WebSocket handshake: the server did not answer 101 Switching Protocols";
    case handshake_errc::no_upgrade_websocket:
        return "WebSocket handshake: the response lacks Upgrade: websocket";
    case handshake_errc::no_connection_upgrade:
        return "WebSocket handshake: the response lacks Connection: upgrade";
    case handshake_errc::bad_accept:
        return "WebSocket handshake: missing or wrong Sec-WebSocket-Accept";
    case handshake_errc::unoffered_subprotocol:
        return "WebSocket handshake: the server chose a subprotocol that was not offered";
    case handshake_errc::unoffered_extension:
        return "WebSocket handshake: the server chose an extension that was not offered";
    case handshake_errc::invalid_extension:
        return "WebSocket handshake: invalid Sec-WebSocket-Extensions answer";
    }
    return "unknown coronet.ws.handshake error";
}

} // namespace

const std::error_category& ws_category() noexcept {
    static const category c;
    return c;
}

const std::error_category& handshake_category() noexcept {
    static const handshake_category_impl c;
    return c;
}

std::error_code unexpected_status_error(int status) noexcept {
    if (status < 100 || status > 999)
        return make_error_code(handshake_errc::unexpected_status);
    return {status_base + status, handshake_category()};
}

int handshake_status(const std::error_code& ec) noexcept {
    if (ec.category() != handshake_category() || !carries_status(ec.value()))
        return 0;
    return ec.value() - status_base;
}

std::uint16_t close_code_of(const std::error_code& ec) noexcept {
    if (ec.category() != ws_category())
        return 1011;
    switch (static_cast<errc>(ec.value())) {
    case errc::protocol_error:
    case errc::invalid_close_code:
        return 1002;
    case errc::invalid_payload:
        return 1007;
    case errc::message_too_big:
        return 1009;
    case errc::queue_full:
        return 1008;
    case errc::idle_timeout:
        return 1001;
    case errc::over_budget:
        return 1013;
    default:
        return 1011;
    }
}

bool valid_close_code(std::uint16_t code) noexcept {
    if (code >= 1000 && code <= 1003)
        return true;
    if (code >= 1007 && code <= 1014)
        return true;
    return code >= 3000 && code <= 4999;
}

} // namespace coronet::ws
