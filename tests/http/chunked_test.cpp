#include <coronet/http/parser.hpp>

#include <doctest/doctest.h>

#include <ostream> // doctest prints std::error_code through it
#include <string>
#include <string_view>
#include <vector>

using namespace coronet::http;

namespace {

struct decoded {
    std::string data;
    bool done = false;
    std::error_code ec;
    std::string left; // bytes after the body, never consumed
};

// Feeds `pieces` to one decoder the way a connection does: unconsumed bytes are kept and the next
// piece appended to them; each call's data is appended to the result.
decoded decode_pieces(const std::vector<std::string_view>& pieces, parser_limits limits = {}) {
    chunked_decoder d(limits);
    decoded out;
    std::string pending;
    for (auto piece : pieces) {
        pending.append(piece);
        while (!pending.empty() && !out.done) {
            auto step = d.decode(pending);
            out.data.append(step.data);
            pending.erase(0, step.consumed);
            if (step.ec) {
                out.ec = step.ec;
                return out;
            }
            out.done = step.done;
            if (step.consumed == 0)
                break;
        }
    }
    CHECK(out.done == d.done());
    out.left = pending;
    return out;
}

decoded decode_all(std::string_view body, parser_limits limits = {}) {
    return decode_pieces({body}, limits);
}

int status_of_body(std::string_view body, parser_limits limits = {}) {
    auto r = decode_all(body, limits);
    REQUIRE(r.ec);
    return status_of(r.ec);
}

const std::vector<std::string> well_formed_bodies = {
    "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    "1a;ext=1;name=\"quoted \\\" value\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nExpires: "
    "never\r\nX: 1\r\n\r\n",
    "A\r\n0123456789\r\n1 ; a = b\r\nx\r\n000\r\n\r\n",
    "0\r\n\r\n",
};

} // namespace

