#pragma once

#include <coronet/core/io_op.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/task.hpp>

#include <chrono>
#include <cstddef>
#include <type_traits>
#include <utility>

namespace coronet::core {

namespace detail {
/// An entry of a loop's timers. Lives in the object that waits (no allocation). The loop keeps
/// it in one of a few lists sorted by deadline when it comes no earlier than the last timer of
/// one (a fixed timeout armed again and again), else in a heap (docs/core.md, "Loop and backends").
struct timer_node {
    using fire_fn = void (*)(timer_node*) noexcept;
    static constexpr std::size_t not_queued = static_cast<std::size_t>(-1);
    clock::time_point when{};
    fire_fn fire = nullptr;
    timer_node* next = nullptr; ///< in a sorted list: the next node (or the list's end); else null
    union {
        /// While `next` is null: the position in the heap, or not_queued.
        std::size_t index = not_queued;
        /// While `next` is set: the previous node (or the list's end).
        timer_node* prev;
    };
    bool listed() const noexcept { return next != nullptr; }
    bool queued() const noexcept { return listed() || index != not_queued; }
};
} // namespace detail

/// Awaitable returned by `sleep_until` / `sleep_for`. Completes with success when the time
/// comes, or with `errc::operation_canceled` when the awaiting coroutine's stop token fires
/// first. Must be awaited on the thread of the current loop.
class CORONET_CORE_EXPORT sleep_awaitable {
public:
    explicit sleep_awaitable(clock::time_point when) noexcept;
    sleep_awaitable(const sleep_awaitable&) = delete;
    sleep_awaitable& operator=(const sleep_awaitable&) = delete;
    /// Takes the timer out of the loop's timers if it is still queued there.
    ~sleep_awaitable();

    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
        return suspend(h, detail::token_of(h));
    }
    result<void> await_resume() noexcept;

private:
    bool suspend(std::coroutine_handle<> h, stop_token tok);
    static void on_fire(detail::timer_node* t) noexcept;
    static void on_stop(stop_callback_base* cb) noexcept;

    struct node : detail::timer_node {
        sleep_awaitable* self;
    } timer_;
    struct canceller : stop_callback_base {
        canceller() noexcept : stop_callback_base(&on_stop) {}
        sleep_awaitable* self = nullptr;
    } cancel_;
    detail::io_op resume_op_; ///< carries the deferred resumption after a cancel
    loop* loop_;
    bool canceled_ = false;
};

/// Suspends until `when` (see sleep_awaitable).
inline sleep_awaitable sleep_until(clock::time_point when) noexcept {
    return sleep_awaitable(when);
}
/// Suspends for `d` (see sleep_awaitable).
inline sleep_awaitable sleep_for(clock::duration d) noexcept {
    return sleep_awaitable(clock::now() + d);
}

/// Runs `t` with a deadline `d` from now. When the deadline passes first, `t` is cancelled
/// through its stop token, awaited to its own completion, and an `operation_canceled` outcome is
/// reported as `errc::timed_out`; an outcome that was already there (data read as the deadline
/// fired) wins. The caller's own cancellation still reports `operation_canceled`.
template <class T>
task<result<T>> with_timeout(clock::duration d, task<result<T>> t);

namespace detail {
/// A one-shot timer that requests stop on a source when it fires.
class CORONET_CORE_EXPORT deadline_timer {
public:
    deadline_timer(loop& lp, clock::time_point when, stop_source& src);
    deadline_timer(const deadline_timer&) = delete;
    deadline_timer& operator=(const deadline_timer&) = delete;
    ~deadline_timer();
    bool fired() const noexcept { return fired_; }

private:
    static void on_fire(timer_node* t) noexcept;
    struct node : timer_node {
        deadline_timer* self;
    } node_;
    loop& loop_;
    stop_source& src_;
    bool fired_ = false;
};
} // namespace detail

