#include <coronet/core/log.hpp>

#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/timer.hpp>

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace core = coronet::core;
using namespace std::chrono_literals;

using coronet::testing::run_on;

namespace {

// ---- log sink ----------------------------------------------------------------------------------

class capture_sink final : public core::log_sink {
public:
    void log(core::log_level level, std::string_view message) noexcept override {
        std::lock_guard<std::mutex> lock(mu);
        lines.emplace_back(level, std::string(message));
    }
    void count(std::string_view name, std::int64_t delta) noexcept override {
        std::lock_guard<std::mutex> lock(mu);
        counters.emplace_back(std::string(name), delta);
    }
    std::mutex mu;
    std::vector<std::pair<core::log_level, std::string>> lines;
    std::vector<std::pair<std::string, std::int64_t>> counters;
};

/// Installs a sink for the scope of a test.
struct sink_installed {
    explicit sink_installed(core::log_sink& s) noexcept { core::set_log_sink(&s); }
    ~sink_installed() { core::set_log_sink(nullptr); }
    sink_installed(const sink_installed&) = delete;
    sink_installed& operator=(const sink_installed&) = delete;
};

core::task<void> throws_after_suspending() {
    (void)co_await core::sleep_for(0ms);
    throw std::runtime_error("boom");
}

core::task<void> scope_reports_to_sink(core::loop&) {
    core::task_scope scope;
    scope.spawn(throws_after_suspending());
    co_await scope.join();
}

} // namespace

TEST_SUITE("core.log") {

    TEST_CASE("an installed log sink receives messages and counters") {
        capture_sink sink;
        {
            sink_installed installed(sink);
            CHECK(&core::current_log_sink() == &sink);
            core::log(core::log_level::warn, "a warning");
            core::count("test.things", 3);
        }
        CHECK(&core::current_log_sink() != &sink);
        REQUIRE(sink.lines.size() == 1);
        CHECK(sink.lines[0].first == core::log_level::warn);
        CHECK(sink.lines[0].second == "a warning");
        REQUIRE(sink.counters.size() == 1);
        CHECK(sink.counters[0].first == "test.things");
        CHECK(sink.counters[0].second == 3);
    }

    TEST_CASE_TEMPLATE("a task_scope child's exception reaches the log sink", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        capture_sink sink;
        {
            sink_installed installed(sink);
            run_on<B>([](core::loop& lp) { return scope_reports_to_sink(lp); });
        }
        REQUIRE(sink.lines.size() == 1);
        CHECK(sink.lines[0].first == core::log_level::error);
        CHECK(sink.lines[0].second.find("boom") != std::string::npos);
    }

} // TEST_SUITE
