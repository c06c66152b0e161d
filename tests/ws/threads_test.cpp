// The cross-thread paths of ws, in suite "ws.threads" so that the tsan preset (which runs only
// the suites named *.threads, docs/build.md "Presets") runs them under ThreadSanitizer: copies of
// one prepared_message broadcast by the hubs of several loops (one shared frame, an atomic
// count), and the directory attachment store's worker thread under concurrent calls, on one loop
// and on several.

#include <coronet/ws/attachment_store.hpp>
#include <coronet/ws/hub.hpp>
#include <coronet/ws/session.hpp>

#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/timer.hpp>

#include <testing/backends.hpp>
#include <testing/loop_threads.hpp>
#include <testing/memory_stream.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
namespace fs = std::filesystem;
using coronet::testing::on_loops;
using coronet::testing::poll_until;
using coronet::testing::run_on;
using namespace std::chrono_literals;

namespace {

/// A directory from mkdtemp, removed with its contents at the end of the scope.
class scratch_dir {
public:
    scratch_dir() {
        std::string t = (fs::temp_directory_path() / "coronet-threads-XXXXXX").string();
        REQUIRE(::mkdtemp(t.data()) != nullptr);
        root_ = t;
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;
    ~scratch_dir() {
        std::error_code ec;
        fs::remove_all(root_, ec);
    }
    std::string path(const std::string& name) const { return root_ + "/" + name; }

private:
    std::string root_;
};

// ---- one prepared_message, hubs on several loops
// ----------------------------------------------------

std::string round_text(int round) {
    std::string s = "round " + std::to_string(round) + ":";
    for (int i = 0; i < 1500; ++i)
        s.push_back(static_cast<char>('a' + (i * 7 + round) % 26));
    return s;
}

/// Reads messages on a client session until it ends (answering the hub's close on the way).
core::task<void> read_all(ws::session& client, std::vector<std::string>& got) {
    for (;;) {
        auto m = co_await client.receive();
        if (!m)
            co_return;
        got.push_back(std::move(m->data));
    }
}

/// The server side of each connection: joins room "all" and reads until the connection ends.
core::task<void> member(ws::hub_connection& c, ws::handshake_info&) {
    (void)c.join("all");
    for (;;) {
        auto m = co_await c.receive();
        if (!m)
            co_return;
    }
}

struct loop_side {
    ws::hub* hub = nullptr;                    ///< published before `ready` counts down
    std::vector<std::vector<std::string>> got; ///< per client; loop thread only
    std::size_t delivered = 0;                 ///< sum of broadcast_room results; loop thread only
    std::size_t broadcasts = 0;                ///< broadcasts run on this loop; loop thread only
};

/// One loop's part: a hub with `clients` connections over in-memory streams, all in room "all".
/// Tells the broadcaster it is ready, waits until every client received `rounds` messages, then
/// closes every connection and waits for all of them to end.
core::task<void> hub_loop(core::loop& lp, loop_side& side, int clients, int rounds,
                          std::latch& ready) {
    ws::hub hub;
    std::vector<std::unique_ptr<ws::session>> client_sessions;
    std::vector<std::unique_ptr<ws::session>> server_sessions;
    core::task_scope serving;
    core::task_scope reading;
    side.got.assign(static_cast<std::size_t>(clients), {});
    for (int k = 0; k < clients; ++k) {
        auto [c, s] = coronet::testing::memory_stream_pair(lp);
        client_sessions.push_back(std::make_unique<ws::session>(std::move(c), ws::role::client));
        server_sessions.push_back(std::make_unique<ws::session>(std::move(s), ws::role::server));
        serving.spawn(hub.serve(*server_sessions.back(), ws::handshake_info("/all"), &member));
        reading.spawn(read_all(*client_sessions.back(), side.got[static_cast<std::size_t>(k)]));
    }
    const bool joined = co_await poll_until(
        [&] { return hub.room_size("all") == static_cast<std::size_t>(clients); });
    side.hub = &hub;
    ready.count_down();
    if (joined) {
        (void)co_await poll_until(
            [&] {
                return std::all_of(side.got.begin(), side.got.end(), [rounds](const auto& g) {
                    return g.size() >= static_cast<std::size_t>(rounds);
                });
            },
            20s);
    }
    co_await hub.close_all(1000, "done");
    co_await reading.join();
    co_await serving.join();
}

// ---- the directory store
// ---------------------------------------------------------------------------------

std::vector<std::byte> value_of(std::uint64_t id, int version) {
    // Sizes vary (0 to a few KiB), so the worker's writes differ in length.
    const std::size_t n =
        static_cast<std::size_t>((id * 37 + static_cast<std::uint64_t>(version) * 11) % 5000);
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i)
        v[i] = static_cast<std::byte>((i + id * 13 + static_cast<std::uint64_t>(version)) & 0xff);
    return v;
}

std::string hex_name(std::uint64_t id) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s(16, '0');
    for (std::size_t i = 16; i-- > 0; id >>= 4)
        s[i] = digits[id & 0xf];
    return s;
}

