#pragma once

#include <coronet/http/error.hpp>
#include <coronet/http/export.hpp>
#include <coronet/http/headers.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <system_error>

namespace coronet::http {

/// Limits on what a peer may send. Every limit has a safe default; exceeding one is an error
/// whose status (`status_of`) says which (414, 431, 413).
struct parser_limits {
    std::size_t max_request_line = 8 * 1024;     ///< request or status line, CRLF included -> 414
    std::size_t max_header_bytes = 64 * 1024;    ///< whole head, request line included -> 431
    std::size_t max_header_count = 100;          ///< field lines -> 431
    std::size_t max_body_size = 8 * 1024 * 1024; ///< decoded body bytes -> 413
    std::size_t max_chunk_count = 100'000;       ///< chunks of one body -> 413
    std::size_t max_chunk_extension = 1024;      ///< bytes of one chunk's extensions -> 400
    std::size_t max_trailer_bytes = 16 * 1024;   ///< trailer section -> 431
};

/// How a message's body is delimited (RFC 9112 §6.3).
enum class body_kind : std::uint8_t {
    none,           ///< no body
    content_length, ///< exactly `content_length` bytes
    chunked,        ///< chunked transfer coding (use chunked_decoder)
    until_close,    ///< (responses only) everything until the connection closes
};

/// What a parse step reached.
enum class parse_status : std::uint8_t {
    need_more, ///< the head is not complete yet: feed more bytes (not an error)
    complete,  ///< the head is parsed; the fields below are valid
    error,     ///< the message is refused: see error()
};

/// A parsed request head (RFC 9112 §3). Every view points into the buffer given to
/// `request_parser::parse` and is valid while those bytes are.
struct request_head {
    std::string_view method;
    std::string_view target; ///< the request-target as sent
    std::string_view path;   ///< target without the query (origin-form), or the whole target
    std::string_view query;  ///< after '?', without it (empty if none)
    int version_minor = 1;   ///< HTTP/1.<minor>: 0 or 1
    header_list headers;
    body_kind body = body_kind::none;
    std::uint64_t content_length = 0;
    bool keep_alive = true;       ///< the connection may carry another request after this one
    bool upgrade = false;         ///< Connection: upgrade with an Upgrade header
    bool expect_continue = false; ///< Expect: 100-continue
};

/// A parsed response head (RFC 9112 §4).
struct response_head {
    int status = 0;
    std::string_view reason;
    int version_minor = 1;
    header_list headers;
    body_kind body = body_kind::none;
    std::uint64_t content_length = 0;
    bool keep_alive = true;
};

/// Incremental, zero-copy request head parser. Call `parse(buf)` with every unconsumed byte
/// received so far (the same bytes plus more each time); it remembers how far it scanned, so
/// total work stays linear. On `complete`, `head()` is valid and `head_size()` bytes of `buf`
/// belong to the head; the body (if any) follows. `reset()` before the next request. Strict per
/// RFC 9112/9110: see docs/http.md for every rule and the status each rejection maps to. Not
/// thread-safe; no I/O.
class CORONET_HTTP_EXPORT request_parser {
public:
    explicit request_parser(parser_limits limits = {}) noexcept : limits_(limits) {}
    request_parser(const request_parser&) = default;
    request_parser(request_parser&&) noexcept = default;
    request_parser& operator=(const request_parser&) = default;
    request_parser& operator=(request_parser&&) noexcept = default;
    /// Gives the header list's storage to a per-thread cache that the next parser on this
    /// thread starts from (`reset()` keeps it): parsing allocates nothing in steady state.
    ~request_parser();

