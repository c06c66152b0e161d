#pragma once

#include <coronet/core/export.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace coronet::core {

/// A total budget for the bytes that peers make a process buffer (request bodies, read buffers,
/// WebSocket messages being assembled), shared by any number of servers, connections and loops.
/// Holders acquire bytes before they grow and release them when they shrink or end; a grow that
/// would pass the limit is refused, and the server that asked sheds load (HTTP 503, WebSocket
/// close 1013) instead of growing. Per-connection limits alone bound nothing in total: 16 MiB
/// messages times 10,000 connections is far beyond any machine.
///
/// The budget counts only what holders report (`memory_charge` does it for them, past a small
/// free allowance each), not the process's whole heap. Thread-safe: every member may be called
/// from any thread (atomics, no lock). The limit may be changed while bytes are held: holders
/// keep what they have, new grows see the new limit.
class CORONET_CORE_EXPORT memory_budget {
public:
    /// A budget of `limit` bytes.
    explicit memory_budget(std::size_t limit) noexcept : limit_(limit) {}
    memory_budget(const memory_budget&) = delete;
    memory_budget& operator=(const memory_budget&) = delete;

    /// Takes `n` more bytes if that keeps the bytes in use within the limit; otherwise takes
    /// nothing, counts a refusal and returns false. `try_acquire(0)` always succeeds.
    bool try_acquire(std::size_t n) noexcept;
    /// Gives back `n` bytes taken earlier by try_acquire.
    void release(std::size_t n) noexcept;
    /// Bytes held now.
    std::size_t in_use() const noexcept { return in_use_.load(std::memory_order_relaxed); }
    /// The limit in bytes.
    std::size_t limit() const noexcept { return limit_.load(std::memory_order_relaxed); }
    /// Changes the limit (bytes already held stay held, even above a lowered limit).
    void set_limit(std::size_t limit) noexcept { limit_.store(limit, std::memory_order_relaxed); }
    /// True when no byte is left: servers refuse new connections at once (503) in this state.
    bool exhausted() const noexcept { return in_use() >= limit(); }
    /// How many try_acquire calls were refused so far.
    std::uint64_t refusals() const noexcept { return refusals_.load(std::memory_order_relaxed); }

    /// The process-wide budget, the default of `http::server_options::memory_budget` and
    /// `ws::session_options::memory_budget`. Its limit is `default_limit()`, or the byte count
    /// in the environment variable `CORONET_MEMORY_BUDGET` when that is set to a number (read
    /// once, on the first call); `set_limit` changes it at run time.
    static memory_budget& process();
    /// The machine-derived default: a quarter of the smaller of the physical memory
    /// (`sysconf(_SC_PHYS_PAGES) * _SC_PAGESIZE`) and the memory limit of the process's cgroup
    /// (v2 `memory.max` unless "max", v1 `memory.limit_in_bytes`), so that buffered peer data
    /// leaves room for everything else the process and its neighbours need.
    static std::size_t default_limit();

private:
    std::atomic<std::size_t> limit_;
    std::atomic<std::size_t> in_use_{0};
    std::atomic<std::uint64_t> refusals_{0};
};

/// What one holder (a read buffer, a message being assembled) has charged to a budget: it
/// reports its size with `resize`, which charges the bytes beyond a free allowance, and gives
/// everything back when it is reset or destroyed. With no budget (null) it charges nothing and
/// never refuses. Ordinary small holders stay within the allowance and never touch the
/// budget's atomics. Movable, not copyable; not thread-safe (the holder's own thread).
class CORONET_CORE_EXPORT memory_charge {
public:
    /// The allowance every holder has for free (its first 64 KiB are not charged).
    static constexpr std::size_t default_allowance = 64 * 1024;

    memory_charge() noexcept = default;
    /// Charges to `budget` (may be null) what a holder uses beyond `free_allowance` bytes.
    explicit memory_charge(memory_budget* budget,
                           std::size_t free_allowance = default_allowance) noexcept
        : budget_(budget), allowance_(free_allowance) {}
    memory_charge(memory_charge&& o) noexcept
        : budget_(std::exchange(o.budget_, nullptr)), allowance_(o.allowance_),
          charged_(std::exchange(o.charged_, 0)) {}
    memory_charge& operator=(memory_charge&& o) noexcept {
        if (this != &o) {
            reset();
            budget_ = std::exchange(o.budget_, nullptr);
            allowance_ = o.allowance_;
            charged_ = std::exchange(o.charged_, 0);
        }
        return *this;
    }
    ~memory_charge() { reset(); }

    /// The holder is about to use `bytes` in all. Charges the part beyond the allowance (or
    /// releases what is no longer used) and returns true; returns false, changing nothing, when
    /// the budget refuses the increase (the holder must not grow).
    bool resize(std::size_t bytes) noexcept {
        const std::size_t want = bytes > allowance_ ? bytes - allowance_ : 0;
        if (want == charged_ || budget_ == nullptr)
            return true;
        if (want < charged_) {
            budget_->release(charged_ - want);
        } else if (!budget_->try_acquire(want - charged_)) {
            return false;
        }
        charged_ = want;
        return true;
    }
    /// Gives back everything charged (as resize(0)).
    void reset() noexcept {
        if (budget_ != nullptr && charged_ > 0)
            budget_->release(charged_);
        charged_ = 0;
    }
    /// Bytes charged to the budget now.
    std::size_t charged() const noexcept { return charged_; }
    /// The budget charged, or null.
    memory_budget* budget() const noexcept { return budget_; }

private:
    memory_budget* budget_ = nullptr;
    std::size_t allowance_ = default_allowance;
    std::size_t charged_ = 0;
};

} // namespace coronet::core
