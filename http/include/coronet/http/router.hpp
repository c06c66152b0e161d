#pragma once

#include <coronet/core/task.hpp>
#include <coronet/http/export.hpp>
#include <coronet/http/message.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace coronet::http {

/// A route handler: a coroutine that gets the request and returns a response or a takeover.
using handler = std::function<core::task<reply>(request&)>;

/// Method + path routing. Patterns are '/'-separated: a literal segment matches itself, `:name`
/// matches one non-empty segment and captures it, and a final `*` matches the rest of the path
/// (possibly empty) and captures it as "*". Routes are tried in the order added. A path that
/// matches with another method gives 405 with `Allow`; no match gives 404. HEAD is served by a
/// GET route when no HEAD route exists (the server drops the body). Not thread-safe to modify
/// while serving; lookups are const.
class CORONET_HTTP_EXPORT router {
public:
    router& route(std::string method, std::string pattern, handler h);
    router& get(std::string pattern, handler h) {
        return route("GET", std::move(pattern), std::move(h));
    }
    router& post(std::string pattern, handler h) {
        return route("POST", std::move(pattern), std::move(h));
    }
    router& put(std::string pattern, handler h) {
        return route("PUT", std::move(pattern), std::move(h));
    }
    router& del(std::string pattern, handler h) {
        return route("DELETE", std::move(pattern), std::move(h));
    }

    /// The outcome of a lookup.
    struct match {
        const handler* target = nullptr; ///< null: see status
        int status = 404;                ///< 404 or 405 when target is null
        std::string allow;               ///< for 405: the methods the path accepts
        std::vector<std::pair<std::string_view, std::string_view>> params;
    };
    /// Finds the handler for `method` and `path`. Param views point into `path` and into this
    /// router's patterns.
    match find(std::string_view method, std::string_view path) const;

private:
    struct entry {
        std::string method;
        std::string pattern;
        std::vector<std::string_view> segments; // views into pattern
        handler h;
    };
    static bool matches(const entry& e, std::string_view path,
                        std::vector<std::pair<std::string_view, std::string_view>>& params);
    std::vector<std::unique_ptr<entry>> routes_;
};

} // namespace coronet::http
