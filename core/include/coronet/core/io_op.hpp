#pragma once

#include <coronet/core/export.hpp>
#include <coronet/core/stop.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <coroutine>
#include <cstddef>
#include <cstdint>

namespace coronet::core {
class loop;
}

namespace coronet::core::detail {

/// What an io_op asks the backend to do. Each maps to one io_uring opcode and to one
/// non-blocking syscall on epoll.
enum class op_code : std::uint8_t {
    recv,          ///< recv(fd, buf, len, flags)
    recv_provided, ///< recv into a buffer the kernel picks from the loop's ring (io_uring)
    send,          ///< send(fd, buf, len, flags | MSG_NOSIGNAL)
    sendmsg,       ///< sendmsg(fd, &msg, flags | MSG_NOSIGNAL)
    read,          ///< read(fd, buf, len) (eventfd, signalfd)
    accept,        ///< accept4(fd, addr, addrlen, SOCK_CLOEXEC)
    connect,       ///< connect(fd, addr, addrlen)
};

struct fd_state;

/// One I/O operation. It lives in the awaiting coroutine's frame (or in the object that owns a
/// longer-lived operation); the io_uring backend stores its address as user_data and the
/// completion writes `res` into it. The object must stay alive until `on_complete` ran, also
/// when it was cancelled. Not thread-safe: belongs to one loop.
struct io_op {
    /// Called on the loop thread once `res` holds the outcome (>= 0 or -errno). The default
    /// (null) resumes `waiter`.
    using complete_fn = void (*)(io_op*) noexcept;

    op_code code = op_code::recv;
    bool in_flight = false; ///< owned by the backend between start and completion
    int flags = 0;
    std::int32_t res = 0;
    std::uint32_t cqe_flags = 0; ///< io_uring completion flags (which provided buffer)
    fd_state* fds = nullptr;
    void* buf = nullptr;
    std::size_t len = 0;
    ::msghdr* msg = nullptr;    ///< sendmsg: the header, kept by the write operation
    ::sockaddr* addr = nullptr; ///< accept (out) / connect (in)
    ::socklen_t addrlen = 0;    ///< accept: in/out; connect: in
    complete_fn on_complete = nullptr;
    std::coroutine_handle<> waiter;
    io_op* next = nullptr; ///< intrusive queue link (ready queue, backlog)
    core::loop* owner = nullptr;

    /// Delivers the completion: calls on_complete or resumes the waiter.
    void complete() noexcept {
        if (on_complete != nullptr)
            on_complete(this);
        else
            waiter.resume();
    }
};

/// Per-descriptor state. epoll keeps the parked reader and writer here (at most one of each per
/// descriptor: a stream has one reader and one writer at a time); io_uring uses `fd` and
/// `readable`.
struct fd_state {
    int fd = -1;
    bool registered = false; ///< added to the epoll set
    /// epoll: false once a read came back short or with EAGAIN (the socket is drained), true
    /// again when epoll reports input. A read on a drained socket parks without a syscall.
    /// io_uring: whether the last lent-buffer receive filled its buffer; when it did not, the
    /// next one waits for input first (IORING_RECVSEND_POLL_FIRST) instead of trying at once.
    bool readable = true;
    /// epoll: set once epoll reported the peer's FIN, a hang-up or an error. Reads then never
    /// block and no further edge comes, so a short read no longer means drained.
    bool read_closed = false;
    io_op* reader = nullptr;
    io_op* writer = nullptr;
};

/// Cancels an io_op through its loop when a stop token fires.
struct CORONET_CORE_EXPORT op_canceller : stop_callback_base {
    explicit op_canceller(io_op* o) noexcept : stop_callback_base(&fire), op(o) {}
    static void fire(stop_callback_base* self) noexcept;
    io_op* op;
};

} // namespace coronet::core::detail
