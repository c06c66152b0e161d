// expect: on_message must be callable as on_message\(ws::context<Conn, State>&, ws::message&\) or
// return void or core::task<void>
#include <coronet/ws/handler.hpp>

namespace ws = coronet::ws;

void make() {
    ws::session_handler h = ws::events<>().on_message([](auto&, ws::message&) { return 42; });
    (void)h;
}
