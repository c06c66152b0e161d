#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace coronet::http::detail {

/// Writes "<hex size>\r\n" into `out` (24 bytes suffice); returns its length.
std::size_t chunk_prefix(char* out, std::size_t size) noexcept;
/// The current IMF-fixdate, cached per second per thread; valid until the next call.
std::string_view http_date() noexcept;
/// False if `s` holds CR, LF or NUL (response splitting).
bool safe_field(std::string_view s) noexcept;
void append_uint(std::string& out, unsigned long long v);
/// "HTTP/1.1 <status> <reason>\r\nDate: ...\r\n".
void append_status_line(std::string& out, int status, std::string_view reason);
/// A complete canned error response with Connection: close.
void append_error(std::string& out, int status);

} // namespace coronet::http::detail
