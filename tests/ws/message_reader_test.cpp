// The session's sans-I/O parts (ws/src): the message reader fed the way a connection feeds it
// (split at every byte, compressed messages in small chunks, control frames between fragments),
// and the keepalive bookkeeping on a made-up clock.
#include "message_reader.hpp"

#include "keepalive.hpp"

#include "frame_feeder.hpp"

#include <coronet/ws/deflate.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace ws = coronet::ws;
namespace wt = coronet::ws::testing;
using reader = ws::detail::message_reader;
using kind = reader::kind;

namespace {

/// What came out of a reader: each message whole (chunks checked on the way), control events
/// in order, and the error it stopped on.
struct transcript {
    std::vector<std::string> events; ///< "text:...", "binary:...", "ping:...", "close:1000:..."
    std::error_code ec;
    std::size_t chunks = 0;
    std::size_t largest_chunk = 0;
    bool operator==(const transcript& o) const { return events == o.events && ec == o.ec; }
};

std::ostream& operator<<(std::ostream& os, const transcript& t) {
    os << "transcript{";
    for (const auto& e : t.events)
        os << ' ' << e.substr(0, 40) << (e.size() > 40 ? "..." : "") << " (" << e.size() << ")";
    return os << " ec " << t.ec.message() << "}";
}

/// Feeds slices like a session: appended after the unconsumed bytes, next() called until it
/// needs more, `consumed` dropped after every call.
class driver {
public:
    driver(ws::role r, ws::frame_limits limits, std::optional<ws::deflate_params> agreed,
           std::size_t max_chunk)
        : reader_(r, limits, agreed, max_chunk), max_chunk_(max_chunk),
          compressed_(agreed.has_value()) {}

    reader& get() { return reader_; }

    void feed(std::span<const std::byte> slice) {
        if (out_.ec)
            return;
        wt::append(pending_, slice);
        for (;;) {
            const auto e = reader_.next(pending_);
            REQUIRE(e.consumed <= pending_.size());
            const bool more = take(e);
            pending_.erase(pending_.begin(),
                           pending_.begin() + static_cast<std::ptrdiff_t>(e.consumed));
            if (!more)
                return;
        }
    }

    void feed_split(const wt::bytes& all, std::size_t at) {
        const std::span<const std::byte> s(all);
        feed(s.first(at));
        feed(s.subspan(at));
    }

    transcript result() const { return out_; }

private:
    // Records one event; false when the driver must read more (or stop).
    bool take(const reader::event& e) {
        switch (e.what) {
        case kind::need_more:
            return false;
        case kind::error:
            out_.ec = e.ec;
            return false;
        case kind::data:
            CHECK(e.chunk.first == !in_message_);
            if (compressed_)
                CHECK(e.chunk.data.size() <= max_chunk_);
            ++out_.chunks;
            out_.largest_chunk = std::max(out_.largest_chunk, e.chunk.data.size());
            if (e.chunk.first)
                current_ = e.chunk.type == ws::opcode::text ? "text:" : "binary:";
            current_.append(e.chunk.data);
            in_message_ = !e.chunk.last;
            if (e.chunk.last)
                out_.events.push_back(current_);
            return true;
        case kind::ping:
            out_.events.push_back("ping:" + std::string(e.payload));
            return true;
        case kind::pong:
            out_.events.push_back("pong:" + std::string(e.payload));
            return true;
        case kind::auto_response:
            out_.events.push_back("auto:" + std::string(e.payload));
            reader_.count_auto_response();
            return true;
        case kind::close:
            out_.events.push_back("close:" + std::to_string(e.close_code) + ":" +
                                  std::string(e.payload));
            return true;
        }
        return false;
    }

