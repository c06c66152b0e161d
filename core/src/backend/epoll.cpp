// The readiness backend: edge-triggered epoll. An operation first tries its syscall; only on
// EAGAIN does it park in its descriptor's reader or writer slot until epoll reports an edge.
//
// Provided buffers, as io_uring's ring but in user space: a recv_provided parks without a
// buffer and takes one from the loop's pool only when the socket has bytes, so an idle
// connection's pending receive holds no memory. The pool is one mapping of count x size bytes
// whose pages are touched only when a buffer is first used; its free list is a stack, so a
// busy loop keeps reusing the same few (cache-warm) buffers.
#include "backend.hpp"

#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <vector>

namespace coronet::core::detail {
namespace {

bool is_reader(op_code c) noexcept {
    return c == op_code::recv || c == op_code::recv_provided || c == op_code::read ||
           c == op_code::accept;
}

bool is_recv(op_code c) noexcept {
    return c == op_code::recv || c == op_code::recv_provided;
}

// A completion's flags name the pool buffer it filled, as io_uring's IORING_CQE_F_BUFFER does.
constexpr std::uint32_t lent_flag = 1;
constexpr unsigned lent_shift = 16;

// Operations that complete synchronously in a row before the loop takes a turn; keeps one busy
// connection from starving timers and other descriptors.
constexpr unsigned sync_budget = 64;

class epoll_backend final : public backend {
public:
    epoll_backend(loop& lp, const loop_options& opts) : loop_(lp) {
        epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (epfd_ < 0)
            throw std::system_error(errno, std::system_category(), "epoll_create1");
        setup_pool(opts.uring_provided_buffers, opts.uring_provided_buffer_size);
    }
    ~epoll_backend() override {
        ::close(epfd_);
        if (pool_ != nullptr)
            ::munmap(pool_, static_cast<std::size_t>(pool_count_) * pool_size_);
    }

    bool has_provided_buffers() const noexcept override { return pool_ != nullptr; }
    std::size_t provided_buffer_count() const noexcept override {
        return pool_ != nullptr ? pool_count_ : 0;
    }

    std::span<std::byte> provided_buffer(std::uint32_t flags,
                                         unsigned& id) const noexcept override {
        if (!(flags & lent_flag))
            return {};
        id = flags >> lent_shift;
        return {pool_ + static_cast<std::size_t>(id) * pool_size_, pool_size_};
    }

    void recycle_provided_buffer(unsigned id) noexcept override { free_.push_back(id); }

    bool start(io_op& op) override {
        if (op.code == op_code::connect)
            op.res = 0;
        if (is_recv(op.code) && !op.fds->readable && op.fds->registered) {
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
        int r = perform(op);
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
            int r = perform(*f.reader);
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

    // The syscall; a recv_provided borrows a pool buffer for it and keeps it only if bytes
    // arrived (-ENOBUFS when every buffer is lent: the stream then reads into its own).
    int perform(io_op& op) noexcept {
        if (op.code != op_code::recv_provided)
            return perform_now(op);
        if (free_.empty())
            return -ENOBUFS;
        const unsigned id = free_.back();
        op.buf = pool_ + static_cast<std::size_t>(id) * pool_size_;
        op.len = pool_size_;
        const int r = perform_now(op);
        if (r > 0) {
            free_.pop_back();
            op.cqe_flags = lent_flag | (id << lent_shift);
        } else {
            op.cqe_flags = 0;
        }
        return r;
    }

    void setup_pool(unsigned count, std::size_t size) {
        if (count == 0 || size == 0 || size > (1u << 30) || count > (1u << 15))
            return;
        void* mem = ::mmap(nullptr, static_cast<std::size_t>(count) * size, PROT_READ | PROT_WRITE,
                           MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        if (mem == MAP_FAILED)
            return;
        pool_ = static_cast<std::byte*>(mem);
        pool_count_ = count;
        pool_size_ = size;
        free_.reserve(count);
        for (unsigned i = count; i-- > 0;)
            free_.push_back(i); // buffer 0 on top: the first ones used stay the hot ones
    }

    // A stream read that returned fewer bytes than asked for (or EAGAIN) drained the socket.
    static void note_read(io_op& op, int r) noexcept {
        if (!is_recv(op.code) || op.fds->read_closed)
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
            int r = perform(op);
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
    std::byte* pool_ = nullptr;
    unsigned pool_count_ = 0;
    std::size_t pool_size_ = 0;
    std::vector<unsigned> free_; ///< ids of the pool buffers not lent, the next one last
};

} // namespace

std::unique_ptr<backend> make_epoll_backend(loop& lp, const loop_options& opts) {
    return std::make_unique<epoll_backend>(lp, opts);
}

} // namespace coronet::core::detail
