#include <coronet/core/tls.hpp>

#include "tls_fixture.hpp"

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace core = coronet::core;
namespace ct = coronet::testing;
using namespace std::chrono_literals;
using coronet::testing::run_on;
using namespace coronet::testing::tls_fixture;

namespace {

core::task<void> alpn(core::loop& lp, std::vector<std::string> server_protos,
                      std::vector<std::string> client_protos, std::string expected) {
    auto l = listen_local(lp);
    core::tls_server_options so;
    so.alpn = std::move(server_protos);
    auto sctx = server_context(ct::test_certificates().server, so);
    auto cctx = trusting_client(std::move(client_protos));
    auto t = co_await tls_connect_ok(l, sctx, cctx);
    CHECK(t.client->alpn_protocol() == expected);
    CHECK(t.server->alpn_protocol() == expected);
}

core::task<void> sni(core::loop& lp) {
    auto l = listen_local(lp);
    const auto& pki = ct::test_certificates();
    auto default_ctx = server_context(pki.server);
    auto other_ctx = server_context(pki.other_host);
    std::vector<std::string> asked;
    default_ctx.set_sni_handler([&](std::string_view name) -> const core::tls_context* {
        asked.emplace_back(name);
        return name == "other.example" ? &other_ctx : nullptr;
    });
    auto cctx = trusting_client();

    {
        // Verified against other.example: the client saw the other context's certificate.
        connect_options o;
        o.host = "other.example";
        auto t = co_await tls_connect_ok(l, default_ctx, cctx, std::move(o));
        CHECK(t.server->server_name() == "other.example");
        co_await [](core::stream& c, core::stream& s) -> core::task<void> {
            auto [r, unused] =
                co_await core::when_all(echo_to_eof(s), [](core::stream& cc) -> core::task<void> {
                    co_await expect_echo(cc, "via sni");
                    REQUIRE(co_await cc.shutdown());
                }(c));
            (void)unused;
            CHECK(r);
        }(*t.client, *t.server);
    }
    {
        // The handler keeps the default context: its certificate names localhost.
        auto t = co_await tls_connect_ok(l, default_ctx, cctx);
        CHECK(t.server->server_name() == "localhost");
    }
    {
        // An unknown name also gets the default certificate, which the client refuses.
        connect_options o;
        o.host = "unknown.example";
        auto t = co_await tls_connect(l, default_ctx, cctx, std::move(o));
        REQUIRE_FALSE(t.client_hs);
        CHECK(t.client_hs.error().category() == core::tls_verify_category());
        CHECK(t.client_hs.error().message().find("hostname mismatch") != std::string::npos);
        CHECK(t.server->server_name() == "unknown.example");
    }
    REQUIRE(asked.size() == 3);
    CHECK(asked[0] == "other.example");
    CHECK(asked[1] == "localhost");
    CHECK(asked[2] == "unknown.example");
}

/// How the connection that yields the session ends.
enum class first_end { client_shutdown, server_shutdown, dropped, truncated };

core::task<void> resumption(core::loop& lp, bool tickets, first_end end) {
    auto l = listen_local(lp);
    core::tls_server_options so;
    so.session_tickets = tickets;
    auto sctx = server_context(ct::test_certificates().server, so);
    auto cctx = trusting_client();

    core::tls_session saved;
    {
        auto t = co_await tls_connect_ok(l, sctx, cctx);
        CHECK_FALSE(t.client->session_reused());
        CHECK_FALSE(t.server->session_reused());
        // TLS 1.3 tickets arrive after the handshake: the first read collects them.
        auto [w, got] =
            co_await core::when_all(write_text(*t.server, "hi"), read_exactly(*t.client, 2));
        REQUIRE(w);
        REQUIRE(got);
        CHECK(*got == "hi");
        saved = t.client->session();
        CHECK(saved.valid() == tickets);
        if (end == first_end::client_shutdown) {
            REQUIRE(co_await t.client->shutdown());
        } else if (end == first_end::server_shutdown) {
            REQUIRE(co_await t.server->shutdown());
            auto rest = co_await read_to_eof(*t.client);
            REQUIRE(rest);
            CHECK(rest->empty());
        }
        if (end == first_end::truncated) {
            // The server vanishes: the client's read fails (a fatal error for OpenSSL).
            t.server->close();
            const std::error_code ec = co_await read_until_error(*t.client);
            CHECK(ec.category() == core::tls_category());
        }
        // Both streams are destroyed here; `dropped` sends no close_notify at all.
    }
    connect_options o;
    o.resume = saved;
    auto t = co_await tls_connect_ok(l, sctx, cctx, std::move(o));
    // A session whose connection ended in a fatal error is not resumed.
    const bool resumable = tickets && end != first_end::truncated;
    CHECK(t.client->session_reused() == resumable);
    CHECK(t.server->session_reused() == resumable);
    auto [w, got] =
        co_await core::when_all(write_text(*t.client, "again"), read_exactly(*t.server, 5));
    REQUIRE(w);
    REQUIRE(got);
    CHECK(*got == "again");
}

} // namespace

TEST_SUITE("core.tls") {

    TEST_CASE_TEMPLATE("ALPN picks the server's preference, or nothing without overlap", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        std::vector<std::string> server_protos{"h2", "http/1.1"};
        std::vector<std::string> client_protos;
        std::string expected;
        SUBCASE("server preference wins") {
            client_protos = {"http/1.1", "h2"};
            expected = "h2";
        }
        SUBCASE("one shared protocol") {
            client_protos = {"spdy/3", "http/1.1"};
            expected = "http/1.1";
        }
        SUBCASE("no overlap") {
            client_protos = {"x-unknown"};
            expected = "";
        }
        SUBCASE("client offers none") {
            expected = "";
        }
        SUBCASE("server supports none") {
            server_protos.clear();
            client_protos = {"h2"};
            expected = "";
        }
        run_on<B>([&](core::loop& lp) { return alpn(lp, server_protos, client_protos, expected); });
    }

    TEST_CASE_TEMPLATE("an SNI handler picks the certificate for the requested name", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return sni(lp); });
    }

    TEST_CASE_TEMPLATE("a second connection resumes the session from a TLS 1.3 ticket", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        bool tickets = true;
        first_end end = first_end::client_shutdown;
        SUBCASE("the first connection ends with the client's close_notify") {}
        // Regression: OpenSSL drops the session of a connection freed without our own
        // close_notify from resumption, though the connection was fine.
        SUBCASE("the first connection ends with the server's close_notify") {
            end = first_end::server_shutdown;
        }
        SUBCASE("the first connection is dropped without close_notify") {
            end = first_end::dropped;
        }
        SUBCASE("the first connection ends in a fatal error: a full handshake again") {
            end = first_end::truncated;
        }
        SUBCASE("tickets off: a full handshake again") {
            tickets = false;
        }
        run_on<B>([=](core::loop& lp) { return resumption(lp, tickets, end); });
    }

} // TEST_SUITE
