#pragma once

#include <coronet/core/export.hpp>
#include <coronet/core/io_op.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/task.hpp>

namespace coronet::core {

/// A mutex for coroutines on one loop: `co_await m.lock()` waits (without blocking the thread)
/// until the lock is free, in FIFO order; `unlock()` hands it to the next waiter, which resumes
/// from the loop. A wait is cancelled by the waiting coroutine's stop token (the result is then
/// `operation_canceled` and the lock is not held). Serializes, for example, a WebSocket
/// session's senders. Single-threaded; must be unlocked before destruction.
class CORONET_CORE_EXPORT async_mutex {
public:
    async_mutex() noexcept = default;
    async_mutex(const async_mutex&) = delete;
    async_mutex& operator=(const async_mutex&) = delete;

    class CORONET_CORE_EXPORT lock_awaitable {
    public:
        explicit lock_awaitable(async_mutex& m) noexcept : m_(&m) {}
        lock_awaitable(const lock_awaitable&) = delete;
        lock_awaitable& operator=(const lock_awaitable&) = delete;
        bool await_ready() noexcept;
        template <class P>
        bool await_suspend(std::coroutine_handle<P> h) {
            return suspend(h, detail::token_of(h));
        }
        /// Success with the lock held, or `operation_canceled` without it.
        result<void> await_resume() noexcept;

    private:
        friend class async_mutex;
        bool suspend(std::coroutine_handle<> h, stop_token tok);
        static void on_stop(stop_callback_base* cb) noexcept;
        async_mutex* m_;
        lock_awaitable* next_ = nullptr;
        bool canceled_ = false;
        detail::io_op resume_;
        struct canceller : stop_callback_base {
            explicit canceller(lock_awaitable* a) noexcept
                : stop_callback_base(&on_stop), self(a) {}
            lock_awaitable* self;
        } canceller_{this};
    };

    /// Waits for the lock (see lock_awaitable).
    lock_awaitable lock() noexcept { return lock_awaitable(*this); }
    /// Takes the lock if it is free; true on success.
    bool try_lock() noexcept;
    /// Releases the lock, handing it to the next waiter if there is one.
    void unlock() noexcept;
    bool locked() const noexcept { return locked_; }

private:
    bool locked_ = false;
    lock_awaitable* head_ = nullptr;
    lock_awaitable* tail_ = nullptr;
};

} // namespace coronet::core
