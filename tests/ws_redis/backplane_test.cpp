// The hub's Redis backplane: hubs on separate loop threads (separate origins, as separate
// processes would be) share rooms through a real redis-server.
#include <coronet/ws_redis/backplane.hpp>

#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/ws/hub.hpp>
#include <coronet/ws/session.hpp>
#include <coronet/ws_redis/connection.hpp>

#include <testing/backends.hpp>
#include <testing/loop_threads.hpp>
#include <testing/memory_stream.hpp>
#include <testing/redis_server.hpp>
#include <testing/run_bounded.hpp>

#include "backplane_testing.hpp"

#include <doctest/doctest.h>

#include <ostream> // doctest prints std::error_code through it

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
namespace redis = coronet::ws_redis;
using coronet::testing::on_loops;
using coronet::testing::poll_until;
using coronet::testing::redis_server;
using coronet::testing::redis_server_options;
using coronet::testing::run_on;
using namespace coronet::testing::backplane;

namespace {

constexpr int per_hub = 50;

/// Three hubs, two members each in room "shared" and one in "other": every hub broadcasts
/// `per_hub` messages to "shared".
template <class B>
void share_a_room(const std::string& where, bool sharded) {
    constexpr int hubs = 3;
    std::atomic<int> ready{0};
    std::atomic<int> done{0};
    on_loops<B>(
        hubs,
        [&](int k, core::loop& lp, const std::vector<core::loop*>&) -> core::task<void> {
            core::stop_token tok = co_await core::get_stop_token();
            node n(lp, where, fast_reconnect(sharded), tok);
            const std::size_t a = n.add("shared");
            const std::size_t b = n.add("shared");
            const std::size_t other = n.add("other");
            CHECK(co_await poll_until([&n] {
                return n.hub.room_size("shared") == 2 && n.hub.room_size("other") == 1 &&
                       n.bp.subscribed("shared") && n.bp.subscribed("other");
            }));
            CHECK(co_await barrier(ready, hubs));

            for (int i = 0; i < per_hub; ++i)
                n.hub.broadcast_room("shared", ws::prepared_message::text(std::to_string(k) + ":" +
                                                                          std::to_string(i)));
            std::size_t all = static_cast<std::size_t>(hubs * per_hub); // not const: captured
            const bool arrived = co_await poll_until([&n, a, b, all] {
                return n.got[a]->size() >= all && n.got[b]->size() >= all &&
                       n.bp.stats().own_echoes >= static_cast<std::uint64_t>(per_hub) &&
                       // A publish's reply may come after its echo (another connection).
                       n.bp.stats().published >= static_cast<std::uint64_t>(per_hub);
            });
            CHECK_MESSAGE(arrived, "hub " << k << ": " << describe(n.bp.stats()));
            CHECK(co_await barrier(done, hubs));

            // Exactly once, in order per sender, nothing in the other room.
            for (std::size_t m : {a, b}) {
                const std::vector<std::string>& got = *n.got[m];
                CHECK(got.size() == all);
                std::vector<int> next(hubs, 0);
                for (const std::string& s : got) {
                    const int from = s[0] - '0';
                    if (from < 0 || from >= hubs) {
                        FAIL_CHECK("unexpected message " << s);
                        continue;
                    }
                    CHECK(s == std::to_string(from) + ":" + std::to_string(next[from]));
                    ++next[from];
                }
                for (int j = 0; j < hubs; ++j)
                    CHECK(next[j] == per_hub);
            }
            CHECK(n.got[other]->empty());
            const redis::backplane_stats st = n.bp.stats();
            CHECK(st.published == static_cast<std::uint64_t>(per_hub));
            CHECK(st.received == static_cast<std::uint64_t>((hubs - 1) * per_hub));
            CHECK(st.own_echoes == static_cast<std::uint64_t>(per_hub));
            CHECK(st.lost_publishes == 0);
            CHECK(st.gaps == 0);
            CHECK(st.malformed == 0);
            CHECK(n.hub.stats().published == static_cast<std::uint64_t>(per_hub));
            co_await n.stop();
        },
        std::chrono::seconds(30));
}

core::task<std::vector<std::string>> channels(redis::connection& c, bool sharded,
                                              std::string pattern) {
    // Not `cond ? co_await a : co_await b`: g++ 12 destroys the temporaries twice.
    const char* sub = sharded ? "SHARDCHANNELS" : "CHANNELS";
    auto r = co_await c.command("PUBSUB", sub, pattern);
    REQUIRE_MESSAGE(r, r.error().message());
    REQUIRE_MESSAGE(r->is_array(), r->to_string());
    std::vector<std::string> names;
    for (const redis::reply& e : r->elements)
        names.push_back(e.str);
    co_return names;
}

core::task<void> unsubscribe_after_last(core::loop& lp, std::string where, bool sharded) {
    core::stop_token tok = co_await core::get_stop_token();
    auto conn = co_await redis::connection::connect(parsed(where));
    REQUIRE_MESSAGE(conn, conn.error().message());
    {
        node n(lp, where, fast_reconnect(sharded), tok);
        n.add("solo");
        n.add("solo");
        n.add("stays");
        CHECK(co_await poll_until(
            [&n] { return n.bp.subscribed("solo") && n.bp.subscribed("stays"); }));
        auto subscribed = co_await channels(*conn, sharded, "coronet:room:*");
        CHECK(subscribed.size() == 2);
        // One member leaves: still subscribed; the last one leaves: unsubscribed.
        bool first = true;
        n.hub.for_each_member("solo", [&first](ws::hub_connection& c) {
            if (first)
                c.leave("solo");
            first = false;
        });
        CHECK(n.hub.room_size("solo") == 1);
        CHECK(n.bp.subscribed("solo"));
        n.hub.for_each_member("solo", [](ws::hub_connection& c) { c.leave("solo"); });
        CHECK(n.hub.room_size("solo") == 0);
        CHECK(co_await poll_until([&n] { return !n.bp.subscribed("solo"); }));
        auto left = co_await channels(*conn, sharded, "coronet:room:*");
        CHECK(left.size() == 1);
        CHECK(std::find(left.begin(), left.end(), "coronet:room:stays") != left.end());
        CHECK(n.bp.stats().rooms == 1);
        co_await n.stop();
    }
    conn->close();
}

/// Two hubs share room "r"; redis-server is killed and restarted between two broadcasts.
template <class B>
void survive_restart(redis_server& server, const std::string& where, bool sharded) {
    std::atomic<int> ready{0};
    std::atomic<int> seen_before{0};
    std::atomic<int> down{0};
    std::atomic<int> restarted{0};
    std::atomic<int> up{0};
    std::atomic<int> done{0};
    on_loops<B>(
        2,
        [&](int k, core::loop& lp, const std::vector<core::loop*>&) -> core::task<void> {
            core::stop_token tok = co_await core::get_stop_token();
            node n(lp, where, fast_reconnect(sharded), tok);
            const std::size_t m = n.add("r");
            CHECK(co_await poll_until([&n] { return n.bp.subscribed("r"); }));
            CHECK(co_await barrier(ready, 2));
            if (k == 0)
                n.hub.broadcast_room("r", ws::prepared_message::text("before"));
            const bool before = co_await poll_until([&n, m] { return n.got[m]->size() == 1; });
            CHECK_MESSAGE(before, "hub " << k << ": " << describe(n.bp.stats()));
            // Both have it before Redis goes away (hub 0 has its own at once).
            CHECK(co_await barrier(seen_before, 2));

            if (k == 0)
                server.kill();
            CHECK(co_await poll_until([&n] { return !n.bp.stats().connected; }));
            // Redis is down: local delivery goes on, the publish is lost and counted.
            n.hub.broadcast_room("r", ws::prepared_message::text("during " + std::to_string(k)));
            CHECK(co_await poll_until([&n, m] { return n.got[m]->size() == 2; }));
            CHECK(n.got[m]->size() == 2);
            if (n.got[m]->size() >= 2) // no out-of-range read after a failed check
                CHECK((*n.got[m])[1] == "during " + std::to_string(k));
            CHECK(n.bp.stats().lost_publishes >= 1);
            CHECK(co_await barrier(down, 2));

            if (k == 0) {
                server.restart();
                restarted.store(1);
            }
            CHECK(co_await poll_until([&restarted, &n] {
                return restarted.load() == 1 && n.bp.stats().connected && n.bp.subscribed("r");
            }));
            CHECK(co_await barrier(up, 2));
            if (k == 0)
                n.hub.broadcast_room("r", ws::prepared_message::text("after"));
            CHECK(co_await poll_until([&n, m] { return n.got[m]->size() == 3; }));
            // CHECK, not REQUIRE: an exception here would leave the node's tasks running.
            const bool three = n.got[m]->size() == 3;
            CHECK_MESSAGE(three, "hub " << k << ": " << describe(n.bp.stats()));
            if (three) {
                CHECK((*n.got[m])[0] == "before");
                CHECK((*n.got[m])[2] == "after");
            }
            const redis::backplane_stats st = n.bp.stats();
            CHECK(st.reconnects >= 1);
            CHECK(st.failures >= 1);
            if (k == 1) {
                // Origin 0's "during" never arrived: its sequence shows the gap.
                CHECK(st.gaps == 1);
                CHECK(st.received == 2);
            }
            CHECK(co_await barrier(done, 2));
            co_await n.stop();
        },
        std::chrono::seconds(40));
}

/// Two hubs: hub 0 sends to a connection of hub 1 by id (hub::send_to through Redis), and to an
/// id that no process has.
template <class B>
void unicast_across(const std::string& where) {
    std::atomic<std::uint64_t> target{0};
    std::atomic<int> ready{0};
    std::atomic<int> done{0};
    std::atomic<bool> probed{false};
    on_loops<B>(
        2,
        [&](int k, core::loop& lp, const std::vector<core::loop*>&) -> core::task<void> {
            core::stop_token tok = co_await core::get_stop_token();
            node n(lp, where, fast_reconnect(false), tok);
            const std::string room = k == 0 ? "zero" : "one";
            const std::size_t me = n.add(room);
            CHECK(co_await poll_until(
                [&n, &room] { return n.hub.room_size(room) == 1 && n.bp.stats().connected; }));
            if (k == 1)
                target = n.member_id("one");
            CHECK(co_await barrier(ready, 2));
            if (k == 0) {
                const std::uint64_t id = target;
                // The other side subscribes to the unicast channel as its link comes up: probe
                // until one arrives, then the message itself.
                for (int i = 0; i < 500 && !probed; ++i) {
                    auto r = co_await n.hub.send_to(id, ws::prepared_message::text("probe"));
                    CHECK(r);
                    (void)co_await core::sleep_for(std::chrono::milliseconds(20));
                }
                CHECK(probed);
                auto sent = co_await n.hub.send_to(id, ws::prepared_message::text("direct"));
                CHECK(sent);
                // Nobody has this one: handed over all the same, and dropped everywhere.
                auto nowhere =
                    co_await n.hub.send_to(id ^ 0x5a5a5a5a00, ws::prepared_message::text("lost"));
                CHECK(nowhere);
                CHECK(n.hub.stats().forwarded >= 3);
                CHECK(n.bp.stats().unicasts == n.hub.stats().forwarded);
                // Still ours: queued here, nothing forwarded.
                const std::uint64_t before = n.hub.stats().forwarded;
                auto mine =
                    co_await n.hub.send_to(n.member_id("zero"), ws::prepared_message::text("self"));
                CHECK(mine);
                CHECK(n.hub.stats().forwarded == before);
                CHECK(co_await poll_until([&n, me] { return n.got[me]->size() == 1; }));
                CHECK(*n.got[me] == std::vector<std::string>{"self"});
            } else {
                CHECK(co_await poll_until([&n, me] { return !n.got[me]->empty(); }));
                probed = true;
                CHECK(co_await poll_until(
                    [&n, me] { return !n.got[me]->empty() && n.got[me]->back() == "direct"; }));
                // Probes, then "direct", nothing else.
                const std::vector<std::string>& got = *n.got[me];
                CHECK(std::all_of(got.begin(), got.end() - 1,
                                  [](const std::string& m) { return m == "probe"; }));
                CHECK(n.hub.stats().remote_unicasts == got.size());
                CHECK(n.bp.stats().unicasts_read >= got.size());
            }
            CHECK(co_await barrier(done, 2));
            co_await n.stop();
        },
        std::chrono::seconds(30));
}

/// Room sizes over every process: two hubs with 2 and 3 members of one room; a third "process"
/// written by hand (as a backplane writes it) counts until its entry expires.
template <class B>
void cluster_sizes(const std::string& where) {
    std::atomic<int> ready{0};
    std::atomic<int> done{0};
    on_loops<B>(
        2,
        [&](int k, core::loop& lp, const std::vector<core::loop*>&) -> core::task<void> {
            core::stop_token tok = co_await core::get_stop_token();
            redis::backplane_options o = fast_reconnect(false);
            o.size_interval = std::chrono::milliseconds(50);
            node n(lp, where, o, tok);
            for (int i = 0; i < 2 + k; ++i)
                n.add("shared");
            n.add(k == 0 ? "only-zero" : "only-one");
            CHECK(co_await poll_until([&n] { return n.bp.stats().connected; }));
            CHECK(co_await barrier(ready, 2));
            std::size_t seen = 0;
            std::size_t mine = 0;
            const bool added_up = co_await poll_until_task([&]() -> core::task<bool> {
                auto a = co_await n.bp.cluster_room_size("shared");
                auto b = co_await n.bp.cluster_room_size(k == 0 ? "only-zero" : "only-one");
                seen = a ? *a : 0;
                mine = b ? *b : 0;
                co_return seen == 5 && mine == 1;
            });
            CHECK_MESSAGE(added_up, "hub " << k << " sees " << seen << " and " << mine);
            auto none = co_await n.bp.cluster_room_size("nobody-here");
            CHECK(none);
            CHECK((none ? *none : 99) == 0);
            CHECK(co_await barrier(done, 2));
            if (k == 0) {
                // A process that wrote 7 members and then died: it counts until its entry
                // expires (here 300 ms), then not at all.
                auto c = co_await redis::connection::connect(parsed(where));
                REQUIRE(c);
                const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count();
                auto h = co_await c->command("HSET", "coronet:sizes:42", "shared", "7");
                auto z =
                    co_await c->command("ZADD", "coronet:origins", std::to_string(now + 300), "42");
                CHECK((h && z));
                auto with_dead = co_await n.bp.cluster_room_size("shared");
                CHECK((with_dead ? *with_dead : 0) == 12);
                const bool expired = co_await poll_until_task([&]() -> core::task<bool> {
                    auto a = co_await n.bp.cluster_room_size("shared");
                    seen = a ? *a : 0;
                    co_return seen == 5;
                });
                CHECK_MESSAGE(expired, "still " << seen);
                c->close();
            }
            CHECK(co_await barrier(ready, 4));
            co_await n.stop();
        },
        std::chrono::seconds(30));
}

} // namespace

