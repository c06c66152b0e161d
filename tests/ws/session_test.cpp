#include <coronet/ws/session.hpp>

#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/when.hpp>

#include <testing/backends.hpp>
#include <testing/memory_stream.hpp>
#include <testing/run_bounded.hpp>

#include "events_adapter.hpp"
#include "session_pair.hpp"

#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <memory>
#include <stdexcept>
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
        if (!m)
            co_return;
        auto sent = m->is_text() ? co_await s.send_text(m->data)
                                 : co_await s.send_binary(std::as_bytes(std::span(m->data)));
        if (!sent)
            co_return;
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
    for (std::size_t i = 0; i < bin.size(); ++i)
        bin[i] = static_cast<std::byte>(i * 7);
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
    const unsigned char hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
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

// Two server sessions built with one shared options object: each keeps to it (a message over
// its max_message_size closes with 1009) and neither copies it.
core::task<void> shared_options_sessions(core::loop& lp) {
    auto opts = std::make_shared<ws::session_options>();
    opts->limits.max_message_size = 100;
    const std::shared_ptr<const ws::session_options> shared = opts;
    auto [a1, b1] = coronet::testing::memory_stream_pair(lp);
    auto [a2, b2] = coronet::testing::memory_stream_pair(lp);
    ws::session s1(shared, std::move(b1), ws::role::server);
    ws::session s2(shared, std::move(b2), ws::role::server, {});
    CHECK(&s1.options() == shared.get());
    CHECK(&s2.options() == shared.get());
    CHECK(s1.options().limits.max_message_size == 100);
    ws::session c1(std::move(a1), ws::role::client);
    ws::session c2(std::move(a2), ws::role::client);
    auto sent = co_await c1.send_text(std::string(100, 'a')); // at the limit: delivered
    REQUIRE(sent);
    auto ok = co_await s1.receive();
    REQUIRE(ok);
    CHECK(ok->data.size() == 100);
    sent = co_await c2.send_text(std::string(101, 'b')); // one over: 1009
    REQUIRE(sent);
    auto over = co_await s2.receive();
    REQUIRE_FALSE(over);
    CHECK(over.error() == ws::errc::message_too_big);
    auto closed = co_await c2.receive(); // the peer sees 1009
    REQUIRE_FALSE(closed);
    CHECK(c2.close_code() == 1009);

    auto [a3, b3] = coronet::testing::memory_stream_pair(lp);
    CHECK_THROWS_AS(
        ws::session(std::shared_ptr<const ws::session_options>(), std::move(b3), ws::role::server),
        std::invalid_argument);
    // The by-value constructor with braces for both defaults still picks one overload.
    auto [a4, b4] = coronet::testing::memory_stream_pair(lp);
    ws::session braced(std::move(b4), ws::role::server, {}, {});
    CHECK(braced.options().limits.max_message_size ==
          ws::session_options{}.limits.max_message_size);
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

} // namespace

TEST_SUITE("ws.session") {

    TEST_CASE_TEMPLATE(
        "a client and a server session echo text and binary messages and close cleanly", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return echo_round_trip(lp); });
    }

    TEST_CASE_TEMPLATE("a session reads the prefetched bytes before the stream", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return prefetched_bytes_first(lp); });
    }

    TEST_CASE_TEMPLATE("an unmasked client frame closes the session with 1002", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return protocol_error_closes_with_code(lp); });
    }

    TEST_CASE_TEMPLATE("a peer that leaves without a close frame gives 1006 and end of stream", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return peer_vanishes(lp); });
    }

    TEST_CASE_TEMPLATE("sessions sharing one options object keep to it without a copy each", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return shared_options_sessions(lp); });
    }

} // TEST_SUITE

