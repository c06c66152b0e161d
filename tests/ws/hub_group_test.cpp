// ws::hub_group: one logical hub over the loops of a core::loop_group. Rooms with members on
// every loop (connections over in-memory streams, made on each loop, so the spread is forced),
// exact and ordered delivery, one shared frame per broadcast, unicast and visit across loops,
// and a backplane that serves the whole group. Suite "ws.hub_group.threads": the tsan preset
// runs it under ThreadSanitizer.

#include <coronet/ws/hub_group.hpp>

#include <coronet/core/loop_group.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/ws/backplane.hpp>
#include <coronet/ws/hub.hpp>
#include <coronet/ws/session.hpp>

#include <testing/backends.hpp>
#include <testing/loop_threads.hpp>
#include <testing/memory_stream.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
using coronet::testing::poll_until;
using namespace std::chrono_literals;

namespace {

/// The server side of every connection: joins the room named by its target, tells its client
/// its id, and broadcasts each message to the rest of the room (on every loop).
core::task<void> member(ws::hub_connection& c, ws::handshake_info& info) {
    const std::string room(info.path().substr(1));
    (void)c.join(room);
    (void)c.try_send(ws::prepared_message::text("id:" + std::to_string(c.id())));
    for (;;) {
        auto m = co_await c.receive();
        if (!m)
            co_return;
        const ws::prepared_message pm(m->type, std::as_bytes(std::span(m->data)));
        c.owner().broadcast_room_except(room, pm, c.id());
    }
}

/// A client over an in-memory stream to hub `h` on the current loop, and what it received.
struct client {
    std::unique_ptr<ws::session> session;
    std::unique_ptr<ws::session> server_side;
    std::uint64_t id = 0;
    std::vector<std::string> got; ///< after the id message
};

core::task<void> read_all(client& c) {
    for (;;) {
        auto m = co_await c.session->receive();
        if (!m)
            co_return;
        if (c.id == 0 && m->data.starts_with("id:"))
            c.id = std::stoull(m->data.substr(3));
        else
            c.got.push_back(std::move(m->data));
    }
}

/// `count` clients on the current loop in `room`, served by `h` with `handler`.
void connect(core::loop& lp, ws::hub& h, ws::hub_handler handler, const std::string& room,
             int count, std::vector<std::unique_ptr<client>>& out, core::task_scope& serving,
             core::task_scope& reading) {
    for (int k = 0; k < count; ++k) {
        auto [c, s] = coronet::testing::memory_stream_pair(lp);
        auto cl = std::make_unique<client>();
        cl->session = std::make_unique<ws::session>(std::move(c), ws::role::client);
        cl->server_side = std::make_unique<ws::session>(std::move(s), ws::role::server);
        serving.spawn(h.serve(*cl->server_side, ws::handshake_info("/" + room), handler));
        reading.spawn(read_all(*cl));
        out.push_back(std::move(cl));
    }
}

/// "<sender id>:<sequence>" -> the pair.
std::pair<std::uint64_t, int> parse(const std::string& s) {
    const auto colon = s.find(':');
    return {std::stoull(s.substr(0, colon)), std::stoi(s.substr(colon + 1))};
}

/// Spins (bounded) until `flag` is set: holds the calling loop still.
void hold_until(const std::atomic<bool>& flag) {
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (!flag.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < until)
        std::this_thread::yield();
}

/// A backplane that records what it hears and on which thread.
struct recording_backplane final : ws::backplane {
    std::thread::id expected_thread;
    std::atomic<int> wrong_thread{0};
    std::mutex mu;
    std::vector<std::string> events; ///< "open:room", "close:room", "publish:room:payload"

    void note(std::string e) {
        if (std::this_thread::get_id() != expected_thread)
            wrong_thread.fetch_add(1);
        std::lock_guard lock(mu);
        events.push_back(std::move(e));
    }
    void room_opened(std::string_view room) override { note("open:" + std::string(room)); }
    void room_closed(std::string_view room) override { note("close:" + std::string(room)); }
    void publish(std::string_view room, ws::opcode, std::span<const std::byte> payload) override {
        note("publish:" + std::string(room) + ":" +
             std::string(reinterpret_cast<const char*>(payload.data()), payload.size()));
    }
    std::vector<std::string> snapshot() {
        std::lock_guard lock(mu);
        return events;
    }
    std::size_t count(const std::string& e) {
        std::lock_guard lock(mu);
        return static_cast<std::size_t>(std::count(events.begin(), events.end(), e));
    }
};

} // namespace

