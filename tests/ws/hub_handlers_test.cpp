#include <coronet/ws/hub.hpp>

#include <coronet/ws/attachment_store.hpp>

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include "events_adapter.hpp"
#include "hub_fixture.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
using coronet::testing::run_on;
using namespace coronet::testing::hub_fixture;
using namespace std::chrono_literals;

namespace {

// ---- coroutine style and closing from the server ------------------------------------------

struct body_state {
    notifier note;
    int messages = 0;
    int ended = 0;
    std::vector<std::string> replies;
};

core::task<void> echo_body(ws::hub_connection& c, body_state* st) {
    for (;;) {
        auto m = co_await c.receive();
        if (!m)
            break;
        ++st->messages;
        if (m->data == "close me") {
            c.close(4000, "bye");
            continue;
        }
        auto sent = co_await c.send_text("echo:" + m->data);
        CHECK(sent);
    }
    ++st->ended;
    st->note.notify();
}

core::task<void> coroutine_style(core::loop& lp) {
    body_state st;
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(
        lp, ws::hub_options{},
        [&st](ws::hub_connection& c, ws::handshake_info&) { return echo_body(c, &st); }, tok,
        ws::server_options{});
    auto client = co_await connect_client(srv.url("/co"));
    auto sent = co_await client->send_text("x");
    REQUIRE(sent);
    auto m = co_await client->receive();
    REQUIRE(m);
    CHECK(m->data == "echo:x");
    CHECK(srv.hub().size() == 1);

    auto bye = co_await client->send_text("close me");
    REQUIRE(bye);
    auto end = co_await client->receive();
    REQUIRE_FALSE(end);
    CHECK(end.error() == ws::errc::closed);
    CHECK(client->close_code() == 4000);
    CHECK(client->close_reason() == "bye");
    while (st.ended < 1)
        co_await st.note.wait();
    CHECK(st.messages == 2);
    co_await srv.stop();
}

// ---- a handler that throws ------------------------------------------------------------------

core::task<void> throwing_body(ws::hub_connection& c, body_state* st) {
    auto m = co_await c.receive();
    ++st->ended;
    st->note.notify();
    if (m)
        throw std::runtime_error("handler failure (expected by the test)");
}

core::task<void> handler_throws(core::loop& lp) {
    body_state st;
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(
        lp, ws::hub_options{},
        [&st](ws::hub_connection& c, ws::handshake_info&) { return throwing_body(c, &st); }, tok,
        ws::server_options{});
    auto client = co_await connect_client(srv.url("/t"));
    auto sent = co_await client->send_text("boom");
    REQUIRE(sent);
    // The connection is dropped without a close frame; the hub forgets it.
    auto m = co_await client->receive();
    REQUIRE_FALSE(m);
    CHECK(client->close_code() == 1006);
    co_await srv.hub().close_all(1001, "test over");
    CHECK(srv.hub().size() == 0);
    CHECK(srv.hub().stats().aborted == 1);
    co_await srv.stop();
}

// ---- attachments and adoption -------------------------------------------------------------

std::vector<std::byte> bytes_of(std::string_view s) {
    const auto b = std::as_bytes(std::span(s.data(), s.size()));
    return {b.begin(), b.end()};
}

std::string string_of(const std::vector<std::byte>& b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

core::task<void> attachment_body(ws::hub_connection& c, body_state* st) {
    ws::hub& hub = c.owner();
    for (;;) {
        auto m = co_await c.receive();
        if (!m)
            break;
        std::string reply;
        if (m->data.starts_with("adopt ")) {
            auto r = co_await hub.adopt(c, std::stoull(m->data.substr(6)));
            reply = r ? "adopted" : "error:" + r.error().message();
        } else if (m->data.starts_with("set ")) {
            auto r = co_await c.set_attachment(bytes_of(m->data.substr(4)));
            reply = r ? "ok" : "error";
        } else if (m->data == "get") {
            auto r = co_await c.attachment();
            REQUIRE(r);
            reply = r->has_value() ? "got:" + string_of(**r) : "none";
        } else if (m->data == "id") {
            reply = std::to_string(c.id());
        }
        auto sent = co_await c.send_text(reply);
        CHECK(sent);
    }
    ++st->ended;
    st->note.notify();
}

core::task<std::string> ask(ws::session& c, std::string what) {
    auto sent = co_await c.send_text(what);
    REQUIRE(sent);
    auto m = co_await c.receive();
    REQUIRE(m);
    co_return m->data;
}

core::task<void> attachments(core::loop& lp) {
    body_state st;
    ws::hub_options o;
    o.keep_attachment_after_abnormal_close = true;
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(
        lp, o,
        [&st](ws::hub_connection& c, ws::handshake_info&) { return attachment_body(c, &st); }, tok,
        ws::server_options{});
    ws::hub& hub = srv.hub();

    // What a crashed process left.
    auto put = co_await hub.store().put(777, bytes_of("old state"));
    REQUIRE(put);
    auto left = co_await hub.leftover_attachments();
    REQUIRE(left);
    CHECK(*left == std::vector<std::uint64_t>{777});

    auto first = co_await connect_client(srv.url("/a"));
    const std::uint64_t first_id = std::stoull(co_await ask(*first, "id"));
    std::string reply = co_await ask(*first, "get");
    CHECK(reply == "none");
    reply = co_await ask(*first, "adopt 777");
    CHECK(reply == "adopted");
    reply = co_await ask(*first, "get");
    CHECK(reply == "got:old state");
    auto old = co_await hub.store().get(777);
    REQUIRE(old);
    CHECK_FALSE(old->has_value());

    auto second = co_await connect_client(srv.url("/a"));
    const std::uint64_t second_id = std::stoull(co_await ask(*second, "id"));
    reply = co_await ask(*second, "adopt 777");
    CHECK(reply == "error:" + make_error_code(ws::hub_errc::unknown_id).message());
    reply = co_await ask(*second, "adopt " + std::to_string(first_id));
    CHECK(reply == "error:" + make_error_code(ws::hub_errc::id_in_use).message());
    reply = co_await ask(*second, "set fresh");
    CHECK(reply == "ok");
    left = co_await hub.leftover_attachments();
    REQUIRE(left);
    CHECK(left->empty()); // both attachments belong to live connections

    // A clean close removes the attachment; a connection that vanished keeps it for adoption.
    auto closed = co_await first->close();
    CHECK(closed);
    second.reset();
    while (st.ended < 2)
        co_await st.note.wait();
    co_await hub.close_all(1001, "test over"); // returns once every connection has ended
    CHECK(hub.size() == 0);
    auto all = co_await hub.store().list();
    REQUIRE(all);
    CHECK(*all == std::vector<std::uint64_t>{second_id});
    co_await srv.stop();
}

} // namespace

TEST_SUITE("ws.hub") {

    TEST_CASE_TEMPLATE("a coroutine-style connection echoes and closes from the server", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return coroutine_style(lp); }, 30s);
    }

    TEST_CASE_TEMPLATE("a handler that throws drops its connection and the hub stays consistent", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return handler_throws(lp); }, 30s);
    }

    TEST_CASE_TEMPLATE("a leftover attachment is adopted once and removed on a clean close", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return attachments(lp); }, 30s);
    }

} // TEST_SUITE