namespace {

using namespace std::chrono_literals;

core::task<core::result<ws::message>> receive_once(ws::session& s) {
    co_return co_await s.receive();
}

// Keepalive: a peer that never reads (so never pongs) is dropped after the pong timeout; one
// that reads answers the pings and stays.
core::task<void> keepalive(core::loop& lp, bool peer_reads, std::error_code& server_result) {
    auto l = listen_local(lp);
    auto c = co_await core::tcp_stream::connect(endpoint_of(l));
    REQUIRE(c);
    auto a = co_await l.accept();
    REQUIRE(a);
    ws::session_options so;
    so.ping_interval = 30ms;
    so.pong_timeout = 60ms;
    ws::session server(std::make_unique<core::tcp_stream>(std::move(*a)), ws::role::server, {}, so);
    ws::session client(std::make_unique<core::tcp_stream>(std::move(*c)), ws::role::client);
    if (peer_reads) {
        // The client's receive answers pings; after 300 ms it sends a message to end the test.
        core::task_scope scope;
        scope.spawn([](ws::session& cl) -> core::task<void> {
            auto m = co_await cl.receive();
            (void)m;
        }(client));
        auto r = co_await core::with_timeout(300ms, receive_once(server));
        server_result = r ? std::error_code() : r.error();
        scope.request_stop();
        co_await scope.join();
    } else {
        auto r = co_await core::with_timeout(2s, receive_once(server));
        server_result = r ? std::error_code() : r.error();
    }
}

core::task<void> idle(core::loop& lp, std::error_code& result, std::uint16_t& seen_by_peer) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    ws::session_options so;
    so.idle_timeout = 50ms;
    ws::session server(std::move(b), ws::role::server, {}, so);
    ws::session client(std::move(a), ws::role::client);
    auto r = co_await core::with_timeout(2s, receive_once(server));
    result = r ? std::error_code() : r.error();
    auto m = co_await client.receive();
    CHECK_FALSE(m);
    seen_by_peer = client.close_code();
}

core::task<void> streaming(core::loop& lp) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    core::stream& raw = *a;
    ws::session server(std::move(b), ws::role::server);
    // A masked text message in two fragments ("Hel" + "lo", key 0 for readability).
    const unsigned char frames[] = {0x01, 0x83, 0, 0, 0, 0, 'H', 'e', 'l',
                                    0x80, 0x82, 0, 0, 0, 0, 'l', 'o'};
    auto w = co_await raw.write_all({reinterpret_cast<const std::byte*>(frames), sizeof frames});
    REQUIRE(w);
    std::string got;
    bool first_seen = false;
    for (;;) {
        auto c = co_await server.receive_some();
        REQUIRE(c);
        CHECK(c->type == ws::opcode::text);
        if (c->first)
            first_seen = true;
        got.append(c->data);
        if (c->last)
            break;
    }
    CHECK(first_seen);
    CHECK(got == "Hello");
    raw.close();
}

// receive_view over TCP (the bytes arrive in buffers the loop lends): whole messages of every
// size, a fragmented one (assembled), and a view that stays valid while the session sends.
core::task<void> views(core::loop& lp) {
    auto l = listen_local(lp);
    auto p = co_await coronet::testing::loopback_sessions(l, ws::session_options{});
    ws::session& client = *p.client;
    ws::session& server = *p.server;
    for (std::size_t size : {0u, 5u, 125u, 126u, 4000u, 70000u, 300000u}) {
        CAPTURE(size);
        std::string body(size, 'a');
        for (std::size_t i = 0; i < size; ++i)
            body[i] = static_cast<char>('a' + i * 7 % 26);
        REQUIRE(co_await client.send_text(body));
        auto v = co_await server.receive_view();
        REQUIRE(v);
        CHECK(v->is_text());
        CHECK(v->data == body);
        // Still intact after the session sent (the view lives until the next receive).
        REQUIRE(co_await server.send_binary(core::as_bytes(v->data)));
        CHECK(v->data == body);
        auto back = co_await client.receive();
        REQUIRE(back);
        CHECK_FALSE(back->is_text());
        CHECK(back->data == body);
    }
    // Two messages in one write: each view holds its own message.
    REQUIRE(co_await client.send_text("first"));
    REQUIRE(co_await client.send_text("second"));
    auto v1 = co_await server.receive_view();
    REQUIRE(v1);
    CHECK(v1->data == "first");
    auto v2 = co_await server.receive_view();
    REQUIRE(v2);
    CHECK(v2->data == "second");
    // The peer's close ends it like receive().
    auto closing = co_await core::when_all(client.close(), server.receive_view());
    CHECK(std::get<0>(closing));
    REQUIRE_FALSE(std::get<1>(closing));
    CHECK(std::get<1>(closing).error() == ws::errc::closed);
}

