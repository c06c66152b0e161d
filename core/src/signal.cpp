#include <coronet/core/signal.hpp>

#include "loop_access.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace coronet::core {

void block_signals(std::initializer_list<int> signals) {
    sigset_t set;
    sigemptyset(&set);
    for (int s : signals)
        sigaddset(&set, s);
    if (int e = pthread_sigmask(SIG_BLOCK, &set, nullptr); e != 0)
        throw std::system_error(e, std::system_category(), "pthread_sigmask");
}

signal_set::signal_set(loop& lp, std::initializer_list<int> signals) : loop_(lp) {
    sigset_t set;
    sigemptyset(&set);
    for (int s : signals)
        sigaddset(&set, s);
    int flags = SFD_CLOEXEC | (lp.backend() == backend_kind::epoll ? SFD_NONBLOCK : 0);
    fds_.fd = ::signalfd(-1, &set, flags);
    if (fds_.fd < 0)
        throw std::system_error(errno, std::system_category(), "signalfd");
}

signal_set::~signal_set() {
    detail::loop_access::remove_fd(loop_, fds_);
    ::close(fds_.fd);
}

bool signal_set::wait_awaitable::begin(std::coroutine_handle<> h, stop_token tok) {
    waiter = h;
    if (tok.stop_requested()) {
        res = -ECANCELED;
        return false;
    }
    code = detail::op_code::read;
    fds = &set_->fds_;
    buf = &info_;
    len = sizeof info_;
    if (detail::loop_access::start(set_->loop_, *this))
        return false;
    canceller_.attach(tok.source());
    return true;
}

result<int> signal_set::wait_awaitable::await_resume() noexcept {
    canceller_.detach();
    if (res == -ECANCELED)
        return errc::operation_canceled;
    if (res < 0)
        return errno_code(-res);
    return static_cast<int>(info_.ssi_signo);
}

} // namespace coronet::core
