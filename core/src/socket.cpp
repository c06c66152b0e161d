#include <coronet/core/socket.hpp>

#include "loop_access.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace coronet::core {
namespace {

// epoll needs non-blocking descriptors; io_uring arms its own poll and works with blocking ones.
void fit_blocking_mode(loop& lp, int fd) noexcept {
    int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0)
        return;
    int want = lp.backend() == backend_kind::epoll ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    if (want != fl)
        ::fcntl(fd, F_SETFL, want);
}

bool is_tcp(int fd) noexcept {
    ::sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<::sockaddr*>(&ss), &len) != 0)
        return false;
    return ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
}

} // namespace

// ---- tcp_stream --------------------------------------------------------------------------

tcp_stream::tcp_stream(loop& lp, int fd) noexcept : loop_(&lp) {
    fds_.fd = fd;
    fit_blocking_mode(lp, fd);
}

tcp_stream::tcp_stream(tcp_stream&& o) noexcept
    : lent_id_(std::exchange(o.lent_id_, no_lent)), loop_(std::exchange(o.loop_, nullptr)) {
    // The epoll registration points at the old fd_state; drop it and re-register lazily.
    if (loop_ != nullptr)
        detail::loop_access::remove_fd(*loop_, o.fds_);
    fds_.fd = std::exchange(o.fds_.fd, -1);
}

tcp_stream& tcp_stream::operator=(tcp_stream&& o) noexcept {
    if (this != &o) {
        close();
        if (loop_ != nullptr)
            return_lent();
        loop_ = std::exchange(o.loop_, nullptr);
        lent_id_ = std::exchange(o.lent_id_, no_lent);
        if (loop_ != nullptr)
            detail::loop_access::remove_fd(*loop_, o.fds_);
        fds_.fd = std::exchange(o.fds_.fd, -1);
    }
    return *this;
}

tcp_stream::~tcp_stream() {
    close();
    if (loop_ != nullptr)
        return_lent();
}

void tcp_stream::return_lent() noexcept {
    if (lent_id_ == no_lent)
        return;
    detail::loop_access::recycle_provided_buffer(*loop_, lent_id_);
    lent_id_ = no_lent;
}

void tcp_stream::release_receive_buffer() noexcept {
    if (loop_ != nullptr)
        return_lent();
    stream::release_receive_buffer();
}

bool tcp_stream::lends_receive_buffers() const noexcept {
    return fds_.fd >= 0 && loop_ != nullptr && loop_->has_provided_buffers();
}

bool tcp_stream::batches_writes() const noexcept {
    return fds_.fd >= 0 && loop_ != nullptr && loop_->backend() == backend_kind::uring;
}

result<std::size_t> tcp_stream::try_write(const_buffer buf) noexcept {
    if (fds_.fd < 0)
        return errc::not_open;
    if (broken())
        return errc::stream_broken;
    if (buf.empty())
        return std::size_t{0};
    for (;;) {
        ssize_t n = ::send(fds_.fd, buf.data(), buf.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0)
            return static_cast<std::size_t>(n);
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return std::size_t{0};
        return errno_code(errno);
    }
}

// The lent buffer stays lent: a reader may still hold views into it (a session abandoned by a
// write timeout closes its stream between two receives). It goes back at the next read or
// receive, release_receive_buffer() or destruction.
void tcp_stream::close() noexcept {
    if (fds_.fd < 0)
        return;
    if (loop_ != nullptr)
        detail::loop_access::remove_fd(*loop_, fds_);
    ::close(fds_.fd);
    fds_.fd = -1;
}

result<void> tcp_stream::set_nodelay(bool on) noexcept {
    if (fds_.fd < 0)
        return errc::not_open;
    if (!is_tcp(fds_.fd))
        return {};
    int v = on ? 1 : 0;
    if (::setsockopt(fds_.fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) != 0)
        return errno_code(errno);
    return {};
}

result<endpoint> tcp_stream::local_endpoint() const noexcept {
    endpoint e;
    socklen_t len = endpoint::capacity();
    if (::getsockname(fds_.fd, e.data(), &len) != 0)
        return errno_code(errno);
    e.set_size(len);
    return e;
}

result<endpoint> tcp_stream::remote_endpoint() const noexcept {
    endpoint e;
    socklen_t len = endpoint::capacity();
    if (::getpeername(fds_.fd, e.data(), &len) != 0)
        return errno_code(errno);
    e.set_size(len);
    return e;
}