core::task<void> fragmented_view(core::loop& lp) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    core::stream& raw = *a;
    ws::session server(std::move(b), ws::role::server);
    // "Hel" + "lo" in two fragments, then "x" whole (mask key 0 for readability).
    const unsigned char frames[] = {0x01, 0x83, 0, 0,   0,   0,    'H',  'e', 'l', 0x80, 0x82, 0,
                                    0,    0,    0, 'l', 'o', 0x82, 0x81, 0,   0,   0,    0,    'x'};
    REQUIRE(co_await raw.write_all({reinterpret_cast<const std::byte*>(frames), sizeof frames}));
    auto v = co_await server.receive_view();
    REQUIRE(v);
    CHECK(v->is_text());
    CHECK(v->data == "Hello");
    auto w = co_await server.receive_view();
    REQUIRE(w);
    CHECK_FALSE(w->is_text());
    CHECK(w->data == "x");
    raw.close();
}

core::task<void> slow_reader(core::loop& lp, ws::backpressure_policy policy, int& failed_sends) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    b->set_write_buffer_limit(64); // the server's writes stall once 64 bytes wait unread
    ws::session_options so;
    so.max_queued_sends = 2;
    so.slow_reader = policy;
    ws::session server(std::move(b), ws::role::server, {}, so);
    core::task_scope scope;
    failed_sends = 0;
    for (int i = 0; i < 8; ++i)
        scope.spawn([](ws::session& s, int& failed) -> core::task<void> {
            auto r = co_await s.send_text(std::string(100, 'x'));
            if (!r && r.error() == ws::errc::queue_full)
                ++failed;
        }(server, failed_sends));
    scope.request_stop(); // the stalled ones give up; the policy already decided for the rest
    co_await scope.join();
    a->close();
}

struct recording_handler {
    std::vector<std::string> events;
    void on_open(ws::session&) { events.push_back("open"); }
    core::task<void> on_message(ws::session& s, ws::message& m) {
        events.push_back("message:" + m.data);
        auto r = co_await s.send_text(m.data);
        (void)r;
    }
    void on_ping(ws::session&, std::string_view p) { events.push_back("ping:" + std::string(p)); }
    void on_close(ws::session&, std::uint16_t code, std::string_view reason) {
        events.push_back("close:" + std::to_string(code) + ":" + std::string(reason));
    }
};

core::task<void> event_style(core::loop& lp, recording_handler& h) {
    auto l = listen_local(lp);
    auto p = co_await tcp_sessions(lp, l, {});
    ws::session_handler handler = coronet::testing::events_of<ws::session>(h);
    ws::handshake_info info;
    core::task_scope scope;
    scope.spawn(ws::serve_session(handler, *p.server, info));
    auto pinged = co_await p.client->ping("hi");
    REQUIRE(pinged);
    auto sent = co_await p.client->send_text("one");
    REQUIRE(sent);
    auto back = co_await p.client->receive();
    REQUIRE(back);
    CHECK(back->data == "one");
    auto closed = co_await p.client->close(1000, "done");
    CHECK(closed);
    co_await scope.join();
}

} // namespace

TEST_SUITE("ws.session") {

    TEST_CASE_TEMPLATE(
        "a peer that never answers keepalive pings is dropped after the pong timeout", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        std::error_code r;
        run_on<B>([&r](core::loop& lp) { return keepalive(lp, false, r); });
        CHECK(r == ws::errc::keepalive_timeout);
    }

    TEST_CASE_TEMPLATE("a peer that receives answers keepalive pings and stays connected", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        std::error_code r;
        run_on<B>([&r](core::loop& lp) { return keepalive(lp, true, r); });
        CHECK(r == core::errc::timed_out); // the test's own deadline, not the keepalive
    }

    TEST_CASE_TEMPLATE("a session with no messages for idle_timeout closes with 1001", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        std::error_code r;
        std::uint16_t seen = 0;
        run_on<B>([&](core::loop& lp) { return idle(lp, r, seen); });
        CHECK(r == ws::errc::idle_timeout);
        CHECK(seen == 1001);
    }

    TEST_CASE_TEMPLATE("receive_some hands over a fragmented message piece by piece", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return streaming(lp); });
    }

    TEST_CASE_TEMPLATE("receive_view lends whole messages of every size until the next receive", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return views(lp); });
    }

    TEST_CASE_TEMPLATE("receive_view assembles a fragmented message", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return fragmented_view(lp); });
    }

    TEST_CASE_TEMPLATE("the drop policy fails sends beyond the queue while the reader is slow", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        int failed = 0;
        run_on<B>([&failed](core::loop& lp) {
            return slow_reader(lp, ws::backpressure_policy::drop, failed);
        });
        CHECK(failed > 0);
    }

    TEST_CASE_TEMPLATE("the wait policy lets every sender wait", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        int failed = 0;
        run_on<B>([&failed](core::loop& lp) {
            return slow_reader(lp, ws::backpressure_policy::wait, failed);
        });
        CHECK(failed == 0);
    }

    TEST_CASE_TEMPLATE("an event-style handler sees open and ping and message and close in order",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        recording_handler h;
        run_on<B>([&h](core::loop& lp) { return event_style(lp, h); });
        CHECK(h.events ==
              std::vector<std::string>{"open", "ping:hi", "message:one", "close:1000:done"});
    }

} // TEST_SUITE

