#include <coronet/http/client.hpp>

#include <coronet/core/buffered_reader.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/tls.hpp>
#include <coronet/core/url.hpp>
#include <coronet/core/when.hpp>
#include <coronet/http/error.hpp>

#include <testing/backends.hpp>
#include <testing/certs.hpp>
#include <testing/memory_stream.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace core = coronet::core;
namespace http = coronet::http;
namespace ct = coronet::testing;
using coronet::testing::run_on;
using namespace std::chrono_literals;

namespace {

/// A one-shot readiness signal: `co_await ev.wait()` resumes once `set()` was called (or the
/// waiter's stop token fired; then it yields false).
class event {
public:
    struct awaiter : core::stop_callback_base {
        explicit awaiter(event& e) noexcept : stop_callback_base(&on_stop), ev(&e) {}
        bool await_ready() const noexcept { return ev->set_; }
        template <class P>
        bool await_suspend(std::coroutine_handle<P> h) {
            core::stop_token tok = core::detail::token_of(h);
            if (tok.stop_requested())
                return false;
            handle = h;
            ev->waiter_ = this;
            attach(tok.source());
            return true;
        }
        bool await_resume() noexcept {
            detach();
            return ev->set_;
        }
        void resume_later() noexcept {
            auto h = handle;
            core::loop::current()->post([h] { h.resume(); });
        }
        static void on_stop(core::stop_callback_base* cb) noexcept {
            auto* a = static_cast<awaiter*>(cb);
            a->ev->waiter_ = nullptr;
            a->resume_later();
        }
        event* ev;
        std::coroutine_handle<> handle;
    };

