#pragma once

#include <coronet/http/export.hpp>

#include <system_error>

namespace coronet::http {

/// Why the http layer refused a message. Each maps to the status a server answers with
/// (`status_of`), always with `Connection: close` (RFC 9112 §9.6): after a framing error the
/// connection cannot be trusted.
enum class errc {
    bad_request = 1,    ///< 400: malformed syntax (RFC 9112 §2.2, §3, §5)
    bad_header,         ///< 400: malformed field line (§5, no obs-fold, no SP before ':')
    missing_host,       ///< 400: HTTP/1.1 request without exactly one Host (§3.2)
    bad_content_length, ///< 400: invalid or conflicting Content-Length (§6.3)
    content_length_with_transfer_encoding, ///< 400: request smuggling guard (§6.1)
    bad_transfer_encoding,                 ///< 400: chunked not last, repeated or empty (§6.1)
    bad_chunk,                             ///< 400: malformed chunked body (§7.1)
    uri_too_long,                          ///< 414: request line over the limit (§3)
    header_too_large,            ///< 431: header section over the byte or count limit (RFC 6585)
    body_too_large,              ///< 413: body over the limit
    too_many_chunks,             ///< 413: chunk count over the limit
    unsupported_transfer_coding, ///< 501: a transfer coding other than chunked (RFC 9110 §15.6.2)
    version_not_supported,       ///< 505: HTTP major version other than 1 (RFC 9110 §15.6.6)
    expectation_failed,          ///< 417: an Expect other than 100-continue (RFC 9110 §10.1.1)
    bad_status_line,             ///< (client) malformed status line
    unexpected_eof,              ///< the stream ended inside a message
};

/// The category of http::errc, named "coronet.http".
CORONET_HTTP_EXPORT const std::error_category& http_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), http_category()};
}

/// The status code a server answers a request rejected with `ec` (400 for anything that is
/// not an http::errc).
CORONET_HTTP_EXPORT int status_of(const std::error_code& ec) noexcept;

} // namespace coronet::http

template <>
struct std::is_error_code_enum<coronet::http::errc> : std::true_type {};