// ---------------------------------------------------------------------------------------------
// Hooks for the hub and the http_ws bridge: prepared frames, auto-responses, going away.

namespace {

using namespace std::chrono_literals;

core::task<void> prepared_frames(core::loop& lp) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    ws::session server(std::move(b), ws::role::server);
    ws::session client(std::move(a), ws::role::client);
    // Two frames encoded once, written in one call.
    const std::string one = "shared", two(300, 'x');
    std::byte h1[14], h2[14];
    const std::size_t n1 = ws::encode_header(h1, ws::opcode::text, true, one.size());
    const std::size_t n2 = ws::encode_header(h2, ws::opcode::binary, true, two.size());
    core::const_buffer frames[] = {
        {h1, n1}, std::as_bytes(std::span(one)), {h2, n2}, std::as_bytes(std::span(two))};
    auto sent = co_await server.send_prepared(frames);
    REQUIRE(sent);
    auto m1 = co_await client.receive();
    REQUIRE(m1);
    CHECK(m1->is_text());
    CHECK(m1->data == one);
    auto m2 = co_await client.receive();
    REQUIRE(m2);
    CHECK_FALSE(m2->is_text());
    CHECK(m2->data == two);
    // A client's frames must be masked per send.
    auto refused = co_await client.send_prepared(frames);
    REQUIRE_FALSE(refused);
    CHECK(refused.error() == ws::errc::protocol_error);
}

// Over TCP, prepared frames (started through the ring on io_uring when they fit one window,
// tried at once otherwise) arrive in order with the session's other sends, with or without a
// write timeout.
core::task<void> prepared_over_tcp(core::loop& lp, std::chrono::milliseconds write_timeout) {
    CAPTURE(write_timeout.count());
    auto l = coronet::testing::listen_local(lp);
    ws::session_options so;
    so.write_timeout = write_timeout;
    auto p = co_await coronet::testing::loopback_sessions(l, so);
    ws::session& server = *p.server;
    ws::session& client = *p.client;
    std::vector<std::string> payloads;
    for (int i = 0; i < 10; ++i)
        payloads.push_back("prepared " + std::to_string(i));
    std::vector<std::array<std::byte, 14>> heads(payloads.size());
    std::vector<core::const_buffer> frames;
    for (std::size_t i = 0; i < payloads.size(); ++i) {
        const std::size_t n =
            ws::encode_header(heads[i].data(), ws::opcode::text, true, payloads[i].size());
        frames.emplace_back(heads[i].data(), n);
        frames.emplace_back(std::as_bytes(std::span(payloads[i])));
    }
    REQUIRE(co_await server.send_text("before"));
    auto two = co_await server.send_prepared(std::span(frames).first(4)); // one window
    REQUIRE(two);
    auto all = co_await server.send_prepared(frames); // 20 buffers: more than one window
    REQUIRE(all);
    REQUIRE(co_await server.send_text("after"));
    std::vector<std::string> expect = {"before", payloads[0], payloads[1]};
    expect.insert(expect.end(), payloads.begin(), payloads.end());
    expect.push_back("after");
    for (const std::string& e : expect) {
        auto m = co_await client.receive();
        REQUIRE(m);
        CHECK(m->data == e);
    }
    // The server answers the close while it waits for a next message that never comes.
    core::task_scope scope;
    bool ended = false;
    scope.spawn([](ws::session& s, bool& e) -> core::task<void> {
        auto m = co_await s.receive();
        e = !m;
    }(server, ended));
    auto closed = co_await client.close();
    CHECK(closed);
    co_await scope.join();
    CHECK(ended);
}

