#pragma once
// The live http::server the http.server tests run against (tests/http/server_*_test.cpp): routes
// that report to a probe, a server on 127.0.0.1:0 stopped and joined after each case, and the
// raw-client helpers the cases share.

#include <coronet/http/server.hpp>

#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/http/message.hpp>
#include <coronet/http/router.hpp>

#include <testing/backends.hpp>
#include <testing/http_client_raw.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coronet::testing::server_fixture {

using namespace std::chrono_literals;

inline core::task<core::result<void>> sleep_task(core::clock::duration d) {
    co_return co_await core::sleep_for(d);
}

/// A one-shot readiness signal a handler sets and a test waits on (bounded, cancellable).
struct event {
    bool fired = false;
    core::stop_source* waiting = nullptr;
    void set() noexcept {
        fired = true;
        if (waiting != nullptr)
            waiting->request_stop();
    }
};

/// True once `e` is set; false if `timeout` ran out first.
inline core::task<bool> wait_for(event& e, core::clock::duration timeout) {
    if (e.fired)
        co_return true;
    core::stop_source src(co_await core::get_stop_token());
    e.waiting = &src;
    auto t = sleep_task(timeout);
    t.handle().promise().set_token(src.token());
    (void)co_await std::move(t);
    e.waiting = nullptr;
    co_return e.fired;
}

inline double ms_since(core::clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(core::clock::now() - t0).count();
}

/// What the handlers of test_routes() report to the test.
struct probe {
    event slow_started;
    bool slow_cancelled = false;
    bool slow_finished = false;
    // takeover
    event takeover_started;
    std::string prefetched;
    std::vector<std::string> lines;
    bool takeover_cancelled = false;
    bool takeover_ended = false;
    bool drained = false; ///< drain_watcher saw takeover_context::draining fire
};

/// A toy line protocol that takes the connection over after "101 Switching Protocols": each
/// line is answered "echo: <line>\n" until "quit" (answered "bye\n").
class toyline final : public http::connection_takeover {
public:
    explicit toyline(probe& p) : connection_takeover(switching()), p_(p) {}

    static http::response switching() {
        http::response r(101);
        r.set("Upgrade", "toyline");
        r.set("Connection", "Upgrade");
        return r;
    }

    core::task<void> run(http::takeover_context ctx) override {
        p_.prefetched.assign(reinterpret_cast<const char*>(ctx.prefetched.data()),
                             ctx.prefetched.size());
        p_.takeover_started.set();
        std::string buf = p_.prefetched;
        core::stream& s = *ctx.stream;
        for (;;) {
            auto nl = buf.find('\n');
            if (nl == std::string::npos) {
                char tmp[512];
                auto r = co_await s.read_some(
                    core::mutable_buffer(reinterpret_cast<std::byte*>(tmp), sizeof tmp));
                if (!r) {
                    if (r.error() == core::errc::operation_canceled)
                        p_.takeover_cancelled = true;
                    break;
                }
                buf.append(tmp, *r);
                continue;
            }
            std::string line = buf.substr(0, nl);
            buf.erase(0, nl + 1);
            p_.lines.push_back(line);
            if (line == "quit") {
                (void)co_await s.write_all(core::as_bytes("bye\n"));
                (void)co_await s.shutdown();
                break;
            }
            std::string answer = "echo: " + line + "\n";
            if (!co_await s.write_all(core::as_bytes(answer)))
                break;
        }
        p_.takeover_ended = true;
    }

private:
    probe& p_;
};

/// A takeover that waits for the server's drain signal (takeover_context::draining), then says
/// "going away" and closes: the polite end a shutdown asks for before shutdown_grace runs out.
class drain_watcher final : public http::connection_takeover {
public:
    explicit drain_watcher(probe& p) : connection_takeover(toyline::switching()), p_(p) {}

    core::task<void> run(http::takeover_context ctx) override {
        core::stop_source wake(co_await core::get_stop_token());
        auto on_drain = [&wake]() noexcept { wake.request_stop(); };
        core::stop_callback<decltype(on_drain)> hook(ctx.draining, on_drain);
        p_.takeover_started.set();
        auto t = sleep_task(30s);
        t.handle().promise().set_token(wake.token());
        auto slept = co_await std::move(t);
        if (!slept && ctx.draining.stop_requested()) {
            p_.drained = true;
            auto w = co_await ctx.stream->write_all(core::as_bytes("going away\n"));
            if (w)
                (void)co_await ctx.stream->shutdown();
        } else if (!slept) {
            p_.takeover_cancelled = true;
        }
        p_.takeover_ended = true;
    }

private:
    probe& p_;
};

