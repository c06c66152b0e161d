#pragma once
// A loop's inbox for work posted from any thread: an intrusive lock-free multi-producer,
// single-consumer stack of caller-owned nodes, taken whole and reversed by the loop. The
// loop's "asleep" flag lives in the low bit of the same word, so a poster learns in the one
// compare-and-swap that publishes its node whether it must wake the loop: a burst of posts
// costs at most one wake-up, and a loop that is awake costs its posters no syscall at all.

#include <coronet/core/loop.hpp>

#include <atomic>
#include <cstdint>

namespace coronet::core::detail {

class post_queue {
public:
    /// Publishes `n` (any thread). True if the loop was asleep: this caller cleared the flag and
    /// owes the loop a wake-up, after which it calls `wake_sent()`.
    bool push(post_node& n) noexcept {
        std::uintptr_t old = head_.load(std::memory_order_relaxed);
        do {
            n.next = reinterpret_cast<post_node*>(old & ~asleep);
        } while (!head_.compare_exchange_weak(old, reinterpret_cast<std::uintptr_t>(&n),
                                              std::memory_order_acq_rel,
                                              std::memory_order_relaxed));
        return (old & asleep) != 0;
    }

    /// Loop thread: every node posted so far, oldest first (null when none).
    post_node* take_all() noexcept {
        // The flag is only set while the loop waits, never while it drains: a node pointer or 0.
        if ((head_.load(std::memory_order_relaxed) & ~asleep) == 0)
            return nullptr;
        auto* newest = reinterpret_cast<post_node*>(head_.exchange(0, std::memory_order_acquire));
        post_node* oldest = nullptr;
        while (newest != nullptr) {
            post_node* next = newest->next;
            newest->next = oldest;
            oldest = newest;
            newest = next;
        }
        return oldest;
    }

    /// Loop thread, before blocking in the kernel: sets the flag if nothing is queued. False
    /// when work is queued (the loop must not block).
    bool try_sleep() noexcept {
        std::uintptr_t empty = 0;
        return head_.compare_exchange_strong(empty, asleep, std::memory_order_acq_rel,
                                             std::memory_order_relaxed);
    }

    /// Loop thread, after the wait: clears the flag. True if a poster had cleared it first and so
    /// owes a wake-up (counted, so the loop outlives the poster's last touch).
    void end_sleep() noexcept {
        std::uintptr_t expected = asleep;
        if (!head_.compare_exchange_strong(expected, 0, std::memory_order_acq_rel,
                                           std::memory_order_relaxed))
            ++wakes_owed_;
    }

    /// The poster that found the loop asleep is done with it (the wake-up went out).
    void wake_sent() noexcept { wakes_sent_.fetch_add(1, std::memory_order_release); }
    /// Loop thread: true while some poster that found the loop asleep may still touch it.
    bool wakes_outstanding() const noexcept {
        return wakes_sent_.load(std::memory_order_acquire) < wakes_owed_;
    }

private:
    static constexpr std::uintptr_t asleep = 1;
    // The posters' word and the loop's counters on separate lines: posting never contends with
    // the loop's own bookkeeping.
    alignas(64) std::atomic<std::uintptr_t> head_{0};
    alignas(64) std::atomic<std::uint64_t> wakes_sent_{0};
    std::uint64_t wakes_owed_ = 0;
};

} // namespace coronet::core::detail
