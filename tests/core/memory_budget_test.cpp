#include <coronet/core/memory_budget.hpp>

#include <coronet/core/buffer.hpp>
#include <coronet/core/buffered_reader.hpp>
#include <coronet/core/error.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/task.hpp>

#include <testing/backends.hpp>
#include <testing/memory_stream.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cstddef>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace core = coronet::core;
using coronet::testing::memory_stream_pair;
using coronet::testing::write_string;

namespace {

constexpr std::size_t kib = 1024;

struct budgeted_read {
    std::error_code error;
    std::size_t buffered = 0;
    std::size_t charged_while_open = 0;
    std::size_t in_use_while_open = 0;
};

/// read_exactly(n) through a reader charged to `budget`; reports what it held before the reader
/// went away.
core::task<budgeted_read> read_with_budget(core::stream& s, std::size_t n,
                                           core::memory_budget& budget) {
    budgeted_read out;
    core::buffered_reader rd(s, 4u << 20, &budget);
    auto r = co_await rd.read_exactly(n);
    if (!r)
        out.error = r.error();
    out.buffered = rd.buffered().size();
    out.charged_while_open = rd.charged();
    out.in_use_while_open = budget.in_use();
    co_return out;
}

} // namespace

TEST_SUITE("core.memory_budget") {

    TEST_CASE("a budget grants bytes up to its limit and refuses the rest") {
        core::memory_budget b(100);
        CHECK(b.limit() == 100);
        CHECK(b.try_acquire(60));
        CHECK(b.try_acquire(40));
        CHECK(b.in_use() == 100);
        CHECK(b.exhausted());
        CHECK_FALSE(b.try_acquire(1));
        CHECK(b.refusals() == 1);
        CHECK(b.try_acquire(0));
        b.release(50);
        CHECK_FALSE(b.exhausted());
        CHECK_FALSE(b.try_acquire(51));
        CHECK(b.try_acquire(50));
        CHECK(b.refusals() == 2);
        b.release(100);
        CHECK(b.in_use() == 0);
    }

    TEST_CASE("a lowered limit keeps what is held and refuses new bytes") {
        core::memory_budget b(1000);
        REQUIRE(b.try_acquire(800));
        b.set_limit(500);
        CHECK(b.in_use() == 800);
        CHECK(b.exhausted());
        CHECK_FALSE(b.try_acquire(1));
        b.release(800);
        CHECK(b.try_acquire(500));
        b.release(500);
    }

    TEST_CASE("threads acquiring and releasing at once never pass the limit and leave nothing") {
        constexpr std::size_t limit = 64 * kib;
        core::memory_budget b(limit);
        std::atomic<bool> over{false};
        std::atomic<std::size_t> granted{0};
        std::vector<std::thread> threads;
        for (std::size_t t = 0; t < 4; ++t) {
            threads.emplace_back([&b, &over, &granted, t] {
                std::size_t mine = 0;
                for (std::size_t i = 0; i < 50'000; ++i) {
                    const std::size_t n = 1 + (i * 7919 + t * 104729) % (8 * kib);
                    if (b.try_acquire(n)) {
                        ++mine;
                        if (b.in_use() > limit)
                            over = true;
                        b.release(n);
                    }
                }
                granted += mine;
            });
        }
        for (auto& th : threads)
            th.join();
        CHECK_FALSE(over.load());
        CHECK(granted.load() > 0);
        CHECK(b.in_use() == 0);
    }

    TEST_CASE("a charge costs nothing within its allowance and gives everything back") {
        core::memory_budget b(256 * kib);
        {
            core::memory_charge c(&b);
            CHECK(c.resize(core::memory_charge::default_allowance));
            CHECK(c.charged() == 0);
            CHECK(b.in_use() == 0);
            CHECK(c.resize(core::memory_charge::default_allowance + 100 * kib));
            CHECK(c.charged() == 100 * kib);
            CHECK(b.in_use() == 100 * kib);
            // Refused: nothing changes.
            CHECK_FALSE(c.resize(core::memory_charge::default_allowance + 300 * kib));
            CHECK(c.charged() == 100 * kib);
            CHECK(b.in_use() == 100 * kib);
            CHECK(c.resize(core::memory_charge::default_allowance + 10 * kib));
            CHECK(b.in_use() == 10 * kib);
            core::memory_charge moved = std::move(c);
            CHECK(c.charged() == 0);
            CHECK(moved.charged() == 10 * kib);
            CHECK(b.in_use() == 10 * kib);
        }
        CHECK(b.in_use() == 0);
        core::memory_charge none(nullptr);
        CHECK(none.resize(1u << 30));
        CHECK(none.charged() == 0);
    }

    TEST_CASE("the process budget is a quarter of the machine unless configured") {
        const std::size_t rule = core::memory_budget::default_limit();
        CHECK(rule > 0);
        core::memory_budget& p = core::memory_budget::process();
        CHECK(&p == &core::memory_budget::process());
        CHECK(p.limit() > 0);
        MESSAGE("default memory budget here: " << rule << " bytes");
    }

    TEST_CASE_TEMPLATE("a read past a reader's budget fails with over_budget and leaks nothing", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop lp(coronet::testing::options<B>());
        core::memory_budget budget(256 * kib);
        auto [a, b] = memory_stream_pair(lp);
        REQUIRE(core::run(lp, write_string(*a, std::string(1024 * kib, 'x'))).has_value());

        budgeted_read small = core::run(lp, read_with_budget(*b, 200 * kib, budget));
        CHECK(small.error == std::error_code());
        CHECK(small.buffered >= 200 * kib);
        CHECK(small.charged_while_open > 0);
        CHECK(small.in_use_while_open == small.charged_while_open);
        CHECK(budget.in_use() == 0);

        budgeted_read big = core::run(lp, read_with_budget(*b, 700 * kib, budget));
        CHECK(big.error == core::errc::over_budget);
        CHECK(big.buffered > 0); // what arrived before the refusal stays readable
        CHECK(big.charged_while_open <= budget.limit());
        CHECK(budget.refusals() >= 1);
        CHECK(budget.in_use() == 0);
        CHECK(core::make_error_code(core::errc::over_budget).message() ==
              "memory budget exhausted");
    }

} // TEST_SUITE
