#include <coronet/ws/hub.hpp>

#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>

#include "events_adapter.hpp"
#include "frame_feeder.hpp"
#include "hub_fixture.hpp"
#include "session_pair.hpp"

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// Hub connection events and controls: on_ping, ping()/pong() through the queue, binary
// auto-responses and streaming receive. The peer is a plain client session over TCP; the hub
// serves the other end directly (no ws::server: the handshake is not what is tested here).

namespace core = coronet::core;
namespace ws = coronet::ws;
using coronet::testing::endpoint_of;
using coronet::testing::listen_local;
using coronet::testing::run_on;
using ws::testing::make_frame;
using namespace std::chrono_literals;

namespace {

// Parks the test coroutine until the server side reports that something happened.
using coronet::testing::hub_fixture::notifier;

using coronet::testing::session_pair;

/// A client session and a server session connected over 127.0.0.1.
core::task<session_pair> connect_pair(core::tcp_listener& l) {
    return coronet::testing::loopback_sessions(l, ws::session_options{});
}

/// A client's message (masked) in one frame per part: the first of type `op`, FIN on the last.
ws::testing::bytes fragmented(ws::opcode op, std::initializer_list<std::string_view> parts) {
    ws::testing::bytes wire;
    std::size_t i = 0;
    for (std::string_view part : parts) {
        const bool last = ++i == parts.size();
        ws::testing::append(wire,
                            make_frame(i == 1 ? op : ws::opcode::continuation, last, part, true));
    }
    return wire;
}

/// Writes client frames on the client's stream, bypassing its session's encoder.
core::task<void> write_raw(ws::session& client, const ws::testing::bytes& wire) {
    auto w = co_await client.stream().write_all(wire);
    REQUIRE(w);
}

/// What the client sees, in wire order: messages, and the pings and pongs its session handles.
struct peer_log final : ws::control_observer {
    std::vector<std::string> events;
    void on_ping(ws::session&, std::string_view p) override {
        events.push_back("ping:" + std::string(p));
    }
    void on_pong(ws::session&, std::string_view p) override {
        events.push_back("pong:" + std::string(p));
    }
};

/// Receives on the client until a message with `last` arrives, logging everything.
core::task<void> read_until(ws::session& client, peer_log& log, std::string last) {
    for (;;) {
        auto m = co_await client.receive();
        REQUIRE_MESSAGE(m, m.error().message());
        log.events.push_back("message:" + m->data);
        if (m->data == last)
            co_return;
    }
}

/// Event style: records what the hub reports, optionally echoes messages and sets an
/// auto-response when the connection opens.
struct event_log {
    notifier note;
    ws::hub_connection* conn = nullptr;
    std::vector<std::string> events;
    bool echo = false;
    bool closed = false;
    void on_open(ws::hub_connection& c) {
        conn = &c;
        note.notify();
    }
    core::task<void> on_message(ws::hub_connection& c, ws::message& m) {
        events.push_back(std::string(m.is_text() ? "text:" : "binary:") + m.data);
        note.notify();
        if (echo) {
            auto sent = co_await c.send_text("echo:" + m.data);
            CHECK(sent);
        }
    }
    void on_ping(ws::hub_connection&, std::string_view p) {
        events.push_back("ping:" + std::string(p));
        note.notify();
    }
    void on_pong(ws::hub_connection&, std::string_view p) {
        events.push_back("pong:" + std::string(p));
        note.notify();
    }
    void on_close(ws::hub_connection&, std::uint16_t, std::string_view) {
        conn = nullptr;
        closed = true;
        note.notify();
    }
};

/// One event-style hub connection for a test body: `run` opens it, the body talks to it, and
/// `finish` closes the client and waits until the hub has let the connection go.
struct event_fixture {
    ws::hub hub;
    event_log handler;
    session_pair p;
    core::task_scope scope;

    event_fixture(ws::hub_options o, core::stop_token tok) : hub(std::move(o)), scope(tok) {}

