// Strict HTTP/1.1 head parsing (RFC 9112 §2-6, RFC 9110 §5). Every rejection is an errc whose
// status_of() is the answer a server sends before closing.
#include <coronet/http/parser.hpp>

#include "spare_list.hpp"

#include <cstdint>

#include <array>
#include <charconv>
#include <limits>

namespace coronet::http {
namespace {

using detail::is_field_value;
using detail::is_token;
using detail::trim_ows;

// RFC 3986 characters allowed in a request-target: unreserved, sub-delims, ':', '@', '/', '?',
// '%' (checked for two hex digits) and '[' ']' (IP literals in absolute-form).
constexpr std::array<bool, 256> make_target_chars() {
    std::array<bool, 256> t{};
    for (int c = '0'; c <= '9'; ++c)
        t[c] = true;
    for (int c = 'a'; c <= 'z'; ++c)
        t[c] = true;
    for (int c = 'A'; c <= 'Z'; ++c)
        t[c] = true;
    for (char c : std::string_view("-._~!$&'()*+,;=:@/?%[]"))
        t[static_cast<unsigned char>(c)] = true;
    return t;
}
constexpr auto target_chars = make_target_chars();

bool is_hex(char c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool valid_target_chars(std::string_view t) noexcept {
    for (std::size_t i = 0; i < t.size(); ++i) {
        auto c = static_cast<unsigned char>(t[i]);
        if (!target_chars[c])
            return false;
        if (c == '%' && (i + 2 >= t.size() || !is_hex(t[i + 1]) || !is_hex(t[i + 2])))
            return false;
    }
    return true;
}

// "HTTP/1.1" -> 1, "HTTP/1.0" -> 0; other well-formed versions -> 505; else -> 400.
int parse_version(std::string_view v, errc& err) noexcept {
    if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
        v[7] < '0' || v[7] > '9') {
        err = errc::bad_request;
        return -1;
    }
    if (v[5] != '1') {
        err = errc::version_not_supported;
        return -1;
    }
    return v[7] - '0'; // 1.x for any x: RFC 9110 §2.5 — a 1.2 peer speaks 1.1 to us
}

bool parse_digits(std::string_view s, std::uint64_t& out) noexcept {
    if (s.empty() || s.size() > 19)
        return false;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    out = v;
    return true;
}

// Content-Length = 1*DIGIT, exactly once. RFC 9110 §8.6 lets a recipient either repair a
// repeated or listed value that agrees or reject it; we reject, as llhttp (node) and nginx do, so
// no peer in front of us can frame the message differently.
bool content_length_of(const header_list& headers, std::uint64_t& out, bool& present) noexcept {
    present = false;
    for (const auto& f : headers.fields()) {
        if (!iequals(f.name, "content-length"))
            continue;
        if (present || !parse_digits(f.value, out))
            return false;
        present = true;
    }
    return true;
}

enum class te_verdict { none, chunked, not_chunked_final, unknown_coding, malformed };

// Transfer-Encoding: every header's list joined (RFC 9112 §6.1).
te_verdict transfer_encoding_of(const header_list& headers) noexcept {
    bool any = false;
    bool chunked_last = false;
    bool unknown = false;
    int chunked_count = 0;
    for (const auto& f : headers.fields()) {
        if (!iequals(f.name, "transfer-encoding"))
            continue;
        std::string_view list = f.value;
        for (;;) {
            auto comma = list.find(',');
            std::string_view item = trim_ows(list.substr(0, comma));
            if (!is_token(item))
                return te_verdict::malformed;
            any = true;
            if (iequals(item, "chunked")) {
                ++chunked_count;
                chunked_last = true;
            } else {
                chunked_last = false;
                unknown = true;
            }
            if (comma == std::string_view::npos)
                break;
            list.remove_prefix(comma + 1);
        }
    }
    if (!any)
        return te_verdict::none;
    if (chunked_count > 1)
        return te_verdict::malformed;
    if (unknown)
        return chunked_last ? te_verdict::unknown_coding : te_verdict::not_chunked_final;
    return te_verdict::chunked;
}

// Splits the header section (lines after the start line, each ending in CRLF, the blank line
// excluded) into fields. Returns false with `err` set on a malformed line or too many fields.
bool parse_fields(std::string_view lines, const parser_limits& limits, header_list& out,
                  errc& err) {
    while (!lines.empty()) {
        auto eol = lines.find("\r\n");
        std::string_view line = lines.substr(0, eol);
        lines.remove_prefix(eol + 2);
        if (line.empty())
            break;
        if (line.front() == ' ' || line.front() == '\t') {
            err = errc::bad_header; // obs-fold (RFC 9112 §5.2)
            return false;
        }
        auto colon = line.find(':');
        if (colon == std::string_view::npos) {
            err = errc::bad_header;
            return false;
        }
        std::string_view name = line.substr(0, colon);
        if (!is_token(name)) {
            err = errc::bad_header; // includes whitespace before the colon (§5.1)
            return false;
        }
        std::string_view value = trim_ows(line.substr(colon + 1));
        if (!is_field_value(value)) {
            err = errc::bad_header;
            return false;
        }
        if (out.size() >= limits.max_header_count) {
            err = errc::header_too_large;
            return false;
        }
        out.push_back({name, value});
    }
    return true;
}

// uri-host [ ":" port ] (RFC 9110 §7.2): no '/', '?', '@' or '#'.
bool valid_host(std::string_view h) noexcept {
    for (unsigned char c : h)
        if (!target_chars[c] || c == '/' || c == '?' || c == '@')
            return false;
    return true;
}

} // namespace

// ---- request_parser ----------------------------------------------------------------------

namespace {
// The header lists of parsers that are gone, kept for the next parsers of this thread.
using spare_fields = detail::spare_list<std::vector<header_field>, 128>;
} // namespace

request_parser::~request_parser() {
    spare_fields::give(head_.headers.fields_);
}

void request_parser::reset() noexcept {
    std::vector<header_field> fields = std::move(head_.headers.fields_);
    fields.clear();
    head_ = request_head{};
    head_.headers.fields_ = std::move(fields);
    scanned_ = line_begin_ = start_ = head_size_ = 0;
    first_line_done_ = false;
    ec_ = {};
}

void request_parser::rebase(const char* from, const char* to) noexcept {
    const auto base = reinterpret_cast<std::uintptr_t>(from);
    const std::size_t span = head_size_ != 0 ? head_size_ : scanned_;
    auto moved = [&](std::string_view& v) noexcept {
        const auto at = reinterpret_cast<std::uintptr_t>(v.data());
        if (v.data() == nullptr || at < base || at - base > span)
            return;
        v = std::string_view(to + (at - base), v.size());
    };
    moved(head_.method);
    moved(head_.target);
    moved(head_.path);
    moved(head_.query);
    for (header_field& f : head_.headers.fields_) {
        moved(f.name);
        moved(f.value);
    }
}

parse_status request_parser::fail(errc e) noexcept {
    ec_ = make_error_code(e);
    return parse_status::error;
}

parse_status request_parser::parse(std::string_view buf) {
    if (ec_)
        return parse_status::error;
    if (head_size_ != 0)
        return parse_status::complete;
    for (std::size_t i = scanned_; i < buf.size(); ++i) {
        // Limits are enforced at the first byte past them, before its syntax is checked, so
        // the verdict is a function of the bytes alone, never of how reads split them.
        if (!first_line_done_ && i + 1 - start_ > limits_.max_request_line)
            return fail(errc::uri_too_long);
        if (i + 1 - start_ > limits_.max_header_bytes)
            return fail(errc::header_too_large);
        char c = buf[i];
        if (i > 0 && buf[i - 1] == '\r' && c != '\n')
            return fail(errc::bad_request); // bare CR
        if (c != '\n')
            continue;
        if (i == 0 || buf[i - 1] != '\r')
            return fail(errc::bad_request); // bare LF
        const bool empty_line = i - 1 == line_begin_;
        line_begin_ = i + 1;
        if (!first_line_done_) {
            if (empty_line) {
                start_ = i + 1; // RFC 9112 §2.2: empty lines before the request line are ignored
                if (start_ > limits_.max_header_bytes)
                    return fail(errc::bad_request); // endless
                continue;
            }
            if (i + 1 - start_ > limits_.max_request_line)
                return fail(errc::uri_too_long);
            first_line_done_ = true;
            continue;
        }
        if (empty_line) {
            head_size_ = i + 1;
            if (head_size_ - start_ > limits_.max_header_bytes)
                return fail(errc::header_too_large);
            return parse_complete(buf.substr(start_, head_size_ - start_));
        }
    }
    scanned_ = buf.size();
    if (buf.size() > 0 && buf.back() == '\r')
        scanned_ = buf.size() - 1; // recheck the CR
    if (!first_line_done_ && buf.size() - start_ > limits_.max_request_line)
        return fail(errc::uri_too_long);
    if (buf.size() - start_ > limits_.max_header_bytes)
        return fail(errc::header_too_large);
    if (start_ > limits_.max_header_bytes)
        return fail(errc::bad_request); // endless empty lines
    return parse_status::need_more;
}

parse_status request_parser::parse_complete(std::string_view head) {
    auto eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    auto sp1 = line.find(' ');
    if (sp1 == std::string_view::npos)
        return fail(errc::bad_request);
    auto sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
        return fail(errc::bad_request);
    head_.method = line.substr(0, sp1);
    head_.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (!is_token(head_.method))
        return fail(errc::bad_request);
    if (head_.target.empty() || !valid_target_chars(head_.target))
        return fail(errc::bad_request);

    errc verr{};
    int minor = parse_version(line.substr(sp2 + 1), verr);
    if (minor < 0)
        return fail(verr);
    head_.version_minor = minor >= 1 ? 1 : 0;

    // Request-target forms (RFC 9112 §3.2).
    std::string_view t = head_.target;
    if (head_.method == "CONNECT" && t.front() == '/')
        return fail(errc::bad_request); // CONNECT takes authority-form only (RFC 9112 §3.2.3)
    if (t.front() == '/') {
        auto q = t.find('?');
        head_.path = t.substr(0, q);
        head_.query = q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
    } else if (t == "*") {
        if (head_.method != "OPTIONS")
            return fail(errc::bad_request);
        head_.path = t;
    } else if (head_.method == "CONNECT") {
        // authority-form: host:port, nothing else.
        auto colon = t.rfind(':');
        std::uint64_t port = 0;
        if (colon == std::string_view::npos || colon == 0 ||
            !parse_digits(t.substr(colon + 1), port) || port > 65535 ||
            t.find('/') != std::string_view::npos || t.find('?') != std::string_view::npos ||
            t.find('@') != std::string_view::npos)
            return fail(errc::bad_request);
        head_.path = t;
    } else {
        // absolute-form: scheme "://" authority path-abempty [ "?" query ].
        auto sep = t.find("://");
        if (sep == std::string_view::npos || sep == 0)
            return fail(errc::bad_request);
        for (std::size_t i = 0; i < sep; ++i) {
            char c = t[i];
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (i > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'));
            if (!ok)
                return fail(errc::bad_request);
        }
        std::string_view rest = t.substr(sep + 3);
        auto slash = rest.find_first_of("/?");
        std::string_view authority = rest.substr(0, slash);
        if (authority.empty())
            return fail(errc::bad_request);
        std::string_view path_query =
            slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
        auto q = path_query.find('?');
        head_.path = path_query.substr(0, q);
        if (head_.path.empty())
            head_.path = "/";
        head_.query = q == std::string_view::npos ? std::string_view() : path_query.substr(q + 1);
    }

    std::vector<header_field>& fields = head_.headers.fields_;
    if (fields.capacity() == 0)
        fields = spare_fields::take();
    errc ferr{};
    if (!parse_fields(head.substr(eol + 2), limits_, head_.headers, ferr))
        return fail(ferr);
    const header_list& h = head_.headers;

    // Host (RFC 9112 §3.2): exactly one in HTTP/1.1, at most one in 1.0.
    std::size_t hosts = h.count("host");
    if (hosts > 1 || (hosts == 0 && head_.version_minor == 1))
        return fail(errc::missing_host);
    if (hosts == 1 && !valid_host(h.get("host")))
        return fail(errc::missing_host);

    // Framing (RFC 9112 §6).
    std::uint64_t cl = 0;
    bool has_cl = false;
    if (!content_length_of(h, cl, has_cl))
        return fail(errc::bad_content_length);
    te_verdict te = transfer_encoding_of(h);
    if (te != te_verdict::none) {
        if (has_cl)
            return fail(errc::content_length_with_transfer_encoding);
        if (head_.version_minor == 0)
            return fail(errc::bad_transfer_encoding);
        if (te == te_verdict::malformed)
            return fail(errc::bad_transfer_encoding);
        // Without chunked as the final coding the body's end cannot be found: RFC 9112 §6.3
        // makes that a 400. Any other coding before it is one we do not implement (RFC 9112
        // §6.1: 501); a body whose end we cannot find is never read.
        if (te == te_verdict::not_chunked_final)
            return fail(errc::bad_transfer_encoding);
        if (te != te_verdict::chunked)
            return fail(errc::unsupported_transfer_coding);
        head_.body = body_kind::chunked;
    } else if (has_cl) {
        if (cl > limits_.max_body_size)
            return fail(errc::body_too_large);
        head_.content_length = cl;
        head_.body = cl > 0 ? body_kind::content_length : body_kind::none;
    } else {
        head_.body = body_kind::none;
    }

    std::string_view connection = h.get("connection");
    if (head_.version_minor == 1)
        head_.keep_alive = !list_contains(connection, "close");
    else
        head_.keep_alive =
            list_contains(connection, "keep-alive") && !list_contains(connection, "close");
    head_.upgrade = h.contains("upgrade") && list_contains(connection, "upgrade");

    bool has_expect = false;
    std::string_view expect = h.get("expect", &has_expect);
    if (has_expect && head_.version_minor == 1) {
        if (!iequals(expect, "100-continue"))
            return fail(errc::expectation_failed);
        head_.expect_continue = true;
    }
    return parse_status::complete;
}

// ---- response_parser ---------------------------------------------------------------------

void response_parser::reset() noexcept {
    head_ = response_head{};
    scanned_ = line_begin_ = head_size_ = 0;
    first_line_done_ = false;
    ec_ = {};
}

parse_status response_parser::fail(errc e) noexcept {
    ec_ = make_error_code(e);
    return parse_status::error;
}

parse_status response_parser::parse(std::string_view buf) {
    if (ec_)
        return parse_status::error;
    if (head_size_ != 0)
        return parse_status::complete;
    for (std::size_t i = scanned_; i < buf.size(); ++i) {
        // The limit holds at the first byte past it, whatever the reads (as in request_parser).
        if (i + 1 > limits_.max_header_bytes)
            return fail(errc::header_too_large);
        char c = buf[i];
        if (i > 0 && buf[i - 1] == '\r' && c != '\n')
            return fail(errc::bad_status_line);
        if (c != '\n')
            continue;
        if (i == 0 || buf[i - 1] != '\r')
            return fail(errc::bad_status_line);
        const bool empty_line = i - 1 == line_begin_;
        line_begin_ = i + 1;
        if (!first_line_done_) {
            if (empty_line)
                return fail(errc::bad_status_line);
            if (i + 1 > limits_.max_request_line)
                return fail(errc::header_too_large);
            first_line_done_ = true;
            continue;
        }
        if (empty_line) {
            head_size_ = i + 1;
            if (head_size_ > limits_.max_header_bytes)
                return fail(errc::header_too_large);
            return parse_complete(buf.substr(0, head_size_));
        }
    }
    scanned_ = buf.size();
    if (!buf.empty() && buf.back() == '\r')
        scanned_ = buf.size() - 1;
    if (buf.size() > limits_.max_header_bytes)
        return fail(errc::header_too_large);
    return parse_status::need_more;
}

parse_status response_parser::parse_complete(std::string_view head) {
    auto eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    errc verr{};
    if (line.size() < 12 || line[8] != ' ')
        return fail(errc::bad_status_line);
    int minor = parse_version(line.substr(0, 8), verr);
    if (minor < 0)
        return fail(verr == errc::version_not_supported ? verr : errc::bad_status_line);
    head_.version_minor = minor >= 1 ? 1 : 0;
    std::string_view code = line.substr(9, 3);
    for (char c : code)
        if (c < '0' || c > '9')
            return fail(errc::bad_status_line);
    head_.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
    if (head_.status < 100)
        return fail(errc::bad_status_line);
    if (line.size() > 12) {
        if (line[12] != ' ')
            return fail(errc::bad_status_line);
        head_.reason = line.substr(13);
        if (!is_field_value(head_.reason))
            return fail(errc::bad_status_line);
    }

    errc ferr{};
    if (!parse_fields(head.substr(eol + 2), limits_, head_.headers, ferr))
        return fail(ferr);
    const header_list& h = head_.headers;
    std::string_view connection = h.get("connection");
    if (head_.version_minor == 1)
        head_.keep_alive = !list_contains(connection, "close");
    else
        head_.keep_alive =
            list_contains(connection, "keep-alive") && !list_contains(connection, "close");

    // Body length (RFC 9112 §6.3).
    if (head_request_ || head_.status < 200 || head_.status == 204 || head_.status == 304) {
        head_.body = body_kind::none;
        return parse_status::complete;
    }
    std::uint64_t cl = 0;
    bool has_cl = false;
    te_verdict te = transfer_encoding_of(h);
    if (te != te_verdict::none) {
        if (te == te_verdict::malformed)
            return fail(errc::bad_transfer_encoding);
        // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing; the
        // client MUST close the connection after processing it.
        if (head_.version_minor == 0)
            head_.keep_alive = false;
        if (te == te_verdict::chunked) {
            head_.body = body_kind::chunked;
        } else {
            head_.body = body_kind::until_close;
            head_.keep_alive = false;
        }
        return parse_status::complete;
    }
    if (!content_length_of(h, cl, has_cl))
        return fail(errc::bad_content_length);
    if (has_cl) {
        if (cl > limits_.max_body_size)
            return fail(errc::body_too_large);
        head_.content_length = cl;
        head_.body = cl > 0 ? body_kind::content_length : body_kind::none;
    } else {
        head_.body = body_kind::until_close;
        head_.keep_alive = false;
    }
    return parse_status::complete;
}

} // namespace coronet::http