core::task<void> auto_response(core::loop& lp, int& handler_calls) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    ws::session server(std::move(b), ws::role::server);
    ws::session client(std::move(a), ws::role::client);
    server.set_auto_response("ping", "pong");
    for (int i = 0; i < 3; ++i)
        REQUIRE(co_await client.send_text("ping"));
    REQUIRE(co_await client.send_text("pingx")); // not the exact payload: the handler gets it
    REQUIRE(co_await client.send_binary(std::as_bytes(std::span(std::string_view("ping")))));
    for (int i = 0; i < 2; ++i) {
        auto m = co_await server.receive();
        REQUIRE(m);
        ++handler_calls;
        CHECK(m->data.starts_with("ping"));
    }
    CHECK(server.auto_responses_sent() == 3);
    for (int i = 0; i < 3; ++i) {
        auto m = co_await client.receive();
        REQUIRE(m);
        CHECK(m->is_text());
        CHECK(m->data == "pong");
    }
    // Cleared: "ping" reaches the handler again.
    server.clear_auto_response();
    REQUIRE(co_await client.send_text("ping"));
    auto m = co_await server.receive();
    REQUIRE(m);
    CHECK(m->data == "ping");
    CHECK(server.auto_responses_sent() == 3);
}

// A binary auto-response answers binary requests only, with a binary message; a text message
// with the same bytes reaches the handler, and another opcode is refused.
core::task<void> binary_auto_response(core::loop& lp) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    ws::session server(std::move(b), ws::role::server);
    ws::session client(std::move(a), ws::role::client);
    const std::string hb("\x00hb\xff", 4);
    server.set_auto_response(hb, "ok", ws::opcode::binary);
    CHECK_THROWS_AS(server.set_auto_response("x", "y", ws::opcode::ping), std::invalid_argument);
    REQUIRE(co_await client.send_binary(std::as_bytes(std::span(std::string_view(hb)))));
    REQUIRE(co_await client.send_text("\x00hb")); // not the bytes of the request
    auto m = co_await server.receive();
    REQUIRE(m);
    CHECK(m->is_text());
    CHECK(server.auto_responses_sent() == 1);
    auto answer = co_await client.receive();
    REQUIRE(answer);
    CHECK_FALSE(answer->is_text());
    CHECK(answer->data == "ok");
}

// close_on: the going-away signal makes a waiting receive() send 1001; a peer that does not
// answer is given up on after close_timeout.
core::task<void> going_away(core::loop& lp, std::uint16_t& seen_by_peer, std::uint16_t& server_code,
                            bool lend) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    b->set_lends_receive_buffers(lend);
    ws::session_options so;
    so.close_timeout = 100ms;
    ws::session server(std::move(b), ws::role::server, {}, so);
    ws::session client(std::move(a), ws::role::client);
    core::stop_source shutting_down;
    server.close_on(shutting_down.token());
    core::task_scope scope;
    scope.spawn([](core::stop_source& s) -> core::task<void> {
        co_await core::sleep_for(20ms);
        s.request_stop();
    }(shutting_down));
    auto r = co_await core::with_timeout(5s, receive_once(server));
    REQUIRE_FALSE(r);
    CHECK(r.error() == ws::errc::closed);
    server_code = server.close_code();
    // The client never read, so its close frame never came. Now it reads the 1001.
    auto m = co_await client.receive();
    REQUIRE_FALSE(m);
    seen_by_peer = client.close_code();
    co_await scope.join();
}

core::task<void> going_away_with_reader(core::loop& lp, std::uint16_t& seen_by_peer,
                                        std::uint16_t& server_code, bool lend) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    b->set_lends_receive_buffers(lend);
    ws::session_options so;
    so.close_timeout = 2s;
    ws::session server(std::move(b), ws::role::server, {}, so);
    ws::session client(std::move(a), ws::role::client);
    core::stop_source shutting_down;
    server.close_on(shutting_down.token());
    core::task_scope scope;
    scope.spawn([](ws::session& cl, std::uint16_t& seen) -> core::task<void> {
        auto m = co_await cl.receive(); // answers the 1001 with its own close
        CHECK_FALSE(m);
        seen = cl.close_code();
    }(client, seen_by_peer));
    scope.spawn([](core::stop_source& s) -> core::task<void> {
        co_await core::sleep_for(20ms);
        s.request_stop();
    }(shutting_down));
    auto r = co_await core::with_timeout(5s, receive_once(server));
    REQUIRE_FALSE(r);
    CHECK(r.error() == ws::errc::closed);
    server_code = server.close_code();
    co_await scope.join();
}

