#pragma once

#include <coronet/core/result.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/waiter_queue.hpp>

#include <coroutine>
#include <cstddef>

namespace coronet::core {

/// A manual-reset event for coroutines on one loop (cppcoro's `async_manual_reset_event`):
/// `set()` wakes every waiter and lets later waits pass until `reset()`. One type serves both
/// "one parked coroutine woken later" (a writer waiting for the transport, a reader waiting for
/// data) and "many waiters released together" (a start signal, a shutdown).
///
/// Waiters resume from the loop, never inline inside `set()`, in arrival order. A wait is
/// cancelled through the awaiting coroutine's stop token (or the token given to
/// `wait(stop_token)`), and then yields `errc::operation_canceled`. A waiter that `set()` woke
/// resumes with success even if `reset()` ran before it did: re-check the condition the event
/// stands for when that matters. Nothing is allocated per wait. Single-threaded (set from
/// another thread through `loop::post`); destroying an event with parked waiters resumes them
/// with `operation_canceled`.
class async_event {
public:
    /// An event that starts set (`true`) or not (`false`).
    explicit async_event(bool initially_set = false) noexcept : set_(initially_set) {}
    async_event(const async_event&) = delete;
    async_event& operator=(const async_event&) = delete;

    /// The awaitable of `wait()`: passes at once while the event is set, otherwise parks.
    class wait_awaitable : public waiter_queue::awaitable {
    public:
        explicit wait_awaitable(async_event& e) noexcept
            : waiter_queue::awaitable(e.waiters_), event_(&e) {}
        wait_awaitable(async_event& e, stop_token tok) noexcept
            : waiter_queue::awaitable(e.waiters_, tok), event_(&e) {}
        bool await_ready() const noexcept { return event_->set_; }

    private:
        async_event* event_;
    };

    /// Waits until the event is set; success, or `errc::operation_canceled`.
    wait_awaitable wait() noexcept { return wait_awaitable(*this); }
    /// Like `wait()`, cancelled through `tok` instead of the awaiting coroutine's token; pass
    /// `stop_token()` for a wait that only `set()` ends.
    wait_awaitable wait(stop_token tok) noexcept { return wait_awaitable(*this, tok); }

    /// Sets the event and wakes every waiter (their resumption is scheduled on the loop).
    /// Setting a set event does nothing.
    void set() noexcept {
        set_ = true;
        waiters_.wake_all();
    }
    /// Clears the event: later waits park until the next `set()`.
    void reset() noexcept { set_ = false; }
    /// True while set.
    bool is_set() const noexcept { return set_; }
    /// How many coroutines are parked.
    std::size_t waiting() const noexcept { return waiters_.size(); }

private:
    waiter_queue waiters_;
    bool set_;
};

} // namespace coronet::core
