// The readiness backend: edge-triggered epoll. An operation first tries its syscall; only on
// EAGAIN does it park in its descriptor's reader or writer slot until epoll reports an edge.
#include "backend.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace coronet::core::detail {
namespace {

bool is_reader(op_code c) noexcept {
    return c == op_code::recv || c == op_code::read || c == op_code::accept;
}

// Operations that complete synchronously in a row before the loop takes a turn; keeps one busy
// connection from starving timers and other descriptors.
constexpr unsigned sync_budget = 64;

class epoll_backend final : public backend {
public:
    explicit epoll_backend(loop& lp) : loop_(lp) {
        epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (epfd_ < 0)
            throw std::system_error(errno, std::system_category(), "epoll_create1");
    }
    ~epoll_backend() override { ::close(epfd_); }

    bool start(io_op& op) override {
        if (op.code == op_code::connect)
            op.res = 0;
        if (op.code == op_code::recv_provided)
            op.code = op_code::recv; // io_uring only
        if (op.code == op_code::recv && !op.fds->readable && op.fds->registered) {
            // The last read drained the socket and no input was reported since: waiting for
            // the edge saves the recv that would only say EAGAIN.
            park(op);
            return false;
        }
        if (budget_ == 0) {
            op.in_flight = true;
            push_deferred(op);
            return false;
        }
        --budget_;
        int r = perform_now(op);
        note_read(op, r);
        if (r != -EAGAIN) {
            op.res = r;
            return true;
        }
        park(op);
        return false;
    }

    void cancel(io_op& op) noexcept override {
        if (!op.in_flight)
            return;
        fd_state* f = op.fds;
        if (f->reader == &op)
            f->reader = nullptr;
        else if (f->writer == &op)
            f->writer = nullptr;
        else if (!unlink_deferred(op))
            return;
        op.in_flight = false;
        op.res = -ECANCELED;
        loop_.complete_later(op);
    }

    void add_fd(fd_state& f) override {
        if (f.registered)
            return;
        ::epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.ptr = &f;
        if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, f.fd, &ev) != 0)
            throw std::system_error(errno, std::system_category(), "epoll_ctl");
        f.registered = true;
    }

    void remove_fd(fd_state& f) noexcept override {
        if (!f.registered)
            return;
        ::epoll_ctl(epfd_, EPOLL_CTL_DEL, f.fd, nullptr);
        f.registered = false;
        // Any event already harvested in this iteration for this descriptor must be ignored.
        for (int i = next_event_; i < nevents_; ++i)
            if (events_[i].data.ptr == &f)
                events_[i].data.ptr = nullptr;
    }

    void wait(std::optional<clock::duration> timeout) override {
        int ms = -1;
        if (deferred_head_ != nullptr)
            ms = 0;
        else if (timeout) {
            auto us = std::chrono::ceil<std::chrono::milliseconds>(*timeout).count();
            ms = us < 0 ? 0 : (us > 1'000'000 ? 1'000'000 : static_cast<int>(us));
        }
        budget_ = sync_budget;
        nevents_ = ::epoll_wait(epfd_, events_, max_events, ms);
        if (nevents_ < 0)
            nevents_ = 0;
        for (next_event_ = 0; next_event_ < nevents_;) {
            ::epoll_event ev = events_[next_event_++];
            if (ev.data.ptr == nullptr)
                continue;
            on_event(*static_cast<fd_state*>(ev.data.ptr), ev.events);
        }
        nevents_ = next_event_ = 0;
        retry_deferred();
    }

private:
    void park(io_op& op) {
        op.in_flight = true;
        add_fd(*op.fds);
        if (is_reader(op.code))
            op.fds->reader = &op;
        else
            op.fds->writer = &op;
    }

    void on_event(fd_state& f, std::uint32_t events) {
        // Try both syscalls before completing either: a completion may close the descriptor.
        io_op* done_r = nullptr;
        io_op* done_w = nullptr;
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))
            f.readable = true;
        if (events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))
            f.read_closed = true;
        if (f.reader != nullptr && (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))) {
            int r = perform_now(*f.reader);
            note_read(*f.reader, r);
            if (r != -EAGAIN) {
                done_r = f.reader;
                done_r->res = r;
                f.reader = nullptr;
            }
        }
        if (f.writer != nullptr && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
            int r = perform_now(*f.writer);
            if (r != -EAGAIN) {
                done_w = f.writer;
                done_w->res = r;
                f.writer = nullptr;
            }
        }
        if (done_r != nullptr) {
            done_r->in_flight = false;
            done_r->complete();
        }
        if (done_w != nullptr) {
            done_w->in_flight = false;
            done_w->complete();
        }
    }

    // A stream read that returned fewer bytes than asked for (or EAGAIN) drained the socket.
    static void note_read(io_op& op, int r) noexcept {
        if (op.code != op_code::recv || op.fds->read_closed)
            return;
        if (r == -EAGAIN || (r > 0 && static_cast<std::size_t>(r) < op.len))
            op.fds->readable = false;
    }

    void push_deferred(io_op& op) noexcept {
        op.next = nullptr;
        if (deferred_tail_ != nullptr)
            deferred_tail_->next = &op;
        else
            deferred_head_ = &op;
        deferred_tail_ = &op;
    }

    bool unlink_deferred(io_op& op) noexcept {
        io_op* prev = nullptr;
        for (io_op* o = deferred_head_; o != nullptr; prev = o, o = o->next) {
            if (o != &op)
                continue;
            if (prev != nullptr)
                prev->next = o->next;
            else
                deferred_head_ = o->next;
            if (deferred_tail_ == o)
                deferred_tail_ = prev;
            o->next = nullptr;
            return true;
        }
        return false;
    }

    void retry_deferred() {
        io_op* list = deferred_head_;
        deferred_head_ = deferred_tail_ = nullptr;
        while (list != nullptr) {
            io_op& op = *list;
            list = op.next;
            op.next = nullptr;
            int r = perform_now(op);
            note_read(op, r);
            if (r == -EAGAIN) {
                park(op);
                continue;
            }
            op.res = r;
            op.in_flight = false;
            op.complete();
        }
    }

    static constexpr int max_events = 256;
    loop& loop_;
    int epfd_ = -1;
    unsigned budget_ = sync_budget;
    ::epoll_event events_[max_events]{};
    int nevents_ = 0;
    int next_event_ = 0;
    io_op* deferred_head_ = nullptr;
    io_op* deferred_tail_ = nullptr;
};

} // namespace

std::unique_ptr<backend> make_epoll_backend(loop& lp) {
    return std::make_unique<epoll_backend>(lp);
}

} // namespace coronet::core::detail