TEST_SUITE("http.chunked") {

    TEST_CASE("a chunked body decodes to the concatenated chunk data") {
        auto r = decode_all("7\r\nMozilla\r\n11\r\nDeveloper Network\r\n0\r\n\r\n");
        CHECK_FALSE(r.ec);
        CHECK(r.done);
        CHECK(r.data == "MozillaDeveloper Network");
    }

    TEST_CASE("data is returned as views into the input, one span per call") {
        const std::string in = "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
        chunked_decoder d;
        auto first = d.decode(in);
        CHECK(first.data == "hello");
        CHECK(first.data.data() == in.data() + 3);
        CHECK_FALSE(first.done);
        auto second = d.decode(std::string_view(in).substr(first.consumed));
        CHECK(second.data == "world");
        CHECK(d.body_size() == 10);
    }

    TEST_CASE("a chunked body split at every 2-way position decodes the same") {
        for (const auto& body : well_formed_bodies) {
            CAPTURE(body);
            const auto whole = decode_all(body);
            REQUIRE_FALSE(whole.ec);
            REQUIRE(whole.done);
            for (std::size_t i = 1; i < body.size(); ++i) {
                CAPTURE(i);
                std::string_view b(body);
                auto r = decode_pieces({b.substr(0, i), b.substr(i)});
                CHECK_FALSE(r.ec);
                CHECK(r.done);
                CHECK(r.data == whole.data);
            }
        }
    }

    TEST_CASE("a chunked body fed byte by byte decodes the same") {
        for (const auto& body : well_formed_bodies) {
            CAPTURE(body);
            std::vector<std::string_view> bytes;
            for (std::size_t i = 0; i < body.size(); ++i)
                bytes.push_back(std::string_view(body).substr(i, 1));
            auto r = decode_pieces(bytes);
            CHECK_FALSE(r.ec);
            CHECK(r.done);
            CHECK(r.data == decode_all(body).data);
        }
    }

    TEST_CASE("a malformed body split byte by byte fails with the same error") {
        for (const char* body : {"5\r\nhelloX\r\n0\r\n\r\n", "5;a b\r\nhello\r\n0\r\n\r\n",
                                 "0\r\nX : y\r\n\r\n", "g\r\n"}) {
            CAPTURE(body);
            std::string_view b(body);
            std::vector<std::string_view> bytes;
            for (std::size_t i = 0; i < b.size(); ++i)
                bytes.push_back(b.substr(i, 1));
            CHECK(decode_pieces(bytes).ec == decode_all(b).ec);
            CHECK(decode_all(b).ec);
        }
    }

    TEST_CASE("bytes after the last chunk are left for the next message") {
        auto r = decode_all("3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n");
        CHECK(r.done);
        CHECK(r.data == "abc");
        CHECK(r.left == "GET / HTTP/1.1\r\n");
    }

    TEST_CASE("chunk sizes are hex of either case, leading zeros allowed") {
        CHECK(decode_all("a\r\n0123456789\r\n0\r\n\r\n").data == "0123456789");
        CHECK(decode_all("A\r\n0123456789\r\n0\r\n\r\n").data == "0123456789");
        CHECK(decode_all("0003\r\nabc\r\n00\r\n\r\n").data == "abc");
    }

    TEST_CASE("malformed chunk sizes are refused with 400") {
        CHECK(status_of_body("0x5\r\nhello\r\n0\r\n\r\n") == 400);
        CHECK(status_of_body("-5\r\nhello\r\n0\r\n\r\n") == 400);
        CHECK(status_of_body("\r\nhello\r\n0\r\n\r\n") == 400);
        CHECK(status_of_body("+5\r\nhello\r\n0\r\n\r\n") == 400);
        CHECK(status_of_body("5 \r\nhello\r\n0\r\n\r\n") == 400); // BWS only before ';'
        CHECK(status_of_body(" 5\r\nhello\r\n0\r\n\r\n") == 400);
        CHECK(status_of_body("5\nhello\r\n0\r\n\r\n") == 400); // bare LF
        CHECK(status_of_body("5\rhello\r\n0\r\n\r\n") == 400); // bare CR
    }

    TEST_CASE("a chunk size that would overflow 64 bits is refused, not wrapped") {
        // 2^64 + 5 wraps to 5 in a careless parser, which then reads "hello" as a chunk.
        CHECK(status_of_body("10000000000000005\r\nhello\r\n0\r\n\r\n") == 400);
        CHECK(status_of_body("FFFFFFFFFFFFFFFFFFFF\r\n") == 400);
        // 15 hex digits (60 bits) still parse; the body limit then applies.
        CHECK(status_of_body("fffffffffffffff\r\n") == 413);
    }

    TEST_CASE("chunk extensions follow the RFC 9112 section 7.1.1 grammar") {
        SUBCASE("valid extensions are accepted and ignored") {
            for (const char* body : {
                     "5;a\r\nhello\r\n0\r\n\r\n",
                     "5;a=b\r\nhello\r\n0\r\n\r\n",
                     "5;a=b;c;d=e\r\nhello\r\n0\r\n\r\n",
                     "5;a=\"\"\r\nhello\r\n0\r\n\r\n",
                     "5;a=\"x y;z=\\\"w\\\\\"\r\nhello\r\n0\r\n\r\n",
                     "5 ;a\r\nhello\r\n0\r\n\r\n",
                     "5\t; a = b ; c = \"d\"\r\nhello\r\n0\r\n\r\n",
                     "5;a=\"caf\xe9\"\r\nhello\r\n0;last\r\n\r\n",
                 }) {
                CAPTURE(body);
                auto r = decode_all(body);
                CHECK_FALSE(r.ec);
                CHECK(r.done);
                CHECK(r.data == "hello");
            }
        }
        SUBCASE("malformed extensions are refused with 400") {
            for (const char* body : {
                     "5;\r\nhello\r\n0\r\n\r\n",             // no name
                     "5;;a\r\nhello\r\n0\r\n\r\n",           // empty first extension
                     "5;a b\r\nhello\r\n0\r\n\r\n",          // SP inside a name
                     "5;a=\r\nhello\r\n0\r\n\r\n",           // empty value
                     "5;a=b c\r\nhello\r\n0\r\n\r\n",        // SP inside a token value
                     "5;a=\"b\r\nhello\r\n0\r\n\r\n",        // unterminated quoted-string
                     "5;a=\"b\"c\r\nhello\r\n0\r\n\r\n",     // junk after a quoted-string
                     "5;a=b \r\nhello\r\n0\r\n\r\n",         // BWS before CRLF
                     "5;a \r\nhello\r\n0\r\n\r\n",           // BWS before CRLF
                     "5;a=\x01\r\nhello\r\n0\r\n\r\n",       // control byte
                     "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n",   // control byte in quotes
                     "5;a=\"\\\x01\"\r\nhello\r\n0\r\n\r\n", // quoted-pair of a control byte
                     "5;(a)\r\nhello\r\n0\r\n\r\n",          // separators in a name
                     "5;a=b\nhello\r\n0\r\n\r\n",            // bare LF ends the size line
                 }) {
                CAPTURE(body);
                CHECK(status_of_body(body) == 400);
            }
        }
    }

    TEST_CASE("trailer fields are validated and skipped") {
        auto r =
            decode_all("3\r\nabc\r\n0\r\nExpires: never\r\nX-Checksum:\t 42 \r\nEmpty:\r\n\r\n");
        CHECK_FALSE(r.ec);
        CHECK(r.done);
        CHECK(r.data == "abc");
        for (const char* body : {
                 "0\r\nX: a\r\n b\r\n\r\n", // obs-fold
                 "0\r\nX\r\n\r\n",          // no colon
                 "0\r\nX : a\r\n\r\n",      // SP before the colon
                 "0\r\n: a\r\n\r\n",        // empty name
                 "0\r\nX: a\nY: b\r\n\r\n", // bare LF
                 "0\r\nX: a\x01\r\n\r\n",   // control byte
                 "0\r\n\r\r\n",             // bare CR at the end
             }) {
            CAPTURE(body);
            CHECK(status_of_body(body) == 400);
        }
    }

    TEST_CASE("the CRLF after chunk data is required") {
        CHECK(status_of_body("5\r\nhelloX\r\n0\r\n\r\n") == 400);
        CHECK(status_of_body("5\r\nhello0\r\n\r\n") == 400);
        CHECK(status_of_body("5\r\nhello\n0\r\n\r\n") == 400);
        CHECK(status_of_body("5\r\nhello\rX0\r\n\r\n") == 400);
    }

    TEST_CASE("limits: body size, chunk count, extension and trailer bytes") {
        SUBCASE("max_body_size bytes pass, one more is 413 before the data arrives") {
            parser_limits limits;
            limits.max_body_size = 10;
            CHECK_FALSE(decode_all("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", limits).ec);
            auto r = decode_all("5\r\nhello\r\n6\r\n", limits);
            REQUIRE(r.ec);
            CHECK(status_of(r.ec) == 413);
        }
        SUBCASE("max_chunk_count chunks pass (the last one included), one more is 413") {
            parser_limits limits;
            limits.max_chunk_count = 3;
            CHECK_FALSE(decode_all("1\r\na\r\n1\r\nb\r\n0\r\n\r\n", limits).ec);
            auto r = decode_all("1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n", limits);
            REQUIRE(r.ec);
            CHECK(status_of(r.ec) == 413);
        }
        SUBCASE("max_chunk_extension bytes of extensions pass, one more is 400") {
            parser_limits limits;
            limits.max_chunk_extension = 8;
            // Counted from after the first ';' to the CRLF.
            CHECK_FALSE(decode_all("1;abcdefgh\r\na\r\n0\r\n\r\n", limits).ec);
            CHECK_FALSE(decode_all("1;abc;e=gh\r\na\r\n0\r\n\r\n", limits).ec);
            CHECK(status_of_body("1;abcdefghi\r\na\r\n0\r\n\r\n", limits) == 400);
            CHECK(status_of_body("1;abc;e=ghi\r\na\r\n0\r\n\r\n", limits) == 400);
        }
        SUBCASE("max_trailer_bytes of trailers pass, more is 431") {
            parser_limits limits;
            limits.max_trailer_bytes = 16;
            CHECK_FALSE(decode_all("0\r\nX: 0123456789ab\r\n\r\n", limits).ec);
            CHECK(status_of_body("0\r\nX: 0123456789abc\r\n\r\n", limits) == 431);
        }
    }

    TEST_CASE("reset decodes a second body from the start") {
        chunked_decoder d;
        auto a = d.decode("1\r\na\r\n");
        CHECK(a.data == "a");
        d.reset();
        CHECK(d.body_size() == 0);
        auto b = d.decode("2\r\nbc\r\n");
        CHECK(b.data == "bc");
        CHECK(d.body_size() == 2);
    }

} // TEST_SUITE
