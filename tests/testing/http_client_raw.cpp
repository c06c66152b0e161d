#include <testing/http_client_raw.hpp>

#include <coronet/core/error.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/timer.hpp>

#include <cctype>
#include <cerrno>
#include <memory>

namespace coronet::testing {
namespace {

bool iequal(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

std::error_code protocol_error() {
    return std::make_error_code(std::errc::protocol_error);
}

core::clock::duration left(core::clock::time_point deadline) {
    auto now = core::clock::now();
    return deadline > now ? deadline - now : core::clock::duration::zero();
}

} // namespace

std::string raw_response::header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (iequal(k, name))
            return v;
    return {};
}

bool raw_response::has_header(std::string_view name) const {
    return header_count(name) > 0;
}

std::size_t raw_response::header_count(std::string_view name) const {
    std::size_t n = 0;
    for (const auto& [k, v] : headers)
        if (iequal(k, name))
            ++n;
    return n;
}

bool raw_response::header_has_token(std::string_view name, std::string_view token) const {
    for (const auto& [k, v] : headers) {
        if (!iequal(k, name))
            continue;
        std::string_view rest = v;
        while (!rest.empty()) {
            auto comma = rest.find(',');
            if (iequal(trim(rest.substr(0, comma)), token))
                return true;
            if (comma == std::string_view::npos)
                break;
            rest.remove_prefix(comma + 1);
        }
    }
    return false;
}

bool raw_end::closed() const noexcept {
    if (how == core::errc::end_of_stream)
        return true;
    return how == std::errc::connection_reset || how == std::errc::broken_pipe;
}

core::task<core::result<raw_client>> raw_client::connect(core::endpoint ep) {
    auto s = co_await core::tcp_stream::connect(ep);
    if (!s)
        co_return s.error();
    co_return raw_client(std::make_unique<core::tcp_stream>(std::move(*s)));
}

core::task<core::result<void>> raw_client::send(std::string bytes) {
    co_return co_await s_->write_all(core::as_bytes(bytes));
}

core::task<core::result<std::size_t>> raw_client::fill_once() {
    char tmp[16 * 1024];
    auto r =
        co_await s_->read_some(core::mutable_buffer(reinterpret_cast<std::byte*>(tmp), sizeof tmp));
    if (!r)
        co_return r.error();
    buf_.append(tmp, *r);
    co_return *r;
}

core::task<core::result<std::size_t>> raw_client::fill(std::chrono::milliseconds timeout) {
    co_return co_await core::with_timeout(timeout, fill_once());
}

core::task<core::result<void>> raw_client::fill_until(core::clock::time_point deadline) {
    auto r = co_await core::with_timeout(left(deadline), fill_once());
    if (!r)
        co_return r.error();
    co_return core::result<void>{};
}

core::task<core::result<raw_response>>
raw_client::read_response(bool head_request, std::chrono::milliseconds timeout) {
    const auto deadline = core::clock::now() + timeout;
    std::size_t head_end;
    while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos) {
        if (auto r = co_await fill_until(deadline); !r)
            co_return r.error();
    }
    raw_response res;
    std::string_view head(buf_.data(), head_end + 2);
    // Status line.
    auto eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    auto sp1 = line.find(' ');
    if (sp1 == std::string_view::npos)
        co_return protocol_error();
    res.version = std::string(line.substr(0, sp1));
    std::string_view rest = line.substr(sp1 + 1);
    auto sp2 = rest.find(' ');
    std::string_view code = rest.substr(0, sp2);
    if (code.size() != 3)
        co_return protocol_error();
    for (char c : code)
        if (c < '0' || c > '9')
            co_return protocol_error();
    res.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
    if (sp2 != std::string_view::npos)
        res.reason = std::string(rest.substr(sp2 + 1));
    // Fields.
    std::size_t pos = eol + 2;
    while (pos < head.size()) {
        auto e = head.find("\r\n", pos);
        std::string_view field = head.substr(pos, e - pos);
        pos = e + 2;
        auto colon = field.find(':');
        if (colon == std::string_view::npos || colon == 0)
            co_return protocol_error();
        res.headers.emplace_back(std::string(field.substr(0, colon)),
                                 std::string(trim(field.substr(colon + 1))));
    }
    buf_.erase(0, head_end + 4);

    const bool no_body = head_request || res.status < 200 || res.status == 204 || res.status == 304;
    if (no_body)
        co_return res;

    if (res.header_has_token("transfer-encoding", "chunked")) {
        res.chunked = true;
        std::size_t p = 0;
        for (;;) {
            std::size_t le;
            while ((le = buf_.find("\r\n", p)) == std::string::npos)
                if (auto r = co_await fill_until(deadline); !r)
                    co_return r.error();
            std::string_view size_line(buf_.data() + p, le - p);
            size_line = size_line.substr(0, size_line.find(';'));
            if (size_line.empty())
                co_return protocol_error();
            std::size_t size = 0;
            for (char c : size_line) {
                int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                        : (std::tolower(static_cast<unsigned char>(c)) >= 'a' &&
                           std::tolower(static_cast<unsigned char>(c)) <= 'f')
                            ? std::tolower(static_cast<unsigned char>(c)) - 'a' + 10
                            : -1;
                if (d < 0)
                    co_return protocol_error();
                size = size * 16 + static_cast<std::size_t>(d);
            }
            p = le + 2;
            if (size == 0) {
                // Trailer fields until an empty line.
                for (;;) {
                    std::size_t te;
                    while ((te = buf_.find("\r\n", p)) == std::string::npos)
                        if (auto r = co_await fill_until(deadline); !r)
                            co_return r.error();
                    bool empty = te == p;
                    p = te + 2;
                    if (empty)
                        break;
                }
                break;
            }
            while (buf_.size() < p + size + 2)
                if (auto r = co_await fill_until(deadline); !r)
                    co_return r.error();
            if (buf_.compare(p + size, 2, "\r\n") != 0)
                co_return protocol_error();
            res.body.append(buf_, p, size);
            p += size + 2;
        }
        res.raw_body = buf_.substr(0, p);
        buf_.erase(0, p);
        co_return res;
    }

    if (res.has_header("content-length")) {
        std::size_t n = 0;
        for (char c : res.header("content-length")) {
            if (c < '0' || c > '9')
                co_return protocol_error();
            n = n * 10 + static_cast<std::size_t>(c - '0');
        }
        while (buf_.size() < n)
            if (auto r = co_await fill_until(deadline); !r)
                co_return r.error();
        res.body = buf_.substr(0, n);
        res.raw_body = res.body;
        buf_.erase(0, n);
        co_return res;
    }

    // Delimited by the end of the connection.
    for (;;) {
        auto r = co_await fill_until(deadline);
        if (!r) {
            if (r.error() != core::errc::end_of_stream)
                co_return r.error();
            break;
        }
    }
    res.body = std::move(buf_);
    res.raw_body = res.body;
    buf_.clear();
    co_return res;
}

core::task<raw_end> raw_client::wait_end(std::chrono::milliseconds timeout) {
    const auto deadline = core::clock::now() + timeout;
    raw_end end;
    end.extra = std::move(buf_);
    buf_.clear();
    for (;;) {
        auto r = co_await fill_until(deadline);
        end.extra += buf_;
        buf_.clear();
        if (!r) {
            end.how = r.error();
            co_return end;
        }
    }
}

} // namespace coronet::testing
