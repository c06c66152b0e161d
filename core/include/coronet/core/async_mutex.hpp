#pragma once

#include <coronet/core/loop.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/waiter_queue.hpp>

namespace coronet::core {

/// A mutex for coroutines on one loop: `co_await m.lock()` waits (without blocking the thread)
/// until the lock is free, in FIFO order; `unlock()` hands it to the next waiter, which resumes
/// from the loop. A wait is cancelled by the waiting coroutine's stop token (the result is then
/// `operation_canceled` and the lock is not held). Serializes, for example, a WebSocket
/// session's senders. Built on `waiter_queue` (nothing allocated per wait). Single-threaded;
/// must be unlocked before destruction.
class async_mutex {
public:
    async_mutex() noexcept = default;
    async_mutex(const async_mutex&) = delete;
    async_mutex& operator=(const async_mutex&) = delete;

    /// The awaitable of `lock()`: takes a free lock at once, otherwise parks in FIFO order.
    /// `await_resume` gives success with the lock held, or `operation_canceled` without it.
    class lock_awaitable : public waiter_queue::awaitable {
    public:
        explicit lock_awaitable(async_mutex& m) noexcept
            : waiter_queue::awaitable(m.waiters_), m_(&m) {}
        bool await_ready() noexcept { return m_->try_lock(); }

    private:
        async_mutex* m_;
    };

    /// Waits for the lock (see lock_awaitable).
    lock_awaitable lock() noexcept { return lock_awaitable(*this); }
    /// Takes the lock if it is free; true on success. Never overtakes a waiter (the lock is not
    /// free while coroutines wait).
    bool try_lock() noexcept {
        if (locked_)
            return false;
        locked_ = true;
        return true;
    }
    /// Releases the lock, handing it to the next waiter if there is one.
    void unlock() noexcept {
        // A woken waiter owns the lock from here on (locked_ stays true) and resumes later.
        if (!waiters_.wake_one())
            locked_ = false;
    }
    /// True while someone holds the lock (or it was handed to a waiter not yet resumed).
    bool locked() const noexcept { return locked_; }

private:
    waiter_queue waiters_;
    bool locked_ = false;
};

} // namespace coronet::core
