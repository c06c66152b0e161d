// permessage-deflate (RFC 7692): offer parsing and negotiation, the codec against the RFC's
// examples, sessions compressing both ways under every context/window setting, and the
// decompression-bomb cap.
#include <coronet/ws/deflate.hpp>
#include <coronet/ws/session.hpp>
#include <coronet/ws/upgrade.hpp>

#include <coronet/core/scope.hpp>
#include <coronet/core/timer.hpp>

#include <testing/backends.hpp>
#include <testing/memory_stream.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
using coronet::testing::run_on;

namespace {

std::vector<std::byte> bytes(std::initializer_list<int> v) {
    std::vector<std::byte> out;
    for (int b : v)
        out.push_back(static_cast<std::byte>(b));
    return out;
}

std::span<const std::byte> as_span(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Deterministic bytes that do not compress (xorshift64).
std::string random_bytes(std::size_t n, std::uint64_t seed) {
    std::string out(n, '\0');
    for (auto& c : out) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        c = static_cast<char>(seed);
    }
    return out;
}

std::optional<std::vector<ws::extension>> parse(std::string_view one) {
    std::string_view v[] = {one};
    return ws::parse_extensions(v);
}

std::optional<ws::deflate_agreement> negotiate(std::string_view offer,
                                               const ws::deflate_options& o) {
    auto list = parse(offer);
    REQUIRE(list);
    return ws::negotiate_deflate(*list, o);
}

ws::deflate_options on() {
    ws::deflate_options o;
    o.enabled = true;
    return o;
}

core::result<std::optional<ws::deflate_params>> answer(std::string_view a,
                                                       const ws::deflate_options& offered) {
    std::string_view v[] = {a};
    return ws::accept_deflate_answer(v, offered);
}

} // namespace

TEST_CASE("extension offers parse with several offers and parameters with and without values") {
    std::string_view lines[] = {
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10 ,, x-foo",
        "permessage-deflate ;server_max_window_bits=\"12\"", ""};
    auto l = ws::parse_extensions(lines);
    REQUIRE(l);
    REQUIRE(l->size() == 3);
    CHECK((*l)[0].name == "permessage-deflate");
    REQUIRE((*l)[0].params.size() == 2);
    CHECK((*l)[0].params[0].name == "client_max_window_bits");
    CHECK_FALSE((*l)[0].params[0].value);
    CHECK((*l)[0].params[1].value == "10");
    CHECK((*l)[1].name == "x-foo");
    CHECK((*l)[2].params[0].value == "12"); // quoted, unquoted
}

TEST_CASE("malformed extension lists are rejected") {
    for (std::string_view bad :
         {"permessage-deflate;", "permessage-deflate; a=", "permessage-deflate; =1",
          "permessage-deflate; a=\"1", "permessage-deflate; a=\"\"", "a b",
          "permessage-deflate; a=\"x y\"", "per@message", "a; b=1 c", "\"quoted\""}) {
        CAPTURE(bad);
        CHECK_FALSE(parse(bad));
    }
}

TEST_CASE("the server takes the first acceptable offer and answers with the agreed parameters") {
    auto a = negotiate(
        "permessage-deflate; foo, permessage-deflate; server_max_window_bits=16, "
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10, permessage-deflate",
        on());
    REQUIRE(a);
    CHECK(a->params.server_max_window_bits == 10);
    CHECK(a->params.client_max_window_bits == 15);
    CHECK(a->response == "permessage-deflate; server_max_window_bits=10");

    // Chromium's offer.
    a = negotiate("permessage-deflate; client_max_window_bits", on());
    REQUIRE(a);
    CHECK(a->response == "permessage-deflate");
    CHECK(a->params == ws::deflate_params{});
}

