// The cross-thread paths of core, in suite "core.threads" so that the tsan preset (which runs
// only the suites named *.threads, docs/build.md "Presets") runs them under ThreadSanitizer:
// loop::post and loop::stop from other threads, loops on several threads posting to each other,
// concurrent resolves (the loop's getaddrinfo worker), shared_buffer's atomic count, coroutine
// frames freed on another thread than the one that allocated them, and one tls_context used by
// loops on several threads. The helpers that run loops on threads are in testing/loop_threads.hpp.

#include <coronet/core/buffer.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/resolve.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/tls.hpp>
#include <coronet/core/when.hpp>

#include <testing/backends.hpp>
#include <testing/certs.hpp>
#include <testing/loop_threads.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace core = coronet::core;
using coronet::testing::on_loops;
using coronet::testing::poll_until;
using coronet::testing::run_on;
using namespace std::chrono_literals;

namespace {

core::task<core::result<void>> nap(core::clock::duration d) {
    co_return co_await core::sleep_for(d);
}

// ---- post and stop ------------------------------------------------------------------------------

core::task<void> posts_from_threads(core::loop& lp) {
    // Posters start together and post in bursts, so posts land both while the loop sleeps in the
    // kernel (only the eventfd can wake it: the nap is 10 s) and while it drains earlier ones.
    // Every 50th posted function posts a follow-up from the loop thread itself.
    constexpr int threads = 4;
    constexpr int per_thread = 2500;
    constexpr int followups = threads * per_thread / 50;
    constexpr int expected = threads * per_thread + followups;
    const auto loop_thread = std::this_thread::get_id();
    std::vector<int> ran(threads * per_thread, 0); // touched on the loop thread only
    int total = 0;
    int followups_ran = 0;
    int wrong_thread = 0;
    int wrong_payload = 0;
    core::stop_source all_ran;
    auto count = [&] {
        if (std::this_thread::get_id() != loop_thread)
            ++wrong_thread;
        if (++total == expected)
            all_ran.request_stop();
    };
    std::latch go(threads + 1);
    std::vector<std::thread> posters;
    for (int t = 0; t < threads; ++t) {
        posters.emplace_back([&, t] {
            go.arrive_and_wait();
            for (int i = 0; i < per_thread; ++i) {
                // Written here, read on the loop thread: post must order the two.
                auto payload = std::make_shared<std::vector<int>>(std::vector<int>{t, i, t ^ i});
                lp.post([&, payload] {
                    const auto& p = *payload;
                    if (p.size() != 3 || p[2] != (p[0] ^ p[1]))
                        ++wrong_payload;
                    ++ran[static_cast<std::size_t>(p[0] * per_thread + p[1])];
                    if (p[1] % 50 == 0) {
                        lp.post([&] {
                            ++followups_ran;
                            count();
                        });
                    }
                    count();
                });
                if (i % 250 == 249)
                    std::this_thread::sleep_for(200us);
            }
        });
    }
    go.count_down();
    auto sleeping = nap(10s);
    sleeping.handle().promise().set_token(all_ran.token());
    auto woken = co_await std::move(sleeping);
    for (auto& p : posters)
        p.join();
    CHECK(woken.error() == core::errc::operation_canceled); // ended by the last posted function
    CHECK(total == expected);
    CHECK(followups_ran == followups);
    CHECK(wrong_thread == 0);
    CHECK(wrong_payload == 0);
    CHECK(std::count(ran.begin(), ran.end(), 1) == threads * per_thread);
}

struct stop_round {
    int ran_before_return = -1;
    bool returned = false;
};

/// One loop on its own thread, kept busy by a timer loop; another thread posts `posts`
/// functions, then stop(): at once, or (`drained_first`) after the loop ran them all, so that
/// stop()'s own post is the one that writes the wake-up. The loop is destroyed (on the heap, so
/// ThreadSanitizer sees the free) as soon as run() returns: post() and stop() must be done with
/// the loop once the work they queued can have run.
template <class B>
stop_round stop_from_another_thread(int posts, bool drained_first) {
    stop_round out;
    std::promise<core::loop*> ready;
    auto started = ready.get_future();
    std::promise<void> all_ran;
    auto ran_all = all_ran.get_future();
    int ran = 0;
    std::thread loop_thread([&] {
        auto lp = std::make_unique<core::loop>(coronet::testing::options<B>());
        {
            core::task_scope busy;
            // Timers keep the loop turning, so the stop can land in any phase of an iteration.
            busy.spawn([](core::task_scope& s) -> core::task<void> {
                while (!s.token().stop_requested())
                    (void)co_await core::sleep_for(0ms);
            }(busy));
            lp->post([&] { ready.set_value(lp.get()); });
            lp->run();
            out.ran_before_return = ran;
            out.returned = true;
            busy.request_stop();
            while (busy.size() > 0) {
                // Let the timer loop see its stop: one more turn.
                lp->post([&lp] { lp->stop(); });
                lp->run();
            }
        }
        lp.reset();
    });
    core::loop* lp = started.get();
    for (int i = 0; i < posts; ++i) {
        lp->post([&ran, &all_ran, posts] {
            if (++ran == posts)
                all_ran.set_value();
        });
    }
    if (drained_first)
        ran_all.wait();
    lp->stop();
    loop_thread.join();
    return out;
}

// ---- loops posting to each other
// -------------------------------------------------------------------

struct mailbox {
    std::vector<std::vector<int>> seen; ///< seen[sender][seq]: times delivered; loop thread only
    int received = 0;
    int wrong_thread = 0;
};

// ---- resolve
// -----------------------------------------------------------------------------------------

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

struct resolve_outcome {
    bool done = false;
    bool ok = false;           ///< resolved, every endpoint loopback with the port asked for
    bool cancelled = false;    ///< ended by its deadline (operation_canceled / timed_out)
    bool wrong_thread = false; ///< resumed somewhere else than the loop thread
    std::string error;
};

core::task<void> resolve_one(std::uint16_t port, core::clock::duration deadline,
                             resolve_outcome& out) {
    const auto loop_thread = std::this_thread::get_id();
    auto r = co_await core::with_timeout(deadline, core::resolve("localhost", port));
    out.wrong_thread = std::this_thread::get_id() != loop_thread;
    out.done = true;
    if (r) {
        out.ok = !r->empty() && std::all_of(r->begin(), r->end(), [port](const core::endpoint& ep) {
            return is_loopback(ep) && ep.port() == port;
        });
        if (!out.ok)
            out.error = "not loopback or wrong port";
    } else if (r.error() == core::errc::timed_out || r.error() == core::errc::operation_canceled) {
        out.cancelled = true;
    } else {
        out.error = r.error().message();
    }
}

/// Starts `n` resolves of localhost at once (every third with a deadline so short that it is
/// usually cancelled while the worker is in getaddrinfo), waits for all of them, then resolves
/// once more to show the worker still serves the loop.
core::task<void> concurrent_resolves(int n, std::vector<resolve_outcome>& out,
                                     resolve_outcome& last) {
    out.assign(static_cast<std::size_t>(n), {});
    core::task_scope scope;
    for (int i = 0; i < n; ++i) {
        const auto deadline = i % 3 == 2 ? core::clock::duration(0ms) : core::clock::duration(10s);
        scope.spawn(resolve_one(static_cast<std::uint16_t>(1000 + i), deadline,
                                out[static_cast<std::size_t>(i)]));
    }
    co_await scope.join();
    co_await resolve_one(999, 10s, last);
}

void check_resolves(const std::vector<resolve_outcome>& out, const resolve_outcome& last) {
    for (std::size_t i = 0; i < out.size(); ++i) {
        INFO("resolve " << i << ": " << out[i].error);
        CHECK(out[i].done);
        CHECK_FALSE(out[i].wrong_thread);
        if (i % 3 == 2)
            CHECK((out[i].ok || out[i].cancelled));
        else
            CHECK(out[i].ok);
    }
    INFO("last resolve: " << last.error);
    CHECK(last.ok);
    CHECK_FALSE(last.wrong_thread);
}

// ---- shared_buffer
// -----------------------------------------------------------------------------------

core::shared_buffer patterned(std::size_t n, unsigned seed) {
    auto b = core::shared_buffer::make(n);
    for (std::size_t i = 0; i < n; ++i)
        b.mutable_data()[i] = static_cast<std::byte>((i * 131 + seed) & 0xff);
    return b;
}

bool has_pattern(const core::shared_buffer& b, std::size_t n, unsigned seed) {
    if (b.size() != n)
        return false;
    for (std::size_t i = 0; i < n; ++i)
        if (b.data()[i] != static_cast<std::byte>((i * 131 + seed) & 0xff))
            return false;
    return true;
}

// ---- coroutine frames across threads
// ----------------------------------------------------------------

core::task<int> add_later(int a, int b) {
    (void)co_await core::sleep_for(0ms);
    co_return a + b;
}

// ---- TLS
// -----------------------------------------------------------------------------------------------

core::tls_context shared_server_context() {
    const auto& pki = coronet::testing::test_certificates();
    core::tls_server_options o;
    o.cert_pem = pki.server.cert_pem;
    o.key_pem = pki.server.key_pem;
    o.alpn = {"coronet-test"};
    auto c = core::tls_context::server(o);
    REQUIRE_MESSAGE(c, c.error().message());
    return std::move(*c);
}

core::tls_context shared_client_context(const coronet::testing::temp_dir& dir) {
    core::tls_client_options o;
    o.ca_file = dir.write("ca.pem", coronet::testing::test_certificates().ca_pem);
    o.alpn = {"coronet-test"};
    auto c = core::tls_context::client(o);
    REQUIRE_MESSAGE(c, c.error().message());
    return std::move(*c);
}

core::task<core::result<core::tcp_stream>> accept_one(core::tcp_listener& l) {
    co_return co_await l.accept();
}

/// One TLS connection over loopback TCP: both handshakes, a message each way. Returns an empty
/// string when all went well, else what failed.
core::task<std::string> tls_round_trip(core::tcp_listener& l, const core::tls_context& server_ctx,
                                       const core::tls_context& client_ctx, int n) {
    auto ep = l.local_endpoint();
    if (!ep)
        co_return "local_endpoint: " + ep.error().message();
    auto [c, s] = co_await core::when_all(core::tcp_stream::connect(*ep), accept_one(l));
    if (!c)
        co_return "connect: " + c.error().message();
    if (!s)
        co_return "accept: " + s.error().message();
    auto client = core::tls_stream::client(
        client_ctx, std::make_unique<core::tcp_stream>(std::move(*c)), "localhost");
    auto server =
        core::tls_stream::server(server_ctx, std::make_unique<core::tcp_stream>(std::move(*s)));
    auto [ch, sh] = co_await core::when_all(client->handshake(), server->handshake());
    if (!ch)
        co_return "client handshake: " + ch.error().message();
    if (!sh)
        co_return "server handshake: " + sh.error().message();
    const std::string hello = "hello " + std::to_string(n);
    auto w = co_await client->write_all(core::as_bytes(hello));
    if (!w)
        co_return "client write: " + w.error().message();
    std::string got;
    std::byte buf[64];
    while (got.size() < hello.size()) {
        auto r = co_await server->read_some(buf);
        if (!r)
            co_return "server read: " + r.error().message();
        got.append(reinterpret_cast<const char*>(buf), *r);
    }
    if (got != hello)
        co_return "server read " + got;
    auto back = co_await server->write_all(core::as_bytes(got));
    if (!back)
        co_return "server write: " + back.error().message();
    std::string echoed;
    while (echoed.size() < hello.size()) {
        auto r = co_await client->read_some(buf);
        if (!r)
            co_return "client read: " + r.error().message();
        echoed.append(reinterpret_cast<const char*>(buf), *r);
    }
    if (echoed != hello)
        co_return "client read " + echoed;
    co_return std::string();
}

} // namespace

