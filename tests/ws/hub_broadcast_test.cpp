#include <coronet/ws/hub.hpp>

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include "events_adapter.hpp"
#include "hub_fixture.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
using coronet::testing::run_on;
using namespace coronet::testing::hub_fixture;
using namespace std::chrono_literals;

namespace {

// ---- 1,000 connections in four rooms ------------------------------------------------------

core::task<void> rooms_and_broadcast(core::loop& lp) {
    constexpr int n = 1000;
    raise_fd_limit(2 * n + 64);
    notifier note;
    room_handler h;
    h.note = &note;
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(lp, ws::hub_options{}, coronet::testing::events_of<ws::hub_connection>(h), tok,
                   ws::server_options{});
    ws::hub& hub = srv.hub();
    h.hub = &hub;

    std::vector<std::unique_ptr<ws::session>> clients;
    std::vector<std::uint64_t> ids;
    for (int i = 0; i < n; ++i) {
        clients.push_back(co_await connect_client(srv.url("/r" + std::to_string(i % 4))));
        ids.push_back(co_await read_id(*clients.back()));
    }
    CHECK(hub.size() == n);
    CHECK(hub.stats().accepted == n);
    const std::set<std::uint64_t> distinct(ids.begin(), ids.end());
    CHECK(distinct.size() == n);
    CHECK_FALSE(distinct.contains(0));
    for (int r = 0; r < 4; ++r)
        CHECK(hub.room_size("r" + std::to_string(r)) == n / 4);
    CHECK(hub.room_size("nowhere") == 0);
    CHECK(hub.is_member("r1", ids[1]));
    CHECK_FALSE(hub.is_member("r0", ids[1]));
    ws::hub_connection* c1 = hub.find(ids[1]);
    REQUIRE(c1 != nullptr);
    CHECK(c1->state() == ws::connection_state::open);
    REQUIRE(c1->rooms().size() == 1);
    CHECK(c1->rooms()[0] == "r1");
    REQUIRE(c1->meta("path") != nullptr);
    CHECK(*c1->meta("path") == "/r1");

    std::vector<std::vector<std::string>> expected(n);
    auto expect = [&](const std::string& text, const std::function<bool(int)>& to) {
        for (int i = 0; i < n; ++i)
            if (to(i))
                expected[i].push_back(text);
    };

    for (int k = 0; k < 3; ++k) {
        const auto pm = ws::prepared_message::text("a" + std::to_string(k));
        CHECK(hub.broadcast_room("r0", pm) == n / 4);
        // Every receiver's queue holds the one frame (the writers have not run yet).
        CHECK(pm.frame().use_count() == 1 + n / 4);
        expect("a" + std::to_string(k), [](int i) { return i % 4 == 0; });
    }
    CHECK(hub.broadcast_room_except("r1", ws::prepared_message::text("b"), ids[1]) == n / 4 - 1);
    expect("b", [](int i) { return i % 4 == 1 && i != 1; });
    CHECK(hub.broadcast_except(ws::prepared_message::text("c"), ids[2]) == n - 1);
    expect("c", [](int i) { return i != 2; });
    const auto d = ws::prepared_message::text("d");
    CHECK(hub.broadcast(d) == n);
    CHECK(d.frame().use_count() == 1 + n);
    expect("d", [](int) { return true; });
    CHECK(hub.broadcast_room("nowhere", d) == 0);

    // A member's message reaches the rest of its room through the handler.
    auto sent = co_await clients[3]->send_text("from3");
    REQUIRE(sent);
    while (h.messages < 1)
        co_await note.wait();
    expect("from3", [](int i) { return i % 4 == 3 && i != 3; });

    // Everything after this marker is known: whatever precedes it must be exactly the expected
    // list (each frame once, in order, nothing for non-members).
    CHECK(hub.broadcast(ws::prepared_message::text("end")) == n);
    expect("end", [](int) { return true; });
    for (int i = 0; i < n; ++i) {
        std::vector<std::string> got;
        while (got.size() < expected[i].size()) {
            auto m = co_await clients[i]->receive();
            REQUIRE(m);
            got.push_back(m->data);
            if (m->data == "end")
                break;
        }
        CHECK_MESSAGE(got == expected[i], "client " << i);
    }

    // Leaving is implicit on close.
    auto closed = co_await clients[0]->close();
    CHECK(closed);
    while (h.closed < 1)
        co_await note.wait();
    CHECK(h.closes[ids[0]].code == 1000);
    CHECK(hub.find(ids[0]) == nullptr);
    CHECK(hub.size() == n - 1);
    CHECK(hub.room_size("r0") == n / 4 - 1);
    CHECK_FALSE(hub.is_member("r0", ids[0]));

    clients.clear(); // the rest vanish without a close frame
    while (h.closed < n)
        co_await note.wait();
    CHECK(hub.size() == 0);
    CHECK(hub.room_names().empty());
    CHECK(h.closes[ids[5]].code == 1006);
    co_await srv.stop();
}

// ---- permessage-deflate: a broadcast compressed once per window size ------------------------

core::task<void> compressed_broadcast(core::loop& lp) {
    notifier note;
    room_handler h;
    h.note = &note;
    ws::server_options so;
    so.handshake.deflate.enabled = true;
    so.handshake.deflate.server_no_context_takeover = true;
    hub_server srv(lp, ws::hub_options{}, coronet::testing::events_of<ws::hub_connection>(h),
                   co_await core::get_stop_token(), so);
    h.hub = &srv.hub();
    // Receivers asking for windows 9, 12, 15 and 15, one without deflate.
    std::vector<std::unique_ptr<ws::session>> clients;
    for (int bits : {9, 12, 15, 15, 0}) {
        ws::connect_options o;
        o.handshake.deflate.enabled = bits != 0;
        if (bits != 0)
            o.handshake.deflate.server_max_window_bits = static_cast<std::uint8_t>(bits);
        auto c = co_await ws::connect(srv.url("/z"), o);
        REQUIRE(c);
        CHECK((*c)->compression().has_value() == (bits != 0));
        if (bits != 0) {
            CHECK((*c)->compression()->server_no_context_takeover);
            CHECK((*c)->compression()->server_max_window_bits == bits);
        }
        (void)co_await read_id(**c);
        clients.push_back(std::move(*c));
    }
    std::string body;
    for (int i = 0; i < 100; ++i)
        body += R"({"seq":)" + std::to_string(i) + R"(,"text":"the same words again"})";
    const auto pm = ws::prepared_message::text(body);
    CHECK(srv.hub().broadcast_room("z", pm) == clients.size());
    CHECK(pm.compressed_variants() == 3); // one per distinct window, not per receiver
    for (auto& c : clients) {
        auto m = co_await c->receive();
        REQUIRE(m);
        CHECK(m->data == body);
    }
    // A short message stays uncompressed (under min_size) and still arrives.
    const auto small = ws::prepared_message::text("hi");
    CHECK(srv.hub().broadcast_room("z", small) == clients.size());
    CHECK(small.compressed_variants() == 0);
    for (auto& c : clients) {
        auto m = co_await c->receive();
        REQUIRE(m);
        CHECK(m->data == "hi");
    }
    for (auto& c : clients)
        CHECK(co_await c->close());
    co_await srv.stop();
}

// Broadcasts larger than a socket buffer, to members that read only after all of them went
// out: each frame continues exactly where the socket stopped taking it, and the frames after
// it wait behind it. Every byte is compared.
core::task<void> large_broadcasts_to_late_readers(core::loop& lp) {
    notifier note;
    room_handler h;
    h.note = &note;
    ws::hub_options o;
    o.max_queued_bytes = 16 * 1024 * 1024;
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(lp, o, coronet::testing::events_of<ws::hub_connection>(h), tok,
                   ws::server_options());
    h.hub = &srv.hub();
    std::vector<std::unique_ptr<ws::session>> clients;
    for (int i = 0; i < 2; ++i) {
        clients.push_back(co_await connect_client(srv.url("/big")));
        (void)co_await read_id(*clients.back());
    }
    std::vector<std::string> bodies;
    for (int k = 0; k < 4; ++k) {
        std::string b(700 * 1024 + static_cast<std::size_t>(k) * 4099, 'a');
        for (std::size_t i = 0; i < b.size(); ++i)
            b[i] = static_cast<char>('a' + (i * 7 + static_cast<std::size_t>(k)) % 26);
        bodies.push_back(std::move(b));
        CHECK(srv.hub().broadcast_room("big", ws::prepared_message::text(bodies.back())) == 2);
    }
    const auto tail = ws::prepared_message::text("after");
    CHECK(srv.hub().broadcast_room("big", tail) == 2);
    for (auto& c : clients) {
        for (const std::string& b : bodies) {
            auto m = co_await c->receive();
            REQUIRE(m);
            CHECK(m->data.size() == b.size());
            CHECK(m->data == b);
        }
        auto m = co_await c->receive();
        REQUIRE(m);
        CHECK(m->data == "after");
    }
    CHECK(srv.hub().stats().dropped == 0);
    for (auto& c : clients)
        CHECK(co_await c->close());
    co_await srv.stop();
}

} // namespace

TEST_SUITE("ws.hub") {

    TEST_CASE_TEMPLATE("broadcasts larger than a socket buffer reach late readers byte for byte", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return large_broadcasts_to_late_readers(lp); });
    }

    TEST_CASE_TEMPLATE("a thousand connections in four rooms get every broadcast once and in order",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return rooms_and_broadcast(lp); }, 50s);
    }

    TEST_CASE_TEMPLATE(
        "a compressed broadcast is built once per window size and inflates everywhere", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return compressed_broadcast(lp); });
    }

} // TEST_SUITE