TEST_CASE("offers with unknown repeated or invalid parameters are declined") {
    for (std::string_view bad :
         {"permessage-deflate; unknown",
          "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
          "permessage-deflate; server_no_context_takeover=1",
          "permessage-deflate; server_max_window_bits",
          "permessage-deflate; server_max_window_bits=7",
          "permessage-deflate; server_max_window_bits=08",
          "permessage-deflate; client_max_window_bits=16",
          "permessage-deflate; client_max_window_bits=1x",
          "permessage-deflate; client_max_window_bits; client_max_window_bits",
          "x-webkit-deflate-frame"}) {
        CAPTURE(bad);
        CHECK_FALSE(negotiate(bad, on()));
    }
    CHECK_FALSE(negotiate("permessage-deflate", ws::deflate_options{})); // disabled
}

TEST_CASE("the server honours and adds context takeover and window parameters") {
    auto a = negotiate("permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                       on());
    REQUIRE(a);
    CHECK(a->params.server_no_context_takeover);
    CHECK(a->params.client_no_context_takeover);
    CHECK(a->response ==
          "permessage-deflate; server_no_context_takeover; client_no_context_takeover");

    // The hub's setting: server_no_context_takeover even if not asked (RFC 7692 §7.1.1.1).
    auto hub = on();
    hub.server_no_context_takeover = true;
    hub.server_max_window_bits = 12;
    hub.client_max_window_bits = 11;
    a = negotiate("permessage-deflate; client_max_window_bits", hub);
    REQUIRE(a);
    CHECK(a->params.server_no_context_takeover);
    CHECK(a->params.server_max_window_bits == 12);
    CHECK(a->params.client_max_window_bits == 11);
    CHECK(a->response == "permessage-deflate; server_no_context_takeover; "
                         "server_max_window_bits=12; client_max_window_bits=11");

    // Without client_max_window_bits in the offer the client's window cannot be limited.
    a = negotiate("permessage-deflate", hub);
    REQUIRE(a);
    CHECK(a->params.client_max_window_bits == 15);
    CHECK(a->response.find("client_max_window_bits") == std::string::npos);

    // A client value is answered with the smaller of the two.
    a = negotiate("permessage-deflate; client_max_window_bits=9", hub);
    REQUIRE(a);
    CHECK(a->params.client_max_window_bits == 9);

    // 8 bits for the server's compressor: agreed, and that direction goes uncompressed.
    a = negotiate("permessage-deflate; server_max_window_bits=8", on());
    REQUIRE(a);
    CHECK(a->params.server_max_window_bits == 8);
    CHECK_FALSE(ws::deflater(8, false).usable());
}

TEST_CASE("the client offer and the checks on the server's answer") {
    auto o = on();
    CHECK(ws::deflate_offer(o) == "permessage-deflate; client_max_window_bits");
    o.server_no_context_takeover = true;
    o.client_no_context_takeover = true;
    o.server_max_window_bits = 10;
    o.client_max_window_bits = 12;
    CHECK(ws::deflate_offer(o) ==
          "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
          "server_max_window_bits=10; client_max_window_bits=12");

    auto plain = on();
    auto r = answer("permessage-deflate", plain);
    REQUIRE(r);
    REQUIRE(*r);
    CHECK(**r == ws::deflate_params{});
    r = answer("permessage-deflate; server_no_context_takeover; client_max_window_bits=10; "
               "server_max_window_bits=9",
               plain);
    REQUIRE(r);
    REQUIRE(*r);
    CHECK((*r)->server_no_context_takeover);
    CHECK((*r)->client_max_window_bits == 10);
    CHECK((*r)->server_max_window_bits == 9);
    r = answer("", plain); // no answer: no compression
    REQUIRE(r);
    CHECK_FALSE(*r);

    for (std::string_view bad :
         {"permessage-deflate, permessage-deflate", "x-other", "permessage-deflate; foo",
          "permessage-deflate; client_max_window_bits", // needs a value
          "permessage-deflate; server_max_window_bits=16", "permessage-deflate;"}) {
        CAPTURE(bad);
        CHECK_FALSE(answer(bad, plain));
    }
    CHECK_FALSE(answer("permessage-deflate", ws::deflate_options{})); // not offered at all
    // Offered constraints must come back.
    CHECK_FALSE(answer("permessage-deflate; server_max_window_bits=10",
                       o)); // no server_no_context_takeover
    CHECK_FALSE(
        answer("permessage-deflate; server_no_context_takeover", o)); // no server_max_window_bits
    CHECK_FALSE(answer("permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
                       o)); // > 10
    CHECK_FALSE(answer("permessage-deflate; server_no_context_takeover; server_max_window_bits=10; "
                       "client_max_window_bits=13",
                       o)); // > 12
    r = answer("permessage-deflate; server_no_context_takeover; server_max_window_bits=10", o);
    REQUIRE(r);
    REQUIRE(*r);
    CHECK((*r)->client_no_context_takeover); // we offered to reset: we do
    CHECK((*r)->client_max_window_bits == 12);
}

TEST_CASE("check_upgrade answers a deflate offer and refuses a malformed extension list") {
    std::vector<ws::field> h = {
        {"Host", "x"},
        {"Upgrade", "websocket"},
        {"Connection", "Upgrade"},
        {"Sec-WebSocket-Version", "13"},
        {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
        {"Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"}};
    ws::server_handshake_options so;
    auto v = ws::check_upgrade("GET", 1, h, so);
    CHECK(v.status == 101);
    CHECK_FALSE(v.deflate); // not enabled
    CHECK(std::none_of(v.fields.begin(), v.fields.end(),
                       [](const auto& f) { return f.first == "Sec-WebSocket-Extensions"; }));
    so.deflate.enabled = true;
    v = ws::check_upgrade("GET", 1, h, so);
    CHECK(v.status == 101);
    REQUIRE(v.deflate);
    CHECK(v.fields.back() == ws::response_field("Sec-WebSocket-Extensions", "permessage-deflate"));
    h.back().second = "permessage-deflate; a=\"";
    v = ws::check_upgrade("GET", 1, h, so);
    CHECK(v.status == 400);
}

// RFC 7692 §7.2.3.
TEST_CASE("the RFC 7692 examples inflate and the compressor reproduces them") {
    auto inflate_all = [](std::vector<std::byte> in, bool reset = true) {
        ws::inflater inf(15, reset);
        std::string out;
        auto r = inf.inflate(in, true, out, 1 << 20);
        REQUIRE(r);
        return out;
    };
    // §7.2.3.1 a message compressed in one block; §7.2.3.3 an uncompressed block; §7.2.3.4 a
    // block with BFINAL set; §7.2.3.5 two blocks.
    CHECK(inflate_all(bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})) == "Hello");
    CHECK(inflate_all(bytes({0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00})) ==
          "Hello");
    CHECK(inflate_all(bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00})) == "Hello");
    CHECK(inflate_all(bytes({0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07,
                             0x00})) == "Hello");

    // §7.2.3.2: with context takeover the second "Hello" refers back to the first.
    ws::deflater keep(15, false);
    std::vector<std::byte> first, second;
    keep.compress(as_span("Hello"), first);
    keep.compress(as_span("Hello"), second);
    CHECK(first == bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}));
    CHECK(second == bytes({0xf2, 0x00, 0x11, 0x00, 0x00}));
    ws::inflater shared(15, false);
    std::string out;
    REQUIRE(shared.inflate(first, true, out, 100));
    REQUIRE(shared.inflate(second, true, out, 100));
    CHECK(out == "HelloHello");
    // Without context takeover both are compressed alike.
    ws::deflater reset(15, true);
    std::vector<std::byte> a, b;
    reset.compress(as_span("Hello"), a);
    reset.compress(as_span("Hello"), b);
    CHECK(a == first);
    CHECK(b == first);
}

