#pragma once

#include <coronet/core/error.hpp>
#include <coronet/core/export.hpp>
#include <coronet/core/io_op.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/task.hpp>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

namespace coronet::core {

class loop;

/// A lane of the offload pool: calls offloaded through the same `offload_queue` run one at a
/// time, in the order they were made, all on the same pool thread (chosen round-robin when the
/// queue is made, and shared with other queues and with unordered `offload` calls). What one
/// call changes, the next one sees. Use it for state only the blocking calls touch (a
/// directory store's files: a `put` followed by a `get` of the same key, both started before
/// either finished, must see the new value). Cheap to make (no thread, no allocation);
/// thread-safe. A long unordered call on the same thread delays the queue's next call.
class CORONET_CORE_EXPORT offload_queue {
public:
    /// Picks the lane. The first queue (or offload call) of the process sets up the pool's
    /// bookkeeping; no thread starts before a call is made.
    offload_queue();
    offload_queue(const offload_queue&) = delete;
    offload_queue& operator=(const offload_queue&) = delete;

    /// The pool thread this queue's calls run on (0-based, below `offload_threads()`).
    std::size_t lane() const noexcept { return lane_; }

private:
    std::size_t lane_;
};

/// The most threads the offload pool starts: max(4, std::thread::hardware_concurrency()),
/// at most 64. Threads start on demand (an `offload` call that finds none idle starts one) and
/// are joined when the process exits.
CORONET_CORE_EXPORT std::size_t offload_threads() noexcept;

namespace detail {

/// The part of an offloaded call shared by the awaiting coroutine and the pool thread. The
/// pool holds it by shared_ptr, so a caller that stopped waiting leaves it to the pool.
class CORONET_CORE_EXPORT offload_job {
public:
    offload_job() noexcept = default;
    offload_job(const offload_job&) = delete;
    offload_job& operator=(const offload_job&) = delete;
    virtual ~offload_job() = default;
    /// Runs the call on a pool thread (or inline, without a loop); never throws.
    virtual void execute() noexcept = 0;

    loop* lp = nullptr;             ///< where the waiter resumes
    std::coroutine_handle<> waiter; ///< resumed on `lp` once the call is done
    std::mutex mu;                  ///< orders `done` against `abandoned`
    bool done = false;              ///< the call ran (guarded by mu)
    bool abandoned = false;         ///< the waiter left (cancelled): deliver nothing (mu)
};

/// Queues `job` on the pool (on `queue`'s lane when not null). Thread-safe.
CORONET_CORE_EXPORT void submit_offload(std::shared_ptr<offload_job> job, offload_queue* queue);

/// What `offload` yields for a callable returning `R`: `result<R>`, and `result<U>` (not
/// `result<result<U>>`) for a callable that already returns one.
template <class R>
struct offload_result {
    using type = result<R>;
};
template <class U>
struct offload_result<result<U>> {
    using type = result<U>;
};

template <class F>
class offload_state final : public offload_job {
public:
    using fn_result = std::invoke_result_t<F&>;
    explicit offload_state(F fn) : fn_(std::move(fn)) {}

    void execute() noexcept override {
        try {
            if constexpr (std::is_void_v<fn_result>) {
                (*fn_)();
                value_.emplace();
            } else {
                value_.emplace((*fn_)());
            }
        } catch (...) {
            error_ = std::current_exception();
        }
        // The callable's captures die on the thread that ran it, not wherever the job dies.
        fn_.reset();
    }
    typename offload_result<fn_result>::type take() {
        if (error_)
            std::rethrow_exception(error_);
        if constexpr (std::is_void_v<fn_result>)
            return {};
        else
            return std::move(*value_);
    }

private:
    std::optional<F> fn_;
    std::optional<std::conditional_t<std::is_void_v<fn_result>, std::monostate, fn_result>> value_;
    std::exception_ptr error_;
};

/// The non-template half of `offload_awaitable`: submission, cancellation, resumption.
class CORONET_CORE_EXPORT offload_wait {
public:
    offload_wait(const offload_wait&) = delete;
    offload_wait& operator=(const offload_wait&) = delete;

protected:
    offload_wait(offload_queue* q, stop_token tok, bool own_token) noexcept
        : queue_(q), token_(tok), own_token_(own_token) {}
    ~offload_wait() = default;

