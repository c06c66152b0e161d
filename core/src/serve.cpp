#include <coronet/core/serve.hpp>

#include <coronet/core/log.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/timer.hpp>

#include <string>
#include <utility>

namespace coronet::core {
namespace {

// Sleeps through the grace period, then cancels whatever is still running.
task<void> grace_timer(task_scope& conns, std::chrono::milliseconds grace) {
    auto slept = co_await sleep_for(grace);
    if (slept)
        conns.request_stop();
}

// Runs the accept loop until the caller's stop token fires or the listener gives out.
task<void> accept_until_stopped(tcp_listener& listener, task_scope& conns,
                                const connection_handler& handler, stop_token draining,
                                const accept_loop_options& opts) {
    task_scope acceptor(co_await get_stop_token());
    acceptor.spawn(accept_loop(
        listener, conns,
        [&handler, draining](tcp_stream s) { return handler(std::move(s), draining); }, opts));
    co_await acceptor.join();
}

// No more accepts: every connection is told to drain, those that have not ended when the grace
// period is over are cancelled, and all of them are joined.
task<void> drain_and_join(task_scope& conns, stop_source& drain, std::chrono::milliseconds grace) {
    drain.request_stop();
    task_scope timer;
    timer.spawn(grace_timer(conns, grace));
    co_await conns.join();
    timer.request_stop();
    co_await timer.join();
}

} // namespace

task<void> serve(tcp_listener& listener, connection_handler handler, serve_options opts) {
    const stop_token outer = co_await get_stop_token();
    stop_source drain;
    // Not linked to `outer`: the connections stop when the grace period says so, not at once.
    task_scope conns;
    co_await accept_until_stopped(listener, conns, handler, drain.token(), opts.accept);
    // accept_loop logged a listener failure itself; a stop request is said here.
    if (outer.stop_requested())
        log(log_level::info, std::string(opts.name) + ": stop requested; shutting down with " +
                                 std::to_string(conns.size()) + " connections open");
    co_await drain_and_join(conns, drain, opts.shutdown_grace);
}

} // namespace coronet::core
