// Built against an installed coronet: one program using every layer, so that each layer's
// headers, link line and runtime dependencies (the shared libraries below it) are checked.
#include <coronet/core/loop.hpp>
#include <coronet/http/router.hpp>
#include <coronet/http_ws/upgrade_route.hpp>
#include <coronet/ws/deflate.hpp>

#include <string_view>

int main() {
    coronet::core::loop lp;
    coronet::http::router routes;
    routes.get("/chat/:room", coronet::http_ws::upgrade_route(
                                  [](coronet::ws::session&, coronet::http_ws::upgrade_request&)
                                      -> coronet::core::task<void> { co_return; }));
    std::string_view offer[] = {"permessage-deflate; client_max_window_bits"};
    auto parsed = coronet::ws::parse_extensions(offer); // ws's zlib-backed layer is there
    return parsed && parsed->size() == 1 ? 0 : 1;
}
