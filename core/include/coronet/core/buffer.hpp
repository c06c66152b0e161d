#pragma once

#include <coronet/core/export.hpp>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <span>
#include <string_view>
#include <utility>

namespace coronet::core {

/// Bytes to write: a view the caller keeps alive until the write completes.
using const_buffer = std::span<const std::byte>;
/// Bytes to read into.
using mutable_buffer = std::span<std::byte>;

/// A view of a string's bytes.
inline const_buffer as_bytes(std::string_view s) noexcept {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
/// A string view of bytes.
inline std::string_view as_string(std::span<const std::byte> b) noexcept {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// An immutable, reference-counted byte buffer: one allocation holds the count and the bytes.
/// Built once and handed to many writers (a broadcast frame); copies share the bytes. The
/// count is atomic, so copies may be released on different threads; the bytes are never
/// modified after `make`/`copy_of` returns.
class CORONET_CORE_EXPORT shared_buffer {
public:
    shared_buffer() noexcept = default;
    /// A buffer of `size` bytes to fill through `mutable_data()` before sharing it.
    static shared_buffer make(std::size_t size);
    /// A buffer holding a copy of `bytes`.
    static shared_buffer copy_of(const_buffer bytes);

    shared_buffer(const shared_buffer& o) noexcept : h_(o.h_) {
        if (h_ != nullptr)
            h_->refs.fetch_add(1, std::memory_order_relaxed);
    }
    shared_buffer(shared_buffer&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    shared_buffer& operator=(shared_buffer o) noexcept {
        std::swap(h_, o.h_);
        return *this;
    }
    ~shared_buffer() { release(); }

    const std::byte* data() const noexcept { return h_ != nullptr ? bytes() : nullptr; }
    /// Writable bytes, only while this is the sole owner (right after `make`).
    std::byte* mutable_data() noexcept { return h_ != nullptr ? bytes() : nullptr; }
    std::size_t size() const noexcept { return h_ != nullptr ? h_->size : 0; }
    bool empty() const noexcept { return size() == 0; }
    /// How many shared_buffer objects share the bytes (0 for an empty one).
    std::size_t use_count() const noexcept {
        return h_ != nullptr ? h_->refs.load(std::memory_order_relaxed) : 0;
    }
    operator const_buffer() const noexcept { return {data(), size()}; }

private:
    struct header {
        std::atomic<std::size_t> refs;
        std::size_t size;
    };
    std::byte* bytes() const noexcept { return reinterpret_cast<std::byte*>(h_) + sizeof(header); }
    void release() noexcept;
    header* h_ = nullptr;
};

} // namespace coronet::core
