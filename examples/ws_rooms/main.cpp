// ws_rooms: a standalone WebSocket room server on coronet::ws's hub (no HTTP layer linked).
//
//   ws_rooms [--host 127.0.0.1] [--port 9002] [--backend uring|epoll]
//            [--tls-cert FILE --tls-key FILE] [--max-connections N] [--ping-interval MS]
//            [--no-deflate] [--redis URL]
//
// A client that connects to ws://HOST:PORT/<room> joins <room> (the path without its leading
// slash and without the query; "/" is the room ""). Every text or binary message it sends is
// broadcast, as the same type, to every other member of that room: the frame is encoded once
// and shared by all of them. Over --max-connections a connection is answered 503 before the
// upgrade. --ping-interval pings idle connections and drops those that do not answer within
// 10 s. permessage-deflate is negotiated when the client offers it, with
// server_no_context_takeover so a broadcast is compressed once per window size and shared;
// --no-deflate turns it off. Prints "listening on HOST:PORT"; on SIGINT/SIGTERM closes every
// connection with 1001 (bounded) and exits. This is the server of the broadcast benchmark.
#include <coronet/core/loop.hpp>
#include <coronet/core/signal.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/when.hpp>
#include <coronet/ws/hub.hpp>
#include <coronet/ws/server.hpp>

#include <common/redis_backplane.hpp>
#include <common/server_cli.hpp>
#include <common/stop_signal.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
    std::string redis; ///< --redis: share rooms with other processes through this Redis
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
        .on_message([&hub](auto& c, ws::message& m) {
            const ws::prepared_message pm(m.type, std::as_bytes(std::span(m.data)));
            hub.broadcast_room_except(room_of(c.info.path()), pm, c.conn.id());
        });
}

core::task<void> shutdown_on_signal(core::signal_set& signals, ws::hub& hub) {
    co_await coronet::examples::wait_for_stop_signal(signals, "ws_rooms");
    co_await hub.close_all(1001, "server shutting down");
}

core::task<int> serve(core::loop& lp, core::endpoint ep, const core::tls_context* tls,
                      rooms_options ro) {
    auto listener = core::tcp_listener::bind(lp, ep);
    if (!listener) {
        std::fprintf(stderr, "ws_rooms: cannot listen on %s: %s\n", ep.to_string().c_str(),
                     listener.error().message().c_str());
        co_return 1;
    }
    ws::hub_options ho;
    ho.max_connections = ro.max_connections;
    ho.ping_interval = ro.ping_interval;
    ws::hub hub(ho);
    // With --redis, rooms are shared with every ws_rooms (or chat) process on that Redis.
    coronet::examples::backplane_ptr bp = coronet::examples::make_backplane(hub, ro.redis);
    ws::server_options so;
    so.tls = tls;
    // The standalone server counts connections from accept on, so it answers 503 before the
    // upgrade; the hub's own limit (close 1013) is the backstop.
    so.max_connections = ro.max_connections;
    // A compressed broadcast frame is shared only without server context (RFC 7692 lets the
    // server add server_no_context_takeover to its answer).
    so.handshake.deflate.enabled = ro.deflate;
    so.handshake.deflate.server_no_context_takeover = true;
    ws::server srv(hub.as_session_handler(rooms_handler(hub)), so);
    core::signal_set signals(lp, {SIGINT, SIGTERM});
    std::printf("listening on %s\n", listener->local_endpoint()->to_string().c_str());
    std::fflush(stdout);
    (void)co_await core::when_any(srv.serve(*listener), hub.heartbeats(),
                                  shutdown_on_signal(signals, hub),
                                  coronet::examples::run_backplane(bp));
    co_return 0;
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
        if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0)
            std::puts(
                "extra: --max-connections N  refuse more (503 before the upgrade; default 10000)\n"
                "       --ping-interval MS   ping idle connections (default: none)\n"
                "       --no-deflate         refuse permessage-deflate (negotiated by default)\n"
                "       --redis URL          share rooms with other processes through Redis\n"
                "                            (redis://host:port, rediss://..., unix:///path)");
        args.push_back(argv[i]);
    }
    auto o = coronet::examples::parse_server_cli(static_cast<int>(args.size()), args.data(),
                                                 "ws_rooms", 9002, "serve wss://");
    auto ep = core::endpoint::from_ip(o.host, static_cast<std::uint16_t>(o.port));
    if (!ep) {
        std::fprintf(stderr, "ws_rooms: invalid --host %s\n", o.host.c_str());
        return 2;
    }
    core::tls_context tls = coronet::examples::server_tls(o, "ws_rooms");
    core::block_signals({SIGINT, SIGTERM});
    coronet::examples::log_info_to_stderr();
    core::loop lp(o.loop_options());
    return core::run(lp, serve(lp, *ep, tls.valid() ? &tls : nullptr, ro));
}
