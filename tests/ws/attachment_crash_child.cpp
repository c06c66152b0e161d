// A process that writes attachments through a directory store and then dies: killed with
// SIGKILL by attachment_store_test.cpp, or _exit()ing from the store's fault hook. The test
// then opens the same directory and checks what a restarted server would find.
//
//   attachment_crash_child put <dir> <fd> <n>
//       puts ids 1..n (round 0), writes "ready\n" to <fd>, then waits to be killed
//   attachment_crash_child overwrite <dir> <fd> <ids> <max-body>
//       puts ids 1..ids (round 0), writes "ready\n", then overwrites them round after round,
//       writing one '.' to <fd> after each finished put, until killed
//   attachment_crash_child exit-at <dir> <fd> <stage>
//       puts id 7 (round 0), writes "ready\n", then puts id 7 (round 1) and _exit(42)s from the
//       fault hook when the write reaches <stage> (the number of a ws::write_stage)

#include <coronet/core/loop.hpp>
#include <coronet/ws/attachment_store.hpp>

#include "attachment_payload.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

namespace core = coronet::core;
namespace ws = coronet::ws;
using coronet::testing::make_payload;
using coronet::testing::payload_body_size;

namespace {

constexpr std::size_t default_max_body = 300 * 1024;

void tell(int fd, std::string_view what) {
    if (::write(fd, what.data(), what.size()) != static_cast<ssize_t>(what.size()))
        std::_Exit(3);
}

core::task<int> put_round_zero(ws::attachment_store& store, std::uint64_t first,
                               std::uint64_t last) {
    for (std::uint64_t id = first; id <= last; ++id) {
        auto value = make_payload(id, 0, payload_body_size(id, 0, default_max_body));
        auto r = co_await store.put(id, std::move(value));
        if (!r) {
            std::fprintf(stderr, "put %llu: %s\n", static_cast<unsigned long long>(id),
                         r.error().message().c_str());
            co_return 1;
        }
    }
    co_return 0;
}

core::task<int> overwrite_forever(ws::attachment_store& store, int fd, std::uint64_t ids,
                                  std::size_t max_body) {
    // Each value is built before the previous put is reported, so a kill that follows a '.'
    // lands inside the next put rather than in building its value.
    auto next = make_payload(2, 1, payload_body_size(2, 1, max_body));
    for (std::uint64_t round = 1;; ++round) {
        const std::uint64_t id = round % ids + 1;
        auto r = co_await store.put(id, std::move(next));
        if (!r) {
            std::fprintf(stderr, "put %llu: %s\n", static_cast<unsigned long long>(id),
                         r.error().message().c_str());
            co_return 1;
        }
        const std::uint64_t next_id = (round + 1) % ids + 1;
        next = make_payload(next_id, round + 1, payload_body_size(next_id, round + 1, max_body));
        tell(fd, ".");
    }
}

core::task<int> put_new_value(ws::attachment_store& store) {
    auto r = co_await store.put(7, make_payload(7, 1, 100 * 1024));
    co_return r ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: %s put|overwrite|exit-at <dir> <fd> <n> [max-body]\n",
                     argv[0]);
        return 2;
    }
    const std::string_view mode = argv[1];
    const std::string dir = argv[2];
    const int fd = std::atoi(argv[3]);
    const unsigned long long n = std::strtoull(argv[4], nullptr, 10);

    core::loop lp;
    if (mode == "put") {
        auto store = ws::make_directory_store(dir);
        if (core::run(lp, put_round_zero(*store, 1, n)) != 0)
            return 1;
        tell(fd, "ready\n");
        for (;;)
            ::pause();
    }
    if (mode == "overwrite") {
        const std::size_t max_body =
            argc > 5 ? std::strtoull(argv[5], nullptr, 10) : default_max_body;
        auto store = ws::make_directory_store(dir);
        if (core::run(lp, put_round_zero(*store, 1, n)) != 0)
            return 1;
        tell(fd, "ready\n");
        return core::run(lp, overwrite_forever(*store, fd, n, max_body));
    }
    if (mode == "exit-at") {
        const auto stage = static_cast<ws::write_stage>(n);
        {
            auto store = ws::make_directory_store(dir);
            if (core::run(lp, put_round_zero(*store, 7, 7)) != 0)
                return 1;
        }
        ws::directory_store_options opts;
        opts.fault_hook = [stage](ws::write_stage s, std::uint64_t) {
            if (s == stage)
                ::_exit(42);
            return std::error_code{};
        };
        auto store = ws::make_directory_store(dir, std::move(opts));
        tell(fd, "ready\n");
        return core::run(lp, put_new_value(*store));
    }
    std::fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}
