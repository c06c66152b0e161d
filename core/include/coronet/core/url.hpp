#pragma once

#include <coronet/core/export.hpp>
#include <coronet/core/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace coronet::core {

/// Why `url::parse` refused a text. Every value compares equal to
/// `std::errc::invalid_argument`.
enum class url_errc {
    /// No `scheme://`, or a scheme that is not RFC 3986 §3.1 syntax.
    bad_scheme = 1,
    /// The host is empty, carries userinfo (`user@`), has an unbalanced `[`, or holds a character
    /// RFC 3986 §3.2.2 does not allow there (an unbracketed IPv6 address, spaces, CR/LF).
    bad_host,
    /// The port is not a decimal number from 1 to 65535, or it is missing and the scheme has no
    /// default (`default_port`).
    bad_port,
};

/// The error category of `url_errc`; its name is "coronet.core.url".
CORONET_CORE_EXPORT const std::error_category& url_category() noexcept;

/// Makes an error_code of the url category. Found by ADL for `std::error_code ec = url_errc::x`.
inline std::error_code make_error_code(url_errc e) noexcept {
    return {static_cast<int>(e), url_category()};
}

/// The port a scheme implies when a URL names none: 80 for http and ws, 443 for https and wss
/// (RFC 9110 §4.2, RFC 6455 §3), 0 for any other scheme. `scheme` is compared
/// case-insensitively.
CORONET_CORE_EXPORT std::uint16_t default_port(std::string_view scheme) noexcept;

/// An absolute URL of the form `scheme://host[:port][/path][?query][#fragment]`, as a client
/// needs it to connect: the parts are copies, so a `url` does not refer to the text it was
/// parsed from. Userinfo is refused; the fragment is dropped (it is never sent, RFC 9110 §7.1).
/// A plain value type.
struct CORONET_CORE_EXPORT url {
    std::string scheme;       ///< lower case ("http", "https", "ws", "wss"...)
    std::string host;         ///< without the brackets of an IPv6 literal
    std::uint16_t port = 0;   ///< the URL's port, or the scheme's default
    std::string target = "/"; ///< path and query (origin-form); "/" when the URL has neither

    /// Parses `text`. The scheme is any RFC 3986 scheme (lower-cased); the host a reg-name or
    /// an IPv4 address (RFC 3986 §3.2.2 characters), or an IPv6 literal in brackets, with an
    /// optional zone (`[fe80::1%25eth0]`, RFC 6874); the port is checked and, when absent, the
    /// scheme's `default_port`. A query without a path gets the path "/". Errors: `url_errc`.
    static result<url> parse(std::string_view text);

    /// True for the schemes that run over TLS: https and wss.
    bool secure() const noexcept;
    /// The authority to send as HTTP `Host` (RFC 9110 §7.2): the host, in brackets when it is
    /// an IPv6 literal, followed by `:port` unless the port is the scheme's default.
    std::string authority() const;
};

} // namespace coronet::core

template <>
struct std::is_error_code_enum<coronet::core::url_errc> : std::true_type {};
