#pragma once

#include <coronet/core/export.hpp>
#include <coronet/core/io_op.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/result.hpp>

#include <sys/signalfd.h>

#include <initializer_list>

namespace coronet::core {

/// Blocks `signals` in the calling thread so they can only be received through a signal_set.
/// Call it in main() before any thread starts (threads inherit the mask). Child processes
/// inherit it too across exec: spawn them with a clean mask (posix_spawnattr_setsigmask with
/// POSIX_SPAWN_SETSIGMASK) or they will ignore SIGINT/SIGTERM.
CORONET_CORE_EXPORT void block_signals(std::initializer_list<int> signals);

/// Awaitable process signals through a signalfd (works on both backends). The signals must be
/// blocked first (`block_signals`), or the default action runs instead. Not thread-safe.
class CORONET_CORE_EXPORT signal_set {
public:
    /// Opens a signalfd for `signals` on `lp`. Throws std::system_error on failure (setup).
    signal_set(loop& lp, std::initializer_list<int> signals);
    signal_set(const signal_set&) = delete;
    signal_set& operator=(const signal_set&) = delete;
    ~signal_set();

    /// The awaitable of `wait()`.
    class CORONET_CORE_EXPORT wait_awaitable : public detail::io_op {
    public:
        explicit wait_awaitable(signal_set& s) noexcept : set_(&s) {}
        bool await_ready() const noexcept { return false; }
        template <class P>
        bool await_suspend(std::coroutine_handle<P> h) {
            return begin(h, detail::token_of(h));
        }
        /// The signal number, or `operation_canceled`.
        result<int> await_resume() noexcept;

    private:
        bool begin(std::coroutine_handle<> h, stop_token tok);
        signal_set* set_;
        ::signalfd_siginfo info_{};
        detail::op_canceller canceller_{this};
    };

    /// Waits for the next of the signals. One waiter at a time.
    wait_awaitable wait() noexcept { return wait_awaitable(*this); }

private:
    loop& loop_;
    detail::fd_state fds_;
};

} // namespace coronet::core
