#include <coronet/core/buffered_reader.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>

namespace coronet::core {

buffered_reader::buffered_reader(stream& s, std::size_t max_buffer, memory_budget* budget)
    : stream_(&s), max_(max_buffer), charge_(budget, growth_step) {}

result<void> buffered_reader::prime(std::span<const std::byte> bytes) {
    if (bytes.empty())
        return {};
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
    std::vector<std::byte> out(buf_.data() + begin_, buf_.data() + end_);
    begin_ = end_ = 0;
    return out;
}

namespace {
// The smallest buffer worth a read.
constexpr std::size_t min_buffer = 4096;
// A buffer up to this size is kept while the reader is empty (the steady state of a connection
// that reads frames or requests of ordinary size); a larger one goes back to the allocator.
constexpr std::size_t kept_when_empty = 2 * buffered_reader::growth_step;
} // namespace

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

task<result<std::size_t>> buffered_reader::fill(std::size_t expected) {
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

task<result<std::size_t>> buffered_reader::fill() {
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
        std::string_view hay(reinterpret_cast<const char*>(buf_.data() + begin_), end_ - begin_);
        std::size_t from = scanned >= delim.size() ? scanned - delim.size() + 1 : 0;
        std::size_t pos = hay.find(delim, from);
        if (pos != std::string_view::npos && pos + delim.size() <= max)
            co_return std::span<const std::byte>(buf_.data() + begin_, pos + delim.size());
        if (hay.size() >= max)
            co_return errc::limit_exceeded;
        scanned = hay.size();
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
    while (end_ - begin_ < n) {
        auto space = prepare_space(n);
        if (!space)
            co_return space.error();
        auto r = co_await stream_->read_some(mutable_buffer(buf_.data() + end_, *space));
        if (!r)
            co_return r.error();
        end_ += *r;
    }
    co_return std::span<const std::byte>(buf_.data() + begin_, n);
}

} // namespace coronet::core
