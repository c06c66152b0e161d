#include <coronet/core/tls.hpp>

#include "tls_fixture.hpp"

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <tuple>

#include <string>

namespace core = coronet::core;
namespace ct = coronet::testing;
using namespace std::chrono_literals;
using coronet::testing::run_on;
using namespace coronet::testing::tls_fixture;

namespace {

core::task<void> small_echo(core::loop& lp) {
    auto l = listen_local(lp);
    auto sctx = server_context(ct::test_certificates().server);
    auto cctx = trusting_client();
    auto t = co_await tls_connect_ok(l, sctx, cctx);
    CHECK(t.client->protocol_version() == "TLSv1.3");
    CHECK(t.server->protocol_version() == "TLSv1.3");
    CHECK(t.server->server_name() == "localhost");
    CHECK_FALSE(t.client->session_reused());

    auto [echoed, unused] =
        co_await core::when_all(echo_to_eof(*t.server), [](core::stream& c) -> core::task<void> {
            for (int i = 0; i < 20; ++i)
                co_await expect_echo(c, "message " + std::to_string(i));
            co_await expect_echo(c, "x");
            REQUIRE(co_await c.shutdown());
            auto rest = co_await read_to_eof(c);
            REQUIRE(rest);
            CHECK(rest->empty());
        }(*t.client));
    (void)unused;
    REQUIRE(echoed);
    std::size_t expected = 1;
    for (int i = 0; i < 20; ++i)
        expected += ("message " + std::to_string(i)).size();
    CHECK(*echoed == expected);
}

core::task<void> big_echo(core::loop& lp) {
    auto l = listen_local(lp);
    auto sctx = server_context(ct::test_certificates().server);
    auto cctx = trusting_client();
    // Small kernel buffers: partial sendmsg results and short reads on the transport.
    connect_options o;
    o.socket_buffer = 64 * 1024;
    auto t = co_await tls_connect_ok(l, sctx, cctx, std::move(o));
    co_await echo_transfer(*t.client, *t.server, 64u << 20, 200 * 1024, 8 * 1024);
}

/// Both ends write and read at the same time (nobody echoes): with small socket buffers both
/// writers stall until the other side reads, so each stream must keep reading while its own
/// write is pending.
core::task<void> full_duplex(core::loop& lp) {
    auto l = listen_local(lp);
    auto sctx = server_context(ct::test_certificates().server);
    auto cctx = trusting_client();
    connect_options o;
    o.socket_buffer = 64 * 1024;
    auto t = co_await tls_connect_ok(l, sctx, cctx, std::move(o));
    constexpr std::size_t total = 8u << 20;
    auto c_sent_c_got_s_sent_s_got = co_await core::when_all(
        send_random(*t.client, total, 11, 300 * 1024, true), receive_random(*t.client, 12, 5000),
        send_random(*t.server, total, 13, 300 * 1024, true), receive_random(*t.server, 14, 3000));
    auto& c_sent = std::get<0>(c_sent_c_got_s_sent_s_got);
    auto& c_got = std::get<1>(c_sent_c_got_s_sent_s_got);
    auto& s_sent = std::get<2>(c_sent_c_got_s_sent_s_got);
    auto& s_got = std::get<3>(c_sent_c_got_s_sent_s_got);
    REQUIRE_MESSAGE(c_sent, c_sent.error().message());
    REQUIRE_MESSAGE(c_got, c_got.error().message());
    REQUIRE_MESSAGE(s_sent, s_sent.error().message());
    REQUIRE_MESSAGE(s_got, s_got.error().message());
    CHECK(c_sent->bytes == total);
    CHECK(s_sent->bytes == total);
    CHECK(*s_got == *c_sent);
    CHECK(*c_got == *s_sent);
}

/// `first` shuts down; `second` reads its request and end of stream, answers and shuts down;
/// `first` (which may still read after its close_notify) reads the answer and end of stream.
core::task<void> half_close(core::stream& first, core::stream& second) {
    REQUIRE(co_await first.write_all(core::as_bytes("request")));
    REQUIRE(co_await first.shutdown());
    // Writing after close_notify is refused, not sent.
    auto late = co_await first.write_all(core::as_bytes("too late"));
    CHECK_FALSE(late);

    auto req = co_await read_to_eof(second);
    REQUIRE_MESSAGE(req, req.error().message());
    CHECK(*req == "request");
    std::byte b[16];
    auto again = co_await second.read_some(b);
    REQUIRE_FALSE(again);
    CHECK(again.error() == core::errc::end_of_stream); // sticky

    REQUIRE(co_await second.write_all(core::as_bytes("response")));
    REQUIRE(co_await second.shutdown());
    auto resp = co_await read_to_eof(first);
    REQUIRE_MESSAGE(resp, resp.error().message());
    CHECK(*resp == "response");
}

core::task<void> shutdown_both_ways(core::loop& lp, bool client_first) {
    auto l = listen_local(lp);
    auto sctx = server_context(ct::test_certificates().server);
    auto cctx = trusting_client();
    auto t = co_await tls_connect_ok(l, sctx, cctx);
    if (client_first)
        co_await half_close(*t.client, *t.server);
    else
        co_await half_close(*t.server, *t.client);
}

} // namespace

TEST_SUITE("core.tls") {

    TEST_CASE("the test certificates are generated and distinct") {
        const auto& pki = ct::test_certificates();
        CHECK(pki.ca_pem.find("BEGIN CERTIFICATE") != std::string::npos);
        for (const auto* p :
             {&pki.server, &pki.expired, &pki.other_host, &pki.self_signed, &pki.untrusted}) {
            CHECK(p->cert_pem.find("BEGIN CERTIFICATE") != std::string::npos);
            CHECK(p->key_pem.find("PRIVATE KEY") != std::string::npos);
        }
        CHECK(pki.server.cert_pem != pki.expired.cert_pem);
        CHECK(pki.server.key_pem != pki.self_signed.key_pem);
    }

    TEST_CASE("a server context refuses a key that does not match its certificate") {
        const auto& pki = ct::test_certificates();
        core::tls_server_options o;
        o.cert_pem = pki.server.cert_pem;
        o.key_pem = pki.other_host.key_pem;
        auto c = core::tls_context::server(o);
        REQUIRE_FALSE(c);
        CHECK(c.error().category() == core::tls_category());
    }

    TEST_CASE_TEMPLATE("small messages echo through TLS 1.3 and close cleanly", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return small_echo(lp); });
    }

    TEST_CASE_TEMPLATE("64 MiB echo with short reads and writes arrives intact", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return big_echo(lp); });
    }

    TEST_CASE_TEMPLATE("both ends read and write concurrently on one stream", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return full_duplex(lp); });
    }

    TEST_CASE_TEMPLATE("shutdown sends close_notify: the peer reads end_of_stream", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        bool client_first = true;
        SUBCASE("client first") {
            client_first = true;
        }
        SUBCASE("server first") {
            client_first = false;
        }
        run_on<B>([=](core::loop& lp) { return shutdown_both_ways(lp, client_first); });
    }

} // TEST_SUITE
