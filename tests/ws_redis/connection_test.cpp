#include <coronet/ws_redis/connection.hpp>

#include <coronet/core/error.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/tls.hpp>
#include <coronet/ws_redis/error.hpp>

#include <testing/backends.hpp>
#include <testing/redis_server.hpp>
#include <testing/run_bounded.hpp>

#include "backplane_testing.hpp"

#include <doctest/doctest.h>

#include <ostream> // doctest prints std::error_code through it

#include <chrono>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace core = coronet::core;
namespace redis = coronet::ws_redis;
using coronet::testing::redis_server;
using coronet::testing::redis_server_options;
using coronet::testing::run_on;
using coronet::testing::backplane::parsed;
using namespace std::chrono_literals;

namespace {

core::task<redis::connection> open(std::string text) {
    auto c = co_await redis::connection::connect(parsed(text));
    REQUIRE_MESSAGE(c, c.error().message());
    co_return std::move(*c);
}

core::task<void> every_reply_type(std::string where) {
    redis::connection c = co_await open(where);
    auto set = co_await c.command("SET", "greeting", std::string_view("hel\0lo", 6));
    REQUIRE(set);
    CHECK(set->is_ok());
    auto get = co_await c.command("GET", "greeting");
    REQUIRE(get);
    CHECK(get->is_string());
    CHECK(get->str == std::string("hel\0lo", 6));
    auto missing = co_await c.command("GET", "nothing-here");
    REQUIRE(missing);
    CHECK(missing->is_nil());
    auto n = co_await c.command("INCRBY", "counter", "41");
    REQUIRE(n);
    CHECK(n->is_integer());
    CHECK(n->integer == 41);
    std::vector<std::string> push = {"RPUSH", "list", "a", "b", "c"};
    auto pushed = co_await c.command(push);
    REQUIRE(pushed);
    CHECK(pushed->integer == 3);
    auto range = co_await c.command("LRANGE", "list", "0", "-1");
    REQUIRE(range);
    CHECK(range->to_string() == "[\"a\", \"b\", \"c\"]");
    // An error reply is a value, and the connection goes on.
    auto wrong = co_await c.command("NO-SUCH-COMMAND", "x");
    REQUIRE(wrong);
    CHECK(wrong->is_error());
    CHECK(wrong->str.rfind("ERR", 0) == 0);
    auto wrong_type = co_await c.command("INCR", "list");
    REQUIRE(wrong_type);
    CHECK(wrong_type->is_error());
    CHECK(wrong_type->str.rfind("WRONGTYPE", 0) == 0);
    auto ping = co_await c.command("PING");
    REQUIRE(ping);
    CHECK(ping->is_status());
    CHECK(ping->str == "PONG");
    std::vector<std::string> nothing;
    auto none = co_await c.command(nothing);
    REQUIRE_FALSE(none);
    CHECK(none.error() == redis::errc::invalid_argument);
    CHECK(c.is_open());
}

core::task<void> authenticates(std::string with_password, std::string as_user,
                               std::string wrong_password, std::string without) {
    redis::connection c = co_await open(with_password);
    auto who = co_await c.command("ACL", "WHOAMI");
    REQUIRE(who);
    CHECK(who->str == "default");

    redis::connection alice = co_await open(as_user);
    auto alice_who = co_await alice.command("ACL", "WHOAMI");
    REQUIRE(alice_who);
    CHECK(alice_who->str == "alice");

    auto refused = co_await redis::connection::connect(parsed(wrong_password));
    REQUIRE_FALSE(refused);
    CHECK(refused.error() == redis::errc::auth_failed);

    // Without AUTH the connection opens, and commands get NOAUTH error replies.
    redis::connection anonymous = co_await open(without);
    auto noauth = co_await anonymous.command("GET", "k");
    REQUIRE(noauth);
    CHECK(noauth->is_error());
    CHECK(noauth->str.rfind("NOAUTH", 0) == 0);
}

core::task<void> selects_database(std::string db0, std::string db3, std::string db99) {
    redis::connection in3 = co_await open(db3);
    auto set = co_await in3.command("SET", "where", "three");
    REQUIRE(set);
    CHECK(set->is_ok());
    redis::connection in0 = co_await open(db0);
    auto get0 = co_await in0.command("GET", "where");
    REQUIRE(get0);
    CHECK(get0->is_nil());
    auto select = co_await in0.command("SELECT", "3");
    REQUIRE(select);
    auto get3 = co_await in0.command("GET", "where");
    REQUIRE(get3);
    CHECK(get3->str == "three");
    auto refused = co_await redis::connection::connect(parsed(db99));
    REQUIRE_FALSE(refused);
    CHECK(refused.error() == redis::errc::select_failed);
}

core::task<void> incr_into(redis::connection& c, std::vector<std::int64_t>& got, std::size_t i) {
    std::string echo = "echo-" + std::to_string(i);
    auto r = co_await c.command("INCR", "order");
    auto e = co_await c.command("ECHO", echo);
    if (r && r->is_integer())
        got[i] = r->integer;
    if (!e || e->str != echo)
        got[i] = -1;
}

core::task<void> pipelines_in_order(std::string where) {
    redis::connection c = co_await open(where);
    constexpr std::size_t callers = 500;
    std::vector<std::int64_t> got(callers, 0);
    core::task_scope scope;
    for (std::size_t i = 0; i < callers; ++i)
        scope.spawn(incr_into(c, got, i));
    co_await scope.join();
    // Each caller queued its INCR when it started, in spawn order, so the replies number them.
    std::size_t in_order = 0;
    for (std::size_t i = 0; i < callers; ++i)
        in_order += got[i] == static_cast<std::int64_t>(i + 1) ? 1 : 0;
    CHECK(in_order == callers);
    CHECK(c.is_open());
}

core::task<void> blpop_into(redis::connection& c, core::result<redis::reply>& out,
                            std::string seconds) {
    out = co_await c.command("BLPOP", "never", seconds);
}

core::task<void> killed_mid_command(std::string where, redis_server* server) {
    redis::connection c = co_await open(where);
    redis::connection watcher = co_await open(where);
    core::result<redis::reply> blocked(redis::errc::closed);
    core::task_scope scope;
    scope.spawn(blpop_into(c, blocked, "0"));
    // The BLPOP is at the server once it counts a blocked client.
    for (;;) {
        auto info = co_await watcher.command("INFO", "clients");
        REQUIRE(info);
        if (info->str.find("blocked_clients:1") != std::string::npos)
            break;
    }
    server->kill();
    co_await scope.join();
    REQUIRE_FALSE(blocked);
    CHECK(blocked.error() != redis::errc::closed);
    MESSAGE("pending command after the kill: " << blocked.error().message());
    CHECK_FALSE(c.is_open());
    CHECK(c.error() == blocked.error());
    // Later calls get the same error at once.
    auto later = co_await c.command("PING");
    REQUIRE_FALSE(later);
    CHECK(later.error() == blocked.error());
    // A new connection finds nobody.
    auto again = co_await redis::connection::connect(parsed(where));
    REQUIRE_FALSE(again);
}

core::task<void> reply_limit(std::string where) {
    redis::connection writer = co_await open(where);
    std::string big(200 * 1024, 'z');
    auto set = co_await writer.command("SET", "big", big);
    REQUIRE(set);
    redis::options small;
    small.max_reply_bytes = 64 * 1024;
    auto limited = co_await redis::connection::connect(parsed(where), small);
    REQUIRE(limited);
    auto fits = co_await limited->command("STRLEN", "big");
    REQUIRE(fits);
    CHECK(fits->integer == static_cast<std::int64_t>(big.size()));
    auto too_big = co_await limited->command("GET", "big");
    REQUIRE_FALSE(too_big);
    CHECK(too_big.error() == redis::errc::reply_too_large);
    CHECK_FALSE(limited->is_open());
    auto after = co_await limited->command("PING");
    REQUIRE_FALSE(after);
    CHECK(after.error() == redis::errc::reply_too_large);
    // The default limit takes it.
    auto get = co_await writer.command("GET", "big");
    REQUIRE(get);
    CHECK(get->str.size() == big.size());
}

core::task<void> command_timeout(std::string where) {
    redis::options opts;
    opts.command_timeout = 200ms;
    auto c = co_await redis::connection::connect(parsed(where), opts);
    REQUIRE(c);
    auto started = core::clock::now();
    auto blocked = co_await c->command("BLPOP", "never", "0");
    REQUIRE_FALSE(blocked);
    CHECK(blocked.error() == core::errc::timed_out);
    CHECK(core::clock::now() - started < 5s);
    CHECK_FALSE(c->is_open());
}

core::task<void> cancelled_command(std::string where) {
    redis::connection c = co_await open(where);
    core::result<redis::reply> blocked(redis::errc::closed);
    {
        core::task_scope scope;
        // BLPOP with a short timeout: its reply (nil) comes later and must be dropped.
        scope.spawn(blpop_into(c, blocked, "0.2"));
        scope.request_stop();
        co_await scope.join();
    }
    REQUIRE_FALSE(blocked);
    CHECK(blocked.error() == core::errc::operation_canceled);
    CHECK(c.is_open());
    auto ping = co_await c.command("PING");
    REQUIRE(ping);
    CHECK(ping->str == "PONG");
}

core::task<void> nobody_there(std::string missing_socket, std::string refused_port) {
    auto a = co_await redis::connection::connect(parsed(missing_socket));
    REQUIRE_FALSE(a);
    CHECK(a.error() == std::errc::no_such_file_or_directory);
    auto b = co_await redis::connection::connect(parsed(refused_port));
    REQUIRE_FALSE(b);
    CHECK(b.error() == std::errc::connection_refused);
    redis::connection closed;
    auto c = co_await closed.command("PING");
    REQUIRE_FALSE(c);
    CHECK(c.error() == redis::errc::closed);
}

core::task<void> over_tls(std::string where, std::string ca_file) {
    core::tls_client_options topts;
    topts.ca_file = ca_file;
    auto ctx = core::tls_context::client(topts);
    REQUIRE(ctx);
    redis::options opts;
    opts.tls = &*ctx;
    auto c = co_await redis::connection::connect(parsed(where), opts);
    REQUIRE_MESSAGE(c, c.error().message());
    auto ping = co_await c->command("PING");
    REQUIRE(ping);
    CHECK(ping->str == "PONG");
    // The system store does not know the test CA: verification fails, as an error value.
    auto untrusted = co_await redis::connection::connect(parsed(where));
    REQUIRE_FALSE(untrusted);
    CHECK(untrusted.error().category() == core::tls_verify_category());
}

// Runs `body` while holding `listener` (made on the loop, before the body starts).
core::task<void> keep_alive(std::shared_ptr<core::tcp_listener> listener, core::task<void> body) {
    co_await std::move(body);
    listener->close();
}

// A peer that is not a well-behaved Redis: it reads the first bytes of the first command,
// then answers with `answer` and, when `flood` is set, keeps sending bulk-string bytes until
// the client goes away.
core::task<void> fake_server(core::tcp_listener& listener, std::string answer, bool flood) {
    auto s = co_await listener.accept();
    REQUIRE(s);
    std::byte buf[256];
    auto got = co_await s->read_some(buf);
    REQUIRE(got);
    auto w = co_await s->write_all(core::as_bytes(answer));
    if (!w || !flood)
        co_return;
    std::string chunk(64 * 1024, 'x');
    for (;;) {
        auto more = co_await s->write_all(core::as_bytes(chunk));
        if (!more)
            co_return; // the client closed: EPIPE / ECONNRESET
    }
}

core::task<void> not_redis(core::tcp_listener& listener, std::string where) {
    core::task_scope scope;
    scope.spawn(fake_server(listener, "HTTP/1.1 400 Bad Request\r\n\r\n", false));
    auto c = co_await redis::connection::connect(parsed(where));
    REQUIRE(c);
    auto r = co_await c->command("PING");
    REQUIRE_FALSE(r);
    CHECK(r.error() == redis::errc::protocol_error);
    CHECK_FALSE(c->is_open());
    c->close();
    co_await scope.join();
}

core::task<void> hostile_length(core::tcp_listener& listener, std::string where) {
    core::task_scope scope;
    scope.spawn(fake_server(listener, "$999999999999\r\n", true));
    redis::options opts;
    opts.max_reply_bytes = 256 * 1024;
    auto c = co_await redis::connection::connect(parsed(where), opts);
    REQUIRE(c);
    auto r = co_await c->command("GET", "k");
    REQUIRE_FALSE(r);
    CHECK(r.error() == redis::errc::reply_too_large);
    c->close(); // the flooding peer's next write fails
    co_await scope.join();
}

// The listener's backlog completes the TCP handshake, but nobody ever reads the AUTH.
core::task<void> silent_login(std::string where) {
    redis::options opts;
    opts.connect_timeout = 200ms;
    auto started = core::clock::now();
    auto c = co_await redis::connection::connect(parsed(where), opts);
    REQUIRE_FALSE(c);
    CHECK(c.error() == core::errc::timed_out);
    CHECK(core::clock::now() - started < 5s);
}

} // namespace

