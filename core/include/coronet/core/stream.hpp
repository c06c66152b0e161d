#pragma once

#include <coronet/core/buffer.hpp>
#include <coronet/core/export.hpp>
#include <coronet/core/io_op.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/task.hpp>

#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <memory>
#include <span>

namespace coronet::core {

class loop;
class stream;
class write_awaitable;

/// The operation object of every stream call. It lives in the awaiting coroutine's frame (the
/// awaitables below derive from it) and is what a stream implementation's virtual start
/// functions receive, so a stream call costs one virtual dispatch and no coroutine frame.
///
/// The outcome protocol for implementations: set `ec` for an error of any category, or `res`
/// to a byte count (>= 0) or -errno; then either return true from the start function (done
/// synchronously, nothing else to call) or, later, call `finish()` exactly once on the loop
/// thread. An implementation may use the io_op fields and `on_complete` for its own chaining,
/// and must reset `on_complete` to null before the final completion.
class CORONET_CORE_EXPORT stream_op : public detail::io_op {
public:
    /// Maximum iovecs handed to one sendmsg; longer buffer lists are written in windows.
    static constexpr std::size_t max_iov = 8;

    stream_op(const stream_op&) = delete;
    stream_op& operator=(const stream_op&) = delete;

    // ---- for stream implementations -----------------------------------------------------
    /// Read target (read/receive): op.buf/op.len.
    /// Write source: the write's buffers (empty for any other operation).
    std::span<const const_buffer> buffers() const noexcept;
    /// Fills `*msg`'s iovecs (the write operation's own header) with the next window of unwritten
    /// bytes; returns their total.
    std::size_t prepare_write_window() noexcept;
    /// Records that `n` more bytes were written; returns true when everything is written.
    bool advance_written(std::size_t n) noexcept;
    /// Bytes written so far (writes only).
    std::size_t bytes_written() const noexcept;
    /// The stream this operation runs on.
    stream& target() const noexcept { return *target_; }
    /// True once the awaiting coroutine's stop token fired while the operation was pending.
    /// The cancel request may miss a step that completed at the same moment, so an
    /// implementation that works in several steps (a write issuing one sendmsg per window)
    /// must check this before starting the next step and finish with -ECANCELED instead.
    bool stop_requested() const noexcept { return stop_requested_; }
    /// Delivers the final completion (resumes the awaiting coroutine).
    void finish() noexcept {
        on_complete = nullptr;
        waiter.resume();
    }
    /// Sets the outcome from a syscall-style result and finishes.
    void finish(int result) noexcept {
        res = result;
        finish();
    }

    // ---- for the awaiting side ------------------------------------------------------------
    /// Cancels this operation while it is pending, as its stop token firing would: it still
    /// completes once, with `errc::operation_canceled` unless its bytes came first. For a
    /// caller that lets another party interrupt one wait (`interrupt_slot::run_op`).
    void request_cancel() noexcept;

    std::error_code ec;

protected:
    enum class kind : std::uint8_t { read, write, shutdown, receive };
    stream_op(stream& s, kind k) noexcept;
    bool begin(std::coroutine_handle<> h, stop_token tok);
    std::error_code outcome_error() const noexcept;
    /// Unregisters from the stop token and returns the outcome's error (zero on success).
    std::error_code settle() noexcept {
        canceller_.detach();
        return outcome_error();
    }
    ~stream_op() = default;

    stream* target_;
    kind kind_;
    bool stop_requested_ = false;

private:
    /// This operation as the write it is (the write-window calls are for writes only).
    write_awaitable& as_write() noexcept;
    const write_awaitable& as_write() const noexcept;
    static void on_stop(stop_callback_base* cb) noexcept;
    struct canceller : stop_callback_base {
        explicit canceller(stream_op* o) noexcept : stop_callback_base(&on_stop), op(o) {}
        stream_op* op;
    } canceller_{this};
};

/// `co_await s.read_some(buf)`: result<size_t>, at least one byte; `errc::end_of_stream` when
/// the peer closed its side; `errc::operation_canceled` on cancellation (unless bytes had
/// already arrived, which win).
class CORONET_CORE_EXPORT read_awaitable : public stream_op {
public:
    read_awaitable(stream& s, mutable_buffer buf) noexcept;
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
        return begin(h, detail::token_of(h));
    }
    result<std::size_t> await_resume() noexcept;
};

/// `co_await s.write_all(buf)` / `s.writev(bufs)`: result<void> once every byte was written.
/// A write that fails or is cancelled after writing part of the bytes marks the stream broken
/// (later writes fail with `errc::stream_broken`).
class CORONET_CORE_EXPORT write_awaitable : public stream_op {
public:
    write_awaitable(stream& s, const_buffer buf) noexcept;
    write_awaitable(stream& s, std::span<const const_buffer> bufs) noexcept;
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
        return begin(h, detail::token_of(h));
    }
    result<void> await_resume() noexcept;

private:
    friend class stream_op;
    // Here, not in stream_op: a pending read (one per idle connection) does not carry them.
    const_buffer single_;
    const const_buffer* bufs_ = nullptr;
    std::size_t nbufs_ = 0;
    std::size_t index_ = 0;  ///< first unwritten buffer
    std::size_t offset_ = 0; ///< bytes of bufs_[index_] already written
    std::size_t written_ = 0;
    ::iovec window_[max_iov]{};
    ::msghdr header_{};
};

