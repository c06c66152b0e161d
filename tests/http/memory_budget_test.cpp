#include <coronet/http/server.hpp>

#include <coronet/core/log.hpp>
#include <coronet/core/memory_budget.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/http/message.hpp>
#include <coronet/http/router.hpp>

#include <testing/backends.hpp>
#include <testing/http_client_raw.hpp>
#include <testing/log_capture.hpp>
#include <testing/memory_stream.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace core = coronet::core;
namespace http = coronet::http;
namespace ct = coronet::testing;
using ct::run_on;

namespace {

constexpr std::size_t kib = 1024;
constexpr std::size_t body_size = 400 * kib;

/// Counts `http.over_budget` while installed.
struct over_budget_counter final : coronet::testing::metric_counter {
    over_budget_counter() : metric_counter("http.over_budget") {}
};

http::router size_routes() {
    http::router r;
    r.post("/size", [](http::request& req) -> core::task<http::reply> {
        co_return http::response::text(std::to_string(req.body().size()));
    });
    r.get("/",
          [](http::request&) -> core::task<http::reply> { co_return http::response::text("ok"); });
    return r;
}

std::string post_head(std::size_t length) {
    return "POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(length) +
           "\r\n\r\n";
}

/// Yields to the loop until `end` waits for bytes with none left to read: the server has taken
/// in everything sent so far (the readiness signal; the case's bound ends a hang).
core::task<void> until_waiting(const ct::memory_stream& end) {
    for (;;) {
        if (end.read_pending() && end.readable() == 0)
            co_return;
        auto slept = co_await core::sleep_for(core::clock::duration::zero());
        if (!slept)
            co_return; // the case's bound ran out
    }
}

/// Yields to the loop until `srv` serves `n` connections.
core::task<void> until_connections(const http::server& srv, std::size_t n) {
    for (;;) {
        if (srv.connections() == n)
            co_return;
        auto slept = co_await core::sleep_for(core::clock::duration::zero());
        if (!slept)
            co_return;
    }
}

// Issue 13: two 400 KiB bodies at once under a 512 KiB budget. The first, half-sent, holds its
// buffer; the second is refused with 503 instead of growing; once the first is done, bodies of
// that size pass again; when every connection is gone, nothing is left charged.
core::task<void> concurrent_bodies_share_the_budget(core::loop& lp) {
    over_budget_counter counter;
    core::memory_budget budget(512 * kib);
    http::router routes = size_routes();
    http::server_options o;
    o.memory_budget = &budget;
    http::server srv(routes, o);
    core::task_scope scope;

    auto [a1, b1] = ct::memory_stream_pair(lp);
    auto [a2, b2] = ct::memory_stream_pair(lp);
    const ct::memory_stream& end1 = *b1;
    scope.spawn(srv.serve_connection(std::move(b1)));
    scope.spawn(srv.serve_connection(std::move(b2)));
    ct::raw_client first(std::move(a1));
    ct::raw_client second(std::move(a2));
    const std::string body(body_size, 'b');

    // The first request, half its body sent and taken in by the server.
    REQUIRE(co_await first.send(post_head(body_size) + body.substr(0, body_size / 2)));
    co_await until_waiting(end1);
    const std::size_t held_by_first = budget.in_use();
    CHECK(held_by_first > 0);

    // The second, whole: its buffer cannot grow past the budget.
    REQUIRE(co_await second.send(post_head(body_size) + body));
    auto refused = co_await second.read_response();
    REQUIRE_MESSAGE(refused, refused.error().message());
    CHECK(refused->status == 503);
    CHECK(refused->header_has_token("connection", "close"));
    CHECK(budget.refusals() >= 1);
    CHECK(counter.n.load() == 1);
    second.stream().close();
    co_await until_connections(srv, 1);

    // The first completes untouched.
    REQUIRE(co_await first.send(body.substr(body_size / 2)));
    auto done = co_await first.read_response();
    REQUIRE_MESSAGE(done, done.error().message());
    CHECK(done->status == 200);
    CHECK(done->body == std::to_string(body_size));

    // Once that body is consumed (both connections wait for bytes again), the next request of
    // the same size passes: a new connection, and then the first one, kept alive.
    co_await until_waiting(end1);
    auto [a3, b3] = ct::memory_stream_pair(lp);
    const ct::memory_stream& end3 = *b3;
    scope.spawn(srv.serve_connection(std::move(b3)));
    ct::raw_client third(std::move(a3));
    REQUIRE(co_await third.send(post_head(body_size) + body));
    auto again = co_await third.read_response();
    REQUIRE_MESSAGE(again, again.error().message());
    CHECK(again->status == 200);
    co_await until_waiting(end3);
    REQUIRE(co_await first.send(post_head(body_size) + body));
    auto kept = co_await first.read_response();
    REQUIRE_MESSAGE(kept, kept.error().message());
    CHECK(kept->status == 200);
    CHECK(counter.n.load() == 1);

    first.stream().close();
    third.stream().close();
    co_await scope.join();
    CHECK(srv.connections() == 0);
    CHECK(budget.in_use() == 0);
}

// A chunked body is charged as well (the reader's bytes and the decoded copy).
core::task<void> chunked_body_past_the_budget(core::loop& lp) {
    core::memory_budget budget(256 * kib);
    http::router routes = size_routes();
    http::server_options o;
    o.memory_budget = &budget;
    http::server srv(routes, o);
    core::task_scope scope;
    auto [a, b] = ct::memory_stream_pair(lp);
    scope.spawn(srv.serve_connection(std::move(b)));
    ct::raw_client c(std::move(a));
    std::string req = "POST /size HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string chunk(16 * kib, 'c');
    for (int i = 0; i < 64; ++i) // 1 MiB in all
        req += "4000\r\n" + chunk + "\r\n";
    req += "0\r\n\r\n";
    REQUIRE(co_await c.send(req));
    auto r = co_await c.read_response();
    REQUIRE_MESSAGE(r, r.error().message());
    CHECK(r->status == 503);
    c.stream().close();
    co_await scope.join();
    CHECK(budget.in_use() == 0);
}

// Over a loopback socket: a server whose budget is used up refuses a new connection at once.
core::task<void> exhausted_budget_refuses_connections(core::loop& lp) {
    over_budget_counter counter;
    core::memory_budget budget(128 * kib);
    REQUIRE(budget.try_acquire(128 * kib)); // held by someone else: exhausted
    http::router routes = size_routes();
    http::server_options o;
    o.memory_budget = &budget;
    http::server srv(routes, o);
    auto l = ct::listen_local(lp);
    core::task_scope scope(co_await core::get_stop_token());
    scope.spawn(srv.serve(l));

    auto c = co_await ct::raw_client::connect(ct::endpoint_of(l));
    REQUIRE(c);
    auto r = co_await c->read_response();
    REQUIRE_MESSAGE(r, r.error().message());
    CHECK(r->status == 503);
    CHECK((co_await c->wait_end()).closed());
    CHECK(counter.n.load() == 1);

    budget.release(128 * kib);
    auto d = co_await ct::raw_client::connect(ct::endpoint_of(l));
    REQUIRE(d);
    REQUIRE(co_await d->send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto ok = co_await d->read_response();
    REQUIRE_MESSAGE(ok, ok.error().message());
    CHECK(ok->status == 200);
    scope.request_stop();
    co_await scope.join();
    CHECK(budget.in_use() == 0);
}

} // namespace

TEST_SUITE("http.server") {

    TEST_CASE_TEMPLATE("two 400 KiB bodies under a 512 KiB budget: one passes, one gets 503", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return concurrent_bodies_share_the_budget(lp); });
    }

    TEST_CASE_TEMPLATE("a chunked body past the memory budget gets 503", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return chunked_body_past_the_budget(lp); });
    }

    TEST_CASE_TEMPLATE("a server whose memory budget is exhausted answers new connections 503", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return exhausted_budget_refuses_connections(lp); });
    }

} // TEST_SUITE
