#pragma once

#include <coronet/core/export.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/task.hpp>

#include <atomic>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace coronet::core {

/// Options of a `loop_group`.
struct loop_group_options {
    /// How many loops (one thread each); 0 means `std::thread::hardware_concurrency()` (at
    /// least 1).
    std::size_t loops = 0;
    /// The options every loop is constructed with.
    loop_options loop;
    /// Loop 0 runs on the thread that constructs the group, during `run()`, rather than on a
    /// thread of its own. The group must then be constructed, run and destroyed on that thread
    /// (an io_uring loop is bound to the thread that made it).
    bool use_calling_thread = true;
};

/// What `loop_group::run` runs on each loop: the loop and its index. The task's own stop token
/// (`co_await get_stop_token()`, which `serve` and every operation inherit) fires on the
/// group's `stop()`: a graceful shutdown request, which the body answers by draining.
using loop_body = std::function<task<void>(loop& lp, std::size_t index)>;

/// N event loops on N threads, one per core: the way a coronet server uses every core. Each
/// loop has its own backend and runs on its own thread for the group's lifetime (loop 0 on the
/// calling thread when `use_calling_thread`); a connection belongs to the loop that accepted it
/// for life. Loops reach each other through `loop::post` and `resume_on`.
///
///     core::loop_group group;                       // one loop per core
///     group.run([&](core::loop& lp, std::size_t i) { return serve_one_loop(lp, i); });
///
/// Thread-safety: `size()`, `at()` and `stop()` from any thread; `run()` from one thread at a
/// time (the constructing one when `use_calling_thread`). Construction throws
/// std::system_error when a loop cannot be set up.
class CORONET_CORE_EXPORT loop_group {
public:
    explicit loop_group(loop_group_options opts = {});
    loop_group(const loop_group&) = delete;
    loop_group& operator=(const loop_group&) = delete;
    /// Stops every loop and joins its thread. Must not run while `run()` is executing.
    ~loop_group();

    /// The number of loops.
    std::size_t size() const noexcept { return members_.size(); }
    /// Loop `i` (< size()); it lives as long as the group. Post to it from anywhere; touch it
    /// otherwise only on its own thread.
    loop& at(std::size_t i) const noexcept;

    /// Runs `body(loop, index)` on every loop at once and returns when every body has
    /// finished. When a body throws, the group stops the others (as `stop()` does) and, once
    /// every body finished, rethrows the first exception. Work posted to the loops keeps
    /// running between runs; `body` must stay valid until `run` returns and may be called on
    /// several threads at once.
    void run(const loop_body& body);

    /// Asks every running body to stop: each one's stop token fires on its own loop (through a
    /// post; no allocation). Thread-safe, idempotent; callable from a body, a signal-waiting
    /// coroutine or any thread. A stop while no `run()` is executing makes the next run's
    /// bodies start with their token already stopped.
    void stop() noexcept;

private:
    struct member;
    void thread_main(member& m, const loop_options& opts, std::exception_ptr& error,
                     std::function<void()> constructed);
    void start_body(std::size_t i);
    void body_finished(std::exception_ptr error) noexcept;
    void shut_down() noexcept;

    std::vector<std::unique_ptr<member>> members_;
    bool use_calling_thread_;
    const loop_body* body_ = nullptr;
    std::atomic<bool> quit_{false};
    std::atomic<bool> stopping_{false};
    std::atomic<std::size_t> remaining_{0};
    std::mutex mu_; // guards first_error_ and the wait of run() without a caller loop
    std::condition_variable all_done_;
    std::exception_ptr first_error_;
};

/// `co_await resume_on(target)`: the awaiting coroutine continues on `target`'s thread (at once
/// when it already runs there). The switch is a `loop::post` of a node that lives in the
/// awaiter, so it allocates nothing. `target` must outlive the switch. Stop tokens and the
/// other single-threaded tools (events, scopes) belong to one loop: a coroutine that moved
/// must not be stopped, notified or joined from its old loop any more.
class resume_on {
public:
    explicit resume_on(loop& target) noexcept : target_(&target) {}
    bool await_ready() const noexcept { return loop::current() == target_; }
    void await_suspend(std::coroutine_handle<> h) noexcept {
        node_.waiter = h;
        node_.run = &node::resume;
        target_->post(node_); // the coroutine may run on the target before this returns
    }
    void await_resume() const noexcept {}

private:
    struct node : post_node {
        std::coroutine_handle<> waiter;
        static void resume(post_node* self) noexcept { static_cast<node*>(self)->waiter.resume(); }
    };
    loop* target_;
    node node_;
};

} // namespace coronet::core
