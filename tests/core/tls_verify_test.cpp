#include <coronet/core/tls.hpp>

#include "tls_fixture.hpp"

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <openssl/x509_vfy.h>

#include <string>
#include <vector>

namespace core = coronet::core;
namespace ct = coronet::testing;
using namespace std::chrono_literals;
using coronet::testing::run_on;
using namespace coronet::testing::tls_fixture;

namespace {

core::task<void> refused_certificate(core::loop& lp, const ct::pem_pair& cert, long x509_error,
                                     std::vector<std::string> reasons) {
    auto l = listen_local(lp);
    auto sctx = server_context(cert);
    auto cctx = trusting_client();
    auto t = co_await tls_connect(l, sctx, cctx);
    REQUIRE_FALSE(t.client_hs);
    const std::error_code ec = t.client_hs.error();
    CHECK(ec.category() == core::tls_verify_category());
    CHECK(ec.value() == x509_error);
    const std::string msg = ec.message();
    INFO("message: ", msg);
    CHECK(msg.find("certificate verify failed") != std::string::npos);
    CHECK(std::any_of(reasons.begin(), reasons.end(),
                      [&](const std::string& r) { return msg.find(r) != std::string::npos; }));
    // The client's alert ends the server's handshake too.
    REQUIRE_FALSE(t.server_hs);
    CHECK(t.server_hs.error().category() == core::tls_category());
}

core::task<void> default_client_verifies(core::loop& lp) {
    CHECK_FALSE(core::tls_client_options{}.danger_accept_any_certificate);
    auto l = listen_local(lp);
    auto sctx = server_context(ct::test_certificates().server);
    // The system store does not know the test CA.
    auto cctx = client_context(core::tls_client_options{});
    auto t = co_await tls_connect(l, sctx, cctx);
    REQUIRE_FALSE(t.client_hs);
    CHECK(t.client_hs.error().category() == core::tls_verify_category());
    CHECK(t.client_hs.error().message().find("unable to get local issuer") != std::string::npos);
}

core::task<void> accept_any(core::loop& lp, const ct::pem_pair& cert) {
    auto l = listen_local(lp);
    auto sctx = server_context(cert);
    core::tls_client_options o;
    o.danger_accept_any_certificate = true;
    auto cctx = client_context(o);
    auto t = co_await tls_connect_ok(l, sctx, cctx);
    auto [echoed, unused] =
        co_await core::when_all(echo_to_eof(*t.server), [](core::stream& c) -> core::task<void> {
            co_await expect_echo(c, "anyone home?");
            REQUIRE(co_await c.shutdown());
        }(*t.client));
    (void)unused;
    REQUIRE(echoed);
    CHECK(*echoed == 12);
}

core::task<void> verify_ip(core::loop& lp, bool matching) {
    auto l = listen_local(lp);
    const auto& pki = ct::test_certificates();
    auto sctx = server_context(matching ? pki.server : pki.other_host);
    auto cctx = trusting_client();
    connect_options o;
    o.host = "127.0.0.1";
    auto t = co_await tls_connect(l, sctx, cctx, std::move(o));
    if (matching) {
        REQUIRE_MESSAGE(t.client_hs, t.client_hs.error().message());
        REQUIRE_MESSAGE(t.server_hs, t.server_hs.error().message());
        CHECK(t.server->server_name().empty()); // no SNI for an IP address
        co_await [](core::stream& c, core::stream& s) -> core::task<void> {
            auto [r, unused] =
                co_await core::when_all(echo_to_eof(s), [](core::stream& cc) -> core::task<void> {
                    co_await expect_echo(cc, "by address");
                    REQUIRE(co_await cc.shutdown());
                }(c));
            (void)unused;
            CHECK(r);
        }(*t.client, *t.server);
    } else {
        REQUIRE_FALSE(t.client_hs);
        CHECK(t.client_hs.error().category() == core::tls_verify_category());
        CHECK(t.client_hs.error().value() == X509_V_ERR_IP_ADDRESS_MISMATCH);
        CHECK(t.client_hs.error().message().find("IP address mismatch") != std::string::npos);
    }
}

} // namespace

TEST_SUITE("core.tls") {

    TEST_CASE_TEMPLATE("the client refuses a bad certificate and names the reason", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        const auto& pki = ct::test_certificates();
        const ct::pem_pair* cert = nullptr;
        long code = 0;
        std::vector<std::string> reasons;
        SUBCASE("expired") {
            cert = &pki.expired;
            code = X509_V_ERR_CERT_HAS_EXPIRED;
            reasons = {"expired"};
        }
        SUBCASE("wrong host") {
            cert = &pki.other_host;
            code = X509_V_ERR_HOSTNAME_MISMATCH;
            reasons = {"hostname mismatch"};
        }
        SUBCASE("self-signed") {
            cert = &pki.self_signed;
            code = X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT;
            reasons = {"self-signed", "self signed"};
        }
        SUBCASE("untrusted issuer") {
            cert = &pki.untrusted;
            code = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
            reasons = {"unable to get local issuer"};
        }
        REQUIRE(cert != nullptr);
        run_on<B>([&](core::loop& lp) { return refused_certificate(lp, *cert, code, reasons); });
    }

    TEST_CASE_TEMPLATE("a default client verifies against the system store", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return default_client_verifies(lp); });
    }

    TEST_CASE_TEMPLATE("danger_accept_any_certificate talks to any certificate", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        const auto& pki = ct::test_certificates();
        const ct::pem_pair* cert = nullptr;
        SUBCASE("self-signed") {
            cert = &pki.self_signed;
        }
        SUBCASE("expired") {
            cert = &pki.expired;
        }
        SUBCASE("wrong host") {
            cert = &pki.other_host;
        }
        SUBCASE("untrusted issuer") {
            cert = &pki.untrusted;
        }
        REQUIRE(cert != nullptr);
        run_on<B>([&](core::loop& lp) { return accept_any(lp, *cert); });
    }

    TEST_CASE_TEMPLATE("a client verifies an IP address against the certificate", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        bool matching = true;
        SUBCASE("IP in subjectAltName") {
            matching = true;
        }
        SUBCASE("IP not in subjectAltName") {
            matching = false;
        }
        run_on<B>([=](core::loop& lp) { return verify_ip(lp, matching); });
    }

} // TEST_SUITE
