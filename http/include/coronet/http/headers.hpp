#pragma once

#include <coronet/http/export.hpp>

#include <cstddef>
#include <string_view>
#include <vector>

namespace coronet::http {

/// ASCII case-insensitive equality (header names, tokens; RFC 9110 §5.1).
CORONET_HTTP_EXPORT bool iequals(std::string_view a, std::string_view b) noexcept;

/// True if `list` (a comma-separated header value, RFC 9110 §5.6.1) holds `token`,
/// case-insensitively.
CORONET_HTTP_EXPORT bool list_contains(std::string_view list, std::string_view token) noexcept;

/// One field line. Views point into the parser's input buffer: valid while that buffer is.
struct header_field {
    std::string_view name;
    std::string_view value; ///< without leading and trailing whitespace
};

/// The field lines of a message, in order, repeated names kept. Names compare
/// case-insensitively. The views point into the buffer the message was parsed from.
class CORONET_HTTP_EXPORT header_list {
public:
    /// The value of the first field named `name`, or an empty view with `found` false.
    std::string_view get(std::string_view name, bool* found = nullptr) const noexcept;
    /// True if a field named `name` exists.
    bool contains(std::string_view name) const noexcept;
    /// How many fields are named `name`.
    std::size_t count(std::string_view name) const noexcept;
    /// Every field, in order.
    const std::vector<header_field>& fields() const noexcept { return fields_; }
    std::size_t size() const noexcept { return fields_.size(); }
    void clear() noexcept { fields_.clear(); }
    void push_back(header_field f) { fields_.push_back(f); }

private:
    friend class request_parser; // lends the storage of its lists to the next parser
    std::vector<header_field> fields_;
};

namespace detail {
/// RFC 9110 §5.6.2 tchar.
CORONET_HTTP_EXPORT bool is_tchar(unsigned char c) noexcept;
/// A non-empty token.
CORONET_HTTP_EXPORT bool is_token(std::string_view s) noexcept;
/// A field value: VCHAR, obs-text, SP, HTAB only (RFC 9110 §5.5).
CORONET_HTTP_EXPORT bool is_field_value(std::string_view s) noexcept;
/// Strips SP/HTAB at both ends.
CORONET_HTTP_EXPORT std::string_view trim_ows(std::string_view s) noexcept;
} // namespace detail

} // namespace coronet::http
