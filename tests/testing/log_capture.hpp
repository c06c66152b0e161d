#pragma once

// A log sink that keeps every line, for tests that check what a server says (and only once).

#include <coronet/core/log.hpp>

#include <atomic>
#include <cstdint>
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

/// Adds up the deltas of one metric (`core::count(name, delta)`) while it is alive: installs
/// itself as the log sink on construction and restores the default on destruction.
class metric_counter : public core::log_sink {
public:
    explicit metric_counter(std::string name) : name_(std::move(name)) { core::set_log_sink(this); }
    ~metric_counter() override { core::set_log_sink(nullptr); }
    metric_counter(const metric_counter&) = delete;
    metric_counter& operator=(const metric_counter&) = delete;
    void log(core::log_level, std::string_view) noexcept override {}
    void count(std::string_view name, std::int64_t delta) noexcept override {
        if (name == name_)
            n += delta;
    }
    std::atomic<std::int64_t> n{0};

private:
    std::string name_;
};

/// Installs a sink for the scope of this object, then restores the default.
class sink_installed {
public:
    explicit sink_installed(core::log_sink& s) noexcept { core::set_log_sink(&s); }
    ~sink_installed() { core::set_log_sink(nullptr); }
    sink_installed(const sink_installed&) = delete;
    sink_installed& operator=(const sink_installed&) = delete;
};

} // namespace coronet::testing
