#include <coronet/core/tls.hpp>

#include <testing/memory_stream.hpp>

#include "tls_fixture.hpp"

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

namespace core = coronet::core;
namespace ct = coronet::testing;
using namespace std::chrono_literals;
using coronet::testing::run_on;
using namespace coronet::testing::tls_fixture;

namespace {

core::task<void> over_memory(core::loop& lp) {
    auto [client_end, server_end] = ct::memory_stream_pair(lp);
    client_end->set_max_read(7);
    client_end->set_max_write(300);
    client_end->set_write_buffer_limit(4096);
    server_end->set_max_read(1000);
    server_end->set_max_write(57);
    server_end->set_write_buffer_limit(2000);
    auto sctx = server_context(ct::test_certificates().server);
    auto cctx = trusting_client({"h2"});
    auto t =
        co_await handshake_both(core::tls_stream::client(cctx, std::move(client_end), "localhost"),
                                core::tls_stream::server(sctx, std::move(server_end)));
    REQUIRE_MESSAGE(t.client_hs, t.client_hs.error().message());
    REQUIRE_MESSAGE(t.server_hs, t.server_hs.error().message());
    CHECK(t.server->server_name() == "localhost");
    CHECK(t.client->protocol_version() == "TLSv1.3");
    co_await echo_transfer(*t.client, *t.server, 2u << 20, 40 * 1024, 3000);
}

core::task<void> memory_refuses_wrong_host(core::loop& lp) {
    auto [client_end, server_end] = ct::memory_stream_pair(lp);
    auto sctx = server_context(ct::test_certificates().other_host);
    auto cctx = trusting_client();
    auto t =
        co_await handshake_both(core::tls_stream::client(cctx, std::move(client_end), "localhost"),
                                core::tls_stream::server(sctx, std::move(server_end)));
    REQUIRE_FALSE(t.client_hs);
    CHECK(t.client_hs.error().category() == core::tls_verify_category());
    CHECK(t.client_hs.error().message().find("hostname mismatch") != std::string::npos);
    CHECK_FALSE(t.server_hs);
}

} // namespace

TEST_SUITE("core.tls") {

    TEST_CASE_TEMPLATE("TLS runs over the in-memory stream with short reads and writes", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        SUBCASE("2 MiB echo") {
            run_on<B>([](core::loop& lp) { return over_memory(lp); });
        }
        SUBCASE("hostname verification") {
            run_on<B>([](core::loop& lp) { return memory_refuses_wrong_host(lp); });
        }
    }

} // TEST_SUITE
