// Steady-state allocations of a WebSocket exchange: once warm, a session that receives through
// receive_view() and sends small or 4 KiB messages, compressed or not, allocates nothing per
// message. Counted by testing/alloc_count, a replaced global operator new (the count is
// per thread and only while a test asks for it); zlib's own malloc calls are not counted, and
// its states are kept per connection or pooled per thread.
#include <coronet/ws/session.hpp>

#include <coronet/core/scope.hpp>

#include <testing/alloc_count.hpp>
#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include "session_pair.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <string>

namespace alloc_count = coronet::testing::alloc_count;

namespace core = coronet::core;
namespace ws = coronet::ws;
using coronet::testing::listen_local;
using coronet::testing::run_on;

namespace {

struct alloc_case {
    std::size_t size;
    std::optional<ws::deflate_params> deflate;
};

// The server echoes through receive_view; the client sends and reads the echo through
// receive_view. Returns the allocations made (on this thread) by the last `counted` exchanges.
core::task<std::size_t> steady_state(core::loop& lp, alloc_case c, int warm, int counted) {
    auto l = listen_local(lp);
    ws::session_options so;
    so.agreed_deflate = c.deflate;
    so.deflate.min_size = 0;
    auto p = co_await coronet::testing::loopback_sessions(l, so, so);
    ws::session& client = *p.client;
    core::task_scope scope;
    scope.spawn([](ws::session& s) -> core::task<void> {
        for (;;) {
            auto m = co_await s.receive_view();
            if (!m)
                co_return;
            auto sent = co_await s.send_text(m->data);
            if (!sent)
                co_return;
        }
    }(*p.server));
    std::string body(c.size, ' ');
    for (std::size_t i = 0; i < body.size(); ++i)
        body[i] = static_cast<char>('a' + (i * 7 + i / 13) % 26);
    std::size_t made = 0;
    for (int i = 0; i < warm + counted; ++i) {
        body[i % body.size()] = static_cast<char>('A' + i % 26); // every message differs
        if (i == warm) {
            alloc_count::reset();
            alloc_count::set_counting(true);
        }
        auto sent = co_await client.send_text(body);
        auto back = co_await client.receive_view();
        const bool same = back && back->data == body;
        alloc_count::set_counting(false);
        made = alloc_count::counted();
        REQUIRE(sent);
        REQUIRE(same);
        alloc_count::set_counting(i >= warm);
    }
    alloc_count::set_counting(false);
    auto closed = co_await client.close();
    CHECK(closed);
    co_await scope.join();
    co_return made;
}

} // namespace

TEST_SUITE("ws.allocations") {

    TEST_CASE_TEMPLATE("an echo through receive_view allocates nothing per message once warm", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        ws::deflate_params ctx;
        ws::deflate_params no_ctx;
        no_ctx.server_no_context_takeover = true;
        no_ctx.client_no_context_takeover = true;
        for (const alloc_case& c :
             {alloc_case{20, std::nullopt}, alloc_case{4096, std::nullopt}, alloc_case{20, ctx},
              alloc_case{4096, ctx}, alloc_case{20, no_ctx}, alloc_case{4096, no_ctx}}) {
            CAPTURE(c.size);
            CAPTURE(c.deflate.has_value());
            CAPTURE((c.deflate && c.deflate->server_no_context_takeover));
            std::size_t made = 1;
            run_on<B>([&](core::loop& lp) -> core::task<void> {
                made = co_await steady_state(lp, c, 20, 100);
            });
            CHECK(made == 0);
        }
    }

} // TEST_SUITE
