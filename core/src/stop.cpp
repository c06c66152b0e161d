#include <coronet/core/stop.hpp>

namespace coronet::core {

bool stop_callback_base::attach(stop_source* src) noexcept {
    detach();
    if (src == nullptr)
        return true;
    if (src->requested_) {
        fn_(this);
        return false;
    }
    src_ = src;
    prev_ = src->tail_;
    next_ = nullptr;
    if (src->tail_ != nullptr)
        src->tail_->next_ = this;
    else
        src->head_ = this;
    src->tail_ = this;
    return true;
}

void stop_callback_base::detach() noexcept {
    if (src_ == nullptr)
        return;
    if (prev_ != nullptr)
        prev_->next_ = next_;
    else
        src_->head_ = next_;
    if (next_ != nullptr)
        next_->prev_ = prev_;
    else
        src_->tail_ = prev_;
    src_ = nullptr;
    prev_ = next_ = nullptr;
}

stop_source::stop_source(stop_token parent) noexcept {
    parent_link_.attach(parent.source());
}

stop_source::~stop_source() {
    parent_link_.detach();
    while (head_ != nullptr)
        head_->detach();
}

void stop_source::on_parent_stop(stop_callback_base* cb) noexcept {
    static_cast<parent_link*>(cb)->owner->request_stop();
}

bool stop_source::request_stop() noexcept {
    if (requested_)
        return false;
    requested_ = true;
    // Each callback is unlinked before it runs, so a callback may detach or destroy others.
    while (head_ != nullptr) {
        stop_callback_base* cb = head_;
        cb->detach();
        cb->fn_(cb);
    }
    return true;
}

} // namespace coronet::core
