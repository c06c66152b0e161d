#include "resp.hpp"

#include <coronet/ws_redis/error.hpp>

#include <doctest/doctest.h>

#include <ostream> // doctest prints std::error_code through it

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace redis = coronet::ws_redis;
using redis::detail::resp_reader;

namespace {

std::span<const std::byte> bytes(std::string_view s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

// Feeds `wire` in pieces of `step` bytes and collects every complete reply.
std::vector<redis::reply> parse_all(std::string_view wire, std::size_t step,
                                    std::size_t limit = 1024 * 1024) {
    resp_reader reader(limit);
    std::vector<redis::reply> out;
    for (std::size_t at = 0; at < wire.size(); at += step) {
        REQUIRE(reader.feed(bytes(wire.substr(at, step))));
        for (;;) {
            auto r = reader.next();
            REQUIRE(r);
            if (!*r)
                break;
            out.push_back(std::move(**r));
        }
    }
    return out;
}

using namespace std::string_view_literals;

constexpr std::string_view every_type = "+OK\r\n"
                                        "-ERR unknown command 'FOO'\r\n"
                                        ":-42\r\n"
                                        "$5\r\nhe\0lo\r\n"
                                        "$-1\r\n"
                                        "*-1\r\n"
                                        "$0\r\n\r\n"
                                        "*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n*0\r\n"sv;

} // namespace

TEST_SUITE("ws_redis.resp") {

    TEST_CASE("every redis reply type parses the same when the input is split at every byte") {
        for (std::size_t step = 1; step <= every_type.size(); ++step) {
            CAPTURE(step);
            auto replies = parse_all(every_type, step);
            REQUIRE(replies.size() == 8);
            CHECK(replies[0].is_ok());
            CHECK(replies[1].is_error());
            CHECK(replies[1].str == "ERR unknown command 'FOO'");
            CHECK(replies[2].is_integer());
            CHECK(replies[2].integer == -42);
            CHECK(replies[3].is_string());
            CHECK(replies[3].str == std::string("he\0lo", 5));
            CHECK(replies[4].is_nil());
            CHECK(replies[5].is_nil());
            CHECK(replies[6].is_string());
            CHECK(replies[6].str.empty());
            REQUIRE(replies[7].is_array());
            REQUIRE(replies[7].elements.size() == 3);
            CHECK(replies[7].elements[0].integer == 1);
            REQUIRE(replies[7].elements[1].elements.size() == 2);
            CHECK(replies[7].elements[1].elements[0].str == "a");
            CHECK(replies[7].elements[1].elements[1].is_nil());
            CHECK(replies[7].elements[2].is_array());
            CHECK(replies[7].elements[2].elements.empty());
            CHECK(replies[7].to_string() == "[(integer) 1, [\"a\", (nil)], []]");
        }
    }

    TEST_CASE("redis commands are encoded as RESP arrays of bulk strings") {
        std::string_view args[] = {"SET", "key", std::string_view("a\0b", 3)};
        CHECK(redis::detail::encode_command(args) ==
              std::string("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$3\r\na\0b\r\n", 31));
        CHECK(redis::detail::encode_command({}).empty());
    }

    TEST_CASE("bytes that are not RESP are a redis protocol error") {
        resp_reader reader(1024);
        REQUIRE(reader.feed(bytes("HTTP/1.1 400 Bad Request\r\n")));
        auto r = reader.next();
        REQUIRE_FALSE(r);
        CHECK(r.error() == redis::errc::protocol_error);
    }

    TEST_CASE("an announced redis length allocates nothing until the bytes arrive") {
        // A bulk string and an array announcing two billion bytes / elements, followed by a
        // little: no reply, no error, and nothing near the announced size held.
        resp_reader reader(64 * 1024);
        REQUIRE(reader.feed(bytes("*2000000000\r\n$2000000000\r\nabc")));
        auto r = reader.next();
        REQUIRE(r);
        CHECK_FALSE(*r);
        CHECK(reader.buffered() < 64);
    }

    TEST_CASE(
        "a redis reply over the size limit is reply_too_large, whether one string or many values") {
        SUBCASE("one long bulk string, fed in pieces") {
            resp_reader reader(4096);
            REQUIRE(reader.feed(bytes("$100000\r\n")));
            std::string chunk(1000, 'x');
            for (int i = 0; i < 100; ++i) {
                auto fed = reader.feed(bytes(chunk));
                if (!fed) {
                    CHECK(fed.error() == redis::errc::reply_too_large);
                    return;
                }
                auto r = reader.next();
                if (!r) {
                    CHECK(r.error() == redis::errc::reply_too_large);
                    return;
                }
                REQUIRE_FALSE(*r);
            }
            FAIL("the limit was never hit");
        }
        SUBCASE("an array of many small values") {
            resp_reader reader(4096);
            std::string wire = "*100000\r\n";
            for (int i = 0; i < 1000; ++i)
                wire += ":1\r\n";
            REQUIRE(reader.feed(bytes(wire)));
            auto r = reader.next();
            REQUIRE_FALSE(r);
            CHECK(r.error() == redis::errc::reply_too_large);
        }
        SUBCASE("a reply under the limit after a large one passes") {
            std::string big(3000, 'y');
            std::string wire = "$3000\r\n" + big + "\r\n+OK\r\n";
            auto replies = parse_all(wire, 512, 4096);
            REQUIRE(replies.size() == 2);
            CHECK(replies[0].str == big);
            CHECK(replies[1].is_ok());
        }
    }

} // TEST_SUITE
