#include <coronet/ws/frame.hpp>

#include "frame_feeder.hpp"

#include <coronet/ws/error.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

using namespace coronet::ws;
using namespace coronet::ws::testing;

namespace {

// RFC 6455 §5.7 examples.
const bytes unmasked_hello = make_bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
const bytes masked_hello =
    make_bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
const bytes fragmented_hel = make_bytes({0x01, 0x03, 0x48, 0x65, 0x6c});
const bytes fragmented_lo = make_bytes({0x80, 0x02, 0x6c, 0x6f});
const bytes unmasked_ping_hello = make_bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
const bytes unmasked_pong_hello = make_bytes({0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
const bytes masked_pong_hello =
    make_bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});

std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        s[i] = static_cast<char>((i * 7 + 3) & 0xFF);
    return s;
}

bytes binary_256() {
    bytes f = make_bytes({0x82, 0x7E, 0x01, 0x00});
    append(f, to_bytes(pattern(256)));
    return f;
}

bytes binary_64k() {
    bytes f = make_bytes({0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00});
    append(f, to_bytes(pattern(65536)));
    return f;
}

bytes concat(std::initializer_list<bytes> parts) {
    bytes out;
    for (const auto& p : parts)
        append(out, p);
    return out;
}

message text(std::string s) {
    return {opcode::text, std::move(s), false};
}
message binary(std::string s) {
    return {opcode::binary, std::move(s), false};
}
message control(opcode op, std::string s) {
    return {op, std::move(s), false};
}

// Checks that `stream` is refused with `e` (and its close code) in one read and byte by byte.
void expect_error(role r, const bytes& stream, errc e, frame_limits limits = {},
                  bool allow_rsv1 = false) {
    const auto whole = decode_whole(r, stream, limits, allow_rsv1);
    CHECK(whole.ec == make_error_code(e));
    CHECK(close_code_of(whole.ec) == close_code_of(make_error_code(e)));
    const auto bytewise = decode_bytewise(r, stream, limits, allow_rsv1);
    CHECK(bytewise.ec == make_error_code(e));
    CHECK(bytewise.events == whole.events);
}

bytes close_payload(std::uint16_t code, std::string_view reason = {}) {
    bytes p = make_bytes({code >> 8, code & 0xFF});
    append(p, to_bytes(reason));
    return p;
}

} // namespace

