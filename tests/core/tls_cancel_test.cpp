#include <coronet/core/tls.hpp>

#include <coronet/core/timer.hpp>

#include "tls_fixture.hpp"

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <tuple>

namespace core = coronet::core;
namespace ct = coronet::testing;
using namespace std::chrono_literals;
using coronet::testing::run_on;
using namespace coronet::testing::tls_fixture;

namespace {

core::task<void> cancelled_read(core::loop& lp, bool with_pending_write) {
    auto l = listen_local(lp);
    auto sctx = server_context(ct::test_certificates().server);
    auto cctx = trusting_client();
    connect_options o;
    o.socket_buffer = 64 * 1024;
    auto t = co_await tls_connect_ok(l, sctx, cctx, std::move(o));
    std::string buf(64, '\0');

    if (!with_pending_write) {
        auto r = co_await core::with_timeout(50ms, read_once(*t.client, bytes_of(buf)));
        REQUIRE_FALSE(r);
        CHECK(r.error() == core::errc::timed_out);
    } else {
        // The client's write stalls (the server does not read yet) while its read times out;
        // then the server reads everything and the write completes.
        constexpr std::size_t total = 4u << 20;
        auto outcomes_sent = co_await core::when_all(
            [](core::stream& c, core::stream& s, core::mutable_buffer b, std::size_t n)
                -> core::task<std::pair<core::result<std::size_t>, core::result<checksum>>> {
                auto timed = co_await core::with_timeout(50ms, read_once(c, b));
                auto got = co_await receive_count(s, n);
                co_return std::pair{timed, got};
            }(*t.client, *t.server, bytes_of(buf), total),
            send_random(*t.client, total, 21, 64 * 1024, false));
        auto& outcomes = std::get<0>(outcomes_sent);
        auto& sent = std::get<1>(outcomes_sent);
        auto& timed = std::get<0>(outcomes);
        auto& got = std::get<1>(outcomes);
        REQUIRE_FALSE(timed);
        CHECK(timed.error() == core::errc::timed_out);
        REQUIRE_MESSAGE(sent, sent.error().message());
        REQUIRE_MESSAGE(got, got.error().message());
        CHECK(got->bytes == total);
        CHECK(*got == *sent);
    }

    // Still usable both ways after the cancelled read.
    auto w1_got1 =
        co_await core::when_all(write_text(*t.server, "after"), read_exactly(*t.client, 5));
    auto& w1 = std::get<0>(w1_got1);
    auto& got1 = std::get<1>(w1_got1);
    REQUIRE(w1);
    REQUIRE_MESSAGE(got1, got1.error().message());
    CHECK(*got1 == "after");
    auto w2_got2 =
        co_await core::when_all(write_text(*t.client, "back"), read_exactly(*t.server, 4));
    auto& w2 = std::get<0>(w2_got2);
    auto& got2 = std::get<1>(w2_got2);
    REQUIRE(w2);
    REQUIRE_MESSAGE(got2, got2.error().message());
    CHECK(*got2 == "back");
}

} // namespace

TEST_SUITE("core.tls") {

    TEST_CASE_TEMPLATE("a TLS read cancelled by with_timeout leaves the stream usable", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        bool with_write = false;
        SUBCASE("idle stream") {
            with_write = false;
        }
        SUBCASE("while a write on the same stream is stalled") {
            with_write = true;
        }
        run_on<B>([=](core::loop& lp) { return cancelled_read(lp, with_write); });
    }

} // TEST_SUITE
