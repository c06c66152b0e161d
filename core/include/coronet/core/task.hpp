#pragma once

#include <coronet/core/frame_allocator.hpp>
#include <coronet/core/stop.hpp>

#include <coroutine>
#include <cstdint>
#include <exception>
#include <type_traits>
#include <utility>
#include <variant>

namespace coronet::core {

template <class T = void>
class task;

namespace detail {

/// How a task was started, so that a task finishing inside its awaiter's await_suspend returns
/// there instead of resuming the awaiter on top of the stack (g++ 12 emits no tail call for
/// symmetric transfer at -O0 or under ASan, and a loop of synchronously completing awaits
/// would otherwise grow the stack without bound).
/// `spawned`: a task_scope's child, which nobody awaits: when it finishes its frame is
/// destroyed and the scope told (`owner_`), with no wrapper coroutine around it.
enum class start_state : std::uint8_t { detached, running_inline, finished_inline, spawned };

/// A spawned task finished (its frame is gone): reports `error` to the scope `owner` and
/// returns what to resume next (the scope's joiner, or nothing). Defined with task_scope.
CORONET_CORE_EXPORT std::coroutine_handle<> spawned_task_done(void* owner,
                                                              std::exception_ptr error) noexcept;

/// The part of every coronet coroutine promise that is not about the result: frame
/// allocation, the continuation and the inherited stop token.
class promise_base {
public:
    static void* operator new(std::size_t size) { return allocate_frame(size); }
    static void operator delete(void* p, std::size_t size) noexcept { deallocate_frame(p, size); }

    /// The stop token the coroutine inherited from its awaiter (or was given).
    stop_token token() const noexcept { return token_; }
    void set_token(stop_token t) noexcept { token_ = t; }

    struct final_awaiter {
        bool await_ready() const noexcept { return false; }
        template <class P>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
            promise_base& p = h.promise();
            if (p.state_ == start_state::spawned) {
                void* owner = p.owner_;
                std::exception_ptr error;
                if constexpr (requires(P & q) { q.take_error(); })
                    error = h.promise().take_error();
                h.destroy();
                return spawned_task_done(owner, std::move(error));
            }
            if (p.state_ == start_state::running_inline) {
                p.state_ = start_state::finished_inline;
                return std::noop_coroutine();
            }
            if (p.continuation_)
                return p.continuation_;
            return std::noop_coroutine();
        }
        void await_resume() const noexcept {}
    };

    std::suspend_always initial_suspend() const noexcept { return {}; }
    final_awaiter final_suspend() const noexcept { return {}; }

    union {
        std::coroutine_handle<> continuation_{}; ///< who awaits this coroutine
        void* owner_;                            ///< spawned: the task_scope
    };
    stop_token token_;
    start_state state_ = start_state::detached;
};

/// The stop token of an awaiting coroutine, or an empty token if its promise has none.
template <class P>
stop_token token_of(std::coroutine_handle<P> h) noexcept {
    if constexpr (std::is_base_of_v<promise_base, P>)
        return h.promise().token();
    else
        return {};
}

/// Starts `child` from inside an awaiter's await_suspend. Returns true if the awaiter must stay
/// suspended (the child suspended), false if the child already finished.
inline bool start_inline(std::coroutine_handle<> child, promise_base& p,
                         std::coroutine_handle<> awaiting) {
    p.continuation_ = awaiting;
    p.state_ = start_state::running_inline;
    child.resume();
    if (p.state_ == start_state::finished_inline) {
        p.state_ = start_state::detached;
        return false;
    }
    p.state_ = start_state::detached;
    return true;
}

template <class T>
class task_promise : public promise_base {
public:
    task<T> get_return_object() noexcept;
    void unhandled_exception() noexcept { value_.template emplace<2>(std::current_exception()); }
    template <class U>
    requires std::is_convertible_v<U&&, T>
    void return_value(U&& v) { value_.template emplace<1>(std::forward<U>(v)); }
    T take() {
        if (value_.index() == 2)
            std::rethrow_exception(std::get<2>(value_));
        return std::move(std::get<1>(value_));
    }

private:
    std::variant<std::monostate, T, std::exception_ptr> value_;
};

template <>
class task_promise<void> : public promise_base {
public:
    task<void> get_return_object() noexcept;
    void unhandled_exception() noexcept { error_ = std::current_exception(); }
    void return_void() noexcept {}
    void take() {
        if (error_)
            std::rethrow_exception(error_);
    }
    /// The exception the body ended with, if any (for a task nobody awaits).
    std::exception_ptr take_error() noexcept { return std::move(error_); }

private:
    std::exception_ptr error_;
};

} // namespace detail

/// A lazy coroutine producing a `T` (cppcoro-style). Nothing runs until the task is
/// awaited (or handed to `run`, `task_scope::spawn`, `when_all`, `when_any`). Move-only; the
/// frame is destroyed with the task object. Exceptions thrown in the body are rethrown to the
/// awaiter. The awaited task inherits the awaiting coroutine's stop token. Frames come from a
/// per-thread recycling allocator. Not thread-safe: a task runs on one loop thread.
template <class T>
class [[nodiscard]] task {
public:
    using promise_type = detail::task_promise<T>;
    using value_type = T;

    task() noexcept = default;
    explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
    task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
    task& operator=(task&& o) noexcept {
        if (this != &o) {
            if (h_)
                h_.destroy();
            h_ = std::exchange(o.h_, {});
        }
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    ~task() {
        if (h_)
            h_.destroy();
    }

    /// True if the task holds a coroutine.
    bool valid() const noexcept { return static_cast<bool>(h_); }
    /// True if the coroutine has run to completion.
    bool done() const noexcept { return h_ && h_.done(); }

    struct awaiter {
        std::coroutine_handle<promise_type> h;
        bool await_ready() const noexcept { return h.done(); }
        template <class P>
        bool await_suspend(std::coroutine_handle<P> awaiting) {
            auto& p = h.promise();
            if (!p.token().stop_possible())
                p.set_token(detail::token_of(awaiting));
            return detail::start_inline(h, p, awaiting);
        }
        T await_resume() { return h.promise().take(); }
    };

    /// Starts the task and suspends until it finishes; yields its value or rethrows.
    awaiter operator co_await() && noexcept { return awaiter{h_}; }
    awaiter operator co_await() & noexcept { return awaiter{h_}; }

    /// The coroutine handle (for combinators and drivers).
    std::coroutine_handle<promise_type> handle() const noexcept { return h_; }
    /// Gives up the coroutine: the caller destroys it (or arranges for it to destroy itself).
    std::coroutine_handle<promise_type> release() noexcept { return std::exchange(h_, {}); }

private:
    std::coroutine_handle<promise_type> h_;
};

namespace detail {
template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
    return task<T>(std::coroutine_handle<task_promise<T>>::from_promise(*this));
}
inline task<void> task_promise<void>::get_return_object() noexcept {
    return task<void>(std::coroutine_handle<task_promise<void>>::from_promise(*this));
}
} // namespace detail

/// An awaitable that yields the calling coroutine's stop token without suspending.
struct get_stop_token_t {
    stop_token token;
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) noexcept {
        token = detail::token_of(h);
        return false;
    }
    stop_token await_resume() const noexcept { return token; }
};
/// `co_await get_stop_token()` gives the current coroutine's inherited stop token.
inline get_stop_token_t get_stop_token() noexcept {
    return {};
}

} // namespace coronet::core
