// ws_rooms: a standalone WebSocket room server on coronet::ws's hub (no HTTP layer linked).
//
//   ws_rooms [--host 127.0.0.1] [--port 9002] [--backend uring|epoll] [--threads N]
//            [--tls-cert FILE --tls-key FILE] [--max-connections N] [--ping-interval MS]
//            [--no-deflate] [--redis URL [--redis-sharded]]
//
// A client that connects to ws://HOST:PORT/<room> joins <room> (the path without its leading
// slash and without the query; "/" is the room ""). Every text or binary message it sends is
// broadcast, as the same type, to every other member of that room: the frame is encoded once
// and shared by all of them. Over --max-connections a connection is answered 503 before the
// upgrade. --ping-interval pings idle connections and drops those that do not answer within
// 10 s. permessage-deflate is negotiated when the client offers it, with
// server_no_context_takeover so a broadcast is compressed once per window size and shared;
// --no-deflate turns it off. --threads N runs N event loops (0: one per core), each accepting
// on its own SO_REUSEPORT listener, with one ws::hub_group: rooms span the loops, a broadcast is
// encoded once per process, and --max-connections is shared out between the loops. Prints
// "listening on HOST:PORT"; on SIGINT/SIGTERM closes every connection with 1001 (bounded) and
// exits. This is the server of the broadcast benchmark.
#include <coronet/core/loop.hpp>
#include <coronet/core/signal.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/when.hpp>
#include <coronet/ws/hub.hpp>
#include <coronet/ws/hub_group.hpp>
#include <coronet/ws/server.hpp>

#include <common/hub_loop.hpp>
#include <common/redis_backplane.hpp>
#include <common/serve_loops.hpp>
#include <common/server_cli.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;

namespace {

struct rooms_options {
    std::size_t max_connections = 10'000;
    std::chrono::milliseconds ping_interval{0};
    bool deflate = true;
    std::string redis;          ///< --redis: share rooms with other processes through this Redis
    bool redis_sharded = false; ///< --redis-sharded: sharded pub/sub, a Redis Cluster's masters
};

/// "/lobby?x=1" -> "lobby".
std::string_view room_of(std::string_view target) {
    if (!target.empty() && target.front() == '/')
        target.remove_prefix(1);
    return target.substr(0, target.find('?'));
}

/// Joins the room named by the path; forwards each message to the room's other members, the
/// frame encoded once for all of them.
auto rooms_handler(ws::hub& hub) {
    return ws::events<>()
        .on_open([](auto& c) { c.conn.join(room_of(c.info.path())); })
        .on_message([&hub](auto& c, ws::message_view m) { // no copy of what arrived
            const ws::prepared_message pm(m.type, core::as_bytes(m.data));
            hub.broadcast_room_except(room_of(c.info.path()), pm, c.conn.id());
        });
}

/// One loop's part: its hub (of the group) behind a ws::server on the loop's listener, with
/// the Redis backplane on loop 0 when --redis is given.
core::task<void> serve_loop(ws::hub& hub, core::tcp_listener& listener,
                            const core::tls_context* tls, const rooms_options& ro, bool first) {
    // With --redis, rooms are shared with every ws_rooms (or chat) process on that Redis; the
    // backplane set on loop 0's hub serves every loop.
    coronet::examples::backplane_ptr bp =
        first ? coronet::examples::make_backplane(hub, ro.redis, ro.redis_sharded) : nullptr;
    ws::server_options so;
    so.tls = tls;
    // The standalone server counts connections from accept on, so it answers 503 before the
    // upgrade; the hub's own limit (close 1013) is the backstop. Both are this loop's share.
    so.max_connections = hub.options().max_connections;
    // A compressed broadcast frame is shared only without server context (RFC 7692 lets the
    // server add server_no_context_takeover to its answer).
    so.handshake.deflate.enabled = ro.deflate;
    so.handshake.deflate.server_no_context_takeover = true;
    ws::server srv(hub.as_session_handler(rooms_handler(hub)), so);
    std::vector<core::task<void>> background;
    background.push_back(srv.serve(listener));
    background.push_back(hub.heartbeats());
    background.push_back(coronet::examples::run_backplane(bp));
    co_await coronet::examples::serve_hub_until_stopped(hub, std::move(background));
}

} // namespace

int main(int argc, char** argv) {
    // This example's own flags; the rest are every example server's.
    rooms_options ro;
    std::vector<char*> args;
    auto number = [&](int& i) {
        char* end = nullptr;
        const unsigned long v = std::strtoul(argv[++i], &end, 10);
        if (*end != '\0') {
            std::fprintf(stderr, "ws_rooms: %s needs a number\n", argv[i - 1]);
            std::exit(2);
        }
        return v;
    };
    for (int i = 0; i < argc; ++i) {
        if (std::strcmp(argv[i], "--max-connections") == 0 && i + 1 < argc) {
            ro.max_connections = number(i);
            continue;
        }
        if (std::strcmp(argv[i], "--ping-interval") == 0 && i + 1 < argc) {
            ro.ping_interval = std::chrono::milliseconds(number(i));
            continue;
        }
        if (std::strcmp(argv[i], "--no-deflate") == 0) {
            ro.deflate = false;
            continue;
        }
        if (std::strcmp(argv[i], "--redis") == 0 && i + 1 < argc) {
            ro.redis = argv[++i];
            coronet::examples::check_redis_url(ro.redis, "ws_rooms");
            continue;
        }
        if (std::strcmp(argv[i], "--redis-sharded") == 0) {
            ro.redis_sharded = true;
            continue;
        }
        if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0)
            std::puts(
                "extra: --max-connections N  refuse more (503 before the upgrade; default 10000)\n"
                "       --ping-interval MS   ping idle connections (default: none)\n"
                "       --no-deflate         refuse permessage-deflate (negotiated by default)\n"
                "       --redis URL          share rooms with other processes through Redis\n"
                "                            (redis://host:port, rediss://..., unix:///path)\n"
                "       --redis-sharded      sharded pub/sub (SPUBLISH); with a Redis Cluster\n"
                "                            node as URL, every master carries its rooms");
        args.push_back(argv[i]);
    }
    auto o = coronet::examples::parse_server_cli(static_cast<int>(args.size()), args.data(),
                                                 "ws_rooms", 9002, "serve wss://", true);
    coronet::examples::check_hub_loops(o, "ws_rooms");
    auto ep = core::endpoint::from_ip(o.host, static_cast<std::uint16_t>(o.port));
    if (!ep) {
        std::fprintf(stderr, "ws_rooms: invalid --host %s\n", o.host.c_str());
        return 2;
    }
    core::tls_context tls = coronet::examples::server_tls(o, "ws_rooms");
    coronet::examples::log_info_to_stderr();
    ws::hub_options ho;
    // The limit is the process's: each loop's hub takes its share.
    ho.max_connections = std::max<std::size_t>(1, ro.max_connections / o.loops());
    ho.ping_interval = ro.ping_interval;
    std::optional<ws::hub_group> hubs; // one hub per loop, rooms spanning them
    return coronet::examples::serve_on_loops(
        o, *ep, "ws_rooms",
        [&](core::loop&, core::tcp_listener& l, std::size_t i) {
            return serve_loop(hubs->at(i), l, tls.valid() ? &tls : nullptr, ro, i == 0);
        },
        [&](core::loop_group& group) { hubs.emplace(group, ho); });
}
