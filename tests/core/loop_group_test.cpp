// Loop groups (several loops on several threads), the lock-free cross-loop post, resume_on and
// serving on a group. In suite "core.loop_group.threads", so the tsan preset runs every case
// under ThreadSanitizer.

#include <coronet/core/loop_group.hpp>

#include <coronet/core/serve_group.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/timer.hpp>

#include <testing/backends.hpp>
#include <testing/loop_threads.hpp>

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace core = coronet::core;
using coronet::testing::group_options;
using coronet::testing::poll_until;
using namespace std::chrono_literals;

namespace {

core::task<core::result<void>> nap(core::clock::duration d) {
    co_return co_await core::sleep_for(d);
}

/// Sleeps until the caller's stop token fires (or 30 s pass); true if it was the stop.
core::task<bool> wait_for_stop() {
    auto r = co_await nap(30s);
    co_return !r && r.error() == core::errc::operation_canceled;
}

// ---- cross-loop posts ---------------------------------------------------------------------------

/// A posted message: who sent it and its number in the sender's order.
struct message : core::post_node {
    int sender = 0;
    int seq = 0;
    struct inbox* to = nullptr;
};

/// What the receiving loop saw (its thread only).
struct inbox {
    core::loop* owner = nullptr;
    std::vector<int> next_seq; ///< per sender: the number expected next
    int received = 0;
    int out_of_order = 0;
    int wrong_thread = 0;
    static void receive(core::post_node* n) noexcept {
        auto* m = static_cast<message*>(n);
        inbox& box = *m->to;
        if (core::loop::current() != box.owner)
            ++box.wrong_thread;
        auto& expected = box.next_seq[static_cast<std::size_t>(m->sender)];
        if (m->seq != expected)
            ++box.out_of_order;
        expected = m->seq + 1;
        ++box.received;
    }
};

/// Posts `count` messages from `nodes` to `target`, in bursts (so some land while the target
/// sleeps and some while it drains).
void post_burst(core::loop& target, std::vector<message>& nodes, int from, int to) {
    for (int i = from; i < to; ++i)
        target.post(nodes[static_cast<std::size_t>(i)]);
}

// ---- serving on a group -------------------------------------------------------------------------

/// A blocking client socket connected to 127.0.0.1:port, with a 10 s receive timeout so a broken
/// server fails the test instead of hanging it. -1 on failure.
int connect_blocking(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ::timeval tv{};
    tv.tv_sec = 10;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<::sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

/// Reads until EOF (or an error / the timeout); what came.
std::string read_to_end(int fd) {
    std::string out;
    char buf[256];
    for (;;) {
        auto n = ::read(fd, buf, sizeof buf);
        if (n <= 0)
            return out;
        out.append(buf, static_cast<std::size_t>(n));
    }
}

/// Reads exactly `n` bytes (fewer on EOF, error or timeout).
std::string read_exactly(int fd, std::size_t n) {
    std::string out;
    char buf[256];
    while (out.size() < n) {
        auto r = ::read(fd, buf, std::min(sizeof buf, n - out.size()));
        if (r <= 0)
            break;
        out.append(buf, static_cast<std::size_t>(r));
    }
    return out;
}

/// Per loop of a serving test: what its connections saw (that loop's thread only).
struct loop_record {
    int handled = 0;
    int drained = 0;
    int wrong_loop = 0;
};

/// A connection: reads one byte, answers "hi" and the index of the loop it runs on, waits for
/// the server's drain, says "bye" and ends.
core::task<void> polite_connection(core::tcp_stream s, core::stop_token draining,
                                   core::loop_group& group, std::vector<loop_record>& records) {
    std::size_t index = group.size();
    for (std::size_t i = 0; i < group.size(); ++i)
        if (core::loop::current() == &group.at(i))
            index = i;
    if (index == group.size())
        co_return; // not on a loop of the group: the client sees no "hi"
    loop_record& rec = records[index];
    ++rec.handled;
    std::byte b[1];
    auto got = co_await s.read_some(b);
    if (!got || *got == 0)
        co_return;
    const char hello[3] = {'h', 'i', static_cast<char>('0' + index)};
    auto wrote = co_await s.write_all(std::as_bytes(std::span(hello)));
    if (!wrote)
        co_return;
    auto until_drain = nap(30s);
    until_drain.handle().promise().set_token(draining);
    (void)co_await std::move(until_drain);
    if (!draining.stop_requested())
        co_return;
    ++rec.drained;
    const char bye[3] = {'b', 'y', 'e'};
    (void)co_await s.write_all(std::as_bytes(std::span(bye)));
}

} // namespace

TEST_SUITE("core.loop_group.threads") {

    TEST_CASE_TEMPLATE("a loop group runs one body per loop on that loop's own thread until "
                       "stopped",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        constexpr std::size_t n = 3;
        core::loop_group group(group_options<B>(n));
        REQUIRE(group.size() == n);
        std::vector<std::thread::id> threads(n);
        std::vector<char> right_loop(n, 0);
        std::vector<char> saw_stop(n, 0);
        std::atomic<std::size_t> started{0};
        const core::loop_body body = [&](core::loop& lp, std::size_t i) -> core::task<void> {
            threads[i] = std::this_thread::get_id();
            right_loop[i] = &lp == &group.at(i) && core::loop::current() == &lp ? 1 : 0;
            started.fetch_add(1);
            if (i == 0) {
                // Every body has started: stop them all, this one included.
                (void)co_await poll_until([&] { return started.load() == n; });
                group.stop();
            }
            saw_stop[i] = co_await wait_for_stop() ? 1 : 0;
        };
        group.run(body);
        CHECK(threads[0] == std::this_thread::get_id()); // use_calling_thread
        for (std::size_t i = 0; i < n; ++i) {
            INFO("loop " << i);
            CHECK(right_loop[i] == 1);
            CHECK(saw_stop[i] == 1);
            for (std::size_t j = 0; j < i; ++j)
                CHECK(threads[i] != threads[j]);
        }

        // A stop() between runs: the next run's bodies start stopped. And the group runs again.
        group.stop();
        std::atomic<int> stopped_at_start{0};
        group.run([&](core::loop&, std::size_t) -> core::task<void> {
            auto token = co_await core::get_stop_token();
            if (token.stop_requested())
                stopped_at_start.fetch_add(1);
        });
        CHECK(stopped_at_start.load() == static_cast<int>(n));
    }

    TEST_CASE_TEMPLATE("a loop group without a calling-thread loop runs every loop on a thread "
                       "of its own",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        auto opts = group_options<B>(2);
        opts.use_calling_thread = false;
        core::loop_group group(opts);
        std::vector<std::thread::id> threads(2);
        group.run([&](core::loop&, std::size_t i) -> core::task<void> {
            threads[i] = std::this_thread::get_id();
            co_return;
        });
        CHECK(threads[0] != std::this_thread::get_id());
        CHECK(threads[1] != std::this_thread::get_id());
        CHECK(threads[0] != threads[1]);
    }

    TEST_CASE_TEMPLATE("posts from loops and plain threads to one loop each run exactly once on "
                       "that loop in each poster's order",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        // Loops 1 and 2 post to loop 0 from their own loops (on io_uring: woken by msg_ring), two
        // plain threads post through the eventfd; all in bursts with pauses, so posts land both
        // while loop 0 sleeps in the kernel and while it drains.
        constexpr std::size_t n = 3;
        constexpr int plain_threads = 2;
        constexpr int senders = static_cast<int>(n) - 1 + plain_threads;
        constexpr int per_sender = 20000;
        constexpr int burst = 500;
        core::loop_group group(group_options<B>(n));
        inbox box;
        box.owner = &group.at(0);
        box.next_seq.assign(senders, 0);
        std::vector<std::vector<message>> nodes(senders, std::vector<message>(per_sender));
        for (int s = 0; s < senders; ++s) {
            for (int i = 0; i < per_sender; ++i) {
                auto& m = nodes[static_cast<std::size_t>(s)][static_cast<std::size_t>(i)];
                m.run = &inbox::receive;
                m.sender = s;
                m.seq = i;
                m.to = &box;
            }
        }
        bool all_arrived = false;
        std::vector<std::thread> plain;
        group.run([&](core::loop& lp, std::size_t i) -> core::task<void> {
            if (i == 0) {
                for (int t = 0; t < plain_threads; ++t) {
                    const int s = static_cast<int>(n) - 1 + t;
                    plain.emplace_back([&lp, &nodes, s] {
                        auto& mine = nodes[static_cast<std::size_t>(s)];
                        for (int k = 0; k < per_sender; k += burst) {
                            post_burst(lp, mine, k, k + burst);
                            std::this_thread::sleep_for(100us);
                        }
                    });
                }
                all_arrived =
                    co_await poll_until([&] { return box.received == senders * per_sender; }, 60s);
                co_return;
            }
            auto& mine = nodes[i - 1];
            for (int k = 0; k < per_sender; k += burst) {
                post_burst(group.at(0), mine, k, k + burst);
                (void)co_await core::sleep_for(k % 2000 == 0 ? 1ms : 0ms);
            }
        });
        for (auto& t : plain)
            t.join();
        CHECK(all_arrived);
        CHECK(box.received == senders * per_sender);
        CHECK(box.out_of_order == 0);
        CHECK(box.wrong_thread == 0);
        for (int s = 0; s < senders; ++s)
            CHECK(box.next_seq[static_cast<std::size_t>(s)] == per_sender);
    }

    TEST_CASE_TEMPLATE("resume_on moves a coroutine to another loop's thread and back", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        core::loop_group group(group_options<B>(2));
        std::vector<std::thread::id> threads(2);
        std::atomic<int> ready{0};
        std::atomic<bool> done{false};
        int hops = 0;
        int wrong = 0;
        group.run([&](core::loop& lp, std::size_t i) -> core::task<void> {
            threads[i] = std::this_thread::get_id();
            ready.fetch_add(1);
            if (i == 1) {
                (void)co_await poll_until([&] { return done.load(); }, 30s);
                co_return;
            }
            (void)co_await poll_until([&] { return ready.load() == 2; });
            co_await core::resume_on(lp); // already there: no switch
            if (std::this_thread::get_id() != threads[0])
                ++wrong;
            for (int k = 0; k < 2000; ++k) {
                co_await core::resume_on(group.at(1));
                if (std::this_thread::get_id() != threads[1] ||
                    core::loop::current() != &group.at(1))
                    ++wrong;
                co_await core::resume_on(group.at(0));
                if (std::this_thread::get_id() != threads[0] ||
                    core::loop::current() != &group.at(0))
                    ++wrong;
                ++hops;
            }
            done.store(true);
        });
        CHECK(hops == 2000);
        CHECK(wrong == 0);
    }

    TEST_CASE_TEMPLATE("stopping a group drains the open connections of every loop", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        // Each loop serves its own listener, so the client puts connections on every loop.
        constexpr std::size_t n = 3;
        constexpr int per_loop = 3;
        core::loop_group group(group_options<B>(n));
        std::vector<loop_record> records(n);
        std::vector<std::atomic<std::uint16_t>> ports(n);
        core::serve_options opts;
        opts.shutdown_grace = 20s;
        opts.name = "loop group test";
        std::vector<std::string> hellos;
        std::vector<std::string> byes;
        std::thread client([&] {
            for (auto& p : ports)
                while (p.load() == 0)
                    std::this_thread::yield();
            std::vector<int> fds;
            for (std::size_t i = 0; i < n; ++i) {
                for (int k = 0; k < per_loop; ++k) {
                    int fd = connect_blocking(ports[i].load());
                    if (fd < 0)
                        continue;
                    (void)::write(fd, "x", 1);
                    hellos.push_back(read_exactly(fd, 3));
                    fds.push_back(fd);
                }
            }
            // Every connection is open and its handler is running on its loop: shut down.
            group.stop();
            for (int fd : fds) {
                byes.push_back(read_to_end(fd));
                ::close(fd);
            }
        });
        group.run([&](core::loop& lp, std::size_t i) -> core::task<void> {
            auto l = core::tcp_listener::bind(lp, core::endpoint::loopback_v4(0));
            if (!l)
                throw std::runtime_error("bind: " + l.error().message());
            ports[i].store((*l).local_endpoint()->port());
            co_await core::serve(
                *l,
                [&](core::tcp_stream s, core::stop_token draining) {
                    return polite_connection(std::move(s), draining, group, records);
                },
                opts);
        });
        client.join();
        REQUIRE(hellos.size() == n * per_loop);
        REQUIRE(byes.size() == n * per_loop);
        for (std::size_t c = 0; c < hellos.size(); ++c) {
            INFO("connection " << c);
            CHECK(hellos[c] == std::string("hi") + static_cast<char>('0' + c / per_loop));
            CHECK(byes[c] == "bye");
        }
        for (std::size_t i = 0; i < n; ++i) {
            INFO("loop " << i);
            CHECK(records[i].handled == per_loop);
            CHECK(records[i].drained == per_loop);
        }
    }

    TEST_CASE_TEMPLATE("serve_group spreads connections over one SO_REUSEPORT listener per loop", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        constexpr std::size_t n = 2;
        constexpr int conns = 48; // all on one loop: a chance of 2^-47
        core::loop_group group(group_options<B>(n));
        core::listen_options lo;
        auto listeners = core::listen_group(group, core::endpoint::loopback_v4(0), lo);
        REQUIRE_MESSAGE(listeners, listeners.error().message());
        REQUIRE(listeners->size() == n);
        const auto port = (*listeners)[0].local_endpoint()->port();
        CHECK(port != 0);
        CHECK((*listeners)[1].local_endpoint()->port() == port);
        std::vector<loop_record> records(n);
        std::vector<int> per_loop(n, 0);
        std::vector<std::string> byes;
        int bad = 0;
        std::thread client([&] {
            std::vector<int> fds;
            for (int k = 0; k < conns; ++k) {
                int fd = connect_blocking(port);
                if (fd < 0) {
                    ++bad;
                    continue;
                }
                (void)::write(fd, "x", 1);
                const std::string hi = read_exactly(fd, 3);
                const std::size_t idx = hi.size() == 3 ? static_cast<std::size_t>(hi[2] - '0') : n;
                if (hi.substr(0, 2) != "hi" || idx >= n)
                    ++bad;
                else
                    ++per_loop[idx];
                fds.push_back(fd);
            }
            group.stop();
            for (int fd : fds) {
                byes.push_back(read_to_end(fd));
                ::close(fd);
            }
        });
        core::serve_options opts;
        opts.shutdown_grace = 20s;
        core::serve_group(
            group, *listeners,
            [&](core::tcp_stream s, core::stop_token draining) {
                return polite_connection(std::move(s), draining, group, records);
            },
            opts);
        client.join();
        CHECK(bad == 0);
        for (std::size_t i = 0; i < n; ++i) {
            INFO("loop " << i);
            CHECK(per_loop[i] > 0);
            CHECK(records[i].handled == per_loop[i]);
            CHECK(records[i].drained == per_loop[i]);
        }
        CHECK(byes.size() == static_cast<std::size_t>(conns));
        for (const auto& b : byes)
            CHECK(b == "bye");
    }

    TEST_CASE_TEMPLATE("an exception in one body stops the others and run() rethrows it", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        constexpr std::size_t n = 3;
        core::loop_group group(group_options<B>(n));
        std::vector<char> saw_stop(n, 0);
        const core::loop_body body = [&](core::loop&, std::size_t i) -> core::task<void> {
            if (i == 1) {
                (void)co_await core::sleep_for(1ms);
                throw std::runtime_error("boom on loop 1");
            }
            saw_stop[i] = co_await wait_for_stop() ? 1 : 0;
        };
        CHECK_THROWS_WITH_AS(group.run(body), "boom on loop 1", std::runtime_error);
        CHECK(saw_stop[0] == 1);
        CHECK(saw_stop[2] == 1);
        // The group is still usable.
        std::atomic<int> ran{0};
        group.run([&](core::loop&, std::size_t) -> core::task<void> {
            ran.fetch_add(1);
            co_return;
        });
        CHECK(ran.load() == static_cast<int>(n));
    }

} // TEST_SUITE
