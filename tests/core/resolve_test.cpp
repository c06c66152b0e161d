#include <coronet/core/resolve.hpp>

#include <coronet/core/loop.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/when.hpp>

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <chrono>
#include <utility>

namespace core = coronet::core;
using namespace std::chrono_literals;

using coronet::testing::run_on;

namespace {

// ---- resolve -----------------------------------------------------------------------------------

bool is_loopback(const core::endpoint& ep) {
    if (ep.family() == AF_INET) {
        auto* a = reinterpret_cast<const ::sockaddr_in*>(ep.data());
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (ep.family() == AF_INET6) {
        auto* a = reinterpret_cast<const ::sockaddr_in6*>(ep.data());
        return IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
    }
    return false;
}

core::task<void> resolve_localhost(core::loop&) {
    auto r = co_await core::with_timeout(5s, core::resolve("localhost", 8080));
    REQUIRE_MESSAGE(r, r.error().message());
    REQUIRE_FALSE(r->empty());
    for (const auto& ep : *r) {
        CHECK_MESSAGE(is_loopback(ep), ep.to_string());
        CHECK(ep.port() == 8080);
    }
    // Numeric addresses need no lookup and keep the family asked for.
    auto v4 = co_await core::resolve("127.0.0.1", 443, AF_INET);
    REQUIRE(v4);
    REQUIRE(v4->size() == 1);
    CHECK(v4->front().to_string() == "127.0.0.1:443");
}

core::task<void> resolve_invalid(core::loop&) {
    // .invalid never resolves (RFC 6761); with no resolver at all the lookup may take its time,
    // which the deadline bounds.
    auto r = co_await core::with_timeout(5s, core::resolve("nonexistent.invalid", 80));
    REQUIRE_FALSE(r);
    const bool expected =
        r.error() == core::errc::resolve_failed || r.error() == core::errc::timed_out;
    CHECK_MESSAGE(expected, r.error().message());
}

core::task<void> resolve_cancelled(core::loop&) {
    core::stop_source src;
    src.request_stop();
    auto t = core::resolve("localhost", 80);
    t.handle().promise().set_token(src.token());
    auto r = co_await std::move(t);
    CHECK(r.error() == core::errc::operation_canceled);
}

} // namespace

TEST_SUITE("core.resolve") {

    TEST_CASE_TEMPLATE("resolving localhost gives loopback endpoints with the port", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return resolve_localhost(lp); });
    }

    TEST_CASE_TEMPLATE("resolving a .invalid name fails with resolve_failed", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return resolve_invalid(lp); });
    }

    TEST_CASE_TEMPLATE("a resolve whose stop was requested is cancelled", B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return resolve_cancelled(lp); });
    }

} // TEST_SUITE
