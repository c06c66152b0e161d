#include <coronet/ws/json.hpp>

#include <coronet/core/scope.hpp>

#include <testing/backends.hpp>
#include <testing/memory_stream.hpp>
#include <testing/run_bounded.hpp>

#include "session_pair.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
using coronet::testing::run_on;
using coronet::testing::session_pair;
using nlohmann::json;

namespace {

struct order {
    std::string item;
    int quantity = 0;
};

void to_json(json& j, const order& o) {
    j = json{{"item", o.item}, {"quantity", o.quantity}};
}

// Refuses a non-positive quantity the way a user's validation would: with an exception.
void from_json(const json& j, order& o) {
    j.at("item").get_to(o.item);
    j.at("quantity").get_to(o.quantity);
    if (o.quantity <= 0)
        throw std::invalid_argument("quantity must be positive");
}

/// A client and a server session over an in-memory connection.
session_pair memory_sessions(core::loop& lp) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    return {std::make_unique<ws::session>(std::move(a), ws::role::client),
            std::make_unique<ws::session>(std::move(b), ws::role::server)};
}

std::string nested_arrays(std::size_t depth) {
    return std::string(depth, '[') + std::string(depth, ']');
}

core::task<void> round_trip(core::loop& lp) {
    auto p = memory_sessions(lp);
    const json sent = {{"text", "h\xC3\xA9llo \xE2\x82\xAC"},
                       {"numbers", {1, -2, 3.5, 1e300}},
                       {"nested", {{"empty", json::object()}, {"null", nullptr}, {"yes", true}}}};
    auto s = co_await ws::send_json(*p.client, sent);
    REQUIRE(s);
    auto got = co_await ws::receive_json(*p.server);
    REQUIRE(got);
    CHECK(*got == sent);
    // And the other way, as a server sends it.
    // g++ 12 cannot keep an initializer list alive across a co_await ("array used as
    // initializer"): the value is built first (docs/ws.md "JSON").
    const json reply = json::array({"back", 42});
    s = co_await ws::send_json(*p.server, reply);
    REQUIRE(s);
    auto back = co_await ws::receive_json(*p.client);
    REQUIRE(back);
    CHECK(*back == reply);
}

core::task<void> malformed_then_valid(core::loop& lp) {
    auto p = memory_sessions(lp);
    REQUIRE(co_await p.client->send_text("{\"unterminated\": [1, 2"));
    REQUIRE(co_await p.client->send_text("{\"ok\": true}"));
    auto bad = co_await ws::receive_json(*p.server);
    REQUIRE_FALSE(bad);
    CHECK(bad.error() == ws::json_errc::malformed);
    CHECK(p.server->is_open());
    auto good = co_await ws::receive_json(*p.server);
    REQUIRE(good);
    CHECK(*good == json{{"ok", true}});
}

core::task<void> binary_is_not_text(core::loop& lp) {
    auto p = memory_sessions(lp);
    const std::string payload = "{\"looks\": \"like json\"}";
    REQUIRE(co_await p.client->send_binary(std::as_bytes(std::span(payload))));
    REQUIRE(co_await p.client->send_text("7"));
    auto bin = co_await ws::receive_json(*p.server);
    REQUIRE_FALSE(bin);
    CHECK(bin.error() == ws::json_errc::not_text);
    auto next = co_await ws::receive_json(*p.server);
    REQUIRE(next);
    CHECK(*next == 7);
}

