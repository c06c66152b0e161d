#include <coronet/core/async_mutex.hpp>

namespace coronet::core {

bool async_mutex::try_lock() noexcept {
    if (locked_)
        return false;
    locked_ = true;
    return true;
}

bool async_mutex::lock_awaitable::await_ready() noexcept {
    return m_->try_lock();
}

bool async_mutex::lock_awaitable::suspend(std::coroutine_handle<> h, stop_token tok) {
    resume_.waiter = h;
    if (tok.stop_requested()) {
        canceled_ = true;
        return false;
    }
    next_ = nullptr;
    if (m_->tail_ != nullptr)
        m_->tail_->next_ = this;
    else
        m_->head_ = this;
    m_->tail_ = this;
    canceller_.attach(tok.source());
    return true;
}

void async_mutex::lock_awaitable::on_stop(stop_callback_base* cb) noexcept {
    lock_awaitable* self = static_cast<canceller*>(cb)->self;
    async_mutex* m = self->m_;
    // Still queued (a waiter handed the lock is no longer in the list): leave without it.
    lock_awaitable* prev = nullptr;
    for (lock_awaitable* w = m->head_; w != nullptr; prev = w, w = w->next_) {
        if (w != self)
            continue;
        if (prev != nullptr)
            prev->next_ = w->next_;
        else
            m->head_ = w->next_;
        if (m->tail_ == w)
            m->tail_ = prev;
        self->canceled_ = true;
        loop::current()->complete_later(self->resume_);
        return;
    }
}

result<void> async_mutex::lock_awaitable::await_resume() noexcept {
    canceller_.detach();
    if (canceled_)
        return errc::operation_canceled;
    return {};
}

void async_mutex::unlock() noexcept {
    lock_awaitable* w = head_;
    if (w == nullptr) {
        locked_ = false;
        return;
    }
    head_ = w->next_;
    if (head_ == nullptr)
        tail_ = nullptr;
    // The lock passes straight to the waiter (locked_ stays true); it resumes from the loop.
    w->canceller_.detach();
    loop::current()->complete_later(w->resume_);
}

} // namespace coronet::core