TEST_SUITE("ws_redis.backplane") {
    TEST_CASE_TEMPLATE("hub::send_to reaches a connection of another process through redis", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server server(redis_server_options{});
        unicast_across<B>(server.unix_url());
    }

    TEST_CASE_TEMPLATE("cluster_room_size adds up every live process's members", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server server(redis_server_options{});
        cluster_sizes<B>(server.unix_url());
    }

    TEST_CASE_TEMPLATE("hubs share a room through redis pub/sub: exactly once, in order per "
                       "sender, no leak, own echo dropped",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server server(redis_server_options{});
        share_a_room<B>(server.unix_url(), false);
    }

    TEST_CASE_TEMPLATE("hubs share a room through redis sharded pub/sub (SPUBLISH/SSUBSCRIBE)", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server_options o;
        o.tcp = true;
        redis_server server(o);
        share_a_room<B>(server.tcp_url(), true);
    }

    TEST_CASE_TEMPLATE("the redis backplane unsubscribes a room after its last local member leaves",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server server(redis_server_options{});
        run_on<B>(
            [&](core::loop& lp) { return unsubscribe_after_last(lp, server.unix_url(), false); });
    }

    TEST_CASE_TEMPLATE(
        "the sharded redis backplane sunsubscribes a room after its last local member "
        "leaves",
        B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server server(redis_server_options{});
        run_on<B>(
            [&](core::loop& lp) { return unsubscribe_after_last(lp, server.unix_url(), true); });
    }

    TEST_CASE_TEMPLATE("redis killed and restarted: local rooms keep working, lost publishes "
                       "counted, cross-hub delivery resumes",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server_options o;
        o.tcp = true;
        redis_server server(o);
        survive_restart<B>(server, server.tcp_url(), false);
    }

    TEST_CASE_TEMPLATE("sharded: redis killed and restarted, delivery resumes", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server server(redis_server_options{});
        survive_restart<B>(server, server.unix_url(), true);
    }
}
