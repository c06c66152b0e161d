#include <coronet/ws/utf8.hpp>

#include "frame_feeder.hpp"

#include <coronet/ws/error.hpp>
#include <coronet/ws/frame.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

using namespace coronet::ws;
using namespace coronet::ws::testing;

namespace {

const std::vector<std::string_view> valid_texts = {
    "",
    "Hello world",
    "\xC2\x80",                                     // U+0080, smallest 2-byte
    "\xC2\xA2\xDF\xBF",                             // U+00A2 U+07FF
    "\xE0\xA0\x80",                                 // U+0800, smallest 3-byte
    "\xE2\x82\xAC",                                 // U+20AC euro sign
    "\xED\x9F\xBF",                                 // U+D7FF, just below the surrogates
    "\xEE\x80\x80",                                 // U+E000, just above them
    "\xEF\xBF\xBF",                                 // U+FFFF
    "\xF0\x90\x80\x80",                             // U+10000, smallest 4-byte
    "\xF0\x9F\x98\x80",                             // U+1F600
    "\xF4\x8F\xBF\xBF",                             // U+10FFFF, the last code point
    "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5", // "κόσμε" (Autobahn 6.2)
    "Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!", // Autobahn 6.2.1
    "0123456789abcdef\xE2\x82\xAC"
    "0123456789abcdef\xF0\x9F\x98\x80xyz01234567", // ASCII runs
};

struct invalid_case {
    std::string_view text;
    std::size_t bad_at; // index of the first byte that makes the input invalid
};

// Each is invalid at a definite byte (never merely truncated).
const std::vector<invalid_case> invalid_texts = {
    {"\xC0\x80", 0},                 // overlong U+0000: C0 is never a lead byte
    {"\xC1\xBF", 0},                 // overlong U+007F
    {"\xE0\x80\x80", 1},             // overlong 3-byte U+0000
    {"\xE0\x9F\xBF", 1},             // overlong 3-byte U+07FF
    {"\xF0\x80\x80\x80", 1},         // overlong 4-byte U+0000
    {"\xF0\x8F\xBF\xBF", 1},         // overlong 4-byte U+FFFF
    {"\xED\xA0\x80", 1},             // U+D800
    {"\xED\xAD\xBF", 1},             // U+DB7F
    {"\xED\xAE\x80", 1},             // U+DB80
    {"\xED\xAF\xBF", 1},             // U+DBFF
    {"\xED\xB0\x80", 1},             // U+DC00
    {"\xED\xBE\x80", 1},             // U+DF80
    {"\xED\xBF\xBF", 1},             // U+DFFF
    {"\xED\xA0\x80\xED\xB0\x80", 1}, // a surrogate pair in CESU-8 form
    {"\xF4\x90\x80\x80", 1},         // U+110000
    {"\xF5\x80\x80\x80", 0},
    {"\xF7\xBF\xBF\xBF", 0},
    {"\xF8\x88\x80\x80\x80", 0}, // old 5-byte form
    {"\xFC\x84\x80\x80\x80\x80", 0},
    {"\xFE", 0},
    {"\xFF", 0},
    {"\x80", 0}, // stray continuation bytes
    {"\xBF", 0},
    {"a\x80"
     "b",
     1},
    {"\xC2\xA2\x80", 2},
    {"\xE2\x82\x41", 2}, // a lead byte followed by ASCII
    {"\xC2\xC2\xA2", 1}, // a lead byte followed by a lead byte
    {"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80"
     "edited",
     12},                         // Autobahn 6.3
    {"0123456789abcdef\x80", 16}, // after an ASCII run read word-wise
    {"0123456789abcdefghij\xF4\x90", 21},
};

// Valid so far but cut off inside a code point.
const std::vector<std::string_view> truncated_texts = {
    "\xC2",     "\xE2",         "\xE2\x82",        "\xF0",
    "\xF0\x9F", "\xF0\x9F\x98", "abc\xF4\x8F\xBF", "0123456789abcdef\xE2\x82",
};

} // namespace

