#include <coronet/ws/session.hpp>

#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/when.hpp>

#include <testing/backends.hpp>
#include <testing/memory_stream.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
using coronet::testing::endpoint_of;
using coronet::testing::listen_local;
using coronet::testing::run_on;

namespace {

// Server side: echoes every message until the client closes.
core::task<void> echo_server(ws::session& s, int& echoed) {
    for (;;) {
        auto m = co_await s.receive();
        if (!m) co_return;
        auto sent = m->is_text() ? co_await s.send_text(m->data)
                                 : co_await s.send_binary(std::as_bytes(std::span(m->data)));
        if (!sent) co_return;
        ++echoed;
    }
}

struct pair_of_sessions {
    std::unique_ptr<ws::session> client;
    std::unique_ptr<ws::session> server;
};

core::task<pair_of_sessions> tcp_sessions(core::loop& lp, core::tcp_listener& l,
                                          std::vector<std::byte> server_prefetched) {
    (void)lp;
    auto c = co_await core::tcp_stream::connect(endpoint_of(l));
    REQUIRE(c);
    auto a = co_await l.accept();
    REQUIRE(a);
    pair_of_sessions p;
    p.client = std::make_unique<ws::session>(std::make_unique<core::tcp_stream>(std::move(*c)),
                                             ws::role::client);
    p.server = std::make_unique<ws::session>(std::make_unique<core::tcp_stream>(std::move(*a)),
                                             ws::role::server, std::move(server_prefetched));
    co_return p;
}

core::task<void> echo_round_trip(core::loop& lp) {
    auto l = listen_local(lp);
    auto p = co_await tcp_sessions(lp, l, {});
    core::task_scope scope;
    int echoed = 0;
    scope.spawn(echo_server(*p.server, echoed));

    std::vector<std::string> sizes = {"", std::string(125, 'a'), std::string(126, 'b'),
                                      std::string(70000, 'c')};
    for (const auto& text : sizes) {
        auto sent = co_await p.client->send_text(text);
        REQUIRE(sent);
        auto back = co_await p.client->receive();
        REQUIRE(back);
        CHECK(back->is_text());
        CHECK(back->data == text);
    }
    std::vector<std::byte> bin(1000);
    for (std::size_t i = 0; i < bin.size(); ++i) bin[i] = static_cast<std::byte>(i * 7);
    auto sent = co_await p.client->send_binary(bin);
    REQUIRE(sent);
    auto back = co_await p.client->receive();
    REQUIRE(back);
    CHECK_FALSE(back->is_text());
    CHECK(back->data.size() == bin.size());
    CHECK(std::memcmp(back->data.data(), bin.data(), bin.size()) == 0);

    // A ping is answered by the server's receive loop; the client's receive drops the pong.
    auto pinged = co_await p.client->ping("are you there");
    REQUIRE(pinged);
    auto after_ping = co_await p.client->send_text("after ping");
    REQUIRE(after_ping);
    auto echoed_after = co_await p.client->receive();
    REQUIRE(echoed_after);
    CHECK(echoed_after->data == "after ping");

    // Closing handshake: the server sees our code and reason, we see its echo.
    auto closed = co_await p.client->close(4001, "bye now");
    CHECK(closed);
    co_await scope.join();
    CHECK(p.server->close_code() == 4001);
    CHECK(p.server->close_reason() == "bye now");
    CHECK(p.client->close_code() == 4001);
    CHECK(echoed == 6);
}

core::task<void> prefetched_bytes_first(core::loop& lp) {
    // The bytes a takeover read past the handshake: a masked "Hello" (RFC 6455 §5.7).
    const unsigned char hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    std::vector<std::byte> pre(reinterpret_cast<const std::byte*>(hello),
                               reinterpret_cast<const std::byte*>(hello) + sizeof hello);
    auto l = listen_local(lp);
    auto p = co_await tcp_sessions(lp, l, std::move(pre));
    auto m = co_await p.server->receive();
    REQUIRE(m);
    CHECK(m->data == "Hello");
}

core::task<void> protocol_error_closes_with_code(core::loop& lp) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    core::stream& raw = *a;
    ws::session server(std::move(b), ws::role::server);
    // An unmasked frame from a client is a protocol error (RFC 6455 §5.1).
    const unsigned char bad[] = {0x81, 0x02, 'h', 'i'};
    auto w = co_await raw.write_all({reinterpret_cast<const std::byte*>(bad), sizeof bad});
    REQUIRE(w);
    auto m = co_await server.receive();
    REQUIRE_FALSE(m);
    CHECK(m.error() == ws::errc::protocol_error);
    // The server sent close 1002 before giving up.
    std::byte reply[16];
    auto n = co_await raw.read_some(reply);
    REQUIRE(n);
    REQUIRE(*n >= 4);
    CHECK(static_cast<unsigned char>(reply[0]) == 0x88);
    CHECK(((static_cast<unsigned>(reply[2]) << 8) | static_cast<unsigned>(reply[3])) == 1002);
    raw.close();
}

core::task<void> peer_vanishes(core::loop& lp) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    ws::session server(std::move(b), ws::role::server);
    a->close();
    auto m = co_await server.receive();
    REQUIRE_FALSE(m);
    CHECK(m.error() == core::errc::end_of_stream);
    CHECK(server.close_code() == 1006);
}

}  // namespace

TEST_SUITE("ws.session") {

TEST_CASE_TEMPLATE("a client and a server session echo text and binary messages and close cleanly",
                   B, CORONET_BACKENDS) {
    CORONET_REQUIRE_BACKEND(B);
    run_on<B>([](core::loop& lp) { return echo_round_trip(lp); });
}

TEST_CASE_TEMPLATE("a session reads the prefetched bytes before the stream", B, CORONET_BACKENDS) {
    CORONET_REQUIRE_BACKEND(B);
    run_on<B>([](core::loop& lp) { return prefetched_bytes_first(lp); });
}

TEST_CASE_TEMPLATE("an unmasked client frame closes the session with 1002", B, CORONET_BACKENDS) {
    CORONET_REQUIRE_BACKEND(B);
    run_on<B>([](core::loop& lp) { return protocol_error_closes_with_code(lp); });
}

TEST_CASE_TEMPLATE("a peer that leaves without a close frame gives 1006 and end of stream", B,
                   CORONET_BACKENDS) {
    CORONET_REQUIRE_BACKEND(B);
    run_on<B>([](core::loop& lp) { return peer_vanishes(lp); });
}

}  // TEST_SUITE
