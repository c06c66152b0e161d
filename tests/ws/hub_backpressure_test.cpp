#include <coronet/ws/hub.hpp>

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include "events_adapter.hpp"
#include "hub_fixture.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
using coronet::testing::run_on;
using namespace coronet::testing::hub_fixture;
using namespace std::chrono_literals;

namespace {

// ---- a slow reader ------------------------------------------------------------------------

core::task<void> slow_reader(core::loop& lp, ws::backpressure_policy policy) {
    notifier note;
    room_handler h;
    h.note = &note;
    ws::hub_options o;
    o.max_queued_bytes = 256 * 1024;
    o.on_full = policy;
    o.close_timeout = 20s;
    ws::server_options so;
    so.session.close_timeout = 20s; // the slow one starts reading only after the policy acted
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(lp, o, coronet::testing::events_of<ws::hub_connection>(h), tok, so);
    ws::hub& hub = srv.hub();
    h.hub = &hub;

    auto fast1 = co_await connect_client(srv.url("/r"));
    (void)co_await read_id(*fast1);
    auto fast2 = co_await connect_client(srv.url("/r"));
    (void)co_await read_id(*fast2);
    auto slow = co_await connect_client(srv.url("/r"));
    const std::uint64_t slow_id = co_await read_id(*slow);

    // Broadcast 64 KiB messages; the fast members read each one before the next goes out, the
    // slow one reads nothing until the policy has acted.
    const std::array<ws::session*, 2> fasts = {fast1.get(), fast2.get()};
    const std::string pad(64 * 1024, 'x');
    int sent = 0;
    int after_effect = 0;
    bool effect = false;
    while (sent < 4000 && after_effect < 20) {
        const auto pm = ws::prepared_message::text(std::to_string(sent) + ":" + pad);
        hub.broadcast_room("r", pm);
        ++sent;
        if (ws::hub_connection* c = hub.find(slow_id))
            CHECK(c->queued_bytes() <= o.max_queued_bytes);
        for (ws::session* f : fasts) {
            auto m = co_await f->receive();
            REQUIRE(m);
            CHECK(sequence_of(m->data) == sent - 1);
        }
        effect = policy == ws::backpressure_policy::close ? hub.stats().closed_slow > 0
                                                          : hub.stats().dropped > 0;
        if (effect)
            ++after_effect;
    }
    REQUIRE(effect);
    CHECK(hub.stats().closed_slow == (policy == ws::backpressure_policy::close ? 1u : 0u));

    if (policy == ws::backpressure_policy::close) {
        // An in-order prefix of the messages, then the 1008 close.
        int next = 0;
        for (;;) {
            auto m = co_await slow->receive();
            if (!m) {
                CHECK(m.error() == ws::errc::closed);
                break;
            }
            CHECK(sequence_of(m->data) == next);
            ++next;
        }
        CHECK(slow->close_code() == 1008);
        CHECK(next < sent);
        while (h.closed < 1)
            co_await note.wait();
        CHECK(h.closes[slow_id].code == 1008);
    } else {
        ws::hub_connection* c = hub.find(slow_id);
        REQUIRE(c != nullptr);
        CHECK(c->state() == ws::connection_state::open);
        const std::uint64_t dropped = c->dropped();
        CHECK(dropped == hub.stats().dropped);
        CHECK(dropped > 0);
        // Everything that was not dropped arrives, in order.
        std::uint64_t received = 0;
        int last = -1;
        while (received + dropped < static_cast<std::uint64_t>(sent)) {
            auto m = co_await slow->receive();
            REQUIRE(m);
            const int seq = sequence_of(m->data);
            CHECK(seq > last);
            last = seq;
            ++received;
        }
        CHECK(h.closed == 0);
    }
    fast1.reset();
    fast2.reset();
    slow.reset();
    while (hub.size() > 0)
        co_await note.wait();
    co_await srv.stop();
}

// ---- a unicast waits for room --------------------------------------------------------------

struct unicast_state {
    notifier note;
    int sent = 0;
    bool done = false;
    std::size_t max_queued = 0;
};

core::task<void> unicast_body(ws::hub_connection& c, unicast_state* st) {
    const std::string chunk(64 * 1024, 'u');
    for (int i = 0; i < 256; ++i) {
        auto sent = co_await c.send_text(std::to_string(i) + ":" + chunk);
        REQUIRE(sent);
        ++st->sent;
        st->max_queued = std::max(st->max_queued, c.queued_bytes());
    }
    st->done = true;
    st->note.notify();
    auto m = co_await c.receive(); // until the client closes
    CHECK_FALSE(m);
}

core::task<void> unicast_waits(core::loop& lp) {
    unicast_state st;
    ws::hub_options o;
    o.max_queued_bytes = 128 * 1024;
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(
        lp, o, [&st](ws::hub_connection& c, ws::handshake_info&) { return unicast_body(c, &st); },
        tok, ws::server_options{});
    // 16 MiB to a client that reads only now and then: far more than the socket buffers hold,
    // so the sender must have waited for room to keep its queue within 128 KiB.
    auto client = co_await connect_client(srv.url("/u"));
    for (int i = 0; i < 256; ++i) {
        auto m = co_await client->receive();
        REQUIRE(m);
        CHECK(sequence_of(m->data) == i);
    }
    while (!st.done)
        co_await st.note.wait();
    CHECK(st.sent == 256);
    CHECK(st.max_queued <= o.max_queued_bytes);
    CHECK(srv.hub().stats().dropped == 0);
    CHECK(srv.hub().stats().closed_slow == 0);
    auto closed = co_await client->close();
    CHECK(closed);
    co_await srv.stop();
}

} // namespace

TEST_SUITE("ws.hub") {

    TEST_CASE_TEMPLATE("a slow reader is closed with 1008 while the other members get everything",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return slow_reader(lp, ws::backpressure_policy::close); },
                  50s);
    }

    TEST_CASE_TEMPLATE(
        "a slow reader loses only the dropped messages while the others get everything", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return slow_reader(lp, ws::backpressure_policy::drop); },
                  50s);
    }

    TEST_CASE_TEMPLATE("a unicast send waits for room instead of overfilling the queue", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return unicast_waits(lp); }, 40s);
    }

} // TEST_SUITE
