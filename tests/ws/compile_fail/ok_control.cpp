// The control: the same shapes, written right, compile (so the others fail for their reason).
#include <coronet/ws/handler.hpp>

namespace ws = coronet::ws;
namespace core = coronet::core;

core::task<void> body(ws::session&, ws::handshake_info&) {
    co_return;
}

void make() {
    ws::session_handler a = body;
    ws::session_handler b = ws::events<>()
                                .on_open([](auto&) {})
                                .on_message([](auto&, ws::message&) {})
                                .on_close([](auto&, std::uint16_t, std::string_view) {});
    (void)a;
    (void)b;
}
