// expect: this hook is already set
#include <coronet/ws/handler.hpp>

namespace ws = coronet::ws;

void make() {
    auto ev = ws::events<>().on_open([](auto&) {}).on_open([](auto&) {});
    (void)ev;
}
