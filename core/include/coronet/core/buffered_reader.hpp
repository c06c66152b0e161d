#pragma once

#include <coronet/core/export.hpp>
#include <coronet/core/memory_budget.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/stream.hpp>
#include <coronet/core/task.hpp>

#include <cstddef>
#include <cstdlib>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace coronet::core {

/// Buffered reading over a `core::stream`: read up to a delimiter or an exact count, with a size
/// limit, and hand back whatever was read ahead (`release_prefetched`) so that a protocol can
/// pass the connection on without losing a byte. The views it returns point into its buffer
/// and stay valid until the next read call, `consume` or `release_prefetched`. Not
/// thread-safe; one read call at a time. The stream must outlive the reader.
///
/// Memory follows the bytes received, never a length announced: whatever a caller asks for
/// (`read_exactly(n)`, the hint of `fill(expected)`), the buffer grows to at most the bytes it
/// holds plus `max(held, growth_step)` free bytes, so it doubles while bytes keep arriving and
/// a peer that announces 8 MB and sends 5 KB costs about 5 KB + 64 KiB. A buffer left larger
/// than 2 × growth_step by a big read is released when a later read call finds the reader
/// empty (an idle keep-alive connection after an upload holds no big buffer).
///
/// Over a stream that lends receive buffers from a shared pool (`lends_receive_buffers()`: a
/// `tcp_stream`, whose loop lends io_uring provided buffers or epoll's pool), a reader that
/// holds no bytes does not read into a buffer of its own: it waits in `receive()`, and the bytes
/// that arrive are parsed where the loop put them. Only what is left over when the next read
/// call comes (a partial frame or request) is copied into the reader's own buffer, and that
/// buffer is given up again when the reader runs empty, so an idle connection holds no read
/// buffer at all. Up to four given-up buffers of at most `growth_step` bytes are kept per thread
/// for the next reader that needs one (no allocation per message in steady state).
///
/// With a `memory_budget`, the buffer's size beyond its first `growth_step` bytes is charged to
/// it (`memory_charge`): growing past that costs one atomic operation per growth step, a read
/// within it nothing. When the budget refuses a growth the read call fails with
/// `errc::over_budget` (the bytes already buffered stay); shrinking and destruction give the
/// bytes back.
class CORONET_CORE_EXPORT buffered_reader {
public:
    /// The most free space (bytes not yet received) the reader allocates while it holds no more
    /// than this many bytes; past that, growth is bounded by what it holds (doubling).
    static constexpr std::size_t growth_step = 64 * 1024;

    /// `max_buffer` bounds how many unconsumed bytes the reader holds (default 1 MiB).
    /// `budget` (may be null: nothing is charged) must outlive the reader.
    explicit buffered_reader(stream& s, std::size_t max_buffer = 1024 * 1024,
                             memory_budget* budget = nullptr);

    /// Reads until `delim` appears among the first `max` unconsumed bytes and returns those
    /// bytes up to and including the delimiter (they stay buffered until `consume`). Errors:
    /// `errc::limit_exceeded` when `max` bytes hold no delimiter, `errc::end_of_stream` when the
    /// stream ends first, `errc::over_budget` when the buffer may not grow, and the stream's
    /// errors.
    task<result<std::span<const std::byte>>> read_until(std::string delim, std::size_t max);
    /// Reads until at least `n` bytes are buffered and returns exactly the first `n` (they stay
    /// buffered until `consume`). `errc::limit_exceeded` when `n` exceeds `max_buffer`. `n` is
    /// a limit, not an allocation size: the buffer grows with the bytes that arrive.
    task<result<std::span<const std::byte>>> read_exactly(std::size_t n);
    /// Reads once more from the stream, appending to the buffer; returns the bytes added.
    /// Errors: `errc::limit_exceeded` when the buffer holds `max_buffer` bytes,
    /// `errc::over_budget`, the stream's errors.
    task<result<std::size_t>> fill();
    /// As fill(), first making room for up to `expected` more bytes (capped by max_buffer and
    /// by the growth rule above), so a protocol that knows a large frame is coming reads it in
    /// few calls.
    task<result<std::size_t>> fill(std::size_t expected);

    /// The most bytes a caller may expect (`fill(expected)`) for the reader to wait in a buffer
    /// the stream lends (a stream lends 16 KiB): a reader that knows a larger frame is coming
    /// reads straight into its own buffer.
    static constexpr std::size_t lent_read_limit = 16 * 1024;

