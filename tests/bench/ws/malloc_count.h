// The counters malloc_count.c (an LD_PRELOAD library) keeps in the shared file named by
// MALLOC_COUNT_FILE, and how the load generators read them. Plain C, so both sides agree.
#pragma once

#include <stdint.h>

#define MALLOC_COUNTS_MAGIC 0x6d616c6c6f63636eULL /* "mallocc n" */

struct malloc_counts {
    uint64_t magic;     // MALLOC_COUNTS_MAGIC once the file is live
    uint64_t allocs;    // malloc, calloc, memalign family, realloc(NULL, n)
    uint64_t reallocs;  // realloc of a live block
    uint64_t frees;     // free of a non-null pointer (and realloc(p, 0))
    int64_t live_bytes; // sum of malloc_usable_size over live blocks
};
