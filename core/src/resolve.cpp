#include <coronet/core/loop.hpp>
#include <coronet/core/resolve.hpp>

#include "dns_worker.hpp"

#include <netdb.h>
#include <signal.h>

#include <cerrno>

namespace coronet::core {
namespace detail {

dns_worker::dns_worker(loop& lp) : loop_(lp) {
    // The worker must not take process signals meant for the loop's signalfd.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    thread_ = std::thread([this] { run(); });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

dns_worker::~dns_worker() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
    }
    cv_.notify_one();
    thread_.join();
}

void dns_worker::submit(std::shared_ptr<dns_job> job) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        queue_.push_back(std::move(job));
    }
    cv_.notify_one();
}

void dns_worker::run() {
    for (;;) {
        std::shared_ptr<dns_job> job;
        {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (stopping_)
                return;
            job = std::move(queue_.front());
            queue_.pop_front();
        }
        ::addrinfo hints{};
        hints.ai_family = job->family;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
        ::addrinfo* res = nullptr;
        job->gai_error = ::getaddrinfo(job->host.c_str(), job->service.c_str(), &hints, &res);
        if (job->gai_error == 0) {
            for (auto* ai = res; ai != nullptr; ai = ai->ai_next)
                job->out.emplace_back(ai->ai_addr, ai->ai_addrlen);
            ::freeaddrinfo(res);
        }
        loop_.post([job] { job->on_done(); });
    }
}

namespace {
struct resolve_awaitable {
    std::shared_ptr<dns_job> job;
    loop* lp;
    io_op resume_op; // carries a cancellation's deferred resumption
    bool canceled = false;
    bool done = false;

    struct canceller : stop_callback_base {
        explicit canceller(resolve_awaitable* s) noexcept : stop_callback_base(&fire), self(s) {}
        static void fire(stop_callback_base* cb) noexcept {
            auto* self = static_cast<canceller*>(cb)->self;
            self->canceled = true;
            self->job->on_done = [] {};
            self->lp->complete_later(self->resume_op);
        }
        resolve_awaitable* self;
    } cancel_cb{this};

    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
        stop_token tok = token_of(h);
        resume_op.waiter = h;
        if (tok.stop_requested()) {
            canceled = true;
            return false;
        }
        job->on_done = [this] {
            cancel_cb.detach();
            resume_op.waiter.resume();
        };
        lp->dns().submit(job);
        cancel_cb.attach(tok.source());
        return true;
    }
    result<std::vector<endpoint>> await_resume() {
        cancel_cb.detach();
        if (canceled)
            return errc::operation_canceled;
        if (job->gai_error != 0)
            return errc::resolve_failed;
        if (job->out.empty())
            return errc::resolve_failed;
        return std::move(job->out);
    }
};
} // namespace
} // namespace detail

task<result<std::vector<endpoint>>> resolve(std::string host, std::uint16_t port, int family) {
    // Numeric addresses need no worker round trip.
    if (auto ep = endpoint::from_ip(host, port); ep && (family == 0 || ep->family() == family))
        co_return std::vector<endpoint>{*ep};
    auto job = std::make_shared<detail::dns_job>();
    job->host = std::move(host);
    job->service = std::to_string(port);
    job->family = family;
    detail::resolve_awaitable aw{job, loop::current(), {}};
    co_return co_await aw;
}

} // namespace coronet::core
