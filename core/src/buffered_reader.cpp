#include <coronet/core/buffered_reader.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>

namespace coronet::core {

buffered_reader::buffered_reader(stream& s, std::size_t max_buffer, memory_budget* budget)
    : stream_(&s), max_(max_buffer), charge_(budget, growth_step) {}

namespace {
// The smallest buffer worth a read.
constexpr std::size_t min_buffer = 4096;
// A buffer up to this size is kept while the reader is empty (the steady state of a connection
// that reads frames or requests of ordinary size); a larger one goes back to the allocator.
constexpr std::size_t kept_when_empty = 2 * buffered_reader::growth_step;

// Buffers given up by readers that ran empty on this thread, for the next reader that needs
// one: a message that arrives in two pieces costs no allocation. Only buffers within the first
// growth_step bytes, which a memory budget never charges.
struct buffer_cache {
    static constexpr int slots = 4;
    std::byte* p[slots]{};
    std::size_t n[slots]{};
    int count = 0;
    bool alive = true;
    buffer_cache() = default;
    buffer_cache(const buffer_cache&) = delete;
    buffer_cache& operator=(const buffer_cache&) = delete;
    ~buffer_cache() {
        for (int i = 0; i < count; ++i)
            std::free(p[i]);
        count = 0;
        alive = false;
    }
};
thread_local buffer_cache cache;
} // namespace

void buffered_reader::storage::give_up() noexcept {
    if (p == nullptr)
        return;
    if (cache.alive && cache.count < buffer_cache::slots && n <= growth_step) {
        cache.p[cache.count] = p;
        cache.n[cache.count] = n;
        ++cache.count;
    } else {
        std::free(p);
    }
    p = nullptr;
    n = 0;
}

bool buffered_reader::may_receive_lent(std::size_t expected) const noexcept {
    return lent_ == nullptr && fills_lent(expected);
}

// The reader holds nothing: its own buffer goes (to the thread's cache) before it waits in a
// lent one.
void buffered_reader::give_up_own() noexcept {
    buf_.give_up();
    charge_.reset();
    begin_ = end_ = 0;
}

void buffered_reader::adopt_lent(std::span<const std::byte> got) noexcept {
    // The lent buffer is the reader's to write (stream::lends_receive_buffers).
    lent_ = const_cast<std::byte*>(got.data());
    begin_ = 0;
    end_ = got.size();
}

// Before the next read: what is left of the lent bytes moves into the reader's own buffer (empty
// while a buffer is lent), and the stream gets its buffer back.
result<void> buffered_reader::settle_lent() {
    if (lent_ == nullptr)
        return {};
    const std::size_t held = end_ - begin_;
    if (held > 0) {
        const std::size_t want = std::max(held, min_buffer);
        if (buf_.size() < want) {
            if (!charge_.resize(want))
                return errc::over_budget;
            buf_.resize(want);
        }
        std::memcpy(buf_.data(), lent_ + begin_, held);
    }
    lent_ = nullptr;
    begin_ = 0;
    end_ = held;
    stream_->release_receive_buffer();
    return {};
}

result<void> buffered_reader::prime(std::span<const std::byte> bytes) {
    if (bytes.empty())
        return {};
    if (auto s = settle_lent(); !s)
        return s;
    if (end_ - begin_ + bytes.size() > max_)
        return errc::limit_exceeded;
    if (buf_.size() - end_ < bytes.size()) {
        if (begin_ > 0 && end_ > begin_)
            std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
        if (buf_.size() - end_ < bytes.size())
            buf_.resize(end_ + bytes.size());
    }
    std::memcpy(buf_.data() + end_, bytes.data(), bytes.size());
    end_ += bytes.size();
    return {};
}

void buffered_reader::consume(std::size_t n) noexcept {
    begin_ += std::min(n, end_ - begin_);
    if (begin_ == end_)
        begin_ = end_ = 0;
}

std::vector<std::byte> buffered_reader::release_prefetched() {
    std::vector<std::byte> out(data() + begin_, data() + end_);
    begin_ = end_ = 0;
    if (lent_ != nullptr) {
        lent_ = nullptr;
        stream_->release_receive_buffer();
    }
    return out;
}

void buffered_reader::compact() noexcept {
    const std::size_t held = end_ - begin_;
    if (begin_ > 0 && held > 0)
        std::memmove(buf_.data(), buf_.data() + begin_, held);
    begin_ = 0;
    end_ = held;
}

// Only called from read calls, never from consume(): a protocol may keep using a view across
// consume() until its next read.
void buffered_reader::release_if_empty_and_large() noexcept {
    if (end_ != begin_ || buf_.size() <= kept_when_empty)
        return;
    buf_.reset();
    charge_.reset();
    begin_ = end_ = 0;
}

// Grows the buffer toward `want` bytes in all, with no more free room than max(held,
// growth_step): a length the peer announced is only a limit, memory follows the bytes that
// arrived (doubling as they keep arriving, so a large body costs O(n) copying, not O(n^2)).
// False when the budget refuses the growth (the buffer is unchanged). A buffer filled by
// prime() is charged here, at its next growth: the budget may lag, never leak.
bool buffered_reader::grow_to(std::size_t want) {
    const std::size_t held = end_ - begin_;
    const std::size_t limit = std::min(max_, held + std::max(held, growth_step));
    const std::size_t target = std::min(want, limit);
    if (target <= buf_.size())
        return true;
    if (!charge_.resize(target))
        return false;
    compact();
    buf_.resize(target);
    return true;
}

void buffered_reader::storage::resize(std::size_t m) {
    if (m == n)
        return;
    if (m == 0) {
        reset();
        return;
    }
    if (p == nullptr && m <= growth_step) {
        for (int i = 0; i < cache.count; ++i) {
            if (cache.n[i] < m)
                continue;
            p = cache.p[i];
            n = cache.n[i]; // may be more than asked for: all of it is usable room
            --cache.count;
            cache.p[i] = cache.p[cache.count];
            cache.n[i] = cache.n[cache.count];
            return;
        }
    }
    void* q = std::realloc(p, m);
    if (q == nullptr)
        throw std::bad_alloc();
    p = static_cast<std::byte*>(q);
    n = m;
}

// Makes room for at least one more byte, keeping `want` (a target size of the unconsumed data)
// in mind when growing. Returns how many bytes can be read.
result<std::size_t> buffered_reader::prepare_space(std::size_t want) {
    release_if_empty_and_large();
    std::size_t held = end_ - begin_;
    if (held >= max_)
        return errc::limit_exceeded;
    if (end_ < buf_.size())
        return buf_.size() - end_;
    if (begin_ > 0) {
        compact();
        return buf_.size() - end_;
    }
    if (!grow_to(std::max({want, 2 * held, min_buffer})))
        return errc::over_budget;
    return buf_.size() - end_;
}

// A reader that holds nothing waits in a lent buffer (receive_lent); one that holds a partial
// frame or request reads into its own (fill_own). Two coroutines, not one with both waits: an
// idle connection's frame then holds one operation, not two.
task<result<std::size_t>> buffered_reader::fill(std::size_t expected) {
    if (fills_lent(expected))
        return receive_lent();
    return fill_own(expected);
}

task<result<std::size_t>> buffered_reader::fill() {
    return fill(0);
}

task<result<std::size_t>> buffered_reader::receive_lent() {
    co_return co_await fill_lent();
}

// Before the receive: a reader that holds nothing gives back the lent buffer it read last and
// its own buffer, so that it waits holding nothing. False (the outcome set) when it holds bytes.
bool buffered_reader::fill_lent_awaitable::prepare() noexcept {
    if (reader_->end_ != reader_->begin_) {
        // Not fills_lent(): the bytes held must stay; fill() is the call for this reader.
        ec = std::make_error_code(std::errc::operation_not_permitted);
        return false;
    }
    (void)reader_->settle_lent(); // nothing to move: it cannot fail
    reader_->give_up_own();
    return true;
}

result<std::size_t> buffered_reader::fill_lent_awaitable::await_resume() noexcept {
    auto got = receive_awaitable::await_resume();
    if (!got)
        return got.error();
    reader_->adopt_lent(*got);
    return got->size();
}

task<result<std::size_t>> buffered_reader::fill_own(std::size_t expected) {
    if (auto s = settle_lent(); !s)
        co_return s.error();
    release_if_empty_and_large();
    const std::size_t held = end_ - begin_;
    if (expected > 1 && buf_.size() - end_ < expected) {
        // Make the room in one step: compact, then grow toward what the caller expects. A
        // refusal of the budget is prepare_space's to report, and only if there is no room.
        compact();
        (void)grow_to(held + std::min(expected, max_ > held ? max_ - held : 0));
    }
    // The read itself, as in fill() (not awaited through it: one coroutine frame less).
    auto space = prepare_space(end_ - begin_ + 1);
    if (!space)
        co_return space.error();
    auto n = co_await stream_->read_some(mutable_buffer(buf_.data() + end_, *space));
    if (!n)
        co_return n.error();
    end_ += *n;
    co_return *n;
}

task<result<std::span<const std::byte>>> buffered_reader::read_until(std::string delim,
                                                                     std::size_t max) {
    std::size_t scanned = 0; // bytes of the unconsumed data already searched
    for (;;) {
        std::string_view hay(reinterpret_cast<const char*>(data() + begin_), end_ - begin_);
        std::size_t from = scanned >= delim.size() ? scanned - delim.size() + 1 : 0;
        std::size_t pos = hay.find(delim, from);
        if (pos != std::string_view::npos && pos + delim.size() <= max)
            co_return std::span<const std::byte>(data() + begin_, pos + delim.size());
        if (hay.size() >= max)
            co_return errc::limit_exceeded;
        scanned = hay.size();
        if (auto s = settle_lent(); !s)
            co_return s.error();
        if (may_receive_lent(0)) {
            give_up_own();
            auto got = co_await stream_->receive();
            if (!got)
                co_return got.error();
            adopt_lent(*got);
            continue;
        }
        auto space = prepare_space(std::min(max, max_));
        if (!space)
            co_return space.error();
        std::size_t room = std::min(*space, max - (end_ - begin_));
        auto n = co_await stream_->read_some(mutable_buffer(buf_.data() + end_, room));
        if (!n)
            co_return n.error();
        end_ += *n;
    }
}

task<result<std::span<const std::byte>>> buffered_reader::read_exactly(std::size_t n) {
    if (n > max_)
        co_return errc::limit_exceeded;
    if (end_ - begin_ < n) {
        if (auto s = settle_lent(); !s)
            co_return s.error();
    }
    while (end_ - begin_ < n) {
        auto space = prepare_space(n);
        if (!space)
            co_return space.error();
        auto r = co_await stream_->read_some(mutable_buffer(buf_.data() + end_, *space));
        if (!r)
            co_return r.error();
        end_ += *r;
    }
    co_return std::span<const std::byte>(data() + begin_, n);
}

} // namespace coronet::core