/// The routes every test serves.
inline http::router test_routes(probe& p) {
    http::router r;
    r.get("/", [](http::request&) -> core::task<http::reply> {
        co_return http::response::text("hello");
    });
    r.get("/id/:n", [](http::request& req) -> core::task<http::reply> {
        co_return http::response::text("id " + std::string(req.param("n")));
    });
    // Echoes the body, and the request's X-Tag header and path (proves the head's views are
    // still valid after a body that needed several reads).
    r.post("/echo", [](http::request& req) -> core::task<http::reply> {
        http::response res(200);
        res.set("X-Tag", std::string(req.header("x-tag")));
        res.set("X-Path", std::string(req.path()));
        res.body = std::string(req.body());
        co_return res;
    });
    // Describes the whole head the handler sees (the views of a head whose bytes may have moved
    // while its body was read) and the body's size.
    r.post("/head-view", [](http::request& req) -> core::task<http::reply> {
        std::string view = std::string(req.method()) + " " + std::string(req.target()) + " " +
                           std::string(req.path()) + " " + std::string(req.query()) + "\n";
        for (const auto& f : req.headers().fields())
            view += std::string(f.name) + ": " + std::string(f.value) + "\n";
        view += "body " + std::to_string(req.body().size()) + "\n";
        co_return http::response::text(view);
    });
    r.get("/stream-length", [](http::request&) -> core::task<http::reply> {
        http::response res(200);
        res.stream_length = 15;
        res.stream_body = [](http::body_writer& w) -> core::task<core::result<void>> {
            for (std::string_view piece : {"hello", ", str", "eamed"})
                if (auto wr = co_await w.write(piece); !wr)
                    co_return wr;
            co_return core::result<void>{};
        };
        co_return res;
    });
    r.get("/stream-chunked", [](http::request&) -> core::task<http::reply> {
        http::response res(200);
        res.stream_body = [](http::body_writer& w) -> core::task<core::result<void>> {
            for (std::string_view piece : {"one ", "two ", "three"})
                if (auto wr = co_await w.write(piece); !wr)
                    co_return wr;
            co_return core::result<void>{};
        };
        co_return res;
    });
    r.get("/slow/:ms", [&p](http::request& req) -> core::task<http::reply> {
        auto ms = std::stoi(std::string(req.param("ms")));
        p.slow_started.set();
        auto slept = co_await core::sleep_for(std::chrono::milliseconds(ms));
        if (!slept) {
            p.slow_cancelled = true;
            co_return http::response::text("cancelled", 503);
        }
        p.slow_finished = true;
        co_return http::response::text("slow done");
    });
    r.get("/throw", [](http::request&) -> core::task<http::reply> {
        throw std::runtime_error("handler failure on purpose");
        co_return http::response::text("unreachable");
    });
    r.get("/bad-header", [](http::request&) -> core::task<http::reply> {
        http::response res = http::response::text("split");
        res.set("X-Evil", "a\r\nInjected: yes");
        co_return res;
    });
    r.get("/toy", [&p](http::request&) -> core::task<http::reply> {
        co_return http::reply(std::make_unique<toyline>(p));
    });
    r.get("/drain", [&p](http::request&) -> core::task<http::reply> {
        co_return http::reply(std::make_unique<drain_watcher>(p));
    });
    return r;
}

inline http::server_options test_options() {
    http::server_options o;
    o.shutdown_grace = 2s;
    o.header_timeout = 5s;
    o.body_timeout = 5s;
    o.idle_timeout = 10s;
    o.write_timeout = 5s;
    return o;
}

// The shared one, so that files of one unity batch reach the same function.
using coronet::testing::listen_local;

/// A server on 127.0.0.1:0 run in a task scope (linked to the test's stop token).
class running_server {
public:
    running_server(core::loop& lp, const http::router& r, http::server_options o,
                   core::stop_token parent)
        : listener_(listen_local(lp)), srv_(r, o), scope_(parent) {
        auto e = listener_.local_endpoint();
        REQUIRE(e);
        ep_ = *e;
        scope_.spawn(run());
    }

