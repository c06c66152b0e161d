#pragma once

#include <coronet/core/export.hpp>

#include <cstdint>
#include <string_view>

namespace coronet::core {

/// Severity of a log message.
enum class log_level : std::uint8_t { debug, info, warn, error };

/// Where the library's log messages and counters go. Nothing in coronet prints on its own: it
/// calls the installed sink. Implementations must be thread-safe if loops run on several
/// threads. Counter names are dotted, layer first (`core.accept_errors`, `http.requests`).
class CORONET_CORE_EXPORT log_sink {
public:
    virtual ~log_sink() = default;
    /// One message; `message` is only valid during the call.
    virtual void log(log_level level, std::string_view message) noexcept = 0;
    /// Adds `delta` to counter `name` (default: ignored).
    virtual void count(std::string_view name, std::int64_t delta) noexcept;
};

/// The default sink: writes messages at `min_level` or above to stderr, one line each;
/// ignores counters.
class CORONET_CORE_EXPORT stderr_log_sink : public log_sink {
public:
    explicit stderr_log_sink(log_level min_level = log_level::warn) noexcept : min_(min_level) {}
    void log(log_level level, std::string_view message) noexcept override;

private:
    log_level min_;
};

/// Installs `sink` for the whole process (null restores the stderr default). The sink must
/// outlive its use. Call before loops start; not synchronized with concurrent logging.
CORONET_CORE_EXPORT void set_log_sink(log_sink* sink) noexcept;
/// The installed sink.
CORONET_CORE_EXPORT log_sink& current_log_sink() noexcept;

/// Logs through the installed sink.
inline void log(log_level level, std::string_view message) noexcept {
    current_log_sink().log(level, message);
}
/// Counts through the installed sink.
inline void count(std::string_view name, std::int64_t delta = 1) noexcept {
    current_log_sink().count(name, delta);
}

} // namespace coronet::core
