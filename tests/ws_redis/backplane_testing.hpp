#pragma once

// What the backplane tests share: a hub with a Redis backplane on one loop, its members' client
// ends, and small waits.

#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/ws/hub.hpp>
#include <coronet/ws/session.hpp>
#include <coronet/ws_redis/backplane.hpp>

#include <testing/loop_threads.hpp>
#include <testing/memory_stream.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace coronet::testing::backplane {

namespace core = coronet::core;
namespace ws = coronet::ws;
namespace redis = coronet::ws_redis;

inline redis::url parsed(const std::string& text) {
    auto u = redis::url::parse(text);
    REQUIRE_MESSAGE(u, text);
    return *u;
}

inline redis::backplane_options fast_reconnect(bool sharded) {
    redis::backplane_options o;
    o.sharded = sharded;
    o.reconnect_min = std::chrono::milliseconds(20);
    o.reconnect_max = std::chrono::milliseconds(200);
    return o;
}

/// Every connection joins the room named by its target ("/room") and reads until it ends.
inline ws::hub_handler room_handler() {
    return [](ws::hub_connection& c, ws::handshake_info& info) -> core::task<void> {
        c.join(info.target().substr(1));
        for (;;) {
            auto m = co_await c.receive();
            if (!m)
                co_return;
        }
    };
}

inline core::task<void> serve_one(ws::hub& h, std::unique_ptr<ws::session> s, std::string room) {
    co_await h.serve(*s, ws::handshake_info("/" + room), room_handler());
}

inline core::task<void> read_all(ws::session& s, std::vector<std::string>& got) {
    for (;;) {
        auto m = co_await s.receive();
        if (!m)
            co_return;
        got.push_back(std::move(m->data));
    }
}

/// A hub with a Redis backplane on the current loop, and its members' client ends.
struct node {
    /// `run_now` false: the backplane's run() waits for start().
    node(core::loop& lp, const std::string& where, redis::backplane_options o,
         core::stop_token parent, bool run_now = true)
        : lp_(&lp), bp(hub, parsed(where), std::move(o)), scope(parent) {
        if (run_now)
            start();
    }

    void start() { scope.spawn(bp.run()); }

    /// Adds a member of `room`; returns its index in `got`.
    std::size_t add(const std::string& room) {
        auto [client_end, server_end] = coronet::testing::memory_stream_pair(*lp_);
        clients.push_back(std::make_unique<ws::session>(std::move(client_end), ws::role::client));
        got.push_back(std::make_unique<std::vector<std::string>>());
        scope.spawn(serve_one(
            hub, std::make_unique<ws::session>(std::move(server_end), ws::role::server), room));
        scope.spawn(read_all(*clients.back(), *got.back()));
        return got.size() - 1;
    }

    core::task<void> stop() {
        co_await hub.close_all(1001, "test over");
        scope.request_stop();
        co_await scope.join();
    }

    /// The id of the only member of `room`.
    std::uint64_t member_id(const std::string& room) {
        std::uint64_t id = 0;
        hub.for_each_member(room, [&id](ws::hub_connection& c) { id = c.id(); });
        return id;
    }

    core::loop* lp_;
    ws::hub hub;
    redis::redis_backplane bp;
    std::vector<std::unique_ptr<ws::session>> clients;
    std::vector<std::unique_ptr<std::vector<std::string>>> got;
    core::task_scope scope;
};

/// The counters, for a failure message.
inline std::string describe(const redis::backplane_stats& st) {
    return "connected=" + std::to_string(st.connected) +
           " published=" + std::to_string(st.published) +
           " lost=" + std::to_string(st.lost_publishes) +
           " received=" + std::to_string(st.received) + " echoes=" + std::to_string(st.own_echoes) +
           " gaps=" + std::to_string(st.gaps) + " connects=" + std::to_string(st.connects) +
           " failures=" + std::to_string(st.failures) + " shards=" + std::to_string(st.shards) +
           " redirects=" + std::to_string(st.redirects) +
           " topology_changes=" + std::to_string(st.topology_changes);
}

/// Polls an asynchronous condition (every 10 ms, at most 10 s).
inline core::task<bool> poll_until_task(std::function<core::task<bool>()> done) {
    for (int i = 0; i < 1000; ++i) {
        if (co_await done())
            co_return true;
        (void)co_await core::sleep_for(std::chrono::milliseconds(10));
    }
    co_return false;
}

/// Every hub's loop reaches `phase` (an atomic counter shared by the threads) before any goes on.
inline core::task<bool> barrier(std::atomic<int>& arrived, int n) {
    arrived.fetch_add(1);
    co_return co_await poll_until([&arrived, n] { return arrived.load() >= n; });
}

} // namespace coronet::testing::backplane
