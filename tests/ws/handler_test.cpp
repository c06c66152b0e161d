#include <coronet/ws/handler.hpp>

#include <coronet/core/scope.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/ws/hub.hpp>

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include "session_pair.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
using coronet::testing::listen_local;
using coronet::testing::loopback_sessions;
using coronet::testing::run_on;
using namespace std::chrono_literals;

namespace {

// The per-connection state of the recording handler: made from the handshake.
struct visit {
    explicit visit(ws::handshake_info& info) : path(info.path()) {}
    std::string path;
    int messages = 0;
};

// Every hook records what it saw, in order.
auto recording_events(std::vector<std::string>& log) {
    return ws::events<>()
        .with_state<visit>()
        .on_open([&log](auto& c) { log.push_back("open:" + c.state.path); })
        .on_message([&log](auto& c, ws::message& m) -> core::task<void> {
            ++c.state.messages;
            log.push_back("message:" + m.data + ":" + std::to_string(c.state.messages));
            auto sent = co_await c.conn.send_text(m.data);
            (void)sent;
        })
        .on_ping([&log](auto&, std::string_view p) { log.push_back("ping:" + std::string(p)); })
        .on_error([&log](auto&, std::error_code ec) { log.push_back("error:" + ec.message()); })
        .on_close([&log](auto&, std::uint16_t code, std::string_view reason) {
            log.push_back("close:" + std::to_string(code) + ":" + std::string(reason));
        });
}

// Sends each text, expects it echoed, then closes with 1000 "done".
core::task<void> echoes_then_close(ws::session& client, std::vector<std::string> texts) {
    for (const std::string& text : texts) {
        REQUIRE(co_await client.send_text(text));
        auto back = co_await client.receive();
        REQUIRE(back);
        CHECK(back->data == text);
    }
    CHECK(co_await client.close(1000, "done"));
}

core::task<void> events_in_order(core::loop& lp) {
    auto l = listen_local(lp);
    auto p = co_await loopback_sessions(l, {});
    std::vector<std::string> log;
    ws::session_handler h = recording_events(log);
    ws::handshake_info info("/room/7?x=1");
    core::task_scope scope;
    scope.spawn(ws::serve_session(h, *p.server, info));
    REQUIRE(co_await p.client->ping("hi"));
    std::vector<std::string> texts = {"one", "two"}; // (g++ 12: no braced list in co_await)
    co_await echoes_then_close(*p.client, std::move(texts));
    co_await scope.join();
    const std::vector<std::string> want = {"open:/room/7", "ping:hi", "message:one:1",
                                           "message:two:2", "close:1000:done"};
    CHECK(log == want);
}

// The same conversation through an on_message hook that takes a message_view, one at a time
// and with calls running concurrently (each then owns a copy).
core::task<void> view_events(core::loop& lp, std::size_t concurrency) {
    auto l = listen_local(lp);
    auto p = co_await loopback_sessions(l, {});
    std::vector<std::string> log;
    ws::session_handler h =
        ws::events<>()
            .concurrency(concurrency)
            .on_message([&log](auto& c, ws::message_view m) -> core::task<void> {
                log.emplace_back(m.data);
                co_await core::sleep_for(1ms); // the view outlives a wait
                auto sent = co_await c.conn.send_text(m.data);
                (void)sent;
            });
    ws::handshake_info info("/");
    core::task_scope scope;
    scope.spawn(ws::serve_session(h, *p.server, info));
    std::vector<std::string> texts = {"one", "two", std::string(100000, 'z')};
    co_await echoes_then_close(*p.client, std::move(texts));
    co_await scope.join();
    REQUIRE(log.size() == 3);
    CHECK(log[0] == "one");
    CHECK(log[2].size() == 100000);
}

core::task<void> protocol_error_reaches_on_error(core::loop& lp) {
    auto l = listen_local(lp);
    auto p = co_await loopback_sessions(l, {});
    std::vector<std::string> log;
    ws::session_handler h = recording_events(log);
    ws::handshake_info info("/");
    core::task_scope scope;
    scope.spawn(ws::serve_session(h, *p.server, info));
    // Text must be UTF-8 (RFC 6455 §8.1); the client side does not check what it sends.
    REQUIRE(co_await p.client->send_text("\xff\xfe"));
    auto back = co_await p.client->receive();
    CHECK_FALSE(back);
    CHECK(p.client->close_code() == 1007);
    co_await scope.join();
    REQUIRE(log.size() == 3);
    CHECK(log[0] == "open:/");
    CHECK(log[1] == "error:" + ws::make_error_code(ws::errc::invalid_payload).message());
    CHECK(log[2].rfind("close:", 0) == 0);
}

core::task<void> echo_body(ws::session& s, ws::handshake_info& info) {
    auto m = co_await s.receive();
    if (m)
        (void)co_await s.send_text(std::string(info.subprotocol()) + ":" + m->data);
}

core::task<void> coroutine_body_then_1000(core::loop& lp) {
    auto l = listen_local(lp);
    auto p = co_await loopback_sessions(l, {});
    ws::session_handler h = echo_body;
    ws::handshake_info info("/");
    info.set_subprotocol("chat");
    core::task_scope scope;
    scope.spawn(ws::serve_session(h, *p.server, info));
    REQUIRE(co_await p.client->send_text("x"));
    auto back = co_await p.client->receive();
    REQUIRE(back);
    CHECK(back->data == "chat:x");
    auto next = co_await p.client->receive(); // the body returned: the server closes
    CHECK_FALSE(next);
    CHECK(p.client->close_code() == 1000);
    co_await scope.join();
}

core::task<void> throwing_body(ws::session&, ws::handshake_info&) {
    throw std::runtime_error("handler bug");
    co_return;
}

core::task<void> rethrow_into(bool& rethrown, core::task<void> t) {
    try {
        co_await std::move(t);
    } catch (const std::runtime_error&) {
        rethrown = true;
    }
}

core::task<void> throwing_body_closes_1011(core::loop& lp) {
    auto l = listen_local(lp);
    auto p = co_await loopback_sessions(l, {});
    ws::session_handler h = throwing_body;
    ws::handshake_info info("/");
    bool rethrown = false;
    core::task_scope scope;
    scope.spawn(rethrow_into(rethrown, ws::serve_session(h, *p.server, info)));
    auto m = co_await p.client->receive();
    CHECK_FALSE(m);
    CHECK(p.client->close_code() == 1011);
    co_await scope.join();
    CHECK(rethrown);
}

// on_message sleeps `delay`, then sends "a:N" and "b:N"; records how many calls overlap.
struct overlap {
    int running = 0;
    int most = 0;
};

auto slow_echo(overlap& o, std::size_t concurrency) {
    return ws::events<>()
        .on_message([&o](auto& c, ws::message& m) -> core::task<void> {
            o.most = std::max(o.most, ++o.running);
            co_await core::sleep_for(20ms);
            (void)co_await c.conn.send_text("a:" + m.data);
            (void)co_await c.conn.send_text("b:" + m.data);
            --o.running;
        })
        .concurrency(concurrency);
}

core::task<void> concurrent_handlers(core::loop& lp, std::size_t limit, int expect_most) {
    auto l = listen_local(lp);
    auto p = co_await loopback_sessions(l, {});
    overlap o;
    ws::session_handler h = slow_echo(o, limit);
    ws::handshake_info info("/");
    core::task_scope scope;
    scope.spawn(ws::serve_session(h, *p.server, info));
    for (int i = 0; i < 8; ++i)
        REQUIRE(co_await p.client->send_text(std::to_string(i)));
    std::map<std::string, std::vector<char>> order; // per message: the order of its two replies
    for (int i = 0; i < 16; ++i) {
        auto back = co_await p.client->receive();
        REQUIRE(back);
        order[back->data.substr(2)].push_back(back->data[0]);
    }
    REQUIRE(order.size() == 8);
    for (const auto& [msg, replies] : order)
        CHECK(replies == std::vector<char>{'a', 'b'});
    CHECK(o.most == expect_most);
    CHECK(co_await p.client->close());
    co_await scope.join();
    CHECK(o.running == 0);
}

} // namespace

