#include <coronet/http/message.hpp>

#include "wire.hpp"

#include <ctime>

namespace coronet::http {

std::string_view reason_phrase(int status) noexcept {
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

response response::text(std::string body, int status_code) {
    response r(status_code);
    r.set("Content-Type", "text/plain; charset=utf-8");
    r.body = std::move(body);
    return r;
}

response response::json(std::string body, int status_code) {
    response r(status_code);
    r.set("Content-Type", "application/json");
    r.body = std::move(body);
    return r;
}

core::task<core::result<void>> body_writer::write(core::const_buffer data) {
    if (data.empty())
        co_return core::result<void>{};
    written_ += data.size();
    if (!chunked_)
        co_return co_await stream_->write_all(data);
    char prefix[24];
    std::size_t n = detail::chunk_prefix(prefix, data.size());
    core::const_buffer parts[3] = {
        {reinterpret_cast<const std::byte*>(prefix), n}, data, core::as_bytes("\r\n")};
    co_return co_await stream_->writev(parts);
}

namespace detail {

std::size_t chunk_prefix(char* out, std::size_t size) noexcept {
    static constexpr char hex[] = "0123456789abcdef";
    char tmp[20];
    std::size_t n = 0;
    do {
        tmp[n++] = hex[size & 15];
        size >>= 4;
    } while (size != 0);
    for (std::size_t i = 0; i < n; ++i)
        out[i] = tmp[n - 1 - i];
    out[n] = '\r';
    out[n + 1] = '\n';
    return n + 2;
}

std::string_view http_date() noexcept {
    // Formatted once per second per thread (RFC 9110 §5.6.7 IMF-fixdate).
    thread_local std::time_t cached = 0;
    thread_local char buf[32] = {};
    std::time_t now = std::time(nullptr);
    if (now != cached) {
        cached = now;
        std::tm tm{};
        gmtime_r(&now, &tm);
        std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    }
    return buf;
}

bool safe_field(std::string_view s) noexcept {
    for (char c : s)
        if (c == '\r' || c == '\n' || c == '\0')
            return false;
    return true;
}

void append_uint(std::string& out, unsigned long long v) {
    char tmp[24];
    std::size_t n = 0;
    do {
        tmp[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        out += tmp[--n];
}

void append_status_line(std::string& out, int status, std::string_view reason) {
    out += "HTTP/1.1 ";
    append_uint(out, static_cast<unsigned>(status));
    out += ' ';
    out += reason.empty() ? reason_phrase(status) : reason;
    out += "\r\nDate: ";
    out += http_date();
    out += "\r\n";
}

void append_error(std::string& out, int status) {
    std::string_view reason = reason_phrase(status);
    append_status_line(out, status, reason);
    out += "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ";
    append_uint(out, reason.size() + 1);
    out += "\r\n\r\n";
    out += reason;
    out += '\n';
}

} // namespace detail
} // namespace coronet::http
