#include <coronet/core/connect.hpp>

#include <coronet/core/resolve.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/tls.hpp>
#include <coronet/core/when.hpp>

#include <testing/backends.hpp>
#include <testing/certs.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <cerrno>
#include <memory>
#include <ostream>
#include <string>
#include <utility>

namespace core = coronet::core;
namespace ct = coronet::testing;

using ct::endpoint_of;
using ct::run_on;

namespace {

core::tcp_listener listen_on(core::loop& lp, const core::endpoint& ep) {
    auto l = core::tcp_listener::bind(lp, ep);
    REQUIRE_MESSAGE(l, l.error().message());
    return std::move(*l);
}

/// Accepts one connection; with `tls`, also runs the server side of the handshake.
core::task<core::result<core::stream_ptr>> accept_one(core::tcp_listener& l,
                                                      const core::tls_context* tls) {
    auto s = co_await l.accept();
    if (!s)
        co_return s.error();
    core::stream_ptr plain = std::make_unique<core::tcp_stream>(std::move(*s));
    if (tls == nullptr)
        co_return std::move(plain);
    auto t = core::tls_stream::server(*tls, std::move(plain));
    auto hs = co_await t->handshake();
    if (!hs)
        co_return hs.error();
    co_return core::stream_ptr(std::move(t));
}

/// Writes `text` on `from` and reads it back on `to`.
core::task<std::string> carry(core::stream& from, core::stream& to, std::string text) {
    auto w = co_await from.write_all(core::as_bytes(text));
    REQUIRE_MESSAGE(w, w.error().message());
    std::string got(text.size(), '\0');
    std::size_t n = 0;
    while (n < got.size()) {
        auto r = co_await to.read_some(
            core::mutable_buffer(reinterpret_cast<std::byte*>(got.data()) + n, got.size() - n));
        REQUIRE_MESSAGE(r, r.error().message());
        n += *r;
    }
    co_return got;
}

core::tls_context server_tls(const ct::pem_pair& cert) {
    core::tls_server_options o;
    o.cert_pem = cert.cert_pem;
    o.key_pem = cert.key_pem;
    auto c = core::tls_context::server(o);
    REQUIRE_MESSAGE(c, c.error().message());
    return std::move(*c);
}

/// A client context that trusts the test CA and verifies (the default).
core::tls_context trusting_client(const ct::temp_dir& dir) {
    core::tls_client_options o;
    o.ca_file = dir.write("ca.pem", ct::test_certificates().ca_pem);
    auto c = core::tls_context::client(o);
    REQUIRE_MESSAGE(c, c.error().message());
    return std::move(*c);
}

core::task<void> plain_connect(core::loop& lp) {
    auto l = listen_on(lp, core::endpoint::loopback_v4(0));
    auto [c, s] = co_await core::when_all(
        core::connect("127.0.0.1", endpoint_of(l).port(), nullptr), accept_one(l, nullptr));
    REQUIRE_MESSAGE(c, c.error().message());
    REQUIRE_MESSAGE(s, s.error().message());
    CHECK(dynamic_cast<core::tcp_stream*>(c->get()) != nullptr);
    CHECK(co_await carry(**c, **s, "ping") == "ping");
    CHECK(co_await carry(**s, **c, "pong") == "pong");
}

core::task<void> refused(core::loop& lp) {
    std::uint16_t port = 0;
    {
        auto l = listen_on(lp, core::endpoint::loopback_v4(0));
        port = endpoint_of(l).port();
    } // closed: nothing listens on the port now
    auto c = co_await core::connect("127.0.0.1", port, nullptr);
    REQUIRE_FALSE(c);
    CHECK(c.error() == core::errno_code(ECONNREFUSED));
}

core::task<void> next_address(core::loop& lp) {
    // "localhost" usually names both ::1 and 127.0.0.1. Listening on the address it lists last
    // makes every earlier one refuse, so only trying them all in turn reaches the listener.
    auto addrs = co_await core::resolve("localhost", 0);
    REQUIRE_MESSAGE(addrs, addrs.error().message());
    if (addrs->size() < 2) {
        MESSAGE("localhost resolves to one address here: nothing to fall back from, skipped");
        co_return;
    }
    auto l = listen_on(lp, addrs->back());
    auto [c, s] = co_await core::when_all(
        core::connect("localhost", endpoint_of(l).port(), nullptr), accept_one(l, nullptr));
    REQUIRE_MESSAGE(c, c.error().message());
    REQUIRE_MESSAGE(s, s.error().message());
    CHECK(co_await carry(**c, **s, "found") == "found");
}

/// Connects over TLS to a server with the test certificate (DNS:localhost, IP:127.0.0.1),
/// verifying against `server_name`, or against the host when it is empty.
core::task<void> tls_verified(core::loop& lp, std::string server_name) {
    ct::temp_dir dir;
    const core::tls_context sctx = server_tls(ct::test_certificates().server);
    const core::tls_context cctx = trusting_client(dir);
    auto l = listen_on(lp, core::endpoint::loopback_v4(0));
    const std::uint16_t port = endpoint_of(l).port();
    const bool named = !server_name.empty();
    auto connecting = named ? core::connect("127.0.0.1", port, &cctx, server_name)
                            : core::connect("127.0.0.1", port, &cctx);
    auto [c, s] = co_await core::when_all(std::move(connecting), accept_one(l, &sctx));
    REQUIRE_MESSAGE(c, c.error().message());
    REQUIRE_MESSAGE(s, s.error().message());
    REQUIRE(dynamic_cast<core::tls_stream*>(c->get()) != nullptr);
    auto* server_side = dynamic_cast<core::tls_stream*>(s->get());
    REQUIRE(server_side != nullptr);
    // SNI carries a name, never an IP address.
    CHECK(server_side->server_name() == server_name);
    CHECK(co_await carry(**c, **s, "secret") == "secret");
    CHECK(co_await carry(**s, **c, "ok") == "ok");
}

core::task<void> tls_wrong_name(core::loop& lp) {
    ct::temp_dir dir;
    const core::tls_context sctx = server_tls(ct::test_certificates().server);
    const core::tls_context cctx = trusting_client(dir);
    auto l = listen_on(lp, core::endpoint::loopback_v4(0));
    auto [c, s] = co_await core::when_all(
        core::connect("127.0.0.1", endpoint_of(l).port(), &cctx, "other.example"),
        accept_one(l, &sctx));
    REQUIRE_FALSE(c);
    CHECK(c.error().category() == core::tls_verify_category());
    CHECK_FALSE(s); // the client gave up on the handshake
}

} // namespace

TEST_SUITE("core.connect") {

    TEST_CASE_TEMPLATE("connect reaches a listener by its numeric address and the stream carries "
                       "bytes both ways",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return plain_connect(lp); });
    }

    TEST_CASE_TEMPLATE("connect to a port nobody listens on reports the refusal", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return refused(lp); });
    }

    TEST_CASE_TEMPLATE("connect tries each address of a name until one accepts", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return next_address(lp); });
    }

    TEST_CASE_TEMPLATE("connect with a TLS context and a server name sends it as SNI and "
                       "returns a stream verified against it",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return tls_verified(lp, "localhost"); });
    }

    TEST_CASE_TEMPLATE("connect with a TLS context and no server name verifies the host's IP "
                       "address",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return tls_verified(lp, ""); });
    }

    TEST_CASE_TEMPLATE("connect with a server name the certificate does not cover fails with a "
                       "verification error",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return tls_wrong_name(lp); });
    }
}
