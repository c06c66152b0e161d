#pragma once

// Child processes for tests: forked (running a function of this test binary) or spawned (an
// executable, with a clean signal mask). Every wait is bounded.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace coronet::testing {

/// A child process owned by a test. The destructor kills (SIGKILL) and reaps a child that is
/// still running, so a failing test leaves no process behind. Move-only.
class child_process {
public:
    child_process() noexcept = default;
    child_process(child_process&& o) noexcept;
    child_process& operator=(child_process&& o) noexcept;
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;
    ~child_process();

    /// fork()s; the child unblocks every signal, restores SIGTERM/SIGINT/SIGPIPE to their
    /// default action, runs `body` and _exit()s with its return value (127 if it throws). Fork
    /// before the test creates loops or threads. The body must not use doctest assertions.
    static child_process run_forked(const std::function<int()>& body);

    /// posix_spawnp()s `argv` with an empty signal mask and default SIGTERM/SIGINT/SIGPIPE
    /// (POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF), so a test binary that blocked signals
    /// for a signal_set does not hand the block on. Throws std::system_error on failure.
    static child_process spawn(const std::vector<std::string>& argv);
    /// As `spawn`, with stdin, stdout and stderr on /dev/null: for a server that logs to a file.
    /// Should the test binary die without reaping it, it then holds no pipe of the test runner
    /// open (ctest would wait for that pipe until the test's timeout).
    static child_process spawn_detached_io(const std::vector<std::string>& argv);

    pid_t pid() const noexcept { return pid_; }
    /// True until the child was reaped (it may already be a zombie).
    bool valid() const noexcept { return pid_ > 0; }
    /// True while the child has not exited (reaps it if it has).
    bool running();
    /// Sends `sig`; returns false if the child is gone.
    bool signal(int sig) noexcept;
    /// Waits up to `timeout` for the child to exit and reaps it. Returns the waitpid() status,
    /// or nothing on timeout (the child then still runs).
    std::optional<int> wait_exit(std::chrono::milliseconds timeout);
    /// The CPU time (user + system) the child has used so far, from /proc/<pid>/stat; nothing
    /// if it cannot be read.
    std::optional<std::chrono::milliseconds> cpu_time() const;

private:
    explicit child_process(pid_t pid) noexcept : pid_(pid) {}
    static child_process spawn_with(const std::vector<std::string>& argv, bool null_io);
    void kill_and_reap() noexcept;
    pid_t pid_ = -1;
    std::optional<int> status_;
};

} // namespace coronet::testing
