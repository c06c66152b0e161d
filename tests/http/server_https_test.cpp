#include <coronet/http/server.hpp>

#include <coronet/core/socket.hpp>
#include <coronet/core/tls.hpp>
#include <coronet/core/when.hpp>

#include <testing/certs.hpp>

#include "server_fixture.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <utility>

namespace core = coronet::core;
namespace http = coronet::http;
namespace ct = coronet::testing;
using ct::raw_client;
using namespace std::chrono_literals;
using namespace coronet::testing::server_fixture;

namespace {

// ---- HTTPS ---------------------------------------------------------------------------------

struct ca_on_disk {
    ct::temp_dir dir;
    std::string ca_file = dir.write("ca.pem", ct::test_certificates().ca_pem);
};

const ca_on_disk& ca_files() {
    static const ca_on_disk files;
    return files;
}

core::task<void> https_hello(core::loop& lp) {
    core::tls_server_options so;
    so.cert_pem = ct::test_certificates().server.cert_pem;
    so.key_pem = ct::test_certificates().server.key_pem;
    so.alpn = {"http/1.1"};
    auto sctx = core::tls_context::server(so);
    REQUIRE_MESSAGE(sctx, sctx.error().message());
    core::tls_client_options co;
    co.ca_file = ca_files().ca_file;
    co.alpn = {"http/1.1"};
    auto cctx = core::tls_context::client(co);
    REQUIRE_MESSAGE(cctx, cctx.error().message());

    http::server_options o = test_options();
    o.tls = &*sctx;
    co_await with_server(lp, o, [&cctx](running_server& rs, probe&) -> core::task<void> {
        auto tcp = co_await core::tcp_stream::connect(rs.endpoint());
        REQUIRE(tcp);
        auto tls = core::tls_stream::client(
            *cctx, std::make_unique<core::tcp_stream>(std::move(*tcp)), "localhost");
        core::tls_stream* t = tls.get();
        auto hs = co_await core::with_timeout(5s, t->handshake());
        REQUIRE_MESSAGE(hs, hs.error().message());
        CHECK(t->alpn_protocol() == "http/1.1");
        raw_client c(std::move(tls));
        auto r = co_await exchange(c, get("/"));
        CHECK(r.status == 200);
        CHECK(r.body == "hello");
        auto r2 = co_await exchange(c, post("/echo", "over tls"));
        CHECK(r2.body == "over tls");
    });
}

core::task<void> https_plain_text_client(core::loop& lp) {
    core::tls_server_options so;
    so.cert_pem = ct::test_certificates().server.cert_pem;
    so.key_pem = ct::test_certificates().server.key_pem;
    so.alpn = {"http/1.1"};
    auto sctx = core::tls_context::server(so);
    REQUIRE_MESSAGE(sctx, sctx.error().message());
    core::tls_client_options co;
    co.ca_file = ca_files().ca_file;
    co.alpn = {"http/1.1"};
    auto cctx = core::tls_context::client(co);
    REQUIRE_MESSAGE(cctx, cctx.error().message());

    http::server_options o = test_options();
    o.tls = &*sctx;
    co_await with_server(lp, o, [&cctx](running_server& rs, probe&) -> core::task<void> {
        auto plain = co_await rs.connect();
        REQUIRE(co_await plain.send(get("/")));
        auto end = co_await plain.wait_end(3s);
        CHECK(end.closed());
        CHECK(end.extra.find("hello") == std::string::npos);
        auto tcp = co_await core::tcp_stream::connect(rs.endpoint());
        REQUIRE(tcp);
        auto tls = core::tls_stream::client(
            *cctx, std::make_unique<core::tcp_stream>(std::move(*tcp)), "localhost");
        auto hs = co_await core::with_timeout(5s, tls->handshake());
        REQUIRE_MESSAGE(hs, hs.error().message());
        raw_client c(std::move(tls));
        auto r = co_await exchange(c, get("/"));
        CHECK(r.body == "hello");
    });
}

} // namespace

TEST_SUITE("http.server") {
    SERVER_CASE("HTTPS serves over TLS with ALPN http/1.1", https_hello)
    SERVER_CASE("a plain-text client on the HTTPS port is closed and TLS clients are still served",
                https_plain_text_client)
}
