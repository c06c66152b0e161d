#include <coronet/core/socket.hpp>

#include <coronet/core/accept_loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/when.hpp>

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace core = coronet::core;
using namespace std::chrono_literals;

using coronet::testing::connect_pair;
using coronet::testing::endpoint_of;
using coronet::testing::listen_local;
using coronet::testing::run_on;

namespace {

// ---- helpers -------------------------------------------------------------------------------

core::tcp_listener listen_on(core::loop& lp, const core::endpoint& ep,
                             core::listen_options o = {}) {
    auto l = core::tcp_listener::bind(lp, ep, o);
    REQUIRE_MESSAGE(l, l.error().message());
    return std::move(*l);
}

/// Reads exactly `n` bytes (or fails with the read's error).
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

/// Reads until end of stream.
core::task<core::result<std::string>> read_to_eof(core::stream& s) {
    std::string out;
    char buf[4096];
    for (;;) {
        auto r = co_await s.read_some(
            core::mutable_buffer(reinterpret_cast<std::byte*>(buf), sizeof buf));
        if (!r) {
            if (r.error() == core::errc::end_of_stream)
                co_return out;
            co_return r.error();
        }
        out.append(buf, *r);
    }
}

void set_buffer_sizes(int fd, int bytes) {
    REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes) == 0);
    REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) == 0);
}

/// The byte at position `i` of a test pattern that does not repeat every 256 bytes.
inline std::byte pattern(std::size_t i) noexcept {
    return static_cast<std::byte>((i * 131 + (i >> 11) * 7 + (i >> 19)) & 0xff);
}

// ---- bodies --------------------------------------------------------------------------------

core::task<void> round_trip(core::loop& lp) {
    auto l = listen_local(lp);
    CHECK(endpoint_of(l).port() != 0);
    auto [client, server] = co_await connect_pair(l);

    auto sent = co_await client.write_all(core::as_bytes("hello server"));
    REQUIRE(sent);
    auto got = co_await read_exactly(server, 12);
    REQUIRE(got);
    CHECK(*got == "hello server");

    REQUIRE(co_await server.write_all(core::as_bytes("hello client")));
    auto back = co_await read_exactly(client, 12);
    REQUIRE(back);
    CHECK(*back == "hello client");

    auto local = client.local_endpoint();
    auto remote = server.remote_endpoint();
    REQUIRE(local);
    REQUIRE(remote);
    CHECK(local->to_string() == remote->to_string());
    CHECK(client.remote_endpoint()->port() == endpoint_of(l).port());
}

core::task<void> eof_after_peer_close(core::loop& lp) {
    auto l = listen_local(lp);
    auto [client, server] = co_await connect_pair(l);
    REQUIRE(co_await client.write_all(core::as_bytes("last words")));
    client.close();
    CHECK_FALSE(client.is_open());

    auto all = co_await read_to_eof(server);
    REQUIRE(all);
    CHECK(*all == "last words");
    // End of stream is sticky.
    std::byte b[8];
    auto again = co_await server.read_some(b);
    CHECK(again.error() == core::errc::end_of_stream);
}

