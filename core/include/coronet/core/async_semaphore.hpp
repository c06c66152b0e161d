#pragma once

#include <coronet/core/result.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/waiter_queue.hpp>

#include <coroutine>
#include <cstddef>

namespace coronet::core {

/// A counting semaphore for coroutines on one loop (cppcoro's `async_semaphore`): at most
/// `count` holders at once, for example "run up to N message handlers of one connection at
/// once". `co_await s.acquire()` takes a unit, waiting while none is free; `release()` gives
/// one back.
///
/// Fair: units go to waiters in arrival order. A released unit is handed straight to the
/// longest waiter, which resumes from the loop (never inline inside `release()`), so a
/// newcomer's `try_acquire` or `acquire` cannot overtake a coroutine already waiting. A wait is
/// cancelled through the awaiting coroutine's stop token and then yields
/// `errc::operation_canceled` without a unit. Nothing is allocated per wait. Single-threaded
/// (release from another thread through `loop::post`); destroying a semaphore with parked
/// waiters resumes them with `operation_canceled`.
class async_semaphore {
public:
    /// A semaphore with `initial` free units.
    explicit async_semaphore(std::size_t initial) noexcept : available_(initial) {}
    async_semaphore(const async_semaphore&) = delete;
    async_semaphore& operator=(const async_semaphore&) = delete;

    /// The awaitable of `acquire()`: takes a free unit at once, otherwise parks.
    class acquire_awaitable : public waiter_queue::awaitable {
    public:
        explicit acquire_awaitable(async_semaphore& s) noexcept
            : waiter_queue::awaitable(s.waiters_), sem_(&s) {}
        bool await_ready() noexcept { return sem_->try_acquire(); }

    private:
        async_semaphore* sem_;
    };

    /// Takes a unit, waiting in FIFO order while none is free. Success with the unit held, or
    /// `errc::operation_canceled` without it.
    acquire_awaitable acquire() noexcept { return acquire_awaitable(*this); }
    /// Takes a unit if one is free now; true on success. Never overtakes a waiter (while
    /// coroutines wait, no unit is free).
    bool try_acquire() noexcept {
        if (available_ == 0)
            return false;
        --available_;
        return true;
    }
    /// Gives `n` units back: each goes to the longest waiter (scheduled to resume from the
    /// loop), or becomes free when nobody waits. Releasing more than was acquired raises the
    /// count.
    void release(std::size_t n = 1) noexcept {
        for (; n > 0; --n) {
            if (!waiters_.wake_one())
                ++available_;
        }
    }
    /// Free units now.
    std::size_t available() const noexcept { return available_; }
    /// How many coroutines wait for a unit.
    std::size_t waiting() const noexcept { return waiters_.size(); }

private:
    waiter_queue waiters_;
    std::size_t available_;
};

} // namespace coronet::core
