#include <coronet/core/stream.hpp>

#include <cerrno>

namespace coronet::core {

stream::~stream() = default;

stream_op::stream_op(stream& s, kind k) noexcept : target_(&s), kind_(k) {}

bool stream_op::begin(std::coroutine_handle<> h, stop_token tok) {
    waiter = h;
    if (tok.stop_requested()) {
        res = -ECANCELED;
        return false;
    }
    if (kind_ == kind::write && target_->broken()) {
        ec = make_error_code(errc::stream_broken);
        return false;
    }
    bool done = false;
    switch (kind_) {
    case kind::read:
        done = target_->start_read(*this);
        break;
    case kind::write:
        done = target_->start_write(*this);
        break;
    case kind::shutdown:
        done = target_->start_shutdown(*this);
        break;
    case kind::receive:
        done = target_->start_receive(*this);
        break;
    }
    if (done)
        return false;
    // Registered after starting: a stop requested during start is seen by the check above or
    // by this attach, which cancels at once.
    canceller_.attach(tok.source());
    return true;
}

void stream_op::on_stop(stop_callback_base* cb) noexcept {
    static_cast<canceller*>(cb)->op->request_cancel();
}

void stream_op::request_cancel() noexcept {
    stop_requested_ = true;
    target_->cancel(*this);
}

std::error_code stream_op::outcome_error() const noexcept {
    if (ec)
        return ec;
    if (res >= 0)
        return {};
    if (res == -ECANCELED)
        return make_error_code(errc::operation_canceled);
    return errno_code(-res);
}

std::size_t stream_op::prepare_write_window() noexcept {
    std::size_t total = 0;
    std::size_t n = 0;
    for (std::size_t i = index_; i < nbufs_ && n < max_iov; ++i) {
        const_buffer b = bufs_[i];
        std::size_t skip = i == index_ ? offset_ : 0;
        if (b.size() == skip)
            continue;
        iov_[n].iov_base = const_cast<std::byte*>(b.data() + skip);
        iov_[n].iov_len = b.size() - skip;
        total += iov_[n].iov_len;
        ++n;
    }
    *msg = {};
    msg->msg_iov = iov_;
    msg->msg_iovlen = n;
    return total;
}

bool stream_op::advance_written(std::size_t n) noexcept {
    written_ += n;
    while (index_ < nbufs_) {
        std::size_t left = bufs_[index_].size() - offset_;
        if (n < left) {
            offset_ += n;
            return false;
        }
        n -= left;
        ++index_;
        offset_ = 0;
    }
    return true;
}

read_awaitable::read_awaitable(stream& s, mutable_buffer b) noexcept : stream_op(s, kind::read) {
    buf = b.data();
    len = b.size();
}

result<std::size_t> read_awaitable::await_resume() noexcept {
    if (auto e = settle())
        return e;
    if (res == 0 && len != 0)
        return errc::end_of_stream;
    return static_cast<std::size_t>(res);
}

write_awaitable::write_awaitable(stream& s, const_buffer b) noexcept
    : stream_op(s, kind::write), single_(b) {
    bufs_ = &single_;
    nbufs_ = 1;
    iov_ = window_;
    msg = &header_;
}

write_awaitable::write_awaitable(stream& s, std::span<const const_buffer> bufs) noexcept
    : stream_op(s, kind::write) {
    bufs_ = bufs.data();
    nbufs_ = bufs.size();
    iov_ = window_;
    msg = &header_;
}

result<void> write_awaitable::await_resume() noexcept {
    if (auto e = settle()) {
        if (written_ > 0)
            target_->mark_broken();
        return e;
    }
    return {};
}

shutdown_awaitable::shutdown_awaitable(stream& s) noexcept : stream_op(s, kind::shutdown) {}

result<void> shutdown_awaitable::await_resume() noexcept {
    if (auto e = settle())
        return e;
    return {};
}

receive_awaitable::receive_awaitable(stream& s) noexcept : stream_op(s, kind::receive) {}

result<std::span<const std::byte>> receive_awaitable::await_resume() noexcept {
    if (auto e = settle())
        return e;
    if (res == 0)
        return errc::end_of_stream;
    return std::span<const std::byte>(static_cast<const std::byte*>(buf),
                                      static_cast<std::size_t>(res));
}

bool stream::start_receive(stream_op& op) {
    if (!lend_buf_)
        lend_buf_ = std::make_unique<std::byte[]>(lend_size);
    op.buf = lend_buf_.get();
    op.len = lend_size;
    return start_read(op);
}

} // namespace coronet::core
