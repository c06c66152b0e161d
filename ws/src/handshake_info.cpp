#include <coronet/ws/handshake_info.hpp>

#include "text.hpp"

namespace coronet::ws {

handshake_info::handshake_info(std::string target)
    : target_(std::move(target)), path_(std::min(target_.find('?'), target_.size())) {}

std::string_view handshake_info::query() const noexcept {
    if (path_ >= target_.size())
        return {};
    return std::string_view(target_).substr(path_ + 1);
}

std::string_view handshake_info::param(std::string_view name) const noexcept {
    for (const auto& [k, v] : params_)
        if (k == name)
            return v;
    return {};
}

std::string_view handshake_info::header(std::string_view name) const noexcept {
    for (const auto& [k, v] : headers_)
        if (detail::iequal(k, name))
            return v;
    return {};
}

} // namespace coronet::ws
