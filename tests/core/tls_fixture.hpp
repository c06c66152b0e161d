#pragma once
// What the core.tls tests share (tests/core/tls_*_test.cpp, socket_eof_test.cpp): contexts
// over the generated test certificates, loopback TCP pairs, handshaking both ends at once,
// and the stream reads, writes and bulk transfers the cases check TLS with.

#include <coronet/core/tls.hpp>

#include <coronet/core/loop.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/when.hpp>

#include <testing/certs.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

namespace coronet::testing::tls_fixture {

using namespace std::chrono_literals;

// ---- contexts ------------------------------------------------------------------------------

/// The test CA as a file (tls_client_options takes a path).
struct ca_on_disk {
    coronet::testing::temp_dir dir;
    std::string ca_file = dir.write("ca.pem", coronet::testing::test_certificates().ca_pem);
};

inline const ca_on_disk& ca_files() {
    static const ca_on_disk files;
    return files;
}

inline core::tls_context server_context(const coronet::testing::pem_pair& cert,
                                        core::tls_server_options o = {}) {
    o.cert_pem = cert.cert_pem;
    o.key_pem = cert.key_pem;
    auto c = core::tls_context::server(o);
    REQUIRE_MESSAGE(c, c.error().message());
    REQUIRE(c->is_server());
    return std::move(*c);
}

inline core::tls_context client_context(core::tls_client_options o) {
    auto c = core::tls_context::client(o);
    REQUIRE_MESSAGE(c, c.error().message());
    REQUIRE_FALSE(c->is_server());
    return std::move(*c);
}

/// A client that trusts the test CA (and verifies, the default).
inline core::tls_context trusting_client(std::vector<std::string> alpn = {}) {
    core::tls_client_options o;
    o.ca_file = ca_files().ca_file;
    o.alpn = std::move(alpn);
    return client_context(o);
}

// ---- connections ---------------------------------------------------------------------------

// The shared ones (testing/run_bounded.hpp), so that a test file naming them and another file
// of the same unity batch reach the same functions.
using coronet::testing::connect_pair;
using coronet::testing::listen_local;

inline void set_buffer_sizes(int fd, int bytes) {
    REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes) == 0);
    REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) == 0);
}

struct tls_conn {
    std::unique_ptr<core::tls_stream> client;
    std::unique_ptr<core::tls_stream> server;
    core::result<void> client_hs;
    core::result<void> server_hs;
};

/// Handshakes both ends of the streams concurrently; the outcomes are in the result.
inline core::task<tls_conn> handshake_both(std::unique_ptr<core::tls_stream> client,
                                           std::unique_ptr<core::tls_stream> server) {
    tls_conn t;
    t.client = std::move(client);
    t.server = std::move(server);
    auto [ch, sh] = co_await core::when_all(t.client->handshake(), t.server->handshake());
    t.client_hs = ch;
    t.server_hs = sh;
    co_return t;
}

struct connect_options {
    std::string host = "localhost";
    core::tls_session resume;
    int socket_buffer = 0; ///< SO_SNDBUF/SO_RCVBUF of both sockets (0: the kernel's)
};

/// A TCP connection through `l`, wrapped in TLS on both ends and handshaken.
inline core::task<tls_conn> tls_connect(core::tcp_listener& l, const core::tls_context& server_ctx,
                                        const core::tls_context& client_ctx, connect_options o) {
    auto [c, s] = co_await connect_pair(l);
    if (o.socket_buffer > 0) {
        set_buffer_sizes(c.native_handle(), o.socket_buffer);
        set_buffer_sizes(s.native_handle(), o.socket_buffer);
    }
    auto client =
        core::tls_stream::client(client_ctx, std::make_unique<core::tcp_stream>(std::move(c)),
                                 std::move(o.host), std::move(o.resume));
    auto server =
        core::tls_stream::server(server_ctx, std::make_unique<core::tcp_stream>(std::move(s)));
    co_return co_await handshake_both(std::move(client), std::move(server));
}

/// tls_connect that requires both handshakes to succeed.
inline core::task<tls_conn> tls_connect_ok(core::tcp_listener& l,
                                           const core::tls_context& server_ctx,
                                           const core::tls_context& client_ctx, connect_options o) {
    auto t = co_await tls_connect(l, server_ctx, client_ctx, std::move(o));
    REQUIRE_MESSAGE(t.client_hs, t.client_hs.error().message());
    REQUIRE_MESSAGE(t.server_hs, t.server_hs.error().message());
    co_return t;
}

