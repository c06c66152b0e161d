#include <coronet/core/log.hpp>

#include <unistd.h>

#include <atomic>
#include <cstring>

namespace coronet::core {
namespace {
stderr_log_sink default_sink;
std::atomic<log_sink*> installed{nullptr};
} // namespace

void log_sink::count(std::string_view, std::int64_t) noexcept {}

void stderr_log_sink::log(log_level level, std::string_view message) noexcept {
    if (level < min_)
        return;
    static constexpr const char* names[] = {"debug", "info", "warn", "error"};
    char line[1024];
    const char* name = names[static_cast<int>(level)];
    std::size_t n = std::strlen(name);
    std::memcpy(line, "coronet ", 8);
    std::memcpy(line + 8, name, n);
    std::size_t pos = 8 + n;
    line[pos++] = ':';
    line[pos++] = ' ';
    std::size_t m = message.size() < sizeof line - pos - 1 ? message.size() : sizeof line - pos - 1;
    if (m > 0)
        std::memcpy(line + pos, message.data(), m);
    pos += m;
    line[pos++] = '\n';
    // One write per line so concurrent loggers do not interleave within a line.
    [[maybe_unused]] auto r = ::write(2, line, pos);
}

void set_log_sink(log_sink* sink) noexcept {
    installed.store(sink, std::memory_order_release);
}

log_sink& current_log_sink() noexcept {
    log_sink* s = installed.load(std::memory_order_acquire);
    return s != nullptr ? *s : default_sink;
}

} // namespace coronet::core
