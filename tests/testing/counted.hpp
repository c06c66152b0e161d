#pragma once

// A value type that counts its constructions and destructions, to prove that coroutine frames
// and the values in them are destroyed (cppcoro's `counted`).

namespace coronet::testing {

struct counted {
    static inline int constructed = 0;
    static inline int destroyed = 0;
    static void reset() noexcept { constructed = destroyed = 0; }
    static int alive() noexcept { return constructed - destroyed; }

    counted() noexcept { ++constructed; }
    counted(const counted&) noexcept { ++constructed; }
    counted(counted&&) noexcept { ++constructed; }
    counted& operator=(const counted&) = default;
    counted& operator=(counted&&) = default;
    ~counted() { ++destroyed; }
};

} // namespace coronet::testing
