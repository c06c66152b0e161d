#include <coronet/http/client.hpp>

#include <coronet/core/resolve.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/timer.hpp>

#include "wire.hpp"

#include <charconv>

namespace coronet::http {

std::string_view client_response::header(std::string_view name) const noexcept {
    for (const auto& [k, v] : headers)
        if (iequals(k, name))
            return v;
    return {};
}

core::result<url> url::parse(std::string_view text) {
    url u;
    auto sep = text.find("://");
    if (sep == std::string_view::npos)
        return make_error_code(errc::bad_request);
    std::string_view scheme = text.substr(0, sep);
    if (iequals(scheme, "http")) {
        u.scheme = "http";
        u.port = 80;
    } else if (iequals(scheme, "https")) {
        u.scheme = "https";
        u.port = 443;
    } else {
        return make_error_code(errc::bad_request);
    }
    std::string_view rest = text.substr(sep + 3);
    rest = rest.substr(0, rest.find('#')); // a fragment is never sent (RFC 9110 §7.1)
    auto path_at = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, path_at);
    if (authority.empty() || authority.find('@') != std::string_view::npos)
        return make_error_code(errc::bad_request);
    std::string_view host = authority;
    std::string_view port;
    if (authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos)
            return make_error_code(errc::bad_request);
        host = authority.substr(1, close - 1);
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':')
                return make_error_code(errc::bad_request);
            port = authority.substr(close + 2);
        }
    } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (host.empty())
        return make_error_code(errc::bad_request);
    // RFC 3986 §3.2.2: an IP literal holds hex digits, ':' and '.' (then maybe a %25 zone, RFC
    // 6874); a reg-name unreserved, pct-encoded and sub-delims characters. Anything else (':' of
    // an unbracketed IPv6 address, spaces, CR/LF) is refused before it can reach a Host header.
    bool zone = false;
    for (char c : host) {
        const bool digit = c >= '0' && c <= '9';
        const bool alnum = digit || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool ok;
        if (authority.front() != '[')
            ok = alnum || std::string_view("-._~%!$&'()*+,;=").find(c) != std::string_view::npos;
        else if (zone)
            ok = alnum || std::string_view("-._~%").find(c) != std::string_view::npos;
        else
            ok = digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
                 c == '.' || (zone = c == '%');
        if (!ok)
            return make_error_code(errc::bad_request);
    }
    if (!port.empty()) {
        unsigned p = 0;
        auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
        if (ec != std::errc() || ptr != port.data() + port.size() || p == 0 || p > 65535)
            return make_error_code(errc::bad_request);
        u.port = static_cast<std::uint16_t>(p);
    }
    u.host = std::string(host);
    if (path_at != std::string_view::npos) {
        u.target = std::string(rest.substr(path_at));
        if (u.target.front() == '?')
            u.target.insert(0, "/");
    }
    return u;
}

client_connection::client_connection(core::stream_ptr stream, std::string host, client_options opts)
    : stream_(std::move(stream)), host_(std::move(host)), opts_(opts),
      reader_(*stream_, opts.limits.max_header_bytes + opts.limits.max_body_size + 64 * 1024) {}

namespace {
/// Why `req` cannot be sent as is (zero if it can).
std::error_code refusal(const client_request& req, std::string_view host) noexcept {
    for (const auto& [k, v] : req.headers) {
        if (!detail::is_token(k) || !detail::safe_field(v))
            return make_error_code(errc::bad_header);
        // The client frames the body itself; a second, disagreeing length from the caller is
        // exactly what request smuggling is made of.
        if (iequals(k, "content-length") || iequals(k, "transfer-encoding"))
            return make_error_code(errc::bad_header);
    }
    if (!detail::is_token(req.method) || req.target.empty() || !detail::safe_field(req.target) ||
        req.target.find(' ') != std::string::npos || host.empty() || !detail::safe_field(host))
        return make_error_code(errc::bad_request);
    return {};
}
} // namespace

core::task<core::result<client_response>> client_connection::send(client_request req) {
    if (!reusable_)
        co_return make_error_code(core::errc::not_open);
    // Refused before anything is written: the connection stays usable.
    const std::error_code refused = refusal(req, host_);
    if (refused)
        co_return refused;
    auto r = co_await core::with_timeout(opts_.response_timeout, exchange(req));
    if (!r)
        reusable_ = false;
    co_return r;
}

