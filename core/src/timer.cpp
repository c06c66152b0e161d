#include <coronet/core/timer.hpp>

#include "loop_access.hpp"

#include <cerrno>

namespace coronet::core {

sleep_awaitable::sleep_awaitable(clock::time_point when) noexcept : loop_(loop::current()) {
    timer_.when = when;
    timer_.fire = &on_fire;
    timer_.self = this;
    cancel_.self = this;
}

sleep_awaitable::~sleep_awaitable() {
    if (timer_.queued())
        detail::loop_access::remove_timer(*loop_, timer_);
}

bool sleep_awaitable::suspend(std::coroutine_handle<> h, stop_token tok) {
    resume_op_.waiter = h;
    if (tok.stop_requested()) {
        canceled_ = true;
        return false;
    }
    detail::loop_access::add_timer(*loop_, timer_);
    cancel_.attach(tok.source());
    return true;
}

void sleep_awaitable::on_fire(detail::timer_node* t) noexcept {
    sleep_awaitable* self = static_cast<node*>(t)->self;
    self->cancel_.detach();
    self->resume_op_.waiter.resume();
}

void sleep_awaitable::on_stop(stop_callback_base* cb) noexcept {
    sleep_awaitable* self = static_cast<canceller*>(cb)->self;
    detail::loop_access::remove_timer(*self->loop_, self->timer_);
    self->canceled_ = true;
    // Resume from the loop, not from inside request_stop().
    self->loop_->complete_later(self->resume_op_);
}

result<void> sleep_awaitable::await_resume() noexcept {
    cancel_.detach();
    if (canceled_)
        return errc::operation_canceled;
    return {};
}

namespace detail {

void op_deadline::start(clock::time_point when, void (*cancel)(void*) noexcept, void* arg) {
    loop_ = loop::current();
    cancel_ = cancel;
    arg_ = arg;
    fired_ = false;
    node_.when = when;
    node_.fire = &on_fire;
    node_.self = this;
    detail::loop_access::add_timer(*loop_, node_);
}

void op_deadline::stop() noexcept {
    if (loop_ != nullptr && node_.queued())
        detail::loop_access::remove_timer(*loop_, node_);
}

void op_deadline::on_fire(timer_node* t) noexcept {
    op_deadline* self = static_cast<node*>(t)->self;
    self->fired_ = true;
    self->cancel_(self->arg_);
}

deadline_timer::deadline_timer(loop& lp, clock::time_point when, stop_source& src)
    : loop_(lp), src_(src) {
    node_.when = when;
    node_.fire = &on_fire;
    node_.self = this;
    detail::loop_access::add_timer(loop_, node_);
}

deadline_timer::~deadline_timer() {
    detail::loop_access::remove_timer(loop_, node_);
}

void deadline_timer::on_fire(timer_node* t) noexcept {
    deadline_timer* self = static_cast<node*>(t)->self;
    self->fired_ = true;
    self->src_.request_stop();
}

} // namespace detail
} // namespace coronet::core