std::optional<std::vector<std::byte>> file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return std::nullopt;
    std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> out(raw.size());
    std::transform(raw.begin(), raw.end(), out.begin(),
                   [](char c) { return static_cast<std::byte>(c); });
    return out;
}

std::size_t tmp_files(const std::string& dir) {
    std::size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".tmp")
            ++n;
    return n;
}

struct store_outcome {
    int failed_calls = 0;
    int wrong_values = 0;
    int wrong_thread = 0;
    std::vector<std::uint64_t> listed;
    bool list_ok = false;
};

core::task<void> put_one(ws::attachment_store& store, std::uint64_t id, int version,
                         store_outcome& out) {
    const auto loop_thread = std::this_thread::get_id();
    auto r = co_await store.put(id, value_of(id, version));
    if (!r)
        ++out.failed_calls;
    if (std::this_thread::get_id() != loop_thread)
        ++out.wrong_thread;
}

core::task<void> put_then_get(ws::attachment_store& store, std::uint64_t id, store_outcome& out) {
    co_await put_one(store, id, 0, out);
    auto g = co_await store.get(id);
    if (!g)
        ++out.failed_calls;
    else if (!g->has_value() || **g != value_of(id, 0))
        ++out.wrong_values;
}

core::task<void> remove_one(ws::attachment_store& store, std::uint64_t id, store_outcome& out) {
    auto r = co_await store.remove(id);
    if (!r)
        ++out.failed_calls;
}

/// Many calls at once on one store: `ids` fresh ids put then read back, eight overwrites of
/// one id (the last one started wins), and puts of ids removed right after (gone at the end).
/// Then lists. Expected: ids 1..ids and 1000 + base.
core::task<void> concurrent_calls(ws::attachment_store& store, std::uint64_t base, int ids,
                                  store_outcome& out) {
    {
        core::task_scope scope;
        for (int i = 1; i <= ids; ++i)
            scope.spawn(put_then_get(store, base + static_cast<std::uint64_t>(i), out));
        for (int v = 0; v < 8; ++v)
            scope.spawn(put_one(store, base + 1000, v, out));
        for (int i = 0; i < 8; ++i) {
            scope.spawn(put_one(store, base + 2000 + static_cast<std::uint64_t>(i), 0, out));
            scope.spawn(remove_one(store, base + 2000 + static_cast<std::uint64_t>(i), out));
        }
        co_await scope.join();
    }
    auto last = co_await store.get(base + 1000);
    if (!last || !last->has_value() || **last != value_of(base + 1000, 7))
        ++out.wrong_values;
    auto listed = co_await store.list();
    if (listed) {
        out.list_ok = true;
        out.listed = std::move(*listed);
    }
}

std::vector<std::uint64_t> expected_ids(std::uint64_t base, int ids) {
    std::vector<std::uint64_t> v;
    for (int i = 1; i <= ids; ++i)
        v.push_back(base + static_cast<std::uint64_t>(i));
    v.push_back(base + 1000);
    return v;
}

void check_store(const store_outcome& out, const std::string& dir, std::uint64_t base, int ids) {
    CHECK(out.failed_calls == 0);
    CHECK(out.wrong_values == 0);
    CHECK(out.wrong_thread == 0);
    REQUIRE(out.list_ok);
    const auto expected = expected_ids(base, ids);
    CHECK(out.listed == expected);
    // And on disk, read without the store: every file whole, nothing half-written left over.
    for (const auto id : expected) {
        const int version = id == base + 1000 ? 7 : 0;
        const auto bytes = file_bytes(dir + "/" + hex_name(id));
        INFO("id " << id);
        REQUIRE(bytes.has_value());
        CHECK(*bytes == value_of(id, version));
    }
    CHECK(tmp_files(dir) == 0);
}

} // namespace

