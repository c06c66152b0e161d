#pragma once

#include <coronet/core/io_op.hpp>
#include <coronet/core/loop.hpp>

#include <chrono>
#include <memory>
#include <optional>

namespace coronet::core::detail {

/// The private interface both reactors implement. Single-threaded (the loop's thread).
class backend {
public:
    virtual ~backend() = default;
    /// See loop::start.
    virtual bool start(io_op& op) = 0;
    /// See loop::cancel.
    virtual void cancel(io_op& op) noexcept = 0;
    virtual void add_fd(fd_state& fds) = 0;
    virtual void remove_fd(fd_state& fds) noexcept = 0;
    /// Submits what is queued, waits up to `timeout` (empty = forever, zero = poll) and delivers
    /// every completion that arrived (op.complete()).
    virtual void wait(std::optional<clock::duration> timeout) = 0;
    /// Provided buffers (io_uring's ring, or epoll's pool): see loop::provided_buffer.
    virtual bool has_provided_buffers() const noexcept { return false; }
    virtual std::size_t provided_buffer_count() const noexcept { return 0; }
    virtual std::span<std::byte> provided_buffer(std::uint32_t, unsigned&) const noexcept {
        return {};
    }
    virtual void recycle_provided_buffer(unsigned) noexcept {}
    /// Cross-loop wake-ups (io_uring `IORING_OP_MSG_RING`): the descriptor another loop's
    /// backend sends a message to in order to wake this one, or -1 when this backend cannot
    /// receive messages.
    virtual int message_fd() const noexcept { return -1; }
    /// Queues a message to the ring `target_fd` (sent with this backend's next submission);
    /// false if this backend cannot send messages.
    virtual bool send_message(int /*target_fd*/) noexcept { return false; }
    /// Submits whatever is queued without waiting (a message must not wait for the next run).
    virtual void flush() noexcept {}
};

std::unique_ptr<backend> make_epoll_backend(loop& lp, const loop_options& opts);
/// Throws std::system_error when io_uring cannot be set up.
std::unique_ptr<backend> make_uring_backend(loop& lp, const loop_options& opts);

/// Performs op's syscall once, non-blocking. Returns the result (>= 0 or -errno).
int perform_now(io_op& op) noexcept;

} // namespace coronet::core::detail
