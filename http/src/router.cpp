#include <coronet/http/router.hpp>

#include "spare_list.hpp"

#include <algorithm>

namespace coronet::http {
namespace {

std::vector<std::string_view> split_path(std::string_view p) {
    std::vector<std::string_view> out;
    if (!p.empty() && p.front() == '/')
        p.remove_prefix(1);
    for (;;) {
        auto slash = p.find('/');
        out.push_back(p.substr(0, slash));
        if (slash == std::string_view::npos)
            break;
        p.remove_prefix(slash + 1);
    }
    return out;
}

using param_list = std::vector<std::pair<std::string_view, std::string_view>>;

// The parameter lists of requests that are done, kept for the next lookups of this thread: a
// route with parameters allocates nothing per request in steady state.
using spare_params = detail::spare_list<param_list, 32>;

} // namespace

request::~request() {
    spare_params::give(params_);
}

std::string_view request::param(std::string_view name) const noexcept {
    for (const auto& [k, v] : params_)
        if (k == name)
            return v;
    return {};
}

router& router::route(std::string method, std::string pattern, handler h) {
    auto e = std::make_unique<entry>();
    e->method = std::move(method);
    e->pattern = std::move(pattern);
    e->segments = split_path(e->pattern);
    e->h = std::move(h);
    routes_.push_back(std::move(e));
    return *this;
}

bool router::matches(const entry& e, std::string_view path,
                     std::vector<std::pair<std::string_view, std::string_view>>& params) {
    params.clear();
    if (path.empty() || path.front() != '/')
        return false;
    std::string_view rest = path.substr(1);
    for (std::size_t i = 0; i < e.segments.size(); ++i) {
        std::string_view seg = e.segments[i];
        if (seg == "*" && i + 1 == e.segments.size()) {
            params.emplace_back("*", rest);
            return true;
        }
        auto slash = rest.find('/');
        std::string_view part = rest.substr(0, slash);
        const bool last_part = slash == std::string_view::npos;
        if (!seg.empty() && seg.front() == ':') {
            if (part.empty())
                return false;
            params.emplace_back(seg.substr(1), part);
        } else if (seg != part) {
            return false;
        }
        const bool last_seg = i + 1 == e.segments.size();
        if (last_seg != last_part)
            return false;
        if (!last_part)
            rest.remove_prefix(slash + 1);
    }
    return true;
}

router::match router::find(std::string_view method, std::string_view path) const {
    match m;
    param_list params = spare_params::take();
    const entry* get_fallback = nullptr;
    std::vector<std::string_view> allowed;
    for (const auto& e : routes_) {
        if (!matches(*e, path, params))
            continue;
        if (e->method == method) {
            m.target = &e->h;
            m.params = std::move(params);
            return m;
        }
        if (method == "HEAD" && e->method == "GET" && get_fallback == nullptr) {
            get_fallback = e.get();
            m.params = params;
        }
        if (std::find(allowed.begin(), allowed.end(), e->method) == allowed.end())
            allowed.push_back(e->method);
    }
    spare_params::give(params);
    if (get_fallback != nullptr) {
        m.target = &get_fallback->h;
        return m;
    }
    if (allowed.empty())
        return m; // 404
    if (std::find(allowed.begin(), allowed.end(), "GET") != allowed.end() &&
        std::find(allowed.begin(), allowed.end(), "HEAD") == allowed.end())
        allowed.push_back("HEAD");
    m.status = 405;
    for (auto a : allowed) {
        if (!m.allow.empty())
            m.allow += ", ";
        m.allow += a;
    }
    return m;
}

} // namespace coronet::http
