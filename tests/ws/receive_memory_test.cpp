#include <coronet/ws/session.hpp>

#include <coronet/core/buffered_reader.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/ws/deflate.hpp>
#include <coronet/ws/frame.hpp>

#include <testing/backends.hpp>
#include <testing/heap_usage.hpp>
#include <testing/memory_stream.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
namespace ct = coronet::testing;
using ct::run_on;

namespace {

constexpr std::uint32_t mask_key = 0x37fa213d;

std::string pattern(std::size_t n) {
    std::string out(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        out[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
    return out;
}

/// A client's (masked) frame whose header announces `announced` payload bytes, cut after the
/// first `payload.size()` of them.
std::vector<std::byte> client_frame(ws::opcode op, bool fin, std::uint64_t announced,
                                    const std::string& payload) {
    std::vector<std::byte> out(14 + payload.size());
    const std::size_t h = ws::encode_header(out.data(), op, fin, announced, true, mask_key);
    out.resize(h + payload.size());
    std::memcpy(out.data() + h, payload.data(), payload.size());
    ws::apply_mask(std::span<std::byte>(out).subspan(h), mask_key, 0);
    return out;
}

using coronet::testing::until_all_waiting;

/// receive() (or receive_some() until an error, when `streaming`) until the session fails.
core::task<void> receive_until_error(ws::session& s, bool streaming, std::error_code& ended) {
    for (;;) {
        if (streaming) {
            auto c = co_await s.receive_some();
            if (!c) {
                ended = c.error();
                co_return;
            }
        } else {
            auto m = co_await s.receive();
            if (!m) {
                ended = m.error();
                co_return;
            }
        }
    }
}

core::task<void> receive_into(ws::session& s, core::result<ws::message>& out) {
    out = co_await s.receive();
}

// Issue 13: a frame announcing 16 MiB followed by 5 KB cost ~1 MiB of read buffer per
// connection (and a 16 MiB reserve for the message). Memory must follow the bytes received.
core::task<void> announced_frame_holds_received_bytes(core::loop& lp, bool streaming) {
    constexpr std::size_t sessions = 8;
    constexpr std::size_t sent = 5 * 1024;
    std::vector<std::unique_ptr<ct::memory_stream>> peers;
    std::vector<ct::memory_stream*> ends;
    std::vector<std::unique_ptr<ws::session>> served;
    for (std::size_t i = 0; i < sessions; ++i) {
        auto [a, b] = ct::memory_stream_pair(lp);
        ends.push_back(b.get());
        served.push_back(std::make_unique<ws::session>(std::move(b), ws::role::server));
        peers.push_back(std::move(a));
    }
    const auto bytes = client_frame(ws::opcode::binary, true, 16u << 20, pattern(sent));
    for (auto& p : peers)
        REQUIRE(co_await p->write_all(bytes));

    const std::size_t before = ct::heap_in_use();
    core::task_scope scope;
    std::vector<std::error_code> ended(sessions);
    for (std::size_t i = 0; i < sessions; ++i)
        scope.spawn(receive_until_error(*served[i], streaming, ended[i]));
    co_await until_all_waiting(ends);
    const std::size_t after = ct::heap_in_use();
    const std::size_t grown = after > before ? after - before : 0;
    // Per session: the 5 KB (in the read buffer and, assembling, in the message), at most
    // growth_step of free room, and a few coroutine frames.
    const std::size_t per_session = 2 * sent + core::buffered_reader::growth_step + 16 * 1024;
    CAPTURE(grown / sessions);
    CHECK(grown <= sessions * per_session);

    for (auto& p : peers)
        p->close();
    co_await scope.join();
    for (const auto& e : ended)
        CHECK(e == core::errc::end_of_stream);
}

// A fragmented message of several MiB, sent raw, and one sent by a client session (compressed
// when `deflate`): both arrive whole and intact.
core::task<void> large_messages_arrive_intact(core::loop& lp, bool deflate) {
    auto [a, b] = ct::memory_stream_pair(lp);
    ct::memory_stream& raw = *a;
    ws::session_options so;
    if (deflate)
        so.agreed_deflate = ws::deflate_params{};
    ws::session server(std::move(b), ws::role::server, {}, so);

    const std::string first = pattern(5u << 20);
    const std::string second = pattern(3u << 20);
    const std::string third = pattern(4u << 20);
    if (!deflate) {
        for (const auto& f : {client_frame(ws::opcode::binary, false, first.size(), first),
                              client_frame(ws::opcode::continuation, false, second.size(), second),
                              client_frame(ws::opcode::continuation, true, third.size(), third)})
            REQUIRE(co_await raw.write_all(f));
        auto m = co_await server.receive();
        REQUIRE(m);
        CHECK_FALSE(m->is_text());
        CHECK(m->data.size() == first.size() + second.size() + third.size());
        CHECK(m->data == first + second + third);
    }

    // One 12 MiB message from a client session over the same stream.
    ws::session client(std::move(a), ws::role::client, {}, so);
    const std::string big = first + second + third;
    core::task_scope scope;
    core::result<ws::message> got = make_error_code(core::errc::not_open);
    scope.spawn(receive_into(server, got));
    auto sent = co_await client.send_text(big);
    REQUIRE(sent);
    co_await scope.join();
    REQUIRE(got);
    CHECK(got->is_text());
    CHECK(got->data.size() == big.size());
    CHECK(got->data == big);
}

// The same over a real loopback socket (port 0).
core::task<void> large_message_over_tcp(core::loop& lp) {
    auto l = ct::listen_local(lp);
    auto c = co_await core::tcp_stream::connect(ct::endpoint_of(l));
    REQUIRE(c);
    auto acc = co_await l.accept();
    REQUIRE(acc);
    ws::session client(std::make_unique<core::tcp_stream>(std::move(*c)), ws::role::client);
    ws::session server(std::make_unique<core::tcp_stream>(std::move(*acc)), ws::role::server);
    const std::string big = pattern(12u << 20);
    core::task_scope scope;
    core::result<ws::message> got = make_error_code(core::errc::not_open);
    scope.spawn(receive_into(server, got));
    auto sent = co_await client.send_binary(std::as_bytes(std::span(big)));
    REQUIRE(sent);
    co_await scope.join();
    REQUIRE(got);
    CHECK(got->data == big);
}

// Issue 14: receive_some() handed a compressed message over as one chunk, the whole inflated
// message. A 1 MiB message that compresses to a few KiB now comes in chunks of at most
// session::max_inflated_chunk, and the session holds about one chunk, not the message.
core::task<void> compressed_message_streams_in_bounded_chunks(core::loop& lp) {
    auto [a, b] = ct::memory_stream_pair(lp);
    ws::session_options so;
    so.agreed_deflate = ws::deflate_params{};
    ws::session client(std::move(a), ws::role::client, {}, so);
    ws::session server(std::move(b), ws::role::server, {}, so);
    std::string big;
    while (big.size() < (1u << 20))
        big += "the quick brown fox jumps over the lazy dog ";
    big.resize(1u << 20);
    REQUIRE(co_await client.send_text(big)); // one frame of a few KiB, buffered in the stream

    const std::size_t before = ct::heap_in_use();
    std::size_t peak = before;
    std::size_t received = 0;
    std::size_t chunks = 0;
    for (bool last = false; !last;) {
        auto c = co_await server.receive_some();
        REQUIRE(c);
        CHECK(c->type == ws::opcode::text);
        CHECK(c->first == (chunks == 0));
        CHECK(c->data.size() <= ws::session::max_inflated_chunk);
        // The concatenation is the message, checked piece by piece (holding it would be 1 MiB).
        REQUIRE(c->data.size() <= big.size() - received);
        CHECK(std::string_view(big).substr(received, c->data.size()) == c->data);
        received += c->data.size();
        ++chunks;
        last = c->last;
        peak = std::max(peak, ct::heap_in_use());
    }
    CHECK(received == big.size());
    CHECK(chunks >= big.size() / ws::session::max_inflated_chunk);
    // One chunk (its buffer may have grown to twice its size), the inflater's state (~40 KiB
    // at 15 bits), the read buffer and a few coroutine frames: far below the 1 MiB message.
    const std::size_t grown = peak - before;
    CAPTURE(grown);
    CHECK(grown <= 384 * 1024);
}

} // namespace

TEST_SUITE("ws.session") {

    TEST_CASE_TEMPLATE("a 1 MiB compressed message streams in bounded chunks with bounded memory",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return compressed_message_streams_in_bounded_chunks(lp); });
    }

    TEST_CASE_TEMPLATE("sessions sent 5 KB of a frame announcing 16 MiB hold memory for the 5 KB",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        bool streaming = false;
        SUBCASE("receive") {}
        SUBCASE("receive_some") {
            streaming = true;
        }
        run_on<B>([streaming](core::loop& lp) {
            return announced_frame_holds_received_bytes(lp, streaming);
        });
    }

    TEST_CASE_TEMPLATE("a fragmented or compressed 12 MiB message still arrives intact", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        bool deflate = false;
        SUBCASE("uncompressed") {}
        SUBCASE("permessage-deflate") {
            deflate = true;
        }
        run_on<B>([deflate](core::loop& lp) { return large_messages_arrive_intact(lp, deflate); });
    }

    TEST_CASE_TEMPLATE("a 12 MiB message arrives intact over a loopback socket", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return large_message_over_tcp(lp); });
    }

} // TEST_SUITE
