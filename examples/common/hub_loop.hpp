#pragma once

// The life of a hub server on one loop of a group (serve_loops.hpp): its server, heartbeats and
// backplane run until the loop's stop token fires (a signal on loop 0 stops the group); then
// every connection of the loop's hub is closed with 1001 before they stop.

#include <coronet/core/async_event.hpp>
#include <coronet/core/log.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/task.hpp>
#include <coronet/ws/hub.hpp>

#include <common/server_cli.hpp>

#include <cstdio>
#include <cstdlib>

#include <string>
#include <utility>
#include <vector>

namespace coronet::examples {

/// A ws::hub_group has at most 256 loops: exits with status 2 and a message when --threads
/// asks for more.
inline void check_hub_loops(const server_cli& o, const char* program) {
    if (o.loops() > 256) {
        std::fprintf(stderr, "%s: --threads is at most 256\n", program);
        std::exit(2);
    }
}

/// Runs `background` (the server's serve, the hub's heartbeats, the backplane's run) until the
/// caller's stop token fires, then closes every connection of `hub` with 1001 (each bounded by
/// the hub's close_timeout) and only then stops `background`. Logs how many connections this
/// loop's hub closes ("hub: stop requested; closing N connections").
inline core::task<void> serve_hub_until_stopped(ws::hub& hub,
                                                std::vector<core::task<void>> background) {
    // Scopes of their own: the group's stop must not cut the closing handshakes short.
    core::task_scope running;
    for (auto& t : background)
        running.spawn(std::move(t));
    core::async_event never;
    (void)co_await never.wait(); // returns when the caller's stop token fires
    core::log(core::log_level::info,
              "hub: stop requested; closing " + std::to_string(hub.size()) + " connections");
    core::task_scope closing;
    closing.spawn(hub.close_all(1001, "server shutting down"));
    co_await closing.join();
    running.request_stop();
    co_await running.join();
}

} // namespace coronet::examples
