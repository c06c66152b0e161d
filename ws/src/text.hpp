#pragma once
// Small text helpers private to ws (http has its own; the layers share no code but core's).

#include <algorithm>
#include <cctype>
#include <string_view>

namespace coronet::ws::detail {

/// ASCII case-insensitive equality (header names, tokens).
inline bool iequal(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

} // namespace coronet::ws::detail
