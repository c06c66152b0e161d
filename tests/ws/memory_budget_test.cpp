#include <coronet/ws/session.hpp>

#include <coronet/core/log.hpp>
#include <coronet/core/memory_budget.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/ws/error.hpp>
#include <coronet/ws/frame.hpp>
#include <coronet/ws/server.hpp>

#include <testing/backends.hpp>
#include <testing/http_client_raw.hpp>
#include <testing/log_capture.hpp>
#include <testing/memory_stream.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
namespace ct = coronet::testing;
using ct::run_on;

namespace {

constexpr std::size_t kib = 1024;

/// Counts `ws.over_budget` while installed.
struct over_budget_counter final : coronet::testing::metric_counter {
    over_budget_counter() : metric_counter("ws.over_budget") {}
};

// Issue 13: a 1 MiB message to a session whose budget is 256 KiB is refused, not assembled:
// the session closes with 1013 (try again later) and receive() says why.
core::task<void> message_past_the_budget(core::loop& lp, bool fragmented) {
    over_budget_counter counter;
    core::memory_budget budget(256 * kib);
    auto [a, b] = ct::memory_stream_pair(lp);
    ws::session_options server_opts;
    server_opts.memory_budget = &budget;
    ws::session_options client_opts;
    client_opts.memory_budget = nullptr;
    auto server = std::make_unique<ws::session>(std::move(b), ws::role::server,
                                                std::vector<std::byte>{}, server_opts);
    ws::session client(std::move(a), ws::role::client, {}, client_opts);

    // A small message passes and touches nothing.
    REQUIRE(co_await client.send_text("small"));
    auto small = co_await server->receive();
    REQUIRE(small);
    CHECK(small->data == "small");
    CHECK(budget.in_use() == 0);

    const std::string big(1024 * kib, 'm');
    if (fragmented) {
        // Sixteen 64 KiB frames: the reader never holds much, the assembled message would.
        // Sent raw: a session sends each message in one frame.
        for (std::size_t i = 0; i < 16; ++i) {
            std::vector<std::byte> f(14 + 64 * kib);
            const auto op = i == 0 ? ws::opcode::binary : ws::opcode::continuation;
            const std::size_t h = ws::encode_header(f.data(), op, i == 15, 64 * kib, true, 0x1234u);
            std::memcpy(f.data() + h, big.data() + i * 64 * kib, 64 * kib);
            ws::apply_mask(std::span<std::byte>(f).subspan(h, 64 * kib), 0x1234u, 0);
            f.resize(h + 64 * kib);
            REQUIRE(co_await client.stream().write_all(f));
        }
    } else {
        REQUIRE(co_await client.send_binary(std::as_bytes(std::span(big))));
    }
    auto refused = co_await server->receive();
    REQUIRE_FALSE(refused);
    CHECK(refused.error() == ws::errc::over_budget);
    CHECK(ws::close_code_of(refused.error()) == 1013);
    CHECK(counter.n.load() == 1);
    CHECK(budget.refusals() >= 1);

    // The client reads the close frame: 1013.
    auto seen = co_await client.receive();
    REQUIRE_FALSE(seen);
    CHECK(seen.error() == ws::errc::closed);
    CHECK(client.close_code() == 1013);

    server.reset();
    CHECK(budget.in_use() == 0);
}

core::task<void> serve_nothing(ws::session&, ws::handshake_info&) {
    co_return;
}

// Over a loopback socket: a ws::server whose budget is used up refuses the upgrade with 503.
core::task<void> exhausted_budget_refuses_upgrades(core::loop& lp) {
    over_budget_counter counter;
    core::memory_budget budget(64 * kib);
    REQUIRE(budget.try_acquire(64 * kib));
    ws::server_options o;
    o.session.memory_budget = &budget;
    ws::server srv(serve_nothing, o);
    auto l = ct::listen_local(lp);
    core::task_scope scope(co_await core::get_stop_token());
    scope.spawn(srv.serve(l));

    auto c = co_await ct::raw_client::connect(ct::endpoint_of(l));
    REQUIRE(c);
    (void)co_await c->send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n");
    auto r = co_await c->read_response();
    REQUIRE_MESSAGE(r, r.error().message());
    CHECK(r->status == 503);
    CHECK_FALSE(r->has_header("sec-websocket-accept"));
    CHECK(counter.n.load() == 1);

    // With the budget free again, the upgrade is accepted.
    budget.release(64 * kib);
    auto d = co_await ct::raw_client::connect(ct::endpoint_of(l));
    REQUIRE(d);
    REQUIRE(
        co_await d->send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n"));
    auto ok = co_await d->read_response(true);
    REQUIRE_MESSAGE(ok, ok.error().message());
    CHECK(ok->status == 101);
    d->stream().close();
    scope.request_stop();
    co_await scope.join();
    CHECK(budget.in_use() == 0);
}

} // namespace

TEST_SUITE("ws.session") {

    TEST_CASE_TEMPLATE("a 1 MiB message past a 256 KiB budget closes the session with 1013", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        bool fragmented = false;
        SUBCASE("one frame") {}
        SUBCASE("sixteen frames") {
            fragmented = true;
        }
        run_on<B>([fragmented](core::loop& lp) { return message_past_the_budget(lp, fragmented); });
    }

} // TEST_SUITE

TEST_SUITE("ws.server") {

    TEST_CASE_TEMPLATE("a server whose memory budget is exhausted answers an upgrade 503", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return exhausted_budget_refuses_upgrades(lp); });
    }

} // TEST_SUITE
