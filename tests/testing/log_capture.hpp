#pragma once

// A log sink that keeps every line, for tests that check what a server says (and only once).

#include <coronet/core/log.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coronet::testing {

/// Keeps every log line with its level (use from the loop's thread only).
class capture_sink final : public core::log_sink {
public:
    void log(core::log_level level, std::string_view message) noexcept override {
        try {
            lines.emplace_back(level, std::string(message));
        } catch (...) {
        }
    }
    std::vector<std::pair<core::log_level, std::string>> lines;
};

/// Installs a sink for the scope of this object, then restores the default.
class sink_installed {
public:
    explicit sink_installed(core::log_sink& s) noexcept { core::set_log_sink(&s); }
    ~sink_installed() { core::set_log_sink(nullptr); }
    sink_installed(const sink_installed&) = delete;
    sink_installed& operator=(const sink_installed&) = delete;
};

}  // namespace coronet::testing
