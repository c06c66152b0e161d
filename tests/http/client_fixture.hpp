#pragma once
// The scripted raw HTTP/1.1 server the http.client tests fetch from
// (tests/http/client_*_test.cpp): it records every request byte for byte and answers each
// connection with canned bytes; plus the client options and TLS material the cases share.

#include <coronet/http/client.hpp>

#include <coronet/core/async_event.hpp>
#include <coronet/core/buffered_reader.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/tls.hpp>

#include <testing/certs.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <coronet/core/async_event.hpp>
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

namespace coronet::testing::client_fixture {

using namespace std::chrono_literals;

/// A one-shot readiness signal: `co_await ev.wait()` resumes once `set()` was called (or the
/// waiter's stop token fired; then it yields false).
class event {
public:
    void set() noexcept { ev_.set(); }
    core::task<bool> wait() {
        auto r = co_await ev_.wait();
        co_return r.has_value();
    }

private:
    core::async_event ev_;
};

inline bool iequal(std::string_view a, std::string_view b) {
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
inline core::task<core::result<raw_request>> read_request(core::buffered_reader& rd) {
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
        listener = testing::listen_local(lp);
        port = testing::endpoint_of(listener).port();
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

inline core::task<void> hold_until_eof(core::stream& s) {
    char buf[1024];
    for (;;) {
        auto r = co_await s.read_some(
            core::mutable_buffer(reinterpret_cast<std::byte*>(buf), sizeof buf));
        if (!r)
            co_return;
    }
}

inline core::task<void> serve_connection(raw_server& srv, core::tcp_stream sock,
                                         std::size_t index) {
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

inline core::task<void> accept_loop(raw_server& srv, core::task_scope& scope) {
    for (;;) {
        auto c = co_await srv.listener.accept();
        if (!c)
            co_return;
        std::size_t index = static_cast<std::size_t>(srv.accepts++);
        scope.spawn(serve_connection(srv, std::move(*c), index));
    }
}

/// Runs `client` while `srv` serves; then stops the server's tasks and waits for them.
inline core::task<void> with_raw_server(raw_server& srv, core::task<void> client) {
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
inline http::client_options client_test_options() {
    http::client_options o;
    o.connect_timeout = 5s;
    o.response_timeout = 5s;
    return o;
}

inline http::client_request request(std::string method, std::string body = {}) {
    http::client_request r;
    r.method = std::move(method);
    r.body = std::move(body);
    return r;
}

// ---- TLS material -----------------------------------------------------------------------------

struct tls_material {
    testing::temp_dir dir;
    core::tls_context server;
    core::tls_context client; ///< trusts the test CA
};

inline const tls_material& tls() {
    static const tls_material m = [] {
        tls_material t;
        const auto& pki = testing::test_certificates();
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

} // namespace coronet::testing::client_fixture
