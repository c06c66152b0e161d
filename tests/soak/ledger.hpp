// The soak client's bookkeeping of deliveries: for every (receiver, sender) stream, which
// sequence number comes next, and what went wrong when another one came.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace coronet::soak {

/// Counts of what the receivers saw, over every stream.
struct delivery_counts {
    std::uint64_t delivered = 0;  ///< distinct data messages received (in order or late)
    std::uint64_t duplicated = 0; ///< a sequence number received a second time
    std::uint64_t reordered = 0;  ///< received after a later one of the same sender
    std::uint64_t corrupted = 0;  ///< bytes, type, sender or sequence number not as sent
    std::uint64_t unexpected = 0; ///< messages the protocol does not allow at that point
    std::uint64_t lost = 0;       ///< sent, never received (known at the end)
};

/// One receiver's view of its senders: the next sequence number expected from each member of
/// its room (slot = sender - first member), plus the holes it skipped, kept only when a
/// message arrived early (so a steady run allocates nothing here).
///
/// A message `q` from a sender whose next expected number is `n`:
/// - `q == n`: in order;
/// - `q > n`: `n..q-1` become holes (lost, unless they show up later);
/// - `q < n`: a hole filled late (reordered), or else a duplicate.
class ledger {
public:
    /// `receivers` streams per receiver: one slot per room member.
    void reset(std::size_t receiver_count, std::size_t slots_per_receiver) {
        slots_ = slots_per_receiver;
        next_.assign(receiver_count * slots_per_receiver, 1);
        holes_.clear();
    }

    /// Records message `seq` (≥ 1) from slot `slot` at receiver `receiver`.
    void record(std::size_t receiver, std::size_t slot, std::uint32_t seq, delivery_counts& c) {
        std::uint32_t& next = next_[receiver * slots_ + slot];
        if (seq == next) {
            ++next;
            ++c.delivered;
            return;
        }
        const std::uint64_t key = receiver * slots_ + slot;
        if (seq > next) {
            auto& h = holes_[key];
            for (std::uint32_t s = next; s < seq; ++s)
                h.insert(s);
            next = seq + 1;
            ++c.delivered;
            return;
        }
        auto it = holes_.find(key);
        if (it != holes_.end() && it->second.erase(seq) == 1) {
            ++c.reordered;
            ++c.delivered;
            return;
        }
        ++c.duplicated;
    }

    /// Messages of `sent` (by slot) that receiver `receiver` never got.
    std::uint64_t missing(std::size_t receiver, std::size_t slot, std::uint32_t sent) const {
        const std::uint32_t next = next_[receiver * slots_ + slot];
        std::uint64_t m = sent + 1 > next ? sent + 1 - next : 0;
        auto it = holes_.find(receiver * slots_ + slot);
        if (it != holes_.end())
            m += it->second.size();
        return m;
    }

    /// The highest sequence number received from `slot` by `receiver`.
    std::uint32_t highest(std::size_t receiver, std::size_t slot) const {
        return next_[receiver * slots_ + slot] - 1;
    }

private:
    std::size_t slots_ = 0;
    std::vector<std::uint32_t> next_;
    std::map<std::uint64_t, std::set<std::uint32_t>> holes_;
};

} // namespace coronet::soak
