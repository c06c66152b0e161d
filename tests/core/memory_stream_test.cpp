#include <testing/memory_stream.hpp>

#include <coronet/core/buffer.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/stream.hpp>
#include <coronet/core/task.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/when.hpp>

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace core = coronet::core;
using coronet::testing::memory_stream;
using coronet::testing::memory_stream_pair;
using coronet::testing::with_token;
using coronet::testing::write_string;
using namespace std::chrono_literals;

namespace {

core::task<core::result<std::string>> read_some_string(core::stream& s, std::size_t cap) {
    std::string buf(cap, '\0');
    auto n =
        co_await s.read_some(core::mutable_buffer(reinterpret_cast<std::byte*>(buf.data()), cap));
    if (!n)
        co_return n.error();
    buf.resize(*n);
    co_return buf;
}

core::task<core::result<void>> shutdown_stream(core::stream& s) {
    co_return co_await s.shutdown();
}

/// Reads until end of stream; records each read's size.
core::task<core::result<std::string>> read_to_end(core::stream& s,
                                                  std::vector<std::size_t>* sizes) {
    std::string all;
    for (;;) {
        auto r = co_await read_some_string(s, 1024);
        if (!r) {
            if (r.error() == core::errc::end_of_stream)
                co_return all;
            co_return r.error();
        }
        sizes->push_back(r->size());
        all += *r;
    }
}

/// Reads until `want` bytes arrived; records each read's size and whether `writer` still had
/// its write pending when the first read returned.
core::task<std::string> read_count(core::stream& s, std::size_t want,
                                   std::vector<std::size_t>* sizes, memory_stream* writer,
                                   bool* writer_pending_at_first_read) {
    std::string all;
    while (all.size() < want) {
        auto r = co_await read_some_string(s, 1024);
        if (!r)
            break;
        if (sizes->empty())
            *writer_pending_at_first_read = writer->write_pending();
        sizes->push_back(r->size());
        all += *r;
    }
    co_return all;
}

core::task<core::result<void>> writev_strings(core::stream& s, std::vector<std::string> parts) {
    std::vector<core::const_buffer> bufs;
    for (const auto& p : parts)
        bufs.push_back(core::as_bytes(p));
    co_return co_await s.writev(bufs);
}

/// Reads everything while the writer is blocked by the write buffer limit; records the largest
/// amount the reader ever saw buffered.
core::task<std::string> drain_limited(memory_stream& s, memory_stream* writer, std::size_t want,
                                      bool* writer_blocked_at_start, std::size_t* max_buffered) {
    *writer_blocked_at_start = writer->write_pending();
    std::string all;
    while (all.size() < want) {
        *max_buffered = std::max(*max_buffered, s.readable());
        auto r = co_await read_some_string(s, 1024);
        if (!r)
            break;
        all += *r;
    }
    co_return all;
}

core::task<void> close_end(std::unique_ptr<memory_stream>* end) {
    end->reset();
    co_return;
}

/// The operation sequence of the fail-the-Nth test, on a stream whose peer wrote "12" and shut
/// down: write, read, write, read, shutdown, read (EOF). Returns each operation's error.
core::task<std::vector<std::error_code>> operation_sequence(core::stream& s) {
    std::vector<std::error_code> out;
    out.push_back((co_await write_string(s, "x")).error());
    auto r1 = co_await read_some_string(s, 1);
    out.push_back(r1.error());
    out.push_back((co_await write_string(s, "y")).error());
    auto r2 = co_await read_some_string(s, 1);
    out.push_back(r2.error());
    out.push_back((co_await shutdown_stream(s)).error());
    auto r3 = co_await read_some_string(s, 1);
    out.push_back(r3.error());
    co_return out;
}

core::task<void> write_then_stop(core::stream& s, std::string data, core::stop_source* src) {
    (void)co_await s.write_all(core::as_bytes(data));
    src->request_stop();
}

core::task<core::result<std::string>> receive_string(core::stream& s) {
    auto r = co_await s.receive();
    if (!r)
        co_return r.error();
    co_return std::string(core::as_string(*r));
}

} // namespace