    void set() noexcept {
        set_ = true;
        if (waiter_ != nullptr) {
            awaiter* w = std::exchange(waiter_, nullptr);
            w->detach();
            w->resume_later();
        }
    }
    awaiter wait() noexcept { return awaiter(*this); }

private:
    bool set_ = false;
    awaiter* waiter_ = nullptr;
};

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = static_cast<char>(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

// ---- the scripted raw server ----------------------------------------------------------------

/// A request as the server received it, byte for byte.
struct raw_request {
    std::string head; ///< request line, fields, empty line
    std::string body;

    std::string request_line() const { return head.substr(0, head.find("\r\n")); }
    /// Every value of the fields named `name` (case-insensitive), trimmed.
    std::vector<std::string> values(std::string_view name) const {
        std::vector<std::string> out;
        std::size_t pos = head.find("\r\n") + 2;
        while (pos < head.size()) {
            std::size_t end = head.find("\r\n", pos);
            if (end == pos || end == std::string::npos)
                break;
            std::string_view line(head.data() + pos, end - pos);
            std::size_t colon = line.find(':');
            if (colon != std::string_view::npos && iequal(line.substr(0, colon), name)) {
                std::string_view v = line.substr(colon + 1);
                while (!v.empty() && v.front() == ' ')
                    v.remove_prefix(1);
                while (!v.empty() && v.back() == ' ')
                    v.remove_suffix(1);
                out.emplace_back(v);
            }
            pos = end + 2;
        }
        return out;
    }
    std::string header(std::string_view name) const {
        auto v = values(name);
        return v.empty() ? std::string() : v.front();
    }
};

/// Reads one request head and its Content-Length body.
core::task<core::result<raw_request>> read_request(core::buffered_reader& rd) {
    auto head = co_await rd.read_until(std::string("\r\n\r\n"), 64 * 1024);
    if (!head)
        co_return head.error();
    raw_request req;
    req.head.assign(core::as_string(*head));
    rd.consume(head->size());
    std::string cl = req.header("content-length");
    if (!cl.empty()) {
        std::size_t n = std::stoul(cl);
        auto body = co_await rd.read_exactly(n);
        if (!body)
            co_return body.error();
        req.body.assign(core::as_string(*body));
        rd.consume(n);
    }
    co_return req;
}

/// What the server does on its n-th accepted connection.
struct conn_script {
    /// Written after each request read, in order; "" reads the request and never answers.
    std::vector<std::string> responses;
    /// Close the connection after the last response (otherwise hold it until the client
    /// closes it or the test ends).
    bool close_after = false;
    /// Write the responses at once, without reading any request.
    bool no_read = false;
};

/// A raw HTTP/1.1 server on 127.0.0.1:<ephemeral>: accepts connections, counts them, records
/// every request, and answers with canned bytes from `scripts` (by accept order; a connection
/// without a script is closed at once).
struct raw_server {
    raw_server(core::loop& lp, std::vector<conn_script> s) : scripts(std::move(s)) {
        listener = ct::listen_local(lp);
        port = ct::endpoint_of(listener).port();
    }

    std::string url(std::string_view target = "/", std::string_view scheme = "http") const {
        return std::string(scheme) + "://127.0.0.1:" + std::to_string(port) + std::string(target);
    }
    std::string host() const { return "127.0.0.1:" + std::to_string(port); }

    core::tcp_listener listener;
    std::uint16_t port = 0;
    std::vector<conn_script> scripts;
    const core::tls_context* tls = nullptr; ///< set: every connection is TLS
    int accepts = 0;
    std::vector<raw_request> requests;
    std::vector<std::error_code> handshake_errors;
    event closed; ///< set when a script closed its connection
};

core::task<void> hold_until_eof(core::stream& s) {
    char buf[1024];
    for (;;) {
        auto r = co_await s.read_some(
            core::mutable_buffer(reinterpret_cast<std::byte*>(buf), sizeof buf));
        if (!r)
            co_return;
    }
}

core::task<void> serve_connection(raw_server& srv, core::tcp_stream sock, std::size_t index) {
    core::stream_ptr s = std::make_unique<core::tcp_stream>(std::move(sock));
    if (srv.tls != nullptr) {
        auto t = core::tls_stream::server(*srv.tls, std::move(s));
        auto hs = co_await t->handshake();
        if (!hs) {
            srv.handshake_errors.push_back(hs.error());
            co_return;
        }
        s = std::move(t);
    }
    if (index >= srv.scripts.size())
        co_return; // unexpected connection: closed at once
    const conn_script& script = srv.scripts[index];
    core::buffered_reader rd(*s);
    for (const std::string& response : script.responses) {
        if (!script.no_read) {
            auto req = co_await read_request(rd);
            if (!req)
                co_return;
            srv.requests.push_back(std::move(*req));
        }
        if (response.empty())
            break;
        auto w = co_await s->write_all(core::as_bytes(response));
        if (!w)
            co_return;
    }
    if (script.close_after) {
        s->close();
        srv.closed.set();
        co_return;
    }
    co_await hold_until_eof(*s);
}

core::task<void> accept_loop(raw_server& srv, core::task_scope& scope) {
    for (;;) {
        auto c = co_await srv.listener.accept();
        if (!c)
            co_return;
        std::size_t index = static_cast<std::size_t>(srv.accepts++);
        scope.spawn(serve_connection(srv, std::move(*c), index));
    }
}

/// Runs `client` while `srv` serves; then stops the server's tasks and waits for them.
core::task<void> with_server(raw_server& srv, core::task<void> client) {
    core::stop_token parent = co_await core::get_stop_token();
    core::task_scope scope(parent);
    scope.spawn(accept_loop(srv, scope));
    std::exception_ptr error;
    try {
        co_await std::move(client);
    } catch (...) {
        error = std::current_exception();
    }
    scope.request_stop();
    co_await scope.join();
    if (error)
        std::rethrow_exception(error);
}

/// Client options for tests: short deadlines so a hang fails inside the case's bound.
http::client_options test_options() {
    http::client_options o;
    o.connect_timeout = 5s;
    o.response_timeout = 5s;
    return o;
}

http::client_request request(std::string method, std::string body = {}) {
    http::client_request r;
    r.method = std::move(method);
    r.body = std::move(body);
    return r;
}

// ---- TLS material -----------------------------------------------------------------------------

struct tls_material {
    ct::temp_dir dir;
    core::tls_context server;
    core::tls_context client; ///< trusts the test CA
};

const tls_material& tls() {
    static const tls_material m = [] {
        tls_material t;
        const auto& pki = ct::test_certificates();
        core::tls_server_options so;
        so.cert_pem = pki.server.cert_pem;
        so.key_pem = pki.server.key_pem;
        auto s = core::tls_context::server(so);
        REQUIRE_MESSAGE(s, s.error().message());
        t.server = std::move(*s);
        core::tls_client_options co;
        co.ca_file = t.dir.write("ca.pem", pki.ca_pem);
        auto c = core::tls_context::client(co);
        REQUIRE_MESSAGE(c, c.error().message());
        t.client = std::move(*c);
        return t;
    }();
    return m;
}

// ---- bodies: framing ----------------------------------------------------------------------------

core::task<void> content_length_client(raw_server& srv) {
    http::client c(test_options());
    http::client_request req = request("POST", "data");
    req.headers = {{"X-Custom", "one two"}, {"Accept", "text/plain"}};
    auto r = co_await c.fetch(srv.url("/submit?x=1"), req);
    REQUIRE_MESSAGE(r, r.error().message());
    CHECK(r->status == 201);
    CHECK(r->reason == "Created");
    CHECK(r->version_minor == 1);
    CHECK(r->header("x-served-by") == "raw");
    CHECK(r->body == "hello");
    CHECK(r->keep_alive);

    REQUIRE(srv.requests.size() == 1);
    const raw_request& got = srv.requests[0];
    CHECK(got.request_line() == "POST /submit?x=1 HTTP/1.1");
    CHECK(got.values("host") == std::vector<std::string>{srv.host()});
    CHECK(got.header("x-custom") == "one two");
    CHECK(got.header("accept") == "text/plain");
    CHECK(got.values("content-length") == std::vector<std::string>{"4"});
    CHECK(got.body == "data");
}

core::task<void> content_length_case(core::loop& lp) {
    raw_server srv(
        lp, {{{"HTTP/1.1 201 Created\r\nX-Served-By: raw\r\nContent-Length: 5\r\n\r\nhello"}}});
    co_await with_server(srv, content_length_client(srv));
}

core::task<void> get_has_no_content_length_client(raw_server& srv) {
    http::client c(test_options());
    auto r = co_await c.fetch(srv.url("/plain"));
    REQUIRE_MESSAGE(r, r.error().message());
    CHECK(r->body == "ok");
    REQUIRE(srv.requests.size() == 1);
    CHECK(srv.requests[0].request_line() == "GET /plain HTTP/1.1");
    CHECK(srv.requests[0].values("content-length").empty());
    CHECK(srv.requests[0].body.empty());
}

core::task<void> get_has_no_content_length_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"}}});
    co_await with_server(srv, get_has_no_content_length_client(srv));
}

core::task<void> chunked_client(raw_server& srv) {
    http::client c(test_options());
    auto r = co_await c.fetch(srv.url("/chunked"));
    REQUIRE_MESSAGE(r, r.error().message());
    CHECK(r->status == 200);
    CHECK(r->body == "hello, world");
    // The trailer section was consumed exactly: the next response on the connection parses.
    auto again = co_await c.fetch(srv.url("/after"));
    REQUIRE_MESSAGE(again, again.error().message());
    CHECK(again->body == "next");
    CHECK(srv.accepts == 1);
}

core::task<void> chunked_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5;name=value\r\nhello\r\n"
                          "7 ; q=\"a b\";flag\r\n, world\r\n"
                          "0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"}}});
    co_await with_server(srv, chunked_client(srv));
}