    /// Runs `job` inline when the thread has no loop; true then (nothing to wait for).
    bool run_inline_without_loop(offload_job& job);
    /// Submits `job` and parks `h`, unless `tok` already stopped (false: do not suspend).
    bool start(std::coroutine_handle<> h, stop_token tok, std::shared_ptr<offload_job> job);
    /// True when the wait was cancelled (the job's outcome is then not read).
    bool finish() noexcept;

    offload_queue* queue_;
    stop_token token_;
    bool own_token_;

private:
    static void on_stop(stop_callback_base* cb) noexcept;
    struct canceller : stop_callback_base {
        explicit canceller(offload_wait* w) noexcept : stop_callback_base(&on_stop), self(w) {}
        offload_wait* self;
    } canceller_{this};
    std::shared_ptr<offload_job> pending_; ///< the submitted call, while it may be cancelled
    io_op resume_;                         ///< carries a cancellation's deferred resumption
    bool canceled_ = false;
};

} // namespace detail

/// The awaitable of `offload`: yields `result<R>` for a callable returning `R` (`result<U>` for
/// one returning `result<U>`). Not copyable or movable; await it once.
template <class F>
class [[nodiscard]] offload_awaitable : private detail::offload_wait {
public:
    using result_type = typename detail::offload_result<std::invoke_result_t<F&>>::type;

    offload_awaitable(offload_queue* q, std::optional<stop_token> tok, F fn)
        : detail::offload_wait(q, tok.value_or(stop_token()), tok.has_value()),
          job_(std::make_shared<detail::offload_state<F>>(std::move(fn))) {}

    bool await_ready() { return run_inline_without_loop(*job_); }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
        return start(h, own_token_ ? token_ : detail::token_of(h), job_);
    }
    result_type await_resume() {
        if (finish())
            return errc::operation_canceled;
        return job_->take();
    }

private:
    std::shared_ptr<detail::offload_state<F>> job_;
};

/// Runs the blocking callable `fn()` on the process-wide offload pool and resumes the awaiting
/// coroutine on its own loop with the outcome: for reading a file, getaddrinfo, a
/// synchronous library call; never for work that waits on the loop itself.
///
/// - Result: `result<R>` holding what `fn` returned (`result<void>` for void; a `result<U>`
///   from `fn` is passed through as is). The only error the await adds is
///   `errc::operation_canceled`.
/// - Exceptions thrown by `fn` are rethrown by the `co_await`, on the loop thread: like a
///   task's, they are for broken invariants, and an error code would lose them.
/// - Cancellation: when the awaiting coroutine's stop token stops, the await ends at once (from
///   the loop) with `operation_canceled`, while `fn` runs on to its end on the pool; its result
///   is then dropped. A call that had already finished when the stop came delivers its result
///   instead. `fn` is never interrupted.
/// - Lifetimes: `fn` is moved to the pool and destroyed there right after it ran, so what it
///   captures must be safe to use and destroy on another thread; capture by value. A caller
///   that may be cancelled must not let `fn` refer to its own frame.
/// - Threads: `fn` runs on a pool thread with every signal blocked; the pool has at most
///   `offload_threads()` threads, started on first use and joined at process exit (a call
///   still running then delays the exit; calls still queued are dropped). Without a loop on
///   the calling thread (nothing to resume on), `fn` runs inline.
/// - Cost: two small allocations (the shared call state, the posted completion) and one
///   wake-up of the loop per call.
template <class F>
offload_awaitable<F> offload(F fn) {
    return offload_awaitable<F>(nullptr, std::nullopt, std::move(fn));
}
/// Like `offload(fn)`, on `q`'s lane: after every call made earlier through `q` finished, and
/// before every later one. `q` must outlive the await.
template <class F>
offload_awaitable<F> offload(offload_queue& q, F fn) {
    return offload_awaitable<F>(&q, std::nullopt, std::move(fn));
}
/// Like `offload(fn)`, cancelled through `tok` instead of the awaiting coroutine's token; pass
/// `stop_token()` for a call whose caller always learns its outcome (a durable write that must
/// be known to have taken effect).
template <class F>
offload_awaitable<F> offload(stop_token tok, F fn) {
    return offload_awaitable<F>(nullptr, tok, std::move(fn));
}
/// Like `offload(q, fn)`, cancelled through `tok` (see `offload(stop_token, fn)`).
template <class F>
offload_awaitable<F> offload(offload_queue& q, stop_token tok, F fn) {
    return offload_awaitable<F>(&q, tok, std::move(fn));
}

} // namespace coronet::core