bool tcp_stream::start_read(stream_op& op) {
    if (fds_.fd < 0) {
        op.ec = make_error_code(errc::not_open);
        return true;
    }
    return_lent();
    op.code = detail::op_code::recv;
    op.fds = &fds_;
    op.flags = 0;
    op.on_complete = nullptr;
    return detail::loop_access::start(*loop_, op);
}

bool tcp_stream::start_receive(stream_op& op) {
    if (fds_.fd < 0 || !loop_->has_provided_buffers())
        return stream::start_receive(op);
    return_lent();
    op.code = detail::op_code::recv_provided;
    op.fds = &fds_;
    op.flags = 0;
    op.on_complete = &on_receive_done;
    if (!detail::loop_access::start(*loop_, op))
        return false;
    op.on_complete = nullptr; // done at once (epoll): no completion will come
    return adopt_received(op);
}

void tcp_stream::on_receive_done(detail::io_op* io) noexcept {
    auto& op = static_cast<stream_op&>(*io);
    op.on_complete = nullptr;
    if (static_cast<tcp_stream&>(op.target()).adopt_received(op))
        op.finish();
}

// A recv_provided's outcome: keep the buffer it filled as lent, or give an unused one back.
// True when the receive is done; false when it went on as a read into the stream's own buffer
// (every provided buffer was lent: -ENOBUFS) and completes later.
bool tcp_stream::adopt_received(stream_op& op) noexcept {
    if (op.res == -ENOBUFS)
        return stream::start_receive(op);
    unsigned id = no_lent;
    std::span<std::byte> b = detail::loop_access::provided_buffer(*loop_, op.cqe_flags, id);
    if (!b.empty()) {
        op.buf = b.data();
        op.len = b.size();
        if (op.res > 0)
            lent_id_ = id;
        else
            detail::loop_access::recycle_provided_buffer(*loop_, id);
    }
    return true;
}

bool tcp_stream::start_write(stream_op& op) {
    if (fds_.fd < 0) {
        op.ec = make_error_code(errc::not_open);
        return true;
    }
    op.owner = loop_;
    op.fds = &fds_;
    op.flags = 0;
    op.on_complete = &on_write_step;
    if (!write_more(op))
        return false;
    op.on_complete = nullptr;
    return true;
}

// Issues sendmsg for the next window until everything is written (res = 0), an error ends it
// (res < 0), or a write must wait for its completion (returns false).
bool tcp_stream::write_more(stream_op& op) {
    for (;;) {
        if (op.prepare_write_window() == 0) {
            op.res = 0;
            return true;
        }
        if (op.msg->msg_iovlen == 1) {
            // One contiguous buffer: plain send is cheaper than sendmsg.
            op.code = detail::op_code::send;
            op.buf = op.msg->msg_iov[0].iov_base;
            op.len = op.msg->msg_iov[0].iov_len;
        } else {
            op.code = detail::op_code::sendmsg;
        }
        if (!detail::loop_access::start(*op.owner, op))
            return false;
        if (op.res < 0)
            return true;
        if (op.advance_written(static_cast<std::size_t>(op.res))) {
            op.res = 0;
            return true;
        }
    }
}

void tcp_stream::on_write_step(detail::io_op* io) noexcept {
    auto& op = static_cast<stream_op&>(*io);
    if (op.res < 0)
        return op.finish();
    if (op.advance_written(static_cast<std::size_t>(op.res)))
        return op.finish(0);
    // A stop that came while this step was completing may have missed it (the cancel found
    // nothing in flight): honour it here rather than start the next window.
    if (op.stop_requested())
        return op.finish(-ECANCELED);
    if (write_more(op))
        op.finish();
}

bool tcp_stream::start_shutdown(stream_op& op) {
    if (fds_.fd < 0) {
        op.ec = make_error_code(errc::not_open);
        return true;
    }
    op.res = ::shutdown(fds_.fd, SHUT_WR) == 0 ? 0 : -errno;
    if (op.res == -ENOTCONN)
        op.res = 0;
    return true;
}

void tcp_stream::cancel(stream_op& op) noexcept {
    if (loop_ != nullptr)
        detail::loop_access::cancel(*loop_, op);
}

namespace {
struct connect_op : detail::io_op {
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
        waiter = h;
        stop_token tok = detail::token_of(h);
        if (tok.stop_requested()) {
            res = -ECANCELED;
            return false;
        }
        if (detail::loop_access::start(*owner, *this))
            return false;
        canceller.attach(tok.source());
        return true;
    }
    int await_resume() noexcept {
        canceller.detach();
        return res;
    }
    detail::op_canceller canceller{this};
};