TEST_CASE("the inflater fails on bad data and on output past its cap then starts afresh") {
    ws::inflater inf(15, false);
    std::string out;
    auto r = inf.inflate(bytes({0xff, 0xff, 0xff, 0x00}), true, out, 1000);
    REQUIRE_FALSE(r);
    CHECK(r.error() == ws::errc::invalid_payload);
    std::vector<std::byte> big;
    ws::compress_message(as_span(std::string(10000, 'a')), big, 15);
    out.clear();
    r = inf.inflate(big, true, out, 5000);
    REQUIRE_FALSE(r);
    CHECK(r.error() == ws::errc::message_too_big);
    CHECK(out.size() == 5000); // stopped at the cap
    out.clear();
    REQUIRE(inf.inflate(bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), true, out, 100));
    CHECK(out == "Hello");
}

TEST_CASE("context takeover makes repeated messages smaller at every window size") {
    const std::string msg =
        R"({"type":"quote","symbol":"ACME","bid":101.25,"ask":101.5,"venue":"X"})";
    for (int bits : {9, 12, 15}) {
        CAPTURE(bits);
        ws::deflater keep(bits, false), reset(bits, true);
        std::vector<std::byte> k1, k2, r1, r2;
        keep.compress(as_span(msg), k1);
        keep.compress(as_span(msg), k2);
        reset.compress(as_span(msg), r1);
        reset.compress(as_span(msg), r2);
        CHECK(k2.size() < k1.size() / 2);
        CHECK(r2.size() == r1.size());
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions

namespace {

using namespace std::chrono_literals;

struct deflate_case {
    ws::deflate_params params;
    std::size_t server_wire = 0;
};

// A client and a server session with `p` agreed exchange `n` messages with repeated content
// both ways (text and binary, fragmented by size), and every one arrives intact. With `view`
// the server receives through receive_view() (no copy: inflated bytes where they lie).
core::task<void> round_trip(core::loop& lp, ws::deflate_params p, int n, bool view, int& received) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    ws::session_options so;
    so.agreed_deflate = p;
    so.deflate.min_size = 0;
    ws::session server(std::move(b), ws::role::server, {}, so);
    ws::session client(std::move(a), ws::role::client, {}, so);
    core::task_scope scope;
    scope.spawn([](ws::session& s, bool by_view) -> core::task<void> {
        for (;;) { // echoes until the client's close
            core::result<ws::message_view> m = make_error_code(ws::errc::closed);
            ws::message copy;
            if (by_view) {
                m = co_await s.receive_view();
            } else {
                auto r = co_await s.receive();
                if (r) {
                    copy = std::move(*r);
                    m = ws::message_view{copy.type, copy.data};
                } else {
                    m = r.error();
                }
            }
            if (!m) {
                CHECK(m.error() == ws::errc::closed);
                co_return;
            }
            auto sent = m->is_text() ? co_await s.send_text(m->data)
                                     : co_await s.send_binary(as_span(m->data));
            REQUIRE(sent);
        }
    }(server, view));
    for (int i = 0; i < n; ++i) {
        std::string body = "message " + std::to_string(i % 7) + ": " +
                           std::string(static_cast<std::size_t>(i * 37 % 900), 'z') +
                           R"({"user":"someone","text":"the same words again and again"})";
        if (i % 5 == 4)
            body = std::string(70000 + i, static_cast<char>('a' + i % 26)); // over 64 KiB
        const bool text = i % 3 != 2;
        auto sent =
            text ? co_await client.send_text(body) : co_await client.send_binary(as_span(body));
        REQUIRE(sent);
        auto back = co_await client.receive();
        REQUIRE(back);
        CHECK(back->is_text() == text);
        CHECK(back->data == body);
        if (back->data == body)
            ++received;
    }
    auto c = co_await client.close();
    CHECK(c);
    co_await scope.join();
}

} // namespace

TEST_CASE_TEMPLATE("compressed sessions round-trip under every context takeover and window setting",
                   B, CORONET_BACKENDS) {
    CORONET_REQUIRE_BACKEND(B);
    // Both directions' windows vary together, and once crossed (server 9 / client 15).
    for (bool snct : {false, true})
        for (bool cnct : {false, true})
            for (auto [sbits, cbits] :
                 {std::pair{9, 9}, std::pair{12, 12}, std::pair{15, 15}, std::pair{9, 15}}) {
                ws::deflate_params p;
                p.server_no_context_takeover = snct;
                p.client_no_context_takeover = cnct;
                p.server_max_window_bits = static_cast<std::uint8_t>(sbits);
                p.client_max_window_bits = static_cast<std::uint8_t>(cbits);
                CAPTURE(snct);
                CAPTURE(cnct);
                CAPTURE(sbits);
                CAPTURE(cbits);
                for (bool view : {false, true}) {
                    CAPTURE(view);
                    int received = 0;
                    run_on<B>(
                        [&](core::loop& lp) { return round_trip(lp, p, 50, view, received); });
                    CHECK(received == 50);
                }
            }
}

namespace {

// Raw frames from the RFC into a client session: "Hello" compressed in one frame, and in two
// fragments (RFC 7692 §7.2.3.1).
core::task<void> rfc_frames(core::loop& lp) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    ws::session_options so;
    so.agreed_deflate = ws::deflate_params{};
    ws::session client(std::move(a), ws::role::client, {}, so);
    auto frames = bytes({0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, // one frame
                         0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00, // two
                         0x89, 0x00,                                                       // a ping
                         0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}); // and again
    REQUIRE(co_await b->write_all(frames));
    for (int i = 0; i < 3; ++i) {
        auto m = co_await client.receive();
        REQUIRE(m);
        CHECK(m->is_text());
        CHECK(m->data == "Hello");
    }
}

// A text message that inflates to invalid UTF-8 closes with 1007; a broken deflate stream too.
core::task<void> bad_inflated(core::loop& lp, std::vector<std::byte> payload, std::uint16_t& seen) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    ws::session_options so;
    so.agreed_deflate = ws::deflate_params{};
    ws::session client(std::move(a), ws::role::client, {}, so);
    ws::session server(std::move(b), ws::role::server, {}, so);
    // The client sends the raw frame: masked with key 0, RSV1 + FIN + text.
    std::vector<std::byte> f = {std::byte{0xc1}, static_cast<std::byte>(0x80 | payload.size()),
                                std::byte{0},    std::byte{0},
                                std::byte{0},    std::byte{0}};
    f.insert(f.end(), payload.begin(), payload.end());
    REQUIRE(co_await client.stream().write_all(f));
    auto r = co_await server.receive();
    REQUIRE_FALSE(r);
    CHECK(r.error() == ws::errc::invalid_payload);
    auto c = co_await client.receive();
    CHECK_FALSE(c);
    seen = client.close_code();
}

} // namespace