// interrupt_receive: a waiting receive (plain wait, or with keepalive timers) ends with
// operation_canceled and the session stays open; asked with no receive waiting, it cancels the
// next wait; close() forgets an unused request.
core::task<void> interrupted_receives(core::loop& lp, bool lend, bool keepalive) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    b->set_lends_receive_buffers(lend);
    ws::session_options so;
    if (keepalive)
        so.ping_interval = 10s; // the wait then runs with its timers
    ws::session server(std::move(b), ws::role::server, {}, so);
    ws::session client(std::move(a), ws::role::client);
    core::task_scope scope;
    scope.spawn([](ws::session& s) -> core::task<void> {
        co_await core::sleep_for(20ms);
        s.interrupt_receive();
    }(server));
    auto r = co_await core::with_timeout(5s, receive_once(server));
    REQUIRE_FALSE(r);
    CHECK(r.error() == core::errc::operation_canceled);
    CHECK(server.is_open());
    co_await scope.join();

    // The request was taken: the next receive gets the next message.
    REQUIRE(co_await client.send_text("after"));
    auto m = co_await core::with_timeout(5s, receive_once(server));
    REQUIRE(m);
    CHECK(m->data == "after");

    // Asked before any receive waits: the next wait ends at once, the one after does not.
    server.interrupt_receive();
    auto early = co_await core::with_timeout(5s, receive_once(server));
    REQUIRE_FALSE(early);
    CHECK(early.error() == core::errc::operation_canceled);
    REQUIRE(co_await client.send_text("again"));
    auto m2 = co_await core::with_timeout(5s, receive_once(server));
    REQUIRE(m2);
    CHECK(m2->data == "again");

    // An unused request does not cut the close handshake's own read short.
    server.interrupt_receive();
    core::task_scope peer;
    peer.spawn([](ws::session& cl) -> core::task<void> {
        auto end = co_await cl.receive(); // answers the close
        CHECK_FALSE(end);
    }(client));
    auto closed = co_await core::with_timeout(5s, server.close(1000, "done"));
    CHECK(closed);
    CHECK(server.close_code() == 1000);
    co_await peer.join();
}

// close() while another coroutine receives and the peer never answers: the receive ends after
// close_timeout instead of waiting forever.
core::task<void> close_with_silent_peer(core::loop& lp, std::error_code& result, bool lend) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    b->set_lends_receive_buffers(lend);
    ws::session_options so;
    so.close_timeout = 100ms;
    ws::session server(std::move(b), ws::role::server, {}, so);
    ws::session client(std::move(a), ws::role::client);
    core::task_scope scope;
    scope.spawn([](ws::session& s) -> core::task<void> {
        co_await core::sleep_for(20ms);
        auto c = co_await s.close(1000, "bye");
        CHECK(c);
    }(server));
    auto r = co_await core::with_timeout(5s, receive_once(server));
    result = r ? std::error_code() : r.error();
    CHECK(server.close_code() == 1006);
    co_await scope.join();
    (void)client;
}

} // namespace

TEST_CASE_TEMPLATE("send_prepared writes frames encoded once and is refused to clients", B,
                   CORONET_BACKENDS) {
    CORONET_REQUIRE_BACKEND(B);
    run_on<B>([](core::loop& lp) { return prepared_frames(lp); });
}

TEST_CASE_TEMPLATE("send_prepared over TCP keeps its frames in order with other sends, with and "
                   "without a write timeout",
                   B, CORONET_BACKENDS) {
    CORONET_REQUIRE_BACKEND(B);
    run_on<B>([](core::loop& lp) { return prepared_over_tcp(lp, std::chrono::milliseconds(0)); });
    run_on<B>(
        [](core::loop& lp) { return prepared_over_tcp(lp, std::chrono::milliseconds(5000)); });
}

TEST_CASE_TEMPLATE("an auto-response answers its request without waking the receiver", B,
                   CORONET_BACKENDS) {
    CORONET_REQUIRE_BACKEND(B);
    int calls = 0;
    run_on<B>([&](core::loop& lp) { return auto_response(lp, calls); });
    CHECK(calls == 2);
}

