// The hub's side of a backplane (ws/backplane.hpp), with a recording fake: rooms opened and
// closed on the first and last local member, one publish per room broadcast, remote deliveries
// fanned out locally and never published again.
#include <coronet/ws/backplane.hpp>
#include <coronet/ws/hub.hpp>

#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/ws/session.hpp>

#include <testing/backends.hpp>
#include <testing/loop_threads.hpp>
#include <testing/memory_stream.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
using coronet::testing::poll_until;
using coronet::testing::run_on;

namespace {

struct recording_backplane final : ws::backplane {
    std::vector<std::string> events;
    void room_opened(std::string_view room) override {
        events.push_back("open " + std::string(room));
    }
    void room_closed(std::string_view room) override {
        events.push_back("close " + std::string(room));
    }
    void publish(std::string_view room, ws::opcode type,
                 std::span<const std::byte> payload) override {
        events.push_back(
            "publish " + std::string(room) + (type == ws::opcode::text ? " t " : " b ") +
            std::string(reinterpret_cast<const char*>(payload.data()), payload.size()));
    }
};

core::task<void> serve_member(ws::hub& h, std::unique_ptr<ws::session> s, std::string room) {
    co_await h.serve(*s, ws::handshake_info("/" + room),
                     [](ws::hub_connection& c, ws::handshake_info& info) -> core::task<void> {
                         c.join(info.target().substr(1));
                         for (;;) {
                             auto m = co_await c.receive();
                             if (!m)
                                 co_return;
                         }
                     });
}

core::task<void> read_all(ws::session& s, std::vector<std::string>& got) {
    for (;;) {
        auto m = co_await s.receive();
        if (!m)
            co_return;
        got.push_back(std::move(m->data));
    }
}

core::task<void> backplane_calls(core::loop& lp) {
    core::stop_token tok = co_await core::get_stop_token();
    ws::hub h(ws::hub_options{});
    recording_backplane bp;
    core::task_scope scope(tok);
    std::vector<std::unique_ptr<ws::session>> clients;
    std::vector<std::string> got_a;
    std::vector<std::string> got_b;
    auto add = [&](const std::string& room, std::vector<std::string>& got) {
        auto [client_end, server_end] = coronet::testing::memory_stream_pair(lp);
        clients.push_back(std::make_unique<ws::session>(std::move(client_end), ws::role::client));
        scope.spawn(serve_member(
            h, std::make_unique<ws::session>(std::move(server_end), ws::role::server), room));
        scope.spawn(read_all(*clients.back(), got));
    };
    add("a", got_a);
    CHECK(co_await poll_until([&h] { return h.room_size("a") == 1; }));
    // Rooms that exist when the backplane is set count as opened.
    h.set_backplane(&bp);
    CHECK(h.current_backplane() == &bp);
    REQUIRE(bp.events.size() == 1);
    CHECK(bp.events[0] == "open a");
    add("b", got_b);
    CHECK(co_await poll_until([&h] { return h.room_size("b") == 1; }));
    REQUIRE(bp.events.size() == 2);
    CHECK(bp.events[1] == "open b");

    // One publish per room broadcast, with or without local members; none for a whole-hub one.
    CHECK(h.broadcast_room("a", ws::prepared_message::text("hello")) == 1);
    CHECK(h.broadcast_room_except("nobody", ws::prepared_message::text("x"), 0) == 0);
    const std::byte bin[] = {std::byte{'b'}, std::byte{'i'}, std::byte{'n'}};
    CHECK(h.broadcast_room("b", ws::prepared_message::binary(bin)) == 1);
    CHECK(h.broadcast(ws::prepared_message::text("all")) == 2);
    REQUIRE(bp.events.size() == 5);
    CHECK(bp.events[2] == "publish a t hello");
    CHECK(bp.events[3] == "publish nobody t x");
    CHECK(bp.events[4] == "publish b b bin");
    CHECK(h.stats().published == 3);

    // A remote message: fanned out locally, not published again.
    CHECK(h.deliver_remote("a", ws::prepared_message::text("from afar")) == 1);
    CHECK(h.deliver_remote("nobody", ws::prepared_message::text("lost")) == 0);
    CHECK(bp.events.size() == 5);
    CHECK(h.stats().remote == 2);
    CHECK(co_await poll_until([&got_a] { return got_a.size() == 3; }));
    CHECK(got_a == std::vector<std::string>{"hello", "all", "from afar"});

    // The last member leaving closes the room.
    h.for_each_member("b", [](ws::hub_connection& c) { c.leave("b"); });
    REQUIRE(bp.events.size() == 6);
    CHECK(bp.events[5] == "close b");

    // Detached: no more calls.
    h.set_backplane(nullptr);
    CHECK(h.broadcast_room("a", ws::prepared_message::text("quiet")) == 1);
    CHECK(bp.events.size() == 6);
    CHECK(h.stats().published == 3);

    co_await h.close_all(1001, "test over");
    scope.request_stop();
    co_await scope.join();
}

} // namespace

TEST_SUITE("ws.hub_backplane") {
    TEST_CASE_TEMPLATE("a hub tells its backplane about rooms and room broadcasts, and fans out "
                       "remote messages without publishing them",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return backplane_calls(lp); });
    }
}
