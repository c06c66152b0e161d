// expect: expected a coroutine callable as core::task<void>\(Conn&, ws::handshake_info&\)
#include <coronet/ws/handler.hpp>

namespace ws = coronet::ws;

// A plain function, not a coroutine: the old std::function-style mistake.
void echo(ws::session&, ws::handshake_info&) {}

void make() {
    ws::session_handler h = echo;
    (void)h;
}