TEST_CASE_TEMPLATE("RFC 7692 frames reach a session whole and fragmented with a ping between", B,
                   CORONET_BACKENDS) {
    CORONET_REQUIRE_BACKEND(B);
    run_on<B>([](core::loop& lp) { return rfc_frames(lp); });
}

TEST_CASE_TEMPLATE("inflated text that is not UTF-8 and broken deflate data close with 1007", B,
                   CORONET_BACKENDS) {
    CORONET_REQUIRE_BACKEND(B);
    std::vector<std::byte> bad_text;
    ws::compress_message(as_span("ok \xc3\x28 not"), bad_text, 15);
    std::uint16_t seen = 0;
    run_on<B>([&](core::loop& lp) { return bad_inflated(lp, bad_text, seen); });
    CHECK(seen == 1007);
    seen = 0;
    run_on<B>([&](core::loop& lp) {
        return bad_inflated(lp, bytes({0xff, 0xff, 0xff, 0x00}), seen);
    });
    CHECK(seen == 1007);
}

namespace {

// Peak RSS (VmHWM) in KiB; writing 5 to clear_refs resets it (Linux).
long peak_rss_kib() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmHWM:", 0) == 0)
            return std::stol(line.substr(6));
    return -1;
}

bool reset_peak_rss() {
    std::ofstream f("/proc/self/clear_refs");
    f << "5";
    f.flush();
    return static_cast<bool>(f);
}