core::task<void> until_close_client(raw_server& srv) {
    http::client c(test_options());
    auto r = co_await c.fetch(srv.url());
    REQUIRE_MESSAGE(r, r.error().message());
    CHECK(r->status == 200);
    CHECK(r->body == "everything until the end");
    CHECK_FALSE(r->keep_alive);
    auto again = co_await c.fetch(srv.url());
    REQUIRE_MESSAGE(again, again.error().message());
    CHECK(again->body == "second");
    CHECK(srv.accepts == 2);
}

core::task<void> until_close_case(core::loop& lp) {
    raw_server srv(
        lp,
        {{{"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\neverything until the end"}, true},
         {{"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"}}});
    co_await with_server(srv, until_close_client(srv));
}

core::task<void> large_bodies_client(raw_server& srv, std::string expected) {
    http::client c(test_options());
    auto a = co_await c.fetch(srv.url("/cl"));
    REQUIRE_MESSAGE(a, a.error().message());
    CHECK(a->body.size() == expected.size());
    CHECK(a->body == expected);
    auto b = co_await c.fetch(srv.url("/chunked"));
    REQUIRE_MESSAGE(b, b.error().message());
    CHECK(b->body.size() == expected.size());
    CHECK(b->body == expected);
    CHECK(srv.accepts == 1);
}

core::task<void> large_bodies_case(core::loop& lp) {
    std::string body(1024 * 1024 + 17, '\0');
    for (std::size_t i = 0; i < body.size(); ++i)
        body[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
    std::string cl =
        "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    static constexpr char hex[] = "0123456789abcdef";
    for (std::size_t at = 0; at < body.size(); at += 5000) {
        std::size_t n = std::min<std::size_t>(5000, body.size() - at);
        std::string size;
        for (std::size_t v = n; v != 0; v /= 16)
            size.insert(size.begin(), hex[v % 16]);
        chunked += size + "\r\n" + body.substr(at, n) + "\r\n";
    }
    chunked += "0\r\n\r\n";
    raw_server srv(lp, {{{cl, chunked}}});
    co_await with_server(srv, large_bodies_client(srv, body));
}

core::task<void> continue_client(raw_server& srv) {
    http::client c(test_options());
    auto r = co_await c.fetch(srv.url("/upload"), request("PUT", "payload"));
    REQUIRE_MESSAGE(r, r.error().message());
    CHECK(r->status == 200);
    CHECK(r->body == "stored");
    CHECK(r->header("link").empty()); // the 103's field is not the final response's
    CHECK(r->header("x-final") == "yes");
    REQUIRE(srv.requests.size() == 1);
    CHECK(srv.requests[0].body == "payload");
}

core::task<void> continue_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 100 Continue\r\n\r\n"
                          "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                          "HTTP/1.1 200 OK\r\nX-Final: yes\r\nContent-Length: 6\r\n\r\nstored"}}});
    co_await with_server(srv, continue_client(srv));
}

