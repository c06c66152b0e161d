#include <coronet/ws/hub.hpp>

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include "events_adapter.hpp"
#include "hub_fixture.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
using coronet::testing::run_on;
using namespace coronet::testing::hub_fixture;
using namespace std::chrono_literals;

namespace {

// ---- the server's own graceful stop ---------------------------------------------------------

core::task<void> server_stop(core::loop& lp) {
    notifier note;
    room_handler h;
    h.note = &note;
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(lp, ws::hub_options{}, coronet::testing::events_of<ws::hub_connection>(h), tok,
                   ws::server_options{});
    h.hub = &srv.hub();
    auto client = co_await connect_client(srv.url("/s"));
    const std::uint64_t id = co_await read_id(*client);
    core::task_scope readers(tok);
    readers.spawn(drain(*client));
    co_await srv.stop_server();
    CHECK(srv.hub().size() == 0);
    CHECK(h.closes[id].code == 1001);
    co_await readers.join();
    CHECK(client->close_code() == 1001);
}

// ---- limits, ids, metadata ----------------------------------------------------------------

core::task<void> max_connections(core::loop& lp) {
    notifier note;
    room_handler h;
    h.note = &note;
    ws::hub_options o;
    o.max_connections = 2;
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(lp, o, coronet::testing::events_of<ws::hub_connection>(h), tok,
                   ws::server_options{});
    ws::hub& hub = srv.hub();
    h.hub = &hub;

    CHECK(hub.can_accept());
    auto a = co_await connect_client(srv.url("/m"));
    const std::uint64_t a_id = co_await read_id(*a);
    auto b = co_await connect_client(srv.url("/m"));
    const std::uint64_t b_id = co_await read_id(*b);
    CHECK(a_id != b_id);
    CHECK_FALSE(hub.can_accept());

    auto refused = co_await connect_client(srv.url("/m"));
    auto m = co_await refused->receive();
    REQUIRE_FALSE(m);
    CHECK(m.error() == ws::errc::closed);
    CHECK(refused->close_code() == 1013);
    CHECK(hub.stats().refused == 1);
    CHECK(hub.size() == 2);
    CHECK(h.opened == 2);

    ws::hub_connection* c = hub.find(a_id);
    REQUIRE(c != nullptr);
    c->set_meta("user", "ada");
    c->set_meta("user", "grace");
    REQUIRE(c->meta("user") != nullptr);
    CHECK(*c->meta("user") == "grace");
    CHECK(c->metadata().size() == 2); // and "path"
    CHECK(c->erase_meta("user"));
    CHECK_FALSE(c->erase_meta("user"));
    CHECK(c->meta("user") == nullptr);
    CHECK(c->join("second"));
    CHECK_FALSE(c->join("second"));
    CHECK(c->in_room("second"));
    CHECK(c->leave("second"));
    CHECK_FALSE(c->leave("second"));
    CHECK(hub.room_size("second") == 0);

    int visited = 0;
    hub.for_each([&](ws::hub_connection&) { ++visited; });
    CHECK(visited == 2);
    visited = 0;
    hub.for_each_member("m", [&](ws::hub_connection& member) {
        ++visited;
        member.leave("m"); // allowed while iterating a room
    });
    CHECK(visited == 2);
    CHECK(hub.room_size("m") == 0);

    auto closed = co_await a->close();
    CHECK(closed);
    while (hub.size() > 1)
        co_await note.wait();
    CHECK(hub.can_accept());
    refused.reset();
    b.reset();
    while (hub.size() > 0)
        co_await note.wait();
    co_await srv.stop();
}

} // namespace

TEST_SUITE("ws.hub") {

    TEST_CASE_TEMPLATE("stopping the server closes hub connections with 1001", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return server_stop(lp); }, 30s);
    }

    TEST_CASE_TEMPLATE("a connection over max_connections is closed with 1013", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return max_connections(lp); }, 30s);
    }

} // TEST_SUITE
