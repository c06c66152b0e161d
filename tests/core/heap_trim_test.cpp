#include <coronet/core/loop.hpp>

#include <coronet/core/timer.hpp>

#include <testing/backends.hpp>

#include <doctest/doctest.h>

#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace core = coronet::core;
using namespace std::chrono_literals;

namespace {

// Resident set size of this process, from /proc/self/statm (pages). [[maybe_unused]]: the
// sanitizer builds compile the test body out.
[[maybe_unused]] std::size_t resident_bytes() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    REQUIRE(f != nullptr);
    unsigned long size = 0, resident = 0;
    const int got = std::fscanf(f, "%lu %lu", &size, &resident);
    std::fclose(f);
    REQUIRE(got == 2);
    return static_cast<std::size_t>(resident) * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

constexpr std::size_t block_size = 16 * 1024; // below glibc's mmap threshold: from the heap
constexpr std::size_t block_count = 4096;     // 64 MiB
constexpr std::size_t burst_bytes = block_size * block_count;

// Allocates and touches 64 MiB in heap-sized blocks, then frees them all while a block
// allocated after them stays live, so free() cannot hand the memory back by shrinking the top
// of the heap: what a burst of connections leaves behind.
[[maybe_unused]] std::unique_ptr<char[]> leave_burst_of_free_heap() {
    std::vector<std::unique_ptr<char[]>> blocks;
    blocks.reserve(block_count);
    for (std::size_t i = 0; i < block_count; ++i) {
        blocks.emplace_back(new char[block_size]);
        std::memset(blocks.back().get(), static_cast<int>(i), block_size);
    }
    auto pin = std::make_unique<char[]>(block_size);
    std::memset(pin.get(), 1, block_size);
    blocks.clear();
    return pin;
}

[[maybe_unused]] core::task<void> idle_for(core::clock::duration d) {
    (void)co_await core::sleep_for(d);
}

} // namespace

TEST_CASE_TEMPLATE("a loop that goes idle after a burst gives the freed heap back to the system", B,
                   CORONET_BACKENDS) {
    CORONET_REQUIRE_BACKEND(B);
#if !defined(__GLIBC__) || defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    MESSAGE("the sanitizer's allocator replaces glibc's heap: nothing to trim, skipped");
    return;
#else
    SUBCASE("with trimming off the free heap stays resident") {
        auto opts = coronet::testing::options<B>();
        opts.heap_trim_threshold = 0;
        core::loop lp(opts);
        const std::size_t before = resident_bytes();
        auto pin = leave_burst_of_free_heap();
        core::run(lp, idle_for(50ms));
        // Proves the setup: without the loop's trim, the burst is still resident.
        CHECK(resident_bytes() >= before + burst_bytes / 2);
        ::malloc_trim(0); // leave the next subcase a clean start
    }
    SUBCASE("with the default threshold an idle loop trims it") {
        core::loop lp(coronet::testing::options<B>());
        const std::size_t before = resident_bytes();
        auto pin = leave_burst_of_free_heap();
        const std::size_t after_burst = resident_bytes();
        REQUIRE(after_burst >= before + burst_bytes / 2);
        core::run(lp, idle_for(50ms));
        const std::size_t after_idle = resident_bytes();
        MESSAGE("resident: before " << before / 1024 << " KiB, after the burst "
                                    << after_burst / 1024 << " KiB, after idling "
                                    << after_idle / 1024 << " KiB");
        CHECK(after_idle + burst_bytes / 2 <= after_burst);
    }
    SUBCASE("a loop that went quiet just after a check still trims when the next one is due") {
        auto opts = coronet::testing::options<B>();
        opts.heap_trim_interval = 300ms;
        core::loop lp(opts);
        core::run(lp, idle_for(1ms)); // a check now (nothing to trim); the next is due in 300 ms
        auto pin = leave_burst_of_free_heap();
        const std::size_t after_burst = resident_bytes();
        REQUIRE(after_burst >= burst_bytes / 2);
        // Nothing wakes the loop but the owed check until this post, well after it is due; the
        // post reads RSS before the loop could check again on its own account.
        std::size_t seen_by_post = 0;
        std::thread poster([&] {
            std::this_thread::sleep_for(1'000ms);
            lp.post([&] {
                seen_by_post = resident_bytes();
                lp.stop();
            });
        });
        lp.run();
        poster.join();
        MESSAGE("resident: after the burst " << after_burst / 1024 << " KiB, when the post ran "
                                             << seen_by_post / 1024 << " KiB");
        CHECK(seen_by_post + burst_bytes / 2 <= after_burst);
    }
#endif
}
