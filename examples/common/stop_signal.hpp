#pragma once

// Every example server's wait for SIGINT/SIGTERM. It says through the log hook why the server is
// stopping (the signal, info; a failed wait, error), and the examples log from info up, so a
// server never ends without a word.

#include <coronet/core/error.hpp>
#include <coronet/core/log.hpp>
#include <coronet/core/signal.hpp>
#include <coronet/core/task.hpp>

#include <csignal>
#include <string>

namespace coronet::examples {

/// Sends the library's log lines from info up to stderr (its default shows warnings and errors
/// only), so that an example server says why it stops. Call once in main(), before the loop.
inline void log_info_to_stderr() {
    static core::stderr_log_sink sink(core::log_level::info);
    core::set_log_sink(&sink);
}

/// Waits for one of `signals` and logs which one arrived ("NAME: received SIGTERM; shutting
/// down", info) or why the wait failed (error). A cancelled wait (the server ended first and
/// said why itself) logs nothing.
inline core::task<void> wait_for_stop_signal(core::signal_set& signals, std::string name) {
    auto sig = co_await signals.wait();
    if (sig) {
        const std::string which = *sig == SIGINT    ? "SIGINT"
                                  : *sig == SIGTERM ? "SIGTERM"
                                                    : "signal " + std::to_string(*sig);
        core::log(core::log_level::info, name + ": received " + which + "; shutting down");
    } else if (sig.error() != core::errc::operation_canceled) {
        core::log(core::log_level::error, name + ": waiting for signals failed: " +
                                              sig.error().message() + "; shutting down");
    }
}

} // namespace coronet::examples