// Not coroutines: g++ 12 mishandles default arguments of coroutine parameters (the default
// object is destroyed twice), so the defaults live in these plain overloads.
inline core::task<tls_conn> tls_connect(core::tcp_listener& l, const core::tls_context& server_ctx,
                                        const core::tls_context& client_ctx) {
    return tls_connect(l, server_ctx, client_ctx, connect_options{});
}
inline core::task<tls_conn> tls_connect_ok(core::tcp_listener& l,
                                           const core::tls_context& server_ctx,
                                           const core::tls_context& client_ctx) {
    return tls_connect_ok(l, server_ctx, client_ctx, connect_options{});
}

// ---- byte helpers --------------------------------------------------------------------------

inline core::mutable_buffer bytes_of(std::string& s) {
    return {reinterpret_cast<std::byte*>(s.data()), s.size()};
}

inline core::task<core::result<std::size_t>> read_once(core::stream& s, core::mutable_buffer buf) {
    co_return co_await s.read_some(buf);
}

inline core::task<core::result<void>> write_text(core::stream& s, std::string text) {
    co_return co_await s.write_all(core::as_bytes(text));
}

/// Reads exactly `n` bytes (or fails with the read's error).
inline core::task<core::result<std::string>> read_exactly(core::stream& s, std::size_t n) {
    std::string out(n, '\0');
    std::size_t got = 0;
    while (got < n) {
        auto r = co_await s.read_some(bytes_of(out).subspan(got));
        if (!r)
            co_return r.error();
        got += *r;
    }
    co_return out;
}

/// Reads until end of stream; any other error is returned as is.
inline core::task<core::result<std::string>> read_to_eof(core::stream& s) {
    std::string out;
    std::string buf(4096, '\0');
    for (;;) {
        auto r = co_await s.read_some(bytes_of(buf));
        if (!r) {
            if (r.error() == core::errc::end_of_stream)
                co_return out;
            co_return r.error();
        }
        out.append(buf.data(), *r);
    }
}

/// Reads until any error and returns it (the bytes are dropped).
inline core::task<std::error_code> read_until_error(core::stream& s) {
    std::string buf(4096, '\0');
    for (;;) {
        auto r = co_await s.read_some(bytes_of(buf));
        if (!r)
            co_return r.error();
    }
}

/// Sends `text` and expects it back.
inline core::task<void> expect_echo(core::stream& s, std::string text) {
    REQUIRE(co_await s.write_all(core::as_bytes(text)));
    auto back = co_await read_exactly(s, text.size());
    REQUIRE_MESSAGE(back, back.error().message());
    CHECK(*back == text);
}

/// Echoes until end of stream, then shuts down. Returns the bytes echoed.
inline core::task<core::result<std::size_t>> echo_to_eof(core::stream& s) {
    std::string buf(16 * 1024, '\0');
    std::size_t total = 0;
    for (;;) {
        auto n = co_await s.read_some(bytes_of(buf));
        if (!n) {
            if (n.error() != core::errc::end_of_stream)
                co_return n.error();
            break;
        }
        if (auto w = co_await s.write_all(core::as_bytes(std::string_view(buf.data(), *n))); !w)
            co_return w.error();
        total += *n;
    }
    if (auto sd = co_await s.shutdown(); !sd)
        co_return sd.error();
    co_return total;
}

// ---- bulk transfers ------------------------------------------------------------------------

/// xorshift64*: deterministic sizes and data.
struct rng {
    std::uint64_t s;
    std::uint64_t next() noexcept {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 2685821657736338717ULL;
    }
    /// Uniform-ish in [lo, hi].
    std::size_t between(std::size_t lo, std::size_t hi) noexcept {
        return lo + static_cast<std::size_t>(next() % (hi - lo + 1));
    }
};

/// Order-sensitive checksum (FNV-1a 64) and length of a byte sequence.
struct checksum {
    std::uint64_t h = 14695981039346656037ULL;
    std::size_t bytes = 0;
    void add(const std::byte* p, std::size_t n) noexcept {
        for (std::size_t i = 0; i < n; ++i) {
            h ^= static_cast<std::uint8_t>(p[i]);
            h *= 1099511628211ULL;
        }
        bytes += n;
    }
    bool operator==(const checksum&) const = default;
};