core::task<void> reset_by_peer(core::loop& lp) {
    auto l = listen_local(lp);
    auto [client, server] = co_await connect_pair(l);
    ::linger lg{1, 0};
    REQUIRE(::setsockopt(server.native_handle(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    server.close(); // abortive close: RST

    std::byte b[64];
    auto r = co_await client.read_some(b);
    REQUIRE_FALSE(r);
    CHECK(r.error() == core::errno_code(ECONNRESET));
    CHECK(r.error() == std::errc::connection_reset);
}

core::task<void> refused(core::loop& lp) {
    core::endpoint ep;
    {
        auto l = listen_local(lp);
        ep = endpoint_of(l);
    } // closed: nothing listens on the port now
    auto c = co_await core::tcp_stream::connect(ep);
    REQUIRE_FALSE(c);
    CHECK(c.error() == core::errno_code(ECONNREFUSED));
}

core::task<void> slow_reader(core::stream& s, std::size_t total, std::size_t chunk,
                             std::size_t& received, bool& in_order) {
    std::vector<std::byte> buf(chunk);
    in_order = true;
    while (received < total) {
        auto r = co_await s.read_some(buf);
        if (!r)
            break;
        for (std::size_t i = 0; i < *r; ++i)
            if (buf[i] != pattern(received + i))
                in_order = false;
        received += *r;
    }
}

core::task<core::result<void>> write_bytes(core::stream& s, core::const_buffer b) {
    co_return co_await s.write_all(b);
}

core::task<core::result<void>> write_buffers(core::stream& s,
                                             std::span<const core::const_buffer> b) {
    co_return co_await s.writev(b);
}

core::task<void> large_write(core::loop& lp) {
    auto l = listen_local(lp);
    auto [client, server] = co_await connect_pair(l);
    // Small kernel buffers force many partial sendmsg results.
    set_buffer_sizes(client.native_handle(), 64 * 1024);
    set_buffer_sizes(server.native_handle(), 64 * 1024);

    constexpr std::size_t total = 32u << 20;
    std::vector<std::byte> data(total);
    for (std::size_t i = 0; i < total; ++i)
        data[i] = pattern(i);

    std::size_t received = 0;
    bool in_order = false;
    auto [w, unused] = co_await core::when_all(
        write_bytes(client, data), slow_reader(server, total, 1000, received, in_order));
    (void)unused;
    CHECK(w);
    CHECK(received == total);
    CHECK(in_order);
    CHECK_FALSE(client.broken());
}

core::task<void> many_buffers(core::loop& lp) {
    auto l = listen_local(lp);
    auto [client, server] = co_await connect_pair(l);
    set_buffer_sizes(client.native_handle(), 16 * 1024);
    set_buffer_sizes(server.native_handle(), 16 * 1024);

    // 30 buffers (several iovec windows of stream_op::max_iov), sizes from empty to 200 KiB,
    // each a slice of one pattern so order errors show up as wrong bytes.
    constexpr std::size_t count = 30;
    static_assert(count > core::stream_op::max_iov * 3);
    std::vector<std::size_t> sizes;
    std::size_t total = 0;
    for (std::size_t i = 0; i < count; ++i) {
        std::size_t n = i == 5 ? 0 : (i % 7 == 0 ? 200 * 1024 : 1 + i * 37);
        sizes.push_back(n);
        total += n;
    }
    std::vector<std::byte> data(total);
    for (std::size_t i = 0; i < total; ++i)
        data[i] = pattern(i);
    std::vector<core::const_buffer> bufs;
    std::size_t at = 0;
    for (std::size_t n : sizes) {
        bufs.emplace_back(data.data() + at, n);
        at += n;
    }

    std::size_t received = 0;
    bool in_order = false;
    auto [w, unused] = co_await core::when_all(write_buffers(client, bufs),
                                               slow_reader(server, total, 777, received, in_order));
    (void)unused;
    CHECK(w);
    CHECK(received == total);
    CHECK(in_order);
}

core::task<void> half_close(core::loop& lp) {
    auto l = listen_local(lp);
    auto [client, server] = co_await connect_pair(l);
    REQUIRE(co_await client.write_all(core::as_bytes("request")));
    REQUIRE(co_await client.shutdown());

    // The server sees the whole request, then end of stream...
    auto req = co_await read_to_eof(server);
    REQUIRE(req);
    CHECK(*req == "request");
    // ...and can still answer: the client's reading side stays open.
    REQUIRE(co_await server.write_all(core::as_bytes("response")));
    server.close();
    auto resp = co_await read_to_eof(client);
    REQUIRE(resp);
    CHECK(*resp == "response");
    // Writing after shutdown fails with EPIPE (a value, not SIGPIPE).
    auto w = co_await client.write_all(core::as_bytes("more"));
    CHECK_FALSE(w);
}

core::task<void> ipv6_round_trip(core::loop& lp, bool& skipped) {
    auto ep = core::endpoint::parse("[::1]:0");
    REQUIRE(ep);
    core::listen_options o;
    o.v6_only = true;
    auto bound = core::tcp_listener::bind(lp, *ep, o);
    if (!bound) {
        skipped = true;
        co_return;
    }
    auto [client, server] = co_await connect_pair(*bound);
    CHECK(endpoint_of(*bound).family() == AF_INET6);
    CHECK(endpoint_of(*bound).port() != 0);
    auto peer = server.remote_endpoint();
    REQUIRE(peer);
    CHECK(peer->family() == AF_INET6);
    CHECK(peer->host_string() == "::1");
    REQUIRE(co_await client.write_all(core::as_bytes("six")));
    auto got = co_await read_exactly(server, 3);
    REQUIRE(got);
    CHECK(*got == "six");
}

std::string abstract_unix_path() {
    static int n = 0;
    return "@coronet-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

core::task<void> unix_round_trip(core::loop& lp) {
    auto ep = core::endpoint::from_unix_path(abstract_unix_path());
    REQUIRE(ep);
    auto l = listen_on(lp, *ep);
    CHECK(endpoint_of(l).family() == AF_UNIX);
    CHECK(endpoint_of(l).to_string() == ep->to_string());
    auto [client, server] = co_await connect_pair(l);
    CHECK(client.set_nodelay(true)); // a no-op on Unix sockets, not an error

    REQUIRE(co_await client.write_all(core::as_bytes("over a unix socket")));
    REQUIRE(co_await client.shutdown());
    auto got = co_await read_to_eof(server);
    REQUIRE(got);
    CHECK(*got == "over a unix socket");
    REQUIRE(co_await server.write_all(core::as_bytes("ack")));
    server.close();
    auto back = co_await read_to_eof(client);
    REQUIRE(back);
    CHECK(*back == "ack");
}

// -- many concurrent connections ---------------------------------------------------------------

/// Resumes every waiter (through the loop) once `expected` coroutines have arrived.
struct barrier {
    core::loop& lp;
    std::size_t expected;
    std::size_t arrived = 0;
    std::vector<std::coroutine_handle<>> waiters;

    struct awaiter {
        barrier& b;
        bool await_ready() noexcept {
            if (++b.arrived < b.expected)
                return false;
            for (auto h : b.waiters)
                b.lp.post([h] { h.resume(); });
            b.waiters.clear();
            return true;
        }
        void await_suspend(std::coroutine_handle<> h) { b.waiters.push_back(h); }
        void await_resume() const noexcept {}
    };
    awaiter arrive() noexcept { return {*this}; }
};

struct echo_stats {
    std::size_t live = 0;
    std::size_t max_live = 0;
    std::size_t handled = 0;
};

core::task<void> echo_handler(core::tcp_stream s, echo_stats& st) {
    ++st.live;
    if (st.live > st.max_live)
        st.max_live = st.live;
    char buf[512];
    for (;;) {
        auto r = co_await s.read_some(
            core::mutable_buffer(reinterpret_cast<std::byte*>(buf), sizeof buf));
        if (!r)
            break;
        if (!co_await s.write_all(core::const_buffer(reinterpret_cast<std::byte*>(buf), *r)))
            break;
    }
    ++st.handled;
    --st.live;
}

core::task<void> echo_client(core::endpoint ep, std::size_t i, barrier& all_connected,
                             std::size_t& ok) {
    auto c = co_await core::tcp_stream::connect(ep);
    if (!c) {
        FAIL_CHECK("connect " << i << ": " << c.error().message());
        co_await all_connected.arrive();
        co_return;
    }
    const std::string msg = "message from client " + std::to_string(i);
    bool echoed = false;
    if (co_await c->write_all(core::as_bytes(msg))) {
        auto first = co_await read_exactly(*c, msg.size());
        echoed = first && *first == msg;
    }
    // Hold the connection open until every client has been echoed once.
    co_await all_connected.arrive();
    if (echoed && co_await c->shutdown()) {
        auto rest = co_await read_to_eof(*c);
        if (rest && rest->empty())
            ++ok;
    }
}

core::task<void> accept_server(core::tcp_listener& l, core::task_scope& scope, echo_stats& st) {
    co_await core::accept_loop(
        l, scope, [&st](core::tcp_stream s) { return echo_handler(std::move(s), st); });
}

core::task<void> thousand_connections(core::loop& lp, std::size_t n) {
    auto l = listen_local(lp);
    const core::endpoint ep = endpoint_of(l);
    echo_stats st;
    std::size_t ok = 0;
    barrier all_connected{lp, n, 0, {}};
    {
        core::task_scope server;
        server.spawn(accept_server(l, server, st));
        core::task_scope clients;
        for (std::size_t i = 0; i < n; ++i)
            clients.spawn(echo_client(ep, i, all_connected, ok));
        co_await clients.join();
        server.request_stop();
        co_await server.join();
    }
    CHECK(ok == n);
    CHECK(st.handled == n);
    CHECK(st.max_live == n); // every connection was open at the same time
    CHECK(st.live == 0);
}

void ensure_descriptors(rlim_t wanted) {
    ::rlimit rl{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_cur >= wanted)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= wanted ? wanted : rl.rlim_max;
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &rl) == 0);
    REQUIRE_MESSAGE(rl.rlim_cur >= wanted, "RLIMIT_NOFILE hard limit too low");
}

core::task<void> lent_receive(core::loop& lp) {
    auto l = listen_local(lp);
    auto [client, server] = co_await connect_pair(l);
    REQUIRE(co_await client.write_all(core::as_bytes("lent bytes")));
    std::string got;
    while (got.size() < 10) {
        auto r = co_await server.receive();
        REQUIRE(r);
        CHECK(r->size() >= 1);
        got += core::as_string(*r);
    }
    CHECK(got == "lent bytes");
    server.release_receive_buffer();

    // After a release the next receive allocates again and still works.
    REQUIRE(co_await client.write_all(core::as_bytes("again")));
    client.close();
    std::string more;
    for (;;) {
        auto r = co_await server.receive();
        if (!r) {
            CHECK(r.error() == core::errc::end_of_stream);
            break;
        }
        more += core::as_string(*r);
    }
    CHECK(more == "again");
}

core::task<void> moved_stream_reads(core::loop& lp) {
    auto l = listen_local(lp);
    auto [client, server] = co_await connect_pair(l);

    // A read that parks registers the descriptor (epoll); the moves must carry it over.
    REQUIRE(co_await client.write_all(core::as_bytes("one")));
    auto first = co_await read_exactly(server, 3);
    REQUIRE(first);
    CHECK(*first == "one");
    auto pending = co_await core::when_all(read_exactly(server, 4),
                                           write_bytes(client, core::as_bytes("park")));
    REQUIRE(std::get<0>(pending));
    CHECK(*std::get<0>(pending) == "park");

    core::tcp_stream moved(std::move(server));
    CHECK_FALSE(server.is_open());
    CHECK(moved.is_open());
    auto [r1, w1] =
        co_await core::when_all(read_exactly(moved, 3), write_bytes(client, core::as_bytes("two")));
    REQUIRE(w1);
    REQUIRE(r1);
    CHECK(*r1 == "two");

    core::tcp_stream assigned;
    assigned = std::move(moved);
    CHECK_FALSE(moved.is_open());
    auto [r2, w2] = co_await core::when_all(read_exactly(assigned, 5),
                                            write_bytes(client, core::as_bytes("three")));
    REQUIRE(w2);
    REQUIRE(r2);
    CHECK(*r2 == "three");

    // And in the other direction, from the moved stream.
    REQUIRE(co_await assigned.write_all(core::as_bytes("back")));
    auto back = co_await read_exactly(client, 4);
    REQUIRE(back);
    CHECK(*back == "back");
}

// A tcp_stream batches its writes on io_uring (a write that waits goes out with the loop's next
// submission) and not on epoll; a closed one does not; written either way, the bytes arrive.
core::task<void> batched_writes(core::loop& lp, bool expected) {
    auto l = listen_local(lp);
    auto [client, server] = co_await connect_pair(l);
    CHECK(client.batches_writes() == expected);
    CHECK(server.batches_writes() == expected);
    const core::const_buffer parts[] = {core::as_bytes("one "), core::as_bytes("two")};
    REQUIRE(co_await server.writev(parts));
    auto got = co_await read_exactly(client, 7);
    REQUIRE(got);
    CHECK(*got == "one two");
    client.close();
    CHECK_FALSE(client.batches_writes());
}

} // namespace

TEST_SUITE("core.socket") {

    TEST_CASE_TEMPLATE("a tcp_stream batches its writes on io_uring only", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) {
            return batched_writes(lp, B::kind == core::backend_kind::uring);
        });
    }

    TEST_CASE_TEMPLATE("a connected pair exchanges bytes in both directions", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return round_trip(lp); });
    }

    TEST_CASE_TEMPLATE("a read after the peer closed reports end_of_stream", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return eof_after_peer_close(lp); });
    }

    TEST_CASE_TEMPLATE("a read after the peer reset the connection reports ECONNRESET", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return reset_by_peer(lp); });
    }

    TEST_CASE_TEMPLATE("connecting to a port nobody listens on is refused", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return refused(lp); });
    }

    TEST_CASE_TEMPLATE("a 32 MiB write_all arrives complete and in order at a slow reader", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return large_write(lp); }, 30s);
    }

    TEST_CASE_TEMPLATE("writev of more buffers than one iovec window arrives in order", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return many_buffers(lp); });
    }

    TEST_CASE_TEMPLATE("shutdown gives the peer end of stream while the shut side can still read",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return half_close(lp); });
    }

    TEST_CASE_TEMPLATE("streams work over the IPv6 loopback", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        bool skipped = false;
        run_on<B>([&skipped](core::loop& lp) { return ipv6_round_trip(lp, skipped); });
        if (skipped)
            MESSAGE("no IPv6 loopback ([::1]): skipped");
    }

    TEST_CASE_TEMPLATE("streams work over an abstract Unix-domain socket", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return unix_round_trip(lp); });
    }

    TEST_CASE_TEMPLATE("an accept_loop server echoes 1000 connections open at the same time", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        constexpr std::size_t n = 1000;
        ensure_descriptors(2 * n + 64);
        run_on<B>([](core::loop& lp) { return thousand_connections(lp, n); }, 30s);
    }

    TEST_CASE_TEMPLATE("receive returns the bytes in a lent buffer", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return lent_receive(lp); });
    }

    TEST_CASE_TEMPLATE("a stream moved after it was registered keeps reading and writing", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return moved_stream_reads(lp); });
    }

} // TEST_SUITE

namespace {

core::task<void> try_write_until_full(core::loop& lp) {
    auto l = listen_local(lp);
    auto [client, server] = co_await connect_pair(l);
    auto first = client.try_write(core::as_bytes("hello"));
    REQUIRE(first);
    CHECK(*first == 5);
    std::byte got[5];
    auto n = co_await server.read_some(got);
    REQUIRE(n);
    CHECK(core::as_string({got, *n}) == "hello");
    // Nobody reads now: the socket buffers fill up and try_write reports 0 instead of waiting.
    std::vector<std::byte> chunk(256 * 1024, std::byte{1});
    bool saw_zero = false;
    for (int i = 0; i < 1000 && !saw_zero; ++i) {
        auto w = client.try_write(chunk);
        REQUIRE(w);
        saw_zero = *w == 0;
    }
    CHECK(saw_zero);
}

} // namespace

TEST_SUITE("core.socket") {
    TEST_CASE_TEMPLATE("try_write sends what fits at once and reports 0 when the buffer is full", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return try_write_until_full(lp); });
    }
} // TEST_SUITE