TEST_SUITE("ws.hub_group.threads") {
    TEST_CASE_TEMPLATE("a room spans loops: every member receives every broadcast once, in each "
                       "sender's order, and no other room's",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        constexpr std::size_t loops = 3;
        constexpr int in_a = 3; // per loop
        constexpr int rounds = 40;
        core::loop_group group(coronet::testing::group_options<B>(loops, false));
        ws::hub_group hubs(group);
        REQUIRE(hubs.size() == loops);
        std::latch joined(static_cast<std::ptrdiff_t>(loops));
        std::latch received(static_cast<std::ptrdiff_t>(loops));
        std::vector<std::vector<std::string>> got_a(loops * in_a);
        std::vector<std::vector<std::string>> got_b(loops);
        std::vector<std::uint64_t> ids(loops * in_a + loops);
        std::atomic<int> timeouts{0};
        std::atomic<int> misplaced{0};

        group.run([&](core::loop& lp, std::size_t i) -> core::task<void> {
            ws::hub& h = hubs.at(i);
            std::vector<std::unique_ptr<client>> a;
            std::vector<std::unique_ptr<client>> b;
            core::task_scope serving;
            core::task_scope reading;
            connect(lp, h, &member, "a", in_a, a, serving, reading);
            connect(lp, h, &member, "b", 1, b, serving, reading);
            if (!co_await poll_until([&] {
                    return std::all_of(a.begin(), a.end(), [](auto& c) { return c->id != 0; }) &&
                           b[0]->id != 0;
                }))
                ++timeouts;
            for (int k = 0; k < in_a; ++k)
                ids[i * in_a + static_cast<std::size_t>(k)] = a[static_cast<std::size_t>(k)]->id;
            ids[loops * in_a + i] = b[0]->id;
            for (const auto& c : a)
                if (ws::hub_group::loop_of(c->id) != i)
                    ++misplaced;
            joined.count_down();
            (void)co_await poll_until([&] { return joined.try_wait(); });
            // Every room is known process-wide once each loop joined.
            if (h.room_size("a") != loops * in_a || h.room_size("b") != loops)
                ++misplaced;
            for (int r = 0; r < rounds; ++r)
                for (auto& c : a)
                    (void)co_await c->session->send_text(std::to_string(c->id) + ":" +
                                                         std::to_string(r));
            (void)co_await b[0]->session->send_text(std::to_string(b[0]->id) + ":0");
            const std::size_t expect_a = (loops * in_a - 1) * rounds;
            if (!co_await poll_until(
                    [&] {
                        return std::all_of(a.begin(), a.end(),
                                           [&](auto& c) { return c->got.size() >= expect_a; }) &&
                               b[0]->got.size() >= loops - 1;
                    },
                    20s))
                ++timeouts;
            received.count_down();
            (void)co_await poll_until([&] { return received.try_wait(); });
            co_await h.close_all(1000, "done");
            co_await reading.join();
            co_await serving.join();
            for (int k = 0; k < in_a; ++k)
                got_a[i * in_a + static_cast<std::size_t>(k)] =
                    std::move(a[static_cast<std::size_t>(k)]->got);
            got_b[i] = std::move(b[0]->got);
        });

        CHECK(timeouts == 0);
        CHECK(misplaced == 0);
        CHECK(hubs.connections() == 0);
        CHECK(hubs.room_size("a") == 0);
        for (std::size_t k = 0; k < got_a.size(); ++k) {
            // Exactly `rounds` messages from every other member of "a", in order per sender.
            std::map<std::uint64_t, int> next;
            for (const std::string& s : got_a[k]) {
                const auto [from, seq] = parse(s);
                CHECK(from != ids[k]);
                CHECK(std::find(ids.begin(), ids.begin() + loops * in_a, from) !=
                      ids.begin() + loops * in_a);
                CHECK(seq == next[from]);
                next[from] = seq + 1;
            }
            CHECK(next.size() == loops * in_a - 1);
            for (const auto& [from, n] : next)
                CHECK(n == rounds);
        }
        for (std::size_t k = 0; k < loops; ++k) {
            // Room "b": one message from each other loop's member, nothing from "a".
            CHECK(got_b[k].size() == loops - 1);
            for (const std::string& s : got_b[k]) {
                const auto from = parse(s).first;
                CHECK(std::find(ids.begin() + loops * in_a, ids.end(), from) != ids.end());
                CHECK(from != ids[loops * in_a + k]);
            }
        }
    }

    TEST_CASE_TEMPLATE("a broadcast is encoded once per process: receivers on every loop share "
                       "its frame",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        constexpr int per_loop = 4;
        core::loop_group group(coronet::testing::group_options<B>(2, false));
        ws::hub_group hubs(group);
        std::latch joined(2);
        std::latch checked(2);
        std::atomic<bool> loop1_held{false};
        std::atomic<bool> release_loop1{false};
        std::atomic<bool> counted{false};
        std::atomic<std::size_t> refs_seen{0};
        std::atomic<std::size_t> from_loops{0};
        std::atomic<int> timeouts{0};
        std::atomic<int> wrong{0};

        group.run([&](core::loop& lp, std::size_t i) -> core::task<void> {
            ws::hub& h = hubs.at(i);
            std::vector<std::unique_ptr<client>> cs;
            core::task_scope serving;
            core::task_scope reading;
            connect(lp, h, &member, "r", per_loop, cs, serving, reading);
            if (!co_await poll_until([&] { return h.room_size("r") == 2 * per_loop; }))
                ++timeouts;
            joined.count_down();
            (void)co_await poll_until([&] { return joined.try_wait(); });
            if (i == 0) {
                core::loop& other = group.at(1);
                // Hold loop 1 inside a posted function, so that what is posted next reaches it
                // in one batch after it is released.
                other.post([&] {
                    loop1_held = true;
                    hold_until(release_loop1);
                });
                (void)co_await poll_until([&] { return loop1_held.load(); });
                const auto pm = ws::prepared_message::text("shared");
                if (h.broadcast_room("r", pm) != per_loop)
                    ++wrong;
                // Queued here: the message itself, one reference per local receiver and one in
                // the envelope on its way to loop 1. Nothing was encoded again.
                if (pm.frame().use_count() != 1 + per_loop + 1)
                    ++wrong;
                // Posted after the envelope, so it runs right after it on loop 1, before any
                // writer there: each receiver of loop 1 then holds the same buffer.
                other.post([&] {
                    refs_seen = pm.frame().use_count();
                    from_loops = hubs.at(1).stats().from_loops;
                    counted = true;
                });
                release_loop1 = true;
                hold_until(counted); // loop 0's writers must not run meanwhile either
            }
            const bool got_all = co_await poll_until([&] {
                return std::all_of(cs.begin(), cs.end(),
                                   [](auto& c) { return c->got.size() == 1; });
            });
            if (!got_all)
                ++timeouts;
            for (auto& c : cs)
                if (c->got.empty() || c->got[0] != "shared")
                    ++wrong;
            checked.count_down();
            (void)co_await poll_until([&] { return checked.try_wait(); });
            co_await h.close_all(1000, "done");
            co_await reading.join();
            co_await serving.join();
        });

        CHECK(timeouts == 0);
        CHECK(wrong == 0);
        // The message, loop 0's receivers and loop 1's (the envelope is gone by then).
        CHECK(refs_seen == 1 + 2 * per_loop);
        CHECK(from_loops == 1);
    }

    TEST_CASE_TEMPLATE("send_to and visit reach a connection on another loop; unknown ids fail", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop_group group(coronet::testing::group_options<B>(2, false));
        ws::hub_group hubs(group);
        std::latch ready(2);
        std::latch done(2);
        std::atomic<std::uint64_t> target{0};
        std::atomic<int> timeouts{0};
        std::vector<std::string> results;
        std::vector<std::string> target_got;
        std::string visited_meta;
        std::thread::id loop1_thread;
        std::thread::id visit_thread;

        group.run([&](core::loop& lp, std::size_t i) -> core::task<void> {
            ws::hub& h = hubs.at(i);
            std::vector<std::unique_ptr<client>> cs;
            core::task_scope serving;
            core::task_scope reading;
            connect(lp, h, &member, i == 0 ? "zero" : "one", 1, cs, serving, reading);
            if (!co_await poll_until([&] { return cs[0]->id != 0; }))
                ++timeouts;
            if (i == 1) {
                target = cs[0]->id;
                loop1_thread = std::this_thread::get_id();
            }
            ready.count_down();
            (void)co_await poll_until([&] { return ready.try_wait(); });
            if (i == 0) {
                const std::uint64_t id = target;
                auto sent = co_await h.send_to(id, ws::prepared_message::text("direct"));
                results.push_back(sent ? "ok" : sent.error().message());
                // Still on loop 0 afterwards.
                results.push_back(core::loop::current() == &lp ? "home" : "moved");
                const bool found = co_await h.visit(id, [&](ws::hub_connection& c) {
                    visit_thread = std::this_thread::get_id();
                    c.set_meta("seen", "by loop 0");
                    visited_meta = *c.meta("seen");
                });
                results.push_back(found ? "found" : "missing");
                // Same loop index, no such connection; and an index past the group.
                auto none = co_await h.send_to(id ^ 0xff00, ws::prepared_message::text("x"));
                results.push_back(none ? "ok"
                                  : none.error() == ws::hub_errc::not_found
                                      ? "not_found"
                                      : none.error().message());
                auto past = co_await h.send_to((id & ~std::uint64_t{0xff}) | 0x7f,
                                               ws::prepared_message::text("x"));
                results.push_back(past ? "ok"
                                  : past.error() == ws::hub_errc::not_found
                                      ? "not_found"
                                      : past.error().message());
                const bool closed = co_await h.visit(
                    id, [](ws::hub_connection& c) { c.close(4000, "closed from loop 0"); });
                results.push_back(closed ? "closing" : "missing");
            } else {
                // Until loop 0's close reaches this connection.
                (void)co_await poll_until([&] { return h.size() == 0; });
                target_got = cs[0]->got;
            }
            done.count_down();
            (void)co_await poll_until([&] { return done.try_wait(); });
            co_await h.close_all(1000, "done");
            co_await reading.join();
            co_await serving.join();
            if (i == 1 && cs[0]->session->close_code() != 4000)
                ++timeouts;
        });

        CHECK(timeouts == 0);
        CHECK(results ==
              std::vector<std::string>{"ok", "home", "found", "not_found", "not_found", "closing"});
        CHECK(target_got == std::vector<std::string>{"direct"});
        CHECK(visit_thread == loop1_thread);
        CHECK(visited_meta == "by loop 0");
    }

    TEST_CASE_TEMPLATE("a backplane set on one hub serves the rooms and broadcasts of every loop",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop_group group(coronet::testing::group_options<B>(2, false));
        ws::hub_group hubs(group);
        recording_backplane bp;
        std::latch attached(1);
        std::latch done(2);
        std::atomic<int> timeouts{0};
        std::vector<std::string> loop0_got;
        std::size_t remote_delivered = 99;

        group.run([&](core::loop& lp, std::size_t i) -> core::task<void> {
            ws::hub& h = hubs.at(i);
            core::task_scope serving;
            core::task_scope reading;
            std::vector<std::unique_ptr<client>> cs;
            if (i == 1) {
                // The backplane lives on loop 1 and hears everything there.
                bp.expected_thread = std::this_thread::get_id();
                h.set_backplane(&bp);
                attached.count_down();
            } else {
                (void)co_await poll_until([&] { return attached.try_wait(); });
                connect(lp, h, &member, "x", 2, cs, serving, reading);
                if (!co_await poll_until([&] { return h.room_size("x") == 2; }))
                    ++timeouts;
                h.broadcast_room("x", ws::prepared_message::text("local"));
            }
            if (i == 1) {
                // Once loop 0's room is open here and its broadcast was published, deliver a
                // "remote" message: it reaches loop 0's members.
                if (!co_await poll_until([&] {
                        return bp.count("open:x") == 1 && bp.count("publish:x:local") == 1;
                    }))
                    ++timeouts;
                remote_delivered = h.deliver_remote("x", ws::prepared_message::text("remote"));
            } else {
                if (!co_await poll_until([&] {
                        return std::all_of(cs.begin(), cs.end(),
                                           [](auto& c) { return c->got.size() == 2; });
                    }))
                    ++timeouts;
                loop0_got = cs[0]->got;
                co_await h.close_all(1000, "done");
                co_await reading.join();
                co_await serving.join();
            }
            done.count_down();
            (void)co_await poll_until([&] { return done.try_wait(); });
            if (i == 1) {
                // The room closed on loop 0: the backplane hears it here.
                if (!co_await poll_until([&] { return bp.count("close:x") == 1; }))
                    ++timeouts;
                h.set_backplane(nullptr);
            }
        });

        CHECK(timeouts == 0);
        CHECK(bp.wrong_thread == 0);
        CHECK(remote_delivered == 0); // none of loop 1's own
        CHECK(loop0_got == std::vector<std::string>{"local", "remote"});
        CHECK(bp.snapshot() == std::vector<std::string>{"open:x", "publish:x:local", "close:x"});
    }

    TEST_CASE("a hub group needs 1 to 256 loops") {
        std::vector<core::loop*> none;
        CHECK_THROWS_AS(ws::hub_group(std::span<core::loop* const>(none)), std::invalid_argument);
        std::vector<core::loop*> nulls(3, nullptr);
        CHECK_THROWS_AS(ws::hub_group(std::span<core::loop* const>(nulls)), std::invalid_argument);
    }
} // TEST_SUITE