namespace detail {
/// The timer of `deadline_awaitable`: when it fires, it calls `cancel(arg)`.
class CORONET_CORE_EXPORT op_deadline {
public:
    op_deadline() noexcept = default;
    op_deadline(const op_deadline&) = delete;
    op_deadline& operator=(const op_deadline&) = delete;
    ~op_deadline() { stop(); }
    /// Queues the timer on the current loop.
    void start(clock::time_point when, void (*cancel)(void*) noexcept, void* arg);
    /// Takes the timer out of the queue if it is there.
    void stop() noexcept;
    bool fired() const noexcept { return fired_; }

private:
    static void on_fire(timer_node* t) noexcept;
    struct node : timer_node {
        op_deadline* self = nullptr;
    } node_;
    loop* loop_ = nullptr;
    void (*cancel_)(void*) noexcept = nullptr;
    void* arg_ = nullptr;
    bool fired_ = false;
};
} // namespace detail

/// The awaitable of `with_deadline`. It refers to the operation (usually a temporary of the same
/// full expression; a named one must outlive it and be awaited only through it); it has the
/// operation's `request_cancel()`, so an `interrupt_slot::run_op` can wrap it.
template <class Op>
class [[nodiscard]] deadline_awaitable {
public:
    deadline_awaitable(clock::time_point when, Op& op) noexcept : op_(op), when_(when) {}
    deadline_awaitable(const deadline_awaitable&) = delete;
    deadline_awaitable& operator=(const deadline_awaitable&) = delete;

    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> awaiting) {
        caller_ = detail::token_of(awaiting);
        timer_.start(when_, &cancel, &op_);
        if (op_.await_suspend(awaiting))
            return true;
        timer_.stop();
        return false;
    }
    auto await_resume() noexcept(noexcept(std::declval<Op&>().await_resume())) {
        timer_.stop();
        auto r = op_.await_resume();
        if (!r && r.error() == errc::operation_canceled && timer_.fired() && !cancelled_ &&
            !caller_.stop_requested())
            return decltype(r)(errc::timed_out);
        return r;
    }
    /// Cancels the operation from outside (an interrupt_slot): its outcome stays
    /// `operation_canceled` even if the deadline passes before it completes.
    void request_cancel() noexcept {
        if (!timer_.fired())
            cancelled_ = true;
        op_.request_cancel();
    }

private:
    static void cancel(void* op) noexcept { static_cast<Op*>(op)->request_cancel(); }

    Op& op_;
    clock::time_point when_;
    stop_token caller_;
    detail::op_deadline timer_;
    bool cancelled_ = false;
};

/// `with_timeout` for one operation awaited directly (a stream operation such as `read_some`,
/// `receive` or `buffered_reader::fill_lent`), not a task: no coroutine frame, no stop source.
/// When `when` passes first the operation is cancelled (`request_cancel()`) and its
/// `operation_canceled` outcome is reported as `errc::timed_out`; bytes that were already there
/// win; the caller's own cancellation still reports `operation_canceled`. Await it in the
/// expression that makes the operation, `co_await with_deadline(t, reader.fill_lent())`, or
/// pass an operation kept in the frame that is awaited only through it.
template <class Op>
deadline_awaitable<std::remove_reference_t<Op>> with_deadline(clock::time_point when,
                                                              Op&& op) noexcept {
    return deadline_awaitable<std::remove_reference_t<Op>>(when, op);
}

template <class T>
task<result<T>> with_timeout(clock::duration d, task<result<T>> t) {
    stop_token parent = co_await get_stop_token();
    stop_source src(parent);
    detail::deadline_timer timer(*loop::current(), clock::now() + d, src);
    t.handle().promise().set_token(src.token());
    result<T> r = co_await std::move(t);
    if (!r && r.error() == errc::operation_canceled && timer.fired() && !parent.stop_requested()) {
        co_return result<T>(errc::timed_out);
    }
    co_return r;
}

} // namespace coronet::core
