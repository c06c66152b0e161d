#include <coronet/ws/utf8.hpp>

#include <cstring>

namespace coronet::ws {

bool utf8_validator::feed(std::span<const std::byte> bytes) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    const auto* end = p + bytes.size();
    while (p < end) {
        if (need_ == 0) {
            // ASCII fast path, a word at a time.
            while (end - p >= 8) {
                std::uint64_t w;
                std::memcpy(&w, p, 8);
                if (w & 0x8080808080808080ull)
                    break;
                p += 8;
            }
            if (p == end)
                break;
            unsigned char c = *p++;
            if (c < 0x80)
                continue;
            if (c >= 0xC2 && c <= 0xDF) {
                need_ = 1;
                lower_ = 0x80, upper_ = 0xBF;
            } else if (c == 0xE0) {
                need_ = 2;
                lower_ = 0xA0, upper_ = 0xBF; // no overlong 3-byte forms
            } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
                need_ = 2;
                lower_ = 0x80, upper_ = 0xBF;
            } else if (c == 0xED) {
                need_ = 2;
                lower_ = 0x80, upper_ = 0x9F; // no surrogates
            } else if (c == 0xF0) {
                need_ = 3;
                lower_ = 0x90, upper_ = 0xBF; // no overlong 4-byte forms
            } else if (c >= 0xF1 && c <= 0xF3) {
                need_ = 3;
                lower_ = 0x80, upper_ = 0xBF;
            } else if (c == 0xF4) {
                need_ = 3;
                lower_ = 0x80, upper_ = 0x8F; // nothing above U+10FFFF
            } else {
                return false; // 0x80-0xC1 as a lead byte, 0xF5-0xFF
            }
            continue;
        }
        unsigned char c = *p++;
        if (c < lower_ || c > upper_)
            return false;
        --need_;
        lower_ = 0x80, upper_ = 0xBF;
    }
    return true;
}

bool is_valid_utf8(std::string_view s) noexcept {
    utf8_validator v;
    return v.feed(s) && v.complete();
}

} // namespace coronet::ws
