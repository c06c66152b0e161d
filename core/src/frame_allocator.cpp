#include <coronet/core/frame_allocator.hpp>

#include <array>
#include <new>

namespace coronet::core::detail {
namespace {

// malloc's own granularity: a frame's size class wastes at most 15 bytes. (At 64, an idle
// connection's two or three long-lived frames wasted ~32 bytes each on average.)
constexpr std::size_t granule = 16;
constexpr std::size_t max_pooled = 4096;
constexpr std::size_t class_count = max_pooled / granule;
// Bounds what an idle thread keeps after a burst: 256 frames per class in any case, and beyond
// that as many as fit in 8 MiB for all classes together, so that a burst as wide as a hub
// broadcast to 10,000 connections (one write frame each) reuses its frames next time.
constexpr std::size_t min_free_per_class = 256;
constexpr std::size_t max_free_bytes = 8u << 20;

struct free_block {
    free_block* next;
};

struct frame_pool {
    std::array<free_block*, class_count> heads{};
    std::array<std::size_t, class_count> counts{};
    std::size_t free_bytes = 0;

    ~frame_pool() {
        for (std::size_t c = 0; c < class_count; ++c) {
            while (heads[c] != nullptr) {
                free_block* b = heads[c];
                heads[c] = b->next;
                ::operator delete(b, (c + 1) * granule);
            }
        }
    }
};

thread_local frame_pool pool;

std::size_t class_of(std::size_t size) noexcept {
    return (size + granule - 1) / granule - 1;
}

} // namespace

void* allocate_frame(std::size_t size) {
    if (size == 0 || size > max_pooled)
        return ::operator new(size);
    std::size_t c = class_of(size);
    frame_pool& p = pool; // one thread-local lookup (a call in a -fPIC library), not four
    if (free_block* b = p.heads[c]) {
        p.heads[c] = b->next;
        --p.counts[c];
        p.free_bytes -= (c + 1) * granule;
        return b;
    }
    return ::operator new((c + 1) * granule);
}

std::size_t free_frame_bytes() noexcept {
    return pool.free_bytes;
}

void release_free_frames(std::size_t keep_per_class) noexcept {
    frame_pool& fp = pool;
    for (std::size_t c = 0; c < class_count; ++c) {
        while (fp.counts[c] > keep_per_class) {
            free_block* b = fp.heads[c];
            fp.heads[c] = b->next;
            --fp.counts[c];
            fp.free_bytes -= (c + 1) * granule;
            ::operator delete(b, (c + 1) * granule);
        }
    }
}

void deallocate_frame(void* p, std::size_t size) noexcept {
    if (size == 0 || size > max_pooled) {
        ::operator delete(p, size);
        return;
    }
    std::size_t c = class_of(size);
    frame_pool& fp = pool;
    const std::size_t bytes = (c + 1) * granule;
    if (fp.counts[c] >= min_free_per_class && fp.free_bytes + bytes > max_free_bytes) {
        ::operator delete(p, (c + 1) * granule);
        return;
    }
    auto* b = static_cast<free_block*>(p);
    b->next = fp.heads[c];
    fp.heads[c] = b;
    ++fp.counts[c];
    fp.free_bytes += bytes;
}

} // namespace coronet::core::detail
