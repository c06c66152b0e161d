// The completion backend: io_uring through liburing (2.3 API). user_data is the address of the
// io_op; the completion writes its result into that object.
#include "backend.hpp"

#include <liburing.h>

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <system_error>
#include <vector>

namespace coronet::core::detail {
namespace {

constexpr std::uint8_t needed_ops[] = {
    IORING_OP_RECV,   IORING_OP_SEND,    IORING_OP_SENDMSG,      IORING_OP_READ,
    IORING_OP_ACCEPT, IORING_OP_CONNECT, IORING_OP_ASYNC_CANCEL,
};

int setup_ring(io_uring& ring, unsigned entries, unsigned cq_entries) {
    io_uring_params p{};
    // SINGLE_ISSUER: only the loop's thread submits, which lets the kernel skip locking.
    // DEFER_TASKRUN: completion work runs when we enter the kernel to wait, not on interrupts,
    // so it is batched with our own reaping. COOP_TASKRUN: no IPI to run task work.
    // CQSIZE: a completion queue larger than the submission queue; it bounds the operations in
    // flight (an idle connection's read holds a slot), not the submissions per iteration.
    // CLAMP: sizes above the kernel's maximum are reduced instead of refused.
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
              IORING_SETUP_CLAMP;
    p.cq_entries = cq_entries < entries * 2 ? entries * 2 : cq_entries;
    int r = io_uring_queue_init_params(entries, &ring, &p);
    if (r == -EINVAL) {
        // Kernels before 6.1 lack DEFER_TASKRUN / SINGLE_ISSUER.
        std::memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        p.cq_entries = cq_entries < entries * 2 ? entries * 2 : cq_entries;
        r = io_uring_queue_init_params(entries, &ring, &p);
        if (r == -EINVAL) {
            std::memset(&p, 0, sizeof p);
            p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
            p.cq_entries = cq_entries < entries * 2 ? entries * 2 : cq_entries;
            r = io_uring_queue_init_params(entries, &ring, &p);
        }
    }
    if (r != 0)
        return r;
    io_uring_probe* probe = io_uring_get_probe_ring(&ring);
    bool ok = probe != nullptr;
    for (std::uint8_t op : needed_ops)
        if (ok && !io_uring_opcode_supported(probe, op))
            ok = false;
    if (probe != nullptr)
        io_uring_free_probe(probe);
    if (!ok || !(p.features & IORING_FEAT_NODROP)) {
        io_uring_queue_exit(&ring);
        return -ENOSYS;
    }
    return 0;
}

class uring_backend final : public backend {
public:
    uring_backend(loop& lp, const loop_options& opts) : loop_(lp) {
        int r = setup_ring(ring_, opts.uring_entries, opts.uring_cq_entries);
        if (r != 0)
            throw std::system_error(-r, std::system_category(), "io_uring setup");
        // Every pending operation may post one completion, and so may a cancel request; keep a
        // sixteenth of the queue for those so cancellation never waits in the backlog.
        limit_ = ring_.cq.ring_entries - ring_.cq.ring_entries / 16;
        io_uring_register_ring_fd(&ring_);
        // MSG_RING (kernel 5.18) wakes another loop's ring with a completion, no eventfd.
        if (io_uring_probe* probe = io_uring_get_probe_ring(&ring_)) {
            has_msg_ring_ = io_uring_opcode_supported(probe, IORING_OP_MSG_RING) != 0;
            io_uring_free_probe(probe);
        }
        setup_provided_buffers(opts.uring_provided_buffers, opts.uring_provided_buffers_max,
                               opts.uring_provided_buffer_size);
    }
    ~uring_backend() override {
        if (buf_ring_ != nullptr) {
            io_uring_unregister_buf_ring(&ring_, buffer_group);
            ::munmap(buf_ring_, ring_bytes_);
            for (void* chunk : chunks_)
                ::munmap(chunk, chunk_count_ * size_);
        }
        io_uring_queue_exit(&ring_);
    }

    bool has_provided_buffers() const noexcept override { return buf_ring_ != nullptr; }
    std::size_t provided_buffer_count() const noexcept override {
        return chunks_.size() * chunk_count_;
    }