    parse_status parse(std::string_view buf);
    const request_head& head() const noexcept { return head_; }
    std::size_t head_size() const noexcept { return head_size_; }
    std::error_code error() const noexcept { return ec_; }
    const parser_limits& limits() const noexcept { return limits_; }
    void reset() noexcept;
    /// The bytes given to parse() moved from `from` to `to` (the same bytes, e.g. into a buffer
    /// that grew): every view of head() follows them. A view that never pointed into those
    /// bytes (the "/" supplied for an absolute-form target without a path) stays.
    void rebase(const char* from, const char* to) noexcept;

private:
    parse_status fail(errc e) noexcept;
    parse_status parse_complete(std::string_view head);
    parser_limits limits_;
    request_head head_;
    std::size_t scanned_ = 0;
    std::size_t line_begin_ = 0; // start of the line being scanned
    std::size_t start_ = 0;      // start of the request line (after ignored empty lines)
    bool first_line_done_ = false;
    std::size_t head_size_ = 0;
    std::error_code ec_;
};

/// Incremental, zero-copy response head parser (for the client), same protocol as
/// request_parser. Tell it whether the request was HEAD (no body follows whatever the headers
/// say, RFC 9112 §6.3). 1xx responses parse as complete heads with no body.
class CORONET_HTTP_EXPORT response_parser {
public:
    explicit response_parser(parser_limits limits = {}) noexcept : limits_(limits) {}

    void set_head_request(bool is_head) noexcept { head_request_ = is_head; }
    parse_status parse(std::string_view buf);
    const response_head& head() const noexcept { return head_; }
    std::size_t head_size() const noexcept { return head_size_; }
    std::error_code error() const noexcept { return ec_; }
    void reset() noexcept;

private:
    parse_status fail(errc e) noexcept;
    parse_status parse_complete(std::string_view head);
    parser_limits limits_;
    response_head head_;
    bool head_request_ = false;
    std::size_t scanned_ = 0;
    std::size_t line_begin_ = 0;
    bool first_line_done_ = false;
    std::size_t head_size_ = 0;
    std::error_code ec_;
};

/// Sans-I/O decoder of the chunked transfer coding (RFC 9112 §7.1): chunk sizes (hex, no
/// overflow), extensions (validated against the §7.1.1 grammar, ignored), trailers (validated,
/// ignored). Feed it bytes; each call consumes what it can and returns the body bytes found, as
/// a view into the input.
class CORONET_HTTP_EXPORT chunked_decoder {
public:
    explicit chunked_decoder(parser_limits limits = {}) noexcept : limits_(limits) {}

    struct step {
        std::size_t consumed = 0; ///< input bytes used (drop them before the next call)
        std::string_view data;    ///< body bytes, a view into the input (may be empty)
        bool done = false;        ///< the last chunk and trailers were read
        std::error_code ec;       ///< set on a malformed or oversized body
    };
    /// Decodes from `in`. Returns after one span of body bytes, at the end of the body, on an
    /// error, or when `in` is used up.
    step decode(std::string_view in) noexcept;
    /// Body bytes decoded so far.
    std::uint64_t body_size() const noexcept { return body_; }
    bool done() const noexcept { return state_ == state::done; }
    void reset() noexcept;

private:
    // ext_*: chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ).
    enum class state : std::uint8_t {
        size,
        size_ws,
        ext_name_start,
        ext_name,
        ext_name_ws,
        ext_value_start,
        ext_token_value,
        ext_quoted,
        ext_quoted_pair,
        ext_quoted_end,
        ext_value_ws,
        size_lf,
        data,
        data_cr,
        data_lf,
        trailer_start,
        trailer_line,
        trailer_lf,
        final_lf,
        done
    };
    bool extension_byte(char c) noexcept; // advances the ext_* states; false if malformed
    parser_limits limits_;
    state state_ = state::size;
    std::uint64_t chunk_left_ = 0;
    std::uint64_t body_ = 0;
    std::size_t digits_ = 0;
    std::size_t ext_len_ = 0;
    std::size_t chunks_ = 0;
    std::size_t trailer_bytes_ = 0;
    std::size_t name_len_ = 0; // of the current trailer field name
    bool colon_seen_ = false;  // in the current trailer line
};

} // namespace coronet::http
