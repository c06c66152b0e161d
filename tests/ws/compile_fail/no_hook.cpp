// expect: the handler has no hook
#include <coronet/ws/handler.hpp>

namespace ws = coronet::ws;

void make() {
    ws::session_handler h = ws::events<>();
    (void)h;
}
