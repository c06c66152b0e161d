#include <coronet/core/tls.hpp>

#include <coronet/core/scope.hpp>
#include <coronet/core/timer.hpp>

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

/// Serves one connection: handshake (bounded by `deadline`), then echo to end of stream.
/// Returns the handshake outcome if it failed, the echo's otherwise.
core::task<core::result<std::size_t>> serve_one(const core::tls_context& ctx, core::tcp_stream s,
                                                core::clock::duration deadline) {
    auto tls = core::tls_stream::server(ctx, std::make_unique<core::tcp_stream>(std::move(s)));
    auto hs = co_await core::with_timeout(deadline, tls->handshake());
    if (!hs) {
        tls->close();
        co_return hs.error();
    }
    co_return co_await echo_to_eof(*tls);
}

/// A TLS client that handshakes, checks an echo and closes cleanly.
core::task<core::result<void>> good_client(const core::tls_context& ctx, core::tcp_stream s,
                                           std::string text) {
    auto tls = core::tls_stream::client(ctx, std::make_unique<core::tcp_stream>(std::move(s)),
                                        "localhost");
    if (auto hs = co_await tls->handshake(); !hs)
        co_return hs.error();
    if (auto w = co_await tls->write_all(core::as_bytes(text)); !w)
        co_return w.error();
    if (auto sd = co_await tls->shutdown(); !sd)
        co_return sd.error();
    auto back = co_await read_to_eof(*tls);
    if (!back)
        co_return back.error();
    if (*back != text)
        co_return make_error_code(std::errc::bad_message);
    co_return core::result<void>{};
}

/// Writes `bytes` raw, then reads until the server drops the connection.
core::task<std::error_code> raw_client(core::tcp_stream& s, std::string bytes) {
    if (auto w = co_await s.write_all(core::as_bytes(bytes)); !w)
        co_return w.error();
    co_return co_await read_until_error(s);
}

core::task<void> plain_text_client(core::loop& lp) {
    auto l = listen_local(lp);
    auto sctx = server_context(ct::test_certificates().server);
    auto cctx = trusting_client();
    auto plain = co_await connect_pair(l);
    auto good = co_await connect_pair(l);
    auto plain_served_good_served_plain_end_good_result = co_await core::when_all(
        serve_one(sctx, std::move(plain.server), 30s), serve_one(sctx, std::move(good.server), 30s),
        raw_client(plain.client, "GET / HTTP/1.1\r\n\r\n"),
        good_client(cctx, std::move(good.client), "served while a neighbour spoke HTTP"));
    auto& plain_served = std::get<0>(plain_served_good_served_plain_end_good_result);
    auto& good_served = std::get<1>(plain_served_good_served_plain_end_good_result);
    auto& plain_end = std::get<2>(plain_served_good_served_plain_end_good_result);
    auto& good_result = std::get<3>(plain_served_good_served_plain_end_good_result);
    REQUIRE_FALSE(plain_served);
    const std::error_code ec = plain_served.error();
    INFO("server error: ", ec.message());
    CHECK(ec.category() == core::tls_category());
    CHECK((ec.message().find("http request") != std::string::npos ||
           ec.message().find("wrong version number") != std::string::npos));
    // The plain client was dropped, not left hanging.
    CHECK((plain_end == core::errc::end_of_stream || plain_end == std::errc::connection_reset));

    REQUIRE_MESSAGE(good_result, good_result.error().message());
    REQUIRE_MESSAGE(good_served, good_served.error().message());
    CHECK(*good_served == std::string("served while a neighbour spoke HTTP").size());
}

/// The first 105 bytes of a ClientHello whose record header announces 512.
std::string half_client_hello() {
    std::string h = {0x16, 0x03, 0x01, 0x02,       0x00,        // handshake record, 512 bytes
                     0x01, 0x00, 0x01, char(0xfc), 0x03, 0x03}; // ClientHello, 508, TLS 1.2
    for (int i = 0; i < 94; ++i)
        h.push_back(static_cast<char>(i * 7));
    return h;
}

