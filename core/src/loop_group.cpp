#include <coronet/core/loop_group.hpp>

#include <coronet/core/scope.hpp>

#include <latch>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>

namespace coronet::core {

struct loop_group::member {
    loop* lp = nullptr;
    std::optional<loop> own; // loop 0 when it runs on the calling thread
    std::thread thread;
    // The stop request travels as a node of this member, so stop() allocates nothing; `queued`
    // keeps it from being posted twice before it ran.
    struct stop_node : post_node {
        member* m = nullptr;
        static void fire(post_node* self) noexcept {
            member& m = *static_cast<stop_node*>(self)->m;
            m.stop_queued.store(false, std::memory_order_release);
            if (m.bodies)
                m.bodies->request_stop();
        }
    } stop;
    std::atomic<bool> stop_queued{false};
    // The loop thread's own: the scope the current run's body is a child of.
    std::optional<task_scope> bodies;
};

namespace {

std::size_t loop_count(std::size_t asked) {
    if (asked != 0)
        return asked;
    const unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1 : hw;
}

// The body of loop `index`, then the group's bookkeeping; the scope that owns it outlives it.
task<void> run_body(const loop_body& body, loop& lp, std::size_t index,
                    std::function<void(std::exception_ptr)> finished) {
    std::exception_ptr error;
    try {
        co_await body(lp, index);
    } catch (...) {
        error = std::current_exception();
    }
    // Moved, not copied: this thread must be done with the exception before the group learns
    // that the body ended (another thread rethrows it; ThreadSanitizer cannot see libstdc++'s
    // own reference count).
    finished(std::move(error));
}

} // namespace

loop_group::loop_group(loop_group_options opts) : use_calling_thread_(opts.use_calling_thread) {
    const std::size_t n = loop_count(opts.loops);
    for (std::size_t i = 0; i < n; ++i) {
        members_.push_back(std::make_unique<member>());
        members_.back()->stop.m = members_.back().get();
        members_.back()->stop.run = &member::stop_node::fire;
    }
    std::size_t first_thread = 0;
    if (use_calling_thread_) {
        members_[0]->own.emplace(opts.loop);
        members_[0]->lp = &*members_[0]->own;
        first_thread = 1;
    }
    // Each loop is constructed on the thread that runs it; wait for all of them.
    std::vector<std::exception_ptr> errors(n);
    std::latch constructed(static_cast<std::ptrdiff_t>(n - first_thread));
    for (std::size_t i = first_thread; i < n; ++i) {
        members_[i]->thread = std::thread([this, i, &opts, &errors, &constructed] {
            thread_main(*members_[i], opts.loop, errors[i],
                        [&constructed] { constructed.count_down(); });
        });
    }
    constructed.wait();
    for (auto& e : errors) {
        if (!e)
            continue;
        shut_down();
        std::rethrow_exception(e);
    }
}

void loop_group::thread_main(member& m, const loop_options& opts, std::exception_ptr& error,
                             std::function<void()> constructed) {
    std::optional<loop> lp;
    try {
        lp.emplace(opts);
        m.lp = &*lp;
    } catch (...) {
        error = std::current_exception();
    }
    constructed(); // `opts` and `error` may be gone after this
    if (!lp)
        return;
    while (!quit_.load(std::memory_order_acquire))
        lp->run();
    m.bodies.reset();
}

loop_group::~loop_group() {
    shut_down();
}

void loop_group::shut_down() noexcept {
    quit_.store(true, std::memory_order_release);
    for (auto& m : members_) {
        if (m->thread.joinable()) {
            if (m->lp != nullptr)
                m->lp->stop();
            m->thread.join();
        }
    }
    for (auto& m : members_)
        m->bodies.reset();
    // Loop 0 first: its inbox may still hold the members' stop nodes.
    for (auto& m : members_)
        m->own.reset();
    members_.clear();
}

loop& loop_group::at(std::size_t i) const noexcept {
    return *members_[i]->lp;
}

void loop_group::run(const loop_body& body) {
    if (remaining_.load(std::memory_order_acquire) != 0)
        throw std::logic_error("loop_group::run: already running");
    body_ = &body;
    first_error_ = nullptr;
    remaining_.store(members_.size(), std::memory_order_release);
    for (std::size_t i = use_calling_thread_ ? 1 : 0; i < members_.size(); ++i)
        members_[i]->lp->post([this, i] { start_body(i); });
    if (use_calling_thread_) {
        loop& lp = *members_[0]->lp;
        lp.post([this] { start_body(0); });
        // The last body to finish stops this loop.
        while (remaining_.load(std::memory_order_acquire) != 0)
            lp.run();
    } else {
        std::unique_lock<std::mutex> lock(mu_);
        all_done_.wait(lock, [this] { return remaining_.load() == 0; });
    }
    stopping_.store(false, std::memory_order_release);
    std::exception_ptr error;
    {
        std::lock_guard<std::mutex> lock(mu_);
        error = std::exchange(first_error_, nullptr);
    }
    if (error)
        std::rethrow_exception(error);
}

void loop_group::start_body(std::size_t i) {
    member& m = *members_[i];
    m.bodies.emplace();
    m.bodies->set_error_handler([](std::exception_ptr) {}); // run_body catches everything
    // A stop() that came before this body existed: it starts stopped.
    if (stopping_.load(std::memory_order_acquire))
        m.bodies->request_stop();
    m.bodies->spawn(
        run_body(*body_, *m.lp, i, [this](std::exception_ptr e) { body_finished(std::move(e)); }));
}

void loop_group::body_finished(std::exception_ptr error) noexcept {
    if (error) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (!first_error_)
                first_error_ = std::move(error);
            error = nullptr; // a later error is dropped here, under the lock
        }
        stop();
    }
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) != 1)
        return;
    if (use_calling_thread_) {
        members_[0]->lp->stop();
    } else {
        std::lock_guard<std::mutex> lock(mu_);
        all_done_.notify_all();
    }
}

void loop_group::stop() noexcept {
    stopping_.store(true, std::memory_order_release);
    for (auto& m : members_) {
        if (!m->stop_queued.exchange(true, std::memory_order_acq_rel))
            m->lp->post(m->stop);
    }
}

} // namespace coronet::core