    reader reader_;
    std::size_t max_chunk_;
    bool compressed_;
    wt::bytes pending_;
    transcript out_;
    std::string current_;
    bool in_message_ = false;
};

transcript read_whole(const wt::bytes& stream, std::optional<ws::deflate_params> agreed,
                      std::size_t max_chunk, ws::frame_limits limits = {}) {
    driver d(ws::role::server, limits, agreed, max_chunk);
    d.feed(stream);
    return d.result();
}

std::string deflated(std::string_view s) {
    std::vector<std::byte> out;
    ws::compress_message(std::as_bytes(std::span(s)), out, 15);
    return {reinterpret_cast<const char*>(out.data()), out.size()};
}

// Compressible text with multi-byte characters, so that chunks cut code points apart.
std::string sample_text(std::size_t n) {
    std::string out;
    const char* words[] = {"héllo ", "wörld ", "€uro ", "𝄞 clef ", "plain "};
    for (std::size_t i = 0; out.size() < n; ++i)
        out += words[(i * 7 + i / 3) % 5];
    return out;
}

/// A client's compressed message: its deflate data cut into `fragments` frames (RSV1 on the
/// first), with a ping after the first fragment.
wt::bytes compressed_message(ws::opcode op, const std::string& text, std::size_t fragments) {
    const std::string z = deflated(text);
    wt::bytes out;
    const std::size_t step = (z.size() + fragments - 1) / fragments;
    for (std::size_t i = 0, at = 0; i < fragments; ++i, at += step) {
        const std::string_view piece = std::string_view(z).substr(std::min(at, z.size()), step);
        const auto this_op = i == 0 ? op : ws::opcode::continuation;
        wt::append(out, wt::client_frame(this_op, i + 1 == fragments, piece, 0x37fa213d, i == 0));
        if (i == 0 && fragments > 1)
            wt::append(out, wt::client_frame(ws::opcode::ping, true, "between"));
    }
    return out;
}

} // namespace

