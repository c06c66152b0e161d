// The replacement operator new behind testing/alloc_count.hpp (target coronet_alloc_count, linked
// only into the test binaries that count).
#include <testing/alloc_count.hpp>

#include <cstdlib>
#include <new>

namespace {
thread_local bool counting = false;
thread_local std::size_t allocations = 0;
} // namespace

void* operator new(std::size_t n) {
    if (counting)
        ++allocations;
    if (void* p = std::malloc(n == 0 ? 1 : n))
        return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}

namespace coronet::testing::alloc_count {

void set_counting(bool on) noexcept {
    counting = on;
}

void reset() noexcept {
    allocations = 0;
}

std::size_t counted() noexcept {
    return allocations;
}

} // namespace coronet::testing::alloc_count
