#include <testing/process.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

extern char** environ;

namespace coronet::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

void reset_signals_in_child() noexcept {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGPIPE, SIG_DFL);
}

int pidfd_open(pid_t pid) noexcept {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

} // namespace

child_process::child_process(child_process&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)), status_(o.status_) {}

child_process& child_process::operator=(child_process&& o) noexcept {
    if (this != &o) {
        kill_and_reap();
        pid_ = std::exchange(o.pid_, -1);
        status_ = o.status_;
    }
    return *this;
}

child_process::~child_process() {
    kill_and_reap();
}

void child_process::kill_and_reap() noexcept {
    if (pid_ <= 0)
        return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
}

child_process child_process::run_forked(const std::function<int()>& body) {
    pid_t pid = ::fork();
    if (pid < 0)
        throw std::system_error(errno, std::system_category(), "fork");
    if (pid == 0) {
        reset_signals_in_child();
        int code = 127;
        try {
            code = body();
        } catch (...) {
            code = 127;
        }
        ::_exit(code);
    }
    return child_process(pid);
}

child_process child_process::spawn(const std::vector<std::string>& argv) {
    return spawn_with(argv, false);
}

child_process child_process::spawn_detached_io(const std::vector<std::string>& argv) {
    return spawn_with(argv, true);
}

child_process child_process::spawn_with(const std::vector<std::string>& argv, bool null_io) {
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawn_file_actions_t io;
    posix_spawn_file_actions_init(&io);
    if (null_io) {
        posix_spawn_file_actions_addopen(&io, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&io, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&io, 2, "/dev/null", O_WRONLY, 0);
    }
    pid_t pid = -1;
    int e = ::posix_spawnp(&pid, args[0], &io, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&io);
    posix_spawnattr_destroy(&attr);
    if (e != 0)
        throw std::system_error(e, std::system_category(), "posix_spawnp");
    return child_process(pid);
}

bool child_process::running() {
    if (pid_ <= 0)
        return false;
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
        status_ = st;
        pid_ = -1;
        return false;
    }
    return r == 0;
}

bool child_process::signal(int sig) noexcept {
    return pid_ > 0 && ::kill(pid_, sig) == 0;
}

std::optional<int> child_process::wait_exit(milliseconds timeout) {
    if (pid_ <= 0)
        return status_;
    const auto deadline = steady_clock::now() + timeout;
    int pfd = pidfd_open(pid_);
    for (;;) {
        int st = 0;
        pid_t r = ::waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            if (pfd >= 0)
                ::close(pfd);
            status_ = st;
            pid_ = -1;
            return st;
        }
        auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
        if (left.count() <= 0)
            break;
        if (pfd >= 0) {
            ::pollfd p{pfd, POLLIN, 0};
            ::poll(&p, 1, static_cast<int>(left.count()));
        } else {
            // No pidfd (old kernel): poll the exit status at a short interval.
            ::poll(nullptr, 0, left.count() < 10 ? static_cast<int>(left.count()) : 10);
        }
    }
    if (pfd >= 0)
        ::close(pfd);
    return std::nullopt;
}

std::optional<milliseconds> child_process::cpu_time() const {
    if (pid_ <= 0)
        return std::nullopt;
    std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
    std::string line;
    if (!std::getline(in, line))
        return std::nullopt;
    // The command name (field 2) is in parentheses and may contain spaces: skip past it.
    auto close = line.rfind(')');
    if (close == std::string::npos)
        return std::nullopt;
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    // Fields 3..13, then utime (14) and stime (15).
    for (int i = 3; i <= 13; ++i)
        if (!(rest >> field))
            return std::nullopt;
    unsigned long long utime = 0;
    unsigned long long stime = 0;
    if (!(rest >> utime >> stime))
        return std::nullopt;
    const long hz = ::sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        return std::nullopt;
    return milliseconds(
        static_cast<long long>((utime + stime) * 1000 / static_cast<unsigned long long>(hz)));
}

} // namespace coronet::testing
