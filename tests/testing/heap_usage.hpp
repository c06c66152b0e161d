#pragma once

// How many heap bytes the process holds, for tests that bound what a connection allocates
// (memory must follow the bytes a peer sent, not a length it announced).

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer replaces malloc, so glibc's counters stay at zero: ask its allocator.
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#else
#include <malloc.h>
#endif

namespace coronet::testing {

/// Heap bytes allocated and not yet freed, process-wide: glibc's mallinfo2 (every arena plus
/// mmapped chunks, so a reserved but untouched block counts in full), or the sanitizer
/// allocator's count under ASan. Compare two readings taken on the test's thread around the
/// code under test; the difference includes whatever else the process allocated meanwhile, so
/// bound it with some slack rather than exactly.
inline std::size_t heap_in_use() noexcept {
#if defined(__SANITIZE_ADDRESS__)
    return __sanitizer_get_current_allocated_bytes();
#else
    const struct mallinfo2 mi = ::mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
}

} // namespace coronet::testing
