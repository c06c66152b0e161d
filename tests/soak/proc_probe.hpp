// What the soak client reads about the server under test (/proc/PID) and about itself.
#pragma once

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace coronet::soak {

/// One look at a process: resident memory, open descriptors, CPU used so far (-1: unreadable,
/// e.g. the process is gone).
struct proc_sample {
    long rss_kb = -1;
    long fds = -1;
    double cpu_s = -1;
    bool valid() const noexcept { return rss_kb >= 0 && fds >= 0 && cpu_s >= 0; }
};

/// VmRSS from /proc/PID/status, in KiB.
inline long read_rss_kb(long pid) {
    const std::string path = "/proc/" + std::to_string(pid) + "/status";
    std::FILE* f = std::fopen(path.c_str(), "r");
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

/// Entries of /proc/PID/fd.
inline long count_fds(long pid) {
    const std::string path = "/proc/" + std::to_string(pid) + "/fd";
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr)
        return -1;
    long n = 0;
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.')
            ++n;
    }
    ::closedir(d);
    return n;
}

/// utime + stime of every thread of the process, from /proc/PID/stat, in seconds.
inline double read_cpu_s(long pid) {
    const std::string path = "/proc/" + std::to_string(pid) + "/stat";
    std::FILE* f = std::fopen(path.c_str(), "r");
    if (f == nullptr)
        return -1;
    char buf[1024];
    const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    const char* p = std::strrchr(buf, ')'); // the command name may hold spaces and parentheses
    if (p == nullptr)
        return -1;
    unsigned long long utime = 0;
    unsigned long long stime = 0;
    // Fields 3-15: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
    // utime stime.
    if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                    &stime) != 2)
        return -1;
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

inline proc_sample sample_process(long pid) {
    proc_sample s;
    s.rss_kb = read_rss_kb(pid);
    s.fds = count_fds(pid);
    s.cpu_s = read_cpu_s(pid);
    return s;
}

/// This process's user + system CPU in seconds (getrusage).
inline double self_cpu_s() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/// This process's peak resident memory in KiB (getrusage).
inline long self_peak_rss_kb() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/// How long this thread has waited on a run queue, runnable but not running, in seconds
/// (/proc/thread-self/schedstat; -1 when unreadable). High while the CPU use is low means other
/// processes took the cores: the machine, not this program, set the pace.
inline double self_run_delay_s() {
    std::FILE* f = std::fopen("/proc/thread-self/schedstat", "r");
    if (f == nullptr)
        return -1;
    unsigned long long running_ns = 0;
    unsigned long long waiting_ns = 0;
    const int n = std::fscanf(f, "%llu %llu", &running_ns, &waiting_ns);
    std::fclose(f);
    return n == 2 ? static_cast<double>(waiting_ns) / 1e9 : -1;
}

/// Raises the soft limit on open files to the hard limit; returns the soft limit now in force.
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

} // namespace coronet::soak
