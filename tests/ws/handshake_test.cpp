#include <coronet/ws/handshake.hpp>

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <string_view>

using namespace coronet::ws;

TEST_SUITE("ws.handshake") {

    TEST_CASE("accept_key matches the RFC 6455 section 1.3 example") {
        CHECK(accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    TEST_CASE("accept_key hashes the key as given") {
        // Any change to the key changes the answer; the key is not trimmed or decoded.
        CHECK(accept_key("dGhlIHNhbXBsZSBub25jZQ== ") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        CHECK(accept_key("dGhlIHNhbXBsZSBub25jZq==") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        CHECK(accept_key("").size() == 28);
    }

    TEST_CASE("valid_client_key accepts base64 of exactly 16 bytes") {
        CHECK(valid_client_key("dGhlIHNhbXBsZSBub25jZQ=="));
        CHECK(valid_client_key("AAAAAAAAAAAAAAAAAAAAAA=="));
        CHECK(valid_client_key("/////////////////////w=="));
        CHECK(valid_client_key("+/+/+/+/+/+/+/+/+/+/+w=="));
    }

    TEST_CASE("valid_client_key rejects keys of the wrong length") {
        CHECK_FALSE(valid_client_key(""));
        CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ="));   // 23 characters
        CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ===")); // 25 characters
        CHECK_FALSE(valid_client_key(" dGhlIHNhbXBsZSBub25jZQ=="));
        CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ==\r\n"));
    }

    TEST_CASE("valid_client_key rejects bad padding") {
        CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQAA")); // no padding: 18 bytes
        CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZ==="));
        CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ=A"));
        CHECK_FALSE(valid_client_key("dGhl=HNhbXBsZSBub25jZQ==")); // padding in the middle
        CHECK_FALSE(valid_client_key("========================"));
    }

    TEST_CASE("valid_client_key rejects characters outside base64") {
        CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZ!=="));
        CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25j Q=="));
        CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25j-Q==")); // base64url is not base64
        CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25j_Q=="));
        CHECK_FALSE(valid_client_key(std::string_view("dGhlIHNhbXBsZSBub25j\0Q==", 24)));
        CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25j\xC3\xA9=="));
    }

    TEST_CASE("valid_client_key rejects keys that decode to 15 or 17 bytes") {
        CHECK_FALSE(valid_client_key("AAAAAAAAAAAAAAAAAAAA"));         // 15 bytes, 20 characters
        CHECK_FALSE(valid_client_key("AAAAAAAAAAAAAAAAAAAAAAA="));     // 17 bytes, 24 characters
        CHECK_FALSE(valid_client_key("AAAAAAAAAAAAAAAAAAAAAAAA"));     // 18 bytes
        CHECK_FALSE(valid_client_key("AAAAAAAAAAAAAAAAAAAAAAAAAAA=")); // 20 bytes
    }

    TEST_CASE("make_client_key produces valid distinct keys") {
        std::set<std::string> keys;
        for (int i = 0; i < 200; ++i) {
            const std::string key = make_client_key();
            CAPTURE(key);
            CHECK(key.size() == 24);
            CHECK(valid_client_key(key));
            CHECK(accept_key(key).size() == 28);
            keys.insert(key);
        }
        CHECK(keys.size() == 200);
    }

} // TEST_SUITE
