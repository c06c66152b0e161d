#pragma once

#include <coronet/core/accept_loop.hpp>
#include <coronet/core/export.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/task.hpp>

#include <chrono>
#include <functional>
#include <string_view>

namespace coronet::core {

/// Options of `serve`.
struct serve_options {
    /// For the accept loop (its refusal bytes when out of descriptors, its backoff).
    accept_loop_options accept;
    /// After the stop, how long connections may take to finish once told to drain before they
    /// are cancelled.
    std::chrono::milliseconds shutdown_grace{5'000};
    /// Begins the line logged when the caller's stop token ends serving ("http server: stop
    /// requested; shutting down with 3 connections open"). Must outlive `serve`.
    std::string_view name = "server";
};

/// What `serve` runs for each accepted connection: the connection and `draining`, a stop token
/// that fires when the server begins its graceful shutdown (valid while the task runs). The
/// task's own stop token is the cancellation at the end of the grace period.
using connection_handler = std::function<task<void>(tcp_stream, stop_token draining)>;

/// A server's accept-and-shut-down loop, the same for every protocol. Accepts on `listener`
/// through `accept_loop` (with `opts.accept`) and runs `handler` for each connection, all of
/// them children of one `task_scope` (its `size()` is the live count), until the caller's stop
/// token fires (logged once, info, with `opts.name` and the live count) or the listener fails
/// or is closed (logged once by `accept_loop`). Then it shuts down gracefully: stops
/// accepting, fires every connection's `draining` token, waits up to `opts.shutdown_grace` for
/// the connections to end, cancels those still running through their stop token, and returns
/// once every connection task has ended. The listener is not closed (the caller owns it).
/// Single-threaded: the loop of the caller.
CORONET_CORE_EXPORT task<void> serve(tcp_listener& listener, connection_handler handler,
                                     serve_options opts);

} // namespace coronet::core
