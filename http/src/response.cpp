#include <coronet/http/message.hpp>

#include "wire.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <ctime>
#include <limits>
#include <new>
#include <stdexcept>

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

namespace {

// The field blocks of responses that are done, kept for the next responses of this thread (as
// the connection's output buffers are): a response with more fields than fit inside it
// allocates only until the thread has blocks of its size.
struct field_block_cache {
    static constexpr int slots = 4;
    static constexpr std::uint32_t first_size = 256;
    static constexpr std::uint32_t max_kept = 16 * 1024;
    char* block[slots]{};
    std::uint32_t size[slots]{};
    int count = 0;

    field_block_cache() = default;
    field_block_cache(const field_block_cache&) = delete;
    field_block_cache& operator=(const field_block_cache&) = delete;
    ~field_block_cache();
};
thread_local field_block_cache field_blocks;
// Set once the thread's cache is destroyed: responses destroyed after it free their blocks.
thread_local bool field_blocks_gone = false;

field_block_cache::~field_block_cache() {
    field_blocks_gone = true;
    for (int i = 0; i < count; ++i)
        ::operator delete(block[i], size[i]);
    count = 0;
}

// A block of at least `cap` bytes; `cap` becomes its size.
char* take_block(std::uint32_t& cap) {
    if (field_blocks_gone)
        return static_cast<char*>(::operator new(cap));
    field_block_cache& c = field_blocks;
    for (int i = 0; i < c.count; ++i) {
        if (c.size[i] < cap)
            continue;
        char* b = c.block[i];
        cap = c.size[i];
        --c.count;
        c.block[i] = c.block[c.count];
        c.size[i] = c.size[c.count];
        return b;
    }
    return static_cast<char*>(::operator new(cap));
}

void give_block(char* b, std::uint32_t cap) noexcept {
    if (field_blocks_gone) {
        ::operator delete(b, cap);
        return;
    }
    field_block_cache& c = field_blocks;
    if (c.count < field_block_cache::slots && cap <= field_block_cache::max_kept) {
        c.block[c.count] = b;
        c.size[c.count] = cap;
        ++c.count;
        return;
    }
    ::operator delete(b, cap);
}

constexpr std::size_t field_overhead = 2 * sizeof(std::uint32_t);

// The size of the block for `need` bytes: powers of two from first_size, so that blocks of
// one size serve many responses.
std::uint32_t block_size(std::size_t need) {
    if (need > std::numeric_limits<std::uint32_t>::max() / 2)
        throw std::length_error("coronet::http::response_fields: too large");
    return std::max(field_block_cache::first_size, std::bit_ceil(static_cast<std::uint32_t>(need)));
}

} // namespace

// ---- response_fields ---------------------------------------------------------------------

response_fields::response_fields(const response_fields& o) {
    if (o.used_ > capacity_) {
        std::uint32_t cap = block_size(o.used_);
        data_ = take_block(cap);
        capacity_ = cap;
    }
    std::memcpy(data_, o.data_, o.used_);
    used_ = o.used_;
    count_ = o.count_;
}

response_fields::response_fields(response_fields&& o) noexcept {
    *this = std::move(o);
}

response_fields& response_fields::operator=(const response_fields& o) {
    if (this != &o) {
        response_fields copy(o);
        *this = std::move(copy);
    }
    return *this;
}

response_fields& response_fields::operator=(response_fields&& o) noexcept {
    if (this == &o)
        return *this;
    release();
    if (o.data_ != o.inline_) {
        data_ = o.data_;
        capacity_ = o.capacity_;
        o.data_ = o.inline_;
        o.capacity_ = inline_bytes;
    } else {
        std::memcpy(inline_, o.inline_, o.used_);
    }
    used_ = o.used_;
    count_ = o.count_;
    o.used_ = 0;
    o.count_ = 0;
    return *this;
}

response_fields::~response_fields() {
    release();
}

void response_fields::release() noexcept {
    if (data_ != inline_)
        give_block(data_, capacity_);
    data_ = inline_;
    capacity_ = inline_bytes;
    used_ = 0;
    count_ = 0;
}

void response_fields::add(std::string_view name, std::string_view value) {
    const std::size_t more = field_overhead + name.size() + value.size();
    // `name` or `value` may be views into this object's block: the old block goes back only
    // once they are copied.
    char* old = nullptr;
    std::uint32_t old_capacity = 0;
    if (more > capacity_ - used_) {
        std::uint32_t cap = block_size(used_ + more);
        char* b = take_block(cap);
        std::memcpy(b, data_, used_);
        if (data_ != inline_) {
            old = data_;
            old_capacity = capacity_;
        }
        data_ = b;
        capacity_ = cap;
    }
    const auto n = static_cast<std::uint32_t>(name.size());
    const auto v = static_cast<std::uint32_t>(value.size());
    char* at = data_ + used_;
    std::memcpy(at, &n, sizeof n);
    std::memcpy(at + sizeof n, &v, sizeof v);
    // memcpy of an empty view's null data is undefined: copy only what is there.
    if (n != 0)
        std::memcpy(at + field_overhead, name.data(), n);
    if (v != 0)
        std::memcpy(at + field_overhead + n, value.data(), v);
    used_ += static_cast<std::uint32_t>(more);
    ++count_;
    if (old != nullptr)
        give_block(old, old_capacity);
}

std::string_view response_fields::get(std::string_view name, bool* found) const noexcept {
    for (header_field f : *this) {
        if (iequals(f.name, name)) {
            if (found != nullptr)
                *found = true;
            return f.value;
        }
    }
    if (found != nullptr)
        *found = false;
    return {};
}

header_field response_fields::iterator::operator*() const noexcept {
    std::uint32_t n = 0;
    std::uint32_t v = 0;
    std::memcpy(&n, at_, sizeof n);
    std::memcpy(&v, at_ + sizeof n, sizeof v);
    return {std::string_view(at_ + field_overhead, n),
            std::string_view(at_ + field_overhead + n, v)};
}

response_fields::iterator& response_fields::iterator::operator++() noexcept {
    std::uint32_t n = 0;
    std::uint32_t v = 0;
    std::memcpy(&n, at_, sizeof n);
    std::memcpy(&v, at_ + sizeof n, sizeof v);
    at_ += field_overhead + n + v;
    return *this;
}

// ---- response ----------------------------------------------------------------------------

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
