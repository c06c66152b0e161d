#include <coronet/core/log.hpp>
#include <coronet/core/scope.hpp>

#include <exception>
#include <string>

namespace coronet::core {
namespace detail {
namespace {
scope_child run_child(task<void> t) {
    co_await std::move(t);
}
} // namespace

std::coroutine_handle<> scope_child_promise::final_awaiter::await_suspend(
    std::coroutine_handle<scope_child_promise> h) noexcept {
    task_scope* owner = h.promise().scope;
    h.destroy();
    return owner->child_done();
}

void scope_child_promise::unhandled_exception() noexcept {
    scope->report(std::current_exception());
}
} // namespace detail

task_scope::task_scope(stop_token parent) noexcept : stop_(parent) {}

task_scope::~task_scope() {
    if (live_ != 0)
        std::terminate(); // children would outlive the scope they point at
}

void task_scope::spawn(task<void> t) {
    detail::scope_child c = detail::run_child(std::move(t));
    c.h.promise().scope = this;
    c.h.promise().set_token(stop_.token());
    ++live_;
    c.h.resume();
}

std::coroutine_handle<> task_scope::child_done() noexcept {
    if (--live_ == 0 && joiner_) {
        auto j = joiner_;
        joiner_ = {};
        return j;
    }
    return std::noop_coroutine();
}

void task_scope::report(std::exception_ptr e) noexcept {
    if (on_error_) {
        try {
            on_error_(e);
            return;
        } catch (...) {
            // fall through to the log: an error handler that throws must not lose the error
        }
    }
    std::string what = "task_scope: a child task failed";
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        what += ": ";
        what += ex.what();
    } catch (...) {
    }
    log(log_level::error, what);
}

} // namespace coronet::core
