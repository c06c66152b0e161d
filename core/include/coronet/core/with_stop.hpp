#pragma once

#include <coronet/core/stop.hpp>
#include <coronet/core/task.hpp>

#include <coroutine>
#include <optional>
#include <type_traits>
#include <utility>

namespace coronet::core {

/// The awaitable of `with_stop`. It lives in the awaiting coroutine's frame and holds the task,
/// the combined stop source and its link to the extra token, so running a task under another
/// token costs no coroutine frame. Not copyable or movable; await it once.
template <class T>
class [[nodiscard]] with_stop_awaitable {
public:
    with_stop_awaitable(stop_token extra, task<T> t) noexcept
        : extra_(extra), task_(std::move(t)) {}
    with_stop_awaitable(const with_stop_awaitable&) = delete;
    with_stop_awaitable& operator=(const with_stop_awaitable&) = delete;

    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> awaiting) {
        auto child = task_.handle();
        if (extra_.stop_possible()) {
            src_.emplace(detail::token_of(awaiting));
            link_.attach(extra_.source()); // stops src_ at once if extra_ already stopped
            child.promise().set_token(src_->token());
        } else {
            child.promise().set_token(detail::token_of(awaiting));
        }
        return detail::start_inline(child, child.promise(), awaiting);
    }
    T await_resume() {
        link_.detach();
        return task_.handle().promise().take();
    }

private:
    struct extra_link : stop_callback_base {
        explicit extra_link(with_stop_awaitable* a) noexcept : stop_callback_base(&fire), self(a) {}
        static void fire(stop_callback_base* cb) noexcept {
            static_cast<extra_link*>(cb)->self->src_->request_stop();
        }
        with_stop_awaitable* self;
    };

    stop_token extra_;
    std::optional<stop_source> src_; // linked to the awaiting coroutine's token
    task<T> task_;                   // destroyed before src_, which its operations used
    extra_link link_{this};
};

/// Runs `t` under an extra stop token: awaiting the result runs `t` (like `co_await t`) with a
/// stop token that stops as soon as either the awaiting coroutine's own token or `extra` stops
/// (at once, when one of them already has). `t` keeps that token for its whole run; a token
/// given to `t` earlier is replaced. An empty `extra` (`stop_token()`) changes nothing: `t`
/// inherits the caller's token as usual. Yields `t`'s value, or rethrows its exception.
///
/// Use it where a wait must also end on a signal of its own (a close request, shutdown, an idle
/// timer): `co_await with_stop(close_requested.token(), session.receive())`. The caller learns
/// which one stopped it from the sources it owns (`extra`'s source `stop_requested()`).
/// Returns an awaitable, not a task: no coroutine frame is allocated, and it must be awaited
/// in the expression that makes it (wrap it in a coroutine to pass it to `when_all` or a
/// scope). `extra`'s source must outlive the await. Single-threaded, like every stop source.
template <class T>
with_stop_awaitable<T> with_stop(stop_token extra, task<T> t) noexcept {
    return with_stop_awaitable<T>(extra, std::move(t));
}

/// A wait that another party may interrupt: `co_await slot.run(t)` runs `t` (like `with_stop`)
/// under a stop token of its own, and `slot.interrupt()`, called from elsewhere on the same
/// loop while `t` runs, stops that token, and only that one: the rest of the awaiting
/// coroutine's work is untouched. `interrupted()` then tells the awaiting coroutine why `t`
/// ended. The caller's own stop token still stops `t` as well.
///
/// It replaces the raw `stop_source*` member that a connection would otherwise keep pointing
/// into a waiting coroutine's frame ("stop the read if one is running"): the slot knows when a
/// wait runs, and forgets it when the wait ends or its frame goes away. One wait at a time.
/// Single-threaded, like every stop source; `run` allocates nothing.
class interrupt_slot {
public:
    template <class T>
    class awaitable;

    interrupt_slot() = default;
    interrupt_slot(const interrupt_slot&) = delete;
    interrupt_slot& operator=(const interrupt_slot&) = delete;

