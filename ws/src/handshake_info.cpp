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

handshake_info::extras& handshake_info::more() {
    if (!more_)
        more_ = std::make_unique<extras>();
    return *more_;
}

namespace {
const std::vector<handshake_info::pair> no_pairs;
}

const std::vector<handshake_info::pair>& handshake_info::params() const noexcept {
    return more_ ? more_->params : no_pairs;
}

const std::vector<handshake_info::pair>& handshake_info::headers() const noexcept {
    return more_ ? more_->headers : no_pairs;
}

std::string_view handshake_info::param(std::string_view name) const noexcept {
    for (const auto& [k, v] : params())
        if (k == name)
            return v;
    return {};
}

std::string_view handshake_info::header(std::string_view name) const noexcept {
    for (const auto& [k, v] : headers())
        if (detail::iequal(k, name))
            return v;
    return {};
}

} // namespace coronet::ws
