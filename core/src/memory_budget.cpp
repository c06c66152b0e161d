#include <coronet/core/memory_budget.hpp>

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>

namespace coronet::core {

bool memory_budget::try_acquire(std::size_t n) noexcept {
    if (n == 0)
        return true;
    std::size_t cur = in_use_.load(std::memory_order_relaxed);
    for (;;) {
        const std::size_t lim = limit_.load(std::memory_order_relaxed);
        if (cur > lim || n > lim - cur) {
            refusals_.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        if (in_use_.compare_exchange_weak(cur, cur + n, std::memory_order_relaxed))
            return true;
    }
}

void memory_budget::release(std::size_t n) noexcept {
    in_use_.fetch_sub(n, std::memory_order_relaxed);
}

namespace {

// A byte count as written in a cgroup file or the environment; nullopt-like 0 for "max",
// garbage or nothing.
std::size_t parse_bytes(std::string_view s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.remove_suffix(1);
    unsigned long long v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v == 0)
        return 0;
    return v > std::numeric_limits<std::size_t>::max() ? std::numeric_limits<std::size_t>::max()
                                                       : static_cast<std::size_t>(v);
}

std::size_t read_limit_file(const std::string& path) {
    std::ifstream f(path);
    std::string line;
    if (!f || !std::getline(f, line))
        return 0;
    return parse_bytes(line);
}

// The smallest memory limit among the cgroup files that apply to this process: the root of the
// mounted hierarchy (what a container sees as its own) and the process's own group, for cgroup
// v2 and v1. 0 when there is none.
std::size_t cgroup_limit() {
    std::string v2_path;
    std::string v1_path;
    std::ifstream self("/proc/self/cgroup");
    for (std::string line; std::getline(self, line);) {
        if (line.rfind("0::", 0) == 0)
            v2_path = line.substr(3);
        else if (auto at = line.find(":memory:"); at != std::string::npos)
            v1_path = line.substr(at + 8);
    }
    std::size_t best = 0;
    auto consider = [&best](std::size_t v) {
        if (v != 0 && (best == 0 || v < best))
            best = v;
    };
    consider(read_limit_file("/sys/fs/cgroup/memory.max"));
    if (!v2_path.empty() && v2_path != "/")
        consider(read_limit_file("/sys/fs/cgroup" + v2_path + "/memory.max"));
    consider(read_limit_file("/sys/fs/cgroup/memory/memory.limit_in_bytes"));
    if (!v1_path.empty() && v1_path != "/")
        consider(read_limit_file("/sys/fs/cgroup/memory" + v1_path + "/memory.limit_in_bytes"));
    return best;
}

} // namespace

std::size_t memory_budget::default_limit() {
    const long pages = ::sysconf(_SC_PHYS_PAGES);
    const long page = ::sysconf(_SC_PAGESIZE);
    std::size_t machine = pages > 0 && page > 0
                              ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page)
                              : std::size_t{1} << 30; // unknown: assume 1 GiB
    if (const std::size_t cg = cgroup_limit(); cg != 0)
        machine = std::min(machine, cg);
    return machine / 4;
}

memory_budget& memory_budget::process() {
    static memory_budget b([] {
        if (const char* env = std::getenv("CORONET_MEMORY_BUDGET"); env != nullptr)
            if (const std::size_t v = parse_bytes(env); v != 0)
                return v;
        return default_limit();
    }());
    return b;
}

} // namespace coronet::core
