#pragma once

#include <coronet/core/export.hpp>
#include <coronet/core/intrusive_list.hpp>
#include <coronet/core/io_op.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/task.hpp>

#include <coroutine>
#include <cstddef>
#include <cstdint>

namespace coronet::core {

/// A first-in first-out queue of parked coroutines: the building block of `async_mutex`,
/// `async_event` and `async_semaphore`, and of any "wait until someone tells me" in a protocol
/// layer. `co_await q.wait()` parks the calling coroutine; `wake_one()` / `wake_all()` take
/// waiters off the queue, in arrival order, and schedule their resumption on the loop. The
/// notifier never resumes a waiter inline: the woken coroutines run from the loop's next
/// iteration, after the notifier has returned to it (so notifying from inside a handler, a
/// destructor or a stop callback is safe, and the notifier's state is settled by then).
///
/// A wait is cancelled through the awaiting coroutine's stop token (or the token given to
/// `wait(stop_token)`): the waiter leaves the queue and resumes, also from the loop, with
/// `errc::operation_canceled`. A waiter that was woken before its token stopped resumes with
/// success: a wake is never lost to a late cancellation, which is what lets a lock or a
/// semaphore unit be handed to a woken waiter.
///
/// Nothing is allocated per wait: the queue node is part of the awaitable, which lives in the
/// awaiting coroutine's frame. Single-threaded: the queue, its waiters and its notifiers belong
/// to one loop's thread (from another thread, notify through `loop::post`). Destroying a queue
/// with coroutines parked resumes them (from the loop) with `errc::operation_canceled`; they
/// must not touch the object that owned the queue afterwards.
class CORONET_CORE_EXPORT waiter_queue {
public:
    waiter_queue() noexcept = default;
    waiter_queue(const waiter_queue&) = delete;
    waiter_queue& operator=(const waiter_queue&) = delete;
    ~waiter_queue();

    /// The awaitable of `wait()`: one parked coroutine. Other primitives derive from it and
    /// hide `await_ready` to skip the wait when their condition already holds. Not copyable or
    /// movable; await it once.
    class CORONET_CORE_EXPORT awaitable : private intrusive_list_hook<waiter_queue> {
    public:
        /// A wait cancelled through the awaiting coroutine's stop token.
        explicit awaitable(waiter_queue& q) noexcept;
        /// A wait cancelled through `tok` instead; an empty `stop_token()` makes it a wait that
        /// ends only when it is woken.
        awaitable(waiter_queue& q, stop_token tok) noexcept;
        awaitable(const awaitable&) = delete;
        awaitable& operator=(const awaitable&) = delete;
        /// Leaves the queue if still parked (a frame destroyed while suspended).
        ~awaitable();

        bool await_ready() const noexcept { return false; }
        template <class P>
        bool await_suspend(std::coroutine_handle<P> h) {
            return park(h, own_token_ ? token_ : detail::token_of(h));
        }
        /// Success once woken; `errc::operation_canceled` when the wait was cancelled first
        /// (also when the token had stopped before the wait began: it then never parks).
        result<void> await_resume() noexcept;

    protected:
        /// Parks `h` unless `tok` already stopped; false means "do not suspend".
        bool park(std::coroutine_handle<> h, stop_token tok);

    private:
        friend class waiter_queue;
        friend class intrusive_list<awaitable, waiter_queue>;
        enum class state : std::uint8_t { idle, parked, woken, canceled };
        static void on_stop(stop_callback_base* cb) noexcept;
        void schedule(state outcome) noexcept;

        struct canceller : stop_callback_base {
            explicit canceller(awaitable* a) noexcept : stop_callback_base(&on_stop), self(a) {}
            awaitable* self;
        };

        waiter_queue* queue_;
        stop_token token_;
        bool own_token_ = false;
        state state_ = state::idle;
        canceller canceller_{this};
        detail::io_op resume_; ///< carries the deferred resumption through the loop
    };

    /// Parks the calling coroutine until `wake_one` / `wake_all` picks it (see awaitable).
    awaitable wait() noexcept { return awaitable(*this); }
    /// Like `wait()`, cancelled through `tok` instead of the awaiting coroutine's token; pass
    /// `stop_token()` for a wait that only a wake ends (a hand-over that must not be abandoned).
    awaitable wait(stop_token tok) noexcept { return awaitable(*this, tok); }

    /// Takes the longest-waiting coroutine off the queue and schedules its resumption (with
    /// success) on the loop. Returns false when nobody waits.
    bool wake_one() noexcept;
    /// Wakes every waiter parked now, in arrival order; returns how many. Coroutines that start
    /// waiting after this call (even before the woken ones run) keep waiting.
    std::size_t wake_all() noexcept;

    /// True when no coroutine is parked.
    bool empty() const noexcept { return waiters_.empty(); }
    /// How many coroutines are parked.
    std::size_t size() const noexcept { return count_; }

private:
    intrusive_list<awaitable, waiter_queue> waiters_;
    std::size_t count_ = 0;
};

} // namespace coronet::core
