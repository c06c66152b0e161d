#pragma once
// What the parts of soak_client share (the program is described in soak_client.cpp): its
// options, the state of one run, and the functions each part offers the others.

#include "ledger.hpp"
#include "proc_probe.hpp"

#include <coronet/core/loop.hpp>
#include <coronet/core/task.hpp>
#include <coronet/ws/server.hpp>

#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace coronet::soak::load {

enum class mode_kind { echo, rooms, chat };

inline const char* name_of(mode_kind m) {
    switch (m) {
    case mode_kind::echo:
        return "echo";
    case mode_kind::rooms:
        return "rooms";
    case mode_kind::chat:
        return "chat";
    }
    return "?";
}

enum class fault_kind { none, drop, dup, reorder, corrupt };

struct options {
    mode_kind mode = mode_kind::echo;
    std::string host = "127.0.0.1";
    unsigned port = 0;
    std::size_t clients = 1000;
    double duration = 10;
    double rate = 2;
    std::size_t room_size = 5;
    bool deflate = false;
    long server_pid = 0;
    double idle = 1;
    double settle = 3;
    double drain_timeout = 15;
    std::size_t max_size = 2048;
    std::size_t connect_parallel = 128;
    double rss_factor = 2;
    long rss_allowance_kb = 8 * 1024;
    bool rss_report_only = false;
    long fd_slack = 4;
    fault_kind inject = fault_kind::none;
    std::optional<core::backend_kind> backend;
};

/// Sends may lag the schedule this long before they count as not sent (the run is over).
inline constexpr std::chrono::seconds send_grace{1};
/// Below this share of the scheduled messages sent, the client did not keep up.
inline constexpr double min_send_ratio = 0.9;
/// At or above this share of one core the client is saturated.
inline constexpr double saturated_cpu = 0.9;
/// How many failure lines to print in full (the counts say the rest).
inline constexpr std::size_t max_notes = 20;

inline core::clock::duration seconds(double s) {
    return std::chrono::duration_cast<core::clock::duration>(std::chrono::duration<double>(s));
}

inline double elapsed_s(core::clock::time_point from, core::clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
}

enum class phase_kind { connect, join, data, drain, closing, done };

/// One client: its session and where it stands.
struct client {
    std::unique_ptr<ws::session> session;
    std::uint32_t id = 0;
    std::uint32_t room = 0;
    std::uint32_t first = 0;   ///< the first member of its room (echo: itself)
    std::uint32_t members = 1; ///< room members (echo: 1)
    std::uint32_t sent = 0;    ///< the highest sequence number handed to send (1, 2, ...)
    bool closing = false;
};

/// The server's figures at one phase of the run.
struct server_figures {
    soak::proc_sample before;
    soak::proc_sample after;
    long rss_peak_kb = -1;
    long fds_peak = -1;
    double cpu_before_pct = -1; ///< over the idle window
    double cpu_peak_pct = -1;   ///< the busiest second during the run
    double cpu_after_pct = -1;  ///< over the last second of the settle time
    bool gone = false;          ///< /proc/PID disappeared (crashed or killed)
};

/// The load client's own share of a core during the data phase.
struct client_load {
    double cpu_pct = 0;  ///< running (getrusage)
    double wait_pct = 0; ///< runnable but waiting for a core (schedstat; -1: unknown)
};

struct run_state {
    explicit run_state(const options& opts) : o(opts) {}

    const options& o;
    std::vector<client> clients;
    std::size_t slots = 1; ///< the largest room
    soak::ledger book;
    soak::delivery_counts counts;
    std::vector<std::uint8_t> hello_seen; ///< [receiver * slots + slot]
    std::vector<std::uint32_t> hellos;    ///< distinct hellos each receiver heard
    phase_kind phase = phase_kind::connect;

    std::uint64_t expected = 0;  ///< deliveries owed for the messages sent so far
    std::uint64_t scheduled = 0; ///< messages due during the data phase
    std::uint64_t sent_ok = 0;   ///< sent on time
    std::uint64_t sent_late = 0; ///< due but not sent before the data phase ended + grace
    double max_lateness_s = 0;   ///< the latest a send started after its due time
    std::uint64_t send_errors = 0;
    std::uint64_t connect_failures = 0;
    std::uint64_t unexpected_closes = 0;
    std::uint64_t unclean_closes = 0;
    std::uint64_t negotiation_errors = 0;
    std::size_t notes = 0;

    // --inject: client 0's data messages so far, and a held one (reorder).
    std::uint64_t inject_seen = 0;
    std::optional<ws::message> held;

    server_figures server;
    client_load load;

    /// Prints one failure line (the first max_notes only).
    __attribute__((format(printf, 2, 3))) void note(const char* fmt, ...) {
        if (notes++ >= max_notes)
            return;
        std::va_list args;
        va_start(args, fmt);
        std::fputs("soak_client: ", stderr);
        std::vfprintf(stderr, fmt, args);
        std::fputc('\n', stderr);
        va_end(args);
    }

    /// Deliveries each message of a sender owes: echo 1, rooms the other members, chat all.
    std::uint32_t fanout(const client& c) const {
        switch (o.mode) {
        case mode_kind::echo:
            return 1;
        case mode_kind::rooms:
            return c.members - 1;
        case mode_kind::chat:
            return c.members;
        }
        return 0;
    }

    bool binary_allowed() const { return o.mode != mode_kind::chat; }
};

// ---- soak_options.cpp: the command line ------------------------------------------------

void usage(std::FILE* out);
/// Parses one flag with a value; false on a bad flag or value.
bool parse_flag(options& o, const std::string& a, const char* v);

// ---- soak_sessions.cpp: room layout and the clients' coroutines ---------------------------

/// Echo: every client alone. Rooms and chat: rooms of --room-size in id order; a last room too
/// small to talk (one member) joins the room before it.
void lay_out(run_state& st);
/// The name chat client `id` gives the server.
std::string chat_name(std::uint32_t id);
/// Connects clients one after another (run --connect-parallel of these at once) until none is
/// left or the deadline passed.
core::task<void> connect_worker(run_state& st, std::size_t& next, const ws::connect_options& co,
                                core::clock::time_point deadline);
/// Receives until the session ends; an end before the close phase is an unexpected close.
core::task<void> receive_loop(run_state& st, client& c);
/// Join phase of one room: every member sends its hello every 200 ms until every member has
/// heard every other one (rooms) or every one including itself (chat), or the deadline.
core::task<void> join_room(run_state& st, std::uint32_t first, core::clock::time_point deadline);
/// Data phase of one client: message k is due at start + offset + k / rate.
core::task<void> send_loop(run_state& st, client& c, core::clock::time_point start);
core::task<void> close_one(client& c);

// ---- soak_verify.cpp: verification -------------------------------------------------------

/// Hands a received message to the verifier (--inject breaks one on the way).
void deliver(run_state& st, client& c, ws::message& m);

// ---- soak_report.cpp: the verdict ----------------------------------------------------------

/// Lost messages: for every receiver and every sender it should hear, what never came.
void count_lost(run_state& st);
/// Prints the figures and the verdict; returns the exit status.
int report(const run_state& st, double client_cpu_total_s, double wall_s);

// ---- soak_run.cpp: the phases --------------------------------------------------------------

/// The whole run, phase after phase; returns the exit status.
core::task<int> run(const options& o);

} // namespace coronet::soak::load
