// docs/core.md, "Loop groups": an echo server on every core that drains every loop on SIGTERM,
// and a hop to another loop with resume_on. Compiled (test docs.snippets checks the text).
// [docs:begin]
#include <coronet/core/loop_group.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/serve_group.hpp>
#include <coronet/core/signal.hpp>

#include <csignal>

namespace core = coronet::core;

core::task<void> echo(core::tcp_stream s, core::stop_token /*draining*/) {
    std::byte buf[4096];
    for (;;) {
        auto n = co_await s.read_some(buf);
        if (!n || *n == 0)
            co_return;
        auto w = co_await s.write_all({buf, *n});
        if (!w)
            co_return;
    }
}

// Loop 0 also waits for SIGINT/SIGTERM and then asks every loop to drain.
core::task<void> stop_on_signal(core::loop_group& group) {
    core::signal_set signals(group.at(0), {SIGINT, SIGTERM});
    auto sig = co_await signals.wait();
    if (sig)
        group.stop();
}

core::task<void> one_loop(core::loop_group& group, core::tcp_listener& listener, std::size_t i) {
    core::task_scope side(co_await core::get_stop_token());
    if (i == 0)
        side.spawn(stop_on_signal(group));
    co_await core::serve(listener, echo, core::serve_options()); // returns once drained
    listener.close(); // on its own loop: the listener is registered there
    side.request_stop();
    co_await side.join();
}

int serve_on_every_core(const core::endpoint& ep) {
    core::block_signals({SIGINT, SIGTERM}); // before the group starts its threads
    core::loop_group group;                 // one loop per core; loop 0 runs on this thread
    auto listeners = core::listen_group(group, ep, core::listen_options()); // SO_REUSEPORT
    if (!listeners)
        return 1;
    group.run([&](core::loop&, std::size_t i) { return one_loop(group, (*listeners)[i], i); });
    return 0;
}
// [docs:end]

// [docs:begin resume_on]
// Runs a step on loop `other` (say, the loop that owns a connection) and comes back.
core::task<int> ask_other_loop(core::loop& home, core::loop& other, int question) {
    co_await core::resume_on(other); // now on other's thread
    int answer = question * 2;       // touch other's state here
    co_await core::resume_on(home);  // and back
    co_return answer;
}
// [docs:end resume_on]