TEST_CASE_TEMPLATE("a binary auto-response answers binary requests with a binary message", B,
                   CORONET_BACKENDS) {
    CORONET_REQUIRE_BACKEND(B);
    run_on<B>([&](core::loop& lp) { return binary_auto_response(lp); });
}

TEST_CASE_TEMPLATE("close_on sends 1001 and ends receive after the peer answers", B,
                   CORONET_BACKENDS) {
    CORONET_REQUIRE_BACKEND(B);
    // Both waits for bytes: in a lent buffer (TCP: the receive call's own operation) and in
    // the reader's own buffer (TLS: a fill task).
    bool lend = false;
    SUBCASE("waiting in a lent buffer") {
        lend = true;
    }
    SUBCASE("waiting in the reader's own buffer") {
        lend = false;
    }
    std::uint16_t peer = 0, server = 0;
    run_on<B>([&](core::loop& lp) { return going_away_with_reader(lp, peer, server, lend); });
    CHECK(peer == 1001);
    CHECK(server == 1001);
}

TEST_CASE_TEMPLATE("interrupt_receive ends the waiting receive and the session goes on", B,
                   CORONET_BACKENDS) {
    CORONET_REQUIRE_BACKEND(B);
    bool lend = false;
    bool keepalive = false;
    SUBCASE("waiting in a lent buffer") {
        lend = true;
    }
    SUBCASE("waiting in the reader's own buffer") {
        lend = false;
    }
    SUBCASE("waiting with keepalive timers") {
        keepalive = true;
    }
    run_on<B>([&](core::loop& lp) { return interrupted_receives(lp, lend, keepalive); });
}

TEST_CASE_TEMPLATE("close_on gives up on a silent peer after close_timeout", B, CORONET_BACKENDS) {
    CORONET_REQUIRE_BACKEND(B);
    bool lend = false;
    SUBCASE("waiting in a lent buffer") {
        lend = true;
    }
    SUBCASE("waiting in the reader's own buffer") {
        lend = false;
    }
    std::uint16_t peer = 0, server = 0;
    run_on<B>([&](core::loop& lp) { return going_away(lp, peer, server, lend); });
    CHECK(peer == 1001);
    CHECK(server == 1006);
}

TEST_CASE_TEMPLATE(
    "a receive waiting while close runs ends after close_timeout when the peer is silent", B,
    CORONET_BACKENDS) {
    CORONET_REQUIRE_BACKEND(B);
    bool lend = false;
    SUBCASE("waiting in a lent buffer") {
        lend = true;
    }
    SUBCASE("waiting in the reader's own buffer") {
        lend = false;
    }
    std::error_code ec;
    run_on<B>([&](core::loop& lp) { return close_with_silent_peer(lp, ec, lend); });
    CHECK(ec == ws::errc::closed);
}

// ---------------------------------------------------------------------------------------------
// Issue 14: the slow-reader close policy and the event-style runner's on_error.

namespace {

// The close policy used to shut the connection down with no close frame (its flag made the
// 1008's own send fail). The 1008 now follows the frame being written; the send that found the
// queue full fails with queue_full, the senders already waiting with closed.
core::task<void> slow_reader_closes_with_1008(core::loop& lp, int& queue_full, int& closed) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    b->set_write_buffer_limit(64); // the server's writes stall once 64 bytes wait unread
    ws::session_options so;
    so.max_queued_sends = 2;
    so.slow_reader = ws::backpressure_policy::close;
    ws::session server(std::move(b), ws::role::server, {}, so);
    ws::session client(std::move(a), ws::role::client);
    core::task_scope scope;
    for (int i = 0; i < 8; ++i)
        scope.spawn([](ws::session& s, int& full, int& shut) -> core::task<void> {
            auto r = co_await s.send_text(std::string(100, 'x'));
            if (!r && r.error() == ws::errc::queue_full)
                ++full;
            if (!r && r.error() == ws::errc::closed)
                ++shut;
        }(server, queue_full, closed));
    CHECK_FALSE(server.is_open());
    // The peer reads the message that was being written, then the close frame.
    auto m = co_await client.receive();
    REQUIRE(m);
    CHECK(m->data == std::string(100, 'x'));
    auto end = co_await client.receive();
    REQUIRE_FALSE(end);
    CHECK(end.error() == ws::errc::closed);
    CHECK(client.close_code() == 1008);
    co_await scope.join();
}

