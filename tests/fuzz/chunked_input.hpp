#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

namespace coronet::fuzz {

/// Splits a fuzz input into consecutive chunks of pseudo-random sizes, so that an incremental
/// (sans-I/O) parser sees the same bytes arrive in many different partitions: this is where
/// "need more bytes" boundaries hide.
///
/// The partition is a pure function of the input: the generator is seeded from the input's
/// first (up to) 8 bytes and its length, so a crash artifact reproduces on its own. The seed
/// bytes are not consumed: the chunks concatenate back to the whole input, so seed corpora are
/// plain protocol messages. Sizes mix single bytes, short runs and long runs up to
/// `max_chunk`; no chunk is empty. The chunks are views into the input: they live as long as
/// the input does. Not thread-safe; cheap to construct.
class chunked_input {
public:
    /// Default upper bound on one chunk, about a socket read's worth.
    static constexpr std::size_t default_max_chunk = 4096;

    /// Prepares to split `input`; `max_chunk` of 0 is treated as 1.
    explicit chunked_input(std::span<const std::uint8_t> input,
                           std::size_t max_chunk = default_max_chunk) noexcept
        : input_(input), max_chunk_(max_chunk == 0 ? 1 : max_chunk), state_(seed(input)) {}

    /// Same as the span constructor, for LLVMFuzzerTestOneInput's arguments.
    chunked_input(const std::uint8_t* data, std::size_t size,
                  std::size_t max_chunk = default_max_chunk) noexcept
        : chunked_input(std::span<const std::uint8_t>(data, size), max_chunk) {}

    /// True once every byte has been handed out.
    [[nodiscard]] bool done() const noexcept { return offset_ == input_.size(); }

    /// The bytes not handed out yet.
    [[nodiscard]] std::span<const std::uint8_t> remaining() const noexcept {
        return input_.subspan(offset_);
    }

    /// Returns the next chunk (never empty while !done()); an empty span once done.
    [[nodiscard]] std::span<const std::uint8_t> next() noexcept {
        const std::size_t left = input_.size() - offset_;
        if (left == 0) {
            return {};
        }
        std::size_t size = next_size();
        if (size > left) {
            size = left;
        }
        const auto chunk = input_.subspan(offset_, size);
        offset_ += size;
        return chunk;
    }

private:
    static std::uint64_t seed(std::span<const std::uint8_t> input) noexcept {
        std::uint64_t s = 0x9e3779b97f4a7c15ULL ^ input.size();
        const std::size_t n = input.size() < 8 ? input.size() : 8;
        for (std::size_t i = 0; i < n; ++i) {
            s = (s << 8 | s >> 56) ^ input[i];
        }
        return s;
    }

    // splitmix64: tiny, fast, and good enough to spread chunk sizes.
    std::uint64_t next_random() noexcept {
        std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }

    std::size_t next_size() noexcept {
        const std::uint64_t r = next_random();
        const std::uint64_t pick = r >> 8;
        switch (r & 3U) {
        case 0:
            return 1;
        case 1:
            return 1 + static_cast<std::size_t>(pick % (max_chunk_ < 8 ? max_chunk_ : 8));
        case 2:
            return 1 + static_cast<std::size_t>(pick % (max_chunk_ < 64 ? max_chunk_ : 64));
        default:
            return 1 + static_cast<std::size_t>(pick % max_chunk_);
        }
    }

    std::span<const std::uint8_t> input_;
    std::size_t offset_ = 0;
    std::size_t max_chunk_;
    std::uint64_t state_;
};

/// Calls `fn(chunk)` for each chunk of `input` in order (see chunked_input). If `fn` returns
/// bool, returning false stops early (for example once the parser reported an error).
template <typename Fn>
void for_each_chunk(std::span<const std::uint8_t> input, Fn&& fn,
                    std::size_t max_chunk = chunked_input::default_max_chunk) {
    chunked_input chunks(input, max_chunk);
    while (!chunks.done()) {
        const auto chunk = chunks.next();
        if constexpr (std::is_same_v<std::invoke_result_t<Fn&, std::span<const std::uint8_t>>,
                                     bool>) {
            if (!fn(chunk)) {
                return;
            }
        } else {
            fn(chunk);
        }
    }
}

/// Views a chunk as characters, for parsers that take std::string_view.
[[nodiscard]] inline std::string_view as_chars(std::span<const std::uint8_t> chunk) noexcept {
    return {reinterpret_cast<const char*>(chunk.data()), chunk.size()};
}

} // namespace coronet::fuzz
