// Built against an installed coronet that has the optional ws_redis layer: its headers, its
// link line (coronet::ws and core below it, hiredis for a static install) and its run path.
#include <coronet/ws_redis/connection.hpp>

int main() {
    auto u = coronet::ws_redis::url::parse("redis://:pw@127.0.0.1:6380/2");
    coronet::ws_redis::connection closed;
    return u && u->database == 2 && !closed.is_open() ? 0 : 1;
}