    std::span<std::byte> provided_buffer(std::uint32_t flags,
                                         unsigned& id) const noexcept override {
        if (!(flags & IORING_CQE_F_BUFFER))
            return {};
        id = flags >> IORING_CQE_BUFFER_SHIFT;
        return {buffer_at(id), size_};
    }

    void recycle_provided_buffer(unsigned id) noexcept override {
        io_uring_buf_ring_add(buf_ring_, buffer_at(id), static_cast<unsigned>(size_),
                              static_cast<unsigned short>(id), io_uring_buf_ring_mask(entries_), 0);
        io_uring_buf_ring_advance(buf_ring_, 1);
    }

    int message_fd() const noexcept override { return has_msg_ring_ ? ring_.ring_fd : -1; }

    bool send_message(int target_fd) noexcept override {
        if (!has_msg_ring_)
            return false;
        io_uring_sqe* sqe = get_sqe();
        // The target sees a completion whose user_data is message_tag; ours has none.
        io_uring_prep_msg_ring(sqe, target_fd, 0, message_tag, 0);
        io_uring_sqe_set_data(sqe, nullptr);
        ++inflight_;
        message_queued_ = true;
        return true;
    }

    void flush() noexcept override {
        // Only for a queued wake-up: the loop is leaving run() and the target may sleep until
        // it arrives. Other submissions wait for the next run, as they always did.
        if (message_queued_) {
            message_queued_ = false;
            io_uring_submit(&ring_);
        }
    }

    bool start(io_op& op) override {
        op.in_flight = true;
        if (inflight_ >= limit_) {
            push_backlog(op);
            return false;
        }
        prep(op);
        return false;
    }

    void cancel(io_op& op) noexcept override {
        if (!op.in_flight)
            return;
        if (unlink_backlog(op)) {
            op.in_flight = false;
            op.res = -ECANCELED;
            loop_.complete_later(op);
            return;
        }
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_cancel(sqe, &op, 0);
        io_uring_sqe_set_data(sqe, nullptr);
        ++inflight_;
    }

    void add_fd(fd_state&) override {}
    void remove_fd(fd_state&) noexcept override {}

    void wait(std::optional<clock::duration> timeout) override {
        message_queued_ = false; // submitted below
        if (timeout && *timeout <= clock::duration::zero()) {
            io_uring_submit_and_get_events(&ring_);
        } else if (timeout) {
            auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(*timeout).count();
            __kernel_timespec ts{};
            ts.tv_sec = ns / 1'000'000'000;
            ts.tv_nsec = ns % 1'000'000'000;
            io_uring_cqe* cqe = nullptr;
            io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
        } else {
            io_uring_submit_and_wait(&ring_, 1);
        }
        reap();
    }

private:
    io_uring_sqe* get_sqe() noexcept {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        while (sqe == nullptr) {
            // The submission queue is full: hand it to the kernel and retry.
            io_uring_submit(&ring_);
            sqe = io_uring_get_sqe(&ring_);
        }
        return sqe;
    }

    void prep(io_op& op) noexcept {
        io_uring_sqe* sqe = get_sqe();
        const int fd = op.fds->fd;
        switch (op.code) {
        case op_code::recv:
            io_uring_prep_recv(sqe, fd, op.buf, op.len, op.flags);
            break;
        case op_code::recv_provided:
            io_uring_prep_recv(sqe, fd, nullptr, static_cast<unsigned>(size_), op.flags);
            // The last read drained the socket (a request, an echo): the next bytes come later,
            // so arm the wait at once instead of trying a receive that finds nothing first.
            // (Kernel 5.19, as the buffer ring this opcode needs.)
            if (!op.fds->readable)
                sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
            sqe->flags |= IOSQE_BUFFER_SELECT;
            sqe->buf_group = buffer_group;
            break;
        case op_code::send:
            io_uring_prep_send(sqe, fd, op.buf, op.len, op.flags | MSG_NOSIGNAL);
            break;
        case op_code::sendmsg:
            io_uring_prep_sendmsg(sqe, fd, op.msg, static_cast<unsigned>(op.flags) | MSG_NOSIGNAL);
            break;
        case op_code::read:
            io_uring_prep_read(sqe, fd, op.buf, static_cast<unsigned>(op.len), 0);
            break;
        case op_code::accept:
            io_uring_prep_accept(sqe, fd, op.addr, op.addr != nullptr ? &op.addrlen : nullptr,
                                 SOCK_CLOEXEC);
            break;
        case op_code::connect:
            io_uring_prep_connect(sqe, fd, op.addr, op.addrlen);
            break;
        }
        io_uring_sqe_set_data(sqe, &op);
        ++inflight_;
    }

