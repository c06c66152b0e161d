#include <coronet/core/loop.hpp>
#include <coronet/core/waiter_queue.hpp>

namespace coronet::core {

waiter_queue::~waiter_queue() {
    // Parked coroutines would otherwise never resume; the awaitables no longer touch the queue
    // once scheduled, so they may run after it is gone.
    while (awaitable* w = waiters_.pop_front())
        w->schedule(awaitable::state::canceled);
    count_ = 0;
}

waiter_queue::awaitable::awaitable(waiter_queue& q) noexcept : queue_(&q) {}

waiter_queue::awaitable::awaitable(waiter_queue& q, stop_token tok) noexcept
    : queue_(&q), token_(tok), own_token_(true) {}

waiter_queue::awaitable::~awaitable() {
    if (state_ == state::parked) {
        queue_->waiters_.erase(*this);
        --queue_->count_;
    }
}

bool waiter_queue::awaitable::park(std::coroutine_handle<> h, stop_token tok) {
    resume_.waiter = h;
    resume_.owner = loop::current();
    if (tok.stop_requested()) {
        state_ = state::canceled;
        return false;
    }
    state_ = state::parked;
    queue_->waiters_.push_back(*this);
    ++queue_->count_;
    canceller_.attach(tok.source());
    return true;
}

void waiter_queue::awaitable::schedule(state outcome) noexcept {
    state_ = outcome;
    canceller_.detach();
    // From the loop, never inline: the notifier (or request_stop) is still on the stack.
    resume_.owner->complete_later(resume_);
}

void waiter_queue::awaitable::on_stop(stop_callback_base* cb) noexcept {
    awaitable* self = static_cast<canceller*>(cb)->self;
    // Only a parked waiter can be here: waking detaches the canceller.
    self->queue_->waiters_.erase(*self);
    --self->queue_->count_;
    self->schedule(state::canceled);
}

result<void> waiter_queue::awaitable::await_resume() noexcept {
    canceller_.detach();
    if (state_ == state::canceled)
        return errc::operation_canceled;
    return {};
}

bool waiter_queue::wake_one() noexcept {
    awaitable* w = waiters_.pop_front();
    if (w == nullptr)
        return false;
    --count_;
    w->schedule(awaitable::state::woken);
    return true;
}

std::size_t waiter_queue::wake_all() noexcept {
    // Resumption is deferred, so nobody can park again while this runs.
    const std::size_t n = count_;
    while (wake_one()) {
    }
    return n;
}

} // namespace coronet::core
