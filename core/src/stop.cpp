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
    src->callbacks_.push_back(*this);
    return true;
}

void stop_callback_base::detach() noexcept {
    if (src_ == nullptr)
        return;
    src_->callbacks_.erase(*this);
    src_ = nullptr;
}

stop_source::stop_source(stop_token parent) noexcept {
    parent_link_.attach(parent.source());
}

stop_source::~stop_source() {
    parent_link_.detach();
    while (!callbacks_.empty())
        callbacks_.front().detach();
}

void stop_source::on_parent_stop(stop_callback_base* cb) noexcept {
    static_cast<parent_link*>(cb)->owner->request_stop();
}

bool stop_source::request_stop() noexcept {
    if (requested_)
        return false;
    requested_ = true;
    // Each callback is unlinked before it runs, so a callback may detach or destroy others.
    while (!callbacks_.empty()) {
        stop_callback_base& cb = callbacks_.front();
        cb.detach();
        cb.fn_(&cb);
    }
    return true;
}

} // namespace coronet::core
