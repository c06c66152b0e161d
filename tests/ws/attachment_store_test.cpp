#include <coronet/ws/attachment_store.hpp>

#include <coronet/core/loop.hpp>
#include <coronet/core/when.hpp>

#include <testing/backends.hpp>
#include <testing/process.hpp>
#include <testing/run_bounded.hpp>

#include "attachment_payload.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
namespace fs = std::filesystem;
using coronet::testing::check_payload;
using coronet::testing::epoll_backend;
using coronet::testing::run_on;
using namespace std::chrono_literals;

namespace {

/// A directory from mkdtemp, removed with its contents at the end of the scope. The store
/// directory is a subdirectory that does not exist yet, so the store creates it.
class temp_dir {
public:
    temp_dir() {
        std::string t = (fs::temp_directory_path() / "coronet-attachments-XXXXXX").string();
        REQUIRE(::mkdtemp(t.data()) != nullptr);
        root_ = t;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(root_, ec);
    }
    std::string store() const { return root_ + "/store"; }

private:
    std::string root_;
};

std::vector<std::byte> bytes(std::string_view s) {
    std::vector<std::byte> v(s.size());
    for (std::size_t i = 0; i < s.size(); ++i)
        v[i] = static_cast<std::byte>(s[i]);
    return v;
}

std::vector<std::byte> pattern(std::size_t n) {
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i)
        v[i] = static_cast<std::byte>((i * 131 + i / 4096) & 0xff);
    return v;
}

using maybe_bytes = std::optional<std::vector<std::byte>>;
using id_list = std::vector<std::uint64_t>;

/// The files in `dir` whose names end in ".tmp".
std::size_t tmp_files(const std::string& dir) {
    std::size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".tmp")
            ++n;
    return n;
}

core::task<void> round_trip(ws::attachment_store& store) {
    constexpr std::uint64_t max_id = ~std::uint64_t{0};
    auto none = co_await store.list();
    REQUIRE(none);
    CHECK(none->empty());
    auto missing = co_await store.get(1);
    REQUIRE(missing);
    CHECK_FALSE(missing->has_value());

    auto p1 = co_await store.put(1, bytes("one"));
    CHECK(p1);
    auto p2 = co_await store.put(max_id, bytes("max"));
    CHECK(p2);
    auto p3 = co_await store.put(0, {});
    CHECK(p3);
    auto g1 = co_await store.get(1);
    REQUIRE(g1);
    CHECK(*g1 == maybe_bytes(bytes("one")));
    auto g2 = co_await store.get(max_id);
    REQUIRE(g2);
    CHECK(*g2 == maybe_bytes(bytes("max")));
    auto g3 = co_await store.get(0);
    REQUIRE(g3);
    CHECK(*g3 == maybe_bytes(std::vector<std::byte>{}));
    auto all = co_await store.list();
    REQUIRE(all);
    CHECK(*all == id_list{0, 1, max_id});

    auto over = co_await store.put(1, bytes("uno, a longer value than before"));
    CHECK(over);
    auto g4 = co_await store.get(1);
    REQUIRE(g4);
    CHECK(*g4 == maybe_bytes(bytes("uno, a longer value than before")));
    auto shorter = co_await store.put(1, bytes("1"));
    CHECK(shorter);
    auto g5 = co_await store.get(1);
    REQUIRE(g5);
    CHECK(*g5 == maybe_bytes(bytes("1")));

    auto r1 = co_await store.remove(1);
    CHECK(r1);
    auto g6 = co_await store.get(1);
    REQUIRE(g6);
    CHECK_FALSE(g6->has_value());
    auto r2 = co_await store.remove(1);
    CHECK(r2);
    auto left = co_await store.list();
    REQUIRE(left);
    CHECK(*left == id_list{0, max_id});

    const auto big = pattern(1024 * 1024);
    auto pb = co_await store.put(42, big);
    CHECK(pb);
    auto gb = co_await store.get(42);
    REQUIRE(gb);
    REQUIRE(gb->has_value());
    CHECK((*gb)->size() == big.size());
    CHECK(**gb == big);
}

core::task<void> calls_apply_in_order(ws::attachment_store& store) {
    // Started together, finished in any order: the get still sees the put made before it.
    auto [put, got, removed, after] = co_await core::when_all(
        store.put(5, bytes("five")), store.get(5), store.remove(5), store.get(5));
    CHECK(put);
    REQUIRE(got);
    CHECK(*got == maybe_bytes(bytes("five")));
    CHECK(removed);
    REQUIRE(after);
    CHECK_FALSE(after->has_value());
}

} // namespace

