#pragma once
// Counting a thread's allocations in a test. A test binary that calls these links
// testing/alloc_count.cpp, which replaces the global operator new: every allocation goes through
// malloc and is counted while its thread's counting is on.

#include <cstddef>

namespace coronet::testing::alloc_count {

/// Starts (true) or pauses (false) counting on this thread.
void set_counting(bool on) noexcept;
/// Zeroes this thread's count.
void reset() noexcept;
/// Allocations counted on this thread since the last reset().
std::size_t counted() noexcept;

} // namespace coronet::testing::alloc_count