struct error_recording_handler {
    std::vector<std::string> events;
    std::error_code error;
    void on_open(ws::session&) { events.push_back("open"); }
    core::task<void> on_message(ws::session&, ws::message& m) {
        events.push_back("message:" + m.data);
        co_return;
    }
    void on_error(ws::session&, std::error_code ec) {
        error = ec;
        events.push_back("error:" + std::to_string(ws::close_code_of(ec)));
    }
    void on_close(ws::session&, std::uint16_t code, std::string_view reason) {
        events.push_back("close:" + std::to_string(code) + ":" + std::string(reason));
    }
};

// ws::serve_session over a server session that receives `bytes` (then end of stream when
// `hang_up`); `peer_saw`: the code of the close frame the peer got (0: none).
core::task<void> run_into_error(core::loop& lp, error_recording_handler& h,
                                std::vector<std::byte> bytes, bool hang_up,
                                std::uint16_t& peer_saw) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    core::stream& raw = *a;
    ws::session server(std::move(b), ws::role::server);
    if (!bytes.empty())
        REQUIRE(co_await raw.write_all(bytes));
    if (hang_up)
        REQUIRE(co_await raw.shutdown());
    ws::session_handler handler = coronet::testing::events_of<ws::session>(h);
    ws::handshake_info info;
    co_await ws::serve_session(handler, server, info);
    if (!hang_up) {
        // The session failed the connection: its close frame, then the end of the stream.
        std::byte reply[16];
        auto n = co_await raw.read_some(reply);
        if (n && *n >= 4 && static_cast<unsigned char>(reply[0]) == 0x88)
            peer_saw = static_cast<std::uint16_t>((static_cast<unsigned>(reply[2]) << 8) |
                                                  static_cast<unsigned>(reply[3]));
    }
    raw.close();
}

std::vector<std::byte> raw_bytes(std::initializer_list<int> v) {
    std::vector<std::byte> out;
    for (int b : v)
        out.push_back(static_cast<std::byte>(b));
    return out;
}

} // namespace

TEST_SUITE("ws.session") {

    TEST_CASE_TEMPLATE("the close policy sends 1008 to a slow reader after the frame it was "
                       "writing and fails the send with queue_full",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        int queue_full = 0;
        int closed = 0;
        run_on<B>(
            [&](core::loop& lp) { return slow_reader_closes_with_1008(lp, queue_full, closed); });
        CHECK(queue_full == 5); // 1 writing, 2 waiting, the other 5 found the queue full
        CHECK(closed == 2);     // the waiting ones came after the 1008
    }

    TEST_CASE_TEMPLATE("a protocol error calls on_error with the error and then on_close", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        error_recording_handler h;
        std::uint16_t peer_saw = 0;
        std::vector<std::byte> bytes;
        std::error_code expected;
        SUBCASE("an unmasked client frame: 1002") {
            bytes = raw_bytes({0x81, 0x02, 'h', 'i'});
            expected = ws::errc::protocol_error;
        }
        SUBCASE("invalid UTF-8 in a text message: 1007") {
            bytes = raw_bytes({0x81, 0x82, 0, 0, 0, 0, 0xc3, 0x28});
            expected = ws::errc::invalid_payload;
        }
        run_on<B>([&](core::loop& lp) { return run_into_error(lp, h, bytes, false, peer_saw); });
        CHECK(h.error == expected);
        const std::string code = std::to_string(ws::close_code_of(expected));
        // The session sent its close code; the peer sent none, so on_close has 1006.
        CHECK(h.events == std::vector<std::string>{"open", "error:" + code, "close:1006:"});
        CHECK(peer_saw == ws::close_code_of(expected));
    }

    TEST_CASE_TEMPLATE("a peer that leaves without a close frame calls on_error with end of "
                       "stream and then on_close with 1006",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        error_recording_handler h;
        std::uint16_t peer_saw = 0;
        // A whole message first: it is delivered before the end of the stream is.
        const auto hello =
            raw_bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
        run_on<B>([&](core::loop& lp) { return run_into_error(lp, h, hello, true, peer_saw); });
        CHECK(h.error == core::errc::end_of_stream);
        CHECK(h.events ==
              std::vector<std::string>{"open", "message:Hello",
                                       "error:" + std::to_string(ws::close_code_of(h.error)),
                                       "close:1006:"});
        CHECK(peer_saw == 0);
    }

} // TEST_SUITE