TEST_SUITE("testing.memory_stream") {

    TEST_CASE_TEMPLATE("bytes written to one end are read from the other in order", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        CHECK(a->is_open());
        CHECK(core::run(lp, write_string(*a, "hello")).has_value());
        CHECK(b->readable() == 5);
        CHECK(core::run(lp, read_some_string(*b, 100)).value() == "hello");
        CHECK(core::run(lp, write_string(*b, "world")).has_value());
        CHECK(core::run(lp, read_some_string(*a, 3)).value() == "wor");
        CHECK(core::run(lp, read_some_string(*a, 3)).value() == "ld");
    }

    TEST_CASE_TEMPLATE("a read waiting for bytes completes when the peer writes", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        auto [got, wrote] =
            core::run(lp, core::when_all(read_some_string(*b, 100), write_string(*a, "late")));
        CHECK(wrote.has_value());
        CHECK(got.value() == "late");
        CHECK_FALSE(b->read_pending());
    }

    TEST_CASE_TEMPLATE("short reads return at most max_read bytes each", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        b->set_max_read(3);
        CHECK(core::run(lp, write_string(*a, "abcdefgh")).has_value());
        CHECK(core::run(lp, shutdown_stream(*a)).has_value());
        std::vector<std::size_t> sizes;
        CHECK(core::run(lp, read_to_end(*b, &sizes)).value() == "abcdefgh");
        CHECK(sizes == std::vector<std::size_t>{3, 3, 2});
    }

    TEST_CASE_TEMPLATE("a short write completes fully in several suspended steps", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        a->set_max_write(2);
        std::vector<std::size_t> sizes;
        bool pending_at_first_read = false;
        auto [got, wrote] =
            core::run(lp, core::when_all(read_count(*b, 8, &sizes, a.get(), &pending_at_first_read),
                                         write_string(*a, "abcdefgh")));
        CHECK(wrote.has_value());
        CHECK(got == "abcdefgh");
        CHECK(sizes == std::vector<std::size_t>{2, 2, 2, 2});
        CHECK(pending_at_first_read);
        CHECK_FALSE(a->write_pending());
    }

    TEST_CASE_TEMPLATE("a gathered write of many buffers arrives whole and in order", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        std::vector<std::string> parts;
        std::string expected;
        for (int i = 0; i < 20; ++i) {
            parts.push_back(i % 5 == 0 ? std::string()
                                       : std::string(static_cast<std::size_t>(i % 4 + 1),
                                                     static_cast<char>('a' + i)));
            expected += parts.back();
        }
        SUBCASE("unlimited steps") {}
        SUBCASE("steps of 3 bytes") {
            a->set_max_write(3);
        }
        std::vector<std::size_t> sizes;
        bool pending = false;
        auto [got, wrote] =
            core::run(lp, core::when_all(read_count(*b, expected.size(), &sizes, a.get(), &pending),
                                         writev_strings(*a, parts)));
        CHECK(wrote.has_value());
        CHECK(got == expected);
    }

    TEST_CASE_TEMPLATE("a write waits for the peer to read when the write buffer limit is reached",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        a->set_write_buffer_limit(4);
        bool writer_blocked = false;
        std::size_t max_buffered = 0;
        auto [wrote, got] = core::run(
            lp, core::when_all(write_string(*a, "0123456789"),
                               drain_limited(*b, a.get(), 10, &writer_blocked, &max_buffered)));
        CHECK(wrote.has_value());
        CHECK(got == "0123456789");
        CHECK(writer_blocked);
        CHECK(max_buffered <= 4);
        CHECK(max_buffered > 0);
    }

    TEST_CASE_TEMPLATE("the Nth operation and every later one fail with the injected error", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        const std::error_code injected = std::make_error_code(std::errc::connection_reset);
        const std::vector<std::error_code> clean = {
            {}, {}, {}, {}, {}, core::make_error_code(core::errc::end_of_stream)};
        for (std::size_t n = 0; n <= clean.size(); ++n) {
            CAPTURE(n);
            core::loop lp(coronet::testing::options<B>());
            auto [a, b] = memory_stream_pair(lp);
            REQUIRE(core::run(lp, write_string(*b, "12")).has_value());
            REQUIRE(core::run(lp, shutdown_stream(*b)).has_value());
            a->fail_after(n, injected);
            std::vector<std::error_code> got = core::run(lp, operation_sequence(*a));
            REQUIRE(got.size() == clean.size());
            for (std::size_t i = 0; i < got.size(); ++i) {
                CAPTURE(i);
                CHECK(got[i] == (i < n ? clean[i] : injected));
            }
            CHECK(a->operations() == clean.size());
        }
    }

    TEST_CASE_TEMPLATE("closing an end is end of stream at the peer after the buffered bytes", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        CHECK(core::run(lp, write_string(*a, "bye")).has_value());
        a->close();
        CHECK_FALSE(a->is_open());
        CHECK(b->peer_shut_down());
        CHECK(core::run(lp, read_some_string(*b, 100)).value() == "bye");
        CHECK(core::run(lp, read_some_string(*b, 100)).error() == core::errc::end_of_stream);
        CHECK(core::run(lp, read_some_string(*b, 100)).error() == core::errc::end_of_stream);
        CHECK(core::run(lp, write_string(*b, "anyone?")).error() == core::errno_code(EPIPE));
    }

    TEST_CASE_TEMPLATE(
        "a read waiting for bytes ends with end of stream when the peer is destroyed", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        std::unique_ptr<memory_stream> writer = std::move(a);
        auto [got, ignored] =
            core::run(lp, core::when_all(read_some_string(*b, 100), close_end(&writer)));
        (void)ignored;
        CHECK(writer == nullptr);
        CHECK(got.error() == core::errc::end_of_stream);
    }

    TEST_CASE_TEMPLATE(
        "a shutdown is end of stream at the peer while the other direction stays open", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        CHECK(core::run(lp, write_string(*a, "request")).has_value());
        CHECK(core::run(lp, shutdown_stream(*a)).has_value());
        CHECK(core::run(lp, read_some_string(*b, 100)).value() == "request");
        CHECK(core::run(lp, read_some_string(*b, 100)).error() == core::errc::end_of_stream);
        CHECK(core::run(lp, write_string(*b, "response")).has_value());
        CHECK(core::run(lp, read_some_string(*a, 100)).value() == "response");
        CHECK(core::run(lp, write_string(*a, "more")).error() == core::errno_code(EPIPE));
        CHECK(a->is_open());
    }

    TEST_CASE_TEMPLATE("operations on a closed end fail with not_open", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        a->close();
        a->close(); // idempotent
        CHECK(core::run(lp, read_some_string(*a, 10)).error() == core::errc::not_open);
        CHECK(core::run(lp, write_string(*a, "x")).error() == core::errc::not_open);
        CHECK(core::run(lp, shutdown_stream(*a)).error() == core::errc::not_open);
    }

    TEST_CASE_TEMPLATE("a pending read cancelled by with_timeout reports timed_out and leaves the "
                       "stream usable",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        auto r = core::run(lp, core::with_timeout(10ms, read_some_string(*b, 100)));
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error() == core::errc::timed_out);
        CHECK_FALSE(b->read_pending());
        CHECK(core::run(lp, write_string(*a, "after")).has_value());
        CHECK(core::run(lp, read_some_string(*b, 100)).value() == "after");
    }

    TEST_CASE_TEMPLATE("bytes that arrived before a cancellation win over it", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        core::stop_source src;
        // The write completes the waiting read (queued on the loop), then stop is requested before
        // the reader resumes.
        auto [got, ignored] = core::run(
            lp,
            with_token(core::when_all(read_some_string(*b, 100), write_then_stop(*a, "won", &src)),
                       src.token()));
        (void)ignored;
        CHECK(src.stop_requested());
        CHECK(got.value() == "won");
    }

    TEST_CASE_TEMPLATE("an operation awaited with a stopped token is cancelled without starting", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        REQUIRE(core::run(lp, write_string(*a, "data")).has_value());
        core::stop_source src;
        src.request_stop();
        auto r = core::run(lp, with_token(read_some_string(*b, 100), src.token()));
        CHECK(r.error() == core::errc::operation_canceled);
        CHECK(b->operations() == 0);
        CHECK(b->readable() == 4);
    }

    TEST_CASE_TEMPLATE("a memory stream write cancelled half way marks the stream broken", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        a->set_write_buffer_limit(1);
        auto r = core::run(lp, core::with_timeout(10ms, write_string(*a, "abc")));
        CHECK(r.error() == core::errc::timed_out);
        CHECK(a->broken());
        CHECK_FALSE(a->write_pending());
        CHECK(b->readable() == 1);
        CHECK(core::run(lp, write_string(*a, "x")).error() == core::errc::stream_broken);
    }

    TEST_CASE_TEMPLATE("receive lends the bytes the peer wrote", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        auto [a, b] = memory_stream_pair(lp);
        auto [got, wrote] =
            core::run(lp, core::when_all(receive_string(*b), write_string(*a, "lent")));
        CHECK(wrote.has_value());
        CHECK(got.value() == "lent");
        CHECK(core::run(lp, shutdown_stream(*a)).has_value());
        CHECK(core::run(lp, receive_string(*b)).error() == core::errc::end_of_stream);
    }

} // TEST_SUITE
