#include <coronet/core/stream.hpp>

#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/when.hpp>
#include <coronet/core/with_stop.hpp>

#include <testing/backends.hpp>
#include <testing/counted.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace core = coronet::core;
using coronet::testing::counted;
using namespace std::chrono_literals;

using coronet::testing::connect_pair;
using coronet::testing::endpoint_of;
using coronet::testing::listen_local;
using coronet::testing::run_on;
using coronet::testing::with_token;
using coronet::testing::detail::accept_one;

namespace {

// ---- helpers -------------------------------------------------------------------------------

core::task<core::result<std::string>> read_exactly(core::stream& s, std::size_t n) {
    std::string out(n, '\0');
    std::size_t got = 0;
    while (got < n) {
        auto r = co_await s.read_some(
            core::mutable_buffer(reinterpret_cast<std::byte*>(out.data()) + got, n - got));
        if (!r)
            co_return r.error();
        got += *r;
    }
    co_return out;
}

core::task<core::result<std::size_t>> read_some(core::stream& s, core::mutable_buffer b) {
    co_return co_await s.read_some(b);
}

core::task<core::result<void>> write_bytes(core::stream& s, core::const_buffer b) {
    co_return co_await s.write_all(b);
}

/// Awaits `t` and stores its value; holds a `counted` so the test sees the frame die.
template <class T>
core::task<void> store_into(core::task<T> t, std::optional<T>& out) {
    counted alive;
    out.emplace(co_await std::move(t));
}

void set_buffer_sizes(int fd, int bytes) {
    REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes) == 0);
    REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) == 0);
}