TEST_SUITE("ws.handler") {
    TEST_CASE_TEMPLATE("event hooks see open, ping, each message with typed state, then close", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return events_in_order(lp); });
    }

    TEST_CASE_TEMPLATE("a protocol error calls on_error, then on_close", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return protocol_error_reaches_on_error(lp); });
    }

    TEST_CASE_TEMPLATE("a coroutine handler sees the handshake and its return closes with 1000", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return coroutine_body_then_1000(lp); });
    }

    TEST_CASE_TEMPLATE("a handler that throws closes with 1011 and the exception reaches the host",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return throwing_body_closes_1011(lp); });
    }

    TEST_CASE_TEMPLATE(
        "concurrency 8 runs eight message handlers at once, each one's sends in order", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return concurrent_handlers(lp, 8, 8); });
    }

    TEST_CASE_TEMPLATE("an on_message hook may take a message_view", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        SUBCASE("one call at a time") {
            run_on<B>([](core::loop& lp) { return view_events(lp, 1); });
        }
        SUBCASE("concurrent calls") {
            run_on<B>([](core::loop& lp) { return view_events(lp, 2); });
        }
    }

    TEST_CASE_TEMPLATE("by default message handlers run one at a time", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return concurrent_handlers(lp, 1, 1); });
    }

    TEST_CASE("the hooks' shapes are checked by the handler_for concept") {
        auto ok = ws::events<>().on_message([](auto&, ws::message&) {});
        static_assert(ws::handler_for<decltype(ok), ws::session>);
        auto by_view = ws::events<>().on_message([](auto&, ws::message_view) {});
        static_assert(ws::handler_for<decltype(by_view), ws::session>);
        static_assert(ws::handler_for<decltype(by_view), ws::hub_connection>);
        static_assert(ws::handler_for<decltype(&echo_body), ws::session>);
        static_assert(!ws::handler_for<int, ws::session>);
        CHECK(ok.max_concurrency() == 1);
    }

    TEST_CASE("handshake_info without parameters, headers, subprotocol or state reads as empty") {
        ws::handshake_info info("/chat/blue?x=1");
        CHECK(info.path() == "/chat/blue");
        CHECK(info.query() == "x=1");
        CHECK(info.params().empty());
        CHECK(info.headers().empty());
        CHECK(info.param("room").empty());
        CHECK(info.header("Cookie").empty());
        CHECK(info.subprotocol().empty());
        CHECK_FALSE(info.has_state());
        CHECK(info.state<int>() == nullptr);
        info.reset_state(); // nothing to reset
        info.set_subprotocol("");
        CHECK(info.subprotocol().empty());

        // The rarely used part comes on first use and behaves as before.
        info.add_param("room", "blue");
        info.add_header("Cookie", "sid=1");
        info.set_subprotocol("chat.v2");
        info.emplace_state<int>(7);
        REQUIRE(info.params().size() == 1);
        CHECK(info.param("room") == "blue");
        CHECK(info.header("cookie") == "sid=1");
        CHECK(info.subprotocol() == "chat.v2");
        REQUIRE(info.state<int>() != nullptr);
        CHECK(*info.state<int>() == 7);
        CHECK(info.state<long>() == nullptr);

        ws::handshake_info moved(std::move(info));
        CHECK(moved.param("room") == "blue");
        CHECK(*moved.state<int>() == 7);
        moved.reset_state();
        CHECK_FALSE(moved.has_state());
        CHECK(moved.subprotocol() == "chat.v2");
    }
}