    void reap() {
        io_uring_cqe* cqes[batch];
        unsigned short_of_buffers = 0;
        for (;;) {
            unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, batch);
            if (n == 0)
                break;
            // Copy out and advance before completing anything: completions submit new work.
            io_op* ops[batch];
            int res[batch];
            std::uint32_t flags[batch];
            unsigned messages = 0;
            for (unsigned i = 0; i < n; ++i) {
                if (cqes[i]->user_data == message_tag) {
                    // Another loop's wake-up: it only had to end the wait (the loop drains its
                    // inbox every iteration), and it was never counted as in flight here.
                    ops[i] = nullptr;
                    ++messages;
                    continue;
                }
                ops[i] = static_cast<io_op*>(io_uring_cqe_get_data(cqes[i]));
                res[i] = cqes[i]->res;
                flags[i] = cqes[i]->flags;
                // Done now, not when its turn comes below: a completion earlier in the batch
                // may cancel it, and a cancel request for an operation no longer in the ring
                // could meet a new operation at the same address.
                if (ops[i] != nullptr)
                    ops[i]->in_flight = false;
            }
            io_uring_cq_advance(&ring_, n);
            inflight_ -= n - messages;
            refill_from_backlog();
            for (unsigned i = 0; i < n; ++i) {
                io_op* op = ops[i];
                if (op == nullptr)
                    continue; // a cancel request's own completion
                if (res[i] == -ENOBUFS && op->code == op_code::recv_provided)
                    ++short_of_buffers; // this receive reads again into its stream's buffer
                note_read(*op, res[i]);
                op->res = res[i];
                op->cqe_flags = flags[i];
                op->complete();
            }
            if (n < batch)
                break;
        }
        // Enough more buffers for as many receives as found none (see setup_provided_buffers).
        while (short_of_buffers > 0 && grow_provided_buffers())
            short_of_buffers -= std::min(short_of_buffers, chunk_count_);
    }

    // A receive that filled its buffer left bytes behind, most likely; a shorter one drained
    // the socket. fd_state::readable keeps that for the stream's next receive (prep).
    void note_read(io_op& op, int res) const noexcept {
        if (op.code == op_code::recv_provided)
            op.fds->readable = res > 0 && static_cast<std::size_t>(res) == size_;
    }

    void refill_from_backlog() noexcept {
        while (backlog_head_ != nullptr && inflight_ < limit_) {
            io_op* op = backlog_head_;
            backlog_head_ = op->next;
            if (backlog_head_ == nullptr)
                backlog_tail_ = nullptr;
            op->next = nullptr;
            prep(*op);
        }
    }

    void push_backlog(io_op& op) noexcept {
        op.next = nullptr;
        if (backlog_tail_ != nullptr)
            backlog_tail_->next = &op;
        else
            backlog_head_ = &op;
        backlog_tail_ = &op;
    }

    bool unlink_backlog(io_op& op) noexcept {
        io_op* prev = nullptr;
        for (io_op* o = backlog_head_; o != nullptr; prev = o, o = o->next) {
            if (o != &op)
                continue;
            if (prev != nullptr)
                prev->next = o->next;
            else
                backlog_head_ = o->next;
            if (backlog_tail_ == o)
                backlog_tail_ = prev;
            o->next = nullptr;
            return true;
        }
        return false;
    }