task<result<tcp_stream>> connect_impl(endpoint ep) {
    loop& lp = *loop::current();
    int type =
        SOCK_STREAM | SOCK_CLOEXEC | (lp.backend() == backend_kind::epoll ? SOCK_NONBLOCK : 0);
    int fd = ::socket(ep.family(), type, 0);
    if (fd < 0)
        co_return errno_code(errno);
    tcp_stream s(lp, fd);
    connect_op op;
    detail::fd_state fds;
    fds.fd = fd;
    op.owner = &lp;
    op.code = detail::op_code::connect;
    op.fds = &fds;
    op.addr = const_cast<::sockaddr*>(ep.data());
    op.addrlen = ep.size();
    int r = co_await op;
    detail::loop_access::remove_fd(lp, fds);
    if (r == -ECANCELED)
        co_return errc::operation_canceled;
    if (r < 0)
        co_return errno_code(-r);
    if (ep.is_ip())
        (void)s.set_nodelay(true);
    co_return std::move(s);
}
} // namespace

task<result<tcp_stream>> tcp_stream::connect(endpoint ep) {
    return connect_impl(std::move(ep));
}

// ---- tcp_listener ------------------------------------------------------------------------

tcp_listener::tcp_listener(tcp_listener&& o) noexcept
    : loop_(std::exchange(o.loop_, nullptr)), opts_(o.opts_) {
    if (loop_ != nullptr)
        detail::loop_access::remove_fd(*loop_, o.fds_);
    fds_.fd = std::exchange(o.fds_.fd, -1);
}

tcp_listener& tcp_listener::operator=(tcp_listener&& o) noexcept {
    if (this != &o) {
        close();
        loop_ = std::exchange(o.loop_, nullptr);
        opts_ = o.opts_;
        if (loop_ != nullptr)
            detail::loop_access::remove_fd(*loop_, o.fds_);
        fds_.fd = std::exchange(o.fds_.fd, -1);
    }
    return *this;
}

tcp_listener::~tcp_listener() {
    close();
}

void tcp_listener::close() noexcept {
    if (fds_.fd < 0)
        return;
    if (loop_ != nullptr)
        detail::loop_access::remove_fd(*loop_, fds_);
    ::close(fds_.fd);
    fds_.fd = -1;
}

result<tcp_listener> tcp_listener::bind(loop& lp, const endpoint& ep, listen_options opts) {
    int type =
        SOCK_STREAM | SOCK_CLOEXEC | (lp.backend() == backend_kind::epoll ? SOCK_NONBLOCK : 0);
    int fd = ::socket(ep.family(), type, 0);
    if (fd < 0)
        return errno_code(errno);
    auto fail = [fd] {
        int e = errno;
        ::close(fd);
        return errno_code(e);
    };
    int one = 1;
    if (ep.is_ip()) {
        if (opts.reuse_address && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
            return fail();
        if (opts.reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
            return fail();
        if (ep.family() == AF_INET6) {
            int v6 = opts.v6_only ? 1 : 0;
            if (::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof v6) != 0)
                return fail();
        }
    }
    if (::bind(fd, ep.data(), ep.size()) != 0)
        return fail();
    if (::listen(fd, opts.backlog) != 0)
        return fail();
    tcp_listener l;
    l.loop_ = &lp;
    l.fds_.fd = fd;
    l.opts_ = opts;
    return l;
}

result<endpoint> tcp_listener::local_endpoint() const noexcept {
    endpoint e;
    socklen_t len = endpoint::capacity();
    if (::getsockname(fds_.fd, e.data(), &len) != 0)
        return errno_code(errno);
    e.set_size(len);
    return e;
}

accept_awaitable::accept_awaitable(tcp_listener& l) noexcept : listener_(&l) {}

bool accept_awaitable::begin(std::coroutine_handle<> h, stop_token tok) {
    waiter = h;
    if (tok.stop_requested()) {
        res = -ECANCELED;
        return false;
    }
    if (listener_->fds_.fd < 0) {
        res = -EBADF;
        return false;
    }
    code = detail::op_code::accept;
    fds = &listener_->fds_;
    addr = nullptr;
    if (detail::loop_access::start(*listener_->loop_, *this))
        return false;
    canceller_.attach(tok.source());
    return true;
}

result<tcp_stream> accept_awaitable::await_resume() noexcept {
    canceller_.detach();
    if (res == -ECANCELED)
        return errc::operation_canceled;
    if (res < 0)
        return errno_code(-res);
    tcp_stream s(*listener_->loop_, res);
    if (listener_->opts_.nodelay)
        (void)s.set_nodelay(true);
    return s;
}

} // namespace coronet::core
