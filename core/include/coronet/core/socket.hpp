#pragma once

#include <coronet/core/endpoint.hpp>
#include <coronet/core/export.hpp>
#include <coronet/core/io_op.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/stream.hpp>
#include <coronet/core/task.hpp>

namespace coronet::core {

/// A connected stream socket: TCP over IPv4/IPv6 or a Unix-domain stream socket. Implements
/// `core::stream`. Movable while no operation is pending; not thread-safe (its loop's thread).
/// The descriptor is closed by close() or the destructor.
class CORONET_CORE_EXPORT tcp_stream final : public stream {
public:
    /// A closed stream.
    tcp_stream() noexcept = default;
    /// Adopts a connected socket descriptor for use on `lp` (made non-blocking on epoll).
    tcp_stream(loop& lp, int fd) noexcept;
    tcp_stream(tcp_stream&& o) noexcept;
    tcp_stream& operator=(tcp_stream&& o) noexcept;
    ~tcp_stream() override;

    /// Connects to `ep` on the current loop. Errors: the connect errno (ECONNREFUSED,
    /// ENETUNREACH...), `operation_canceled`; wrap in `with_timeout` for a deadline. TCP
    /// streams get TCP_NODELAY.
    static task<result<tcp_stream>> connect(endpoint ep);

    /// Sets TCP_NODELAY (a no-op on Unix sockets).
    result<void> set_nodelay(bool on) noexcept;
    result<endpoint> local_endpoint() const noexcept;
    result<endpoint> remote_endpoint() const noexcept;
    /// The socket descriptor (-1 when closed).
    int native_handle() const noexcept { return fds_.fd; }
    /// The loop the stream runs on (null when closed).
    loop* owner() const noexcept { return loop_; }

    void close() noexcept override;
    bool is_open() const noexcept override { return fds_.fd >= 0; }
    void release_receive_buffer() noexcept override;
    bool lends_receive_buffers() const noexcept override;
    /// True on io_uring while open: writes go out with the loop's next submission.
    bool batches_writes() const noexcept override;
    /// A non-blocking send (MSG_DONTWAIT) on either backend.
    result<std::size_t> try_write(const_buffer buf) noexcept override;

protected:
    bool start_read(stream_op& op) override;
    /// Receives into a buffer the loop lends (io_uring's provided-buffer ring, epoll's pool),
    /// taken only once bytes arrive; the stream's own buffer when the loop has none to lend.
    bool start_receive(stream_op& op) override;
    bool start_write(stream_op& op) override;
    bool start_shutdown(stream_op& op) override;
    void cancel(stream_op& op) noexcept override;

private:
    static void on_write_step(detail::io_op* op) noexcept;
    static bool write_more(stream_op& op);
    static void on_receive_done(detail::io_op* op) noexcept;
    bool adopt_received(stream_op& op) noexcept;
    void return_lent() noexcept;

    static constexpr unsigned no_lent = ~0u;
    unsigned lent_id_ = no_lent; ///< the provided buffer the last receive returned

    loop* loop_ = nullptr;
    detail::fd_state fds_;
};

/// Options of a listening socket. Every field has a safe default.
struct listen_options {
    /// Pending-connection queue length passed to listen(2) (capped by net.core.somaxconn).
    int backlog = 1024;
    /// SO_REUSEADDR (rebinding a port in TIME_WAIT).
    bool reuse_address = true;
    /// SO_REUSEPORT: several listeners (one loop per core) share the port.
    bool reuse_port = false;
    /// IPV6_V6ONLY for IPv6 listeners.
    bool v6_only = false;
    /// TCP_NODELAY on accepted TCP streams.
    bool nodelay = true;
};

class tcp_listener;

/// `co_await listener.accept()`: result<tcp_stream>. Errors: the accept errno (EMFILE, ENFILE,
/// ECONNABORTED...) and `operation_canceled`.
class CORONET_CORE_EXPORT accept_awaitable : public detail::io_op {
public:
    explicit accept_awaitable(tcp_listener& l) noexcept;
    accept_awaitable(const accept_awaitable&) = delete;
    accept_awaitable& operator=(const accept_awaitable&) = delete;
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
        return begin(h, detail::token_of(h));
    }
    result<tcp_stream> await_resume() noexcept;

private:
    bool begin(std::coroutine_handle<> h, stop_token tok);
    tcp_listener* listener_;
    detail::op_canceller canceller_{this};
};

/// A listening stream socket (TCP or Unix). Not thread-safe; movable while no accept is pending.
class CORONET_CORE_EXPORT tcp_listener {
public:
    tcp_listener() noexcept = default;
    tcp_listener(tcp_listener&& o) noexcept;
    tcp_listener& operator=(tcp_listener&& o) noexcept;
    tcp_listener(const tcp_listener&) = delete;
    tcp_listener& operator=(const tcp_listener&) = delete;
    ~tcp_listener();

    /// Binds and listens on `ep` (port 0 picks a free port; read it back with local_endpoint).
    /// Errors: socket/bind/listen errno.
    static result<tcp_listener> bind(loop& lp, const endpoint& ep, listen_options opts = {});

    /// Accepts one connection (see accept_awaitable). One accept at a time.
    accept_awaitable accept() noexcept { return accept_awaitable(*this); }

    result<endpoint> local_endpoint() const noexcept;
    int native_handle() const noexcept { return fds_.fd; }
    loop* owner() const noexcept { return loop_; }
    const listen_options& options() const noexcept { return opts_; }
    void close() noexcept;
    bool is_open() const noexcept { return fds_.fd >= 0; }

private:
    friend class accept_awaitable;
    loop* loop_ = nullptr;
    detail::fd_state fds_;
    listen_options opts_;
};

} // namespace coronet::core

namespace coronet::core {
/// Unix-domain stream sockets use the same classes: bind/connect an `endpoint::from_unix_path`.
using unix_stream = tcp_stream;
/// See unix_stream.
using unix_listener = tcp_listener;
} // namespace coronet::core
