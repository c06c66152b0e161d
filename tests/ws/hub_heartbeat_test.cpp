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

// ---- auto-responses -----------------------------------------------------------------------

core::task<void> auto_response(core::loop& lp) {
    notifier note;
    room_handler h;
    h.note = &note;
    h.echo = true;
    h.auto_request = "ping";
    h.auto_response = "pong";
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(lp, ws::hub_options{}, coronet::testing::events_of<ws::hub_connection>(h), tok,
                   ws::server_options{});
    h.hub = &srv.hub();
    auto client = co_await connect_client(srv.url("/auto"));
    const std::uint64_t id = co_await read_id(*client);
    for (int i = 0; i < 3; ++i) {
        auto sent = co_await client->send_text("ping");
        REQUIRE(sent);
        auto m = co_await client->receive();
        REQUIRE(m);
        CHECK(m->data == "pong");
    }
    CHECK(h.messages == 0);
    ws::hub_connection* c = srv.hub().find(id);
    REQUIRE(c != nullptr);
    CHECK(c->auto_responses_sent() == 3);

    auto other = co_await client->send_text("hello");
    REQUIRE(other);
    auto echoed = co_await client->receive();
    REQUIRE(echoed);
    CHECK(echoed->data == "echo:hello");
    CHECK(h.messages == 1);

    c->clear_auto_response();
    auto again = co_await client->send_text("ping");
    REQUIRE(again);
    auto handled = co_await client->receive();
    REQUIRE(handled);
    CHECK(handled->data == "echo:ping");
    CHECK(h.messages == 2);
    client.reset();
    while (h.closed < 1)
        co_await note.wait();
    co_await srv.stop();
}

// ---- heartbeats ---------------------------------------------------------------------------

core::task<void> heartbeat(core::loop& lp) {
    notifier note;
    room_handler h;
    h.note = &note;
    core::clock::time_point fake = core::clock::now();
    ws::hub_options o;
    o.ping_interval = 10s;
    o.pong_timeout = 5s;
    o.clock = [&fake] { return fake; };
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(lp, o, coronet::testing::events_of<ws::hub_connection>(h), tok,
                   ws::server_options{});
    ws::hub& hub = srv.hub();
    h.hub = &hub;

    auto answers = co_await connect_client(srv.url("/hb"));
    const std::uint64_t answers_id = co_await read_id(*answers);
    auto silent = co_await connect_client(srv.url("/hb"));
    const std::uint64_t silent_id = co_await read_id(*silent);
    core::task_scope readers(tok);
    readers.spawn(drain(*answers)); // answers pings; `silent` never reads

    fake += 9s;
    hub.sweep();
    CHECK(hub.stats().pings_sent == 0);
    fake += 1s; // interval
    hub.sweep();
    CHECK(hub.stats().pings_sent == 2);
    while (h.pongs < 1)
        co_await note.wait();

    fake += 5s; // interval + timeout: the silent one is dropped, the other answered
    hub.sweep();
    CHECK(hub.stats().timed_out == 1);
    while (h.closed < 1)
        co_await note.wait();
    CHECK(h.closes[silent_id].code == 1006);
    CHECK(h.closes[silent_id].reason == "pong timeout");
    CHECK(hub.find(silent_id) == nullptr);
    REQUIRE(hub.find(answers_id) != nullptr);

    fake += 5s; // ten seconds after its pong: pinged again
    hub.sweep();
    CHECK(hub.stats().pings_sent == 3);
    while (h.pongs < 2)
        co_await note.wait();
    fake += 5s;
    hub.sweep();
    CHECK(hub.stats().timed_out == 1);
    REQUIRE(hub.find(answers_id) != nullptr);
    CHECK(hub.find(answers_id)->state() == ws::connection_state::open);

    auto closed = co_await answers->close();
    CHECK(closed);
    co_await readers.join();
    while (h.closed < 2)
        co_await note.wait();
    CHECK(h.closes[answers_id].code == 1000);
    silent.reset();
    co_await srv.stop();
}

// ---- writers ------------------------------------------------------------------------------

// Lets the loop run until the hub has `n` writers, sweeping as it waits when `sweeping`
// (bounded by the test's run_on timeout).
core::task<void> writers_become(ws::hub& hub, std::size_t n, bool sweeping) {
    while (hub.stats().writers != n) {
        if (sweeping)
            hub.sweep();
        auto slept = co_await core::sleep_for(1ms);
        REQUIRE(slept);
    }
}

// A few loop turns: a writer whose frame the peer already read parks meanwhile.
core::task<void> settle() {
    for (int i = 0; i < 3; ++i) {
        auto slept = co_await core::sleep_for(2ms);
        REQUIRE(slept);
    }
}

// A connection's writer starts with its first frame, survives sweeps while frames keep coming,
// ends after a whole sweep interval with nothing to write, and starts again for the next frame.
core::task<void> idle_writers(core::loop& lp) {
    room_hub r(lp, co_await core::get_stop_token());
    room_handler& h = r.h;
    hub_server& srv = r.srv;
    ws::hub& hub = srv.hub();
    auto client = co_await connect_client(srv.url("/w"));
    const std::uint64_t id = co_await read_id(*client); // on_open's frame started the writer
    co_await writers_become(hub, 1, false);
    CHECK(hub.stats().writers_started == 1);

    const auto broadcast_and_read = [&](std::string text) -> core::task<void> {
        CHECK(hub.broadcast_room("w", ws::prepared_message::text(text)) == 1);
        auto m = co_await client->receive();
        REQUIRE(m);
        CHECK(m->data == text);
    };
    for (int i = 0; i < 4; ++i) { // a frame between every two sweeps: the same writer goes on
        hub.sweep();
        co_await broadcast_and_read("busy " + std::to_string(i));
    }
    co_await settle();
    CHECK(hub.stats().writers == 1);
    CHECK(hub.stats().writers_started == 1);

    hub.sweep(); // one sweep after it parked is not a whole idle interval
    co_await settle();
    CHECK(hub.stats().writers == 1);
    co_await writers_become(hub, 0, true); // the next one ends it
    REQUIRE(hub.find(id) != nullptr);
    CHECK(hub.find(id)->state() == ws::connection_state::open);

    co_await broadcast_and_read("after"); // a new writer for the next frame
    CHECK(hub.stats().writers == 1);
    CHECK(hub.stats().writers_started == 2);
    auto unicast = co_await hub.send_to(id, ws::prepared_message::text("to you"));
    CHECK(unicast);
    auto m = co_await client->receive();
    REQUIRE(m);
    CHECK(m->data == "to you");

    co_await writers_become(hub, 0, true);
    auto closed = co_await client->close(); // the close handshake needs no running writer
    CHECK(closed);
    while (h.closed < 1)
        co_await r.note.wait();
    CHECK(h.closes[id].code == 1000);
    CHECK(hub.stats().writers == 0);
    co_await srv.stop();
}

} // namespace

TEST_SUITE("ws.hub") {

    TEST_CASE_TEMPLATE("an auto-response is answered without calling the handler", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return auto_response(lp); }, 30s);
    }

    TEST_CASE_TEMPLATE("a peer that stops answering pings is dropped after interval plus timeout",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return heartbeat(lp); }, 30s);
    }

    TEST_CASE_TEMPLATE("a writer ends after a sweep interval with nothing to write and comes back",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return idle_writers(lp); }, 30s);
    }

} // TEST_SUITE
