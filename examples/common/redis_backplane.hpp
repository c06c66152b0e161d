#pragma once

// `--redis URL` for the hub examples (chat, ws_rooms): a Redis backplane shares the hub's rooms
// with every other process started with the same URL (docs/scaling.md). Built in when the
// example links coronet::ws_redis (CORONET_EXAMPLE_REDIS, set by its CMakeLists.txt when the
// layer exists); otherwise the flag is refused with a message.

#include <coronet/core/async_event.hpp>
#include <coronet/core/task.hpp>
#include <coronet/ws/hub.hpp>

#if CORONET_EXAMPLE_REDIS
#include <coronet/ws_redis/backplane.hpp>
#endif

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace coronet::examples {

#if CORONET_EXAMPLE_REDIS
using backplane_ptr = std::unique_ptr<ws_redis::redis_backplane>;
#else
using backplane_ptr = std::unique_ptr<ws::backplane>;
#endif

/// Checks a `--redis` URL at start: exits with status 2 and a message when it is not
/// `redis://`, `rediss://` or `unix://`, or when this build has no Redis support.
inline void check_redis_url(const std::string& url, const char* program) {
#if CORONET_EXAMPLE_REDIS
    if (!ws_redis::url::parse(url)) {
        std::fprintf(stderr,
                     "%s: --redis needs redis://host:port, rediss://host:port or unix:///path\n",
                     program);
        std::exit(2);
    }
#else
    (void)url;
    std::fprintf(stderr,
                 "%s: --redis is not available: coronet was built without hiredis (install "
                 "libhiredis-dev and reconfigure)\n",
                 program);
    std::exit(2);
#endif
}

/// A Redis backplane attached to `hub` when `url` is not empty (checked by check_redis_url),
/// else null. `sharded` (`--redis-sharded`): SPUBLISH/SSUBSCRIBE, and when `url` is a node of a
/// Redis Cluster, every master of the cluster, each room on the master of its slot.
inline backplane_ptr make_backplane(ws::hub& hub, const std::string& url, bool sharded) {
#if CORONET_EXAMPLE_REDIS
    if (url.empty())
        return nullptr;
    auto parsed = ws_redis::url::parse(url);
    ws_redis::backplane_options o;
    o.sharded = sharded;
    return std::make_unique<ws_redis::redis_backplane>(hub, std::move(*parsed), std::move(o));
#else
    (void)hub;
    (void)url;
    (void)sharded;
    return nullptr;
#endif
}

/// Runs `bp` until the caller's stop token fires (reconnecting to Redis as needed); with no
/// backplane, just waits for the stop.
inline core::task<void> run_backplane(backplane_ptr& bp) {
#if CORONET_EXAMPLE_REDIS
    if (bp) {
        co_await bp->run();
        co_return;
    }
#else
    (void)bp;
#endif
    core::async_event never;
    (void)co_await never.wait();
}

} // namespace coronet::examples
