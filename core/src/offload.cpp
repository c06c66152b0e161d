// The offload pool: a bounded set of threads for blocking calls, shared by every loop of the
// process. Each thread serves its own lane (the calls of the offload_queues pinned to it, in
// order) before the shared queue of unordered calls.
#include <coronet/core/loop.hpp>
#include <coronet/core/offload.hpp>

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <thread>
#include <vector>

namespace coronet::core {
namespace detail {
namespace {

using job_ptr = std::shared_ptr<offload_job>;

// Hands a finished call back to its loop. The lock orders this against a cancellation: once
// the waiter has abandoned the call, its loop may be gone, so it is not touched.
void deliver(job_ptr job) {
    std::lock_guard<std::mutex> lock(job->mu);
    job->done = true;
    if (job->abandoned)
        return;
    job->lp->post([job] {
        if (!job->abandoned)
            job->waiter.resume();
    });
}

class offload_pool {
public:
    offload_pool()
        : max_(std::clamp<std::size_t>(std::thread::hardware_concurrency(), 4, 64)),
          workers_(max_) {}
    offload_pool(const offload_pool&) = delete;
    offload_pool& operator=(const offload_pool&) = delete;

    ~offload_pool() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stopping_ = true;
            for (auto& w : workers_)
                if (w)
                    w->cv.notify_one();
        }
        for (auto& w : workers_) {
            if (!w)
                continue;
            // exit() called by an offloaded call itself must not join its own thread.
            if (w->thread.get_id() == std::this_thread::get_id())
                w->thread.detach();
            else
                w->thread.join();
        }
    }

    static offload_pool& instance() {
        static offload_pool pool;
        return pool;
    }

    std::size_t size() const noexcept { return max_; }
    std::size_t next_lane() noexcept { return lanes_.fetch_add(1) % max_; }

    void submit(job_ptr job) {
        std::lock_guard<std::mutex> lock(mu_);
        shared_.push_back(std::move(job));
        for (auto& w : workers_) {
            if (w && w->idle) {
                w->idle = false; // claimed: the next call looks for another thread
                w->cv.notify_one();
                return;
            }
        }
        for (std::size_t i = 0; i < max_; ++i) {
            if (!workers_[i]) {
                start(i);
                return;
            }
        }
        // Every thread is busy: the first to finish takes the call.
    }

    void submit(std::size_t lane, job_ptr job) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!workers_[lane])
            start(lane);
        worker& w = *workers_[lane];
        w.own.push_back(std::move(job));
        w.idle = false;
        w.cv.notify_one();
    }

private:
    struct worker {
        std::thread thread;
        std::condition_variable cv;
        std::deque<job_ptr> own;
        bool idle = false;
    };

    // Called with mu_ held.
    void start(std::size_t i) {
        auto w = std::make_unique<worker>();
        worker* self = w.get();
        // Process signals belong to the loops' signalfds, never to a pool thread.
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        try {
            w->thread = std::thread([this, self] { serve(*self); });
        } catch (...) {
            pthread_sigmask(SIG_SETMASK, &old, nullptr);
            throw;
        }
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        workers_[i] = std::move(w);
    }

    job_ptr next(worker& w) {
        std::unique_lock<std::mutex> lock(mu_);
        while (!stopping_ && w.own.empty() && shared_.empty()) {
            w.idle = true;
            w.cv.wait(lock);
        }
        w.idle = false;
        if (stopping_)
            return nullptr;
        std::deque<job_ptr>& from = w.own.empty() ? shared_ : w.own;
        job_ptr job = std::move(from.front());
        from.pop_front();
        return job;
    }

    void serve(worker& w) {
        while (job_ptr job = next(w)) {
            job->execute();
            deliver(std::move(job));
        }
    }

    const std::size_t max_;
    std::mutex mu_;
    std::deque<job_ptr> shared_;
    std::vector<std::unique_ptr<worker>> workers_; // slot i serves lane i; started on demand
    std::atomic<std::size_t> lanes_{0};
    bool stopping_ = false;
};

} // namespace

void submit_offload(std::shared_ptr<offload_job> job, offload_queue* queue) {
    offload_pool& pool = offload_pool::instance();
    if (queue != nullptr)
        pool.submit(queue->lane(), std::move(job));
    else
        pool.submit(std::move(job));
}

bool offload_wait::run_inline_without_loop(offload_job& job) {
    if (loop::current() != nullptr)
        return false;
    job.execute();
    return true;
}

bool offload_wait::start(std::coroutine_handle<> h, stop_token tok,
                         std::shared_ptr<offload_job> job) {
    resume_.waiter = h;
    if (tok.stop_requested()) {
        canceled_ = true;
        return false;
    }
    loop* lp = loop::current();
    resume_.owner = lp;
    job->lp = lp;
    job->waiter = h;
    pending_ = job;
    submit_offload(std::move(job), queue_);
    canceller_.attach(tok.source());
    return true;
}

void offload_wait::on_stop(stop_callback_base* cb) noexcept {
    offload_wait* self = static_cast<canceller*>(cb)->self;
    {
        std::lock_guard<std::mutex> lock(self->pending_->mu);
        // Already done: its resumption is posted and the result wins over the cancel.
        if (self->pending_->done)
            return;
        self->pending_->abandoned = true;
    }
    self->canceled_ = true;
    // From the loop, not from inside request_stop().
    self->resume_.owner->complete_later(self->resume_);
}

bool offload_wait::finish() noexcept {
    canceller_.detach();
    pending_.reset();
    return canceled_;
}

} // namespace detail

offload_queue::offload_queue() : lane_(detail::offload_pool::instance().next_lane()) {}

std::size_t offload_threads() noexcept {
    return detail::offload_pool::instance().size();
}

} // namespace coronet::core
