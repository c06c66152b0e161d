#pragma once
// Emptied containers kept per thread for the next user, so that steady traffic allocates
// nothing (docs/http.md, "Server").

#include <cstddef>

namespace coronet::http::detail {

/// Up to four emptied containers of type `C` (a `std::vector` or `std::string`) kept per
/// thread. A container whose capacity is over `MaxKept` elements is not kept. Safe while the
/// thread exits: once the thread's list is destroyed, `take` gives an empty container and
/// `give` keeps nothing.
template <class C, std::size_t MaxKept>
class spare_list {
public:
    /// A kept container (empty, with its storage), or an empty one without storage.
    static C take() noexcept {
        if (gone_ || list_.count == 0)
            return C();
        return static_cast<C&&>(list_.spare[--list_.count]);
    }
    /// Keeps `c`'s storage, cleared, when there is room for it: `c` is then empty without
    /// storage. False (and `c` unchanged) when it was not kept.
    static bool give(C& c) noexcept {
        if (gone_ || c.capacity() == 0 || c.capacity() > MaxKept || list_.count == slots)
            return false;
        c.clear();
        list_.spare[list_.count++].swap(c);
        return true;
    }

private:
    static constexpr int slots = 4;
    struct kept {
        C spare[slots];
        int count = 0;
        kept() = default;
        kept(const kept&) = delete;
        kept& operator=(const kept&) = delete;
        ~kept() { gone_ = true; }
    };
    static inline thread_local kept list_;
    static inline thread_local bool gone_ = false; // trivial: readable after list_ is gone
};

} // namespace coronet::http::detail