core::task<void> nesting_bomb(core::loop& lp) {
    auto p = memory_sessions(lp);
    REQUIRE(co_await p.client->send_text(std::string(100'000, '[')));
    REQUIRE(co_await p.client->send_text(nested_arrays(100'000)));
    REQUIRE(co_await p.client->send_text(nested_arrays(ws::json_max_depth)));
    auto open_only = co_await ws::receive_json(*p.server);
    REQUIRE_FALSE(open_only);
    CHECK(open_only.error() == ws::json_errc::too_deep);
    auto balanced = co_await ws::receive_json(*p.server);
    REQUIRE_FALSE(balanced);
    CHECK(balanced.error() == ws::json_errc::too_deep);
    auto at_limit = co_await ws::receive_json(*p.server);
    REQUIRE(at_limit);
    CHECK(at_limit->dump() == nested_arrays(ws::json_max_depth));
}

core::task<void> typed_round_trip(core::loop& lp) {
    auto p = memory_sessions(lp);
    // Named first: g++ 12 destroys a braced aggregate temporary in a co_await expression twice
    // (docs/core.md, "Compiler pitfalls").
    const order tea{"tea", 3};
    REQUIRE(co_await ws::send_json(*p.client, tea));
    auto got = co_await ws::receive_json<order>(*p.server);
    REQUIRE(got);
    CHECK(got->item == "tea");
    CHECK(got->quantity == 3);
}

core::task<void> typed_failures(core::loop& lp) {
    auto p = memory_sessions(lp);
    REQUIRE(co_await p.client->send_text("{\"item\": \"tea\"}"));                   // no quantity
    REQUIRE(co_await p.client->send_text("{\"item\": 5, \"quantity\": 1}"));        // wrong type
    REQUIRE(co_await p.client->send_text("{\"item\": \"tea\", \"quantity\": -1}")); // refused
    REQUIRE(co_await p.client->send_text("{\"item\": \"tea\", \"quantity\": 2"));   // malformed
    REQUIRE(co_await p.client->send_text("{\"item\": \"cake\", \"quantity\": 2}")); // fine
    for (int i = 0; i < 3; ++i) {
        auto r = co_await ws::receive_json<order>(*p.server);
        REQUIRE_FALSE(r);
        CHECK(r.error() == ws::json_errc::conversion_failed);
    }
    auto malformed = co_await ws::receive_json<order>(*p.server);
    REQUIRE_FALSE(malformed);
    CHECK(malformed.error() == ws::json_errc::malformed);
    auto fine = co_await ws::receive_json<order>(*p.server);
    REQUIRE(fine);
    CHECK(fine->item == "cake");
}

core::task<void> invalid_utf8_replaced(core::loop& lp) {
    auto p = memory_sessions(lp);
    // A json string may hold any bytes; dump's default handler would throw type_error 316.
    const json bad = {{"name", std::string("a\xFF"
                                           "b")}};
    REQUIRE(co_await ws::send_json(*p.client, bad));
    // The session checks UTF-8 on receipt (1007 otherwise): the message is valid text.
    auto got = co_await ws::receive_json(*p.server);
    REQUIRE(got);
    CHECK((*got)["name"] == "a\xEF\xBF\xBD"
                            "b");
}

// The hub side: a typed message in, its echo out, a malformed one, then a broadcast.
core::task<void> hub_json_body(ws::hub_connection& c) {
    auto hello = co_await ws::receive_json<order>(c);
    CHECK(hello);
    if (!hello)
        co_return;
    const json echo = {{"echo", *hello}};
    auto sent = co_await ws::send_json(c, echo);
    CHECK(sent);
    auto bad = co_await ws::receive_json(c);
    CHECK(bad.error() == ws::json_errc::malformed);
    CHECK(c.owner().broadcast(ws::prepare_json(json{{"to", "all"}})) == 1);
}

core::task<void> hub_connection_json(core::loop& lp) {
    auto p = memory_sessions(lp);
    ws::hub hub(ws::hub_options{});
    core::task_scope scope;
    scope.spawn(
        hub.serve(*p.server, ws::handshake_info("/"),
                  [](ws::hub_connection& c, ws::handshake_info&) { return hub_json_body(c); }));
    const order bread{"bread", 1};
    REQUIRE(co_await ws::send_json(*p.client, bread));
    REQUIRE(co_await p.client->send_text("not json"));
    auto echo = co_await ws::receive_json(*p.client);
    REQUIRE(echo);
    CHECK(*echo == json{{"echo", {{"item", "bread"}, {"quantity", 1}}}});
    auto all = co_await ws::receive_json(*p.client);
    REQUIRE(all);
    CHECK(*all == json{{"to", "all"}});
    // The body returned: the hub closes the connection with 1000.
    auto end = co_await ws::receive_json(*p.client);
    REQUIRE_FALSE(end);
    CHECK(end.error() == ws::errc::closed);
    co_await scope.join();
    CHECK(p.client->close_code() == 1000);
}

} // namespace

TEST_SUITE("ws.json") {
    TEST_CASE("parse_json turns every kind of malformed text into an error value") {
        for (const char* text :
             {"", " ", "{", "[1,]", "{\"a\" 1}", "1 2", "tru", "\"unterminated", "/* c */ 1",
              "\"\xFF\"", "1e999", "{\"a\":1}}", "'single'", "NaN", "01"}) {
            CAPTURE(text);
            auto r = ws::parse_json(text);
            REQUIRE_FALSE(r);
            CHECK(r.error() == ws::json_errc::malformed);
        }
    }

    TEST_CASE("parse_json accepts any JSON value at the top level") {
        CHECK(ws::parse_json("0").value() == 0);
        CHECK(ws::parse_json(" \"x\" ").value() == "x");
        CHECK(ws::parse_json("null").value().is_null());
        CHECK(ws::parse_json("{\"a\": [1, {\"b\": 2}]}").value()["a"][1]["b"] == 2);
    }

    TEST_CASE("the depth limit counts brackets only outside strings") {
        const std::size_t limit = ws::json_max_depth;
        CHECK(ws::parse_json(nested_arrays(limit)));
        CHECK(ws::parse_json(nested_arrays(limit + 1)).error() == ws::json_errc::too_deep);
        CHECK(ws::parse_json(std::string(limit + 1, '{')).error() == ws::json_errc::too_deep);
        // Many brackets inside a string (and an escaped quote before them) are just text.
        const std::string in_string = "[\"\\\"" + std::string(1000, '[') + "\"]";
        auto r = ws::parse_json(in_string);
        REQUIRE(r);
        CHECK((*r)[0].get<std::string>().size() == 1001);
        // Siblings do not add up: depth is the deepest nesting, not the number of brackets.
        std::string siblings = "[";
        for (std::size_t i = 0; i < 1000; ++i)
            siblings += "[1],";
        siblings += "[]]";
        CHECK(ws::parse_json(siblings));
        // The limit is the caller's to choose.
        CHECK(ws::parse_json("[[1]]", 1).error() == ws::json_errc::too_deep);
        CHECK(ws::parse_json("[[1]]", 2));
        CHECK(ws::parse_json("1", 0));
    }

    TEST_CASE("a binary message given to parse_json is not_text") {
        ws::message m{ws::opcode::binary, "{}"};
        CHECK(ws::parse_json(m).error() == ws::json_errc::not_text);
        m.type = ws::opcode::text;
        CHECK(ws::parse_json(m).value() == json::object());
    }

    TEST_CASE("typed parsing reports conversion failures as error values") {
        auto ok = ws::parse_json<order>("{\"item\": \"jam\", \"quantity\": 4}");
        REQUIRE(ok);
        CHECK(ok->quantity == 4);
        CHECK(ws::parse_json<order>("[]").error() == ws::json_errc::conversion_failed);
        CHECK(ws::parse_json<int>("\"seven\"").error() == ws::json_errc::conversion_failed);
        CHECK(ws::parse_json<std::vector<int>>("[1, \"x\"]").error() ==
              ws::json_errc::conversion_failed);
        CHECK(ws::parse_json<order>("{").error() == ws::json_errc::malformed);
        CHECK(ws::convert_json<order>(json{{"item", "x"}, {"quantity", 0}}).error() ==
              ws::json_errc::conversion_failed);
    }

    TEST_CASE("json errors have their own category and messages") {
        const std::error_code ec = ws::json_errc::too_deep;
        CHECK(std::string(ec.category().name()) == "coronet.ws.json");
        CHECK(ec.message() == "JSON nested too deeply");
        CHECK(ec != ws::errc::protocol_error);
        CHECK(std::error_code(ws::json_errc::malformed).message() == "malformed JSON");
    }

    TEST_CASE("dump_json is compact UTF-8 and replaces invalid bytes") {
        CHECK(ws::dump_json(json{{"a", {1, 2}}}) == "{\"a\":[1,2]}");
        CHECK(ws::dump_json(json("\xC3\xA9")) == "\"\xC3\xA9\"");
        CHECK(ws::dump_json(json(std::string("\xC3"))) == "\"\xEF\xBF\xBD\"");
        const auto pm = ws::prepare_json(json{{"k", "v"}});
        CHECK(pm.type() == ws::opcode::text);
        CHECK(pm.payload_size() == std::string("{\"k\":\"v\"}").size());
    }

    TEST_CASE_TEMPLATE("a JSON value sent with send_json arrives equal through receive_json", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return round_trip(lp); });
    }

    TEST_CASE_TEMPLATE("malformed JSON is an error value and the next message is still received", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return malformed_then_valid(lp); });
    }

    TEST_CASE_TEMPLATE("a binary message is not JSON text and the session goes on", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return binary_is_not_text(lp); });
    }

    TEST_CASE_TEMPLATE("a 100000-deep nesting bomb is an error value and not a stack overflow", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return nesting_bomb(lp); });
    }

    TEST_CASE_TEMPLATE("a struct round trips through to_json and receive_json<T>", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return typed_round_trip(lp); });
    }

    TEST_CASE_TEMPLATE("receive_json<T> reports conversion failures and goes on", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return typed_failures(lp); });
    }

    TEST_CASE_TEMPLATE("a string with invalid UTF-8 is sent with U+FFFD instead of throwing", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return invalid_utf8_replaced(lp); });
    }

    TEST_CASE_TEMPLATE("a hub connection receives and sends JSON and broadcasts a prepared one", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return hub_connection_json(lp); });
    }
}
