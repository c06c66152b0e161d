#include <coronet/core/buffered_reader.hpp>

#include <algorithm>
#include <cstring>
#include <string_view>

namespace coronet::core {

buffered_reader::buffered_reader(stream& s, std::size_t max_buffer)
    : stream_(&s), max_(max_buffer) {}

result<void> buffered_reader::prime(std::span<const std::byte> bytes) {
    if (bytes.empty()) return {};
    if (end_ - begin_ + bytes.size() > max_) return errc::limit_exceeded;
    if (buf_.size() - end_ < bytes.size()) {
        if (begin_ > 0 && end_ > begin_) std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
        if (buf_.size() - end_ < bytes.size()) buf_.resize(end_ + bytes.size());
    }
    std::memcpy(buf_.data() + end_, bytes.data(), bytes.size());
    end_ += bytes.size();
    return {};
}

void buffered_reader::consume(std::size_t n) noexcept {
    begin_ += std::min(n, end_ - begin_);
    if (begin_ == end_) begin_ = end_ = 0;
}

std::vector<std::byte> buffered_reader::release_prefetched() {
    std::vector<std::byte> out(buf_.begin() + static_cast<std::ptrdiff_t>(begin_),
                               buf_.begin() + static_cast<std::ptrdiff_t>(end_));
    begin_ = end_ = 0;
    return out;
}

// Makes room for at least one more byte, keeping `want` (a target size of the unconsumed data)
// in mind when growing. Returns how many bytes can be read.
result<std::size_t> buffered_reader::prepare_space(std::size_t want) {
    std::size_t held = end_ - begin_;
    if (held >= max_) return errc::limit_exceeded;
    if (end_ < buf_.size()) return buf_.size() - end_;
    if (begin_ > 0) {
        std::memmove(buf_.data(), buf_.data() + begin_, held);
        begin_ = 0;
        end_ = held;
        return buf_.size() - end_;
    }
    std::size_t cap = std::max<std::size_t>({buf_.size() * 2, want, 4096});
    cap = std::min(cap, max_);
    buf_.resize(cap);
    return buf_.size() - end_;
}

task<result<std::size_t>> buffered_reader::fill(std::size_t expected) {
    const std::size_t held = end_ - begin_;
    if (expected > 1 && buf_.size() - end_ < expected) {
        // Make the room in one step: compact, then grow to what the caller expects.
        if (begin_ > 0 && held > 0) std::memmove(buf_.data(), buf_.data() + begin_, held);
        begin_ = 0;
        end_ = held;
        std::size_t want = std::min(max_, held + expected);
        if (buf_.size() < want) buf_.resize(want);
    }
    // The read itself, as in fill() (not awaited through it: one coroutine frame less).
    auto space = prepare_space(end_ - begin_ + 1);
    if (!space) co_return space.error();
    auto n = co_await stream_->read_some(mutable_buffer(buf_.data() + end_, *space));
    if (!n) co_return n.error();
    end_ += *n;
    co_return *n;
}

task<result<std::size_t>> buffered_reader::fill() {
    auto space = prepare_space(end_ - begin_ + 1);
    if (!space) co_return space.error();
    auto n = co_await stream_->read_some(mutable_buffer(buf_.data() + end_, *space));
    if (!n) co_return n.error();
    end_ += *n;
    co_return *n;
}

task<result<std::span<const std::byte>>> buffered_reader::read_until(std::string delim,
                                                                     std::size_t max) {
    std::size_t scanned = 0;  // bytes of the unconsumed data already searched
    for (;;) {
        std::string_view hay(reinterpret_cast<const char*>(buf_.data() + begin_), end_ - begin_);
        std::size_t from = scanned >= delim.size() ? scanned - delim.size() + 1 : 0;
        std::size_t pos = hay.find(delim, from);
        if (pos != std::string_view::npos && pos + delim.size() <= max)
            co_return std::span<const std::byte>(buf_.data() + begin_, pos + delim.size());
        if (hay.size() >= max) co_return errc::limit_exceeded;
        scanned = hay.size();
        auto space = prepare_space(std::min(max, max_));
        if (!space) co_return space.error();
        std::size_t room = std::min(*space, max - (end_ - begin_));
        auto n = co_await stream_->read_some(mutable_buffer(buf_.data() + end_, room));
        if (!n) co_return n.error();
        end_ += *n;
    }
}

task<result<std::span<const std::byte>>> buffered_reader::read_exactly(std::size_t n) {
    if (n > max_) co_return errc::limit_exceeded;
    while (end_ - begin_ < n) {
        auto space = prepare_space(n);
        if (!space) co_return space.error();
        auto r = co_await stream_->read_some(mutable_buffer(buf_.data() + end_, *space));
        if (!r) co_return r.error();
        end_ += *r;
    }
    co_return std::span<const std::byte>(buf_.data() + begin_, n);
}

}  // namespace coronet::core
