// README.md, "A taste": a TCP echo server on coronet::core alone, port 7007, until SIGINT or
// SIGTERM. The test docs.snippet.readme_taste runs it, echoes a line through it and stops it
// with SIGTERM (tests/docs/run_echo_program.py).
// [docs:begin]
#include <coronet/core/accept_loop.hpp>
#include <coronet/core/signal.hpp>

#include <csignal>
#include <cstddef>
#include <utility>

namespace core = coronet::core;

core::task<void> echo(core::tcp_stream s) {
    std::byte buf[4096];
    for (;;) {
        auto n = co_await s.read_some(buf); // result<size_t>: EOF, reset, cancel are values
        if (!n)
            co_return;
        auto w = co_await s.write_all({buf, *n}); // bound first: see docs/core.md, g++ 12
        if (!w)
            co_return;
    }
}

core::task<int> serve(core::loop& lp) {
    auto listener = core::tcp_listener::bind(lp, core::endpoint::loopback_v4(7007)).value();
    core::signal_set signals(lp, {SIGINT, SIGTERM});
    core::task_scope scope; // children are joined, never detached
    scope.spawn(
        core::accept_loop(listener, scope, [](core::tcp_stream s) { return echo(std::move(s)); }));
    (void)co_await signals.wait();
    scope.request_stop(); // cancels accept and every pending read
    co_await scope.join();
    co_return 0;
}

int main() {
    core::block_signals({SIGINT, SIGTERM});
    core::loop lp; // io_uring if the kernel allows it, else epoll
    return core::run(lp, serve(lp));
}
// [docs:end]
