// soak_client: the load client of the soak suite (scripts/soak, docs/reliability.md). N
// WebSocket client sessions on one coronet loop against examples/ws_echo_server, ws_rooms or
// chat, each sending sequenced messages at a bounded rate for T seconds; every delivery is
// verified, and the server's RSS, open descriptors and CPU are sampled from /proc/PID before,
// during and after the run.
//
//   soak_client --mode echo|rooms|chat --port N [--host 127.0.0.1] [--clients 1000]
//               [--duration 10] [--rate 2] [--room-size 5] [--deflate] [--server-pid PID]
//               [--idle 1] [--settle 3] [--drain-timeout 15] [--max-size 2048]
//               [--connect-parallel 128] [--rss-factor 2] [--rss-allowance-kb 8192]
//               [--rss-report-only] [--fd-slack 4] [--backend uring|epoll]
//               [--inject drop|dup|reorder|corrupt]
//
// Phases, each with a deadline: idle (the server's CPU at rest) -> connect (at most
// --connect-parallel handshakes at once; chat: the name, then "hello NAME") -> join (rooms,
// chat: every member repeats a hello until every member of its room has heard every other
// one, so nobody misses a message for joining late) -> data (--duration seconds: each client
// sends message 1, 2, 3... at --rate per second, staggered) -> drain (until every expected
// delivery arrived, or --drain-timeout) -> close (1000 from every client) -> settle (--settle
// seconds, then the "after" figures).
//
// Verified: echo: each reply is the next message the client sent, byte for byte and of the same
// type. rooms: every member receives every other member's messages (not its own); chat: every
// member's, its own included, as "NAME: TEXT"; exactly once each, in each sender's order, with
// the payload re-derived from (sender, sequence number) (payload.hpp). Fails (exit 1) on any
// lost, duplicated, reordered, corrupted or unexpected message, any failed connect or
// unexpected close, the server gone, server RSS after the run above
// --rss-factor x before + --rss-allowance-kb (reported as NOT MET instead with
// --rss-report-only), server descriptors after the run above before + --fd-slack, and when this
// client could not keep up: under 90 % of the scheduled messages sent on time. It then says
// why, from its own CPU use (getrusage) and run-queue wait (schedstat) during the data phase:
// saturated (the client was the bottleneck), starved by other processes (the machine was), or
// neither (the server pushed back). --inject breaks one delivery on purpose (client 0's tenth data
// message), to show that the verifier catches it. Exit 2: bad usage.
//
// The parts: soak_options.cpp (the command line), soak_sessions.cpp (room layout and the
// clients' coroutines), soak_verify.cpp (every delivery checked), soak_run.cpp (the phases and
// the server sampling), soak_report.cpp (the figures and the verdict); soak_client.hpp holds
// what they share.
#include "soak_client.hpp"

#include <coronet/core/loop.hpp>

#include <csignal>
#include <cstdio>
#include <string>

namespace core = coronet::core;
namespace soak = coronet::soak;
using namespace coronet::soak::load;

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            usage(stdout);
            return 0;
        }
        if (a == "--deflate") {
            o.deflate = true;
            continue;
        }
        if (a == "--rss-report-only") {
            o.rss_report_only = true;
            continue;
        }
        if (i + 1 >= argc || !parse_flag(o, a, argv[i + 1])) {
            std::fprintf(stderr, "soak_client: bad or incomplete flag %s\n", a.c_str());
            usage(stderr);
            return 2;
        }
        ++i;
    }
    if (o.port == 0 || (o.mode != mode_kind::echo && o.clients < 2)) {
        usage(stderr);
        return 2;
    }
    std::signal(SIGPIPE, SIG_IGN);
    const rlim_t fds = soak::raise_fd_limit();
    if (fds < o.clients + 64) {
        std::fprintf(stderr,
                     "soak_client: the open-files limit (%llu) is too low for %zu clients; raise "
                     "`ulimit -n` (scripts/soak does)\n",
                     static_cast<unsigned long long>(fds), o.clients);
        return 2;
    }
    core::loop_options lo;
    lo.backend = o.backend;
    core::loop lp(lo);
    std::printf("soak_client: %s, %zu clients, %.1f s at %.2f msg/s each, deflate %s, backend %s\n",
                name_of(o.mode), o.clients, o.duration, o.rate, o.deflate ? "on" : "off",
                std::string(core::to_string(lp.backend())).c_str());
    std::fflush(stdout);
    return core::run(lp, run(o));
}
