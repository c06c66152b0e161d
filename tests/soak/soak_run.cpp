// soak_client: the run, phase after phase (idle, connect, join, data, drain, close, settle),
// with the server sampled from /proc/PID throughout.
#include "soak_client.hpp"

#include <coronet/core/scope.hpp>
#include <coronet/core/timer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace soak = coronet::soak;

namespace coronet::soak::load {

namespace {

// ---- server sampling --------------------------------------------------------------------

/// Samples the server every 250 ms until stopped: peak RSS and descriptors, and the busiest
/// second of CPU.
core::task<void> sample_server(run_state& st) {
    if (st.o.server_pid <= 0)
        co_return;
    auto window_start = core::clock::now();
    double window_cpu = soak::read_cpu_s(st.o.server_pid);
    for (;;) {
        const soak::proc_sample s = soak::sample_process(st.o.server_pid);
        if (!s.valid()) {
            st.server.gone = true;
            co_return;
        }
        st.server.rss_peak_kb = std::max(st.server.rss_peak_kb, s.rss_kb);
        st.server.fds_peak = std::max(st.server.fds_peak, s.fds);
        const auto now = core::clock::now();
        if (elapsed_s(window_start, now) >= 1.0) {
            const double pct = 100.0 * (s.cpu_s - window_cpu) / elapsed_s(window_start, now);
            st.server.cpu_peak_pct = std::max(st.server.cpu_peak_pct, pct);
            window_start = now;
            window_cpu = s.cpu_s;
        }
        auto slept = co_await core::sleep_for(std::chrono::milliseconds(250));
        if (!slept)
            co_return;
    }
}

/// The server's CPU share over `window` seconds from now (and the sample at its end).
core::task<double> cpu_over(const options& o, double window, soak::proc_sample& end) {
    const auto t0 = core::clock::now();
    const double c0 = soak::read_cpu_s(o.server_pid);
    auto slept = co_await core::sleep_for(seconds(window));
    (void)slept;
    end = soak::sample_process(o.server_pid);
    if (c0 < 0 || !end.valid())
        co_return -1.0;
    co_return 100.0 * (end.cpu_s - c0) / elapsed_s(t0, core::clock::now());
}

/// Waits until `scope` has no live children or the deadline; then stops what is left.
core::task<bool> join_by(core::task_scope& scope, core::clock::time_point deadline) {
    while (scope.size() != 0 && core::clock::now() < deadline) {
        auto slept = co_await core::sleep_for(std::chrono::milliseconds(20));
        (void)slept;
    }
    const bool in_time = scope.size() == 0;
    scope.request_stop();
    co_await scope.join();
    co_return in_time;
}

// ---- the run ----------------------------------------------------------------------------

void log_phase(const char* what, core::clock::time_point t0) {
    std::printf("[%7.2fs] %s\n", elapsed_s(t0, core::clock::now()), what);
    std::fflush(stdout);
}

/// Connect phase; false when not every client connected.
core::task<bool> connect_all(run_state& st) {
    ws::connect_options co;
    co.handshake.deflate.enabled = st.o.deflate;
    co.session.close_timeout = std::chrono::seconds(5);
    // The server's messages are at most --max-size plus a chat name: keep the default limits.
    std::size_t next = 0;
    const auto deadline =
        core::clock::now() + std::chrono::seconds(30) +
        seconds(static_cast<double>(st.o.clients) / 200.0); // ~200 handshakes/s at worst
    core::task_scope workers;
    const std::size_t n = std::min(st.o.connect_parallel, st.o.clients);
    for (std::size_t i = 0; i < n; ++i)
        workers.spawn(connect_worker(st, next, co, deadline));
    co_await workers.join();
    if (next < st.clients.size()) {
        st.note("connect phase: deadline passed with %zu of %zu clients started", next,
                st.clients.size());
        st.connect_failures += st.clients.size() - next;
    }
    co_return st.connect_failures == 0;
}

/// Join phase (rooms, chat); false when a room did not fill by the deadline.
core::task<bool> join_all(run_state& st) {
    const auto deadline = core::clock::now() + std::chrono::seconds(30);
    core::task_scope rooms;
    for (std::uint32_t i = 0; i < st.clients.size(); i += st.clients[i].members)
        rooms.spawn(join_room(st, i, deadline));
    co_await rooms.join();
    const bool late = core::clock::now() >= deadline;
    if (late)
        st.note("join phase: rooms did not fill within 30 s");
    co_return !late;
}

/// Data phase: every client sends for --duration seconds. Measures this client's own CPU
/// share and run-queue wait meanwhile (run_state::load).
core::task<void> send_all(run_state& st) {
    core::task_scope senders;
    const auto start = core::clock::now() + std::chrono::milliseconds(50);
    const double cpu0 = soak::self_cpu_s();
    const double wait0 = soak::self_run_delay_s();
    for (client& c : st.clients)
        senders.spawn(send_loop(st, c, start));
    // A send stuck on a peer that stopped reading ends by the session's write timeout (30 s).
    const auto deadline = start + seconds(st.o.duration) + send_grace + std::chrono::seconds(35);
    const bool in_time = co_await join_by(senders, deadline);
    if (!in_time)
        st.note("data phase: senders still blocked 35 s after the end");
    const double wall = elapsed_s(start, core::clock::now());
    st.load.cpu_pct = 100.0 * (soak::self_cpu_s() - cpu0) / wall;
    const double wait1 = soak::self_run_delay_s();
    st.load.wait_pct = wait0 < 0 || wait1 < 0 ? -1.0 : 100.0 * (wait1 - wait0) / wall;
}

/// Drain phase: until every owed delivery arrived or the deadline.
core::task<void> drain(run_state& st) {
    const auto deadline = core::clock::now() + seconds(st.o.drain_timeout);
    while (st.counts.delivered < st.expected && core::clock::now() < deadline &&
           st.unexpected_closes == 0) {
        auto slept = co_await core::sleep_for(std::chrono::milliseconds(20));
        (void)slept;
    }
}

} // namespace

core::task<int> run(const options& o) {
    run_state st(o);
    lay_out(st);
    const auto t0 = core::clock::now();
    const double cpu0 = soak::self_cpu_s();

    if (o.server_pid > 0) {
        st.server.cpu_before_pct = co_await cpu_over(o, o.idle, st.server.before);
        if (!st.server.before.valid()) {
            std::fprintf(stderr, "soak_client: cannot read /proc/%ld\n", o.server_pid);
            co_return 1;
        }
    }
    core::task_scope sampling;
    sampling.spawn(sample_server(st));
    core::task_scope receivers;

    log_phase("connect", t0);
    const bool connected = co_await connect_all(st);
    if (connected) {
        for (client& c : st.clients)
            receivers.spawn(receive_loop(st, c));
        bool joined = true;
        if (o.mode != mode_kind::echo) {
            st.phase = phase_kind::join;
            log_phase("join", t0);
            joined = co_await join_all(st);
        }
        if (joined && st.unexpected_closes == 0) {
            st.phase = phase_kind::data;
            log_phase("data", t0);
            co_await send_all(st);
            st.phase = phase_kind::drain;
            log_phase("drain", t0);
            co_await drain(st);
        }
    }
    st.phase = phase_kind::closing;
    log_phase("close", t0);
    core::task_scope closers;
    for (client& c : st.clients) {
        c.closing = true;
        if (c.session && c.session->is_open())
            closers.spawn(close_one(c));
    }
    // g++ 12: bind a co_await result before testing it (docs/core.md).
    const auto close_deadline = core::clock::now() + std::chrono::seconds(10);
    const bool closed = co_await join_by(closers, close_deadline);
    if (!closed)
        st.note("close phase: close handshakes still running after 10 s");
    const bool ended = co_await join_by(receivers, close_deadline + std::chrono::seconds(1));
    if (!ended)
        st.note("close phase: sessions still receiving after 10 s");
    for (client& c : st.clients)
        c.session.reset();
    st.phase = phase_kind::done;
    count_lost(st);

    log_phase("settle", t0);
    if (o.server_pid > 0) {
        auto slept = co_await core::sleep_for(seconds(std::max(0.0, o.settle - 1.0)));
        (void)slept;
        st.server.cpu_after_pct = co_await cpu_over(o, std::min(1.0, o.settle), st.server.after);
    }
    sampling.request_stop();
    co_await sampling.join();
    co_return report(st, soak::self_cpu_s() - cpu0, elapsed_s(t0, core::clock::now()));
}

} // namespace coronet::soak::load
