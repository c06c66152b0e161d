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

} // namespace

const std::error_category& ws_category() noexcept {
    static const category c;
    return c;
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