core::task<void> stalled_handshake(core::loop& lp) {
    auto l = listen_local(lp);
    auto sctx = server_context(ct::test_certificates().server);
    auto cctx = trusting_client();
    auto stalled = co_await connect_pair(l);
    auto good = co_await connect_pair(l);
    auto stalled_served_good_served_stalled_end_good_result = co_await core::when_all(
        serve_one(sctx, std::move(stalled.server), 500ms),
        serve_one(sctx, std::move(good.server), 30s),
        raw_client(stalled.client, half_client_hello()),
        good_client(cctx, std::move(good.client), "not held up by a stalled neighbour"));
    auto& stalled_served = std::get<0>(stalled_served_good_served_stalled_end_good_result);
    auto& good_served = std::get<1>(stalled_served_good_served_stalled_end_good_result);
    auto& stalled_end = std::get<2>(stalled_served_good_served_stalled_end_good_result);
    auto& good_result = std::get<3>(stalled_served_good_served_stalled_end_good_result);
    REQUIRE_FALSE(stalled_served);
    CHECK(stalled_served.error() == core::errc::timed_out);
    // The server dropped the stalled connection after its deadline.
    CHECK(stalled_end == core::errc::end_of_stream);

    REQUIRE_MESSAGE(good_result, good_result.error().message());
    REQUIRE_MESSAGE(good_served, good_served.error().message());
    CHECK(*good_served == std::string("not held up by a stalled neighbour").size());
}

enum class vanish { client, server, mid_record };

core::task<void> peer_vanishes(core::loop& lp, vanish how) {
    auto l = listen_local(lp);
    auto sctx = server_context(ct::test_certificates().server);
    auto cctx = trusting_client();
    auto t = co_await tls_connect_ok(l, sctx, cctx);
    // A round trip first, so no unread bytes (TLS 1.3 tickets) make the close a reset.
    auto [unused, echoed] = co_await core::when_all(
        expect_echo(*t.client, "ping"), [](core::stream& s) -> core::task<core::result<void>> {
            auto r = co_await read_exactly(s, 4);
            if (!r)
                co_return r.error();
            co_return co_await s.write_all(core::as_bytes(*r));
        }(*t.server));
    (void)unused;
    REQUIRE(echoed);

    core::tls_stream& gone = how == vanish::server ? *t.server : *t.client;
    core::tls_stream& left = how == vanish::server ? *t.client : *t.server;
    if (how == vanish::mid_record) {
        // An application-data record header announcing 64 bytes, 16 of them, then silence.
        std::string part = {0x17, 0x03, 0x03, 0x00, 0x40};
        part.append(16, 'z');
        REQUIRE(co_await gone.transport().write_all(core::as_bytes(part)));
    }
    gone.close(); // TCP FIN without close_notify
    CHECK_FALSE(gone.is_open());

    const std::error_code ec = co_await read_until_error(left);
    INFO("error: ", ec.message());
    CHECK(ec != core::errc::end_of_stream);
    CHECK(ec.category() == core::tls_category());
    CHECK(ec.message().find("unexpected eof") != std::string::npos);
}

} // namespace

TEST_SUITE("core.tls") {

    TEST_CASE_TEMPLATE("a plain-text client fails its handshake while a TLS neighbour is served", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return plain_text_client(lp); });
    }

    TEST_CASE_TEMPLATE("half a ClientHello times out the handshake, a neighbour is unaffected", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return stalled_handshake(lp); });
    }

    TEST_CASE_TEMPLATE("a peer that vanishes without close_notify gives a read error, not EOF", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        vanish how = vanish::client;
        SUBCASE("client vanishes") {
            how = vanish::client;
        }
        SUBCASE("server vanishes") {
            how = vanish::server;
        }
        SUBCASE("client vanishes in the middle of a record") {
            how = vanish::mid_record;
        }
        run_on<B>([=](core::loop& lp) { return peer_vanishes(lp, how); });
    }

} // TEST_SUITE