void send_now(core::tcp_stream& s, std::string_view bytes) {
    REQUIRE(::send(s.native_handle(), bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
}

// ---- bodies --------------------------------------------------------------------------------

core::task<void> cancel_pending_read(core::loop& lp) {
    auto l = listen_local(lp);
    auto [client, server] = co_await connect_pair(l);
    counted::reset();
    std::byte buf[64];
    std::optional<core::result<std::size_t>> res;
    core::stop_source src;
    {
        core::task_scope scope;
        scope.spawn(store_into(with_token(read_some(server, buf), src.token()), res));
        REQUIRE(scope.size() == 1); // the read is pending
        CHECK_FALSE(res.has_value());
        CHECK(counted::alive() == 1);
        CHECK(src.request_stop());
        co_await scope.join();
    }
    REQUIRE(res.has_value());
    CHECK(res->error() == core::errc::operation_canceled);
    CHECK(counted::alive() == 0); // the reading coroutine ran to its end and was destroyed

    // The stream is still usable.
    REQUIRE(co_await client.write_all(core::as_bytes("after")));
    auto got = co_await read_exactly(server, 5);
    REQUIRE(got);
    CHECK(*got == "after");
}

core::task<void> cancel_racing_data(core::loop& lp) {
    auto l = listen_local(lp);
    auto [client, server] = co_await connect_pair(l);
    std::string expected;
    std::string received;
    int won = 0;
    int canceled = 0;
    for (int i = 0; i < 50; ++i) {
        const std::string msg = "payload-" + std::to_string(i) + ";";
        expected += msg;
        std::byte buf[256];
        std::optional<core::result<std::size_t>> res;
        core::stop_source src;
        {
            core::task_scope scope;
            scope.spawn(store_into(with_token(read_some(server, buf), src.token()), res));
            REQUIRE(scope.size() == 1);
            // The bytes reach the socket, then the cancel comes, before the loop looks at either.
            send_now(client, msg);
            src.request_stop();
            co_await scope.join();
        }
        REQUIRE(res.has_value());
        if (*res) {
            ++won;
            received.append(reinterpret_cast<const char*>(buf), **res);
        } else {
            ++canceled;
            CHECK(res->error() == core::errc::operation_canceled);
        }
        // Whatever the first read did not take is still there.
        if (received.size() < expected.size()) {
            auto rest = co_await read_exactly(server, expected.size() - received.size());
            REQUIRE(rest);
            received += *rest;
        }
        REQUIRE(received == expected);
    }
    MESSAGE("result won " << won << " times, cancel won " << canceled << " times");
    CHECK(won + canceled == 50);
}

core::task<void> read_deadline(core::loop& lp) {
    auto l = listen_local(lp);
    auto [client, server] = co_await connect_pair(l);
    std::byte buf[64];
    const auto start = core::clock::now();
    auto r = co_await core::with_timeout(50ms, read_some(server, buf));
    REQUIRE_FALSE(r);
    CHECK(r.error() == core::errc::timed_out);
    CHECK(core::clock::now() - start >= 50ms);

    // The timed-out read consumed nothing and the stream keeps working.
    REQUIRE(co_await client.write_all(core::as_bytes("late data")));
    auto got = co_await read_exactly(server, 9);
    REQUIRE(got);
    CHECK(*got == "late data");
    // A deadline that does not expire leaves the outcome alone.
    REQUIRE(co_await client.write_all(core::as_bytes("x")));
    auto quick = co_await core::with_timeout(5s, read_some(server, buf));
    REQUIRE(quick);
    CHECK(*quick == 1);
}

// with_deadline: the same deadline for one operation awaited directly (no task, no frame).
core::task<core::result<std::size_t>> receive_until(core::stream& s, core::clock::time_point when) {
    auto r = co_await core::with_deadline(when, s.receive());
    if (!r)
        co_return r.error();
    co_return r->size();
}

core::task<void> read_in_slot(core::interrupt_slot& slot, core::stream& s,
                              core::result<std::size_t>& out) {
    std::byte buf[16];
    out = co_await slot.run_op(
        core::with_deadline(core::clock::now() + 10s, s.read_some(core::mutable_buffer(buf))));
}

core::task<void> op_deadline(core::loop& lp) {
    auto l = listen_local(lp);
    auto [client, server] = co_await connect_pair(l);
    std::byte buf[64];
    const auto start = core::clock::now();
    auto r =
        co_await core::with_deadline(start + 50ms, server.read_some(core::mutable_buffer(buf)));
    REQUIRE_FALSE(r);
    CHECK(r.error() == core::errc::timed_out);
    CHECK(core::clock::now() - start >= 50ms);
    auto lent = co_await receive_until(server, core::clock::now() + 20ms);
    REQUIRE_FALSE(lent);
    CHECK(lent.error() == core::errc::timed_out);

    // Bytes before the deadline are the outcome, and the stream lost none to the timeouts.
    REQUIRE(co_await client.write_all(core::as_bytes("late data")));
    auto got = co_await receive_until(server, core::clock::now() + 5s);
    REQUIRE(got);
    CHECK(*got == 9);

    // The caller's cancellation is no timeout.
    {
        core::task_scope scope;
        std::optional<core::result<std::size_t>> stopped;
        scope.spawn(store_into(receive_until(server, core::clock::now() + 10s), stopped));
        co_await core::sleep_for(5ms);
        scope.request_stop();
        co_await scope.join();
        REQUIRE(stopped.has_value());
        REQUIRE_FALSE(*stopped);
        CHECK(stopped->error() == core::errc::operation_canceled);
    }
    // Inside an interrupt_slot: an interrupt cancels it, and is no timeout either.
    {
        core::interrupt_slot slot;
        core::result<std::size_t> out = 0;
        core::task_scope scope;
        scope.spawn(read_in_slot(slot, server, out));
        co_await core::sleep_for(5ms);
        CHECK(slot.interrupt());
        co_await scope.join();
        REQUIRE_FALSE(out);
        CHECK(out.error() == core::errc::operation_canceled);
        CHECK(slot.interrupted());
    }
    REQUIRE(co_await client.write_all(core::as_bytes("x")));
    auto quick = co_await core::with_deadline(core::clock::now() + 5s,
                                              server.read_some(core::mutable_buffer(buf)));
    REQUIRE(quick);
    CHECK(*quick == 1);
}

core::task<void> cancel_pending_accept(core::loop& lp) {
    auto l = listen_local(lp);
    std::optional<core::result<core::tcp_stream>> res;
    core::stop_source src;
    {
        core::task_scope scope;
        scope.spawn(store_into(with_token(accept_one(l), src.token()), res));
        REQUIRE(scope.size() == 1);
        src.request_stop();
        co_await scope.join();
    }
    REQUIRE(res.has_value());
    CHECK(res->error() == core::errc::operation_canceled);

    auto timed = co_await core::with_timeout(20ms, accept_one(l));
    CHECK(timed.error() == core::errc::timed_out);

    // The listener still accepts.
    CHECK(l.is_open());
    auto [client, server] = co_await connect_pair(l);
    CHECK(client.is_open());
    CHECK(server.is_open());
}

core::task<void> cancel_pending_connect(core::loop& lp) {
    // A listener with backlog 1 that never accepts: once its queue is full the kernel drops
    // further SYNs, so connects hang (on loopback, without a non-routable address).
    core::listen_options o;
    o.backlog = 1;
    auto l = listen_local(lp, o);
    const auto ep = endpoint_of(l);
    std::vector<core::tcp_stream> fillers;
    bool hung = false;
    for (int i = 0; i < 16 && !hung; ++i) {
        auto c = co_await core::with_timeout(300ms, core::tcp_stream::connect(ep));
        if (c) {
            fillers.push_back(std::move(*c));
        } else {
            CHECK(c.error() == core::errc::timed_out);
            hung = true;
        }
    }
    REQUIRE_MESSAGE(hung, "the backlog never filled");
    CHECK(fillers.size() >= 1);

    std::optional<core::result<core::tcp_stream>> res;
    core::stop_source src;
    {
        core::task_scope scope;
        scope.spawn(store_into(with_token(core::tcp_stream::connect(ep), src.token()), res));
        REQUIRE(scope.size() == 1);
        src.request_stop();
        co_await scope.join();
    }
    REQUIRE(res.has_value());
    CHECK(res->error() == core::errc::operation_canceled);

    auto again = co_await core::with_timeout(100ms, core::tcp_stream::connect(ep));
    CHECK(again.error() == core::errc::timed_out);
}

core::task<void> write_cancelled_half_way(core::loop& lp) {
    auto l = listen_local(lp);
    auto [client, server] = co_await connect_pair(l);
    set_buffer_sizes(client.native_handle(), 64 * 1024);
    set_buffer_sizes(server.native_handle(), 64 * 1024);
    std::vector<std::byte> big(8u << 20, std::byte{'w'});

    // The peer never reads: part of the 8 MiB fits the socket buffers, the rest never does.
    auto w = co_await core::with_timeout(100ms, write_bytes(client, big));
    REQUIRE_FALSE(w);
    CHECK(w.error() == core::errc::timed_out);
    CHECK(client.broken());
    auto next = co_await client.write_all(core::as_bytes("more"));
    CHECK(next.error() == core::errc::stream_broken);
    // Reading is unaffected.
    REQUIRE(co_await server.write_all(core::as_bytes("still")));
    auto got = co_await read_exactly(client, 5);
    REQUIRE(got);
    CHECK(*got == "still");
}

/// Drains `s` until the writer finished, asking `src` to stop at the first bytes. A writer that
/// ignored the stop finishes too (once all its bytes were drained), so this never hangs.
core::task<std::size_t> drain_until_done(core::stream& s, core::stop_source& src,
                                         const std::optional<core::result<void>>& writer) {
    std::vector<std::byte> buf(256 * 1024);
    std::size_t total = 0;
    while (!writer.has_value()) {
        auto r = co_await core::with_timeout(20ms, read_some(s, buf));
        if (r) {
            total += *r;
            src.request_stop();
        } else if (r.error() != core::errc::timed_out) {
            break;
        }
    }
    co_return total;
}

core::task<void> write_cancelled_while_peer_drains(core::loop& lp, int rounds) {
    // The cancel arrives while the peer is draining, so a write step may complete in the same
    // loop iteration as the read that requests the stop. The write must still end (cancelled,
    // or complete) and never keep writing after the stop.
    for (int i = 0; i < rounds; ++i) {
        auto l = listen_local(lp);
        auto [client, server] = co_await connect_pair(l);
        set_buffer_sizes(client.native_handle(), 64 * 1024);
        set_buffer_sizes(server.native_handle(), 64 * 1024);
        std::vector<std::byte> big(8u << 20, std::byte{'d'});
        std::optional<core::result<void>> res;
        core::stop_source src;
        std::size_t drained = 0;
        {
            core::task_scope scope;
            scope.spawn(store_into(with_token(write_bytes(client, big), src.token()), res));
            drained = co_await drain_until_done(server, src, res);
            co_await scope.join();
        }
        REQUIRE(res.has_value());
        INFO("round " << i << ", drained " << drained << " bytes");
        REQUIRE_FALSE(*res);
        CHECK(res->error() == core::errc::operation_canceled);
        CHECK(client.broken());
        CHECK(drained > 0);
        CHECK(drained < big.size());
    }
}

/// Drains `s` until the writer finished; after the first bytes it sends one byte back, so the
/// writer's descriptor turns readable and writable in the same loop iteration.
core::task<std::size_t> drain_and_poke(core::tcp_stream& s,
                                       const std::optional<core::result<void>>& writer) {
    std::vector<std::byte> buf(256 * 1024);
    std::size_t total = 0;
    bool poked = false;
    while (!writer.has_value()) {
        auto r = co_await core::with_timeout(20ms, read_some(s, buf));
        if (r) {
            total += *r;
            if (!poked)
                send_now(s, "!");
            poked = true;
        } else if (r.error() != core::errc::timed_out) {
            break;
        }
    }
    co_return total;
}

/// Reads one byte from `s`, then asks `src` to stop.
core::task<void> read_then_stop(core::stream& s, core::stop_source& src) {
    std::byte b[1];
    auto r = co_await s.read_some(b);
    CHECK(r);
    src.request_stop();
}

core::task<void> write_cancelled_by_reader_of_same_stream(core::loop& lp, int rounds) {
    // The reader of the writing stream requests the stop when its byte arrives; on epoll the
    // read and the next write step complete from one readiness event, reader first.
    for (int i = 0; i < rounds; ++i) {
        auto l = listen_local(lp);
        auto [client, server] = co_await connect_pair(l);
        set_buffer_sizes(client.native_handle(), 64 * 1024);
        set_buffer_sizes(server.native_handle(), 64 * 1024);
        std::vector<std::byte> big(8u << 20, std::byte{'s'});
        std::optional<core::result<void>> res;
        core::stop_source src;
        std::size_t drained = 0;
        {
            core::task_scope scope;
            scope.spawn(store_into(with_token(write_bytes(client, big), src.token()), res));
            scope.spawn(read_then_stop(client, src));
            drained = co_await drain_and_poke(server, res);
            co_await scope.join();
        }
        REQUIRE(res.has_value());
        INFO("round " << i << ", drained " << drained << " bytes");
        REQUIRE_FALSE(*res);
        CHECK(res->error() == core::errc::operation_canceled);
        CHECK(client.broken());
        CHECK(drained < big.size());
    }
}

core::task<void> stop_before_start(core::loop& lp) {
    auto l = listen_local(lp);
    auto [client, server] = co_await connect_pair(l);
    REQUIRE(co_await client.write_all(core::as_bytes("waiting")));
    core::stop_source src;
    src.request_stop();

    std::byte buf[64];
    std::optional<core::result<std::size_t>> r;
    co_await store_into(with_token(read_some(server, buf), src.token()), r);
    REQUIRE(r.has_value());
    CHECK(r->error() == core::errc::operation_canceled);

    std::optional<core::result<void>> w;
    co_await store_into(with_token(write_bytes(server, core::as_bytes("no")), src.token()), w);
    REQUIRE(w.has_value());
    CHECK(w->error() == core::errc::operation_canceled);
    CHECK_FALSE(server.broken()); // nothing was written

    std::optional<core::result<core::tcp_stream>> a;
    co_await store_into(with_token(accept_one(l), src.token()), a);
    REQUIRE(a.has_value());
    CHECK(a->error() == core::errc::operation_canceled);

    std::optional<core::result<core::tcp_stream>> c;
    co_await store_into(with_token(core::tcp_stream::connect(endpoint_of(l)), src.token()), c);
    REQUIRE(c.has_value());
    CHECK(c->error() == core::errc::operation_canceled);

    // The cancelled read took nothing; the cancelled write sent nothing.
    auto got = co_await read_exactly(server, 7);
    REQUIRE(got);
    CHECK(*got == "waiting");
    REQUIRE(co_await server.write_all(core::as_bytes("ok")));
    auto back = co_await read_exactly(client, 2);
    REQUIRE(back);
    CHECK(*back == "ok");
}

} // namespace

TEST_SUITE("core.io_cancel") {

    TEST_CASE_TEMPLATE("a pending read cancelled through its stop token completes with "
                       "operation_canceled",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return cancel_pending_read(lp); });
    }

    TEST_CASE_TEMPLATE("a read cancelled as its data arrives returns the data or leaves it for the "
                       "next read",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return cancel_racing_data(lp); });
    }

    TEST_CASE_TEMPLATE("a read past its deadline times out and the stream stays readable", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return read_deadline(lp); });
    }

    TEST_CASE_TEMPLATE("an operation past its with_deadline times out and the stream stays "
                       "readable",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return op_deadline(lp); });
    }

    TEST_CASE_TEMPLATE("a pending accept can be cancelled and the listener keeps accepting", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return cancel_pending_accept(lp); });
    }

    TEST_CASE_TEMPLATE("a connect to a full backlog can be cancelled or timed out", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return cancel_pending_connect(lp); }, 20s);
    }

    TEST_CASE_TEMPLATE("a write cancelled half-way marks the stream broken", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return write_cancelled_half_way(lp); });
    }

    TEST_CASE_TEMPLATE("a write cancelled while the peer drains stops writing", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return write_cancelled_while_peer_drains(lp, 20); }, 20s);
    }

    TEST_CASE_TEMPLATE("a write cancelled by the reader of the same stream stops writing", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return write_cancelled_by_reader_of_same_stream(lp, 20); },
                  20s);
    }

    TEST_CASE_TEMPLATE(
        "an operation whose stop was requested before it started is cancelled at once", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return stop_before_start(lp); });
    }

} // TEST_SUITE