core::task<void> head_client(raw_server& srv) {
    http::client c(test_options());
    auto r = co_await c.fetch(srv.url("/big"), request("HEAD"));
    REQUIRE_MESSAGE(r, r.error().message());
    CHECK(r->status == 200);
    CHECK(r->header("content-length") == "1000");
    CHECK(r->body.empty());
    // No body bytes were expected: the next response on the same connection is read intact.
    auto next = co_await c.fetch(srv.url("/small"));
    REQUIRE_MESSAGE(next, next.error().message());
    CHECK(next->body == "abc");
    CHECK(srv.accepts == 1);
    REQUIRE(srv.requests.size() == 2);
    CHECK(srv.requests[0].request_line() == "HEAD /big HTTP/1.1");
}

core::task<void> head_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"}}});
    co_await with_server(srv, head_client(srv));
}

core::task<void> no_body_statuses_client(raw_server& srv) {
    http::client c(test_options());
    auto a = co_await c.fetch(srv.url("/a"));
    REQUIRE_MESSAGE(a, a.error().message());
    CHECK(a->status == 204);
    CHECK(a->body.empty());
    auto b = co_await c.fetch(srv.url("/b"));
    REQUIRE_MESSAGE(b, b.error().message());
    CHECK(b->status == 304);
    CHECK(b->header("content-length") == "10");
    CHECK(b->body.empty());
    auto d = co_await c.fetch(srv.url("/c"));
    REQUIRE_MESSAGE(d, d.error().message());
    CHECK(d->status == 200);
    CHECK(d->body == "x");
    CHECK(srv.accepts == 1);
}

core::task<void> no_body_statuses_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 204 No Content\r\n\r\n",
                          "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"v1\"\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"}}});
    co_await with_server(srv, no_body_statuses_client(srv));
}

// ---- bodies: connection reuse
// ---------------------------------------------------------------------

core::task<void> reuse_client(raw_server& srv) {
    http::client c(test_options());
    auto a = co_await c.fetch(srv.url("/one"));
    REQUIRE_MESSAGE(a, a.error().message());
    auto b = co_await c.fetch(srv.url("/two"));
    REQUIRE_MESSAGE(b, b.error().message());
    CHECK(a->body == "1");
    CHECK(b->body == "2");
    CHECK(srv.accepts == 1);
    REQUIRE(srv.requests.size() == 2);
    CHECK(srv.requests[0].request_line() == "GET /one HTTP/1.1");
    CHECK(srv.requests[1].request_line() == "GET /two HTTP/1.1");
}

core::task<void> reuse_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1",
                          "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"}}});
    co_await with_server(srv, reuse_client(srv));
}

core::task<void> not_reused_client(raw_server& srv) {
    http::client c(test_options());
    auto a = co_await c.fetch(srv.url("/one"));
    REQUIRE_MESSAGE(a, a.error().message());
    CHECK(a->body == "1");
    CHECK_FALSE(a->keep_alive);
    auto b = co_await c.fetch(srv.url("/two"));
    REQUIRE_MESSAGE(b, b.error().message());
    CHECK(b->body == "2");
    CHECK(srv.accepts == 2);
    CHECK(srv.requests.size() == 2);
}

