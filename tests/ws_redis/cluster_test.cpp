// The backplane on a real Redis Cluster: three redis-server masters formed into one cluster by
// the test. Shard channels and keys are routed to the node that owns their slot; a slot that
// moves (its shard channels dropped, MOVED replies) makes the backplane read the new map and
// carry on.
#include <coronet/ws_redis/backplane.hpp>
#include <coronet/ws_redis/cluster.hpp>
#include <coronet/ws_redis/connection.hpp>
#include <coronet/ws_redis/subscriber.hpp>

#include <testing/backends.hpp>
#include <testing/redis_server.hpp>

#include "backplane_testing.hpp"

#include <doctest/doctest.h>

#include <ostream> // doctest prints std::error_code through it

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

using coronet::testing::on_loops;
using coronet::testing::poll_until;
using coronet::testing::redis_server;
using coronet::testing::redis_server_options;
using coronet::testing::run_on;
using namespace coronet::testing::backplane;

namespace {

constexpr std::size_t masters = 3;

/// The first slot of master i of n: the slots are split evenly, as redis-cli splits them
/// (thirds: 0, 5461, 10923).
std::size_t first_slot(std::size_t i, std::size_t n) {
    return (i * redis::cluster_slots + n / 2) / n;
}

/// Which of n masters owns `slot`.
std::size_t master_of(std::uint16_t slot, std::size_t n) {
    std::size_t i = 0;
    while (slot >= first_slot(i + 1, n))
        ++i;
    return i;
}

/// Three cluster-enabled redis-server processes (no slots, no peers until formed).
struct redis_cluster {
    redis_cluster() {
        redis_server_options o;
        o.cluster = true;
        for (std::size_t i = 0; i < masters; ++i)
            nodes.emplace_back(o);
    }
    std::string url(std::size_t i) const { return nodes[i].tcp_url(); }