/// `co_await s.shutdown()`: result<void>; sends FIN (TCP) or close_notify (TLS). Reading stays
/// possible.
class CORONET_CORE_EXPORT shutdown_awaitable : public stream_op {
public:
    explicit shutdown_awaitable(stream& s) noexcept;
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
        return begin(h, detail::token_of(h));
    }
    result<void> await_resume() noexcept;
};

/// `co_await s.receive()`: result<span<const byte>> of at least one byte in a buffer the stream
/// (or the loop) lends; the view is valid until the next read/receive on the stream or
/// `release_receive_buffer()`. Errors as read_some.
class CORONET_CORE_EXPORT receive_awaitable : public stream_op {
public:
    explicit receive_awaitable(stream& s) noexcept;
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
        return begin(h, detail::token_of(h));
    }
    result<std::span<const std::byte>> await_resume() noexcept;
};

/// The one abstract byte stream every protocol layer works on: TCP, Unix sockets, TLS and the
/// in-memory test stream implement it. Each call returns an awaitable operation object and
/// costs one virtual call. One read (read_some/receive) and one write (write_all/writev) may be
/// pending at a time, from two different coroutines; callers serialize beyond that. Not
/// thread-safe: a stream belongs to its loop's thread. Owned through `stream_ptr` so a
/// connection can be handed from one owner to another (HTTP to WebSocket).
class CORONET_CORE_EXPORT stream {
public:
    stream() noexcept = default;
    stream(const stream&) = delete;
    stream& operator=(const stream&) = delete;
    virtual ~stream();

    /// Reads at least one byte into `buf` (see read_awaitable).
    read_awaitable read_some(mutable_buffer buf) noexcept { return {*this, buf}; }
    /// Writes every byte of `buf` (see write_awaitable). `buf` must stay valid until done.
    write_awaitable write_all(const_buffer buf) noexcept { return {*this, buf}; }
    /// Writes every byte of every buffer, in order, gathering them into few syscalls. The span
    /// and the bytes must stay valid until done (a `shared_buffer` converts to const_buffer).
    write_awaitable writev(std::span<const const_buffer> bufs) noexcept { return {*this, bufs}; }
    /// Ends the sending side (see shutdown_awaitable).
    shutdown_awaitable shutdown() noexcept { return shutdown_awaitable(*this); }
    /// Reads into a lent buffer (see receive_awaitable).
    receive_awaitable receive() noexcept { return receive_awaitable(*this); }

    /// Writes what it can of `buf` at once, without waiting, and returns how many bytes that
    /// was (0 when nothing could go out now, or when the stream cannot write synchronously —
    /// the default, and TLS). Lets a caller skip the deadline machinery for a write that fits in
    /// the socket buffer, then `write_all` the rest. Errors as write_all. The same rule as
    /// write_all: no other write may be pending.
    virtual result<std::size_t> try_write(const_buffer buf) noexcept {
        (void)buf;
        return std::size_t{0};
    }

    /// Gives back the buffer `receive()` lent (to the loop's ring, or frees the stream's own),
    /// so an idle connection holds no receive buffer. The last received view becomes invalid.
    /// (Closing the stream does not: the view stays valid until this, the next read or receive,
    /// or the stream's destruction.)
    virtual void release_receive_buffer() noexcept { lend_buf_.reset(); }
    /// True when `receive()` lends from a buffer pool shared by many streams (the loop's), so
    /// that a reader waiting for bytes holds no buffer of its own; false (the default) when it
    /// would read into a buffer this stream allocates. The lent bytes are writable: a protocol
    /// may transform them in place (unmask) until it gives the buffer back.
    virtual bool lends_receive_buffers() const noexcept { return false; }
    /// True when starting a write (write_all, writev) costs no syscall of its own: the loop hands
    /// it to the kernel together with everything else at its next submission (a tcp_stream, TCP
    /// or Unix, on io_uring).
    /// A caller that writes to many streams in one loop iteration (a broadcast) then does better
    /// starting the writes than trying each at once with try_write.
    virtual bool batches_writes() const noexcept { return false; }

    /// Closes the stream at once (no FIN handshake, no close_notify). No operation may be
    /// pending. Idempotent.
    virtual void close() noexcept = 0;
    /// True until close().
    virtual bool is_open() const noexcept = 0;
    /// True once a write was interrupted half-way.
    bool broken() const noexcept { return broken_; }

protected:
    friend class stream_op;
    friend class read_awaitable;
    friend class write_awaitable;
    friend class receive_awaitable;
    /// Starts reading up to op.len bytes into op.buf. Return true if done synchronously.
    virtual bool start_read(stream_op& op) = 0;
    /// Starts writing every byte of op.buffers() (use prepare_write_window/advance_written).
    virtual bool start_write(stream_op& op) = 0;
    /// Starts ending the sending side.
    virtual bool start_shutdown(stream_op& op) = 0;
    /// Starts a lent-buffer receive; the default reads into a stream-owned buffer (a copy). A
    /// stream over io_uring provided buffers may lend the kernel's buffer instead: set op.buf and
    /// op.res and leave the buffer lent until the next call.
    virtual bool start_receive(stream_op& op);
    /// Requests cancellation of a pending op; it still completes once (finish or sync).
    virtual void cancel(stream_op& op) noexcept = 0;

    void mark_broken() noexcept { broken_ = true; }

private:
    static constexpr std::size_t lend_size = 16 * 1024;
    std::unique_ptr<std::byte[]> lend_buf_;
    bool broken_ = false;
};

/// The owning handle of a stream.
using stream_ptr = std::unique_ptr<stream>;

} // namespace coronet::core
