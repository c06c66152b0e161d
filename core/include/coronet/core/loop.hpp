#pragma once

#include <coronet/core/export.hpp>
#include <coronet/core/io_op.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/task.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

namespace coronet::core {

/// The I/O backend a loop runs on.
enum class backend_kind : std::uint8_t {
    epoll, ///< readiness (epoll, edge-triggered): try the syscall first, park on EAGAIN
    uring, ///< completions (io_uring through liburing)
};

/// "epoll" or "uring".
CORONET_CORE_EXPORT std::string_view to_string(backend_kind k) noexcept;

/// Options for constructing a loop. Every limit has a safe default.
struct loop_options {
    /// Forces a backend; when empty the loop reads `CORONET_BACKEND` (epoll|uring) and otherwise
    /// probes io_uring and falls back to epoll.
    std::optional<backend_kind> backend;
    /// io_uring submission queue size: how many operations one loop iteration can submit
    /// before a full queue is flushed early.
    unsigned uring_entries = 1024;
    /// io_uring completion queue size. Operations in flight are bounded by it (every pending
    /// operation, including an idle connection's pending read, may post a completion), so it
    /// bounds how many connections one loop serves on io_uring; operations beyond it wait in a
    /// backlog until others complete. 32768 entries cost 512 KiB of ring memory per loop.
    unsigned uring_cq_entries = 32768;
    /// Receive buffers the loop lends, how many and their size: on io_uring a provided-buffer
    /// ring the kernel fills (kernel 5.19+), on epoll a pool of the same shape that a receive
    /// takes from only once the socket has bytes. `stream::receive()` on a tcp_stream (and so
    /// `buffered_reader` while it holds nothing) then reads into a buffer lent by the loop, so
    /// an idle connection holds no receive buffer at all. 0 disables; when every buffer is lent
    /// a receive falls back to the stream's own buffer. 256 x 16 KiB = 4 MiB of address space
    /// per loop, of which only the buffers in use are ever touched on epoll.
    unsigned uring_provided_buffers = 256;
    std::size_t uring_provided_buffer_size = 16 * 1024;
    /// io_uring only: the most buffers the ring may grow to (rounded down to whole chunks of
    /// `uring_provided_buffers`). The kernel takes a buffer as a receive completes, so when more
    /// receives complete in one wait than the ring has buffers (many busy connections), the
    /// rest read again into their own buffers, an allocation and a second round trip each;
    /// after such a wait the ring grows by as many chunks of `uring_provided_buffers` as cover
    /// them, up to this many (4096 x 16 KiB = 64 MiB of address space, touched as busy
    /// connections use it), and keeps that size. The epoll pool does not grow: there a receive
    /// takes a buffer only once the socket has bytes and reads at once, so one that finds the
    /// pool empty costs an allocation (the stream's own buffer), not another round trip.
    unsigned uring_provided_buffers_max = 4096;
    /// Giving memory back after a burst: when the loop is about to wait with nothing ready and
    /// the C heap holds at least this many free bytes (glibc `mallinfo2().fordblks`), it calls
    /// `malloc_trim(0)`, so a server that served 10,000 connections and is quiet again returns
    /// their memory to the system instead of keeping it as free heap. Checked at most every
    /// `heap_trim_interval`; 0 disables. No effect where the allocator is not glibc's (e.g. under
    /// a sanitizer).
    std::size_t heap_trim_threshold = 8 * 1024 * 1024;
    /// The least time between two checks of the free heap (`heap_trim_threshold`).
    std::chrono::milliseconds heap_trim_interval{1'000};
};

/// True if io_uring works here: the ring can be set up and supports every opcode coronet needs.
CORONET_CORE_EXPORT bool uring_available() noexcept;

namespace detail {
class backend;
struct timer_node;
struct loop_access;
} // namespace detail

/// The clock of loop timers and deadlines.
using clock = std::chrono::steady_clock;

/// A unit of work posted to a loop with `loop::post(post_node&)`: the caller owns it (usually
/// inside a larger object or a coroutine frame), so posting allocates nothing. Set `run`, post
/// it, and keep it alive and unchanged until `run` has been called on the loop's thread; `run`
/// may then reuse or destroy it.
struct post_node {
    using run_fn = void (*)(post_node* self) noexcept;
    /// Called once on the target loop's thread.
    run_fn run = nullptr;
    /// The queue's link; the loop owns it while the node is posted.
    post_node* next = nullptr;
};

/// An event loop: one per thread. Drives I/O completions, timers and posted work for every
/// coroutine that runs on it. Not thread-safe, except `post()` and `stop()`, which any thread may
/// call. Construction throws std::system_error when no backend can be set up.
class CORONET_CORE_EXPORT loop {
public:
    explicit loop(loop_options opts = {});
    loop(const loop&) = delete;
    loop& operator=(const loop&) = delete;
    ~loop();

    /// The backend chosen at construction.
    backend_kind backend() const noexcept { return kind_; }

    /// Runs until `stop()` is called (by a coroutine on this loop or another thread).
    void run();
    /// Makes `run()` return after the current iteration. Thread-safe.
    void stop() noexcept;