// About 100 KiB of deflate data that inflates to `inflated` bytes of zeros, made in pieces so
// that the test itself never holds the inflated size.
std::vector<std::byte> make_bomb(std::size_t inflated) {
    z_stream z{};
    REQUIRE(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) == Z_OK);
    std::vector<unsigned char> zeros(1 << 16, 0);
    std::vector<std::byte> out;
    unsigned char buf[1 << 16];
    for (std::size_t done = 0; done < inflated;) {
        const std::size_t n = std::min(zeros.size(), inflated - done);
        done += n;
        z.next_in = zeros.data();
        z.avail_in = static_cast<uInt>(n);
        const int flush = done == inflated ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        do {
            z.next_out = buf;
            z.avail_out = sizeof buf;
            deflate(&z, flush);
            const auto* p = reinterpret_cast<const std::byte*>(buf);
            out.insert(out.end(), p, p + (sizeof buf - z.avail_out));
        } while (z.avail_out == 0);
    }
    deflateEnd(&z);
    out.resize(out.size() - 4); // the 00 00 ff ff tail
    return out;
}

core::task<void> bomb(core::loop& lp, const std::vector<std::byte>& payload,
                      std::error_code& server_error, std::uint16_t& seen) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    ws::session_options so;
    so.agreed_deflate = ws::deflate_params{};
    ws::session client(std::move(a), ws::role::client, {}, so);
    ws::session_options sso = so;
    sso.limits.max_message_size = 4 << 20; // the cap on the inflated size
    ws::session server(std::move(b), ws::role::server, {}, sso);
    // One masked binary frame with RSV1 (key 0), 64-bit length.
    std::vector<std::byte> f = {std::byte{0xc2}, std::byte{0xff}};
    for (int i = 7; i >= 0; --i)
        f.push_back(static_cast<std::byte>((payload.size() >> (8 * i)) & 0xff));
    f.insert(f.end(), 4, std::byte{0});
    f.insert(f.end(), payload.begin(), payload.end());
    core::task_scope scope;
    scope.spawn([](ws::session& c, std::vector<std::byte> bytes_) -> core::task<void> {
        auto w = co_await c.stream().write_all(bytes_);
        (void)w;
    }(client, std::move(f)));
    auto r = co_await server.receive();
    server_error = r ? std::error_code() : r.error();
    auto c = co_await client.receive();
    CHECK_FALSE(c);
    seen = client.close_code();
    co_await scope.join();
}

} // namespace

