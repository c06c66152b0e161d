#include <coronet/core/stream.hpp>

#include <cassert>
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

write_awaitable& stream_op::as_write() noexcept {
    assert(kind_ == kind::write);
    return static_cast<write_awaitable&>(*this);
}

const write_awaitable& stream_op::as_write() const noexcept {
    assert(kind_ == kind::write);
    return static_cast<const write_awaitable&>(*this);
}

std::span<const const_buffer> stream_op::buffers() const noexcept {
    if (kind_ != kind::write)
        return {};
    const write_awaitable& w = as_write();
    return {w.bufs_, w.nbufs_};
}

std::size_t stream_op::bytes_written() const noexcept {
    return kind_ == kind::write ? as_write().written_ : 0;
}

std::size_t stream_op::prepare_write_window() noexcept {
    write_awaitable& w = as_write();
    std::size_t total = 0;
    std::size_t n = 0;
    for (std::size_t i = w.index_; i < w.nbufs_ && n < max_iov; ++i) {
        const_buffer b = w.bufs_[i];
        std::size_t skip = i == w.index_ ? w.offset_ : 0;
        if (b.size() == skip)
            continue;
        w.window_[n].iov_base = const_cast<std::byte*>(b.data() + skip);
        w.window_[n].iov_len = b.size() - skip;
        total += w.window_[n].iov_len;
        ++n;
    }
    *msg = {};
    msg->msg_iov = w.window_;
    msg->msg_iovlen = n;
    return total;
}

bool stream_op::advance_written(std::size_t n) noexcept {
    write_awaitable& w = as_write();
    w.written_ += n;
    while (w.index_ < w.nbufs_) {
        std::size_t left = w.bufs_[w.index_].size() - w.offset_;
        if (n < left) {
            w.offset_ += n;
            return false;
        }
        n -= left;
        ++w.index_;
        w.offset_ = 0;
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
    msg = &header_;
}

write_awaitable::write_awaitable(stream& s, std::span<const const_buffer> bufs) noexcept
    : stream_op(s, kind::write) {
    bufs_ = bufs.data();
    nbufs_ = bufs.size();
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
