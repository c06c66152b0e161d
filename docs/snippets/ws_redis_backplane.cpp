// docs/scaling.md, "The backplane": a hub whose rooms are shared with every other process on the
// same Redis. Compiled by tests/docs (running it needs a redis-server; tests/ws_redis runs
// hubs with backplanes against one).
// [docs:begin]
#include <coronet/core/when.hpp>
#include <coronet/ws/hub.hpp>
#include <coronet/ws/server.hpp>
#include <coronet/ws_redis/backplane.hpp>

#include <span>
#include <string>

namespace core = coronet::core;
namespace ws = coronet::ws;
namespace redis = coronet::ws_redis;

// Serves `listener` with rooms shared through `where` ("redis://10.0.0.5:6379", "rediss://...",
// "unix:///run/redis.sock") until the caller's stop token fires.
core::task<void> serve_shared(core::tcp_listener& listener, std::string where) {
    auto url = redis::url::parse(where);
    if (!url)
        co_return; // errc::bad_url
    ws::hub hub(ws::hub_options{});
    redis::backplane_options opts; // channels "coronet:room:<room>", PUBLISH and SUBSCRIBE
    opts.sharded = false;          // true: SPUBLISH and SSUBSCRIBE (Redis 7, Redis Cluster)
    redis::redis_backplane bp(hub, *url, opts); // attaches itself to the hub
    auto rooms = ws::events<>()
                     .on_open([](auto& c) { c.conn.join(c.info.path()); })
                     .on_message([&hub](auto& c, ws::message& m) {
                         ws::prepared_message pm(m.type, std::as_bytes(std::span(m.data)));
                         // Fanned out here, and published once for the other processes.
                         hub.broadcast_room(c.info.path(), pm);
                     });
    ws::server srv(hub.as_session_handler(rooms), ws::server_options{});
    // bp.run() connects, subscribes, and reconnects with backoff until it is stopped; with
    // Redis down, local rooms go on (bp.stats().lost_publishes counts what did not go out).
    co_await core::when_any(srv.serve(listener), hub.heartbeats(), bp.run());
}
// [docs:end]