TEST_CASE("a decompression bomb closes with 1009 without the inflated size in memory") {
    const std::size_t inflated = std::size_t{200} << 20; // 200 MiB of zeros
    const auto payload = make_bomb(inflated);
    CHECK(payload.size() < 256 * 1024);
    const bool can_measure = reset_peak_rss();
    const long before = peak_rss_kib();
    std::error_code ec;
    std::uint16_t seen = 0;
    run_on<coronet::testing::epoll_backend>(
        [&](core::loop& lp) { return bomb(lp, payload, ec, seen); });
    CHECK(ec == ws::errc::message_too_big);
    CHECK(seen == 1009);
    if (can_measure && before > 0) {
        const long grown_kib = peak_rss_kib() - before;
        MESSAGE("peak RSS grew by " << grown_kib << " KiB for a " << (inflated >> 20)
                                    << " MiB bomb");
        CHECK(grown_kib < 64 * 1024); // far below the 200 MiB it inflates to
    }
}

namespace {

// Data that does not compress grows a little on the wire; the default 16 MiB limits are about
// the message, so a full-size incompressible message still gets through compressed.
core::task<void> incompressible_full_size(core::loop& lp, std::size_t& got) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    ws::session_options so;
    so.agreed_deflate = ws::deflate_params{}; // context takeover: sent compressed even if larger
    ws::session client(std::move(a), ws::role::client, {}, so);
    ws::session server(std::move(b), ws::role::server, {}, so);
    const std::string noise = random_bytes(16u << 20, 0x9e3779b97f4a7c15ull);
    core::task_scope scope;
    scope.spawn([](ws::session& c, const std::string& data) -> core::task<void> {
        auto sent = co_await c.send_binary(as_span(data));
        CHECK(sent);
    }(client, noise));
    auto m = co_await server.receive();
    REQUIRE(m);
    got = m->data.size();
    CHECK(m->data == noise);
    co_await scope.join();
}

} // namespace