    // A ring of `count` buffers of `size` bytes that the kernel picks from on recv_provided,
    // registered with room for `max` (both rounded up to powers of two). Needs kernel 5.19
    // (IORING_REGISTER_PBUF_RING); without it receives use stream buffers.
    //
    // The kernel takes a buffer when a receive completes, and a stream keeps it until its
    // reader's next read. When many receives complete in one wait (1000 busy connections), more
    // buffers are taken than a small pool has before any reader runs: those receives fail with
    // ENOBUFS and read again into their stream's own buffer, an allocation and a second round
    // trip each. So after such a wait the pool grows by as many chunks of `count` buffers (one
    // mapping each) as cover the receives that found none, up to `max`, and stays at that size.
    void setup_provided_buffers(unsigned count, unsigned max, std::size_t size) noexcept {
        if (count == 0 || size == 0 || size > (1u << 30))
            return;
        auto pow2 = [](unsigned want) {
            unsigned n = 1;
            while (n < want && n < 32768)
                n <<= 1; // the ring size must be a power of two; buffer ids are 16 bits
            return n;
        };
        const unsigned n = pow2(count);
        const unsigned entries = std::max(n, pow2(max));
        ring_bytes_ = entries * sizeof(io_uring_buf);
        void* ring_mem = ::mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE,
                                MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        if (ring_mem == MAP_FAILED)
            return;
        auto* br = static_cast<io_uring_buf_ring*>(ring_mem);
        io_uring_buf_ring_init(br);
        io_uring_buf_reg reg{};
        reg.ring_addr = reinterpret_cast<std::uintptr_t>(ring_mem);
        reg.ring_entries = entries;
        reg.bgid = buffer_group;
        if (io_uring_register_buf_ring(&ring_, &reg, 0) != 0) {
            ::munmap(ring_mem, ring_bytes_);
            return;
        }
        buf_ring_ = br;
        entries_ = entries;
        chunk_count_ = n;
        // Growth stops at `max` rounded down to whole chunks (at least the first chunk).
        max_buffers_ = std::max(n, max / n * n);
        size_ = size;
        if (!grow_provided_buffers()) {
            io_uring_unregister_buf_ring(&ring_, buffer_group);
            ::munmap(ring_mem, ring_bytes_);
            buf_ring_ = nullptr;
        }
    }

    // Adds one chunk of buffers to the ring; false when the ring is full or mmap failed.
    bool grow_provided_buffers() noexcept {
        const std::size_t have = chunks_.size() * chunk_count_;
        if (have + chunk_count_ > max_buffers_)
            return false;
        void* chunk = ::mmap(nullptr, chunk_count_ * size_, PROT_READ | PROT_WRITE,
                             MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        if (chunk == MAP_FAILED)
            return false;
        try {
            chunks_.push_back(static_cast<std::byte*>(chunk));
        } catch (...) {
            ::munmap(chunk, chunk_count_ * size_);
            return false;
        }
        const unsigned mask = io_uring_buf_ring_mask(entries_);
        for (unsigned i = 0; i < chunk_count_; ++i) {
            const auto id = static_cast<unsigned>(have + i);
            io_uring_buf_ring_add(buf_ring_, buffer_at(id), static_cast<unsigned>(size_),
                                  static_cast<unsigned short>(id), mask, static_cast<int>(i));
        }
        io_uring_buf_ring_advance(buf_ring_, static_cast<int>(chunk_count_));
        return true;
    }

    std::byte* buffer_at(unsigned id) const noexcept {
        return chunks_[id / chunk_count_] + static_cast<std::size_t>(id % chunk_count_) * size_;
    }

    static constexpr unsigned short buffer_group = 0;
    io_uring_buf_ring* buf_ring_ = nullptr;
    std::vector<std::byte*> chunks_; ///< mappings of chunk_count_ buffers each, id order
    std::size_t ring_bytes_ = 0;
    unsigned entries_ = 0;     ///< the ring's size: the most buffers the pool may grow to
    unsigned chunk_count_ = 0; ///< buffers per chunk (uring_provided_buffers, rounded up)
    unsigned max_buffers_ = 0; ///< growth limit: uring_provided_buffers_max in whole chunks
    std::size_t size_ = 0;

    static constexpr unsigned batch = 256;
    // Never an io_op's address (objects are aligned).
    static constexpr std::uint64_t message_tag = 1;
    bool has_msg_ring_ = false;
    bool message_queued_ = false;
    loop& loop_;
    io_uring ring_{};
    unsigned inflight_ = 0;
    unsigned limit_ = 0;
    io_op* backlog_head_ = nullptr;
    io_op* backlog_tail_ = nullptr;
};

} // namespace

std::unique_ptr<backend> make_uring_backend(loop& lp, const loop_options& opts) {
    return std::make_unique<uring_backend>(lp, opts);
}

bool probe_uring() noexcept {
    io_uring ring{};
    if (setup_ring(ring, 8, 16) != 0)
        return false;
    io_uring_queue_exit(&ring);
    return true;
}

} // namespace coronet::core::detail
