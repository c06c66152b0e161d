#include <coronet/core/log.hpp>
#include <coronet/core/scope.hpp>

#include <exception>
#include <string>

namespace coronet::core {
namespace detail {
std::coroutine_handle<> spawned_task_done(void* owner, std::exception_ptr error) noexcept {
    auto* scope = static_cast<task_scope*>(owner);
    if (error)
        scope->report(std::move(error));
    return scope->child_done();
}
} // namespace detail

task_scope::task_scope(stop_token parent) noexcept : stop_(parent) {}

task_scope::~task_scope() {
    if (live_ != 0)
        std::terminate(); // children would outlive the scope they point at
}

// The child runs as it is, with no wrapper coroutine (one frame less per child: a server's
// connections are children): its promise, marked spawned, destroys its own frame when it ends
// and tells the scope (detail::spawned_task_done).
void task_scope::spawn(task<void> t) {
    auto h = t.release();
    auto& p = h.promise();
    p.state_ = detail::start_state::spawned;
    p.owner_ = this;
    if (!p.token().stop_possible()) // a token given to the task before stays, as when awaited
        p.set_token(stop_.token());
    ++live_;
    h.resume();
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
