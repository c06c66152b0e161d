#pragma once

#include <coronet/ws/export.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace coronet::ws {

/// Incremental UTF-8 validation (RFC 3629): rejects overlong forms, surrogates (U+D800-DFFF),
/// code points above U+10FFFF and stray continuation bytes at the first byte that makes the
/// input invalid, whatever the fragmentation (RFC 6455 §8.1 fail-fast). ASCII runs are checked
/// eight bytes at a time. A plain value; not thread-safe.
class CORONET_WS_EXPORT utf8_validator {
public:
    /// Feeds more bytes; false as soon as they cannot be part of valid UTF-8.
    bool feed(std::span<const std::byte> bytes) noexcept;
    bool feed(std::string_view s) noexcept {
        return feed(
            std::span<const std::byte>(reinterpret_cast<const std::byte*>(s.data()), s.size()));
    }
    /// True if the bytes so far end on a complete code point (call at the end of a message).
    bool complete() const noexcept { return need_ == 0; }
    void reset() noexcept {
        need_ = 0;
        lower_ = 0x80;
        upper_ = 0xBF;
    }

private:
    std::uint8_t need_ = 0;     // continuation bytes still expected
    std::uint8_t lower_ = 0x80; // allowed range of the next continuation byte
    std::uint8_t upper_ = 0xBF;
};

/// True if `s` is complete, valid UTF-8.
CORONET_WS_EXPORT bool is_valid_utf8(std::string_view s) noexcept;

} // namespace coronet::ws
