#include <coronet/core/buffered_reader.hpp>

#include <coronet/core/buffer.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/task.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/when.hpp>
#include <coronet/core/with_stop.hpp>

#include <testing/backends.hpp>
#include <testing/memory_stream.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace core = coronet::core;
using namespace std::chrono_literals;
using coronet::testing::memory_stream;
using coronet::testing::memory_stream_pair;
using coronet::testing::write_string;

namespace {

constexpr std::string_view request_text = "GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY";
constexpr std::string_view request_head = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

core::task<core::result<void>> write_then_shutdown(core::stream& s, std::string data) {
    auto w = co_await s.write_all(core::as_bytes(data));
    if (!w)
        co_return w;
    co_return co_await s.shutdown();
}

/// Writes `data` in two writes split at `split` and shuts down (so a reader that misses its
/// delimiter fails instead of waiting forever); the first write completes the reader's pending
/// read with only the first part.
core::task<core::result<void>> write_split(core::stream& s, std::string data, std::size_t split) {
    std::string_view v(data);
    auto first = co_await s.write_all(core::as_bytes(v.substr(0, split)));
    if (!first)
        co_return first;
    auto second = co_await s.write_all(core::as_bytes(v.substr(split)));
    if (!second)
        co_return second;
    co_return co_await s.shutdown();
}

struct parsed_request {
    std::string head;
    std::string body;
    std::error_code error;
};

core::task<parsed_request> read_head_and_body(core::stream& s) {
    parsed_request out;
    core::buffered_reader rd(s);
    auto head = co_await rd.read_until("\r\n\r\n", 8192);
    if (!head) {
        out.error = head.error();
        co_return out;
    }
    out.head = std::string(core::as_string(*head));
    rd.consume(head->size());
    auto body = co_await rd.read_exactly(4);
    if (!body) {
        out.error = body.error();
        co_return out;
    }
    out.body = std::string(core::as_string(*body));
    co_return out;
}

core::task<core::result<std::string>> read_until_string(core::stream& s, std::string delim,
                                                        std::size_t max, std::size_t max_buffer) {
    core::buffered_reader rd(s, max_buffer);
    auto r = co_await rd.read_until(delim, max);
    if (!r)
        co_return r.error();
    co_return std::string(core::as_string(*r));
}

core::task<core::result<std::string>> read_exactly_string(core::stream& s, std::size_t n,
                                                          std::size_t max_buffer) {
    core::buffered_reader rd(s, max_buffer);
    auto r = co_await rd.read_exactly(n);
    if (!r)
        co_return r.error();
    co_return std::string(core::as_string(*r));
}

struct exact_reads {
    std::string first;
    std::string second;
    std::size_t buffered_after_consume = 99;
};

core::task<exact_reads> two_exact_reads(core::stream& s) {
    exact_reads out;
    core::buffered_reader rd(s);
    auto a = co_await rd.read_exactly(5);
    if (a)
        out.first = std::string(core::as_string(*a));
    rd.consume(5);
    auto b = co_await rd.read_exactly(6);
    if (b)
        out.second = std::string(core::as_string(*b));
    rd.consume(6);
    out.buffered_after_consume = rd.buffered().size();
    co_return out;
}

struct prefetched {
    std::string head;
    std::string extra;
    std::size_t buffered_after_release = 99;
};

core::task<prefetched> head_then_release(core::stream& s, bool consume_head) {
    prefetched out;
    core::buffered_reader rd(s);
    auto head = co_await rd.read_until("\r\n\r\n", 8192);
    if (!head)
        co_return out;
    out.head = std::string(core::as_string(*head));
    if (consume_head)
        rd.consume(head->size());
    std::vector<std::byte> rest = rd.release_prefetched();
    out.extra.assign(reinterpret_cast<const char*>(rest.data()), rest.size());
    out.buffered_after_release = rd.buffered().size();
    co_return out;
}

core::task<std::vector<std::string>> read_lines(core::stream& s, std::size_t count) {
    std::vector<std::string> lines;
    core::buffered_reader rd(s);
    for (std::size_t i = 0; i < count; ++i) {
        auto line = co_await rd.read_until("\n", 1024);
        if (!line)
            break;
        lines.emplace_back(core::as_string(*line));
        rd.consume(line->size());
    }
    co_return lines;
}

core::task<core::result<std::size_t>> fill_once(core::stream& s, std::string* buffered) {
    core::buffered_reader rd(s);
    auto n = co_await rd.fill();
    *buffered = std::string(core::as_string(rd.buffered()));
    co_return n;
}

struct growth_probe {
    std::string data;
    std::error_code error;
    std::size_t capacity = 0; ///< the reader's buffer when the read ended
};

/// read_exactly(n) on a fresh reader bounded by `max_buffer`: how it ended and how much memory
/// the reader's buffer held then.
core::task<growth_probe> exact_read_growth(core::stream& s, std::size_t n, std::size_t max_buffer) {
    growth_probe out;
    core::buffered_reader rd(s, max_buffer);
    auto r = co_await rd.read_exactly(n);
    if (r)
        out.data = std::string(core::as_string(*r));
    else
        out.error = r.error();
    out.capacity = rd.capacity();
    co_return out;
}

/// One fill(expected) on a fresh reader: the bytes read and the buffer's memory afterwards.
core::task<growth_probe> hinted_fill_growth(core::stream& s, std::size_t expected) {
    growth_probe out;
    core::buffered_reader rd(s, 64u << 20);
    auto n = co_await rd.fill(expected);
    if (!n)
        out.error = n.error();
    out.data = std::string(core::as_string(rd.buffered()));
    out.capacity = rd.capacity();
    co_return out;
}

struct release_probe {
    std::size_t after_big_read = 0;
    std::size_t after_next_fill = 0;
    std::string next;
};

/// A big exact read of what `peer` wrote, consumed; then `peer` writes "next" and the reader
/// fills once more: the buffer's memory after each.
core::task<release_probe> big_read_then_fill(core::stream& s, core::stream& peer, std::size_t big) {
    release_probe out;
    core::buffered_reader rd(s, 4u << 20);
    auto r = co_await rd.read_exactly(big);
    REQUIRE(r);
    rd.consume(big);
    out.after_big_read = rd.capacity();
    auto w = co_await peer.write_all(core::as_bytes(std::string_view("next")));
    REQUIRE(w);
    auto n = co_await rd.fill();
    REQUIRE(n);
    out.next = std::string(core::as_string(rd.buffered()));
    out.after_next_fill = rd.capacity();
    co_return out;
}

std::string pattern(std::size_t n) {
    std::string out(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        out[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
    return out;
}

// fill_lent() as an operation in the caller's frame, run through an interrupt_slot: what a
// ws session's idle wait is.
struct lent_wait_report {
    bool fills_lent_empty = false;
    bool fills_lent_big_hint = true;
    bool fills_lent_holding = true;
    std::string first;
    std::size_t own_capacity = 1;
    bool lent = false;
    core::result<std::size_t> interrupted_read = 0;
    bool waiting_during = false;
    bool interrupted = false;
    core::result<std::size_t> stopped_read = 0;
    bool stop_is_interrupt = true;
    std::string after;
    core::result<std::size_t> refused = 0;
    std::string kept;
};

core::task<void> slot_fill(core::interrupt_slot& slot, core::buffered_reader& rd,
                           core::result<std::size_t>& out) {
    out = co_await slot.run_op(rd.fill_lent());
}

core::task<void> lent_wait_in_slot(core::loop& lp, lent_wait_report& r) {
    auto l = coronet::testing::listen_local(lp);
    auto [client, server] = co_await coronet::testing::connect_pair(l);
    core::buffered_reader rd(server);
    core::interrupt_slot slot;
    r.fills_lent_empty = rd.fills_lent(0);
    r.fills_lent_big_hint = rd.fills_lent(core::buffered_reader::lent_read_limit + 1);
    REQUIRE(co_await client.write_all(core::as_bytes("hello")));
    auto n = co_await slot.run_op(rd.fill_lent());
    REQUIRE(n);
    r.first = std::string(core::as_string(rd.buffered()));
    r.own_capacity = rd.capacity();
    r.lent = rd.reading_lent();
    rd.consume(2);
    r.fills_lent_holding = rd.fills_lent(0); // three bytes left: they must be kept
    rd.consume(3);
    {
        core::task_scope scope;
        scope.spawn(slot_fill(slot, rd, r.interrupted_read));
        co_await core::sleep_for(5ms); // the receive is pending
        r.waiting_during = slot.waiting();
        slot.interrupt();
        co_await scope.join();
        r.interrupted = slot.interrupted();
    }
    {
        core::task_scope scope;
        scope.spawn(slot_fill(slot, rd, r.stopped_read));
        co_await core::sleep_for(5ms);
        scope.request_stop();
        co_await scope.join();
        r.stop_is_interrupt = slot.interrupted();
    }
    // Neither cancellation lost the stream: the next bytes arrive.
    REQUIRE(co_await client.write_all(core::as_bytes("again")));
    auto m = co_await slot.run_op(rd.fill_lent());
    REQUIRE(m);
    while (rd.buffered().size() < 5) { // the rest, if it came in pieces: not a lent wait
        r.refused = co_await rd.fill_lent();
        auto more = co_await rd.fill();
        REQUIRE(more);
    }
    r.after = std::string(core::as_string(rd.buffered()));
    // A reader that holds bytes is refused a lent wait, and keeps them.
    rd.consume(4);
    r.refused = co_await rd.fill_lent();
    r.kept = std::string(core::as_string(rd.buffered()));
}

} // namespace

TEST_SUITE("core.buffered_reader") {

    TEST_CASE_TEMPLATE("fill_lent waits in a lent buffer, and an interrupt_slot cancels it", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        lent_wait_report r;
        coronet::testing::run_on<B>([&r](core::loop& lp) { return lent_wait_in_slot(lp, r); });
        CHECK(r.fills_lent_empty);
        CHECK_FALSE(r.fills_lent_big_hint);
        CHECK_FALSE(r.fills_lent_holding);
        CHECK(r.first == "hello");
        CHECK(r.own_capacity == 0);
        CHECK(r.lent);
        CHECK(r.waiting_during);
        REQUIRE_FALSE(r.interrupted_read);
        CHECK(r.interrupted_read.error() == core::errc::operation_canceled);
        CHECK(r.interrupted);
        REQUIRE_FALSE(r.stopped_read);
        CHECK(r.stopped_read.error() == core::errc::operation_canceled);
        CHECK_FALSE(r.stop_is_interrupt);
        CHECK(r.after == "again");
        REQUIRE_FALSE(r.refused);
        CHECK(r.refused.error() == std::errc::operation_not_permitted);
        CHECK(r.kept == "n");
    }

    TEST_CASE_TEMPLATE("a request split at every byte position reads to the same head and body", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        std::size_t max_read = memory_stream::unlimited;
        SUBCASE("whole reads") {}
        SUBCASE("reads of 3 bytes") {
            max_read = 3;
        }
        SUBCASE("reads of 1 byte") {
            max_read = 1;
        }
        for (std::size_t split = 0; split <= request_text.size(); ++split) {
            CAPTURE(split);
            auto [client, server] = memory_stream_pair(lp);
            server->set_max_read(max_read);
            // The reader starts first and waits, so the first write wakes it with the first part.
            auto [req, wrote] = core::run(
                lp, core::when_all(read_head_and_body(*server),
                                   write_split(*client, std::string(request_text), split)));
            CHECK(wrote.has_value());
            CHECK(req.error == std::error_code());
            CHECK(req.head == request_head);
            CHECK(req.body == "BODY");
        }
    }

    TEST_CASE_TEMPLATE("read_until reports limit_exceeded when max bytes hold no delimiter", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        SUBCASE("no delimiter at all") {
            REQUIRE(core::run(lp, write_string(*a, std::string(100, 'a'))).has_value());
            CHECK(core::run(lp, read_until_string(*b, "\r\n", 50, 1 << 20)).error() ==
                  core::errc::limit_exceeded);
        }
        SUBCASE("the delimiter ends one byte past max") {
            REQUIRE(core::run(lp, write_string(*a, "abc\r\n")).has_value());
            CHECK(core::run(lp, read_until_string(*b, "\r\n", 4, 1 << 20)).error() ==
                  core::errc::limit_exceeded);
        }
        SUBCASE("the delimiter ends exactly at max") {
            REQUIRE(core::run(lp, write_string(*a, "abc\r\nmore")).has_value());
            CHECK(core::run(lp, read_until_string(*b, "\r\n", 5, 1 << 20)).value() == "abc\r\n");
        }
        SUBCASE("the reader's own buffer bound is smaller than max") {
            REQUIRE(core::run(lp, write_string(*a, std::string(100, 'a'))).has_value());
            CHECK(core::run(lp, read_until_string(*b, "\r\n", 1000, 16)).error() ==
                  core::errc::limit_exceeded);
        }
        SUBCASE("with reads of one byte") {
            b->set_max_read(1);
            REQUIRE(core::run(lp, write_string(*a, std::string(100, 'a'))).has_value());
            CHECK(core::run(lp, read_until_string(*b, "\r\n", 50, 1 << 20)).error() ==
                  core::errc::limit_exceeded);
        }
    }

    TEST_CASE_TEMPLATE("read_exactly returns exactly the requested bytes", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        SUBCASE("whole reads") {}
        SUBCASE("reads of one byte") {
            b->set_max_read(1);
        }
        REQUIRE(core::run(lp, write_string(*a, "hello world")).has_value());
        exact_reads r = core::run(lp, two_exact_reads(*b));
        CHECK(r.first == "hello");
        CHECK(r.second == " world");
        CHECK(r.buffered_after_consume == 0);
    }

    TEST_CASE_TEMPLATE("read_exactly waits for bytes written later", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        auto [got, wrote] = core::run(lp, core::when_all(read_exactly_string(*b, 10, 1 << 20),
                                                         write_split(*a, "0123456789", 4)));
        CHECK(wrote.has_value());
        CHECK(got.value() == "0123456789");
    }

    TEST_CASE_TEMPLATE("read_exactly of more than the buffer bound reports limit_exceeded", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        REQUIRE(core::run(lp, write_string(*a, std::string(100, 'x'))).has_value());
        CHECK(core::run(lp, read_exactly_string(*b, 17, 16)).error() == core::errc::limit_exceeded);
        CHECK(core::run(lp, read_exactly_string(*b, 16, 16)).value() == std::string(16, 'x'));
    }

    TEST_CASE_TEMPLATE("the stream ending before the delimiter or count is end_of_stream", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        REQUIRE(core::run(lp, write_then_shutdown(*a, "abc")).has_value());
        SUBCASE("read_until") {
            CHECK(core::run(lp, read_until_string(*b, "\r\n", 100, 1 << 20)).error() ==
                  core::errc::end_of_stream);
        }
        SUBCASE("read_exactly") {
            CHECK(core::run(lp, read_exactly_string(*b, 10, 1 << 20)).error() ==
                  core::errc::end_of_stream);
        }
    }

    TEST_CASE_TEMPLATE("release_prefetched returns exactly the bytes after the consumed part", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        const std::string extra = "\x81\x05hello-extra-frame-bytes";
        REQUIRE(core::run(lp, write_string(*a, std::string(request_head) + extra)).has_value());
        SUBCASE("head consumed") {
            prefetched p = core::run(lp, head_then_release(*b, true));
            CHECK(p.head == request_head);
            CHECK(p.extra == extra);
            CHECK(p.buffered_after_release == 0);
        }
        SUBCASE("head not consumed") {
            prefetched p = core::run(lp, head_then_release(*b, false));
            CHECK(p.head == request_head);
            CHECK(p.extra == std::string(request_head) + extra);
            CHECK(p.buffered_after_release == 0);
        }
    }

    TEST_CASE_TEMPLATE("pipelined lines in one write are split by read_until without more reads", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        REQUIRE(core::run(lp, write_string(*a, "one\ntwo\nthree\n")).has_value());
        auto lines = core::run(lp, read_lines(*b, 3));
        CHECK(lines == std::vector<std::string>{"one\n", "two\n", "three\n"});
        CHECK(b->operations() == 1);
    }

    TEST_CASE_TEMPLATE("fill appends one read to the buffer", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        b->set_max_read(2);
        REQUIRE(core::run(lp, write_string(*a, "abc")).has_value());
        std::string buffered;
        CHECK(core::run(lp, fill_once(*b, &buffered)).value() == 2);
        CHECK(buffered == "ab");
    }

    TEST_CASE_TEMPLATE(
        "read_exactly of an announced 8 MB that sends 5 KB holds memory for the 5 KB", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        SUBCASE("whole reads") {}
        SUBCASE("reads of 1000 bytes") {
            b->set_max_read(1000);
        }
        const std::size_t sent = 5 * 1024;
        REQUIRE(core::run(lp, write_then_shutdown(*a, pattern(sent))).has_value());
        growth_probe g = core::run(lp, exact_read_growth(*b, 8'000'000, 16u << 20));
        CHECK(g.error == core::errc::end_of_stream);
        CHECK(g.capacity >= sent);
        CHECK(g.capacity <= sent + core::buffered_reader::growth_step);
    }

    TEST_CASE_TEMPLATE("a large exact read arrives intact with a buffer that grew geometrically", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        const std::size_t n = 8'000'000;
        std::size_t max_reads = 64; // whole reads: one per doubling of the buffer
        SUBCASE("whole reads") {}
        SUBCASE("reads of 64 KiB") {
            b->set_max_read(64 * 1024);
            max_reads += n / (64 * 1024);
        }
        SUBCASE("reads of 1000 bytes") {
            b->set_max_read(1000);
            max_reads += n / 1000;
        }
        const std::string body = pattern(n);
        REQUIRE(core::run(lp, write_string(*a, body)).has_value());
        growth_probe g = core::run(lp, exact_read_growth(*b, n, 16u << 20));
        CHECK(g.error == std::error_code());
        CHECK(g.data == body);
        // Doubling as bytes arrive: never more than twice what it holds (plus the first step).
        CHECK(g.capacity <= 2 * n + core::buffered_reader::growth_step);
        // Each read may fill all the free room: the growth bound must not turn into small reads.
        CAPTURE(b->operations());
        CHECK(b->operations() <= max_reads);
    }

    TEST_CASE_TEMPLATE("fill with a hint of 16 MiB makes no more than growth_step of room", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        REQUIRE(core::run(lp, write_string(*a, "frame bytes")).has_value());
        growth_probe g = core::run(lp, hinted_fill_growth(*b, 16u << 20));
        CHECK(g.error == std::error_code());
        CHECK(g.data == "frame bytes");
        CHECK(g.capacity <= core::buffered_reader::growth_step);
    }

    TEST_CASE_TEMPLATE(
        "a buffer left large by a big read is released when the next read finds it empty", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        const std::size_t big = 1u << 20;
        REQUIRE(core::run(lp, write_string(*a, pattern(big))).has_value());
        release_probe probe = core::run(lp, big_read_then_fill(*b, *a, big));
        CHECK(probe.after_big_read >= big);
        CHECK(probe.next == "next");
        CHECK(probe.after_next_fill <= core::buffered_reader::growth_step);
    }

} // TEST_SUITE

// Over a tcp_stream the loop lends receive buffers (io_uring's provided-buffer ring, epoll's
// pool): a reader that holds nothing owns no buffer.
namespace {

core::task<void> lent_reads(core::loop& lp) {
    auto l = coronet::testing::listen_local(lp);
    auto [client, server] = co_await coronet::testing::connect_pair(l);
    REQUIRE(server.lends_receive_buffers());
    core::buffered_reader rd(server);

    // A whole message arrives in a lent buffer: parsed where it lies, no buffer of the reader's.
    REQUIRE(co_await client.write_all(core::as_bytes("first")));
    auto n = co_await rd.fill();
    REQUIRE(n);
    CHECK(core::as_string(rd.buffered()) == "first");
    CHECK(rd.reading_lent());
    CHECK(rd.capacity() == 0);
    // The bytes are writable where they lie (a protocol unmasks in place).
    rd.mutable_buffered()[0] = std::byte{'F'};
    CHECK(core::as_string(rd.buffered()) == "First");
    // A view stays valid across consume() until the next read call.
    auto view = rd.buffered();
    rd.consume(3);
    CHECK(core::as_string(view) == "First");
    CHECK(core::as_string(rd.buffered()) == "st");

    // The next read keeps the 2 unconsumed bytes: they move into the reader's own buffer.
    REQUIRE(co_await client.write_all(core::as_bytes("-second")));
    while (rd.buffered().size() < 9) {
        auto more = co_await rd.fill();
        REQUIRE(more);
    }
    CHECK(core::as_string(rd.buffered()) == "st-second");
    CHECK_FALSE(rd.reading_lent());
    CHECK(rd.capacity() > 0);

    // Consumed to the end, the reader gives its own buffer up at the next read.
    rd.consume(rd.buffered().size());
    REQUIRE(co_await client.write_all(core::as_bytes("third")));
    auto t = co_await rd.fill();
    REQUIRE(t);
    CHECK(core::as_string(rd.buffered()) == "third");
    CHECK(rd.reading_lent());
    CHECK(rd.capacity() == 0);
    // release_lent() (a reader going idle in a pool) keeps the bytes in its own buffer.
    REQUIRE(rd.release_lent());
    CHECK_FALSE(rd.reading_lent());
    CHECK(core::as_string(rd.buffered()) == "third");
    CHECK(rd.capacity() > 0);

    // read_until on an empty reader waits in a lent buffer too, and release_prefetched hands
    // back what followed the delimiter.
    rd.consume(rd.buffered().size());
    REQUIRE(co_await client.write_all(core::as_bytes("head\r\n\r\nrest")));
    auto h = co_await rd.read_until("\r\n\r\n", 1024);
    REQUIRE(h);
    const std::string head(core::as_string(*h));
    CHECK(head == "head\r\n\r\n");
    rd.consume(head.size());
    auto pre = rd.release_prefetched();
    CHECK_FALSE(rd.reading_lent());
    std::string rest(reinterpret_cast<const char*>(pre.data()), pre.size());
    // "rest" may come in a later segment on a slow machine: read what is missing.
    while (rest.size() < 4) {
        auto more = co_await rd.fill();
        REQUIRE(more);
        rest += core::as_string(rd.buffered());
        rd.consume(rd.buffered().size());
    }
    CHECK(rest == "rest");

    // The peer's end is reported through the lent path as well.
    client.close();
    auto end = co_await rd.fill();
    REQUIRE_FALSE(end);
    CHECK(end.error() == core::errc::end_of_stream);
}

// `conns` connected pairs, and a reader on the server side of each.
struct reader_set {
    std::vector<coronet::testing::stream_pair> pairs;
    std::vector<std::unique_ptr<core::buffered_reader>> readers; ///< read pairs[i].server
};

core::task<reader_set> connect_readers(core::loop& lp, std::size_t conns) {
    auto l = coronet::testing::listen_local(lp);
    reader_set set;
    for (std::size_t i = 0; i < conns; ++i)
        set.pairs.push_back(co_await coronet::testing::connect_pair(l));
    for (auto& p : set.pairs)
        set.readers.push_back(std::make_unique<core::buffered_reader>(p.server));
    co_return set;
}

// Many readers on one loop, each left holding a partial message between reads: every byte
// arrives in order although the lent buffers are shared.
core::task<void> lent_reads_interleaved(core::loop& lp, std::size_t conns) {
    reader_set set = co_await connect_readers(lp, conns);
    auto& pairs = set.pairs;
    auto& readers = set.readers;
    const std::string msg = "0123456789abcdef";
    // Round r sends bytes [r*4, r*4+4) of msg on every connection, and each reader fills once.
    for (std::size_t r = 0; r < 4; ++r) {
        for (auto& p : pairs)
            REQUIRE(co_await p.client.write_all(core::as_bytes(msg.substr(r * 4, 4))));
        for (auto& rd : readers) {
            while (rd->buffered().size() < (r + 1) * 4) {
                auto n = co_await rd->fill();
                REQUIRE(n);
            }
        }
    }
    for (auto& rd : readers) {
        CHECK(core::as_string(rd->buffered()) == msg);
        rd->consume(msg.size());
    }
}

// A stream closed between two reads (a ws session abandoned by a write timeout) keeps the
// buffer it lent: the reader's bytes stay its own while another connection receives.
core::task<void> lent_bytes_survive_close(core::loop& lp) {
    auto l = coronet::testing::listen_local(lp);
    auto one = co_await coronet::testing::connect_pair(l);
    auto two = co_await coronet::testing::connect_pair(l);
    core::buffered_reader rd(one.server);
    REQUIRE(co_await one.client.write_all(core::as_bytes("AAAABBBB")));
    while (rd.buffered().size() < 8)
        REQUIRE(co_await rd.fill());
    REQUIRE(rd.reading_lent());
    rd.consume(4);
    one.server.close();
    // The loop has one buffer to lend: were it back in the pool, this receive would take it.
    REQUIRE(co_await two.client.write_all(core::as_bytes("CCCCCCCC")));
    std::string other;
    while (other.size() < 8) {
        auto r = co_await two.server.receive();
        REQUIRE(r);
        other += core::as_string(*r);
    }
    CHECK(other == "CCCCCCCC");
    CHECK(core::as_string(rd.buffered()) == "BBBB");
}

core::task<void> fill_once(core::buffered_reader& rd) {
    auto n = co_await rd.fill();
    REQUIRE(n);
}

// Rounds of `conns` readers that all receive at once, each keeping what it read until every one
// has: the loop's receive buffers after each round.
core::task<std::vector<std::size_t>> buffers_per_round(core::loop& lp, std::size_t conns,
                                                       std::size_t rounds) {
    reader_set set = co_await connect_readers(lp, conns);
    auto& pairs = set.pairs;
    auto& readers = set.readers;
    std::vector<std::size_t> count;
    for (std::size_t r = 0; r < rounds; ++r) {
        // Every message is there before any receive starts: the receives are submitted
        // together and complete in one wait, so the ring must cover all of them at once.
        const std::string msg = "round " + std::to_string(r);
        for (auto& p : pairs)
            REQUIRE(co_await p.client.write_all(core::as_bytes(msg)));
        core::task_scope scope;
        for (auto& rd : readers)
            scope.spawn(fill_once(*rd));
        co_await scope.join();
        for (auto& rd : readers) {
            CHECK(core::as_string(rd->buffered()) == msg);
            rd->consume(rd->buffered().size());
        }
        for (auto& rd : readers)
            REQUIRE(rd->release_lent()); // every lent buffer back before the next round
        count.push_back(lp.provided_buffer_count());
    }
    co_return count;
}

} // namespace

TEST_SUITE("core.buffered_reader") {

    TEST_CASE("io_uring's buffer ring grows when more receives complete than it has buffers") {
        CORONET_REQUIRE_BACKEND(coronet::testing::uring_backend);
        auto o = coronet::testing::options<coronet::testing::uring_backend>();
        o.uring_provided_buffers = 4;
        o.uring_provided_buffer_size = 4096;
        o.uring_provided_buffers_max = 16;
        SUBCASE("by chunks of uring_provided_buffers that cover the receives that found none") {
            core::loop lp(o);
            REQUIRE(lp.provided_buffer_count() == 4);
            auto count = core::run(lp, buffers_per_round(lp, 12, 3));
            // 12 receives, 4 buffers: 8 find none, and two more chunks (one wait) cover them.
            // Then it stays.
            CHECK(count == std::vector<std::size_t>{12, 12, 12});
        }
        SUBCASE("up to uring_provided_buffers_max, in whole chunks") {
            o.uring_provided_buffers_max = 11;
            core::loop lp(o);
            auto count = core::run(lp, buffers_per_round(lp, 12, 3));
            CHECK(count == std::vector<std::size_t>{8, 8, 8});
        }
        SUBCASE("not while the buffers suffice") {
            core::loop lp(o);
            auto count = core::run(lp, buffers_per_round(lp, 4, 3));
            CHECK(count == std::vector<std::size_t>{4, 4, 4});
        }
    }

    TEST_CASE_TEMPLATE("a closed stream's lent buffer stays the reader's until it reads again", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        auto o = coronet::testing::options<B>();
        o.uring_provided_buffers = 1;
        o.uring_provided_buffers_max = 1;
        o.uring_provided_buffer_size = 4096;
        core::loop lp(o);
        core::run(lp, lent_bytes_survive_close(lp));
    }

    TEST_CASE_TEMPLATE("over a tcp stream an empty reader reads into a lent buffer", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        coronet::testing::run_on<B>([](core::loop& lp) { return lent_reads(lp); });
    }

    TEST_CASE_TEMPLATE("readers that keep partial messages between lent reads lose no byte", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        SUBCASE("a pool larger than the readers") {
            coronet::testing::run_on<B>(
                [](core::loop& lp) { return lent_reads_interleaved(lp, 8); });
        }
        SUBCASE("a pool that runs dry") {
            auto o = coronet::testing::options<B>();
            o.uring_provided_buffers = 2;
            o.uring_provided_buffers_max = 2;
            o.uring_provided_buffer_size = 4096;
            core::loop lp(o);
            core::run(lp, lent_reads_interleaved(lp, 8));
        }
    }

} // TEST_SUITE
