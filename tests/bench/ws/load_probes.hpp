// What the ws load generators (ws_load, ws_broadcast_load) read about the server and about
// themselves: CPU time, resident memory, the server's heap counters (malloc_count.so) and the
// bytes their own sockets moved.
#pragma once

#include "malloc_count.h"

#include <coronet/core/socket.hpp>
#include <coronet/ws/session.hpp>

#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace coronet::bench {

/// utime+stime of a process in microseconds, all its threads (-1 when unreadable).
inline double proc_cpu_us(long pid) {
    if (pid <= 0)
        return -1;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    std::FILE* f = std::fopen(path, "r");
    if (f == nullptr)
        return -1;
    char buf[1024];
    std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    const char* p = std::strrchr(buf, ')'); // comm may hold spaces and parentheses
    if (p == nullptr)
        return -1;
    p += 2; // field 3 (state)
    unsigned long long utime = 0, stime = 0;
    // fields 3..15: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
    // stime
    if (std::sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) !=
        2)
        return -1;
    return static_cast<double>(utime + stime) * 1e6 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// This process's user+system CPU in microseconds.
inline double self_cpu_us() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/// VmRSS of a process in KiB (-1 when unreadable).
inline long proc_rss_kb(long pid) {
    if (pid <= 0)
        return -1;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%ld/status", pid);
    std::FILE* f = std::fopen(path, "r");
    if (f == nullptr)
        return -1;
    char line[256];
    long kb = -1;
    while (std::fgets(line, sizeof line, f) != nullptr) {
        if (std::strncmp(line, "VmRSS:", 6) == 0) {
            kb = std::strtol(line + 6, nullptr, 10);
            break;
        }
    }
    std::fclose(f);
    return kb;
}

/// The server's heap counters, from the file malloc_count.so (LD_PRELOAD in the server) keeps
/// them in. Empty (valid() false) without a file or before the server mapped it.
class alloc_counters {
public:
    alloc_counters() = default;
    explicit alloc_counters(const std::string& path) {
        if (path.empty())
            return;
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return;
        void* p = ::mmap(nullptr, sizeof(malloc_counts), PROT_READ, MAP_SHARED, fd, 0);
        ::close(fd);
        if (p != MAP_FAILED)
            map_ = static_cast<const malloc_counts*>(p);
    }
    alloc_counters(const alloc_counters&) = delete;
    alloc_counters& operator=(const alloc_counters&) = delete;
    ~alloc_counters() {
        if (map_ != nullptr)
            ::munmap(const_cast<malloc_counts*>(map_), sizeof(malloc_counts));
    }
    bool valid() const noexcept {
        return map_ != nullptr &&
               __atomic_load_n(&map_->magic, __ATOMIC_ACQUIRE) == MALLOC_COUNTS_MAGIC;
    }
    /// Allocations plus reallocations so far (-1 when not valid).
    double allocs() const noexcept {
        if (!valid())
            return -1;
        return static_cast<double>(__atomic_load_n(&map_->allocs, __ATOMIC_RELAXED) +
                                   __atomic_load_n(&map_->reallocs, __ATOMIC_RELAXED));
    }
    /// Live heap bytes (-1 when not valid).
    double live_bytes() const noexcept {
        if (!valid())
            return -1;
        return static_cast<double>(__atomic_load_n(&map_->live_bytes, __ATOMIC_RELAXED));
    }

private:
    const malloc_counts* map_ = nullptr;
};

/// TCP payload bytes sent (acknowledged by the peer) and received on a set of connections.
struct wire_bytes {
    double up = 0;
    double down = 0;
};

/// Sums TCP_INFO's byte counters over the sessions' sockets (-1 each when a session does not
/// run over a plain tcp_stream).
inline wire_bytes wire_bytes_of(const std::vector<std::unique_ptr<ws::session>>& sessions) {
    wire_bytes w;
    for (const auto& s : sessions) {
        auto* t = dynamic_cast<core::tcp_stream*>(&s->stream());
        if (t == nullptr || t->native_handle() < 0)
            continue;
        tcp_info ti{};
        socklen_t len = sizeof ti;
        if (::getsockopt(t->native_handle(), IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
            continue;
        w.up += static_cast<double>(ti.tcpi_bytes_acked);
        w.down += static_cast<double>(ti.tcpi_bytes_received);
    }
    return w;
}

/// Raises the soft limit on open files to the hard limit; returns the new soft limit.
inline rlim_t raise_fd_limit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)::setrlimit(RLIMIT_NOFILE, &rl);
        (void)::getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

} // namespace coronet::bench