TEST_SUITE("ws.message_reader") {

    TEST_CASE("a compressed message split at every byte arrives whole in chunks within the bound") {
        const std::string text = sample_text(3000);
        const std::size_t bound = 7;
        for (std::size_t fragments : {1u, 3u}) {
            CAPTURE(fragments);
            const wt::bytes stream = compressed_message(ws::opcode::text, text, fragments);
            const auto whole = read_whole(stream, ws::deflate_params{}, bound);
            std::vector<std::string> expected;
            if (fragments > 1)
                expected.push_back("ping:between");
            expected.push_back("text:" + text);
            CHECK(whole.events == expected);
            CHECK_FALSE(whole.ec);
            CHECK(whole.largest_chunk == bound);
            CHECK(whole.chunks >= text.size() / bound);
            for (std::size_t at = 0; at <= stream.size(); ++at) {
                CAPTURE(at);
                driver d(ws::role::server, {}, ws::deflate_params{}, bound);
                d.feed_split(stream, at);
                REQUIRE(d.result() == whole);
            }
            driver bytewise(ws::role::server, {}, ws::deflate_params{}, bound);
            for (std::size_t i = 0; i < stream.size(); ++i)
                bytewise.feed(std::span<const std::byte>(stream).subspan(i, 1));
            CHECK(bytewise.result() == whole);
        }
    }

    TEST_CASE("a small frame that inflates to 1 MiB comes in chunks of the default bound") {
        const std::string big(1u << 20, 'z');
        const wt::bytes stream = compressed_message(ws::opcode::binary, big, 1);
        CHECK(stream.size() < 4096);
        const auto t = read_whole(stream, ws::deflate_params{}, ws::session::max_inflated_chunk);
        REQUIRE(t.events.size() == 1);
        CHECK(t.events[0] == "binary:" + big);
        CHECK(t.largest_chunk == ws::session::max_inflated_chunk);
        CHECK(t.chunks >= big.size() / ws::session::max_inflated_chunk);
    }

    TEST_CASE("inflated text is UTF-8 checked across chunks that cut code points apart") {
        // One byte per chunk: every multi-byte character spans chunks and still passes.
        const std::string good = sample_text(200);
        const auto ok =
            read_whole(compressed_message(ws::opcode::text, good, 2), ws::deflate_params{}, 1);
        CHECK_FALSE(ok.ec);
        CHECK(ok.events.back() == "text:" + good);
        // An invalid sequence, or one cut off at the end of the message, closes with 1007.
        for (const auto& bad : {std::string("ok \xc3\x28 not"), good + "\xe2\x82"}) {
            const auto t =
                read_whole(compressed_message(ws::opcode::text, bad, 2), ws::deflate_params{}, 1);
            CHECK(t.ec == ws::errc::invalid_payload);
            CHECK(ws::close_code_of(t.ec) == 1007);
        }
        // Binary messages are not text.
        const auto bin = read_whole(compressed_message(ws::opcode::binary, "\xc3\x28", 1),
                                    ws::deflate_params{}, 1);
        CHECK_FALSE(bin.ec);
    }

    TEST_CASE("an inflated size past max_message_size fails with 1009 holding at most a chunk") {
        ws::frame_limits limits;
        limits.max_message_size = 1000;
        const wt::bytes stream = compressed_message(ws::opcode::binary, std::string(100000, 0), 1);
        for (std::size_t bound : {std::size_t{64}, std::size_t{1000}, std::size_t{65536}}) {
            CAPTURE(bound);
            driver d(ws::role::server, limits, ws::deflate_params{}, bound);
            d.feed(stream);
            const auto t = d.result();
            CHECK(t.ec == ws::errc::message_too_big);
            CHECK(t.largest_chunk <= std::min<std::size_t>(bound, 1000));
        }
        // Exactly at the limit passes.
        const auto at_limit =
            read_whole(compressed_message(ws::opcode::binary, std::string(1000, 'a'), 1),
                       ws::deflate_params{}, 100, limits);
        CHECK_FALSE(at_limit.ec);
        CHECK(at_limit.events.size() == 1);
    }

    TEST_CASE("pings, pongs and close frames become events with their payload, code and reason") {
        wt::bytes stream;
        wt::append(stream, wt::client_frame(ws::opcode::text, false, "Hel"));
        wt::append(stream, wt::client_frame(ws::opcode::ping, true, "are you there"));
        wt::append(stream, wt::client_frame(ws::opcode::pong, true, "yes"));
        wt::append(stream, wt::client_frame(ws::opcode::continuation, true, "lo"));
        wt::append(stream, wt::client_frame(ws::opcode::close, true,
                                            "\x0f\xa1"
                                            "bye"));
        const auto t = read_whole(stream, std::nullopt, ws::session::max_inflated_chunk);
        CHECK(t.events == std::vector<std::string>{"ping:are you there", "pong:yes", "text:Hello",
                                                   "close:4001:bye"});
        const auto bare =
            read_whole(wt::client_frame(ws::opcode::close, true, ""), std::nullopt, 64);
        CHECK(bare.events == std::vector<std::string>{"close:1005:"});
    }

    TEST_CASE("protocol errors become error events with their close code") {
        // An unmasked frame to a server (RFC 6455 §5.1), RSV1 without permessage-deflate.
        const auto unmasked =
            read_whole(wt::server_frame(ws::opcode::text, true, "hi"), std::nullopt, 64);
        CHECK(unmasked.ec == ws::errc::protocol_error);
        const auto rsv1 =
            read_whole(wt::client_frame(ws::opcode::text, true, "hi", 1, true), std::nullopt, 64);
        CHECK(rsv1.ec == ws::errc::protocol_error);
        // Broken deflate data.
        const auto broken =
            read_whole(wt::client_frame(ws::opcode::binary, true, "\xff\xff\xff\x00", 1, true),
                       ws::deflate_params{}, 64);
        CHECK(broken.ec == ws::errc::invalid_payload);
    }

    TEST_CASE("an auto-response matches a one-frame text message equal to its request only") {
        for (bool compressed : {false, true}) {
            CAPTURE(compressed);
            std::optional<ws::deflate_params> agreed;
            if (compressed)
                agreed = ws::deflate_params{};
            auto message = [&](std::string_view text) {
                if (compressed)
                    return wt::client_frame(ws::opcode::text, true, deflated(text), 1, true);
                return wt::client_frame(ws::opcode::text, true, text);
            };
            driver d(ws::role::server, {}, agreed, 64);
            d.get().set_auto_response("ping", "pong", ws::opcode::text);
            d.feed(message("ping"));
            d.feed(message("pingx"));
            d.feed(wt::client_frame(ws::opcode::binary, true, "ping"));
            wt::bytes split = wt::client_frame(ws::opcode::text, false, "pi");
            wt::append(split, wt::client_frame(ws::opcode::continuation, true, "ng"));
            if (!compressed)
                d.feed(split);
            d.get().clear_auto_response();
            d.feed(message("ping"));
            std::vector<std::string> expected = {"auto:pong", "text:pingx", "binary:ping"};
            if (!compressed)
                expected.push_back("text:ping");
            expected.push_back("text:ping");
            CHECK(d.result().events == expected);
            CHECK(d.get().auto_responses() == 1);
        }
    }

} // TEST_SUITE