    /// Queues `n` to run (`n.run(&n)`) on the loop thread during a later iteration, after every
    /// node posted before it from the same thread. Thread-safe, lock-free, no allocation: one
    /// compare-and-swap, plus one wake-up when the loop is blocked in the kernel (an eventfd
    /// write; on io_uring, from a thread running its own io_uring loop, an `IORING_OP_MSG_RING`
    /// submitted with that loop's next batch), so a burst of posts costs at most one wake-up.
    /// The loop must outlive the call; a node still queued when the loop is destroyed is not run.
    void post(post_node& n) noexcept;
    /// Queues `fn` like `post(post_node&)`, in a node allocated for it (one allocation per call).
    /// Thread-safe. `fn` must not throw.
    void post(std::function<void()> fn);

    /// The loop of this thread: the most recently constructed live loop on it, or null.
    static loop* current() noexcept;
    /// True while `run()` is executing.
    bool running() const noexcept { return running_; }

    /// Current time of the loop's clock.
    clock::time_point now() const noexcept { return clock::now(); }

    /// True if this loop lends receive buffers (io_uring with a buffer ring set up, or epoll's
    /// pool; see loop_options::uring_provided_buffers).
    bool has_provided_buffers() const noexcept;
    /// How many receive buffers the loop has to lend now, lent or not (0: none). On io_uring
    /// the ring grows up to loop_options::uring_provided_buffers_max. Loop thread only;
    /// for monitoring and tests.
    std::size_t provided_buffer_count() const noexcept;

    // ---- for stream implementations ---------------------------------------------------------
    /// Completes `op` (runs `op.complete()`, with `op.res` as set) in the next iteration rather
    /// than inline: what a custom `stream` does when an operation finishes synchronously or is
    /// cancelled, so a completion never runs inside the caller's own call.
    void complete_later(detail::io_op& op) noexcept;

private:
    // The operation objects of core's sources reach these through detail::loop_access
    // (core/src/loop_access.hpp), which is not installed.
    friend struct detail::loop_access;

    /// Starts `op`. Returns true if it completed synchronously (epoll only: `op.res` holds the
    /// outcome and no completion will be delivered); false if the completion comes later.
    bool start(detail::io_op& op);
    /// Requests cancellation of a started op; it still completes exactly once (with
    /// -ECANCELED unless it already had a result).
    void cancel(detail::io_op& op) noexcept;
    /// Unregisters and forgets a descriptor before it is closed. No op may be pending on it.
    void remove_fd(detail::fd_state& fds) noexcept;
    /// Timers (sleep_for, deadlines).
    void add_timer(detail::timer_node& t);
    void remove_timer(detail::timer_node& t) noexcept;
    /// The provided buffer that a recv_provided completion with `cqe_flags` filled, and its id.
    std::span<std::byte> provided_buffer(std::uint32_t cqe_flags, unsigned& id) const noexcept;
    /// Gives a provided buffer back to the kernel's ring.
    void recycle_provided_buffer(unsigned id) noexcept;

    void run_ready() noexcept;
    void fire_timers();
    std::optional<clock::duration> next_timeout() const;
    void drain_posted();
    std::optional<clock::duration> trim_heap_if_idle();
    std::optional<clock::duration> next_wait();
    static void on_wake(detail::io_op* op) noexcept;

    backend_kind kind_;
    std::unique_ptr<detail::backend> backend_;
    detail::io_op* ready_head_ = nullptr;
    detail::io_op* ready_tail_ = nullptr;
    bool stop_ = false;
    bool running_ = false;
    loop* previous_current_ = nullptr;

    struct timer_queue;
    std::unique_ptr<timer_queue> timers_;

    struct posted_queue;
    std::unique_ptr<posted_queue> posted_;
    detail::fd_state wake_fd_;
    detail::io_op wake_op_;
    std::uint64_t wake_buf_ = 0;

    std::size_t heap_trim_threshold_;
    clock::duration heap_trim_interval_;
    clock::time_point next_heap_check_{};
};

/// Runs `t` on `lp` until it finishes and returns its value (or rethrows its exception). The
/// loop's posted work and other tasks keep running meanwhile. Must not be called while `lp` is
/// already running.
template <class T>
T run(loop& lp, task<T> t);

namespace detail {
struct run_driver_promise;
struct run_driver {
    using promise_type = run_driver_promise;
    std::coroutine_handle<promise_type> h;
};
struct run_driver_promise : promise_base {
    loop* lp = nullptr;
    run_driver get_return_object() noexcept {
        return {std::coroutine_handle<run_driver_promise>::from_promise(*this)};
    }
    struct stop_loop {
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<run_driver_promise> h) const noexcept {
            if (h.promise().lp->running())
                h.promise().lp->stop();
        }
        void await_resume() const noexcept {}
    };
    stop_loop final_suspend() const noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
};
template <class T>
run_driver drive(task<T>& t, std::optional<std::conditional_t<std::is_void_v<T>, int, T>>& out,
                 std::exception_ptr& err) {
    try {
        if constexpr (std::is_void_v<T>) {
            co_await t;
            out.emplace(0);
        } else {
            out.emplace(co_await t);
        }
    } catch (...) {
        err = std::current_exception();
    }
}
} // namespace detail

template <class T>
T run(loop& lp, task<T> t) {
    std::optional<std::conditional_t<std::is_void_v<T>, int, T>> out;
    std::exception_ptr err;
    detail::run_driver d = detail::drive<T>(t, out, err);
    d.h.promise().lp = &lp;
    d.h.resume();
    // Someone else may stop the loop early; the task's frame must not be destroyed mid-flight.
    while (!d.h.done())
        lp.run();
    d.h.destroy();
    if (err)
        std::rethrow_exception(err);
    if constexpr (!std::is_void_v<T>)
        return std::move(*out);
}

} // namespace coronet::core