    class fill_lent_awaitable;
    /// True when `fill(expected)` would wait in a buffer the stream lends: the reader holds no
    /// unconsumed byte, `expected` is at most `lent_read_limit`, and the stream lends.
    bool fills_lent(std::size_t expected) const noexcept {
        return end_ == begin_ && expected <= lent_read_limit && stream_->lends_receive_buffers();
    }
    /// `fill(expected)` when `fills_lent(expected)`, as an awaitable that lives in the caller's
    /// frame instead of a coroutine of its own (an idle connection waiting here holds one
    /// operation and no frame). Same outcome as fill(). Await it in the expression that makes
    /// it, or keep it in the frame until it completes. On a reader that holds bytes it fails
    /// with `std::errc::operation_not_permitted` and changes nothing (use fill()).
    fill_lent_awaitable fill_lent() noexcept;

    /// The buffered, unconsumed bytes.
    std::span<const std::byte> buffered() const noexcept {
        return {data() + begin_, end_ - begin_};
    }
    /// The buffered bytes, writable (a protocol may transform them in place, e.g. unmask).
    std::span<std::byte> mutable_buffered() noexcept { return {data() + begin_, end_ - begin_}; }
    /// Appends bytes that were read elsewhere (a connection's prefetched bytes handed over by a
    /// takeover) before any read from the stream. Errors: `errc::limit_exceeded`.
    result<void> prime(std::span<const std::byte> bytes);
    /// Drops the first `n` buffered bytes (n <= buffered().size()).
    void consume(std::size_t n) noexcept;
    /// Takes every buffered, unconsumed byte out of the reader (it is empty afterwards).
    std::vector<std::byte> release_prefetched();
    /// The underlying stream.
    stream& underlying() noexcept { return *stream_; }
    /// Bytes of memory the reader's own buffer holds now (buffered or free), for tests and
    /// monitoring; a buffer lent by the stream is not counted.
    std::size_t capacity() const noexcept { return buf_.size(); }
    /// True while the buffered bytes are in a buffer the stream lent (until the next read call).
    bool reading_lent() const noexcept { return lent_ != nullptr; }
    /// For a reader that will not read for a while (a pooled idle connection): what it holds in
    /// a buffer the stream lent moves into its own buffer, and the lent buffer goes back to the
    /// loop. Views become invalid. Errors: `errc::over_budget` (nothing changed).
    result<void> release_lent() { return settle_lent(); }
    /// Bytes charged to the budget now (0 without one).
    std::size_t charged() const noexcept { return charge_.charged(); }

private:
    friend class fill_lent_awaitable;
    std::byte* data() const noexcept { return lent_ != nullptr ? lent_ : buf_.data(); }
    bool may_receive_lent(std::size_t expected) const noexcept;
    void adopt_lent(std::span<const std::byte> got) noexcept;
    result<void> settle_lent();
    void give_up_own() noexcept;
    task<result<std::size_t>> receive_lent();
    task<result<std::size_t>> fill_own(std::size_t expected);
    result<std::size_t> prepare_space(std::size_t want);
    void release_if_empty_and_large() noexcept;
    void compact() noexcept;
    bool grow_to(std::size_t want);

    // The buffer's memory comes from malloc: growing is a realloc (a large block moves by
    // remapping its pages rather than copying them) and new room is not zero-filled.
    struct storage {
        std::byte* p = nullptr;
        std::size_t n = 0;

        storage() = default;
        storage(storage&& o) noexcept : p(std::exchange(o.p, nullptr)), n(std::exchange(o.n, 0)) {}
        storage& operator=(storage&& o) noexcept {
            std::swap(p, o.p);
            std::swap(n, o.n);
            return *this;
        }
        ~storage() { std::free(p); }
        std::byte* data() const noexcept { return p; }
        std::size_t size() const noexcept { return n; }
        void resize(std::size_t m); // keeps the first min(n, m) bytes; std::bad_alloc
        void reset() noexcept {
            std::free(std::exchange(p, nullptr));
            n = 0;
        }
        /// Gives the memory to this thread's cache of small buffers (or frees it).
        void give_up() noexcept;
    };

    stream* stream_;
    std::size_t max_;
    storage buf_;
    memory_charge charge_; ///< buf_'s size beyond growth_step, when there is a budget
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
    std::byte* lent_ = nullptr; ///< the stream's lent buffer begin_/end_ index, if any
};

/// The awaitable of `buffered_reader::fill_lent`: result<size_t>, the bytes received.
class CORONET_CORE_EXPORT buffered_reader::fill_lent_awaitable : public receive_awaitable {
public:
    explicit fill_lent_awaitable(buffered_reader& r) noexcept
        : receive_awaitable(*r.stream_), reader_(&r) {}
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
        if (!prepare())
            return false;
        return receive_awaitable::await_suspend(h);
    }
    result<std::size_t> await_resume() noexcept;

private:
    bool prepare() noexcept;
    buffered_reader* reader_;
};

inline buffered_reader::fill_lent_awaitable buffered_reader::fill_lent() noexcept {
    return fill_lent_awaitable(*this);
}

} // namespace coronet::core