    core::task<void> open(core::loop& lp) {
        auto l = listen_local(lp);
        p = co_await connect_pair(l);
        ws::handshake_info info("/events/blue?x=1");
        info.add_param("room", "blue"); // as an upgrade route's /events/:room would
        scope.spawn(hub.serve(*p.server, std::move(info),
                              coronet::testing::events_of<ws::hub_connection>(handler)));
        while (handler.conn == nullptr)
            co_await handler.note.wait();
    }
    core::task<void> finish() {
        auto closed = co_await p.client->close();
        CHECK(closed);
        co_await scope.join();
        CHECK(handler.closed);
        CHECK(hub.size() == 0);
    }
};

// ---- on_ping ------------------------------------------------------------------------------

core::task<void> on_ping_payloads(core::loop& lp) {
    event_fixture f(ws::hub_options{}, co_await core::get_stop_token());
    f.handler.echo = true;
    co_await f.open(lp);
    peer_log log;
    f.p.client->set_observer(&log);

    // The connection keeps its handshake: target and path parameters.
    REQUIRE(f.handler.conn != nullptr);
    CHECK(f.handler.conn->target() == "/events/blue?x=1");
    CHECK(f.handler.conn->info().param("room") == "blue");
    CHECK(f.handler.conn->info().query() == "x=1");

    REQUIRE(co_await f.p.client->ping("hello"));
    REQUIRE(co_await f.p.client->ping());
    REQUIRE(co_await f.p.client->send_text("done"));
    co_await read_until(*f.p.client, log, "echo:done");

    // The handler saw each ping with its payload before the message that followed it, and the
    // session answered each one with a pong of the same payload.
    CHECK(f.handler.events == std::vector<std::string>{"ping:hello", "ping:", "text:done"});
    CHECK(log.events == std::vector<std::string>{"pong:hello", "pong:", "message:echo:done"});
    co_await f.finish();
}

// ---- ping() and pong() through the queue --------------------------------------------------

core::task<void> control_frames_in_order(core::loop& lp) {
    event_fixture f(ws::hub_options{}, co_await core::get_stop_token());
    co_await f.open(lp);
    peer_log log;
    f.p.client->set_observer(&log);
    ws::hub_connection& c = *f.handler.conn;

    const std::uint64_t queued_before = f.hub.stats().frames_queued;
    CHECK(c.try_send(ws::prepared_message::text("a")));
    REQUIRE(co_await c.ping("p"));
    REQUIRE(co_await c.send_text("b"));
    REQUIRE(co_await c.pong("q"));
    REQUIRE(co_await c.ping());
    REQUIRE(co_await c.send_text("c"));
    CHECK(f.hub.stats().frames_queued - queued_before == 6);

    co_await read_until(*f.p.client, log, "c");
    CHECK(log.events == std::vector<std::string>{"message:a", "ping:p", "message:b", "pong:q",
                                                 "ping:", "message:c"});
    // The peer answered both pings (not the unsolicited pong); they are no heartbeats.
    while (f.handler.events.size() < 2)
        co_await f.handler.note.wait();
    CHECK(f.handler.events == std::vector<std::string>{"pong:p", "pong:"});
    CHECK(f.hub.stats().pings_sent == 0);
    co_await f.finish();
}

core::task<void> long_control_payload(core::loop& lp) {
    event_fixture f(ws::hub_options{}, co_await core::get_stop_token());
    co_await f.open(lp);
    peer_log log;
    f.p.client->set_observer(&log);
    ws::hub_connection& c = *f.handler.conn;

    const std::uint64_t queued_before = f.hub.stats().frames_queued;
    auto ping = co_await c.ping(std::string(126, 'x'));
    REQUIRE_FALSE(ping);
    CHECK(ping.error() == ws::errc::protocol_error);
    auto pong = co_await c.pong(std::string(200, 'x'));
    REQUIRE_FALSE(pong);
    CHECK(pong.error() == ws::errc::protocol_error);
    CHECK(f.hub.stats().frames_queued == queued_before); // nothing was queued
    CHECK(c.state() == ws::connection_state::open);

    // The connection goes on; 125 bytes is the most a control frame may carry.
    const std::string longest(125, 'y');
    REQUIRE(co_await c.ping(longest));
    REQUIRE(co_await c.send_text("after"));
    co_await read_until(*f.p.client, log, "after");
    CHECK(log.events == std::vector<std::string>{"ping:" + longest, "message:after"});
    co_await f.finish();
}

// ---- binary auto-responses ----------------------------------------------------------------

core::task<void> binary_auto_response(core::loop& lp) {
    event_fixture f(ws::hub_options{}, co_await core::get_stop_token());
    f.handler.echo = true;
    co_await f.open(lp);
    ws::session& client = *f.p.client;
    ws::hub_connection& c = *f.handler.conn;
    const std::string answer("\x00\x01ok", 4);
    c.set_auto_response("hb", answer, ws::opcode::binary);
    CHECK_THROWS_AS(c.set_auto_response("hb", "x", ws::opcode::ping), std::invalid_argument);

    // A binary "hb" is answered in binary, whole or fragmented, and never reaches the handler.
    REQUIRE(co_await client.send_binary(std::as_bytes(std::span(std::string_view("hb")))));
    auto m = co_await client.receive();
    REQUIRE(m);
    CHECK(m->type == ws::opcode::binary);
    CHECK(m->data == answer);
    const auto split_request = fragmented(ws::opcode::binary, {"h", "b"});
    co_await write_raw(client, split_request);
    m = co_await client.receive();
    REQUIRE(m);
    CHECK(m->type == ws::opcode::binary);
    CHECK(m->data == answer);
    CHECK(c.auto_responses_sent() == 2);
    CHECK(f.handler.events.empty());

    // The same bytes as text are an ordinary message: the binary rule does not answer them.
    REQUIRE(co_await client.send_text("hb"));
    m = co_await client.receive();
    REQUIRE(m);
    CHECK(m->data == "echo:hb");
    CHECK(f.handler.events == std::vector<std::string>{"text:hb"});
    CHECK(c.auto_responses_sent() == 2);

    // The text form (the default type) answers text only.
    c.set_auto_response("hb", "hb-ok");
    REQUIRE(co_await client.send_binary(std::as_bytes(std::span(std::string_view("hb")))));
    m = co_await client.receive();
    REQUIRE(m);
    CHECK(m->data == "echo:hb");
    REQUIRE(co_await client.send_text("hb"));
    m = co_await client.receive();
    REQUIRE(m);
    CHECK(m->type == ws::opcode::text);
    CHECK(m->data == "hb-ok");
    CHECK(f.handler.events == std::vector<std::string>{"text:hb", "binary:hb"});
    CHECK(c.auto_responses_sent() == 3);
    co_await f.finish();
}

// ---- streaming receive --------------------------------------------------------------------

struct piece {
    std::string data;
    ws::opcode type;
    bool first;
    bool last;
    bool operator==(const piece&) const = default;
};

/// Coroutine style: collects pieces from receive_some() until `messages` messages have ended.
struct stream_state {
    notifier note;
    int messages = 1;
    bool binary_rule = false;
    std::vector<piece> pieces;
    std::uint64_t answered = 0;
    bool ended = false;
};

core::task<void> collect_pieces(ws::hub_connection& c, stream_state* st) {
    if (st->binary_rule)
        c.set_auto_response("hb", "ok", ws::opcode::binary);
    int done = 0;
    while (done < st->messages) {
        auto p = co_await c.receive_some();
        REQUIRE_MESSAGE(p, p.error().message());
        st->pieces.push_back({std::string(p->data), p->type, p->first, p->last});
        st->note.notify();
        if (p->last)
            ++done;
    }
    st->answered = c.auto_responses_sent();
    st->ended = true;
    st->note.notify();
}

// An on_message hook that takes a message_view is handed each whole message without a copy:
// one that came in fragments (assembled) and one that came whole.
core::task<void> view_hook(core::loop& lp) {
    ws::hub hub;
    auto l = listen_local(lp);
    auto p = co_await connect_pair(l);
    core::task_scope scope(co_await core::get_stop_token());
    std::vector<std::string> seen;
    auto h = ws::events<>().on_message([&seen](auto& c, ws::message_view m) -> core::task<void> {
        seen.emplace_back(m.data);
        auto r = co_await c.conn.send_text(m.data);
        (void)r;
    });
    scope.spawn(hub.serve(*p.server, ws::handshake_info("/v"), h));
    co_await write_raw(*p.client, make_frame(ws::opcode::text, false, "Hel", true));
    co_await write_raw(*p.client, make_frame(ws::opcode::continuation, true, "lo", true));
    REQUIRE(co_await p.client->send_text("whole"));
    for (std::string_view want : {"Hello", "whole"}) {
        auto back = co_await p.client->receive();
        REQUIRE(back);
        CHECK(back->data == want);
    }
    CHECK(seen == std::vector<std::string>{"Hello", "whole"});
    CHECK(co_await p.client->close());
    co_await scope.join();
}

core::task<void> streaming_pieces(core::loop& lp) {
    stream_state st;
    core::clock::time_point fake = core::clock::now();
    ws::hub_options o;
    o.ping_interval = 10s;
    o.pong_timeout = 5s;
    o.clock = [&fake] { return fake; };
    ws::hub hub(o);
    auto l = listen_local(lp);
    auto p = co_await connect_pair(l);
    core::task_scope scope(co_await core::get_stop_token());
    scope.spawn(hub.serve(
        *p.server, ws::handshake_info("/stream"),
        [&st](ws::hub_connection& c, ws::handshake_info&) { return collect_pieces(c, &st); }));

    // Nine seconds after the open the first fragment arrives: a piece counts as activity, so
    // the heartbeat is due ten seconds after it, not after the open.
    fake += 9s;
    const auto head = make_frame(ws::opcode::text, false, "Hel", true);
    co_await write_raw(*p.client, head);
    while (st.pieces.empty())
        co_await st.note.wait();
    fake += 9s;
    hub.sweep();
    CHECK(hub.stats().pings_sent == 0);
    fake += 1s;
    hub.sweep();
    CHECK(hub.stats().pings_sent == 1);

    const auto tail = make_frame(ws::opcode::continuation, true, "lo", true);
    co_await write_raw(*p.client, tail);
    while (!st.ended)
        co_await st.note.wait();
    REQUIRE(st.pieces.size() >= 2); // one per frame at least
    std::string joined;
    for (std::size_t i = 0; i < st.pieces.size(); ++i) {
        CHECK(st.pieces[i].type == ws::opcode::text);
        CHECK(st.pieces[i].first == (i == 0));
        CHECK(st.pieces[i].last == (i + 1 == st.pieces.size()));
        joined += st.pieces[i].data;
    }
    CHECK(joined == "Hello");

    // The body returned: the hub closes with 1000 (the client answers the heartbeat on the way).
    auto end = co_await p.client->receive();
    REQUIRE_FALSE(end);
    CHECK(end.error() == ws::errc::closed);
    CHECK(p.client->close_code() == 1000);
    co_await scope.join();
    CHECK(hub.size() == 0);
}

core::task<void> streaming_auto_response(core::loop& lp) {
    stream_state st;
    st.messages = 2;
    st.binary_rule = true;
    ws::hub hub(ws::hub_options{});
    auto l = listen_local(lp);
    auto p = co_await connect_pair(l);
    core::task_scope scope(co_await core::get_stop_token());
    scope.spawn(hub.serve(
        *p.server, ws::handshake_info("/stream"),
        [&st](ws::hub_connection& c, ws::handshake_info&) { return collect_pieces(c, &st); }));

    // The request in two fragments: held back piece by piece, then answered.
    const auto split_request = fragmented(ws::opcode::binary, {"h", "b"});
    co_await write_raw(*p.client, split_request);
    auto m = co_await p.client->receive();
    REQUIRE(m);
    CHECK(m->type == ws::opcode::binary);
    CHECK(m->data == "ok");
    CHECK(st.pieces.empty());

    // A message that only starts like the request comes out whole, held bytes included; a text
    // message is not even looked at by the binary rule.
    auto others = fragmented(ws::opcode::binary, {"h", "x"});
    ws::testing::append(others, make_frame(ws::opcode::text, true, "hb", true));
    co_await write_raw(*p.client, others);
    while (!st.ended)
        co_await st.note.wait();
    CHECK(st.pieces == std::vector<piece>{{"hx", ws::opcode::binary, true, true},
                                          {"hb", ws::opcode::text, true, true}});
    CHECK(st.answered == 1);

    auto end = co_await p.client->receive();
    REQUIRE_FALSE(end);
    CHECK(p.client->close_code() == 1000);
    co_await scope.join();
    CHECK(hub.size() == 0);
}

} // namespace

TEST_SUITE("ws.hub.events") {

    TEST_CASE_TEMPLATE("on_ping is called with the payload of each ping from the peer", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return on_ping_payloads(lp); });
    }

    TEST_CASE_TEMPLATE("ping and pong from a hub connection reach the peer in order with its "
                       "queued messages",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return control_frames_in_order(lp); });
    }

    TEST_CASE_TEMPLATE(
        "a ping or pong payload over 125 bytes is refused and the connection goes on", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return long_control_payload(lp); });
    }

    TEST_CASE_TEMPLATE("a binary auto-response answers a binary request and not the same bytes "
                       "as text",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return binary_auto_response(lp); });
    }

    TEST_CASE_TEMPLATE("a hub's message_view hook gets whole messages, fragmented or not", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return view_hook(lp); });
    }

    TEST_CASE_TEMPLATE("receive_some on a hub connection yields the pieces of a fragmented "
                       "message and counts them as activity",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return streaming_pieces(lp); });
    }

    TEST_CASE_TEMPLATE("receive_some holds back a fragmented auto-response request and hands over "
                       "a message that only starts like it",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return streaming_auto_response(lp); });
    }

} // TEST_SUITE
