#pragma once

// Running an example server on --threads N event loops: a core::loop_group with one
// SO_REUSEPORT listener per loop (core::listen_group), one server object per loop, and
// SIGINT/SIGTERM on loop 0 stopping the whole group gracefully (every loop drains).

#include <coronet/core/loop_group.hpp>
#include <coronet/core/serve_group.hpp>
#include <coronet/core/signal.hpp>
#include <coronet/core/when.hpp>

#include <common/server_cli.hpp>
#include <common/stop_signal.hpp>

#include <csignal>
#include <cstdio>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace coronet::examples {

namespace detail {

inline core::task<void> stop_group_on_signal(core::loop& lp, core::loop_group& group,
                                             std::string name) {
    core::signal_set signals(lp, {SIGINT, SIGTERM});
    co_await wait_for_stop_signal(signals, std::move(name));
    group.stop(); // idempotent: also when the wait was cancelled because the group stops
}

/// serve_one(loop, listener), or serve_one(loop, listener, index) when it takes the index.
template <class ServeOne>
core::task<void> start_one(ServeOne& serve_one, core::loop& lp, core::tcp_listener& listener,
                           std::size_t index) {
    if constexpr (std::is_invocable_v<ServeOne&, core::loop&, core::tcp_listener&, std::size_t>)
        return serve_one(lp, listener, index);
    else
        return serve_one(lp, listener);
}

template <class ServeOne>
core::task<void> serve_one_loop(ServeOne& serve_one, core::loop& lp, core::tcp_listener& listener,
                                std::size_t index, core::loop_group& group, std::string name) {
    if (index == 0) // loop 0 watches the signals
        (void)co_await core::when_any(start_one(serve_one, lp, listener, index),
                                      stop_group_on_signal(lp, group, std::move(name)));
    else
        co_await start_one(serve_one, lp, listener, index);
    listener.close(); // on its own loop, which registered it
}

} // namespace detail

/// Serves on `o.threads` loops: `serve_one(loop, listener)` (or `serve_one(loop, listener,
/// index)`) is called once per loop, on that loop's thread, and returns the task that serves
/// `listener` there until its stop token fires (e.g. `srv.serve(listener)` of a server object
/// it owns). `prepare(group)` runs once the loops exist, before any of that (e.g. to build a
/// ws::hub_group over them). Prints "listening on HOST:PORT" once every listener is bound.
/// Returns the process exit status: 1 when the address cannot be bound, else 0 after a signal
/// stopped every loop and they drained.
template <class ServeOne, class Prepare>
int serve_on_loops(const server_cli& o, const core::endpoint& ep, const char* name,
                   ServeOne serve_one, Prepare prepare) {
    core::block_signals({SIGINT, SIGTERM}); // before the group's threads exist: they inherit it
    core::loop_group_options go;
    go.loops = o.threads;
    go.loop = o.loop_options();
    core::loop_group group(go);
    auto listeners = core::listen_group(group, ep, core::listen_options{});
    if (!listeners) {
        std::fprintf(stderr, "%s: cannot listen on %s: %s\n", name, ep.to_string().c_str(),
                     listeners.error().message().c_str());
        return 1;
    }
    prepare(group);
    std::printf("listening on %s\n", listeners->front().local_endpoint()->to_string().c_str());
    std::fflush(stdout);
    group.run([&](core::loop& lp, std::size_t i) {
        return detail::serve_one_loop(serve_one, lp, (*listeners)[i], i, group, name);
    });
    return 0;
}

/// serve_on_loops with nothing to prepare.
template <class ServeOne>
int serve_on_loops(const server_cli& o, const core::endpoint& ep, const char* name,
                   ServeOne serve_one) {
    return serve_on_loops(o, ep, name, std::move(serve_one), [](core::loop_group&) {});
}

} // namespace coronet::examples
