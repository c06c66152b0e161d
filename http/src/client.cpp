#include <coronet/http/client.hpp>

#include <coronet/core/connect.hpp>
#include <coronet/core/timer.hpp>

#include "wire.hpp"

#include <utility>

namespace coronet::http {

std::string_view client_response::header(std::string_view name) const noexcept {
    for (const auto& [k, v] : headers)
        if (iequals(k, name))
            return v;
    return {};
}

core::result<url> url::parse(std::string_view text) {
    auto parsed = core::url::parse(text);
    if (!parsed || (parsed->scheme != "http" && parsed->scheme != "https"))
        return make_error_code(errc::bad_request);
    url u;
    static_cast<core::url&>(u) = std::move(*parsed);
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

namespace {

/// The request's bytes: request line, Host (unless the caller set one), the caller's headers,
/// Content-Length when there is a body or the method usually has one, then the body.
std::string serialize(const client_request& req, std::string_view host) {
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
        out += host;
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
    return out;
}

/// A read that ended the stream inside a response is the server's fault, said as such.
std::error_code inside_response(std::error_code ec) noexcept {
    return ec == core::errc::end_of_stream ? make_error_code(errc::unexpected_eof) : ec;
}

/// The owned copy of a parsed head (its views point into the reader's buffer).
client_response response_of(const response_head& h) {
    client_response res;
    res.status = h.status;
    res.reason = std::string(h.reason);
    res.version_minor = h.version_minor;
    for (const auto& f : h.headers.fields())
        res.headers.emplace_back(f.name, f.value);
    res.keep_alive = h.keep_alive;
    return res;
}

} // namespace

core::task<core::result<client_response>> client_connection::exchange(const client_request& req) {
    const std::string out = serialize(req, host_);
    auto w = co_await stream_->write_all(core::as_bytes(out));
    if (!w)
        co_return w.error();
    response_parser p(opts_.limits);
    auto head = co_await read_final_head(p, req.method == "HEAD");
    if (!head)
        co_return head.error();
    client_response res = response_of(p.head());
    const body_kind kind = p.head().body;
    const std::uint64_t length = p.head().content_length;
    reader_.consume(p.head_size());
    auto body = co_await read_body(kind, length, res);
    if (!body)
        co_return body.error();
    reusable_ = res.keep_alive && res.status != 101;
    // The response is owned: an idle pooled connection keeps no buffer the loop lent.
    if (!reader_.release_lent())
        reusable_ = false;
    co_return res;
}

// Parses response heads until one is final: 100 Continue and other interim responses are
// skipped (101 is final: the connection changes protocol).
core::task<core::result<void>> client_connection::read_final_head(response_parser& p,
                                                                  bool head_request) {
    for (;;) {
        p.reset();
        p.set_head_request(head_request);
        parse_status st = reader_.buffered().empty() ? parse_status::need_more
                                                     : p.parse(core::as_string(reader_.buffered()));
        while (st == parse_status::need_more) {
            auto got = co_await reader_.fill();
            if (!got)
                co_return inside_response(got.error());
            st = p.parse(core::as_string(reader_.buffered()));
        }
        if (st == parse_status::error)
            co_return p.error();
        if (p.head().status < 100 || p.head().status >= 200 || p.head().status == 101)
            co_return core::result<void>{};
        reader_.consume(p.head_size());
    }
}

core::task<core::result<void>> client_connection::read_body(body_kind kind, std::uint64_t length,
                                                            client_response& res) {
    if (kind == body_kind::content_length) {
        auto b = co_await reader_.read_exactly(static_cast<std::size_t>(length));
        if (!b)
            co_return inside_response(b.error());
        res.body.assign(core::as_string(*b));
        reader_.consume(static_cast<std::size_t>(length));
    } else if (kind == body_kind::chunked) {
        co_return co_await read_chunked_body(res.body);
    } else if (kind == body_kind::until_close) {
        res.keep_alive = false;
        co_return co_await read_body_until_close(res.body);
    }
    co_return core::result<void>{};
}

core::task<core::result<void>> client_connection::read_chunked_body(std::string& body) {
    chunked_decoder dec(opts_.limits);
    for (;;) {
        auto step = dec.decode(core::as_string(reader_.buffered()));
        body.append(step.data);
        reader_.consume(step.consumed);
        if (step.ec)
            co_return step.ec;
        if (step.done)
            co_return core::result<void>{};
        // decode() stops after each chunk's data: read more only once it makes no progress on
        // what is buffered (the rest of the body may already be here).
        if (step.consumed > 0 && !reader_.buffered().empty())
            continue;
        auto got = co_await reader_.fill();
        if (!got)
            co_return inside_response(got.error());
    }
}

core::task<core::result<void>> client_connection::read_body_until_close(std::string& body) {
    for (;;) {
        body.append(core::as_string(reader_.buffered()));
        reader_.consume(reader_.buffered().size());
        if (body.size() > opts_.limits.max_body_size)
            co_return make_error_code(errc::body_too_large);
        auto got = co_await reader_.fill();
        if (!got) {
            if (got.error() == core::errc::end_of_stream)
                co_return core::result<void>{};
            co_return got.error();
        }
    }
}

client::client(client_options opts) : opts_(opts) {}

client::~client() = default;

core::task<core::result<std::unique_ptr<client_connection>>> client::open(url u) {
    const core::tls_context* ctx = nullptr;
    if (u.secure()) {
        ctx = opts_.tls;
        if (ctx == nullptr) {
            if (!default_tls_.valid()) {
                auto made = core::tls_context::client({});
                if (!made)
                    co_return made.error();
                default_tls_ = std::move(*made);
            }
            ctx = &default_tls_;
        }
    }
    auto s = co_await core::connect(u.host, u.port, ctx);
    if (!s)
        co_return s.error();
    co_return std::make_unique<client_connection>(std::move(*s), u.authority(), opts_);
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
