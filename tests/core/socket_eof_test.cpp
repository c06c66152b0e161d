#include <coronet/core/socket.hpp>

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

/// Regression (epoll): bytes and FIN arriving together on a socket already registered with
/// epoll. The short read of the bytes marked the socket drained, and the FIN's edge had already
/// been reported, so the read that should return end of stream parked forever.
core::task<void> eof_right_after_bytes(core::loop& lp) {
    auto l = listen_local(lp);
    auto [client, server] = co_await connect_pair(l);
    // The read starts first: it finds nothing, parks and registers the socket. The writer then
    // sends its bytes and closes without suspending, so epoll reports both in one event.
    auto rest_w = co_await core::when_all(
        read_to_eof(server), [](core::tcp_stream& c) -> core::task<core::result<void>> {
            auto r = co_await c.write_all(core::as_bytes("last words"));
            c.close();
            co_return r;
        }(client));
    auto& rest = std::get<0>(rest_w);
    auto& w = std::get<1>(rest_w);
    REQUIRE(w);
    REQUIRE_MESSAGE(rest, rest.error().message());
    CHECK(*rest == "last words");
}

} // namespace

TEST_SUITE("core.socket") {

    TEST_CASE_TEMPLATE("end of stream right after the last bytes is reported, not waited for", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return eof_right_after_bytes(lp); }, 10s);
    }

} // TEST_SUITE