TEST_SUITE("core.threads") {

    TEST_CASE_TEMPLATE(
        "posts from several threads to a sleeping and running loop each run exactly once on it", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return posts_from_threads(lp); }, 30s);
    }

    TEST_CASE_TEMPLATE("stop from another thread returns run after the work posted before it and "
                       "the loop can die at once",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        constexpr int rounds = 30;
        constexpr int posts = 100;
        for (int r = 0; r < rounds; ++r) {
            INFO("round " << r);
            const stop_round got = stop_from_another_thread<B>(posts, r % 2 == 1);
            REQUIRE(got.returned);
            // stop() from another thread is itself posted, after the functions posted before it.
            REQUIRE(got.ran_before_return == posts);
        }
    }

    TEST_CASE_TEMPLATE(
        "loops on several threads post to each other and every message arrives exactly once", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        constexpr int n = 3;
        constexpr int per_peer = 1500;
        std::vector<mailbox> boxes(n);
        for (auto& b : boxes)
            b.seen.assign(n, std::vector<int>(per_peer, 0));
        on_loops<B>(
            n,
            [&](int me, core::loop& lp, const std::vector<core::loop*>& loops) -> core::task<void> {
                const auto my_thread = std::this_thread::get_id();
                (void)lp;
                // Interleave the peers, yielding to the loop now and then so deliveries and sends
                // mix.
                for (int seq = 0; seq < per_peer; ++seq) {
                    for (int peer = 0; peer < n; ++peer) {
                        if (peer == me)
                            continue;
                        mailbox* box = &boxes[static_cast<std::size_t>(peer)];
                        core::loop* target = loops[static_cast<std::size_t>(peer)];
                        target->post([box, me, seq, target] {
                            if (core::loop::current() != target)
                                ++box->wrong_thread;
                            ++box->seen[static_cast<std::size_t>(me)]
                                       [static_cast<std::size_t>(seq)];
                            ++box->received;
                        });
                    }
                    if (seq % 100 == 99)
                        (void)co_await core::sleep_for(0ms);
                }
                mailbox& mine = boxes[static_cast<std::size_t>(me)];
                const bool all =
                    co_await poll_until([&] { return mine.received == (n - 1) * per_peer; });
                if (!all || std::this_thread::get_id() != my_thread)
                    ++mine.wrong_thread;
            });
        for (int i = 0; i < n; ++i) {
            INFO("loop " << i);
            const mailbox& b = boxes[static_cast<std::size_t>(i)];
            CHECK(b.received == (n - 1) * per_peer);
            CHECK(b.wrong_thread == 0);
            for (int from = 0; from < n; ++from) {
                const auto& s = b.seen[static_cast<std::size_t>(from)];
                const auto once = std::count(s.begin(), s.end(), 1);
                CHECK(once == (from == i ? 0 : per_peer));
            }
        }
    }

    TEST_CASE_TEMPLATE(
        "concurrent resolves on one loop each complete once on the loop thread even when cancelled",
        B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        std::vector<resolve_outcome> out;
        resolve_outcome last;
        run_on<B>([&](core::loop&) { return concurrent_resolves(24, out, last); }, 30s);
        check_resolves(out, last);
    }

    TEST_CASE_TEMPLATE("loops on several threads resolve at once each through its own worker", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        constexpr int n = 3;
        std::vector<std::vector<resolve_outcome>> out(n);
        std::vector<resolve_outcome> last(n);
        on_loops<B>(
            n,
            [&](int me, core::loop&, const std::vector<core::loop*>&) {
                return concurrent_resolves(12, out[static_cast<std::size_t>(me)],
                                           last[static_cast<std::size_t>(me)]);
            },
            30s);
        for (int i = 0; i < n; ++i) {
            INFO("loop " << i);
            check_resolves(out[static_cast<std::size_t>(i)], last[static_cast<std::size_t>(i)]);
        }
    }

    TEST_CASE("copies of a shared buffer made and dropped on many threads leave one owner and the "
              "bytes intact") {
        constexpr int threads = 6;
        constexpr int rounds = 300;
        constexpr std::size_t size = 1000;
        const auto original = patterned(size, 7);
        std::vector<int> bad(threads, 0);
        std::latch go(threads);
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&, t] {
                go.arrive_and_wait();
                for (int r = 0; r < rounds; ++r) {
                    std::vector<core::shared_buffer> copies;
                    for (int k = 0; k < 16; ++k)
                        copies.push_back(original); // copy constructor
                    core::shared_buffer assigned;
                    assigned = copies.back(); // copy assignment
                    core::shared_buffer moved(std::move(copies.front()));
                    if (!has_pattern(assigned, size, 7) || !has_pattern(moved, size, 7) ||
                        original.use_count() < 18)
                        ++bad[static_cast<std::size_t>(t)];
                    // Drop in an order that differs per thread.
                    if ((t + r) % 2 == 0)
                        std::reverse(copies.begin(), copies.end());
                    copies.clear();
                }
            });
        }
        for (auto& w : workers)
            w.join();
        CHECK(original.use_count() == 1);
        CHECK(has_pattern(original, size, 7));
        for (int t = 0; t < threads; ++t)
            CHECK(bad[static_cast<std::size_t>(t)] == 0);
    }

    TEST_CASE("the last owner of a shared buffer may read and drop it on another thread than the "
              "one that made it") {
        // Every buffer is made here and dropped here first; the workers read it and drop their
        // copies in a race, so whichever is last frees it after the others' reads (acquire-release
        // count).
        constexpr int threads = 4;
        constexpr int buffers = 400;
        std::vector<int> good(threads, 0);
        std::vector<std::vector<core::shared_buffer>> inbox(threads);
        std::mutex mu;
        std::vector<std::thread> workers;
        std::latch go(threads + 1);
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&, t] {
                go.arrive_and_wait();
                for (int got = 0; got < buffers;) {
                    std::vector<core::shared_buffer> mine;
                    {
                        std::lock_guard<std::mutex> lock(mu);
                        mine.swap(inbox[static_cast<std::size_t>(t)]);
                    }
                    if (mine.empty()) {
                        std::this_thread::yield();
                        continue;
                    }
                    for (auto& b : mine) {
                        const auto seed = static_cast<unsigned>(b.size());
                        if (has_pattern(b, b.size(), seed))
                            ++good[static_cast<std::size_t>(t)];
                        ++got;
                    }
                }
            });
        }
        go.arrive_and_wait();
        for (int i = 0; i < buffers; ++i) {
            const std::size_t size = 64 + static_cast<std::size_t>(i);
            auto b = patterned(size, static_cast<unsigned>(size));
            {
                std::lock_guard<std::mutex> lock(mu);
                for (auto& box : inbox)
                    box.push_back(b);
            }
            b = core::shared_buffer(); // this thread's reference goes first
            CHECK(b.use_count() == 0);
        }
        for (auto& w : workers)
            w.join();
        for (int t = 0; t < threads; ++t)
            CHECK(good[static_cast<std::size_t>(t)] == buffers);
    }

    TEST_CASE_TEMPLATE(
        "a shared buffer handed to loops on other threads is read by each and freed by the last", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        constexpr int n = 3;
        constexpr int messages = 200;
        std::vector<int> good(n, 0);
        std::vector<int> handled(n, 0);
        std::vector<core::shared_buffer> kept; // loop 0's: the originals, dropped at the end
        on_loops<B>(
            n, [&](int me, core::loop&, const std::vector<core::loop*>& loops) -> core::task<void> {
                if (me == 0) {
                    for (int i = 0; i < messages; ++i) {
                        const std::size_t size = 100 + static_cast<std::size_t>(i);
                        auto b = patterned(size, static_cast<unsigned>(i));
                        for (int peer = 1; peer < n; ++peer) {
                            const auto p = static_cast<std::size_t>(peer);
                            loops[p]->post([b, p, i, &good, &handled] {
                                if (has_pattern(b, b.size(), static_cast<unsigned>(i)))
                                    ++good[p];
                                ++handled[p];
                            });
                        }
                        if (i % 2 == 0)
                            kept.push_back(std::move(b));
                        if (i % 20 == 19)
                            (void)co_await core::sleep_for(0ms);
                    }
                    kept.clear();
                } else {
                    const auto p = static_cast<std::size_t>(me);
                    (void)co_await poll_until([&] { return handled[p] == messages; });
                }
            });
        for (int peer = 1; peer < n; ++peer) {
            INFO("loop " << peer);
            CHECK(handled[static_cast<std::size_t>(peer)] == messages);
            CHECK(good[static_cast<std::size_t>(peer)] == messages);
        }
    }

    TEST_CASE_TEMPLATE("tasks made on one thread run and are freed on another loop's thread", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        // Frames come from the allocating thread's pool and go back to the pool of the thread that
        // frees them; the receiving loop then reuses them for its own tasks.
        using batch = std::vector<core::task<int>>;
        constexpr int batches = 20;
        constexpr int per_batch = 50;
        long long sum = 0;                         // loop 1 only
        long long expected = 0;                    // loop 0 only
        int batches_run = 0;                       // loop 1 only
        std::vector<std::shared_ptr<batch>> inbox; // loop 1 only
        on_loops<B>(
            2, [&](int me, core::loop&, const std::vector<core::loop*>& loops) -> core::task<void> {
                if (me == 0) {
                    for (int b = 0; b < batches; ++b) {
                        auto tasks = std::make_shared<batch>();
                        for (int i = 0; i < per_batch; ++i) {
                            tasks->push_back(add_later(b, i));
                            expected += b + i;
                        }
                        tasks->push_back(add_later(-1, -1)); // made and freed here without running
                        tasks->pop_back();
                        loops[1]->post([tasks, &inbox] { inbox.push_back(tasks); });
                        (void)co_await core::sleep_for(0ms);
                    }
                } else {
                    while (batches_run < batches) {
                        if (inbox.empty()) {
                            if (!co_await poll_until([&] { return !inbox.empty(); }))
                                co_return;
                        }
                        auto tasks = std::move(inbox.front());
                        inbox.erase(inbox.begin());
                        for (auto& t : *tasks)
                            sum += co_await std::move(t);
                        tasks.reset(); // the frames go to this thread's pool...
                        for (int k = 0; k < per_batch; ++k)
                            sum += co_await add_later(0, 0); // ...and back out
                        ++batches_run;
                    }
                }
            });
        CHECK(batches_run == batches);
        CHECK(sum == expected);
    }

    TEST_CASE_TEMPLATE("one tls_context pair serves handshakes on loops on several threads at once",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        coronet::testing::temp_dir dir;
        const core::tls_context server_ctx = shared_server_context();
        const core::tls_context client_ctx = shared_client_context(dir);
        // No handshake first: OpenSSL 3.0 fills a certificate's cached extensions on first use
        // without a lock that covers every reader (openssl/openssl#25202), so the first handshakes
        // on several threads at once raced inside libcrypto until tls_context filled the caches
        // when it is built. This case is the regression test for that (under TSan).
        constexpr int n = 3;
        constexpr int per_loop = 4;
        std::vector<std::vector<std::string>> failures(n);
        on_loops<B>(
            n,
            [&](int me, core::loop& lp, const std::vector<core::loop*>&) -> core::task<void> {
                auto l = core::tcp_listener::bind(lp, core::endpoint::loopback_v4(0));
                auto& out = failures[static_cast<std::size_t>(me)];
                if (!l) {
                    out.push_back("bind: " + l.error().message());
                    co_return;
                }
                // A copy per loop, as an application would hand it to each loop's server.
                const core::tls_context server_copy = server_ctx;
                for (int i = 0; i < per_loop; ++i) {
                    std::string failed = co_await tls_round_trip(
                        *l, i % 2 == 0 ? server_copy : server_ctx, client_ctx, i);
                    if (!failed.empty())
                        out.push_back(std::move(failed));
                }
            },
            60s);
        for (int i = 0; i < n; ++i) {
            INFO("loop " << i);
            for (const auto& f : failures[static_cast<std::size_t>(i)])
                FAIL_CHECK(f);
            CHECK(failures[static_cast<std::size_t>(i)].empty());
        }
    }

} // TEST_SUITE
