#include <coronet/core/buffer.hpp>

#include <new>

namespace coronet::core {

shared_buffer shared_buffer::make(std::size_t size) {
    void* mem = ::operator new(sizeof(header) + size);
    shared_buffer b;
    b.h_ = new (mem) header{{1}, size};
    return b;
}

shared_buffer shared_buffer::copy_of(const_buffer bytes) {
    shared_buffer b = make(bytes.size());
    if (!bytes.empty())
        std::memcpy(b.mutable_data(), bytes.data(), bytes.size());
    return b;
}

void shared_buffer::release() noexcept {
    if (h_ == nullptr)
        return;
    if (h_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::size_t n = sizeof(header) + h_->size;
        h_->~header();
        ::operator delete(static_cast<void*>(h_), n);
    }
    h_ = nullptr;
}

} // namespace coronet::core
