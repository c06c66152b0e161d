// post_cost: what a cross-thread loop::post costs. One loop runs on its own thread; P poster
// threads post M messages each to it, in bursts of B with a short pause between bursts (so the
// loop also falls asleep and must be woken). Reports the process's CPU time (getrusage
// RUSAGE_SELF: posters and loop together) per message, the wall time, and how many of the
// messages ran.
//
//   post_cost [--mode node|function] [--posters P] [--messages M] [--burst B]
//             [--backend epoll|uring] [--from threads|loops]
//
// --from loops: each poster is a loop of the same backend on its own thread (posting from a
// coroutine, pausing with sleep_for): between io_uring loops the wake-up is then a msg_ring
// rather than an eventfd write.
//
// node: loop::post(post_node&) with caller-owned nodes (no allocation); function:
// loop::post(std::function) (one allocation per message). Built with -DCORONET_POST_COST_OLD
// against a tree that has only post(std::function), `node` is unavailable.
#include <coronet/core/loop.hpp>
#include <coronet/core/task.hpp>
#include <coronet/core/timer.hpp>

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace core = coronet::core;

namespace {

std::uint64_t cpu_us() {
    ::rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    auto us = [](const ::timeval& tv) {
        return static_cast<std::uint64_t>(tv.tv_sec) * 1'000'000u +
               static_cast<std::uint64_t>(tv.tv_usec);
    };
    return us(ru.ru_utime) + us(ru.ru_stime);
}

std::atomic<std::uint64_t> g_ran{0};
std::uint64_t g_total = 0;
std::atomic<bool> g_done{false};

// On the loop thread, once per message. The last one wakes main (which must not spin: its CPU
// would count).
void count_one() noexcept {
    const auto n = g_ran.load(std::memory_order_relaxed) + 1;
    g_ran.store(n, std::memory_order_relaxed);
    if (n == g_total) {
        g_done.store(true, std::memory_order_release);
        g_done.notify_all();
    }
}

#ifndef CORONET_POST_COST_OLD
struct counted_node : core::post_node {
    static void fire(core::post_node*) noexcept { count_one(); }
};
#endif

// A poster that is a loop: posts `count` messages through `post_one`, pausing after each burst.
template <class Post>
core::task<void> post_from_loop(int count, int burst, Post post_one) {
    for (int i = 0; i < count; ++i) {
        post_one(i);
        if (burst > 0 && i % burst == burst - 1)
            (void)co_await core::sleep_for(std::chrono::microseconds(20));
    }
}

} // namespace

int main(int argc, char** argv) {
    std::string mode = "node";
    int posters = 2;
    int messages = 1'000'000;
    int burst = 64;
    bool from_loops = false;
    core::loop_options lo;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        const std::string v = argv[i + 1];
        if (a == "--mode")
            mode = v;
        else if (a == "--posters")
            posters = std::atoi(v.c_str());
        else if (a == "--messages")
            messages = std::atoi(v.c_str());
        else if (a == "--from")
            from_loops = v == "loops";
        else if (a == "--burst")
            burst = std::atoi(v.c_str());
        else if (a == "--backend")
            lo.backend = v == "epoll" ? core::backend_kind::epoll : core::backend_kind::uring;
    }
#ifdef CORONET_POST_COST_OLD
    mode = "function";
#endif
    std::atomic<core::loop*> target{nullptr};
    std::thread loop_thread([&] {
        core::loop lp(lo);
        target.store(&lp);
        lp.run();
        // Run what came after the stop.
        lp.post([&lp] { lp.stop(); });
        lp.run();
        target.store(nullptr);
    });
    while (target.load() == nullptr)
        std::this_thread::yield();
    core::loop& lp = *target.load();
#ifndef CORONET_POST_COST_OLD
    std::vector<std::vector<counted_node>> nodes(
        static_cast<std::size_t>(posters),
        std::vector<counted_node>(static_cast<std::size_t>(messages)));
    for (auto& v : nodes)
        for (auto& n : v)
            n.run = &counted_node::fire;
#endif
    const std::uint64_t total =
        static_cast<std::uint64_t>(posters) * static_cast<std::uint64_t>(messages);
    g_total = total;
    const auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t c0 = cpu_us();
    std::vector<std::thread> threads;
    for (int p = 0; p < posters; ++p) {
        threads.emplace_back([&, p] {
            auto post_one = [&, p](int i) {
#ifndef CORONET_POST_COST_OLD
                if (mode == "node")
                    lp.post(nodes[static_cast<std::size_t>(p)][static_cast<std::size_t>(i)]);
                else
#endif
                    lp.post([] { count_one(); });
            };
            if (from_loops) {
                core::loop mine(lo);
                core::run(mine, post_from_loop(messages, burst, post_one));
                return;
            }
            for (int i = 0; i < messages; ++i) {
#ifndef CORONET_POST_COST_OLD
                if (mode == "node")
                    lp.post(nodes[static_cast<std::size_t>(p)][static_cast<std::size_t>(i)]);
                else
#endif
                    lp.post([] { count_one(); });
                if (burst > 0 && i % burst == burst - 1)
                    std::this_thread::sleep_for(std::chrono::microseconds(20));
            }
        });
    }
    for (auto& t : threads)
        t.join();
    g_done.wait(false, std::memory_order_acquire);
    const std::uint64_t c1 = cpu_us();
    const auto t1 = std::chrono::steady_clock::now();
    lp.stop();
    loop_thread.join();
    const double wall = std::chrono::duration<double>(t1 - t0).count();
    std::printf("post_cost from=%s mode=%s backend=%s posters=%d messages=%llu burst=%d "
                "cpu_ns_per_msg=%.1f "
                "wall_s=%.3f msgs_per_s=%.0f\n",
                from_loops ? "loops" : "threads", mode.c_str(),
                lo.backend ? std::string(core::to_string(*lo.backend)).c_str() : "auto", posters,
                static_cast<unsigned long long>(total), burst,
                static_cast<double>(c1 - c0) * 1000.0 / static_cast<double>(total), wall,
                static_cast<double>(total) / wall);
    return 0;
}