TEST_SUITE("ws_redis.connection") {

    TEST_CASE_TEMPLATE(
        "redis commands return status, error, integer, string, nil and array replies", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server_options o;
        o.tcp = true;
        redis_server server(o);
        SUBCASE("over a Unix socket") {
            run_on<B>([&](core::loop&) { return every_reply_type(server.unix_url()); });
        }
        SUBCASE("over TCP") {
            run_on<B>([&](core::loop&) { return every_reply_type(server.tcp_url()); });
        }
    }

    TEST_CASE_TEMPLATE("redis AUTH with the password, with a user, and a wrong password", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server_options o;
        o.password = "s3cret";
        o.args = {"--user", "alice", "on", ">alicepw", "~*", "&*", "+@all"};
        redis_server server(o);
        std::string path = server.socket_path();
        run_on<B>([&](core::loop&) {
            return authenticates("unix://:s3cret@" + path, "unix://alice:alicepw@" + path,
                                 "unix://:wrong@" + path, "unix://" + path);
        });
    }

    TEST_CASE_TEMPLATE("redis SELECT on connect uses the URL's database", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server_options o;
        o.tcp = true;
        redis_server server(o);
        std::string tcp = server.tcp_url();
        run_on<B>([&](core::loop&) {
            return selects_database(tcp, tcp + "/3", server.unix_url() + "?db=99");
        });
    }

    TEST_CASE_TEMPLATE("500 concurrent callers on one redis connection get their replies in order",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server server(redis_server_options{});
        run_on<B>([&](core::loop&) { return pipelines_in_order(server.unix_url()); });
    }

    TEST_CASE_TEMPLATE("a redis server killed mid-command gives an error value, not a hang", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server server(redis_server_options{});
        run_on<B>([&](core::loop&) { return killed_mid_command(server.unix_url(), &server); });
    }

    TEST_CASE_TEMPLATE(
        "a redis reply over max_reply_bytes fails the connection with reply_too_large", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server server(redis_server_options{});
        run_on<B>([&](core::loop&) { return reply_limit(server.unix_url()); });
    }

    TEST_CASE_TEMPLATE(
        "a redis command without a reply in time fails the connection with timed_out", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server server(redis_server_options{});
        run_on<B>([&](core::loop&) { return command_timeout(server.unix_url()); });
    }

    TEST_CASE_TEMPLATE("a cancelled redis command leaves the connection usable", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server server(redis_server_options{});
        run_on<B>([&](core::loop&) { return cancelled_command(server.unix_url()); });
    }

    TEST_CASE_TEMPLATE("connecting to no redis server is an error value", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        coronet::testing::temp_dir dir;
        // A port nobody listens on: bound by a listener that is closed again before connecting.
        std::string refused;
        {
            core::loop probe;
            auto l = coronet::testing::listen_local(probe);
            refused =
                "redis://127.0.0.1:" + std::to_string(coronet::testing::endpoint_of(l).port());
        }
        run_on<B>([&](core::loop&) {
            return nobody_there("unix://" + dir.path() + "/none.sock", refused);
        });
    }

    TEST_CASE_TEMPLATE("a peer that answers a redis command with something else than RESP gives "
                       "protocol_error",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) {
            auto listener =
                std::make_shared<core::tcp_listener>(coronet::testing::listen_local(lp));
            std::string where = "redis://127.0.0.1:" +
                                std::to_string(coronet::testing::endpoint_of(*listener).port());
            return keep_alive(listener, not_redis(*listener, where));
        });
    }

    TEST_CASE_TEMPLATE("a hostile redis peer announcing and streaming a huge reply hits "
                       "reply_too_large",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) {
            auto listener =
                std::make_shared<core::tcp_listener>(coronet::testing::listen_local(lp));
            std::string where = "redis://127.0.0.1:" +
                                std::to_string(coronet::testing::endpoint_of(*listener).port());
            return keep_alive(listener, hostile_length(*listener, where));
        });
    }

    TEST_CASE_TEMPLATE("a redis server that never answers the login makes connect time out", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) {
            auto listener =
                std::make_shared<core::tcp_listener>(coronet::testing::listen_local(lp));
            std::string where = "redis://:pw@127.0.0.1:" +
                                std::to_string(coronet::testing::endpoint_of(*listener).port());
            return keep_alive(listener, silent_login(where));
        });
    }

    TEST_CASE_TEMPLATE("rediss:// connects through TLS and verifies the certificate", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        CORONET_REQUIRE_REDIS();
        redis_server_options o;
        o.tls = true;
        redis_server server(o);
        run_on<B>([&](core::loop&) { return over_tls(server.tls_url(), server.ca_file()); });
    }

} // TEST_SUITE