TEST_SUITE("ws.attachment_store") {

    TEST_CASE_TEMPLATE("attachment stores round trip put get overwrite remove list and 1 MiB", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        temp_dir dir;
        std::unique_ptr<ws::attachment_store> store;
        SUBCASE("memory") {
            store = ws::make_memory_store();
        }
        SUBCASE("directory") {
            store = ws::make_directory_store(dir.store());
        }
        run_on<B>([&](core::loop&) { return round_trip(*store); });
    }

    TEST_CASE_TEMPLATE("attachment store calls started together apply in the order they were made",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        temp_dir dir;
        std::unique_ptr<ws::attachment_store> store;
        SUBCASE("memory") {
            store = ws::make_memory_store();
        }
        SUBCASE("directory") {
            store = ws::make_directory_store(dir.store());
        }
        run_on<B>([&](core::loop&) { return calls_apply_in_order(*store); });
    }

    TEST_CASE(
        "a directory attachment store writes on a worker thread and resumes on the loop thread") {
        temp_dir dir;
        std::thread::id writer;
        ws::directory_store_options opts;
        opts.fault_hook = [&writer](ws::write_stage, std::uint64_t) {
            writer = std::this_thread::get_id();
            return std::error_code{};
        };
        auto store = ws::make_directory_store(dir.store(), std::move(opts));
        const auto loop_thread = std::this_thread::get_id();
        std::thread::id resumed_on;
        run_on<epoll_backend>([&](core::loop&) -> core::task<void> {
            auto r = co_await store->put(9, bytes("nine"));
            CHECK(r);
            resumed_on = std::this_thread::get_id();
        });
        CHECK(writer != std::thread::id{});
        CHECK(writer != loop_thread);
        CHECK(resumed_on == loop_thread);
    }

    TEST_CASE(
        "a directory attachment store names files by hex id and keeps them for the next store") {
        temp_dir dir;
        {
            auto store = ws::make_directory_store(dir.store());
            run_on<epoll_backend>([&](core::loop&) -> core::task<void> {
                auto a = co_await store->put(0x4d2, bytes("a"));
                CHECK(a);
                auto b = co_await store->put(0xfedcba9876543210, bytes("b"));
                CHECK(b);
            });
            CHECK(fs::is_regular_file(dir.store() + "/00000000000004d2"));
            CHECK(fs::is_regular_file(dir.store() + "/fedcba9876543210"));
            CHECK(tmp_files(dir.store()) == 0);
            CHECK((fs::status(dir.store() + "/00000000000004d2").permissions() &
                   (fs::perms::group_all | fs::perms::others_all)) == fs::perms::none);
            // Two live stores never share a directory.
            CHECK_THROWS_AS((void)ws::make_directory_store(dir.store()), std::system_error);
        }
        auto again = ws::make_directory_store(dir.store());
        run_on<epoll_backend>([&](core::loop&) -> core::task<void> {
            auto ids = co_await again->list();
            REQUIRE(ids);
            CHECK(*ids == id_list{0x4d2, 0xfedcba9876543210});
            auto b = co_await again->get(0xfedcba9876543210);
            REQUIRE(b);
            CHECK(*b == maybe_bytes(bytes("b")));
        });
    }

    TEST_CASE(
        "a directory attachment store list ignores foreign files and drops its stale tmp files") {
        temp_dir dir;
        fs::create_directories(dir.store());
        const std::string d = dir.store();
        for (const char* name :
             {"README", "12", "00000000000000AB", "00000000000000ab.bak", "0000000000000001.tmp",
              "000000000000000g", "00000000000000001", "0000000000000002.x-1.tmp"})
            std::ofstream(d + "/" + name) << "foreign";
        fs::create_directory(d + "/00000000000000cd");
        fs::create_symlink(d + "/README", d + "/00000000000000ef");
        std::ofstream(d + "/0000000000000003") << "mine";
        std::ofstream(d + "/0000000000000003.4242-7.tmp") << "half a wr";

        auto store = ws::make_directory_store(d);
        run_on<epoll_backend>([&](core::loop&) -> core::task<void> {
            auto ids = co_await store->list();
            REQUIRE(ids);
            CHECK(*ids == id_list{3});
            auto got = co_await store->get(3);
            REQUIRE(got);
            CHECK(*got == maybe_bytes(bytes("mine")));
        });
        CHECK_FALSE(fs::exists(d + "/0000000000000003.4242-7.tmp"));
        for (const char* name :
             {"README", "12", "00000000000000AB", "00000000000000ab.bak", "0000000000000001.tmp",
              "000000000000000g", "00000000000000001", "0000000000000002.x-1.tmp",
              "00000000000000cd", "00000000000000ef"}) {
            CAPTURE(name);
            CHECK(fs::exists(fs::symlink_status(d + "/" + name)));
        }
    }

    namespace {

    struct simulated_crash : std::runtime_error {
        simulated_crash() : std::runtime_error("simulated crash") {}
    };

    constexpr ws::write_stage all_stages[] = {
        ws::write_stage::tmp_created, ws::write_stage::half_written, ws::write_stage::written,
        ws::write_stage::synced, ws::write_stage::renamed};

    enum class fault_kind { crash, io_error };

    /// One interrupted put of id 11 at `stage`, over an old value or none, then a restart.
    void interrupted_put(ws::write_stage stage, fault_kind kind, bool with_old) {
        CAPTURE(static_cast<int>(stage));
        CAPTURE(kind == fault_kind::crash);
        CAPTURE(with_old);
        temp_dir dir;
        const auto old_value = coronet::testing::make_payload(11, 0, 70'000);
        const auto new_value = coronet::testing::make_payload(11, 1, 90'000);
        const bool new_visible = stage == ws::write_stage::renamed;
        // Never a partial value: the old one (or none) until the rename, the new one after it.
        const maybe_bytes expected = new_visible ? maybe_bytes(new_value)
                                     : with_old  ? maybe_bytes(old_value)
                                                 : maybe_bytes();
        {
            bool armed = false;
            ws::directory_store_options opts;
            opts.fault_hook = [&armed, stage, kind](ws::write_stage s,
                                                    std::uint64_t) -> std::error_code {
                if (!armed || s != stage)
                    return {};
                if (kind == fault_kind::crash)
                    throw simulated_crash();
                return {EIO, std::system_category()};
            };
            auto store = ws::make_directory_store(dir.store(), std::move(opts));
            run_on<epoll_backend>([&](core::loop&) -> core::task<void> {
                if (with_old) {
                    auto r = co_await store->put(11, old_value);
                    REQUIRE(r);
                }
                armed = true;
                if (kind == fault_kind::crash) {
                    bool thrown = false;
                    try {
                        auto r = co_await store->put(11, new_value);
                        (void)r;
                    } catch (const simulated_crash&) {
                        thrown = true;
                    }
                    CHECK(thrown);
                } else {
                    auto r = co_await store->put(11, new_value);
                    CHECK(r.error() == std::error_code(EIO, std::system_category()));
                }
                armed = false;
                auto got = co_await store->get(11);
                REQUIRE(got);
                CHECK(*got == expected);
            });
            // A crash leaves its temporary file behind; a failed step cleans up after itself.
            const bool leftover = kind == fault_kind::crash && !new_visible;
            CHECK(tmp_files(dir.store()) == (leftover ? 1u : 0u));
        }
        // The restarted process.
        auto store = ws::make_directory_store(dir.store());
        run_on<epoll_backend>([&](core::loop&) -> core::task<void> {
            auto ids = co_await store->list();
            REQUIRE(ids);
            CHECK(*ids == (with_old || new_visible ? id_list{11} : id_list{}));
            auto got = co_await store->get(11);
            REQUIRE(got);
            CHECK(*got == expected);
        });
        CHECK(tmp_files(dir.store()) == 0);
    }

    } // namespace

    TEST_CASE("an attachment put interrupted at any stage leaves the old value or none") {
        for (auto stage : all_stages)
            for (auto kind : {fault_kind::crash, fault_kind::io_error})
                for (bool with_old : {false, true})
                    interrupted_put(stage, kind, with_old);
    }

    namespace {

    /// The crash child with its "ready" pipe.
    struct crash_child {
        coronet::testing::child_process process;
        int from_child = -1;
        crash_child(const crash_child&) = delete;
        crash_child& operator=(const crash_child&) = delete;
        crash_child(std::string mode, const std::string& dir,
                    const std::vector<std::string>& args) {
            int fds[2];
            REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
            // The write end alone is inherited: its number goes on the command line.
            REQUIRE(::fcntl(fds[1], F_SETFD, 0) == 0);
            std::vector<std::string> argv{CORONET_ATTACHMENT_CRASH_CHILD, std::move(mode), dir,
                                          std::to_string(fds[1])};
            argv.insert(argv.end(), args.begin(), args.end());
            process = coronet::testing::child_process::spawn(argv);
            ::close(fds[1]);
            from_child = fds[0];
        }
        ~crash_child() { ::close(from_child); }

        /// Reads until `text` holds `want` occurrences of `c` or `timeout` passes.
        bool read_until(std::string& text, char c, std::size_t want,
                        std::chrono::milliseconds timeout) {
            const auto deadline = std::chrono::steady_clock::now() + timeout;
            while (static_cast<std::size_t>(std::count(text.begin(), text.end(), c)) < want) {
                const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now());
                if (left.count() <= 0)
                    return false;
                ::pollfd p{from_child, POLLIN, 0};
                if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
                    continue;
                char buf[256];
                const ssize_t n = ::read(from_child, buf, sizeof buf);
                if (n <= 0)
                    return false;
                text.append(buf, static_cast<std::size_t>(n));
            }
            return true;
        }

        void kill9() {
            REQUIRE(process.signal(SIGKILL));
            const auto status = process.wait_exit(10s);
            REQUIRE(status);
            CHECK(WIFSIGNALED(*status));
            CHECK(WTERMSIG(*status) == SIGKILL);
        }
    };

    } // namespace

    TEST_CASE(
        "a directory attachment store keeps every finished put across a kill -9 of its process") {
        temp_dir dir;
        constexpr int n = 20;
        {
            crash_child child("put", dir.store(), {std::to_string(n)});
            std::string text;
            REQUIRE_MESSAGE(child.read_until(text, '\n', 1, 20s), "the child did not report ready");
            CHECK(text == "ready\n");
            child.kill9();
        }
        auto store = ws::make_directory_store(dir.store());
        run_on<epoll_backend>([&](core::loop&) -> core::task<void> {
            auto ids = co_await store->list();
            REQUIRE(ids);
            id_list want;
            for (std::uint64_t id = 1; id <= n; ++id)
                want.push_back(id);
            CHECK(*ids == want);
            for (std::uint64_t id = 1; id <= n; ++id) {
                CAPTURE(id);
                auto got = co_await store->get(id);
                REQUIRE(got);
                REQUIRE(got->has_value());
                // make_payload(id, 0, ...) regenerated byte for byte.
                CHECK(check_payload(id, **got) == std::optional<std::uint64_t>(0));
            }
        });
    }

    TEST_CASE("an attachment store killed in a loop of overwrites never leaves a corrupt value") {
        temp_dir dir;
        constexpr int ids = 4;
        std::size_t leftovers = 0;
        std::uint64_t rounds_seen = 0;
        for (int round = 0; round < 8; ++round) {
            CAPTURE(round);
            {
                crash_child child("overwrite", dir.store(),
                                  {std::to_string(ids), std::to_string(512 * 1024)});
                std::string text;
                REQUIRE_MESSAGE(child.read_until(text, '\n', 1, 20s),
                                "the child did not report ready");
                // Killed after a different number of finished overwrites each round, in the middle
                // of the next one.
                REQUIRE(child.read_until(text, '.', static_cast<std::size_t>(3 + 4 * round), 30s));
                child.kill9();
            }
            leftovers += tmp_files(dir.store());
            auto store = ws::make_directory_store(dir.store());
            run_on<epoll_backend>([&](core::loop&) -> core::task<void> {
                auto listed = co_await store->list();
                REQUIRE(listed);
                CHECK(*listed == id_list{1, 2, 3, 4});
                for (std::uint64_t id = 1; id <= ids; ++id) {
                    CAPTURE(id);
                    auto got = co_await store->get(id);
                    REQUIRE(got);
                    REQUIRE(got->has_value());
                    const auto r = check_payload(id, **got);
                    REQUIRE_MESSAGE(r.has_value(), "a corrupt attachment survived the kill");
                    rounds_seen = std::max(rounds_seen, *r);
                }
            });
            CHECK(tmp_files(dir.store()) == 0);
        }
        CHECK(rounds_seen > 0);
        MESSAGE("temporary files left by the kills (then cleaned by list): " << leftovers);
    }

    TEST_CASE("a directory attachment store process that exits inside a put leaves the old value") {
        for (auto stage : all_stages) {
            CAPTURE(static_cast<int>(stage));
            temp_dir dir;
            {
                crash_child child("exit-at", dir.store(),
                                  {std::to_string(static_cast<int>(stage))});
                const auto status = child.process.wait_exit(20s);
                REQUIRE(status);
                REQUIRE(WIFEXITED(*status));
                CHECK(WEXITSTATUS(*status) == 42);
            }
            const bool renamed = stage == ws::write_stage::renamed;
            CHECK(tmp_files(dir.store()) == (renamed ? 0u : 1u));
            auto store = ws::make_directory_store(dir.store());
            run_on<epoll_backend>([&](core::loop&) -> core::task<void> {
                auto listed = co_await store->list();
                REQUIRE(listed);
                CHECK(*listed == id_list{7});
                auto got = co_await store->get(7);
                REQUIRE(got);
                REQUIRE(got->has_value());
                CHECK(check_payload(7, **got) == std::optional<std::uint64_t>(renamed ? 1 : 0));
            });
            CHECK(tmp_files(dir.store()) == 0);
        }
    }

} // TEST_SUITE
