// chat: a multi-room chat server. An HTTP/1.1 server serves the chat page at / and WebSocket
// rooms at /chat/:room through http_ws upgrade routes; a ws::hub runs every connection (rooms,
// broadcast, per-connection metadata, heartbeats; one hub per loop with --threads, linked into
// one). This is what scripts/demo starts.
//
//   chat [--host 127.0.0.1] [--port 8080] [--backend uring|epoll] [--threads N]
//        [--tls-cert FILE --tls-key FILE] [--no-deflate] [--max-connections N]
//        [--redis URL [--redis-sharded]]
//
// --threads N runs N event loops (0: one per core), each with its own SO_REUSEPORT listener,
// HTTP server and hub of one ws::hub_group, so rooms span the loops; --max-connections is
// shared out between them. With --redis (redis://host:port, rediss:// for TLS, unix:///path) rooms
// are shared with every other chat process started with the same URL, through a Redis backplane
// (docs/scaling.md); --redis-sharded uses sharded pub/sub, and with a Redis Cluster node as URL
// spreads the rooms over the cluster's masters.
//
// GET /, plain GET /chat/ROOM   the chat page (compiled in; /chat/ROOM preselects ROOM)
// ws://HOST:PORT/chat/ROOM      a chat connection in ROOM ([A-Za-z0-9._-], 1-32 bytes)
//
// Protocol (text messages; docs/chat.md): the client's first message is its name (1-32 bytes of
// UTF-8 without control characters or ':', not starting with '*' or a space, not ending with a
// space: so "* " lines are always notices and "NAME: " always splits). The server answers
// "hello NAME" and tells the others in the room "* NAME joined". Every later non-empty message
// goes to everyone in the room, the sender included, as "NAME: TEXT"; when the connection ends
// the others get "* NAME left". A bad name gets "error: ..." and close 1008, a binary message
// close 1003, a message over 4 KiB close 1009.
//
// permessage-deflate is negotiated by default (with server_no_context_takeover, as hub
// connections do); --no-deflate turns it off. Over --max-connections (default 10000) an upgrade is
// answered 503 before the 101. A browser's upgrade must come from the page's own origin (403
// otherwise; clients that send no Origin are accepted).
//
// Prints "listening on HOST:PORT" once it accepts (and, on stderr, the URL to open); on
// SIGINT/SIGTERM every chat connection is closed with 1001 (going away), then the HTTP server
// shuts down gracefully.
#include <coronet/core/loop.hpp>
#include <coronet/core/signal.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/tls.hpp>
#include <coronet/core/when.hpp>
#include <coronet/http/server.hpp>
#include <coronet/http_ws/upgrade_route.hpp>
#include <coronet/ws/hub.hpp>
#include <coronet/ws/hub_group.hpp>

#include <common/hub_loop.hpp>
#include <common/redis_backplane.hpp>
#include <common/serve_loops.hpp>
#include <common/server_cli.hpp>

#include "chat_page.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace core = coronet::core;
namespace http = coronet::http;
namespace ws = coronet::ws;
namespace http_ws = coronet::http_ws;