core::task<void> connection_close_case(core::loop& lp) {
    // The server keeps its side open: the client must not reuse it because of the header alone.
    raw_server srv(lp, {{{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n1"}},
                        {{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"}}});
    co_await with_server(srv, not_reused_client(srv));
}

core::task<void> http10_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n1"}},
                        {{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"}}});
    co_await with_server(srv, not_reused_client(srv));
}

core::task<void> idle_closed_client(raw_server& srv, std::string method) {
    http::client c(test_options());
    auto a = co_await c.fetch(srv.url("/first"));
    REQUIRE_MESSAGE(a, a.error().message());
    CHECK(a->body == "1");
    CHECK(a->keep_alive);
    // The server closes the idle connection before the next request is sent.
    bool closed = co_await srv.closed.wait();
    REQUIRE(closed);
    auto b = co_await c.fetch(srv.url("/second"), request(method, method == "POST" ? "p" : ""));
    if (method == "GET") {
        REQUIRE_MESSAGE(b, b.error().message());
        CHECK(b->body == "2");
        CHECK(srv.accepts == 2);
        REQUIRE(srv.requests.size() == 2);
        CHECK(srv.requests[1].request_line() == "GET /second HTTP/1.1");
    } else {
        // Not idempotent: the failure is reported, no second connection carries the request.
        REQUIRE_FALSE(b);
        CHECK((b.error() == http::errc::unexpected_eof ||
               b.error() == std::errc::connection_reset || b.error() == std::errc::broken_pipe));
        CHECK(srv.accepts == 1);
        CHECK(srv.requests.size() == 1);
    }
}

core::task<void> idle_closed_case(core::loop& lp, std::string method) {
    raw_server srv(lp, {{{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"}, true},
                        {{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"}}});
    co_await with_server(srv, idle_closed_client(srv, method));
}

core::task<void> max_idle_zero_client(raw_server& srv) {
    http::client_options o = test_options();
    o.max_idle_per_origin = 0;
    http::client c(o);
    auto a = co_await c.fetch(srv.url());
    REQUIRE_MESSAGE(a, a.error().message());
    auto b = co_await c.fetch(srv.url());
    REQUIRE_MESSAGE(b, b.error().message());
    CHECK(srv.accepts == 2);
}

core::task<void> max_idle_zero_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"}},
                        {{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"}}});
    co_await with_server(srv, max_idle_zero_client(srv));
}

// ---- bodies: errors
// -------------------------------------------------------------------------------

/// Fetches once per script (each on a new connection: failed connections are never reused)
/// and checks every fetch failed with `expected`.
core::task<void> expect_errors_client(raw_server& srv, http::client_options o,
                                      std::error_code expected) {
    http::client c(o);
    for (std::size_t i = 0; i < srv.scripts.size(); ++i) {
        CAPTURE(i);
        auto r = co_await c.fetch(srv.url());
        REQUIRE_FALSE(r);
        CHECK_MESSAGE(r.error() == expected, r.error().message());
    }
    CHECK(srv.accepts == static_cast<int>(srv.scripts.size()));
}

core::task<void> expect_errors_case(core::loop& lp, std::vector<conn_script> scripts,
                                    http::client_options o, std::error_code expected) {
    raw_server srv(lp, std::move(scripts));
    co_await with_server(srv, expect_errors_client(srv, o, expected));
}

http::client_options small_limits() {
    http::client_options o = test_options();
    o.limits.max_body_size = 16;
    o.limits.max_header_bytes = 256;
    return o;
}

core::task<void> body_limit_case(core::loop& lp) {
    std::string big(17, 'b');
    std::vector<conn_script> scripts = {
        {{"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n" + big}},
        {{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + big.substr(0, 16) +
          "\r\n1\r\nb\r\n0\r\n\r\n"}},
        {{"HTTP/1.1 200 OK\r\n\r\n" + big}, true}};
    co_await expect_errors_case(lp, std::move(scripts), small_limits(), http::errc::body_too_large);
}

core::task<void> body_at_limit_client(raw_server& srv) {
    http::client c(small_limits());
    auto r = co_await c.fetch(srv.url());
    REQUIRE_MESSAGE(r, r.error().message());
    CHECK(r->body == std::string(16, 'b'));
}

core::task<void> body_at_limit_case(core::loop& lp) {
    raw_server srv(lp,
                   {{{"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n" + std::string(16, 'b')}}});
    co_await with_server(srv, body_at_limit_client(srv));
}

core::task<void> header_limit_case(core::loop& lp) {
    std::string filler = "X-Filler: " + std::string(300, 'f') + "\r\n";
    std::vector<conn_script> scripts = {
        {{"HTTP/1.1 200 OK\r\n" + filler + "Content-Length: 0\r\n\r\n"}}};
    co_await expect_errors_case(lp, std::move(scripts), small_limits(),
                                http::errc::header_too_large);
}

core::task<void> bad_status_case(core::loop& lp) {
    std::vector<conn_script> scripts = {{{"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"}},
                                        {{"HTTQ/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"}},
                                        {{"HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n"}},
                                        {{"HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n"}},
                                        {{"200 OK\r\nContent-Length: 0\r\n\r\n"}}};
    co_await expect_errors_case(lp, std::move(scripts), test_options(),
                                http::errc::bad_status_line);
}

core::task<void> premature_eof_case(core::loop& lp) {
    std::vector<conn_script> scripts = {
        {{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"}, true},
        {{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"}, true},
        {{"HTTP/1.1 200 OK\r\nContent-Le"}, true}};
    co_await expect_errors_case(lp, std::move(scripts), test_options(), http::errc::unexpected_eof);
}

core::task<void> response_timeout_client(raw_server& srv) {
    http::client_options o = test_options();
    o.response_timeout = 200ms;
    http::client c(o);
    auto start = core::clock::now();
    auto r = co_await c.fetch(srv.url("/slow"));
    auto took = core::clock::now() - start;
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(r.error() == core::errc::timed_out, r.error().message());
    CHECK(took >= 150ms);
    CHECK(took < 4s);
    CHECK(srv.requests.size() == 1); // the request went out; the answer never came
}

core::task<void> response_timeout_case(core::loop& lp) {
    raw_server srv(lp, {{{""}}});
    co_await with_server(srv, response_timeout_client(srv));
}

core::task<void> refused_case(core::loop& lp) {
    std::uint16_t port = 0;
    {
        auto l = core::tcp_listener::bind(lp, core::endpoint::loopback_v4(0));
        REQUIRE(l);
        port = l->local_endpoint()->port();
    } // closed: nobody listens on the port now
    http::client c(test_options());
    auto r = co_await c.fetch("http://127.0.0.1:" + std::to_string(port) + "/");
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(r.error() == std::errc::connection_refused, r.error().message());
}

// ---- bodies: TLS
// ------------------------------------------------------------------------------------

core::task<void> https_client(raw_server& srv) {
    http::client_options o = test_options();
    o.tls = &tls().client;
    http::client c(o);
    auto a = co_await c.fetch(srv.url("/secure", "https"));
    REQUIRE_MESSAGE(a, a.error().message());
    CHECK(a->body == "secret");
    auto b = co_await c.fetch(srv.url("/again", "https"));
    REQUIRE_MESSAGE(b, b.error().message());
    CHECK(b->body == "more");
    CHECK(srv.accepts == 1);
    REQUIRE(srv.requests.size() == 2);
    CHECK(srv.requests[0].request_line() == "GET /secure HTTP/1.1");
    CHECK(srv.requests[0].header("host") == srv.host());
    CHECK(srv.handshake_errors.empty());
}

core::task<void> https_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret",
                          "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmore"}}});
    srv.tls = &tls().server;
    co_await with_server(srv, https_client(srv));
}

core::task<void> https_untrusted_client(raw_server& srv) {
    http::client c(test_options()); // tls == nullptr: the system store, which lacks the test CA
    auto r = co_await c.fetch(srv.url("/secure", "https"));
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(r.error().category() == core::tls_verify_category(), r.error().message());
    CHECK(srv.requests.empty());
}

core::task<void> https_untrusted_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret"}}});
    srv.tls = &tls().server;
    co_await with_server(srv, https_untrusted_client(srv));
}

core::task<void> https_to_plain_client(raw_server& srv) {
    http::client_options o = test_options();
    o.tls = &tls().client;
    http::client c(o);
    auto r = co_await c.fetch(srv.url("/", "https"));
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(r.error().category() == core::tls_category(), r.error().message());
}

core::task<void> https_to_plain_case(core::loop& lp) {
    raw_server srv(lp, {{{"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"}, true, true}});
    co_await with_server(srv, https_to_plain_client(srv));
}

// ---- bodies: any stream
// ---------------------------------------------------------------------------

core::task<void> memory_server(core::stream& s, std::vector<raw_request>& seen) {
    core::buffered_reader rd(s);
    const char* responses[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
        "chunked\r\n\r\n3;x=y\r\nsec\r\n3\r\nond\r\n0\r\n\r\n",
    };
    for (const char* resp : responses) {
        auto req = co_await read_request(rd);
        if (!req)
            co_return;
        seen.push_back(std::move(*req));
        auto w = co_await s.write_all(core::as_bytes(resp));
        if (!w)
            co_return;
    }
}

core::task<void> memory_client(http::client_connection& conn) {
    http::client_request a = request("POST", "abc");
    a.target = "/m?q=1";
    auto r1 = co_await conn.send(a);
    REQUIRE_MESSAGE(r1, r1.error().message());
    CHECK(r1->body == "first");
    CHECK(conn.reusable());
    auto r2 = co_await conn.send(request("GET"));
    REQUIRE_MESSAGE(r2, r2.error().message());
    CHECK(r2->body == "second");
    CHECK(conn.reusable());
}

core::task<void> memory_stream_case(core::loop& lp) {
    auto [client_end, server_end] = ct::memory_stream_pair(lp);
    client_end->set_max_read(1); // every response byte arrives in its own read
    server_end->set_max_write(3);
    std::vector<raw_request> seen;
    core::stream& server_ref = *server_end;
    http::client_connection conn(std::move(client_end), "example.test", test_options());
    co_await core::when_all(memory_server(server_ref, seen), memory_client(conn));
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].request_line() == "POST /m?q=1 HTTP/1.1");
    CHECK(seen[0].header("host") == "example.test");
    CHECK(seen[0].body == "abc");
    CHECK(seen[1].request_line() == "GET / HTTP/1.1");
}

core::task<void> injection_case(core::loop& lp) {
    auto [client_end, server_end] = ct::memory_stream_pair(lp);
    ct::memory_stream& client_ref = *client_end;
    http::client_connection conn(std::move(client_end), "example.test", test_options());
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"X-Evil", "a\r\nInjected: 1"}, {"X-Evil", "a\nb"}, {"X-Evil", "a\rb"},
        {"X-Evil\r\nInjected", "1"},    {"Bad Name", "v"},  {"", "v"}};
    for (const auto& [name, value] : bad) {
        CAPTURE(name);
        CAPTURE(value);
        http::client_request req;
        req.headers = {{name, value}};
        auto r = co_await conn.send(req);
        REQUIRE_FALSE(r);
        CHECK(r.error() == http::errc::bad_header);
    }
    CHECK(client_ref.operations() == 0); // nothing was written
    CHECK(server_end->readable() == 0);
    // A refused request sent nothing, so the connection still carries the next one.
    CHECK(conn.reusable());
    std::vector<raw_request> seen;
    co_await core::when_all(memory_server(*server_end, seen), memory_client(conn));
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].values("x-evil").empty());
    CHECK(seen[0].values("injected").empty());
}

core::task<void> bad_host_case(core::loop& lp) {
    auto [client_end, server_end] = ct::memory_stream_pair(lp);
    ct::memory_stream& client_ref = *client_end;
    http::client_connection conn(std::move(client_end), "h\r\nInjected: 1", test_options());
    auto r = co_await conn.send(request("GET"));
    REQUIRE_FALSE(r);
    CHECK(r.error() == http::errc::bad_request);
    CHECK(client_ref.operations() == 0);
    CHECK(server_end->readable() == 0);
}

} // namespace

TEST_SUITE("http.client") {

    // ---- url::parse
    // ------------------------------------------------------------------------------------

    TEST_CASE("url::parse fills in the default port of each scheme and the root target") {
        auto a = http::url::parse("http://example.com");
        REQUIRE(a);
        CHECK(a->scheme == "http");
        CHECK(a->host == "example.com");
        CHECK(a->port == 80);
        CHECK(a->target == "/");
        auto b = http::url::parse("https://example.com/x/y?z=1");
        REQUIRE(b);
        CHECK(b->scheme == "https");
        CHECK(b->port == 443);
        CHECK(b->target == "/x/y?z=1");
        auto c = http::url::parse("HTTP://Example.com/");
        REQUIRE(c);
        CHECK(c->scheme == "http");
    }

    TEST_CASE("url::parse reads explicit ports and IPv6 literals and a query without a path") {
        auto a = http::url::parse("http://127.0.0.1:8080/p");
        REQUIRE(a);
        CHECK(a->host == "127.0.0.1");
        CHECK(a->port == 8080);
        CHECK(a->target == "/p");
        auto b = http::url::parse("https://[::1]:8443/v6?x");
        REQUIRE(b);
        CHECK(b->host == "::1");
        CHECK(b->port == 8443);
        CHECK(b->target == "/v6?x");
        auto c = http::url::parse("http://[::1]");
        REQUIRE(c);
        CHECK(c->host == "::1");
        CHECK(c->port == 80);
        auto d = http::url::parse("http://h?x");
        REQUIRE(d);
        CHECK(d->host == "h");
        CHECK(d->target == "/?x");
        auto e = http::url::parse("http://h:65535");
        REQUIRE(e);
        CHECK(e->port == 65535);
    }

    TEST_CASE("url::parse drops the fragment since it is never sent") {
        auto a = http::url::parse("http://h/p?q=1#frag");
        REQUIRE(a);
        CHECK(a->host == "h");
        CHECK(a->target == "/p?q=1");
        auto b = http::url::parse("http://h:81#frag");
        REQUIRE(b);
        CHECK(b->host == "h");
        CHECK(b->port == 81);
        CHECK(b->target == "/");
    }

    TEST_CASE("url::parse rejects other schemes and empty hosts and bad ports and bad hosts") {
        for (const char* text : {"ftp://h/",
                                 "ws://h/",
                                 "h/path",
                                 "http:/h",
                                 "://h",
                                 "http://",
                                 "http:///path",
                                 "http://:80/",
                                 "http://[]:80/",
                                 "http://[::1/",
                                 "http://[::1]x/",
                                 "http://h:0/",
                                 "http://h:65536/",
                                 "http://h:99999999999/",
                                 "http://h:-1/",
                                 "http://h:8a/",
                                 "http://h: 80/",
                                 "http://user@h/",
                                 "http://a b/",
                                 "http://h\r\nX: y/",
                                 "http://h\r\nX/",
                                 "http://h\tx/",
                                 "http://h\"/",
                                 "http://::1/",
                                 "http://[::1]]/",
                                 "http://[g::1]/"}) {
            const std::string shown = text;
            CAPTURE(shown);
            auto u = http::url::parse(text);
            CHECK_FALSE(u);
            if (!u)
                CHECK(u.error() == http::errc::bad_request);
        }
    }

    TEST_CASE("an http::url is a core::url whose authority is the Host the client sends") {
        auto u = http::url::parse("https://[::1]:8443/x?y");
        REQUIRE(u);
        const core::url& base = *u;
        CHECK(base.secure());
        CHECK(base.authority() == "[::1]:8443");
        CHECK(base.target == "/x?y");
        auto d = http::url::parse("http://example.com:80/");
        REQUIRE(d);
        CHECK(d->authority() == "example.com");
        CHECK_FALSE(d->secure());
    }

    // ---- framing
    // -----------------------------------------------------------------------------------------

    TEST_CASE_TEMPLATE("a POST sends its request line and Host with the port and headers and a "
                       "Content-Length body "
                       "and reads a Content-Length response",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return content_length_case(lp); });
    }

    TEST_CASE_TEMPLATE("a GET without a body sends no Content-Length", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return get_has_no_content_length_case(lp); });
    }

    TEST_CASE_TEMPLATE(
        "a chunked response with extensions and trailers is decoded and the connection is reused",
        B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return chunked_case(lp); });
    }

    TEST_CASE_TEMPLATE(
        "a response without Content-Length or Transfer-Encoding is read until the server closes", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return until_close_case(lp); });
    }

    TEST_CASE_TEMPLATE("1 MiB Content-Length and chunked bodies arrive intact", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return large_bodies_case(lp); });
    }

    TEST_CASE_TEMPLATE(
        "100 Continue and 103 interim responses are skipped before the final response", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return continue_case(lp); });
    }

    TEST_CASE_TEMPLATE("a HEAD response with Content-Length has no body", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return head_case(lp); });
    }

    TEST_CASE_TEMPLATE("204 and 304 responses have no body even with Content-Length", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return no_body_statuses_case(lp); });
    }

    // ---- connection reuse
    // ------------------------------------------------------------------------------

    TEST_CASE_TEMPLATE("two fetches of the same origin share one keep-alive connection", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return reuse_case(lp); });
    }

    TEST_CASE_TEMPLATE("after a Connection: close response the next fetch opens a new connection",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return connection_close_case(lp); });
    }

    TEST_CASE_TEMPLATE("an HTTP/1.0 response without keep-alive is not reused", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return http10_case(lp); });
    }

    TEST_CASE_TEMPLATE("max_idle_per_origin 0 keeps no connection for reuse", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return max_idle_zero_case(lp); });
    }

    TEST_CASE_TEMPLATE(
        "a GET on a reused connection the server closed while idle is retried once on a new one", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return idle_closed_case(lp, "GET"); });
    }

    TEST_CASE_TEMPLATE("a POST on a reused connection the server closed while idle is not retried",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return idle_closed_case(lp, "POST"); });
    }

    // ---- limits, timeouts and errors
    // -------------------------------------------------------------

    TEST_CASE_TEMPLATE("a body over max_body_size fails with body_too_large whether Content-Length "
                       "or chunked or until close",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return body_limit_case(lp); });
    }

    TEST_CASE_TEMPLATE("a body exactly max_body_size long is accepted", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return body_at_limit_case(lp); });
    }

    TEST_CASE_TEMPLATE("a response head over max_header_bytes fails with header_too_large", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return header_limit_case(lp); });
    }

    TEST_CASE_TEMPLATE(
        "a server that never answers fails the fetch with timed_out after response_timeout", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return response_timeout_case(lp); });
    }

    TEST_CASE_TEMPLATE("a fetch to a port nobody listens on fails with connection_refused", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return refused_case(lp); });
    }

    TEST_CASE_TEMPLATE("a malformed status line fails with bad_status_line", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return bad_status_case(lp); });
    }

    TEST_CASE_TEMPLATE("the server closing inside a response fails with unexpected_eof", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return premature_eof_case(lp); });
    }

    // ---- TLS
    // ------------------------------------------------------------------------------------------

    TEST_CASE_TEMPLATE(
        "https with a context trusting the test CA succeeds and reuses the TLS connection", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return https_case(lp); });
    }

    TEST_CASE_TEMPLATE(
        "https verifies by default: without the test CA the fetch fails certificate verification",
        B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return https_untrusted_case(lp); });
    }

    TEST_CASE_TEMPLATE("https to a plain-text server fails the handshake", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return https_to_plain_case(lp); });
    }

    // ---- any stream
    // -----------------------------------------------------------------------------------

    TEST_CASE_TEMPLATE("client_connection works over a memory_stream with one-byte reads", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return memory_stream_case(lp); });
    }

    TEST_CASE_TEMPLATE("a request header with CR or LF or a bad name is refused with bad_header "
                       "before anything is sent and the connection stays usable",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return injection_case(lp); });
    }

    TEST_CASE_TEMPLATE("a client_connection whose Host holds CR/LF refuses to send", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return bad_host_case(lp); });
    }

} // TEST_SUITE

TEST_SUITE("http.client") {
    TEST_CASE("a caller's Content-Length or Transfer-Encoding is refused before anything is sent") {
        coronet::core::loop lp;
        auto [a, b] = coronet::testing::memory_stream_pair(lp);
        coronet::http::client_connection conn(std::move(a), "example.test");
        for (const char* name : {"Content-Length", "transfer-encoding"}) {
            coronet::http::client_request req;
            req.method = "POST";
            req.headers.emplace_back(name, "5");
            req.body = "hello";
            auto r = coronet::core::run(lp, conn.send(req));
            REQUIRE_FALSE(r);
            CHECK(r.error() == coronet::http::errc::bad_header);
        }
        CHECK(conn.reusable());
    }
} // TEST_SUITE
