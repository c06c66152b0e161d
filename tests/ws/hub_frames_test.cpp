#include <coronet/ws/hub.hpp>

#include "hub_connection_impl.hpp" // detail::frame_ring

#include <doctest/doctest.h>

#include <cstddef>
#include <string>
#include <system_error>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;

TEST_SUITE("ws.hub") {

    TEST_CASE("a frame ring keeps frames in order while it wraps and grows") {
        ws::detail::frame_ring ring;
        CHECK(ring.empty());
        std::size_t next_in = 1;
        std::size_t next_out = 1;
        for (int round = 0; round < 5; ++round) {
            for (int i = 0; i < 7; ++i)
                ring.push_back(core::shared_buffer::make(next_in++));
            for (int i = 0; i < 4; ++i)
                CHECK(ring.pop_front() == next_out++);
        }
        CHECK(ring.size() == next_in - next_out);
        CHECK(ring[0].size() == next_out);
        CHECK(ring.pop_back() == next_in - 1);
        while (!ring.empty())
            CHECK(ring.pop_front() == next_out++);
    }

    TEST_CASE("a prepared message is one unmasked frame with its header") {
        const auto small = ws::prepared_message::text("hi");
        REQUIRE(small.frame().size() == 4);
        const auto* p = reinterpret_cast<const unsigned char*>(small.frame().data());
        CHECK(p[0] == 0x81);
        CHECK(p[1] == 0x02);
        CHECK(p[2] == 'h');
        std::vector<std::byte> big(200, std::byte{7});
        const auto bin = ws::prepared_message::binary(big);
        CHECK(bin.type() == ws::opcode::binary);
        CHECK(bin.payload_size() == 200);
        REQUIRE(bin.frame().size() == 204);
        const auto* q = reinterpret_cast<const unsigned char*>(bin.frame().data());
        CHECK(q[0] == 0x82);
        CHECK(q[1] == 126);
        CHECK(((q[2] << 8) | q[3]) == 200);
        const auto empty = ws::prepared_message::text("");
        CHECK(empty.frame().size() == 2);
        const auto copy = small;
        CHECK(copy.frame().data() == small.frame().data());
    }

    TEST_CASE("an empty hub has no rooms and accepts connections") {
        ws::hub hub;
        CHECK(hub.can_accept());
        CHECK(hub.size() == 0);
        CHECK(hub.find(1) == nullptr);
        CHECK(hub.room_size("x") == 0);
        CHECK(hub.broadcast(ws::prepared_message::text("nobody")) == 0);
        CHECK(hub.stats().broadcasts == 1);
        hub.sweep();
        CHECK(std::string(ws::hub_category().name()) == "coronet.ws.hub");
        std::error_code ec = ws::hub_errc::full;
        CHECK(ec.category() == ws::hub_category());
    }
} // TEST_SUITE