namespace {

constexpr std::size_t max_name_bytes = 32;
constexpr std::size_t max_room_bytes = 32;
constexpr std::size_t max_message_bytes = 4096;

struct chat_options {
    bool deflate = true;
    std::size_t max_connections = 10'000;
    std::string redis; ///< --redis: share rooms with other chat processes through this Redis
    bool redis_sharded = false; ///< --redis-sharded: sharded pub/sub, a Redis Cluster's masters
};

/// A room name: 1-32 bytes of [A-Za-z0-9._-] (so it needs no percent-encoding in the path).
bool valid_room(std::string_view room) {
    if (room.empty() || room.size() > max_room_bytes)
        return false;
    for (char ch : room) {
        const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                        (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

/// A name: 1-32 bytes (already valid UTF-8: it arrived as a text message), no C0 or C1 control
/// character, DEL or ':', not starting with '*' or a space, not ending with a space. So a line
/// from the server that starts with "* " is a notice, and "NAME: TEXT" splits at the first ':'.
bool valid_name(std::string_view name) {
    if (name.empty() || name.size() > max_name_bytes)
        return false;
    if (name.front() == ' ' || name.front() == '*' || name.back() == ' ')
        return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const auto b = static_cast<unsigned char>(name[i]);
        if (b < 0x20 || b == 0x7f || b == ':')
            return false;
        // U+0080..U+009F are encoded C2 80 .. C2 9F.
        if (b == 0xc2 && i + 1 < name.size()) {
            const auto next = static_cast<unsigned char>(name[i + 1]);
            if (next >= 0x80 && next <= 0x9f)
                return false;
        }
    }
    return true;
}

/// True if a browser's Origin names the host the request was sent to (same-origin WebSocket,
/// RFC 6455 §10.2): "http(s)://" followed by exactly the Host field. No Origin (a non-browser
/// client) is accepted.
bool same_origin(std::string_view origin, std::string_view host) {
    if (origin.empty())
        return true;
    for (std::string_view scheme : {std::string_view("http://"), std::string_view("https://")}) {
        if (origin.substr(0, scheme.size()) == scheme && origin.substr(scheme.size()) == host)
            return true;
    }
    return false;
}

core::task<http::reply> page(http::request&) {
    http::response r(200);
    r.set("Content-Type", "text/html; charset=utf-8");
    r.set("Cache-Control", "no-store");
    r.set("X-Content-Type-Options", "nosniff");
    r.body = std::string(coronet::examples::chat_page);
    co_return r;
}

core::task<http::reply> no_favicon(http::request&) {
    co_return http::response(204);
}

/// Runs before the 101: 503 when the hub is full, 400 for a bad room name, 403 for a foreign
/// origin.
core::task<std::optional<http::response>> admit(const ws::hub& hub, http::request& req,
                                                http_ws::upgrade_request& up) {
    if (!hub.can_accept()) {
        auto r = http::response::text("the chat is full, try again later\n", 503);
        r.set("Retry-After", "5");
        co_return r;
    }
    if (!valid_room(up.param("room")))
        co_return http::response::text("a room name is 1-32 characters of A-Z a-z 0-9 . _ -\n",
                                       400);
    if (!same_origin(req.header("origin"), req.header("host")))
        co_return http::response::text("cross-origin chat connections are refused\n", 403);
    co_return std::nullopt;
}

/// One chat connection, from its name to its leave notice (see the file comment).
core::task<void> converse(ws::hub& hub, ws::hub_connection& c, ws::handshake_info& info) {
    const std::string room(info.param("room"));
    auto first = co_await c.receive();
    if (!first)
        co_return;
    if (!first->is_text()) {
        c.close(1003, "text messages only");
        co_return;
    }
    if (!valid_name(first->data)) {
        auto told = co_await c.send_text(
            "error: a name is 1-32 bytes without control characters or ':', not starting with '*'"
            " and without spaces around it");
        (void)told;
        c.close(1008, "invalid name");
        co_return;
    }
    const std::string name = std::move(first->data);
    c.set_meta("name", name);
    auto hello = co_await c.send_text("hello " + name);
    if (!hello)
        co_return;
    if (!c.join(room))
        co_return; // closing meanwhile
    hub.broadcast_room_except(room, ws::prepared_message::text("* " + name + " joined"), c.id());
    for (;;) {
        auto m = co_await c.receive();
        if (!m)
            break; // closed (1001 on shutdown), 1009 too long, protocol error, gone
        if (!m->is_text()) {
            c.close(1003, "text messages only");
            break;
        }
        if (m->data.empty())
            continue;
        hub.broadcast_room(room, ws::prepared_message::text(name + ": " + m->data));
    }
    // This connection is closing already, so the broadcast skips it.
    hub.broadcast_room_except(room, ws::prepared_message::text("* " + name + " left"), c.id());
}

/// One loop's part: an HTTP server on the loop's listener whose upgrade routes run on the
/// loop's hub (of the group), with the Redis backplane on loop 0 when --redis is given.
core::task<void> serve_loop(ws::hub& hub, core::tcp_listener& listener,
                            const core::tls_context* tls, const chat_options& co, bool first) {
    // With --redis, rooms are shared with every chat (or ws_rooms) process on that Redis; the
    // backplane set on loop 0's hub serves every loop.
    coronet::examples::backplane_ptr bp =
        first ? coronet::examples::make_backplane(hub, co.redis, co.redis_sharded) : nullptr;

    http_ws::upgrade_options uo;
    uo.handshake.deflate.enabled = co.deflate;
    uo.handshake.deflate.server_no_context_takeover = true; // one compressed broadcast for all
    uo.session.limits.max_message_size = max_message_bytes; // longer: close 1009
    uo.admit = [&hub](http::request& req, http_ws::upgrade_request& up) {
        return admit(hub, req, up);
    };
    // Each session runs on the hub; the route's :room parameter comes along in its handshake.
    ws::session_handler on_session = hub.as_session_handler(
        [&hub](ws::hub_connection& c, ws::handshake_info& info) { return converse(hub, c, info); });

    http::router routes;
    routes.get("/", page)
        .get("/favicon.ico", no_favicon)
        .get("/chat/:room", http_ws::upgrade_route(on_session, uo, page));
    http::server_options so;
    so.tls = tls;
    // The hub refuses upgrades past its limit with 503; the http server leaves room for the
    // page loads and those refusals.
    so.max_connections = hub.options().max_connections + 64;
    http::server srv(routes, so);
    if (first)
        std::fprintf(stderr, "chat: open %s://%s/ in a browser (rooms at /chat/ROOM)\n",
                     tls != nullptr ? "https" : "http",
                     listener.local_endpoint()->to_string().c_str());
    // Every chat connection says goodbye with 1001 first (bounded by the hub's close_timeout);
    // then the http server shuts down gracefully, draining what is left.
    std::vector<core::task<void>> background;
    background.push_back(srv.serve(listener));
    background.push_back(hub.heartbeats());
    background.push_back(coronet::examples::run_backplane(bp));
    co_await coronet::examples::serve_hub_until_stopped(hub, std::move(background));
}

} // namespace

int main(int argc, char** argv) {
    // This example's own flags; the rest are every example server's.
    chat_options co;
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i) {
        if (std::strcmp(argv[i], "--no-deflate") == 0) {
            co.deflate = false;
            continue;
        }
        if (std::strcmp(argv[i], "--redis") == 0 && i + 1 < argc) {
            co.redis = argv[++i];
            coronet::examples::check_redis_url(co.redis, "chat");
            continue;
        }
        if (std::strcmp(argv[i], "--redis-sharded") == 0) {
            co.redis_sharded = true;
            continue;
        }
        if (std::strcmp(argv[i], "--max-connections") == 0 && i + 1 < argc) {
            char* end = nullptr;
            const unsigned long n = std::strtoul(argv[++i], &end, 10);
            if (*end != '\0' || n == 0) {
                std::fprintf(stderr, "chat: --max-connections needs a positive number\n");
                return 2;
            }
            co.max_connections = n;
            continue;
        }
        if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0)
            std::puts(
                "extra: --no-deflate         do not negotiate permessage-deflate\n"
                "       --max-connections N  chat connections at once; more get 503 before\n"
                "                            the upgrade (default 10000)\n"
                "       --redis URL          share rooms with other chat processes through\n"
                "                            Redis (redis://host:port, rediss://..., "
                "unix:///path)\n"
                "       --redis-sharded      sharded pub/sub (SPUBLISH); with a Redis Cluster\n"
                "                            node as URL, every master carries its rooms");
        args.push_back(argv[i]);
    }
    auto o =
        coronet::examples::parse_server_cli(static_cast<int>(args.size()), args.data(), "chat",
                                            8080, "serve HTTPS and wss:// (ALPN http/1.1)", true);
    auto ep = core::endpoint::from_ip(o.host, static_cast<std::uint16_t>(o.port));
    if (!ep) {
        std::fprintf(stderr, "chat: invalid --host %s\n", o.host.c_str());
        return 2;
    }
    coronet::examples::check_hub_loops(o, "chat");
    core::tls_context tls = coronet::examples::server_tls(o, "chat", {"http/1.1"});
    coronet::examples::log_info_to_stderr();
    ws::hub_options ho;
    // The limit is the process's: each loop's hub takes its share.
    ho.max_connections = std::max<std::size_t>(1, co.max_connections / o.loops());
    ho.ping_interval = std::chrono::seconds(30); // drops browsers that vanished without a close
    std::optional<ws::hub_group> hubs;           // one hub per loop, rooms spanning them
    const bool tls_on = tls.valid();
    return coronet::examples::serve_on_loops(
        o, *ep, "chat",
        [&](core::loop&, core::tcp_listener& l, std::size_t i) {
            return serve_loop(hubs->at(i), l, tls_on ? &tls : nullptr, co, i == 0);
        },
        [&](core::loop_group& group) { hubs.emplace(group, ho); });
}