/// Random bytes the senders slice from (a size that is not a power of two, so slices of
/// the stream at the same offset modulo a buffer size differ).
inline const std::vector<std::byte>& source_block() {
    static const std::vector<std::byte> block = [] {
        std::vector<std::byte> b((1u << 20) + 13);
        rng r{0x9e3779b97f4a7c15ULL};
        for (auto& x : b)
            x = static_cast<std::byte>(r.next() >> 56);
        return b;
    }();
    return block;
}

/// Writes `total` bytes in writes of random size in [1, max_write], then shuts down (when
/// `shutdown_after`). Returns the checksum of what it wrote.
inline core::task<core::result<checksum>> send_random(core::stream& s, std::size_t total,
                                                      std::uint64_t seed, std::size_t max_write,
                                                      bool shutdown_after) {
    const auto& block = source_block();
    rng r{seed};
    checksum sum;
    while (sum.bytes < total) {
        std::size_t off = sum.bytes % block.size();
        std::size_t n = std::min({r.between(1, max_write), total - sum.bytes, block.size() - off});
        if (auto w = co_await s.write_all(core::const_buffer(block.data() + off, n)); !w)
            co_return w.error();
        sum.add(block.data() + off, n);
    }
    if (shutdown_after) {
        if (auto sd = co_await s.shutdown(); !sd)
            co_return sd.error();
    }
    co_return sum;
}

/// Reads to end of stream in reads of random size in [1, max_read]; returns the checksum.
inline core::task<core::result<checksum>> receive_random(core::stream& s, std::uint64_t seed,
                                                         std::size_t max_read) {
    std::vector<std::byte> buf(max_read);
    rng r{seed};
    checksum sum;
    for (;;) {
        auto n = co_await s.read_some(core::mutable_buffer(buf.data(), r.between(1, max_read)));
        if (!n) {
            if (n.error() == core::errc::end_of_stream)
                co_return sum;
            co_return n.error();
        }
        sum.add(buf.data(), *n);
    }
}

/// Reads exactly `total` bytes; returns their checksum.
inline core::task<core::result<checksum>> receive_count(core::stream& s, std::size_t total) {
    std::vector<std::byte> buf(16 * 1024);
    checksum sum;
    while (sum.bytes < total) {
        auto n = co_await s.read_some(
            core::mutable_buffer(buf.data(), std::min(buf.size(), total - sum.bytes)));
        if (!n)
            co_return n.error();
        sum.add(buf.data(), *n);
    }
    co_return sum;
}

/// Echoes to end of stream, reading in chunks of random size in [1, max_read]; then shuts down.
inline core::task<core::result<std::size_t>> echo_random(core::stream& s, std::uint64_t seed,
                                                         std::size_t max_read) {
    std::vector<std::byte> buf(max_read);
    rng r{seed};
    std::size_t total = 0;
    for (;;) {
        auto n = co_await s.read_some(core::mutable_buffer(buf.data(), r.between(1, max_read)));
        if (!n) {
            if (n.error() != core::errc::end_of_stream)
                co_return n.error();
            break;
        }
        if (auto w = co_await s.write_all(core::const_buffer(buf.data(), *n)); !w)
            co_return w.error();
        total += *n;
    }
    if (auto sd = co_await s.shutdown(); !sd)
        co_return sd.error();
    co_return total;
}

/// `client` writes `total` random bytes (then close_notify) while it reads the echo in another
/// coroutine; `server` echoes in small random chunks. Checks every byte came back in order.
inline core::task<void> echo_transfer(core::stream& client, core::stream& server, std::size_t total,
                                      std::size_t max_write, std::size_t max_read) {
    auto sent_echoed_received = co_await core::when_all(
        send_random(client, total, 1, max_write, true), echo_random(server, 2, max_read),
        receive_random(client, 3, 64 * 1024));
    auto& sent = std::get<0>(sent_echoed_received);
    auto& echoed = std::get<1>(sent_echoed_received);
    auto& received = std::get<2>(sent_echoed_received);
    REQUIRE_MESSAGE(sent, sent.error().message());
    REQUIRE_MESSAGE(echoed, echoed.error().message());
    REQUIRE_MESSAGE(received, received.error().message());
    CHECK(sent->bytes == total);
    CHECK(*echoed == total);
    CHECK(received->bytes == total);
    CHECK(received->h == sent->h);
}

} // namespace coronet::testing::tls_fixture
