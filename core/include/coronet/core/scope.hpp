#pragma once

#include <coronet/core/export.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/task.hpp>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <functional>

namespace coronet::core {

class task_scope;

/// Runs child tasks (one per connection, say) and joins them: nothing is fire-and-forget.
/// `spawn` starts a task at once (it runs until its first suspension); `join()` suspends until
/// every child finished. Children inherit the scope's stop token, which stops when the scope's
/// parent token stops or on `request_stop()`. A child's exception goes to the error handler
/// (default: logged at error level through the log sink) and never stops the other children.
/// Destroying a scope with live children is a broken invariant (std::terminate). Single-
/// threaded: spawn, join and request_stop on the loop thread.
class CORONET_CORE_EXPORT task_scope {
public:
    /// A scope whose children also stop when `parent` stops.
    explicit task_scope(stop_token parent = {}) noexcept;
    task_scope(const task_scope&) = delete;
    task_scope& operator=(const task_scope&) = delete;
    ~task_scope();

    /// Starts `t` as a child of this scope.
    void spawn(task<void> t);
    /// Asks every child to stop (through their stop token).
    void request_stop() noexcept { stop_.request_stop(); }
    /// The token children inherit.
    stop_token token() noexcept { return stop_.token(); }
    /// Live children.
    std::size_t size() const noexcept { return live_; }
    /// Sets what receives a child's exception.
    void set_error_handler(std::function<void(std::exception_ptr)> handler) {
        on_error_ = std::move(handler);
    }

    struct join_awaitable {
        task_scope* scope;
        bool await_ready() const noexcept { return scope->live_ == 0; }
        void await_suspend(std::coroutine_handle<> h) noexcept { scope->joiner_ = h; }
        void await_resume() const noexcept {}
    };
    /// Suspends until every child has finished (returns at once when none is live). One joiner
    /// at a time.
    join_awaitable join() noexcept { return {this}; }

private:
    friend std::coroutine_handle<> detail::spawned_task_done(void*, std::exception_ptr) noexcept;
    void report(std::exception_ptr e) noexcept;
    std::coroutine_handle<> child_done() noexcept;

    stop_source stop_;
    std::size_t live_ = 0;
    std::coroutine_handle<> joiner_;
    std::function<void(std::exception_ptr)> on_error_;
};

} // namespace coronet::core
