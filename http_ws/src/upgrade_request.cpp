#include <coronet/http_ws/upgrade_request.hpp>

#include <coronet/http/headers.hpp>

#include <algorithm>

namespace coronet::http_ws {

ws::handshake_info handshake_info_of(const http::request& req,
                                     std::span<const std::string> keep_headers,
                                     std::string subprotocol) {
    ws::handshake_info info{std::string(req.target())};
    info.set_subprotocol(std::move(subprotocol));
    for (const auto& [name, value] : req.params())
        info.add_param(std::string(name), std::string(value));
    if (keep_headers.empty())
        return info;
    for (const auto& f : req.headers().fields()) {
        const bool keep =
            std::any_of(keep_headers.begin(), keep_headers.end(),
                        [&](const std::string& k) { return http::iequals(k, f.name); });
        if (keep)
            info.add_header(std::string(f.name), std::string(f.value));
    }
    return info;
}

} // namespace coronet::http_ws
