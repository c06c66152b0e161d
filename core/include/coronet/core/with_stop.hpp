#pragma once

#include <coronet/core/stop.hpp>
#include <coronet/core/task.hpp>

#include <coroutine>
#include <optional>
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

} // namespace coronet::core