TEST_SUITE("ws.keepalive") {

    using namespace std::chrono_literals;
    using keepalive = ws::detail::keepalive;
    using due = keepalive::due;

    TEST_CASE("keepalive pings after the interval, gives up after the pong timeout, and any "
              "traffic answers it") {
        const auto t0 = coronet::core::clock::time_point{} + 1h;
        keepalive k(30ms, 100ms, 0ms, t0);
        CHECK(k.timed());
        CHECK_FALSE(k.watches_messages());
        CHECK(k.deadline() == t0 + 30ms);
        CHECK(k.check(t0 + 29ms) == due::nothing);
        CHECK(k.check(t0 + 30ms) == due::send_ping);
        // Outstanding: the next deadline is the pong's, and no second ping goes out.
        CHECK(k.deadline() == t0 + 130ms);
        CHECK(k.check(t0 + 129ms) == due::nothing);
        CHECK(k.check(t0 + 130ms) == due::pong_overdue);
        // Bytes from the peer answer the ping and restart the interval.
        k.heard(t0 + 131ms);
        CHECK(k.last_heard() == t0 + 131ms);
        CHECK(k.deadline() == t0 + 161ms);
        CHECK(k.check(t0 + 160ms) == due::nothing);
        CHECK(k.check(t0 + 161ms) == due::send_ping);
    }

    TEST_CASE("the idle timeout counts messages either way and wins over a due ping") {
        const auto t0 = coronet::core::clock::time_point{} + 1h;
        keepalive k(0ms, 10s, 50ms, t0);
        CHECK(k.timed());
        CHECK(k.watches_messages());
        CHECK(k.deadline() == t0 + 50ms);
        k.heard(t0 + 40ms); // bytes are not messages
        CHECK(k.check(t0 + 50ms) == due::idle);
        k.message_passed(t0 + 45ms);
        CHECK(k.deadline() == t0 + 95ms);
        CHECK(k.check(t0 + 94ms) == due::nothing);

        keepalive both(10ms, 10s, 50ms, t0);
        CHECK(both.check(t0 + 60ms) == due::idle);
    }

    TEST_CASE("a keepalive with every timer off has no deadline") {
        const auto t0 = coronet::core::clock::time_point{} + 1h;
        keepalive k(0ms, 10s, 0ms, t0);
        CHECK_FALSE(k.timed());
        CHECK(k.deadline() == coronet::core::clock::time_point::max());
        CHECK(k.check(t0 + 1h) == due::nothing);
    }

} // TEST_SUITE

TEST_SUITE("ws.inflater") {

    TEST_CASE("inflate_some with any bound gives the bytes inflate gives, then reports done") {
        const std::string text = sample_text(5000);
        const std::string z = deflated(text);
        const auto in = std::as_bytes(std::span(z));
        for (std::size_t bound : {std::size_t{1}, std::size_t{3}, std::size_t{1000},
                                  std::size_t{4999}, std::size_t{5000}, std::size_t{1} << 16}) {
            CAPTURE(bound);
            for (bool no_context_takeover : {false, true}) {
                ws::inflater inf(15, no_context_takeover);
                for (int message = 0; message < 2; ++message) {
                    std::string out;
                    auto rest = in;
                    for (int calls = 0;; ++calls) {
                        REQUIRE(calls <= static_cast<int>(text.size() / bound) + 2);
                        const std::size_t before = out.size();
                        auto p = inf.inflate_some(rest, true, out, bound);
                        REQUIRE(p);
                        CHECK(out.size() - before <= bound);
                        REQUIRE(p->consumed <= rest.size());
                        rest = rest.subspan(p->consumed);
                        if (p->done)
                            break;
                        CHECK(out.size() - before == bound); // not done: the bound was reached
                    }
                    CHECK(rest.empty());
                    CHECK(out == text);
                }
            }
        }
    }

    TEST_CASE("output past the cap wins over bad data found in the same step") {
        // Found by ws_inflate_fuzz: a fixed-Huffman block that yields one byte, then is broken.
        // With a cap of 0 the byte is the excess: message_too_big, holding nothing.
        const auto m = wt::make_bytes({0xf3, 0x00, 0x00, 0x27, 0x3d, 0x00, 0x0e});
        ws::inflater inf(15, true);
        std::string out;
        auto r = inf.inflate(m, true, out, 0);
        REQUIRE_FALSE(r);
        CHECK(r.error() == ws::errc::message_too_big);
        CHECK(out.empty());
        // With room for the byte, the broken data is what fails.
        out.clear();
        r = inf.inflate(m, true, out, 1);
        REQUIRE_FALSE(r);
        CHECK(r.error() == ws::errc::invalid_payload);
        CHECK(out.size() <= 1);
        // The same through the message reader, whose chunks cap at the message's limit.
        ws::frame_limits limits;
        limits.max_message_size = 0;
        const auto t =
            read_whole(wt::client_frame(ws::opcode::binary, true, wt::to_string(m), 1, true),
                       ws::deflate_params{}, 64, limits);
        CHECK(t.ec == ws::errc::message_too_big);
    }

} // TEST_SUITE
