#pragma once

// What every fuzz target checks with: FUZZ_CHECK traps (so libFuzzer keeps the input) and
// names the failed condition, plus view helpers shared by the parser targets.

#include <cstdio>
#include <string_view>

namespace coronet::fuzz {

[[noreturn]] inline void check_failed(const char* target, const char* what, int line) {
    std::fprintf(stderr, "%s: check failed at line %d: %s\n", target, line, what);
    __builtin_trap();
}

/// True if `v` is empty or lies inside `buf` (zero-copy views must point into the input).
inline bool inside(std::string_view v, std::string_view buf) noexcept {
    if (v.empty())
        return true;
    return v.data() >= buf.data() && v.data() + v.size() <= buf.data() + buf.size();
}

} // namespace coronet::fuzz

/// Traps with the condition's text when `cond` is false; needs FUZZ_TARGET_NAME defined.
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ::coronet::fuzz::check_failed(FUZZ_TARGET_NAME, #cond, __LINE__);                      \
    } while (0)
