// expect: on_mesage
#include <coronet/ws/handler.hpp>

namespace ws = coronet::ws;

void make() {
    ws::session_handler h = ws::events<>().on_mesage([](auto&, ws::message&) {});
    (void)h;
}
