#include <coronet/ws_redis/subscriber.hpp>

#include <coronet/core/error.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/ws_redis/connection.hpp>
#include <coronet/ws_redis/error.hpp>

#include <testing/backends.hpp>
#include <testing/redis_server.hpp>
#include <testing/run_bounded.hpp>

#include "backplane_testing.hpp"

#include <doctest/doctest.h>

#include <ostream> // doctest prints std::error_code through it

#include <string>
#include <vector>

namespace core = coronet::core;
namespace redis = coronet::ws_redis;
using coronet::testing::redis_server;
using coronet::testing::redis_server_options;
using coronet::testing::run_on;
using coronet::testing::backplane::parsed;

namespace {

core::task<redis::connection> open_publisher(std::string text) {
    auto c = co_await redis::connection::connect(parsed(text));
    REQUIRE_MESSAGE(c, c.error().message());
    co_return std::move(*c);
}

core::task<redis::subscriber> open_subscriber(std::string text) {
    auto s = co_await redis::subscriber::connect(parsed(text));
    REQUIRE_MESSAGE(s, s.error().message());
    co_return std::move(*s);
}

core::task<void> publish_and_receive(std::string where) {
    redis::connection pub = co_await open_publisher(where);
    redis::subscriber sub = co_await open_subscriber(where);
    std::vector<std::string> subscribed_channels = {"room:a", "room:b"};
    auto subscribed = co_await sub.subscribe(subscribed_channels);
    REQUIRE_MESSAGE(subscribed, subscribed.error().message());
    constexpr int count = 100;
    for (int i = 0; i < count; ++i) {
        auto n = co_await pub.publish(i % 2 == 0 ? "room:a" : "room:b", "msg " + std::to_string(i));
        REQUIRE(n);
        CHECK(*n == 1);
    }
    auto nobody = co_await pub.publish("room:c", "unheard");
    REQUIRE(nobody);
    CHECK(*nobody == 0);
    for (int i = 0; i < count; ++i) {
        auto m = co_await sub.next();
        REQUIRE_MESSAGE(m, m.error().message());
        CHECK(m->channel == (i % 2 == 0 ? "room:a" : "room:b"));
        CHECK(m->payload == "msg " + std::to_string(i));
        CHECK_FALSE(m->sharded);
    }
    CHECK(sub.queued() == 0);
}

core::task<void> sharded(std::string where) {
    redis::connection pub = co_await open_publisher(where);
    redis::subscriber sub = co_await open_subscriber(where);
    std::vector<std::string> shard = {"shard:{1}"};
    auto subscribed = co_await sub.ssubscribe(shard);
    REQUIRE_MESSAGE(subscribed, subscribed.error().message());
    auto n = co_await pub.spublish("shard:{1}", std::string("bin\0ary", 7));
    REQUIRE(n);
    CHECK(*n == 1);
    auto m = co_await sub.next();
    REQUIRE(m);
    CHECK(m->channel == "shard:{1}");
    CHECK(m->payload == std::string("bin\0ary", 7));
    CHECK(m->sharded);
    CHECK_FALSE(m->dropped);
    auto gone = co_await sub.sunsubscribe(shard);
    REQUIRE(gone);
    auto after = co_await pub.spublish("shard:{1}", "late");
    REQUIRE(after);
    CHECK(*after == 0);
    // Our own SUNSUBSCRIBE's confirmations, for several channels at once (one of them never
    // subscribed), are confirmations: nothing is yielded as a channel the server dropped.
    std::vector<std::string> two = {"shard:{2}a", "shard:{2}b"};
    REQUIRE(co_await sub.ssubscribe(two));
    std::vector<std::string> three = {"shard:{2}a", "shard:{2}b", "shard:{2}never"};
    REQUIRE(co_await sub.sunsubscribe(three));
    CHECK(sub.queued() == 0);
    CHECK(sub.is_open());
}

core::task<void> unsubscribes(std::string where) {
    redis::connection pub = co_await open_publisher(where);
    redis::subscriber sub = co_await open_subscriber(where);
    std::vector<std::string> s_channels = {"keep", "drop"};
    auto s = co_await sub.subscribe(s_channels);
    REQUIRE(s);
    std::vector<std::string> u_channels = {"drop"};
    auto u = co_await sub.unsubscribe(u_channels);
    REQUIRE(u);
    auto to_drop = co_await pub.publish("drop", "never seen");
    REQUIRE(to_drop);
    CHECK(*to_drop == 0);
    auto to_keep = co_await pub.publish("keep", "seen");
    REQUIRE(to_keep);
    CHECK(*to_keep == 1);
    auto m = co_await sub.next();
    REQUIRE(m);
    CHECK(m->channel == "keep");
    CHECK(m->payload == "seen");
    std::vector<std::string> empty_channels;
    auto empty = co_await sub.unsubscribe(empty_channels);
    REQUIRE_FALSE(empty);
    CHECK(empty.error() == redis::errc::invalid_argument);
    CHECK(sub.is_open());
}

// Messages that reach the subscriber before a later subscribe's confirmation are read by that
// subscribe call: they wait in the queue for next(), up to max_queued_messages.
core::task<void> queued_during_subscribe(std::string where) {
    redis::connection pub = co_await open_publisher(where);
    redis::options opts;
    opts.max_queued_messages = 3;
    auto sub = co_await redis::subscriber::connect(parsed(where), opts);
    REQUIRE(sub);
    std::vector<std::string> first = {"a"};
    auto s1 = co_await sub->subscribe(first);
    REQUIRE(s1);
    for (int i = 0; i < 3; ++i) {
        auto n = co_await pub.publish("a", "early " + std::to_string(i));
        REQUIRE(n);
    }
    std::vector<std::string> second = {"b"};
    auto s2 = co_await sub->subscribe(second);
    REQUIRE(s2);
    CHECK(sub->queued() == 3);
    for (int i = 0; i < 3; ++i) {
        auto m = co_await sub->next();
        REQUIRE(m);
        CHECK(m->payload == "early " + std::to_string(i));
    }
    // One more than the queue holds fails the subscriber.
    for (int i = 0; i < 4; ++i) {
        auto n = co_await pub.publish("b", "flood");
        REQUIRE(n);
    }
    std::vector<std::string> third = {"c"};
    auto s3 = co_await sub->subscribe(third);
    REQUIRE_FALSE(s3);
    CHECK(s3.error() == redis::errc::queue_overflow);
    CHECK_FALSE(sub->is_open());
}

core::task<void> next_into(redis::subscriber& sub, core::result<redis::message>& out) {
    out = co_await sub.next();
}

core::task<void> server_killed(std::string where, redis_server* server) {
    redis::connection watcher = co_await open_publisher(where);
    redis::subscriber sub = co_await open_subscriber(where);
    std::vector<std::string> s_channels = {"x"};
    auto s = co_await sub.subscribe(s_channels);
    REQUIRE(s);
    core::result<redis::message> got(redis::errc::closed);
    core::task_scope scope;
    scope.spawn(next_into(sub, got));
    auto n = co_await watcher.publish("x", "before");
    REQUIRE(n);
    CHECK(*n == 1);
    co_await scope.join();
    REQUIRE(got);
    CHECK(got->payload == "before");
    scope.spawn(next_into(sub, got));
    server->kill();
    co_await scope.join();
    REQUIRE_FALSE(got);
    MESSAGE("next() after the kill: " << got.error().message());
    CHECK_FALSE(sub.is_open());
    std::vector<std::string> again_channels = {"y"};
    auto again = co_await sub.subscribe(again_channels);
    REQUIRE_FALSE(again);
    CHECK(again.error() == sub.error());
}

} // namespace

TEST_SUITE("ws_redis.subscriber") {

    TEST_CASE_TEMPLATE("published messages reach a redis subscriber in order, per channel", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server server(redis_server_options{});
        run_on<B>([&](core::loop&) { return publish_and_receive(server.unix_url()); });
    }

    TEST_CASE_TEMPLATE("SPUBLISH reaches an SSUBSCRIBE redis subscriber as a sharded message", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server server(redis_server_options{});
        run_on<B>([&](core::loop&) { return sharded(server.unix_url()); });
    }

    TEST_CASE_TEMPLATE("an unsubscribed redis channel delivers nothing more", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server server(redis_server_options{});
        run_on<B>([&](core::loop&) { return unsubscribes(server.unix_url()); });
    }

    TEST_CASE_TEMPLATE("redis messages read during a subscribe call are queued for next(), up to "
                       "the limit",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server server(redis_server_options{});
        run_on<B>([&](core::loop&) { return queued_during_subscribe(server.unix_url()); });
    }

    TEST_CASE_TEMPLATE("a redis subscriber whose server is killed gets an error from next()", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server server(redis_server_options{});
        run_on<B>([&](core::loop&) { return server_killed(server.unix_url(), &server); });
    }

} // TEST_SUITE
