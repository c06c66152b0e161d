// expect: on_close must be callable as on_close\(ws::context<Conn, State>&, std::uint16_t code,
// std::string_view reason\)
#include <coronet/ws/handler.hpp>

namespace ws = coronet::ws;

void make() {
    ws::session_handler h =
        ws::events<>().on_close([](auto&, const std::string& reason) { (void)reason; });
    (void)h;
}
