// docs/http_ws.md, "Use": an upgrade route with a coroutine handler, path parameters, a kept
// header, a subprotocol, an Origin allow-list and an admission check that attaches state.
// Below the shown part, main() checks what the page promises: it serves the route on a free
// port and talks to it with ws::connect and http::client (test docs.snippet.http_ws_upgrade).
// [docs:begin]
#include <coronet/http/router.hpp>
#include <coronet/http_ws/upgrade_route.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace core = coronet::core;
namespace http = coronet::http;
namespace ws = coronet::ws;
namespace http_ws = coronet::http_ws;

struct user {
    std::string name;
};

// The application's own: who a Cookie belongs to, and the page a plain GET gets.
std::optional<user> find_user(std::string_view cookie);
core::task<http::reply> chat_page(http::request& req);

core::task<void> chat(ws::session& s, http_ws::upgrade_request& up) {
    std::string room(up.param("room")); // from the route pattern
    const user* who = up.state<user>(); // attached by the admission check
    for (;;) {
        auto m = co_await s.receive();
        if (!m)
            co_return; // closed (1001 on shutdown), error, gone
        auto sent = co_await s.send_text(who->name + "@" + room + ": " + m->data);
        if (!sent)
            co_return;
    }
}

core::task<std::optional<http::response>> admit(http::request& req, http_ws::upgrade_request& up) {
    auto u = find_user(req.header("cookie"));
    if (!u)
        co_return http::response::text("log in first\n", 401);
    up.emplace_state<user>(std::move(*u));
    co_return std::nullopt;
}

void add_chat_route(http::router& routes) {
    http_ws::upgrade_options opts;
    opts.handshake.subprotocols = {"chat.v1"};
    opts.handshake.allowed_origins = {"https://chat.example"};
    opts.keep_headers = {"Cookie"};
    opts.admit = admit;
    routes.get("/chat/:room", http_ws::upgrade_route(chat, opts, chat_page));
}
// [docs:end]

#include <coronet/core/loop.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/when.hpp>
#include <coronet/http/client.hpp>
#include <coronet/http/server.hpp>
#include <coronet/ws/server.hpp>

#include <cstdint>
#include <cstdio>
#include <variant>

std::optional<user> find_user(std::string_view cookie) {
    if (cookie == "session=alice")
        return user{"alice"};
    return std::nullopt;
}

core::task<http::reply> chat_page(http::request&) {
    co_return http::response::text("the chat page\n");
}

namespace {

bool check(bool ok, const char* what) {
    std::fprintf(stderr, "%s: %s\n", ok ? "ok" : "FAILED", what);
    return ok;
}

ws::connect_options client_options(std::string origin, std::string cookie) {
    ws::connect_options o;
    o.handshake.subprotocols = {"chat.v1"};
    o.handshake.origin = std::move(origin);
    if (!cookie.empty())
        o.handshake.headers = {{"Cookie", std::move(cookie)}};
    return o;
}

core::task<bool> talk(std::uint16_t port) {
    const std::string base = "127.0.0.1:" + std::to_string(port);
    bool ok = true;

    auto s = co_await ws::connect("ws://" + base + "/chat/lobby",
                                  client_options("https://chat.example", "session=alice"));
    ok &= check(s.has_value(), "an upgrade with the right Cookie and Origin is accepted");
    if (s) {
        auto sent = co_await (*s)->send_text("hi");
        auto m = co_await (*s)->receive();
        ok &= check(sent && m && m->data == "alice@lobby: hi",
                    "the handler sees the path parameter and the admitted user");
        auto closed = co_await (*s)->close();
        ok &= check(closed.has_value(), "the session closes cleanly");
    }

    auto no_cookie = co_await ws::connect("ws://" + base + "/chat/lobby",
                                          client_options("https://chat.example", ""));
    ok &= check(!no_cookie, "the admission check refuses an upgrade without the Cookie");
    auto other_origin = co_await ws::connect(
        "ws://" + base + "/chat/lobby", client_options("https://evil.example", "session=alice"));
    ok &= check(!other_origin, "an Origin that is not on the allow-list is refused");

    http::client web;
    auto page = co_await web.fetch("http://" + base + "/chat/lobby");
    ok &= check(page && page->status == 200 && page->body == "the chat page\n",
                "a plain GET gets the plain handler's page");
    co_return ok;
}

core::task<int> run_checks(core::loop& lp) {
    http::router routes;
    add_chat_route(routes);
    http::server srv(routes);
    auto listener = core::tcp_listener::bind(lp, core::endpoint::loopback_v4(0)).value();
    const std::uint16_t port = listener.local_endpoint().value().port();
    // talk() finishing first stops the server (when_any cancels the loser and awaits it).
    auto r = co_await core::when_any(srv.serve(listener), talk(port));
    co_return r.index() == 1 && std::get<1>(r) ? 0 : 1;
}

} // namespace

int main() {
    core::loop lp;
    return core::run(lp, run_checks(lp));
}