core::task<core::result<client_response>> client_connection::exchange(const client_request& req) {
    std::string out;
    out.reserve(256 + req.body.size());
    out += req.method;
    out += ' ';
    out += req.target;
    out += " HTTP/1.1\r\n";
    // The caller's own Host (a virtual host on a shared address) replaces ours.
    bool caller_host = false;
    for (const auto& [k, v] : req.headers)
        caller_host = caller_host || iequals(k, "host");
    if (!caller_host) {
        out += "Host: ";
        out += host_;
        out += "\r\n";
    }
    for (const auto& [k, v] : req.headers) {
        out += k;
        out += ": ";
        out += v;
        out += "\r\n";
    }
    if (!req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
        out += "Content-Length: ";
        detail::append_uint(out, req.body.size());
        out += "\r\n";
    }
    out += "\r\n";
    out += req.body;
    auto w = co_await stream_->write_all(core::as_bytes(out));
    if (!w)
        co_return w.error();

    response_parser p(opts_.limits);
    for (;;) {
        p.reset();
        p.set_head_request(req.method == "HEAD");
        parse_status st = reader_.buffered().empty() ? parse_status::need_more
                                                     : p.parse(core::as_string(reader_.buffered()));
        while (st == parse_status::need_more) {
            auto got = co_await reader_.fill();
            if (!got) {
                if (got.error() == core::errc::end_of_stream)
                    co_return make_error_code(errc::unexpected_eof);
                co_return got.error();
            }
            st = p.parse(core::as_string(reader_.buffered()));
        }
        if (st == parse_status::error)
            co_return p.error();
        if (p.head().status >= 100 && p.head().status < 200 && p.head().status != 101) {
            reader_.consume(p.head_size()); // 100 Continue and other interim responses
            continue;
        }
        break;
    }

    client_response res;
    {
        const response_head& h = p.head();
        res.status = h.status;
        res.reason = std::string(h.reason);
        res.version_minor = h.version_minor;
        for (const auto& f : h.headers.fields())
            res.headers.emplace_back(f.name, f.value);
        res.keep_alive = h.keep_alive;
    }
    const body_kind kind = p.head().body;
    const std::size_t head_size = p.head_size();
    const std::uint64_t length = p.head().content_length;
    reader_.consume(head_size);
    if (kind == body_kind::content_length) {
        auto b = co_await reader_.read_exactly(static_cast<std::size_t>(length));
        if (!b) {
            if (b.error() == core::errc::end_of_stream)
                co_return make_error_code(errc::unexpected_eof);
            co_return b.error();
        }
        res.body.assign(core::as_string(*b));
        reader_.consume(static_cast<std::size_t>(length));
    } else if (kind == body_kind::chunked) {
        chunked_decoder dec(opts_.limits);
        for (;;) {
            auto step = dec.decode(core::as_string(reader_.buffered()));
            res.body.append(step.data);
            reader_.consume(step.consumed);
            if (step.ec)
                co_return step.ec;
            if (step.done)
                break;
            // decode() stops after each chunk's data: read more only once it makes no progress
            // on what is buffered (the rest of the body may already be here).
            if (step.consumed > 0 && !reader_.buffered().empty())
                continue;
            auto got = co_await reader_.fill();
            if (!got) {
                if (got.error() == core::errc::end_of_stream)
                    co_return make_error_code(errc::unexpected_eof);
                co_return got.error();
            }
        }
    } else if (kind == body_kind::until_close) {
        for (;;) {
            res.body.append(core::as_string(reader_.buffered()));
            reader_.consume(reader_.buffered().size());
            if (res.body.size() > opts_.limits.max_body_size)
                co_return make_error_code(errc::body_too_large);
            auto got = co_await reader_.fill();
            if (!got) {
                if (got.error() == core::errc::end_of_stream)
                    break;
                co_return got.error();
            }
        }
        res.keep_alive = false;
    }
    reusable_ = res.keep_alive && res.status != 101;
    co_return res;
}

client::client(client_options opts) : opts_(opts) {}

client::~client() = default;

core::task<core::result<std::unique_ptr<client_connection>>> client::open(url u) {
    auto addrs = co_await core::resolve(u.host, u.port);
    if (!addrs)
        co_return addrs.error();
    std::error_code last = make_error_code(core::errc::resolve_failed);
    for (const auto& ep : *addrs) {
        auto c = co_await core::tcp_stream::connect(ep);
        if (!c) {
            last = c.error();
            continue;
        }
        core::stream_ptr s = std::make_unique<core::tcp_stream>(std::move(*c));
        if (u.scheme == "https") {
            const core::tls_context* ctx = opts_.tls;
            if (ctx == nullptr) {
                if (!default_tls_.valid()) {
                    auto made = core::tls_context::client({});
                    if (!made)
                        co_return made.error();
                    default_tls_ = std::move(*made);
                }
                ctx = &default_tls_;
            }
            auto t = core::tls_stream::client(*ctx, std::move(s), u.host);
            auto hs = co_await t->handshake();
            if (!hs)
                co_return hs.error();
            s = std::move(t);
        }
        const bool default_port =
            (u.scheme == "http" && u.port == 80) || (u.scheme == "https" && u.port == 443);
        std::string host = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
        if (!default_port)
            host += ":" + std::to_string(u.port);
        co_return std::make_unique<client_connection>(std::move(s), std::move(host), opts_);
    }
    co_return last;
}

core::task<core::result<client_response>> client::fetch(std::string url_text, client_request req) {
    auto u = url::parse(url_text);
    if (!u)
        co_return u.error();
    req.target = u->target;
    const std::string origin = u->scheme + "://" + u->host + ":" + std::to_string(u->port);
    const bool idempotent = req.method == "GET" || req.method == "HEAD";

    std::unique_ptr<client_connection> conn;
    bool reused = false;
    auto& pool = idle_[origin];
    if (!pool.empty()) {
        conn = std::move(pool.back());
        pool.pop_back();
        reused = true;
    } else {
        auto opened = co_await core::with_timeout(opts_.connect_timeout, open(*u));
        if (!opened)
            co_return opened.error();
        conn = std::move(*opened);
    }
    auto r = co_await conn->send(req);
    if (!r && reused && idempotent &&
        (r.error() == errc::unexpected_eof || r.error() == std::errc::connection_reset ||
         r.error() == std::errc::broken_pipe)) {
        // The server closed the idle connection before our request reached it: once more.
        auto opened = co_await core::with_timeout(opts_.connect_timeout, open(*u));
        if (!opened)
            co_return opened.error();
        conn = std::move(*opened);
        r = co_await conn->send(req);
    }
    if (r && conn->reusable()) {
        auto& p = idle_[origin];
        if (p.size() < opts_.max_idle_per_origin)
            p.push_back(std::move(conn));
    }
    co_return r;
}

} // namespace coronet::http