TEST_SUITE("ws.utf8") {

    TEST_CASE("valid UTF-8 is accepted whole and at every split") {
        for (auto text : valid_texts) {
            CAPTURE(text);
            CHECK(is_valid_utf8(text));
            for (std::size_t at = 0; at <= text.size(); ++at) {
                CAPTURE(at);
                utf8_validator v;
                CHECK(v.feed(text.substr(0, at)));
                CHECK(v.feed(text.substr(at)));
                CHECK(v.complete());
            }
        }
    }

    TEST_CASE("overlong forms and surrogates and code points above U+10FFFF are rejected") {
        for (const auto& c : invalid_texts) {
            CAPTURE(c.text);
            CHECK_FALSE(is_valid_utf8(c.text));
            utf8_validator v;
            CHECK_FALSE(v.feed(c.text));
        }
    }

    TEST_CASE("the validator fails at the first invalid byte when fed one byte at a time") {
        for (const auto& c : invalid_texts) {
            CAPTURE(c.text);
            utf8_validator v;
            std::size_t failed_at = c.text.size();
            for (std::size_t i = 0; i < c.text.size(); ++i) {
                if (!v.feed(c.text.substr(i, 1))) {
                    failed_at = i;
                    break;
                }
            }
            CHECK(failed_at == c.bad_at);
        }
    }

    TEST_CASE("a prefix that ends before the invalid byte is still accepted") {
        for (const auto& c : invalid_texts) {
            CAPTURE(c.text);
            utf8_validator v;
            CHECK(v.feed(c.text.substr(0, c.bad_at)));
            CHECK_FALSE(v.feed(c.text.substr(c.bad_at)));
        }
    }

    TEST_CASE("a sequence truncated at the end of the input is incomplete") {
        for (auto text : truncated_texts) {
            CAPTURE(text);
            utf8_validator v;
            CHECK(v.feed(text));
            CHECK_FALSE(v.complete());
            CHECK_FALSE(is_valid_utf8(text));
        }
    }

    TEST_CASE("every single lead byte from F5 to FF is rejected") {
        for (int b = 0xF5; b <= 0xFF; ++b) {
            CAPTURE(b);
            const char c = static_cast<char>(b);
            CHECK_FALSE(is_valid_utf8(std::string_view(&c, 1)));
        }
        CHECK_FALSE(is_valid_utf8(std::string_view("\xC0", 1)));
        CHECK_FALSE(is_valid_utf8(std::string_view("\xC1", 1)));
    }

    TEST_CASE("reset clears a partial code point") {
        utf8_validator v;
        CHECK(v.feed(std::string_view("\xE2\x82")));
        CHECK_FALSE(v.complete());
        v.reset();
        CHECK(v.complete());
        CHECK(v.feed(std::string_view("A")));
        CHECK(v.complete());
    }

    TEST_CASE("a text message with a code point split across frames decodes") {
        // "κόσμε" with the 3-byte ό cut after its first and second byte, in three frames.
        const std::string_view kosme = "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5";
        const auto stream = [&] {
            bytes s = client_frame(opcode::text, false, kosme.substr(0, 3));
            append(s, client_frame(opcode::ping, true, "between"));
            append(s, client_frame(opcode::continuation, false, kosme.substr(3, 1)));
            append(s, client_frame(opcode::continuation, true, kosme.substr(4)));
            return s;
        }();
        const auto whole = decode_whole(role::server, stream);
        CHECK_FALSE(whole.ec);
        CHECK(whole.events == std::vector<message>{{opcode::ping, "between", false},
                                                   {opcode::text, std::string(kosme), false}});
        CHECK(decode_bytewise(role::server, stream) == whole);
    }

    TEST_CASE("invalid UTF-8 split across frames fails at the frame that completes it") {
        // ED A0 80 is U+D800: frame 2 carries the byte that makes it invalid.
        const std::vector<bytes> frames = {
            client_frame(opcode::text, false, "ab\xED"),
            client_frame(opcode::continuation, false, "\xA0\x80"),
            client_frame(opcode::continuation, true, "cd"),
        };
        feeder f(role::server);
        CHECK(f.feed(frames[0]));
        CHECK_FALSE(f.feed(frames[1]));
        const auto o = f.result();
        CHECK(o.error_feed == 2);
        CHECK(o.ec == make_error_code(errc::invalid_payload));
        CHECK(close_code_of(o.ec) == 1007);
        CHECK(o.events.empty());
    }

    TEST_CASE("invalid UTF-8 fails in the first frame before the message ends") {
        feeder f(role::server);
        CHECK_FALSE(f.feed(client_frame(opcode::text, false, "ok\xC0\x80")));
        CHECK(f.result().error_feed == 1);
        CHECK(f.result().ec == make_error_code(errc::invalid_payload));
    }

    TEST_CASE("invalid UTF-8 fails at the byte that makes it invalid within a frame") {
        // Fed a byte per read: the error comes with the 0xA0 after ED, before the rest of the
        // frame.
        const bytes frame = client_frame(opcode::text, true, "abc\xED\xA0\x80xyz");
        const std::size_t header = 6;
        feeder f(role::server);
        std::size_t i = 0;
        for (; i < frame.size(); ++i)
            if (!f.feed(std::span<const std::byte>(frame).subspan(i, 1)))
                break;
        CHECK(i == header + 4);
        CHECK(f.result().ec == make_error_code(errc::invalid_payload));
    }

    TEST_CASE("a text message truncated inside a code point fails at its final frame") {
        feeder f(role::server);
        CHECK(f.feed(client_frame(opcode::text, false, "a\xE2")));
        CHECK(f.feed(client_frame(opcode::ping, true, "")));
        CHECK_FALSE(f.feed(client_frame(opcode::continuation, true, "\x82")));
        CHECK(f.result().error_feed == 3);
        CHECK(f.result().ec == make_error_code(errc::invalid_payload));
        CHECK(close_code_of(f.result().ec) == 1007);
    }

    TEST_CASE("binary messages are not UTF-8 checked") {
        const auto o =
            decode_whole(role::server, client_frame(opcode::binary, true, "\xED\xA0\x80\xFF"));
        CHECK_FALSE(o.ec);
        CHECK(o.events == std::vector<message>{{opcode::binary, "\xED\xA0\x80\xFF", false}});
    }

    TEST_CASE("the UTF-8 state starts over with each text message") {
        // The first message ends complete; a second one starting with a continuation byte is
        // invalid.
        feeder f(role::server);
        CHECK(f.feed(client_frame(opcode::text, true, "\xE2\x82\xAC")));
        CHECK_FALSE(f.feed(client_frame(opcode::text, true, "\x80")));
        CHECK(f.result().ec == make_error_code(errc::invalid_payload));
    }

} // TEST_SUITE
