#pragma once

#include <coronet/core/endpoint.hpp>
#include <coronet/core/export.hpp>
#include <coronet/core/loop_group.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/serve.hpp>
#include <coronet/core/socket.hpp>

#include <vector>

namespace coronet::core {

/// One listener per loop of `group`, all on `ep` with `SO_REUSEPORT` (set whenever the group has
/// more than one loop, whatever `opts.reuse_port` says), so the kernel spreads new connections
/// over the loops and each loop accepts its own: listener `i` belongs to `group.at(i)`. A group
/// of one loop binds as `tcp_listener::bind` does with `opts`: a port in use is an error. With
/// port 0 the first listener picks a free port and the others bind the same one (read it back
/// from any `local_endpoint()`). Errors: the first socket/bind/listen error. The listeners are
/// not yet registered with their loops (that happens at their first accept), so they may be
/// made and destroyed on any thread until then; once served, close each on its own loop
/// (`serve_group` does).
CORONET_CORE_EXPORT result<std::vector<tcp_listener>>
listen_group(loop_group& group, const endpoint& ep, listen_options opts);

/// `serve` on every loop of `group` at once: loop `i` accepts on `listeners[i]` (from
/// `listen_group`) and runs `handler` for the connections it accepted, so a handler runs on the
/// loop that owns its connection and the same `handler` may be called on several threads at
/// once. Blocks the calling thread as `loop_group::run` does, until `group.stop()` (or a failed
/// listener) ended every loop's `serve`: each loop then drains on its own, with
/// `opts.shutdown_grace`. Each listener is closed on its own loop when that loop's `serve`
/// returns (a listener that accepted is registered with its loop, which only that loop's thread
/// may touch), so the caller may then destroy them on any thread. Rethrows the first exception
/// a loop's `serve` threw. Throws std::invalid_argument unless there is one listener per loop.
CORONET_CORE_EXPORT void serve_group(loop_group& group, std::vector<tcp_listener>& listeners,
                                     connection_handler handler, serve_options opts);

} // namespace coronet::core
