#pragma once

// An in-memory duplex core::stream for testing the layers above core (Boost.Beast's test
// stream, coronet style): two connected ends, knobs for short reads and writes, injected
// failures, EOF on shutdown or close, and cancellable pending operations.

#include <coronet/core/loop.hpp>
#include <coronet/core/stream.hpp>
#include <coronet/core/task.hpp>

#include <cstddef>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace coronet::testing {

namespace detail {
struct memory_pipe;
}

/// One end of an in-memory connection made by `memory_stream_pair`. Bytes written to one end
/// are read from the other, in order. Completions that do not happen inside the start call are
/// delivered from the loop (`loop::complete_later`), never inline inside another coroutine's
/// operation, so the scheduling matches a real socket's. Not thread-safe: both ends belong to
/// the loop thread. Either end may be destroyed first; destroying an end closes it.
///
/// Outcomes:
/// - read: at least one byte (at most `set_max_read` bytes); `errc::end_of_stream` once the
///   peer shut down or closed and every byte it wrote was read; `-ECANCELED` when cancelled
///   while waiting; `errc::not_open` after `close()`.
/// - write: every byte, in steps of at most `set_max_write` bytes (one loop iteration between
///   steps), waiting for the peer to read when the write buffer limit is reached; `EPIPE` after
///   this end shut down or when the peer is closed; `-ECANCELED` when cancelled between steps
///   (the stream is then broken if some bytes went out).
/// - shutdown: completes at once; the peer reads EOF after the buffered bytes.
class memory_stream final : public core::stream {
public:
    /// The default of every size knob: no limit.
    static constexpr std::size_t unlimited = std::numeric_limits<std::size_t>::max();

    /// Use `memory_stream_pair` instead; public for std::make_unique.
    memory_stream(core::loop& lp, std::shared_ptr<detail::memory_pipe> in,
                  std::shared_ptr<detail::memory_pipe> out);
    /// Closes this end (see close()).
    ~memory_stream() override;

    /// Each read returns at most `n` bytes (n >= 1): short reads. Applies to reads that start
    /// afterwards.
    void set_max_read(std::size_t n) noexcept;
    /// Each write step moves at most `n` bytes (n >= 1); a longer write suspends between steps
    /// and still completes only when every byte is written.
    void set_max_write(std::size_t n) noexcept { max_write_ = n == 0 ? 1 : n; }
    /// Bounds the bytes written by this end and not yet read by the peer (n >= 1); a writer
    /// waits for the peer to read when the bound is reached. Default: unbounded.
    void set_write_buffer_limit(std::size_t n) noexcept;
    /// Makes operation number `n` (0-based, counting every read, receive, write and shutdown
    /// started on this end from now on) and every later one fail at once with `ec`, without
    /// moving any byte. `ec` must not be zero.
    void fail_after(std::size_t n, std::error_code ec) noexcept {
        fail_at_ = operations_ + n;
        fail_ec_ = ec;
    }
    /// Makes `lends_receive_buffers()` true, as over a tcp_stream: a buffered_reader that holds
    /// nothing then waits in `receive()` (into this end's own buffer), the path a session or
    /// an http connection takes over TCP. Default: false, the path over TLS.
    void set_lends_receive_buffers(bool lend) noexcept { lends_ = lend; }
    bool lends_receive_buffers() const noexcept override { return lends_; }
    /// Operations started on this end so far (reads, receives, writes, shutdowns).
    std::size_t operations() const noexcept { return operations_; }

    /// True while a read on this end waits for bytes (a readiness signal for tests).
    bool read_pending() const noexcept;
    /// True while a write on this end has not completed.
    bool write_pending() const noexcept { return pending_write_ != nullptr; }
    /// Bytes written by the peer and not yet read by this end.
    std::size_t readable() const noexcept;
    /// True once the peer shut down its sending side or closed.
    bool peer_shut_down() const noexcept;

    /// Closes this end: the peer reads the bytes already written, then end of stream; the
    /// peer's writes fail with EPIPE and bytes not yet read here are dropped. No operation of
    /// this end may be pending (asserted). Idempotent.
    void close() noexcept override;
    /// True until close().
    bool is_open() const noexcept override { return open_; }

protected:
    bool start_read(core::stream_op& op) override;
    bool start_write(core::stream_op& op) override;
    bool start_shutdown(core::stream_op& op) override;
    void cancel(core::stream_op& op) noexcept override;

private:
    bool injected_failure(core::stream_op& op) noexcept;
    /// Moves the next step of the pending write; returns true when the write is complete.
    bool write_step(core::stream_op& op);
    static void on_write_step(core::detail::io_op* op) noexcept;

    core::loop* loop_;
    std::shared_ptr<detail::memory_pipe> in_;  ///< bytes the peer writes, this end reads
    std::shared_ptr<detail::memory_pipe> out_; ///< bytes this end writes, the peer reads
    std::size_t max_write_ = unlimited;
    std::size_t operations_ = 0;
    std::size_t fail_at_ = unlimited;
    std::error_code fail_ec_;
    core::stream_op* pending_write_ = nullptr;
    bool write_cancel_requested_ = false;
    bool shut_down_ = false;
    bool open_ = true;
    bool lends_ = false;
};

/// Two connected in-memory stream ends on `lp` (which must outlive them): what the first
/// writes the second reads and the other way round. Use with structured bindings:
/// `auto [client, server] = memory_stream_pair(lp);`.
std::pair<std::unique_ptr<memory_stream>, std::unique_ptr<memory_stream>>
memory_stream_pair(core::loop& lp);

/// Yields to the loop until every one of `ends` waits for bytes with nothing left to read: what
/// was written to them has been taken in (a readiness signal for "the other side read it all";
/// the test case's own bound ends a hang).
core::task<void> until_all_waiting(const std::vector<memory_stream*>& ends);

} // namespace coronet::testing