    /// Runs `t` as an interruptible wait. Await it in the expression that makes it.
    template <class T>
    awaitable<T> run(task<T> t) noexcept {
        return awaitable<T>(*this, std::move(t));
    }
    template <class Op>
    class op_awaitable;
    /// As `run`, for a wait that is one operation awaited directly rather than a task: a stream
    /// operation (`read_some`, `receive`, `buffered_reader::fill_lent`...), which
    /// `interrupt()` cancels with its `request_cancel()`. No stop source, no coroutine frame:
    /// an idle connection waiting here holds the operation and nothing else. Yields the
    /// operation's result. Await it in the expression that makes the operation:
    /// `co_await slot.run_op(reader.fill_lent())`.
    template <class Op>
    op_awaitable<std::remove_reference_t<Op>> run_op(Op&& op) noexcept {
        return op_awaitable<std::remove_reference_t<Op>>(*this, op);
    }
    /// Stops the wait running through `run` or `run_op`, if any. True if one was running.
    bool interrupt() noexcept {
        if (cancel_ != nullptr) { // run_op's wait: cancelled once, armed until it ends
            if (!interrupted_) {
                interrupted_ = true;
                cancel_(arg_);
            }
            return true;
        }
        if (current_ == nullptr)
            return false;
        current_->request_stop();
        return true;
    }
    /// Lets the running wait go on, unreachable by `interrupt()` from now on (for a waiter that
    /// must finish its own work under that wait's token).
    void detach() noexcept {
        current_ = nullptr;
        cancel_ = nullptr;
    }
    /// True while a wait runs through `run` or `run_op` (and was not detached).
    bool waiting() const noexcept { return current_ != nullptr || cancel_ != nullptr; }
    /// True if the last wait that ended was stopped by `interrupt()`.
    bool interrupted() const noexcept { return interrupted_; }

private:
    void arm(void (*cancel)(void*) noexcept, void* arg) noexcept {
        cancel_ = cancel;
        arg_ = arg;
        interrupted_ = false;
    }

    stop_source* current_ = nullptr;
    void (*cancel_)(void*) noexcept = nullptr; ///< run_op's wait, when one runs
    void* arg_ = nullptr;
    bool interrupted_ = false;
};

/// The awaitable of `interrupt_slot::run`.
template <class T>
class [[nodiscard]] interrupt_slot::awaitable {
public:
    awaitable(interrupt_slot& slot, task<T> t) noexcept
        : slot_(slot), inner_(own_.token(), std::move(t)) {}
    awaitable(const awaitable&) = delete;
    awaitable& operator=(const awaitable&) = delete;
    ~awaitable() {
        if (slot_.current_ == &own_)
            slot_.current_ = nullptr;
    }

    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> awaiting) {
        slot_.current_ = &own_;
        slot_.interrupted_ = false;
        return inner_.await_suspend(awaiting);
    }
    T await_resume() {
        slot_.current_ = nullptr;
        slot_.interrupted_ = own_.stop_requested();
        return inner_.await_resume();
    }

private:
    interrupt_slot& slot_;
    stop_source own_;              // stopped only by interrupt()
    with_stop_awaitable<T> inner_; // destroyed first: it links to own_
};

/// The awaitable of `interrupt_slot::run_op`. It refers to the operation, a temporary of the
/// same full expression.
template <class Op>
class [[nodiscard]] interrupt_slot::op_awaitable {
public:
    op_awaitable(interrupt_slot& slot, Op& op) noexcept : slot_(slot), op_(op) {}
    op_awaitable(const op_awaitable&) = delete;
    op_awaitable& operator=(const op_awaitable&) = delete;
    ~op_awaitable() { disarm(); }

    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> awaiting) {
        // Armed first: the operation may complete, and the caller resume, before the
        // operation's await_suspend returns.
        slot_.arm(&cancel, &op_);
        if (op_.await_suspend(awaiting))
            return true;
        disarm();
        return false;
    }
    decltype(auto) await_resume() noexcept(noexcept(std::declval<Op&>().await_resume())) {
        disarm();
        return op_.await_resume();
    }

private:
    static void cancel(void* op) noexcept { static_cast<Op*>(op)->request_cancel(); }
    void disarm() noexcept {
        if (slot_.cancel_ != nullptr && slot_.arg_ == &op_)
            slot_.cancel_ = nullptr;
    }

    interrupt_slot& slot_;
    Op& op_;
};

} // namespace coronet::core
