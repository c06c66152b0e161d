#pragma once

#include <coronet/core/endpoint.hpp>
#include <coronet/core/loop.hpp>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace coronet::core::detail {

/// One getaddrinfo call, shared by the awaiting coroutine and the worker thread.
struct dns_job {
    std::string host;
    std::string service;
    int family = 0;
    int gai_error = 0;
    std::vector<endpoint> out;
    /// Runs on the loop thread once the lookup is done (set by the awaiter).
    std::function<void()> on_done;
};

/// A worker thread that runs blocking getaddrinfo calls for one loop and posts each result
/// back to it.
class dns_worker {
public:
    explicit dns_worker(loop& lp);
    ~dns_worker();
    void submit(std::shared_ptr<dns_job> job);

private:
    void run();
    loop& loop_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::shared_ptr<dns_job>> queue_;
    bool stopping_ = false;
    std::thread thread_;
};

} // namespace coronet::core::detail
