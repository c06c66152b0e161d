#include <coronet/http_ws/upgrade_request.hpp>

#include <coronet/http/headers.hpp>

#include <algorithm>

namespace coronet::http_ws {

upgrade_request::upgrade_request(const http::request& req,
                                 std::span<const std::string> keep_headers, std::string subprotocol)
    : target_(req.target()), path_(req.path()), query_(req.query()),
      subprotocol_(std::move(subprotocol)) {
    params_.reserve(req.params().size());
    for (const auto& [name, value] : req.params())
        params_.emplace_back(name, value);
    if (keep_headers.empty())
        return;
    for (const auto& f : req.headers().fields()) {
        bool keep = std::any_of(keep_headers.begin(), keep_headers.end(),
                                [&](const std::string& k) { return http::iequals(k, f.name); });
        if (keep)
            headers_.emplace_back(f.name, f.value);
    }
}

std::string_view upgrade_request::param(std::string_view name) const noexcept {
    for (const auto& [k, v] : params_)
        if (k == name)
            return v;
    return {};
}

std::string_view upgrade_request::header(std::string_view name) const noexcept {
    for (const auto& [k, v] : headers_)
        if (http::iequals(k, name))
            return v;
    return {};
}

} // namespace coronet::http_ws