    std::vector<redis_server> nodes;
};

core::task<redis::connection> connect_to(const std::string& where) {
    auto c = co_await redis::connection::connect(parsed(where));
    REQUIRE_MESSAGE(c, c.error().message());
    co_return std::move(*c);
}

core::task<redis::reply> must(redis::connection& c, std::vector<std::string> args) {
    auto r = co_await c.command(args);
    REQUIRE_MESSAGE(r, r.error().message());
    REQUIRE_MESSAGE(!r->is_error(), r->to_string());
    co_return std::move(*r);
}

/// Gives each of the first `with_slots` nodes its share of the slots (the others none: masters
/// with no slots, which CLUSTER SLOTS does not list), introduces them all, and waits until
/// every node sees the whole cluster (cluster_state:ok, `with_slots` masters in CLUSTER SLOTS,
/// every node in CLUSTER NODES).
core::task<void> form(const redis_cluster& cl, std::size_t with_slots) {
    std::vector<redis::connection> c;
    for (std::size_t i = 0; i < masters; ++i)
        c.push_back(co_await connect_to(cl.url(i)));
    for (std::size_t i = 0; i < with_slots; ++i) {
        const std::vector<std::string> add{"CLUSTER", "ADDSLOTSRANGE",
                                           std::to_string(first_slot(i, with_slots)),
                                           std::to_string(first_slot(i + 1, with_slots) - 1)};
        (void)co_await must(c[i], add);
    }
    for (std::size_t i = 1; i < masters; ++i) {
        const std::vector<std::string> meet{"CLUSTER", "MEET", "127.0.0.1",
                                            std::to_string(cl.nodes[i].port()),
                                            std::to_string(cl.nodes[i].cluster_port())};
        (void)co_await must(c[0], meet);
    }
    bool formed = false;
    for (int round = 0; round < 1000 && !formed; ++round) {
        formed = true;
        for (auto& node : c) {
            const std::vector<std::string> info{"CLUSTER", "INFO"};
            const std::vector<std::string> slots{"CLUSTER", "SLOTS"};
            const std::vector<std::string> nodes{"CLUSTER", "NODES"};
            redis::reply i = co_await must(node, info);
            redis::reply s = co_await must(node, slots);
            redis::reply n = co_await must(node, nodes); // one line per node it knows
            formed =
                formed && i.str.find("cluster_state:ok") != std::string::npos &&
                s.elements.size() == with_slots &&
                static_cast<std::size_t>(std::count(n.str.begin(), n.str.end(), '\n')) == masters;
        }
        if (!formed)
            (void)co_await core::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE_MESSAGE(formed, "the cluster did not form within 10 s");
    for (auto& node : c)
        node.close();
}

/// Moves the (empty) `slot` to node `to`: the new owner first, then the others (CLUSTER
/// SETSLOT slot NODE id, as the last step of a resharding does).
core::task<void> move_slot(const redis_cluster& cl, std::uint16_t slot, std::size_t to) {
    auto target = co_await connect_to(cl.url(to));
    const std::vector<std::string> myid{"CLUSTER", "MYID"};
    const redis::reply mine = co_await must(target, myid);
    const std::string id = mine.str;
    target.close();
    std::vector<std::size_t> order{to};
    for (std::size_t i = 0; i < masters; ++i)
        if (i != to)
            order.push_back(i);
    for (std::size_t i : order) {
        auto c = co_await connect_to(cl.url(i));
        const std::vector<std::string> set{"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", id};
        (void)co_await must(c, set);
        c.close();
    }
}

/// A room whose shard channel lands on master `i` of `n` (the first of "a0", "a1"... that does).
std::string room_on(std::size_t i, const std::string& stem, std::size_t n = masters) {
    for (int k = 0;; ++k) {
        std::string room = stem + std::to_string(k);
        if (master_of(redis::key_slot("coronet:room:" + room), n) == i)
            return room;
    }
}

/// The messages of `got` that start with `prefix`, in order.
std::vector<std::string> starting(const std::vector<std::string>& got, const std::string& prefix) {
    std::vector<std::string> out;
    for (const std::string& m : got)
        if (m.rfind(prefix, 0) == 0)
            out.push_back(m);
    return out;
}

/// Every sender's messages `PREFIX FROM:I` (FROM < senders, I < count) arrived exactly once
/// and in order.
void check_each_sender(const std::vector<std::string>& got, const std::string& prefix, int senders,
                       std::size_t count) {
    for (int from = 0; from < senders; ++from) {
        const std::string head = prefix + std::to_string(from) + ":";
        std::vector<std::string> want;
        for (std::size_t i = 0; i < count; ++i)
            want.push_back(head + std::to_string(i));
        CHECK_MESSAGE(starting(got, head) == want, "from " << head);
    }
}

/// Hub k (of 2) is seeded with node k: each has a member in a room of every master, broadcasts
/// to each, unicasts to the other, and counts the cluster's members of a room.
template <class B>
void rooms_on_every_shard(const redis_cluster& cl) {
    constexpr int hubs = 2;
    constexpr std::size_t per_room = 20;
    std::vector<std::string> rooms;
    for (std::size_t i = 0; i < masters; ++i)
        rooms.push_back(room_on(i, "r"));
    std::atomic<int> ready{0};
    std::atomic<int> done{0};
    std::array<std::atomic<std::uint64_t>, hubs> ids{};
    on_loops<B>(
        hubs,
        [&](int k, core::loop& lp, const std::vector<core::loop*>&) -> core::task<void> {
            core::stop_token tok = co_await core::get_stop_token();
            node n(lp, cl.url(static_cast<std::size_t>(k)), fast_reconnect(true), tok);
            std::vector<std::size_t> member;
            for (const std::string& r : rooms)
                member.push_back(n.add(r));
            const std::size_t direct = n.add("direct" + std::to_string(k));
            CHECK(co_await poll_until([&] {
                bool all = n.bp.stats().connected;
                for (const std::string& r : rooms)
                    all = all && n.bp.subscribed(r);
                return all && n.hub.room_size("direct" + std::to_string(k)) == 1;
            }));
            CHECK(n.bp.stats().shards == masters);
            ids[static_cast<std::size_t>(k)] = n.member_id("direct" + std::to_string(k));
            CHECK(co_await barrier(ready, hubs));

            for (const std::string& r : rooms)
                for (std::size_t i = 0; i < per_room; ++i)
                    n.hub.broadcast_room(
                        r, ws::prepared_message::text(std::to_string(k) + ":" + std::to_string(i)));
            const std::size_t all = hubs * per_room;
            const bool arrived = co_await poll_until([&n, &member, all] {
                for (std::size_t m : member)
                    if (n.got[m]->size() < all)
                        return false;
                return true;
            });
            CHECK_MESSAGE(arrived, "hub " << k << ": " << describe(n.bp.stats()));
            for (std::size_t m : member)
                check_each_sender(*n.got[m], "", hubs, per_room);

            // Unicast (the unicast channel is on one master; every hub subscribed to it there).
            const std::uint64_t other = ids[static_cast<std::size_t>(1 - k)];
            auto sent = co_await n.hub.send_to(other, ws::prepared_message::text("hi"));
            CHECK(sent);
            CHECK(co_await poll_until([&n, direct] { return !n.got[direct]->empty(); }));
            CHECK(*n.got[direct] == std::vector<std::string>{"hi"});

            // Room sizes: each process's hash and the set of live ones may be on any master.
            std::size_t seen = 0;
            const bool counted = co_await poll_until_task([&]() -> core::task<bool> {
                auto size = co_await n.bp.cluster_room_size(rooms[0]);
                seen = size ? *size : 0;
                co_return seen == hubs;
            });
            CHECK_MESSAGE(counted, "cluster_room_size: " << seen);

            // The rooms' broadcasts and the unicast (whose reply may still be on its way).
            const std::uint64_t publishes = masters * per_room + 1;
            CHECK(co_await poll_until(
                [&n, publishes] { return n.bp.stats().published == publishes; }));
            const redis::backplane_stats st = n.bp.stats();
            CHECK(st.published == publishes);
            CHECK(st.lost_publishes == 0);
            CHECK(st.gaps == 0);
            CHECK(st.topology_changes == 0);
            CHECK(st.redirects == 0); // every channel and key went straight to its master
            CHECK(co_await barrier(done, hubs));
            co_await n.stop();
        },
        std::chrono::seconds(40));
}

/// The slot of room "m"'s channel moves from its master to the next one. Hubs 0 and 1 have a
/// member of "m" (their subscriptions are dropped by the old owner); hub 2 only publishes to it
/// (its next SPUBLISH is answered MOVED). All three read the map again in place (no new link)
/// and delivery resumes, exactly once and in order once the map is new everywhere.
template <class B>
void slot_moves(const redis_cluster& cl) {
    constexpr int hubs = 3;
    const std::string room = room_on(0, "m");
    const std::uint16_t slot = redis::key_slot("coronet:room:" + room);
    std::atomic<int> ready{0};
    std::atomic<int> moved{0};
    std::atomic<int> relinked{0};
    std::atomic<int> settled{0};
    std::atomic<int> done{0};
    std::atomic<bool> reached{false};
    on_loops<B>(
        hubs,
        [&](int k, core::loop& lp, const std::vector<core::loop*>&) -> core::task<void> {
            core::stop_token tok = co_await core::get_stop_token();
            node n(lp, cl.url(static_cast<std::size_t>(k)), fast_reconnect(true), tok);
            std::size_t m = 0;
            if (k < 2)
                m = n.add(room);
            CHECK(co_await poll_until([&n, k, &room] {
                return n.bp.stats().connected && (k == 2 || n.bp.subscribed(room));
            }));
            CHECK(co_await barrier(ready, hubs));
            n.hub.broadcast_room(room, ws::prepared_message::text("before:" + std::to_string(k)));
            if (k < 2)
                CHECK(
                    co_await poll_until([&n, m] { return n.got[m]->size() == 3; })); // one per hub

            if (k == 0) {
                // A plain subscriber of the channel on its owner sees the drop.
                auto sub = co_await redis::subscriber::connect(parsed(cl.url(0)));
                REQUIRE_MESSAGE(sub, sub.error().message());
                std::vector<std::string> watched{"coronet:room:" + room};
                CHECK(co_await sub->ssubscribe(watched));
                co_await move_slot(cl, slot, 1);
                auto drop = co_await sub->next();
                REQUIRE_MESSAGE(drop, drop.error().message());
                CHECK(drop->dropped);
                CHECK(drop->channel == "coronet:room:" + room);
                CHECK(drop->payload.empty());
                CHECK(sub->is_open());
                sub->close();
            }
            CHECK(co_await barrier(moved, hubs));

            if (k < 2) {
                // The old owner dropped the channel: a new map, subscribed on the new owner.
                CHECK(co_await poll_until([&n, &room] {
                    return n.bp.stats().topology_changes >= 1 && n.bp.stats().connected &&
                           n.bp.subscribed(room);
                }));
            }
            CHECK(co_await barrier(relinked, hubs));
            if (k == 2) {
                // Hub 2 still has the old map: its publishes meet MOVED until it reads the new
                // one. Publish until hub 0 has seen one.
                for (int i = 0; i < 500 && !reached; ++i) {
                    n.hub.broadcast_room(room, ws::prepared_message::text("probe"));
                    (void)co_await core::sleep_for(std::chrono::milliseconds(20));
                }
                CHECK(reached);
                // The probe that reached hub 0 may be the one resent after MOVED: wait until
                // the map was read again.
                CHECK(co_await poll_until([&n] { return n.bp.stats().topology_changes >= 1; }));
                const redis::backplane_stats st = n.bp.stats();
                CHECK_MESSAGE(st.redirects >= 1, describe(st));
                CHECK_MESSAGE(st.topology_changes >= 1, describe(st));
            } else if (k == 0) {
                CHECK(co_await poll_until([&n, m] {
                    const auto& got = *n.got[m];
                    return std::find(got.begin(), got.end(), "probe") != got.end();
                }));
                reached = true;
            }
            CHECK(co_await barrier(settled, hubs));

            // Every hub's map is the new one: exact delivery again.
            constexpr std::size_t after = 10;
            constexpr std::size_t expected = hubs * after;
            for (std::size_t i = 0; i < after; ++i)
                n.hub.broadcast_room(room, ws::prepared_message::text("after:" + std::to_string(k) +
                                                                      ":" + std::to_string(i)));
            if (k < 2) {
                const bool all = co_await poll_until(
                    [&n, m] { return starting(*n.got[m], "after:").size() >= expected; });
                CHECK_MESSAGE(all, "hub " << k << ": " << describe(n.bp.stats()));
                check_each_sender(*n.got[m], "after:", hubs, after);
            }
            CHECK(n.bp.stats().shards == masters);
            // Followed in place: the links were never rebuilt.
            CHECK_MESSAGE(n.bp.stats().connects == 1, describe(n.bp.stats()));
            CHECK(co_await barrier(done, hubs));
            co_await n.stop();
        },
        std::chrono::seconds(60));
}

/// The node id of master `i`.
core::task<std::string> node_id(const redis_cluster& cl, std::size_t i) {
    auto c = co_await connect_to(cl.url(i));
    const std::vector<std::string> myid{"CLUSTER", "MYID"};
    const redis::reply id = co_await must(c, myid);
    c.close();
    co_return id.str;
}

/// The slot of this process's room-sizes hash is being migrated (MIGRATING on its owner,
/// IMPORTING on the next master) before the backplane starts: the hash does not exist on the
/// owner, which answers ASK; the backplane follows it (ASKING on the importing master), the
/// hash is written there, and the map is never read again.
core::task<void> sizes_while_migrating(core::loop& lp, const redis_cluster& cl) {
    core::stop_token tok = co_await core::get_stop_token();
    node n(lp, cl.url(0), fast_reconnect(true), tok, false);
    n.add("a");
    const std::string key = "coronet:sizes:" + std::to_string(n.bp.origin());
    const std::uint16_t slot = redis::key_slot(key);
    const std::size_t from = master_of(slot, masters);
    const std::size_t to = (from + 1) % masters;
    const std::string from_id = co_await node_id(cl, from);
    const std::string to_id = co_await node_id(cl, to);
    auto importing = co_await connect_to(cl.url(to));
    const std::vector<std::string> import{"CLUSTER", "SETSLOT", std::to_string(slot), "IMPORTING",
                                          from_id};
    (void)co_await must(importing, import);
    auto migrating = co_await connect_to(cl.url(from));
    const std::vector<std::string> migrate{"CLUSTER", "SETSLOT", std::to_string(slot), "MIGRATING",
                                           to_id};
    (void)co_await must(migrating, migrate);
    migrating.close();

    n.start();
    CHECK(co_await poll_until([&n] { return n.bp.stats().redirects >= 1; }));
    // The hash is on the importing master (read there after ASKING, as the backplane wrote it).
    std::string seen;
    const bool written = co_await poll_until_task([&]() -> core::task<bool> {
        const std::vector<std::string> asking{"ASKING"};
        const std::vector<std::string> get{"HGET", key, "a"};
        (void)co_await must(importing, asking);
        const redis::reply r = co_await must(importing, get);
        seen = r.to_string();
        co_return r.is_string() && r.str == "1";
    });
    CHECK_MESSAGE(written, "HGET on the importing master: " << seen);
    const redis::backplane_stats st = n.bp.stats();
    CHECK_MESSAGE(st.topology_changes == 0, describe(st));
    CHECK_MESSAGE(st.connects == 1, describe(st));
    CHECK_MESSAGE(st.failures == 0, describe(st));
    importing.close();
    co_await n.stop();
}

/// Two masters hold the slots and a third has none. The slot of room "n"'s channel moves to the
/// third: a node the backplanes' links do not know, so they are rebuilt on the new map (three
/// shards), without counting a failure, and delivery resumes.
template <class B>
void slot_moves_to_new_master(const redis_cluster& cl) {
    constexpr int hubs = 2;
    const std::string room = room_on(0, "n", 2);
    const std::uint16_t slot = redis::key_slot("coronet:room:" + room);
    std::atomic<int> ready{0};
    std::atomic<int> moved{0};
    std::atomic<int> done{0};
    std::atomic<bool> reached{false};
    on_loops<B>(
        hubs,
        [&](int k, core::loop& lp, const std::vector<core::loop*>&) -> core::task<void> {
            core::stop_token tok = co_await core::get_stop_token();
            node n(lp, cl.url(static_cast<std::size_t>(k)), fast_reconnect(true), tok);
            const std::size_t m = n.add(room);
            CHECK(co_await poll_until([&n, &room] { return n.bp.subscribed(room); }));
            CHECK(n.bp.stats().shards == 2);
            CHECK(co_await barrier(ready, hubs));
            if (k == 0)
                co_await move_slot(cl, slot, 2);
            CHECK(co_await barrier(moved, hubs));
            CHECK(co_await poll_until([&n, &room] {
                const redis::backplane_stats st = n.bp.stats();
                return st.shards == 3 && st.connects == 2 && n.bp.subscribed(room);
            }));
            // Hub 0 probes until hub 1 has one (hub 0 may publish before hub 1 subscribed).
            if (k == 0) {
                for (int i = 0; i < 500 && !reached; ++i) {
                    n.hub.broadcast_room(room, ws::prepared_message::text("probe"));
                    (void)co_await core::sleep_for(std::chrono::milliseconds(20));
                }
                CHECK(reached);
            } else {
                CHECK(co_await poll_until([&n, m] { return !n.got[m]->empty(); }));
                reached = true;
            }
            const redis::backplane_stats st = n.bp.stats();
            CHECK_MESSAGE(st.topology_changes >= 1, describe(st));
            CHECK_MESSAGE(st.failures == 0, describe(st));
            CHECK(co_await barrier(done, hubs));
            co_await n.stop();
        },
        std::chrono::seconds(60));
}

} // namespace

TEST_SUITE("ws_redis.cluster") {
    TEST_CASE("key_slot agrees with CLUSTER KEYSLOT, hash tags included") {
        CORONET_REQUIRE_REDIS();
        redis_server_options o;
        o.cluster = true;
        redis_server server(o);
        run_on<coronet::testing::epoll_backend>([&](core::loop&) -> core::task<void> {
            auto c = co_await connect_to(server.tcp_url());
            std::vector<std::string> keys = {"",
                                             "a",
                                             "123456789",
                                             "{user1}.a",
                                             "a{b}c",
                                             "{}x",
                                             "a{",
                                             "a}b{c}",
                                             "{{x}}",
                                             "x{}{y}",
                                             "{a}{b}",
                                             "caf\xc3\xa9",
                                             std::string("\xff\x00\x7f", 3)};
            for (int i = 0; i < 300; ++i)
                keys.push_back("coronet:room:" + std::to_string(i));
            for (const std::string& k : keys) {
                const std::vector<std::string> ask{"CLUSTER", "KEYSLOT", k};
                redis::reply r = co_await must(c, ask);
                REQUIRE(r.is_integer());
                CHECK_MESSAGE(redis::key_slot(k) == r.integer, "key " << k);
            }
            // The CRC-16/XMODEM check value, and a hash tag hashing only its tag.
            CHECK(redis::key_slot("123456789") == 0x31c3 % 16384);
            CHECK(redis::key_slot("{user1}.following") == redis::key_slot("user1"));
            c.close();
        });
    }

    TEST_CASE_TEMPLATE("a backplane on a redis cluster: rooms on every master, unicast, room "
                       "sizes",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_cluster cl;
        run_on<B>([&](core::loop&) { return form(cl, masters); }, std::chrono::seconds(20));
        rooms_on_every_shard<B>(cl);
    }

    TEST_CASE_TEMPLATE("a room's slot moves to another master: the backplanes follow", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_cluster cl;
        run_on<B>([&](core::loop&) { return form(cl, masters); }, std::chrono::seconds(20));
        slot_moves<B>(cl);
    }

    TEST_CASE_TEMPLATE("a room's slot moves to a master the links did not know: they are rebuilt",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_cluster cl;
        run_on<B>([&](core::loop&) { return form(cl, 2); }, std::chrono::seconds(20));
        slot_moves_to_new_master<B>(cl);
    }

    TEST_CASE_TEMPLATE("a key in a migrating slot: ASK is followed with ASKING", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_cluster cl;
        run_on<B>([&](core::loop&) { return form(cl, masters); }, std::chrono::seconds(20));
        run_on<B>([&](core::loop& lp) { return sizes_while_migrating(lp, cl); },
                  std::chrono::seconds(30));
    }
}