TEST_SUITE("ws.frame") {

    TEST_CASE("the RFC 6455 examples decode to their messages by the receiving role") {
        SUBCASE("a single-frame unmasked text message is read by a client") {
            CHECK(decode_whole(role::client, unmasked_hello).events == std::vector{text("Hello")});
        }
        SUBCASE("a single-frame masked text message is read by a server") {
            CHECK(decode_whole(role::server, masked_hello).events == std::vector{text("Hello")});
        }
        SUBCASE("a fragmented unmasked text message is read by a client") {
            const auto o = decode_whole(role::client, concat({fragmented_hel, fragmented_lo}));
            CHECK(o.events == std::vector{text("Hello")});
            CHECK_FALSE(o.ec);
            CHECK_FALSE(o.mid_message);
        }
        SUBCASE("an unmasked ping and pong are read by a client") {
            const auto o =
                decode_whole(role::client, concat({unmasked_ping_hello, unmasked_pong_hello}));
            CHECK(o.events ==
                  std::vector{control(opcode::ping, "Hello"), control(opcode::pong, "Hello")});
        }
        SUBCASE("a masked pong is read by a server") {
            CHECK(decode_whole(role::server, masked_pong_hello).events ==
                  std::vector{control(opcode::pong, "Hello")});
        }
        SUBCASE("a 256-byte binary message with a 16-bit length is read by a client") {
            CHECK(decode_whole(role::client, binary_256()).events ==
                  std::vector{binary(pattern(256))});
        }
        SUBCASE("a 64 KiB binary message with a 64-bit length is read by a client") {
            CHECK(decode_whole(role::client, binary_64k()).events ==
                  std::vector{binary(pattern(65536))});
        }
    }

    TEST_CASE("the RFC 6455 examples are what encode_header and apply_mask produce") {
        CHECK(server_frame(opcode::text, true, "Hello") == unmasked_hello);
        CHECK(client_frame(opcode::text, true, "Hello", 0x37fa213d) == masked_hello);
        CHECK(server_frame(opcode::text, false, "Hel") == fragmented_hel);
        CHECK(server_frame(opcode::continuation, true, "lo") == fragmented_lo);
        CHECK(server_frame(opcode::ping, true, "Hello") == unmasked_ping_hello);
        CHECK(client_frame(opcode::pong, true, "Hello", 0x37fa213d) == masked_pong_hello);
        CHECK(server_frame(opcode::binary, true, pattern(256)) == binary_256());
        CHECK(server_frame(opcode::binary, true, pattern(65536)) == binary_64k());
    }

    TEST_CASE("every example split at every byte decodes to the same message") {
        struct example {
            const char* name;
            bytes stream;
        };
        const std::vector<example> examples = {
            {"unmasked hello", unmasked_hello},
            {"masked hello", masked_hello},
            {"fragmented hello", concat({fragmented_hel, fragmented_lo})},
            {"ping and pong", concat({unmasked_ping_hello, unmasked_pong_hello})},
            {"masked pong", masked_pong_hello},
            {"256-byte binary", binary_256()},
            {"masked fragments around a ping",
             concat({client_frame(opcode::text, false, "caf\xC3", 0x01020304),
                     client_frame(opcode::ping, true, "p", 0xdeadbeef),
                     client_frame(opcode::continuation, false, "", 0x0badf00d),
                     client_frame(opcode::continuation, true, "\xA9!", 0xa1b2c3d4),
                     client_frame(opcode::close, true, "\x03\xE8ok", 0x11223344)})},
        };
        for (const auto& ex : examples) {
            CAPTURE(ex.name);
            const role r = receiver_of(ex.stream);
            const auto whole = decode_whole(r, ex.stream);
            REQUIRE_FALSE(whole.ec);
            REQUIRE_FALSE(whole.events.empty());
            CHECK_FALSE(whole.mid_message);
            for (std::size_t at = 0; at <= ex.stream.size(); ++at) {
                CAPTURE(at);
                CHECK(decode_split(r, ex.stream, at) == whole);
            }
            CHECK(decode_bytewise(r, ex.stream) == whole);
        }
        SUBCASE("the 64 KiB frame fed one byte at a time") {
            const auto whole = decode_whole(role::client, binary_64k());
            CHECK(decode_bytewise(role::client, binary_64k()) == whole);
            for (std::size_t at : {1, 2, 9, 10, 11, 4096, 65545}) {
                CAPTURE(at);
                CHECK(decode_split(role::client, binary_64k(), at) == whole);
            }
        }
    }

    TEST_CASE("a data frame header alone is consumed and its payload follows in later reads") {
        const bytes f = masked_hello;
        frame_decoder d(role::server);
        bytes buf(f.begin(), f.begin() + 6); // header and masking key, no payload yet
        auto s = d.decode(buf);
        CHECK(s.what == frame_decoder::kind::need_more);
        REQUIRE(s.consumed <= buf.size());
        buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(s.consumed));
        buf.insert(buf.end(), f.begin() + 6, f.end());
        std::string got;
        while (!buf.empty()) {
            s = d.decode(buf);
            REQUIRE(s.what == frame_decoder::kind::data);
            got += to_string(s.payload);
            buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(s.consumed));
            if (s.message_end)
                break;
        }
        CHECK(got == "Hello");
        CHECK(s.message_end);
        CHECK(buf.empty());
    }

    TEST_CASE("randomized masked fragmented messages with interleaved pings round-trip") {
        for (std::uint32_t seed = 1; seed <= 40; ++seed) {
            CAPTURE(seed);
            std::mt19937 rng(seed);
            auto uniform = [&](std::size_t lo, std::size_t hi) {
                return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
            };
            bytes stream;
            std::vector<message> expected;
            const std::size_t messages = uniform(1, 8);
            for (std::size_t m = 0; m < messages; ++m) {
                const bool is_text = uniform(0, 1) == 1;
                std::string payload;
                const std::size_t size = uniform(0, 3) == 0 ? uniform(0, 3) : uniform(0, 3000);
                if (is_text) {
                    // Random code points of every encoded length, so fragments split them anywhere.
                    while (payload.size() < size) {
                        switch (uniform(0, 3)) {
                        case 0:
                            payload += static_cast<char>(uniform(0x20, 0x7E));
                            break;
                        case 1:
                            payload += "\xC3\xA9";
                            break;
                        case 2:
                            payload += "\xE2\x82\xAC";
                            break;
                        default:
                            payload += "\xF0\x9F\x98\x80";
                            break;
                        }
                    }
                } else {
                    for (std::size_t i = 0; i < size; ++i)
                        payload += static_cast<char>(uniform(0, 255));
                }
                // Random fragment sizes, zero included, each fragment with its own key, pings
                // between.
                std::size_t pos = 0;
                bool first = true;
                do {
                    const std::size_t left = payload.size() - pos;
                    const std::size_t n = uniform(0, 2) == 0 ? left : uniform(0, left);
                    const bool fin = pos + n == payload.size();
                    const opcode op =
                        first ? (is_text ? opcode::text : opcode::binary) : opcode::continuation;
                    append(stream, client_frame(op, fin, std::string_view(payload).substr(pos, n),
                                                static_cast<std::uint32_t>(rng())));
                    pos += n;
                    first = false;
                    if (!fin && uniform(0, 2) == 0) {
                        const std::string ping(uniform(0, 125), 'p');
                        append(stream, client_frame(opcode::ping, true, ping,
                                                    static_cast<std::uint32_t>(rng())));
                        expected.push_back(control(opcode::ping, ping));
                    }
                    if (fin)
                        break;
                } while (true);
                expected.push_back({is_text ? opcode::text : opcode::binary, payload, false});
            }
            append(stream, client_frame(opcode::close, true,
                                        "\x03\xE8"
                                        "bye",
                                        static_cast<std::uint32_t>(rng())));
            expected.push_back(control(opcode::close, "\x03\xE8"
                                                      "bye"));

            // Reads of random sizes on the server side.
            feeder server(role::server);
            std::size_t pos = 0;
            while (pos < stream.size()) {
                const std::size_t n = std::min(stream.size() - pos, uniform(1, 700));
                REQUIRE(server.feed(std::span<const std::byte>(stream).subspan(pos, n)));
                pos += n;
            }
            const auto got = server.result();
            CHECK_FALSE(got.ec);
            CHECK_FALSE(got.mid_message);
            CHECK(server.pending() == 0);
            CHECK(got.events == expected);
            CHECK(decode_whole(role::server, stream) == got);
        }
    }

    TEST_CASE("RSV2 and RSV3 are refused with 1002") {
        SUBCASE("RSV2") {
            expect_error(role::server, make_bytes({0xA1, 0x80, 1, 2, 3, 4}), errc::protocol_error);
        }
        SUBCASE("RSV3") {
            expect_error(role::server, make_bytes({0x91, 0x80, 1, 2, 3, 4}), errc::protocol_error);
        }
        SUBCASE("RSV2 even when RSV1 is allowed") {
            expect_error(role::client, make_bytes({0xE2, 0x00}), errc::protocol_error, {}, true);
        }
    }

    TEST_CASE("RSV1 is refused unless allowed and never on a continuation or a control frame") {
        const bytes first = client_frame(opcode::text, false, "ab", 1, true);
        SUBCASE("RSV1 without allow_rsv1") {
            expect_error(role::server, first, errc::protocol_error);
        }
        SUBCASE("RSV1 allowed marks the message compressed and skips the UTF-8 check") {
            const auto o =
                decode_whole(role::server,
                             concat({client_frame(opcode::text, false, "\xFF", 1, true),
                                     client_frame(opcode::continuation, true, "\xFE", 2)}),
                             {}, true);
            CHECK_FALSE(o.ec);
            CHECK(o.events == std::vector{message{opcode::text, "\xFF\xFE", true}});
        }
        SUBCASE("RSV1 on a continuation") {
            expect_error(role::server,
                         concat({first, client_frame(opcode::continuation, true, "c", 1, true)}),
                         errc::protocol_error, {}, true);
        }
        SUBCASE("RSV1 on a ping") {
            expect_error(role::server, client_frame(opcode::ping, true, "", 1, true),
                         errc::protocol_error, {}, true);
        }
    }

    TEST_CASE("reserved opcodes are refused with 1002") {
        for (int op : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15}) {
            CAPTURE(op);
            expect_error(role::server, make_bytes({0x80 | op, 0x80, 1, 2, 3, 4}),
                         errc::protocol_error);
            expect_error(role::client, make_bytes({0x80 | op, 0x00}), errc::protocol_error);
        }
    }

    TEST_CASE("masking must match the receiving role") {
        SUBCASE("an unmasked frame to a server") {
            expect_error(role::server, unmasked_hello, errc::protocol_error);
            expect_error(role::server, unmasked_ping_hello, errc::protocol_error);
        }
        SUBCASE("a masked frame to a client") {
            expect_error(role::client, masked_hello, errc::protocol_error);
            expect_error(role::client, masked_pong_hello, errc::protocol_error);
        }
    }

    TEST_CASE("lengths must use the minimal encoding and fit in 63 bits") {
        SUBCASE("16-bit length of 125") {
            expect_error(role::client,
                         concat({make_bytes({0x82, 0x7E, 0x00, 0x7D}), to_bytes(pattern(125))}),
                         errc::protocol_error);
        }
        SUBCASE("16-bit length of 0") {
            expect_error(role::client, make_bytes({0x82, 0x7E, 0x00, 0x00}), errc::protocol_error);
        }
        SUBCASE("16-bit length of 126 is fine") {
            const auto o = decode_whole(role::client, concat({make_bytes({0x82, 0x7E, 0x00, 0x7E}),
                                                              to_bytes(pattern(126))}));
            CHECK(o.events == std::vector{binary(pattern(126))});
        }
        SUBCASE("64-bit length of 65535") {
            expect_error(role::client, make_bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}),
                         errc::protocol_error);
        }
        SUBCASE("64-bit length of 125") {
            expect_error(role::client, make_bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0x00, 0x7D}),
                         errc::protocol_error);
        }
        SUBCASE("64-bit length with the top bit set") {
            frame_limits huge;
            huge.max_frame_size = huge.max_message_size = ~std::uint64_t{0};
            expect_error(role::client, make_bytes({0x82, 0x7F, 0x80, 0, 0, 0, 0, 0x01, 0x00, 0x00}),
                         errc::protocol_error, huge);
            expect_error(role::client,
                         make_bytes({0x82, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}),
                         errc::protocol_error, huge);
        }
    }

    TEST_CASE("control frames must be final and at most 125 bytes") {
        SUBCASE("a 126-byte ping") {
            expect_error(role::client,
                         concat({make_bytes({0x89, 0x7E, 0x00, 0x7E}), to_bytes(pattern(126))}),
                         errc::protocol_error);
        }
        SUBCASE("a 125-byte ping is fine") {
            CHECK(
                decode_whole(role::client, server_frame(opcode::ping, true, pattern(125))).events ==
                std::vector{control(opcode::ping, pattern(125))});
        }
        SUBCASE("a fragmented ping") {
            expect_error(role::server, client_frame(opcode::ping, false, "a"),
                         errc::protocol_error);
        }
        SUBCASE("a fragmented close") {
            expect_error(role::client, server_frame(opcode::close, false, ""),
                         errc::protocol_error);
        }
    }

    TEST_CASE("continuation frames must continue a message") {
        SUBCASE("a continuation without a message") {
            expect_error(role::server, client_frame(opcode::continuation, true, "x"),
                         errc::protocol_error);
        }
        SUBCASE("a continuation after a complete message") {
            expect_error(role::server,
                         concat({masked_hello, client_frame(opcode::continuation, true, "x")}),
                         errc::protocol_error);
        }
        SUBCASE("a new text frame inside a fragmented message") {
            expect_error(role::server,
                         concat({client_frame(opcode::text, false, "a"),
                                 client_frame(opcode::text, true, "b")}),
                         errc::protocol_error);
        }
        SUBCASE("a new binary frame inside a fragmented message after a ping") {
            expect_error(role::server,
                         concat({client_frame(opcode::binary, false, "a"),
                                 client_frame(opcode::ping, true, ""),
                                 client_frame(opcode::binary, true, "b")}),
                         errc::protocol_error);
        }
    }

    TEST_CASE("close frames need a valid code and a UTF-8 reason") {
        SUBCASE("an empty close is fine") {
            CHECK(decode_whole(role::server, client_frame(opcode::close, true, "")).events ==
                  std::vector{control(opcode::close, "")});
        }
        SUBCASE("a close payload of length 1") {
            expect_error(role::server, client_frame(opcode::close, true, "\x03"),
                         errc::protocol_error);
        }
        SUBCASE("invalid close codes") {
            for (int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535}) {
                CAPTURE(code);
                CHECK_FALSE(valid_close_code(static_cast<std::uint16_t>(code)));
                expect_error(
                    role::server,
                    client_frame(opcode::close, true,
                                 to_string(close_payload(static_cast<std::uint16_t>(code)))),
                    errc::invalid_close_code);
                CHECK(close_code_of(make_error_code(errc::invalid_close_code)) == 1002);
            }
        }
        SUBCASE("valid close codes") {
            std::vector<int> codes = {3000, 3999, 4000, 4999};
            for (int c = 1000; c <= 1003; ++c)
                codes.push_back(c);
            for (int c = 1007; c <= 1014; ++c)
                codes.push_back(c);
            for (int code : codes) {
                CAPTURE(code);
                CHECK(valid_close_code(static_cast<std::uint16_t>(code)));
                const std::string payload =
                    to_string(close_payload(static_cast<std::uint16_t>(code), "r\xC3\xA9"));
                const auto o =
                    decode_whole(role::server, client_frame(opcode::close, true, payload));
                CHECK_FALSE(o.ec);
                CHECK(o.events == std::vector{control(opcode::close, payload)});
            }
        }
        SUBCASE("a close reason with invalid UTF-8") {
            for (std::string_view reason : {"\xC0\x80", "ok\xFF", "\xED\xA0\x80", "\xE2\x82"}) {
                CAPTURE(reason);
                expect_error(
                    role::server,
                    client_frame(opcode::close, true, to_string(close_payload(1000, reason))),
                    errc::invalid_payload);
                CHECK(close_code_of(make_error_code(errc::invalid_payload)) == 1007);
            }
        }
    }

    TEST_CASE("frames and messages over the limits are refused with 1009") {
        frame_limits limits;
        limits.max_frame_size = 10;
        limits.max_message_size = 16;
        SUBCASE("a frame at the frame limit is fine") {
            CHECK(
                decode_whole(role::server, client_frame(opcode::binary, true, pattern(10)), limits)
                    .events == std::vector{binary(pattern(10))});
        }
        SUBCASE("a frame over the frame limit") {
            expect_error(role::server, client_frame(opcode::binary, true, pattern(11)),
                         errc::message_too_big, limits);
            CHECK(close_code_of(make_error_code(errc::message_too_big)) == 1009);
        }
        SUBCASE("a 64-bit length far over the limit fails on the header alone") {
            expect_error(role::client, make_bytes({0x82, 0x7F, 0, 0, 0, 1, 0, 0, 0, 0}),
                         errc::message_too_big);
        }
        SUBCASE("a message at the message limit is fine") {
            const auto stream = concat({client_frame(opcode::text, false, "0123456789"),
                                        client_frame(opcode::continuation, true, "abcdef")});
            CHECK(decode_whole(role::server, stream, limits).events ==
                  std::vector{text("0123456789abcdef")});
        }
        SUBCASE("a message over the message limit") {
            const auto stream = concat({client_frame(opcode::text, false, "0123456789"),
                                        client_frame(opcode::continuation, false, "abcdef"),
                                        client_frame(opcode::continuation, true, "g")});
            expect_error(role::server, stream, errc::message_too_big, limits);
        }
        SUBCASE("the message size starts over with each message") {
            const auto stream = concat({client_frame(opcode::text, true, "0123456789"),
                                        client_frame(opcode::text, false, "0123456789"),
                                        client_frame(opcode::continuation, true, "abcdef")});
            CHECK(decode_whole(role::server, stream, limits).events ==
                  std::vector{text("0123456789"), text("0123456789abcdef")});
        }
    }

    TEST_CASE("max_fragments bounds the frames of one message") {
        frame_limits limits;
        limits.max_fragments = 3;
        const auto three = concat({client_frame(opcode::binary, false, "a"),
                                   client_frame(opcode::continuation, false, "b"),
                                   client_frame(opcode::continuation, true, "c")});
        SUBCASE("three fragments are fine and pings do not count") {
            const auto stream = concat({client_frame(opcode::binary, false, "a"),
                                        client_frame(opcode::ping, true, ""),
                                        client_frame(opcode::continuation, false, "b"),
                                        client_frame(opcode::ping, true, ""),
                                        client_frame(opcode::continuation, true, "c"), three});
            const auto o = decode_whole(role::server, stream, limits);
            CHECK_FALSE(o.ec);
            CHECK(o.events == std::vector{control(opcode::ping, ""), control(opcode::ping, ""),
                                          binary("abc"), binary("abc")});
        }
        SUBCASE("four fragments are refused") {
            const auto stream = concat({client_frame(opcode::binary, false, "a"),
                                        client_frame(opcode::continuation, false, "b"),
                                        client_frame(opcode::continuation, false, "c"),
                                        client_frame(opcode::continuation, true, "d")});
            expect_error(role::server, stream, errc::message_too_big, limits);
        }
    }

    TEST_CASE("apply_mask matches a byte loop for every length and offset") {
        std::mt19937 rng(6455);
        for (std::uint32_t key : {0x37fa213du, 0x00000000u, 0xffffffffu, 0x01020304u}) {
            for (std::size_t len = 0; len <= 64; ++len) {
                for (std::size_t offset = 0; offset < 4; ++offset) {
                    for (std::size_t align = 0; align < 8; ++align) {
                        CAPTURE(key);
                        CAPTURE(len);
                        CAPTURE(offset);
                        CAPTURE(align);
                        std::array<std::byte, 80> buf{};
                        for (auto& b : buf)
                            b = static_cast<std::byte>(rng());
                        auto expected = buf;
                        const std::array<std::uint8_t, 4> k = {static_cast<std::uint8_t>(key >> 24),
                                                               static_cast<std::uint8_t>(key >> 16),
                                                               static_cast<std::uint8_t>(key >> 8),
                                                               static_cast<std::uint8_t>(key)};
                        for (std::size_t i = 0; i < len; ++i)
                            expected[align + i] ^= static_cast<std::byte>(k[(offset + i) % 4]);
                        const std::size_t next =
                            apply_mask(std::span(buf).subspan(align, len), key, offset);
                        CHECK(next == offset + len);
                        CHECK(buf == expected); // bytes outside [align, align + len) untouched too
                    }
                }
            }
        }
    }

    TEST_CASE("apply_mask in pieces equals apply_mask at once") {
        const std::string original = pattern(200);
        bytes whole = to_bytes(original);
        apply_mask(whole, 0xa1b2c3d4);
        for (std::size_t cut : {0, 1, 3, 5, 8, 13, 100, 199, 200}) {
            CAPTURE(cut);
            bytes pieces = to_bytes(original);
            const std::size_t off = apply_mask(std::span(pieces).first(cut), 0xa1b2c3d4, 0);
            apply_mask(std::span(pieces).subspan(cut), 0xa1b2c3d4, off);
            CHECK(pieces == whole);
        }
        apply_mask(whole, 0xa1b2c3d4);
        CHECK(to_string(whole) == original);
    }

    TEST_CASE("encode_header picks the length form and places the mask") {
        struct expect {
            std::uint64_t len;
            std::vector<int> header; // without mask key
        };
        const std::vector<expect> cases = {
            {0, {0x82, 0x00}},
            {125, {0x82, 0x7D}},
            {126, {0x82, 0x7E, 0x00, 0x7E}},
            {65535, {0x82, 0x7E, 0xFF, 0xFF}},
            {65536, {0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}},
        };
        for (const auto& c : cases) {
            for (bool masked : {false, true}) {
                CAPTURE(c.len);
                CAPTURE(masked);
                std::array<std::byte, 14> out{};
                const std::size_t n =
                    encode_header(out.data(), opcode::binary, true, c.len, masked, 0x11223344);
                std::vector<int> want = c.header;
                if (masked) {
                    want[1] |= 0x80;
                    want.insert(want.end(), {0x11, 0x22, 0x33, 0x44});
                }
                REQUIRE(n == want.size());
                std::vector<int> got;
                for (std::size_t i = 0; i < n; ++i)
                    got.push_back(std::to_integer<int>(out[i]));
                CHECK(got == want);

                // The decoder of the other end reads it back.
                const std::string payload = pattern(static_cast<std::size_t>(c.len));
                const bytes frame = make_frame(opcode::binary, true, payload, masked, 0x11223344);
                CHECK(decode_whole(masked ? role::server : role::client, frame).events ==
                      std::vector{binary(payload)});
            }
        }
        SUBCASE("FIN clear and RSV1 set") {
            std::array<std::byte, 14> out{};
            REQUIRE(encode_header(out.data(), opcode::text, false, 3, false, 0, true) == 2);
            CHECK(std::to_integer<int>(out[0]) == 0x41);
            CHECK(std::to_integer<int>(out[1]) == 0x03);
        }
    }

    TEST_CASE("the decoder resets to a fresh state") {
        frame_decoder d(role::server);
        bytes buf = client_frame(opcode::text, false, "abc");
        auto s = d.decode(buf);
        REQUIRE(s.what == frame_decoder::kind::data);
        CHECK(d.in_message());
        d.reset();
        CHECK_FALSE(d.in_message());
        bytes cont = client_frame(opcode::continuation, true, "x");
        s = d.decode(cont);
        CHECK(s.what == frame_decoder::kind::error);
        CHECK(s.ec == errc::protocol_error);
    }

} // TEST_SUITE