TEST_SUITE("ws.threads") {

    TEST_CASE_TEMPLATE("copies of one prepared message broadcast by hubs on several loops share "
                       "one frame until the last queue drops it",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        constexpr int n = 3;
        constexpr int clients = 6;
        constexpr int rounds = 20;
        std::vector<loop_side> sides(n);
        std::vector<core::loop*> loop_of(n, nullptr);
        std::vector<ws::prepared_message> messages; // made by the broadcaster thread
        messages.reserve(rounds);
        int frame_copies_ok = 0;
        std::latch ready(n);
        // The docs' cross-loop broadcast (docs/ws_hub.md "Threads"): the message is encoded once on
        // this thread, and each loop gets a copy through post() for its own hub.
        std::thread broadcaster([&] {
            ready.wait();
            if (std::find(loop_of.begin(), loop_of.end(), nullptr) != loop_of.end())
                return;
            for (int r = 0; r < rounds; ++r) {
                messages.push_back(ws::prepared_message::text(round_text(r)));
                const ws::prepared_message& pm = messages.back();
                for (int i = 0; i < n; ++i) {
                    loop_side* side = &sides[static_cast<std::size_t>(i)];
                    loop_of[static_cast<std::size_t>(i)]->post([side, copy = pm] {
                        side->delivered += side->hub->broadcast_room("all", copy);
                        ++side->broadcasts;
                    });
                    // Meanwhile this thread takes and drops references too.
                    std::vector<core::shared_buffer> extra(4, pm.frame());
                    if (extra.back().size() == pm.frame().size())
                        ++frame_copies_ok;
                }
            }
        });
        on_loops<B>(
            n,
            [&](int me, core::loop& lp, const std::vector<core::loop*>&) -> core::task<void> {
                loop_of[static_cast<std::size_t>(me)] = &lp;
                return hub_loop(lp, sides[static_cast<std::size_t>(me)], clients, rounds, ready);
            },
            40s);
        broadcaster.join();
        REQUIRE(messages.size() == rounds);
        CHECK(frame_copies_ok == rounds * n);
        for (int r = 0; r < rounds; ++r) {
            INFO("round " << r);
            // Every queue that held the frame, on every loop, has let it go.
            CHECK(messages[static_cast<std::size_t>(r)].frame().use_count() == 1);
        }
        std::vector<std::string> want;
        for (int r = 0; r < rounds; ++r)
            want.push_back(round_text(r));
        for (int i = 0; i < n; ++i) {
            INFO("loop " << i);
            const loop_side& side = sides[static_cast<std::size_t>(i)];
            CHECK(side.broadcasts == rounds);
            CHECK(side.delivered == static_cast<std::size_t>(rounds * clients));
            for (const auto& got : side.got) {
                auto sorted = got;
                std::sort(sorted.begin(), sorted.end());
                auto expected = want;
                std::sort(expected.begin(), expected.end());
                CHECK(sorted == expected);
            }
        }
    }

    TEST_CASE_TEMPLATE(
        "a directory attachment store takes many concurrent calls and leaves every file whole", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        scratch_dir dir;
        const std::string path = dir.path("store");
        int hook_calls = 0; // written on the worker thread, read here after the store is gone
        std::thread::id hook_thread;
        bool hook_on_one_thread = true;
        ws::directory_store_options opts;
        opts.fault_hook = [&](ws::write_stage, std::uint64_t) {
            if (hook_calls++ == 0)
                hook_thread = std::this_thread::get_id();
            else if (hook_thread != std::this_thread::get_id())
                hook_on_one_thread = false;
            return std::error_code{};
        };
        constexpr int ids = 48;
        store_outcome out;
        {
            auto store = ws::make_directory_store(path, std::move(opts));
            run_on<B>([&](core::loop&) { return concurrent_calls(*store, 0, ids, out); }, 60s);
        }
        check_store(out, path, 0, ids);
        // Five stages per put: ids fresh puts, 8 overwrites, 8 puts of removed ids.
        CHECK(hook_calls == 5 * (ids + 8 + 8));
        CHECK(hook_on_one_thread);
        CHECK(hook_thread != std::this_thread::get_id());
    }

    TEST_CASE_TEMPLATE("directory attachment stores on loops on several threads write at once and "
                       "a new store finds every file",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        constexpr int n = 3;
        constexpr int ids = 24;
        scratch_dir dir;
        std::vector<store_outcome> out(n);
        on_loops<B>(
            n,
            [&](int me, core::loop&, const std::vector<core::loop*>&) -> core::task<void> {
                // Made, used and destroyed on this loop's thread; ids overlap between the stores.
                auto store = ws::make_directory_store(dir.path("store" + std::to_string(me)));
                co_await concurrent_calls(*store, 0, ids, out[static_cast<std::size_t>(me)]);
            },
            60s);
        for (int i = 0; i < n; ++i) {
            INFO("store " << i);
            const std::string path = dir.path("store" + std::to_string(i));
            check_store(out[static_cast<std::size_t>(i)], path, 0, ids);
            // A store opened afterwards (as after a restart) lists the same ids.
            auto again = ws::make_directory_store(path);
            std::optional<std::vector<std::uint64_t>> listed;
            run_on<B>([&](core::loop&) -> core::task<void> {
                auto l = co_await again->list();
                if (l)
                    listed = std::move(*l);
            });
            REQUIRE(listed.has_value());
            CHECK(*listed == expected_ids(0, ids));
        }
    }

} // TEST_SUITE
