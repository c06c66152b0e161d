#pragma once

#include <coronet/core/export.hpp>

#include <cstddef>

namespace coronet::core::detail {

/// Allocates a coroutine frame from the calling thread's recycling pool: frames up to 4 KiB are
/// kept on per-size-class free lists (bounded per class), so a steady state of starting and
/// finishing tasks allocates nothing from the heap. Larger frames go to `::operator new`.
/// Throws std::bad_alloc like `::operator new`.
CORONET_CORE_EXPORT void* allocate_frame(std::size_t size);
/// Returns a frame from `allocate_frame` (same `size`) to the calling thread's pool. A frame may
/// be freed on another thread than the one that allocated it.
CORONET_CORE_EXPORT void deallocate_frame(void* p, std::size_t size) noexcept;
/// Bytes of frames the calling thread's pool keeps free (in use as far as malloc can tell).
CORONET_CORE_EXPORT std::size_t free_frame_bytes() noexcept;
/// Frees the calling thread's pooled frames beyond `keep_per_class` per size class. The loop
/// calls it when it goes idle after a burst, so the burst's frames stop pinning heap pages.
CORONET_CORE_EXPORT void release_free_frames(std::size_t keep_per_class) noexcept;

} // namespace coronet::core::detail
