#include <coronet/ws_redis/url.hpp>

#include <coronet/ws_redis/error.hpp>

#include <doctest/doctest.h>

#include <ostream> // doctest prints std::error_code through it

#include <string>

namespace redis = coronet::ws_redis;
using kind = redis::url::transport_kind;

TEST_SUITE("ws_redis.url") {

    TEST_CASE("a redis URL gives host, port, credentials and database") {
        SUBCASE("host alone: port 6379, database 0, no AUTH") {
            auto u = redis::url::parse("redis://localhost");
            REQUIRE(u);
            CHECK(u->transport == kind::tcp);
            CHECK(u->host == "localhost");
            CHECK(u->port == 6379);
            CHECK(u->database == 0);
            CHECK(u->user.empty());
            CHECK(u->password.empty());
        }
        SUBCASE("password, port and database") {
            auto u = redis::url::parse("redis://:s3cret@127.0.0.1:7000/5");
            REQUIRE(u);
            CHECK(u->host == "127.0.0.1");
            CHECK(u->port == 7000);
            CHECK(u->user.empty());
            CHECK(u->password == "s3cret");
            CHECK(u->database == 5);
        }
        SUBCASE("user and percent-encoded password") {
            auto u = redis::url::parse("REDIS://alice:p%40ss%3Aword@cache.example:6380/");
            REQUIRE(u);
            CHECK(u->user == "alice");
            CHECK(u->password == "p@ss:word");
            CHECK(u->host == "cache.example");
            CHECK(u->port == 6380);
            CHECK(u->database == 0);
        }
        SUBCASE("IPv6 literal, with and without a port") {
            auto a = redis::url::parse("redis://[::1]:7001");
            REQUIRE(a);
            CHECK(a->host == "::1");
            CHECK(a->port == 7001);
            auto b = redis::url::parse("redis://[::1]");
            REQUIRE(b);
            CHECK(b->port == 6379);
        }
        SUBCASE("database as a query") {
            auto u = redis::url::parse("redis://h?db=3");
            REQUIRE(u);
            CHECK(u->database == 3);
        }
        SUBCASE("rediss is TLS") {
            auto u = redis::url::parse("rediss://h:6390/1");
            REQUIRE(u);
            CHECK(u->transport == kind::tls);
            CHECK(u->port == 6390);
            CHECK(u->database == 1);
        }
    }

    TEST_CASE("a unix:// redis URL gives the socket path, credentials and database") {
        auto u = redis::url::parse("unix:///run/redis/redis.sock");
        REQUIRE(u);
        CHECK(u->transport == kind::unix_socket);
        CHECK(u->path == "/run/redis/redis.sock");
        auto v = redis::url::parse("unix://bob:pw@/tmp/r.sock?db=2");
        REQUIRE(v);
        CHECK(v->path == "/tmp/r.sock");
        CHECK(v->user == "bob");
        CHECK(v->password == "pw");
        CHECK(v->database == 2);
    }

    TEST_CASE("a malformed redis URL is errc::bad_url") {
        const char* bad[] = {
            "",
            "localhost:6379",            // no scheme
            "http://localhost",          // another scheme
            "redis://",                  // no host
            "redis://:6379",             // no host
            "redis://host:0",            // port out of range
            "redis://host:65536",        // port out of range
            "redis://host:port",         // not a number
            "redis://host/abc",          // database not a number
            "redis://host/1/2",          // more path
            "redis://host/-1",           // negative database
            "redis://host?db=",          // empty database
            "redis://host?foo=1",        // unknown query
            "redis://host#frag",         // fragment
            "redis://pw@host",           // userinfo without a colon
            "redis://:p%4@host",         // bad escape
            "redis://ho st",             // space in host
            "redis://::1:6379",          // unbracketed IPv6
            "redis://host\r\nX:1",       // CR LF
            "unix://",                   // no path
            "unix://relative/path.sock", // relative path
            "unix:///",                  // no file
            "unix:///tmp/s.sock?db=x",   // bad database
        };
        for (const char* text : bad) {
            CAPTURE(std::string(text));
            auto u = redis::url::parse(text);
            REQUIRE_FALSE(u);
            CHECK(u.error() == redis::errc::bad_url);
        }
    }

} // TEST_SUITE
