// malloc_count: an LD_PRELOAD library that counts a process's heap calls (every thread) into a
// small shared file another process can read while it runs (ws_load --alloc-file,
// ws_broadcast_load --alloc-file), for the ws benchmarks (tests/bench/ws/run_ws_*.sh).
//
//   MALLOC_COUNT_FILE=/tmp/x.counts LD_PRELOAD=.../libmalloc_count.so server ...
//
// The file holds `struct malloc_counts` (malloc_count.h): allocations (malloc, calloc,
// memalign-family, realloc of a null pointer), reallocations (realloc of a live block), frees
// of non-null pointers, and the live heap bytes (malloc_usable_size: what the blocks really
// take, not what was asked for). C++ operator new reaches malloc through libstdc++, so it is
// counted too; memory a program maps itself (V8's JS heap in node) is not. Without
// MALLOC_COUNT_FILE the counters stay in this process and nothing is written.
// The real allocator is glibc's, called through its exported __libc_* entry points (no dlsym,
// which may itself allocate before the constructor runs).
#define _GNU_SOURCE
#include "malloc_count.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void __libc_free(void*);
extern void* __libc_memalign(size_t, size_t);
extern void* __libc_valloc(size_t);
extern void* __libc_pvalloc(size_t);

// Counts made before the constructor mapped the file (the dynamic loader's, libc's start-up)
// land here and are carried over.
static struct malloc_counts early_counts;
static struct malloc_counts* counts = &early_counts;

__attribute__((constructor)) static void malloc_count_init(void) {
    const char* path = getenv("MALLOC_COUNT_FILE");
    if (path == NULL || *path == '\0')
        return;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    if (ftruncate(fd, (off_t)sizeof(struct malloc_counts)) != 0) {
        close(fd);
        return;
    }
    void* p = mmap(NULL, sizeof(struct malloc_counts), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return;
    struct malloc_counts* shared = p;
    shared->allocs = __atomic_load_n(&early_counts.allocs, __ATOMIC_RELAXED);
    shared->reallocs = __atomic_load_n(&early_counts.reallocs, __ATOMIC_RELAXED);
    shared->frees = __atomic_load_n(&early_counts.frees, __ATOMIC_RELAXED);
    shared->live_bytes = __atomic_load_n(&early_counts.live_bytes, __ATOMIC_RELAXED);
    shared->magic = MALLOC_COUNTS_MAGIC;
    __atomic_store_n(&counts, shared, __ATOMIC_RELEASE);
}

static inline struct malloc_counts* c(void) {
    return __atomic_load_n(&counts, __ATOMIC_ACQUIRE);
}

static inline void note_alloc(void* p) {
    if (p == NULL)
        return;
    struct malloc_counts* k = c();
    __atomic_fetch_add(&k->allocs, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&k->live_bytes, (int64_t)malloc_usable_size(p), __ATOMIC_RELAXED);
}

static inline void note_free(void* p) {
    if (p == NULL)
        return;
    struct malloc_counts* k = c();
    __atomic_fetch_add(&k->frees, 1, __ATOMIC_RELAXED);
    __atomic_fetch_sub(&k->live_bytes, (int64_t)malloc_usable_size(p), __ATOMIC_RELAXED);
}

void* malloc(size_t n) {
    void* p = __libc_malloc(n);
    note_alloc(p);
    return p;
}

void* calloc(size_t n, size_t size) {
    void* p = __libc_calloc(n, size);
    note_alloc(p);
    return p;
}

void free(void* p) {
    note_free(p);
    __libc_free(p);
}

void* realloc(void* old, size_t n) {
    if (old == NULL)
        return malloc(n);
    if (n == 0) {
        free(old);
        return NULL;
    }
    size_t before = malloc_usable_size(old);
    void* p = __libc_realloc(old, n);
    if (p != NULL) {
        struct malloc_counts* k = c();
        __atomic_fetch_add(&k->reallocs, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&k->live_bytes, (int64_t)malloc_usable_size(p) - (int64_t)before,
                           __ATOMIC_RELAXED);
    }
    return p;
}

void* memalign(size_t align, size_t n) {
    void* p = __libc_memalign(align, n);
    note_alloc(p);
    return p;
}

void* aligned_alloc(size_t align, size_t n) {
    return memalign(align, n);
}

int posix_memalign(void** out, size_t align, size_t n) {
    if (align < sizeof(void*) || (align & (align - 1)) != 0)
        return EINVAL;
    void* p = memalign(align, n);
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

void* valloc(size_t n) {
    void* p = __libc_valloc(n);
    note_alloc(p);
    return p;
}

void* pvalloc(size_t n) {
    void* p = __libc_pvalloc(n);
    note_alloc(p);
    return p;
}
