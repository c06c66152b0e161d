// Steady-state allocations of the HTTP server: once warm, a keep-alive connection answers GETs
// (text, JSON, a route with parameters, a response with more headers than fit inside it) and
// POSTs, and allocates nothing per request, on the server's side nor on this raw client's.
// Counted by testing/alloc_count, a replaced global operator new (the count is per thread and
// only while a test asks for it; the server and the client share the test's loop thread).
#include <coronet/http/server.hpp>

#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/http/message.hpp>
#include <coronet/http/router.hpp>

#include <testing/alloc_count.hpp>
#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include "server_fixture.hpp"

#include <doctest/doctest.h>

#include <array>
#include <charconv>
#include <string>
#include <string_view>

namespace alloc_count = coronet::testing::alloc_count;

namespace core = coronet::core;
namespace http = coronet::http;
using namespace coronet::testing::server_fixture;

namespace {

http::router alloc_routes() {
    http::router r;
    r.get("/", [](http::request&) -> core::task<http::reply> {
        co_return http::response::text("Hello, World!");
    });
    r.get("/json", [](http::request&) -> core::task<http::reply> {
        co_return http::response::json("{\"ok\":true}");
    });
    r.get("/users/:id/posts/:post", [](http::request& req) -> core::task<http::reply> {
        http::response res(200);
        res.body = req.param("id");
        res.body += '/';
        res.body += req.param("post");
        co_return res;
    });
    r.post("/size", [](http::request& req) -> core::task<http::reply> {
        http::response res(200);
        res.body = std::to_string(req.body().size());
        co_return res;
    });
    // More header bytes than a response keeps inside itself.
    r.get("/headers", [](http::request&) -> core::task<http::reply> {
        http::response res = http::response::text("many");
        res.set("Cache-Control", "no-store, no-cache, must-revalidate");
        res.set("X-Content-Type-Options", "nosniff");
        res.set("X-Frame-Options", "DENY");
        REQUIRE(res.headers.size() == 4);
        co_return res;
    });
    return r;
}

// Bytes of one response at the start of `in` (head and Content-Length body), or 0 while it is
// not all there.
std::size_t response_size(std::string_view in) {
    const auto end = in.find("\r\n\r\n");
    if (end == std::string_view::npos)
        return 0;
    const auto at = in.find("Content-Length: ");
    REQUIRE(at < end);
    std::size_t length = 0;
    const char* digits = in.data() + at + 16;
    std::from_chars(digits, in.data() + end, length);
    const std::size_t total = end + 4 + length;
    return in.size() >= total ? total : 0;
}

// Sends `request` `warm + counted` times on one connection (and `later`, when not empty, a
// millisecond after it: a body the server reads after the head, into its own buffer), reads
// each answer into a fixed buffer, and returns the allocations made (on this thread) during
// the last `counted` ones.
core::task<std::size_t> steady_state(core::loop& lp, std::string request, std::string later,
                                     std::string expect, int warm, int counted) {
    http::router routes = alloc_routes();
    running_server rs(lp, routes, test_options(), co_await core::get_stop_token());
    auto c = co_await core::tcp_stream::connect(rs.endpoint());
    REQUIRE(c);
    std::array<char, 4096> buf{};
    std::size_t made = 0;
    for (int i = 0; i < warm + counted; ++i) {
        if (i == warm) {
            alloc_count::reset();
            alloc_count::set_counting(true);
        }
        auto sent = co_await c->write_all(core::as_bytes(request));
        REQUIRE(sent);
        if (!later.empty()) {
            auto slept = co_await core::sleep_for(1ms);
            REQUIRE(slept);
            sent = co_await c->write_all(core::as_bytes(later));
            REQUIRE(sent);
        }
        std::size_t have = 0;
        std::size_t size = 0;
        while (size == 0) {
            REQUIRE(have < buf.size());
            auto got = co_await c->read_some(core::mutable_buffer(
                reinterpret_cast<std::byte*>(buf.data()) + have, buf.size() - have));
            REQUIRE(got);
            have += *got;
            size = response_size(std::string_view(buf.data(), have));
        }
        alloc_count::set_counting(false);
        made = alloc_count::counted();
        const std::string_view answer(buf.data(), size);
        REQUIRE(have == size);
        REQUIRE(answer.starts_with("HTTP/1.1 200 OK\r\n"));
        REQUIRE(answer.ends_with(expect));
        alloc_count::set_counting(i >= warm);
    }
    alloc_count::set_counting(false);
    rs.stop();
    (void)co_await rs.join();
    co_return made;
}

} // namespace

TEST_SUITE("http.allocations") {

    TEST_CASE_TEMPLATE("a keep-alive connection allocates nothing per request once warm", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        struct alloc_case {
            std::string request;
            std::string later;
            const char* expect;
        };
        const std::string body(3000, 'x');
        for (const alloc_case& k :
             {alloc_case{get("/"), "", "\r\n\r\nHello, World!"},
              alloc_case{get("/json"), "",
                         "application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"},
              alloc_case{get("/users/7/posts/42"), "", "\r\n\r\n7/42"},
              alloc_case{get("/headers"), "",
                         "X-Frame-Options: DENY\r\nContent-Length: 4\r\n\r\nmany"},
              alloc_case{post("/size", body), "", "\r\n\r\n3000"},
              // The head arrives alone; the body a millisecond later moves the head's bytes.
              alloc_case{post("/size", body).substr(0, post("/size", body).size() - body.size()),
                         body, "\r\n\r\n3000"}}) {
            CAPTURE(k.request.substr(0, k.request.find('\r')));
            CAPTURE(k.later.size());
            std::size_t made = 1;
            coronet::testing::run_on<B>([&](core::loop& lp) -> core::task<void> {
                made = co_await steady_state(lp, k.request, k.later, k.expect, 20, 100);
            });
            CHECK(made == 0);
        }
    }

} // TEST_SUITE
