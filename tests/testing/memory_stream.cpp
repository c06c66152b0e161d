#include <testing/memory_stream.hpp>

#include <coronet/core/error.hpp>
#include <coronet/core/timer.hpp>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <deque>

namespace coronet::testing {

namespace detail {

/// One direction of a connection. Shared by both ends so that either may go away first.
struct memory_pipe {
    explicit memory_pipe(core::loop& l) noexcept : lp(&l) {}

    core::loop* lp;
    std::deque<std::byte> data;
    std::size_t limit = memory_stream::unlimited;
    std::size_t max_read = memory_stream::unlimited;
    core::stream_op* reader = nullptr; ///< a read waiting for bytes or EOF
    core::stream_op* writer = nullptr; ///< a write waiting for room below `limit`
    core::detail::io_op::complete_fn continue_write = nullptr; ///< the writing end's next step
    bool eof = false;         ///< the writing end shut down or closed
    bool reader_gone = false; ///< the reading end closed

    std::size_t room() const noexcept { return limit > data.size() ? limit - data.size() : 0; }
};

} // namespace detail

namespace {

using detail::memory_pipe;

void schedule_write_step(memory_pipe& p, core::stream_op& op, core::detail::io_op::complete_fn fn) {
    op.on_complete = fn;
    p.lp->complete_later(op);
}

// Wakes a writer that waits for room (or for the news that nobody reads any more). The write
// continues from the loop, never inside the reader's coroutine.
void wake_writer(memory_pipe& p) noexcept {
    if (p.writer == nullptr || (p.room() == 0 && !p.reader_gone))
        return;
    core::stream_op* w = std::exchange(p.writer, nullptr);
    schedule_write_step(p, *w, p.continue_write);
}

std::size_t take(memory_pipe& p, core::stream_op& op) noexcept {
    std::size_t n = std::min({op.len, p.max_read, p.data.size()});
    auto first = p.data.begin();
    auto last = first + static_cast<std::ptrdiff_t>(n);
    std::copy(first, last, static_cast<std::byte*>(op.buf));
    p.data.erase(first, last);
    wake_writer(p);
    return n;
}

// Completes a waiting read (from the loop) once there are bytes or EOF.
void deliver(memory_pipe& p) noexcept {
    if (p.reader == nullptr || (p.data.empty() && !p.eof))
        return;
    core::stream_op* r = std::exchange(p.reader, nullptr);
    r->res = static_cast<std::int32_t>(take(p, *r));
    r->on_complete = nullptr;
    p.lp->complete_later(*r);
}

} // namespace

memory_stream::memory_stream(core::loop& lp, std::shared_ptr<detail::memory_pipe> in,
                             std::shared_ptr<detail::memory_pipe> out)
    : loop_(&lp), in_(std::move(in)), out_(std::move(out)) {
    out_->continue_write = &on_write_step;
}

memory_stream::~memory_stream() {
    close();
}

void memory_stream::set_max_read(std::size_t n) noexcept {
    in_->max_read = n == 0 ? 1 : n;
}

void memory_stream::set_write_buffer_limit(std::size_t n) noexcept {
    out_->limit = n == 0 ? 1 : n;
}

bool memory_stream::read_pending() const noexcept {
    return in_->reader != nullptr;
}

std::size_t memory_stream::readable() const noexcept {
    return in_->data.size();
}

bool memory_stream::peer_shut_down() const noexcept {
    return in_->eof;
}

void memory_stream::close() noexcept {
    if (!open_)
        return;
    // The stream contract: no operation of this end may be pending when it closes.
    assert(in_->reader == nullptr && pending_write_ == nullptr);
    open_ = false;
    in_->reader_gone = true;
    in_->data.clear();
    wake_writer(*in_);
    out_->eof = true;
    deliver(*out_);
}

bool memory_stream::injected_failure(core::stream_op& op) noexcept {
    if (operations_++ < fail_at_)
        return false;
    op.ec = fail_ec_;
    return true;
}

bool memory_stream::start_read(core::stream_op& op) {
    if (injected_failure(op))
        return true;
    if (!open_) {
        op.ec = core::errc::not_open;
        return true;
    }
    if (op.len == 0) {
        op.res = 0;
        return true;
    }
    if (!in_->data.empty()) {
        op.res = static_cast<std::int32_t>(take(*in_, op));
        return true;
    }
    if (in_->eof) {
        op.res = 0;
        return true;
    }
    in_->reader = &op;
    return false;
}

bool memory_stream::start_write(core::stream_op& op) {
    if (injected_failure(op))
        return true;
    if (!open_) {
        op.ec = core::errc::not_open;
        return true;
    }
    if (shut_down_ || out_->reader_gone) {
        op.res = -EPIPE;
        return true;
    }
    op.buf = this; // unused by writes: lets the loop-driven steps find this end
    pending_write_ = &op;
    write_cancel_requested_ = false;
    if (write_step(op)) {
        pending_write_ = nullptr;
        return true;
    }
    return false;
}

bool memory_stream::write_step(core::stream_op& op) {
    if (write_cancel_requested_) {
        op.res = -ECANCELED;
        return true;
    }
    if (out_->reader_gone) {
        op.res = -EPIPE;
        return true;
    }
    std::size_t budget = std::min(max_write_, out_->room());
    std::size_t remaining = op.prepare_write_window();
    while (remaining != 0 && budget != 0) {
        // prepare_write_window filled a snapshot of iovecs; advancing does not touch it.
        for (std::size_t i = 0; i < op.msg->msg_iovlen && budget != 0; ++i) {
            const ::iovec& v = op.msg->msg_iov[i];
            std::size_t chunk = std::min(v.iov_len, budget);
            const auto* bytes = static_cast<const std::byte*>(v.iov_base);
            out_->data.insert(out_->data.end(), bytes, bytes + chunk);
            op.advance_written(chunk);
            budget -= chunk;
        }
        remaining = op.prepare_write_window();
    }
    deliver(*out_);
    if (remaining == 0) {
        op.res = static_cast<std::int32_t>(op.bytes_written());
        return true;
    }
    if (out_->room() == 0)
        out_->writer = &op;
    else
        schedule_write_step(*out_, op, &on_write_step);
    return false;
}

void memory_stream::on_write_step(core::detail::io_op* raw) noexcept {
    auto& op = static_cast<core::stream_op&>(*raw);
    auto* self = static_cast<memory_stream*>(op.buf);
    if (self->write_step(op)) {
        self->pending_write_ = nullptr;
        op.finish();
    }
}

bool memory_stream::start_shutdown(core::stream_op& op) {
    if (injected_failure(op))
        return true;
    if (!open_) {
        op.ec = core::errc::not_open;
        return true;
    }
    if (!shut_down_) {
        shut_down_ = true;
        out_->eof = true;
        deliver(*out_);
    }
    op.res = 0;
    return true;
}

void memory_stream::cancel(core::stream_op& op) noexcept {
    if (in_->reader == &op) {
        in_->reader = nullptr;
        op.res = -ECANCELED;
        op.on_complete = nullptr;
        loop_->complete_later(op);
        return;
    }
    if (pending_write_ != &op)
        return; // already completed or queued with its outcome
    write_cancel_requested_ = true;
    if (out_->writer == &op) {
        out_->writer = nullptr;
        schedule_write_step(*out_, op, &on_write_step);
    }
    // Otherwise a step is queued already and will see the request.
}

std::pair<std::unique_ptr<memory_stream>, std::unique_ptr<memory_stream>>
memory_stream_pair(core::loop& lp) {
    auto a_to_b = std::make_shared<detail::memory_pipe>(lp);
    auto b_to_a = std::make_shared<detail::memory_pipe>(lp);
    auto a = std::make_unique<memory_stream>(lp, b_to_a, a_to_b);
    auto b = std::make_unique<memory_stream>(lp, a_to_b, b_to_a);
    return {std::move(a), std::move(b)};
}

core::task<void> until_all_waiting(const std::vector<memory_stream*>& ends) {
    for (;;) {
        bool all = true;
        for (const auto* e : ends)
            all = all && e->read_pending() && e->readable() == 0;
        if (all)
            co_return;
        (void)co_await core::sleep_for(core::clock::duration::zero());
    }
}

} // namespace coronet::testing