TEST_CASE("an incompressible 16 MiB message fits the default limits when compressed") {
    std::size_t got = 0;
    run_on<coronet::testing::epoll_backend>(
        [&](core::loop& lp) { return incompressible_full_size(lp, got); });
    CHECK(got == (16u << 20));
}

namespace {

// Empty messages between compressed ones, with context takeover both ways.
core::task<void> empty_messages(core::loop& lp) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    ws::session_options so;
    so.agreed_deflate = ws::deflate_params{};
    so.deflate.min_size = 0;
    ws::session client(std::move(a), ws::role::client, {}, so);
    ws::session server(std::move(b), ws::role::server, {}, so);
    for (std::string_view m : {"hello hello hello", "", "hello again hello", "", ""}) {
        REQUIRE(co_await server.send_text(m));
        REQUIRE(co_await client.send_text(m));
        auto c = co_await client.receive();
        REQUIRE(c);
        CHECK(c->data == m);
        auto s = co_await server.receive();
        REQUIRE(s);
        CHECK(s->data == m);
    }
}

// A compressed send cancelled before its bytes went out (context takeover): the peer never
// saw that message, so the session must not send compressed messages any more.
core::task<void> cancelled_compressed_send(core::loop& lp, std::error_code& later) {
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    b->set_write_buffer_limit(1024);
    ws::session_options so;
    so.agreed_deflate = ws::deflate_params{};
    so.deflate.min_size = 0;
    ws::session client(std::move(a), ws::role::client, {}, so);
    ws::session server(std::move(b), ws::role::server, {}, so);
    const std::string noise = random_bytes(64 * 1024, 88172645463325252ull);
    // The client reads nothing: the send stalls on the write buffer limit and times out.
    auto stalled = co_await core::with_timeout(50ms, server.send_text(noise));
    REQUIRE_FALSE(stalled);
    auto next = co_await server.send_text("abcdefghij abcdefghij");
    REQUIRE_FALSE(next);
    later = next.error();
    (void)client;
}

} // namespace

TEST_CASE_TEMPLATE("empty messages round-trip between compressed ones", B, CORONET_BACKENDS) {
    CORONET_REQUIRE_BACKEND(B);
    run_on<B>([](core::loop& lp) { return empty_messages(lp); });
}

TEST_CASE(
    "a compressed send cut off under context takeover ends sending instead of desynchronising") {
    std::error_code later;
    run_on<coronet::testing::epoll_backend>(
        [&](core::loop& lp) { return cancelled_compressed_send(lp, later); });
    CHECK(later == ws::errc::closed);
}

TEST_CASE("an invalid zlib level or mem_level is refused when the session is made") {
    core::loop lp;
    auto [a, b] = coronet::testing::memory_stream_pair(lp);
    ws::session_options so;
    so.agreed_deflate = ws::deflate_params{};
    so.deflate.level = 12;
    CHECK_THROWS_AS(ws::session(std::move(a), ws::role::client, {}, so), std::invalid_argument);
    so.deflate.level = 1;
    so.deflate.mem_level = 0;
    CHECK_THROWS_AS(ws::session(std::move(b), ws::role::server, {}, so), std::invalid_argument);
}