    http::server& server() noexcept { return srv_; }
    const core::endpoint& endpoint() const noexcept { return ep_; }
    bool returned() const noexcept { return returned_; }

    /// Requests the graceful shutdown (what a signal or when_any would do).
    void stop() noexcept {
        if (!stop_requested_)
            stop_at_ = core::clock::now();
        stop_requested_ = true;
        scope_.request_stop();
    }
    /// Waits for serve() to return; the time from stop() to that return, in ms.
    core::task<double> join() {
        co_await scope_.join();
        co_return std::chrono::duration<double, std::milli>(returned_at_ - stop_at_).count();
    }

    core::task<raw_client> connect() {
        auto c = co_await raw_client::connect(ep_);
        REQUIRE_MESSAGE(c, c.error().message());
        co_return std::move(*c);
    }

private:
    core::task<void> run() {
        co_await srv_.serve(listener_);
        returned_ = true;
        returned_at_ = core::clock::now();
    }

    core::tcp_listener listener_;
    http::server srv_;
    core::task_scope scope_;
    core::endpoint ep_;
    bool returned_ = false;
    bool stop_requested_ = false;
    core::clock::time_point stop_at_{};
    core::clock::time_point returned_at_{};
};

/// Runs `body(server, probe)` against a live server, then shuts the server down gracefully and
/// checks that serve() returned. The server is stopped and joined even when the body fails.
template <class F>
inline core::task<void> with_server(core::loop& lp, http::server_options o, F body) {
    probe p;
    http::router routes = test_routes(p);
    running_server rs(lp, routes, o, co_await core::get_stop_token());
    std::exception_ptr err;
    try {
        co_await body(rs, p);
    } catch (...) {
        err = std::current_exception();
    }
    rs.stop();
    (void)co_await rs.join();
    if (err)
        std::rethrow_exception(err);
    CHECK(rs.returned());
}

/// Sends `bytes` and reads one response (REQUIREs both).
inline core::task<raw_response> exchange(raw_client& c, std::string bytes,
                                         bool head_request = false) {
    auto s = co_await c.send(std::move(bytes));
    REQUIRE_MESSAGE(s, s.error().message());
    auto r = co_await c.read_response(head_request);
    REQUIRE_MESSAGE(r, r.error().message());
    co_return std::move(*r);
}

inline core::task<raw_response>
read_one(raw_client& c, bool head_request = false,
         std::chrono::milliseconds timeout = raw_client::default_timeout) {
    auto r = co_await c.read_response(head_request, timeout);
    REQUIRE_MESSAGE(r, r.error().message());
    co_return std::move(*r);
}

/// The connection ends (FIN or RST) in time, with no further bytes.
inline core::task<void> expect_closed(raw_client& c, std::chrono::milliseconds timeout = 3s) {
    auto end = co_await c.wait_end(timeout);
    CHECK_MESSAGE(end.closed(), "connection still open: " << end.how.message());
    CHECK_MESSAGE(end.extra.empty(), "unexpected bytes: " << end.extra);
}

inline std::string get(std::string_view path, std::string_view extra = "") {
    return "GET " + std::string(path) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra) + "\r\n";
}

inline std::string post(std::string_view path, std::string_view body, std::string_view extra = "") {
    return "POST " + std::string(path) +
           " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
           std::string(extra) + "\r\n" + std::string(body);
}

/// Sends `bytes` in pieces of `piece` bytes, pausing between them so they travel apart.
inline core::task<void> send_in_pieces(raw_client& c, std::string_view bytes, std::size_t piece) {
    for (std::size_t i = 0; i < bytes.size(); i += piece) {
        auto s = co_await c.send(std::string(bytes.substr(i, piece)));
        REQUIRE_MESSAGE(s, s.error().message());
        (void)co_await core::sleep_for(1ms);
    }
}

} // namespace coronet::testing::server_fixture

/// One http.server case on each backend: `body(loop)` is a coroutine run to completion.
#define SERVER_CASE(name, body)                                                                    \
    TEST_CASE_TEMPLATE(name, B, CORONET_BACKENDS) {                                                \
        CORONET_REQUIRE_BACKEND(B);                                                                \
        coronet::testing::run_on<B>([](coronet::core::loop& lp) { return body(lp); });             \
    }
