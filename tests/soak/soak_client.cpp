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
#include "ledger.hpp"
#include "payload.hpp"
#include "proc_probe.hpp"

#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/ws/server.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
namespace soak = coronet::soak;

namespace {

enum class mode_kind { echo, rooms, chat };

const char* name_of(mode_kind m) {
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
constexpr std::chrono::seconds send_grace{1};
/// Below this share of the scheduled messages sent, the client did not keep up.
constexpr double min_send_ratio = 0.9;
/// At or above this share of one core the client is saturated.
constexpr double saturated_cpu = 0.9;
/// How many failure lines to print in full (the counts say the rest).
constexpr std::size_t max_notes = 20;

core::clock::duration seconds(double s) {
    return std::chrono::duration_cast<core::clock::duration>(std::chrono::duration<double>(s));
}

double elapsed_s(core::clock::time_point from, core::clock::time_point to) {
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

// ---- room layout ------------------------------------------------------------------------

/// Echo: every client alone. Rooms and chat: rooms of --room-size in id order; a last room too
/// small to talk (one member) joins the room before it.
void lay_out(run_state& st) {
    const options& o = st.o;
    st.clients.resize(o.clients);
    std::uint32_t first = 0;
    std::uint32_t room = 0;
    const std::size_t size = o.mode == mode_kind::echo ? 1 : o.room_size;
    while (first < o.clients) {
        std::size_t members = std::min(size, o.clients - first);
        if (o.mode != mode_kind::echo && o.clients - first - members == 1)
            ++members; // do not leave one client alone
        for (std::uint32_t i = first; i < first + members; ++i) {
            client& c = st.clients[i];
            c.id = i;
            c.room = room;
            c.first = first;
            c.members = static_cast<std::uint32_t>(members);
        }
        st.slots = std::max(st.slots, members);
        first += static_cast<std::uint32_t>(members);
        ++room;
    }
    st.book.reset(o.clients, st.slots);
    st.hello_seen.assign(o.clients * st.slots, 0);
    st.hellos.assign(o.clients, 0);
}

std::string target_of(const options& o, const client& c) {
    switch (o.mode) {
    case mode_kind::echo:
        return "/";
    case mode_kind::rooms:
        return "/r" + std::to_string(c.room);
    case mode_kind::chat:
        return "/chat/r" + std::to_string(c.room);
    }
    return "/";
}

std::string chat_name(std::uint32_t id) {
    return "c" + std::to_string(id);
}

// ---- verification -----------------------------------------------------------------------

/// Records a hello (sequence 0) from `sender`, once per sender (only the join phase looks).
void on_hello(run_state& st, client& c, std::uint32_t sender) {
    std::uint8_t& seen = st.hello_seen[c.id * st.slots + (sender - c.first)];
    if (seen == 0) {
        seen = 1;
        ++st.hellos[c.id];
    }
}

/// A chat line that is not "NAME: TEXT": "* NAME joined" while rooms fill, "* NAME left" once
/// clients leave; anything else is unexpected.
bool chat_notice_allowed(const run_state& st, std::string_view line) {
    const bool joined = line.size() > 9 && line.substr(line.size() - 7) == " joined";
    const bool left = line.size() > 7 && line.substr(line.size() - 5) == " left";
    if (joined)
        return st.phase == phase_kind::join || st.phase == phase_kind::connect;
    return left && st.phase >= phase_kind::closing;
}

/// Checks one received message against what its sender sent; records it in the ledger.
void verify(run_state& st, client& c, const ws::message& m) {
    std::string_view body = m.data;
    if (st.o.mode == mode_kind::chat) {
        if (body.substr(0, 2) == "* ") {
            if (!chat_notice_allowed(st, body)) {
                ++st.counts.unexpected;
                st.note("client %u: unexpected notice \"%.60s\"", c.id, m.data.c_str());
            }
            return;
        }
        const std::size_t colon = body.find(": ");
        if (colon == std::string_view::npos) {
            ++st.counts.corrupted;
            st.note("client %u: not a chat line: \"%.60s\"", c.id, m.data.c_str());
            return;
        }
        const std::string_view name = body.substr(0, colon);
        body.remove_prefix(colon + 2);
        const auto id = soak::parse_id(body);
        if (!id || name != chat_name(id->sender)) {
            ++st.counts.corrupted;
            st.note("client %u: chat line from \"%.*s\" does not match its text", c.id,
                    static_cast<int>(name.size()), name.data());
            return;
        }
    }
    const auto id = soak::parse_id(body);
    if (!id || id->sender < c.first || id->sender >= c.first + c.members ||
        (st.o.mode == mode_kind::rooms && id->sender == c.id)) {
        ++st.counts.corrupted;
        st.note("client %u: message from outside its room or unreadable: \"%.40s\"", c.id,
                std::string(body).c_str());
        return;
    }
    const client& from = st.clients[id->sender];
    if (id->seq == 0) {
        if (st.o.mode == mode_kind::echo || body != soak::hello_payload(id->sender)) {
            ++st.counts.corrupted;
            st.note("client %u: bad hello from %u", c.id, id->sender);
            return;
        }
        on_hello(st, c, id->sender);
        return;
    }
    if (id->seq > from.sent) {
        ++st.counts.corrupted;
        st.note("client %u: message %u from %u, which sent only %u", c.id, id->seq, id->sender,
                from.sent);
        return;
    }
    const bool binary = soak::sent_as_binary(id->seq, st.binary_allowed());
    if (m.is_text() == binary || body != soak::make_payload(id->sender, id->seq, st.o.max_size)) {
        ++st.counts.corrupted;
        st.note("client %u: message %u from %u differs from what was sent (%zu bytes, %s)", c.id,
                id->seq, id->sender, body.size(), m.is_text() ? "text" : "binary");
        return;
    }
    const auto before = st.counts;
    st.book.record(c.id, id->sender - c.first, id->seq, st.counts);
    if (st.counts.duplicated != before.duplicated)
        st.note("client %u: message %u from %u again", c.id, id->seq, id->sender);
    else if (st.counts.reordered != before.reordered)
        st.note("client %u: message %u from %u after a later one", c.id, id->seq, id->sender);
}

/// The sender and sequence number of a data-phase message (nullopt for a hello, a notice or a
/// chat greeting).
std::optional<soak::message_id> data_id(const run_state& st, std::string_view body) {
    if (st.o.mode == mode_kind::chat) {
        const std::size_t colon = body.find(": ");
        if (body.substr(0, 2) == "* " || colon == std::string_view::npos)
            return std::nullopt;
        body.remove_prefix(colon + 2);
    }
    auto id = soak::parse_id(body);
    if (!id || id->seq == 0)
        return std::nullopt;
    return id;
}

/// --inject: breaks client 0's tenth data message on its way to the verifier (a held message,
/// for reorder, goes after the next one from the same sender).
void deliver(run_state& st, client& c, ws::message& m) {
    const auto id =
        c.id == 0 && st.o.inject != fault_kind::none ? data_id(st, m.data) : std::nullopt;
    if (!id || ++st.inject_seen < 10) {
        verify(st, c, m);
        return;
    }
    if (st.held && data_id(st, st.held->data)->sender == id->sender) {
        verify(st, c, m);
        verify(st, c, *st.held);
        st.held.reset();
        return;
    }
    if (st.inject_seen > 10) {
        verify(st, c, m);
        return;
    }
    std::fprintf(stderr, "soak_client: --inject: breaking client 0's message \"%.24s...\"\n",
                 m.data.c_str());
    switch (st.o.inject) {
    case fault_kind::none:
    case fault_kind::drop:
        return;
    case fault_kind::dup:
        verify(st, c, m);
        verify(st, c, m);
        return;
    case fault_kind::reorder:
        st.held = m;
        return;
    case fault_kind::corrupt:
        m.data.back() = static_cast<char>(m.data.back() ^ 0x01);
        verify(st, c, m);
        return;
    }
}

// ---- the clients' coroutines ------------------------------------------------------------

/// Connects one client; chat clients also give their name and wait for "hello NAME".
core::task<bool> connect_one(run_state& st, client& c, const ws::connect_options& co) {
    const options& o = st.o;
    std::string url = "ws://" + o.host + ":" + std::to_string(o.port) + target_of(o, c);
    auto s = co_await ws::connect(url, co);
    if (!s) {
        st.note("client %u: connect to %s: %s", c.id, url.c_str(), s.error().message().c_str());
        co_return false;
    }
    c.session = std::move(*s);
    if (c.session->compression().has_value() != o.deflate) {
        ++st.negotiation_errors;
        st.note("client %u: permessage-deflate %s", c.id,
                o.deflate ? "offered but not agreed" : "agreed but not offered");
        co_return false;
    }
    if (o.mode != mode_kind::chat)
        co_return true;
    const std::string name = chat_name(c.id);
    auto sent = co_await c.session->send_text(name);
    if (!sent) {
        st.note("client %u: sending the name: %s", c.id, sent.error().message().c_str());
        co_return false;
    }
    auto hello = co_await core::with_timeout(std::chrono::seconds(10), c.session->receive());
    if (!hello || !hello->is_text() || hello->data != "hello " + name) {
        st.note("client %u: no \"hello %s\": %s", c.id, name.c_str(),
                hello ? hello->data.substr(0, 60).c_str() : hello.error().message().c_str());
        co_return false;
    }
    co_return true;
}

/// Connects clients one after another (run --connect-parallel of these at once) until none is
/// left or the deadline passed.
core::task<void> connect_worker(run_state& st, std::size_t& next, const ws::connect_options& co,
                                core::clock::time_point deadline) {
    while (next < st.clients.size() && core::clock::now() < deadline) {
        client& c = st.clients[next++];
        const bool ok = co_await connect_one(st, c, co);
        if (!ok) {
            ++st.connect_failures;
            c.session.reset();
        }
    }
}

/// Receives until the session ends; an end before the close phase is an unexpected close.
core::task<void> receive_loop(run_state& st, client& c) {
    for (;;) {
        auto m = co_await c.session->receive();
        if (!m) {
            if (!c.closing) {
                ++st.unexpected_closes;
                st.note("client %u: unexpected end of session: %s (close code %u)", c.id,
                        m.error().message().c_str(), c.session->close_code());
            } else if (m.error() != ws::errc::closed) {
                ++st.unclean_closes;
                st.note("client %u: closing: %s (close code %u)", c.id, m.error().message().c_str(),
                        c.session->close_code());
            }
            co_return;
        }
        deliver(st, c, *m);
    }
}

/// Join phase of one room: every member sends its hello every 200 ms until every member has
/// heard every other one (rooms) or every one including itself (chat), or the deadline.
core::task<void> join_room(run_state& st, std::uint32_t first, core::clock::time_point deadline) {
    const client& head = st.clients[first];
    const std::uint32_t members = head.members;
    const std::uint32_t want = st.o.mode == mode_kind::chat ? members : members - 1;
    auto ready = [&] {
        for (std::uint32_t i = first; i < first + members; ++i) {
            if (st.hellos[i] < want)
                return false;
        }
        return true;
    };
    while (!ready() && core::clock::now() < deadline && st.unexpected_closes == 0) {
        for (std::uint32_t i = first; i < first + members; ++i) {
            client& c = st.clients[i];
            if (!c.session)
                continue;
            auto sent = co_await c.session->send_text(soak::hello_payload(c.id));
            (void)sent; // a failed session shows as an unexpected close
        }
        auto slept = co_await core::sleep_for(std::chrono::milliseconds(200));
        (void)slept;
    }
}

/// Messages a client sends in the data phase: one every `period` seconds from `offset` on.
std::uint64_t due_count(double duration, double period, double offset) {
    if (offset >= duration)
        return 0;
    return static_cast<std::uint64_t>(std::ceil((duration - offset) / period));
}

/// Send times are multiples of this from the start of the data phase: clients due in the same
/// tick share one timer wake-up (10,000 clients spread to the microsecond would wake this loop
/// every millisecond), while the server still sees a steady rate.
constexpr double send_tick_s = 0.01;

/// Data phase of one client: message k is due at start + offset + k / rate; the offsets spread
/// the clients evenly over one period, so the server sees a steady rate, not bursts.
core::task<void> send_loop(run_state& st, client& c, core::clock::time_point start) {
    const double period = 1.0 / st.o.rate;
    // Golden-ratio spacing: consecutive ids land far apart within the period.
    double frac = static_cast<double>(c.id) * 0.6180339887498949;
    frac -= static_cast<double>(static_cast<std::uint64_t>(frac));
    const double offset = frac * period;
    const std::uint64_t due = due_count(st.o.duration, period, offset);
    st.scheduled += due;
    const auto stop_sending = start + seconds(st.o.duration) + send_grace;
    for (std::uint64_t k = 0; k < due; ++k) {
        const double at = offset + static_cast<double>(k) * period;
        const auto when = start + seconds(std::floor(at / send_tick_s) * send_tick_s);
        if (core::clock::now() < when) {
            auto slept = co_await core::sleep_until(when);
            if (!slept)
                co_return;
        }
        const auto now = core::clock::now();
        if (now > stop_sending) {
            st.sent_late += due - k;
            co_return;
        }
        st.max_lateness_s = std::max(st.max_lateness_s, elapsed_s(when, now));
        const std::uint32_t seq = ++c.sent;
        st.expected += st.fanout(c);
        const std::string payload = soak::make_payload(c.id, seq, st.o.max_size);
        auto r = soak::sent_as_binary(seq, st.binary_allowed())
                     ? co_await c.session->send_binary(std::as_bytes(std::span(payload)))
                     : co_await c.session->send_text(payload);
        if (!r) {
            ++st.send_errors;
            st.note("client %u: send %u: %s", c.id, seq, r.error().message().c_str());
            co_return;
        }
        ++st.sent_ok;
    }
}

core::task<void> close_one(client& c) {
    auto r = co_await c.session->close();
    (void)r; // the receive loop reports how the session ended
}

// ---- server sampling --------------------------------------------------------------------

/// Samples the server every 250 ms until stopped: peak RSS and descriptors, and the busiest
/// second of CPU.
core::task<void> sample_server(run_state& st) {
    if (st.o.server_pid <= 0)
        co_return;
    auto window_start = core::clock::now();
    double window_cpu = soak::read_cpu_s(st.o.server_pid);
    for (;;) {
        const soak::proc_sample s = soak::sample_process(st.o.server_pid);
        if (!s.valid()) {
            st.server.gone = true;
            co_return;
        }
        st.server.rss_peak_kb = std::max(st.server.rss_peak_kb, s.rss_kb);
        st.server.fds_peak = std::max(st.server.fds_peak, s.fds);
        const auto now = core::clock::now();
        if (elapsed_s(window_start, now) >= 1.0) {
            const double pct = 100.0 * (s.cpu_s - window_cpu) / elapsed_s(window_start, now);
            st.server.cpu_peak_pct = std::max(st.server.cpu_peak_pct, pct);
            window_start = now;
            window_cpu = s.cpu_s;
        }
        auto slept = co_await core::sleep_for(std::chrono::milliseconds(250));
        if (!slept)
            co_return;
    }
}

/// The server's CPU share over `window` seconds from now (and the sample at its end).
core::task<double> cpu_over(const options& o, double window, soak::proc_sample& end) {
    const auto t0 = core::clock::now();
    const double c0 = soak::read_cpu_s(o.server_pid);
    auto slept = co_await core::sleep_for(seconds(window));
    (void)slept;
    end = soak::sample_process(o.server_pid);
    if (c0 < 0 || !end.valid())
        co_return -1.0;
    co_return 100.0 * (end.cpu_s - c0) / elapsed_s(t0, core::clock::now());
}

/// Waits until `scope` has no live children or the deadline; then stops what is left.
core::task<bool> join_by(core::task_scope& scope, core::clock::time_point deadline) {
    while (scope.size() != 0 && core::clock::now() < deadline) {
        auto slept = co_await core::sleep_for(std::chrono::milliseconds(20));
        (void)slept;
    }
    const bool in_time = scope.size() == 0;
    scope.request_stop();
    co_await scope.join();
    co_return in_time;
}

// ---- the run ----------------------------------------------------------------------------

void log_phase(const char* what, core::clock::time_point t0) {
    std::printf("[%7.2fs] %s\n", elapsed_s(t0, core::clock::now()), what);
    std::fflush(stdout);
}

/// Connect phase; false when not every client connected.
core::task<bool> connect_all(run_state& st) {
    ws::connect_options co;
    co.handshake.deflate.enabled = st.o.deflate;
    co.session.close_timeout = std::chrono::seconds(5);
    // The server's messages are at most --max-size plus a chat name: keep the default limits.
    std::size_t next = 0;
    const auto deadline =
        core::clock::now() + std::chrono::seconds(30) +
        seconds(static_cast<double>(st.o.clients) / 200.0); // ~200 handshakes/s at worst
    core::task_scope workers;
    const std::size_t n = std::min(st.o.connect_parallel, st.o.clients);
    for (std::size_t i = 0; i < n; ++i)
        workers.spawn(connect_worker(st, next, co, deadline));
    co_await workers.join();
    if (next < st.clients.size()) {
        st.note("connect phase: deadline passed with %zu of %zu clients started", next,
                st.clients.size());
        st.connect_failures += st.clients.size() - next;
    }
    co_return st.connect_failures == 0;
}

/// Join phase (rooms, chat); false when a room did not fill by the deadline.
core::task<bool> join_all(run_state& st) {
    const auto deadline = core::clock::now() + std::chrono::seconds(30);
    core::task_scope rooms;
    for (std::uint32_t i = 0; i < st.clients.size(); i += st.clients[i].members)
        rooms.spawn(join_room(st, i, deadline));
    co_await rooms.join();
    const bool late = core::clock::now() >= deadline;
    if (late)
        st.note("join phase: rooms did not fill within 30 s");
    co_return !late;
}

/// Data phase: every client sends for --duration seconds. Measures this client's own CPU
/// share and run-queue wait meanwhile (run_state::load).
core::task<void> send_all(run_state& st) {
    core::task_scope senders;
    const auto start = core::clock::now() + std::chrono::milliseconds(50);
    const double cpu0 = soak::self_cpu_s();
    const double wait0 = soak::self_run_delay_s();
    for (client& c : st.clients)
        senders.spawn(send_loop(st, c, start));
    // A send stuck on a peer that stopped reading ends by the session's write timeout (30 s).
    const auto deadline = start + seconds(st.o.duration) + send_grace + std::chrono::seconds(35);
    const bool in_time = co_await join_by(senders, deadline);
    if (!in_time)
        st.note("data phase: senders still blocked 35 s after the end");
    const double wall = elapsed_s(start, core::clock::now());
    st.load.cpu_pct = 100.0 * (soak::self_cpu_s() - cpu0) / wall;
    const double wait1 = soak::self_run_delay_s();
    st.load.wait_pct = wait0 < 0 || wait1 < 0 ? -1.0 : 100.0 * (wait1 - wait0) / wall;
}

/// Drain phase: until every owed delivery arrived or the deadline.
core::task<void> drain(run_state& st) {
    const auto deadline = core::clock::now() + seconds(st.o.drain_timeout);
    while (st.counts.delivered < st.expected && core::clock::now() < deadline &&
           st.unexpected_closes == 0) {
        auto slept = co_await core::sleep_for(std::chrono::milliseconds(20));
        (void)slept;
    }
}

/// Lost messages: for every receiver and every sender it should hear, what never came.
void count_lost(run_state& st) {
    for (const client& r : st.clients) {
        for (std::uint32_t s = r.first; s < r.first + r.members; ++s) {
            if (st.o.mode == mode_kind::rooms && s == r.id)
                continue;
            const std::uint64_t m = st.book.missing(r.id, s - r.first, st.clients[s].sent);
            if (m != 0) {
                st.counts.lost += m;
                st.note("client %u: %llu message(s) from %u lost (last received %u of %u)", r.id,
                        static_cast<unsigned long long>(m), s, st.book.highest(r.id, s - r.first),
                        st.clients[s].sent);
            }
        }
    }
}

/// Why sends fell behind their schedule, from the client's own CPU figures.
std::string why_behind(const run_state& st) {
    char why[320];
    const double busy = st.load.cpu_pct + std::max(0.0, st.load.wait_pct);
    if (st.load.cpu_pct >= 100 * saturated_cpu)
        std::snprintf(why, sizeof why,
                      "its CPU was saturated (%.0f %% of one core); lower --clients or --rate, "
                      "this run measured the client, not the server",
                      st.load.cpu_pct);
    else if (busy >= 100 * saturated_cpu)
        std::snprintf(why, sizeof why,
                      "it was starved of CPU (running %.0f %%, waiting for a core %.0f %% of the "
                      "time): other processes had the cores, this run measured the machine",
                      st.load.cpu_pct, st.load.wait_pct);
    else
        std::snprintf(why, sizeof why,
                      "it had CPU to spare (running %.0f %%, waiting for a core %.0f %%), so "
                      "its sends failed or waited on the server (back-pressure)",
                      st.load.cpu_pct, st.load.wait_pct);
    return why;
}

/// Prints the figures and the verdict; returns the exit status.
int report(const run_state& st, double client_cpu_total_s, double wall_s) {
    const options& o = st.o;
    const auto& c = st.counts;
    const auto& sv = st.server;
    const double ratio = st.scheduled == 0
                             ? 1.0
                             : static_cast<double>(st.sent_ok) / static_cast<double>(st.scheduled);
    std::printf(
        "soak_result mode=%s deflate=%s clients=%zu duration_s=%.1f rate=%.2f room_size=%zu "
        "sent=%llu scheduled=%llu late=%llu send_ratio=%.3f max_lateness_s=%.3f expected=%llu "
        "delivered=%llu lost=%llu duplicated=%llu reordered=%llu corrupted=%llu "
        "unexpected=%llu connect_failures=%llu unexpected_closes=%llu unclean_closes=%llu "
        "send_errors=%llu client_cpu_pct=%.1f client_wait_pct=%.1f client_cpu_s=%.2f "
        "client_rss_kb_peak=%ld wall_s=%.1f\n",
        name_of(o.mode), o.deflate ? "on" : "off", o.clients, o.duration, o.rate,
        o.mode == mode_kind::echo ? std::size_t{1} : o.room_size,
        static_cast<unsigned long long>(st.sent_ok), static_cast<unsigned long long>(st.scheduled),
        static_cast<unsigned long long>(st.sent_late), ratio, st.max_lateness_s,
        static_cast<unsigned long long>(st.expected), static_cast<unsigned long long>(c.delivered),
        static_cast<unsigned long long>(c.lost), static_cast<unsigned long long>(c.duplicated),
        static_cast<unsigned long long>(c.reordered), static_cast<unsigned long long>(c.corrupted),
        static_cast<unsigned long long>(c.unexpected),
        static_cast<unsigned long long>(st.connect_failures),
        static_cast<unsigned long long>(st.unexpected_closes),
        static_cast<unsigned long long>(st.unclean_closes),
        static_cast<unsigned long long>(st.send_errors), st.load.cpu_pct, st.load.wait_pct,
        client_cpu_total_s, soak::self_peak_rss_kb(), wall_s);
    if (o.server_pid > 0) {
        std::printf("soak_server rss_kb_before=%ld rss_kb_peak=%ld rss_kb_after=%ld fds_before=%ld "
                    "fds_peak=%ld fds_after=%ld cpu_pct_before=%.1f cpu_pct_peak=%.1f "
                    "cpu_pct_after=%.1f cpu_s_total=%.2f\n",
                    sv.before.rss_kb, sv.rss_peak_kb, sv.after.rss_kb, sv.before.fds, sv.fds_peak,
                    sv.after.fds, sv.cpu_before_pct, sv.cpu_peak_pct, sv.cpu_after_pct,
                    sv.after.cpu_s);
    }

    std::vector<std::string> fails;
    auto fail_if = [&fails](bool bad, std::string why) {
        if (bad)
            fails.push_back(std::move(why));
    };
    fail_if(st.connect_failures != 0,
            std::to_string(st.connect_failures) + " client(s) did not connect");
    fail_if(st.negotiation_errors != 0, "permessage-deflate not negotiated as asked");
    fail_if(c.lost != 0, std::to_string(c.lost) + " message(s) lost");
    fail_if(c.duplicated != 0, std::to_string(c.duplicated) + " message(s) duplicated");
    fail_if(c.reordered != 0, std::to_string(c.reordered) + " message(s) reordered");
    fail_if(c.corrupted != 0, std::to_string(c.corrupted) + " message(s) corrupted");
    fail_if(c.unexpected != 0, std::to_string(c.unexpected) + " unexpected message(s)");
    fail_if(st.unexpected_closes != 0,
            std::to_string(st.unexpected_closes) + " unexpected close(s)");
    fail_if(st.unclean_closes != 0,
            std::to_string(st.unclean_closes) + " close handshake(s) not completed");
    fail_if(st.send_errors != 0, std::to_string(st.send_errors) + " send error(s)");
    fail_if(c.delivered == 0, "nothing was delivered");
    if (ratio < min_send_ratio) {
        char why[512];
        std::snprintf(why, sizeof why,
                      "the load client did not keep up: %.1f %% of the scheduled messages went "
                      "out on time (< %.0f %%): %s",
                      100 * ratio, 100 * min_send_ratio, why_behind(st).c_str());
        fails.emplace_back(why);
    } else if (st.load.cpu_pct >= 100 * saturated_cpu) {
        std::printf("WARNING: the load client used %.0f %% of a core; it kept up, barely\n",
                    st.load.cpu_pct);
    }
    if (o.server_pid > 0) {
        fail_if(sv.gone || !sv.after.valid(), "the server is gone (crashed or killed)");
        if (sv.before.valid() && sv.after.valid()) {
            const long rss_limit =
                static_cast<long>(o.rss_factor * static_cast<double>(sv.before.rss_kb)) +
                o.rss_allowance_kb;
            char line[256];
            std::snprintf(line, sizeof line,
                          "server RSS after the run %ld KiB > %.1f x %ld KiB before + %ld KiB",
                          sv.after.rss_kb, o.rss_factor, sv.before.rss_kb, o.rss_allowance_kb);
            if (sv.after.rss_kb > rss_limit) {
                if (o.rss_report_only)
                    std::printf("NOT MET (report-only): %s\n", line);
                else
                    fails.emplace_back(line);
            }
            std::snprintf(line, sizeof line,
                          "server descriptors after the run %ld > %ld before + %ld", sv.after.fds,
                          sv.before.fds, o.fd_slack);
            fail_if(sv.after.fds > sv.before.fds + o.fd_slack, line);
        }
    }
    if (st.notes > max_notes)
        std::printf("(%zu failure lines, the first %zu shown on stderr)\n", st.notes, max_notes);
    for (const auto& f : fails)
        std::printf("FAIL: %s\n", f.c_str());
    if (fails.empty())
        std::printf("PASS: %s, %zu clients, %llu messages sent, %llu deliveries verified, "
                    "0 lost, 0 duplicated, 0 reordered, 0 corrupted\n",
                    name_of(o.mode), o.clients, static_cast<unsigned long long>(st.sent_ok),
                    static_cast<unsigned long long>(c.delivered));
    std::fflush(stdout);
    return fails.empty() ? 0 : 1;
}

core::task<int> run(const options& o) {
    run_state st(o);
    lay_out(st);
    const auto t0 = core::clock::now();
    const double cpu0 = soak::self_cpu_s();

    if (o.server_pid > 0) {
        st.server.cpu_before_pct = co_await cpu_over(o, o.idle, st.server.before);
        if (!st.server.before.valid()) {
            std::fprintf(stderr, "soak_client: cannot read /proc/%ld\n", o.server_pid);
            co_return 1;
        }
    }
    core::task_scope sampling;
    sampling.spawn(sample_server(st));
    core::task_scope receivers;

    log_phase("connect", t0);
    const bool connected = co_await connect_all(st);
    if (connected) {
        for (client& c : st.clients)
            receivers.spawn(receive_loop(st, c));
        bool joined = true;
        if (o.mode != mode_kind::echo) {
            st.phase = phase_kind::join;
            log_phase("join", t0);
            joined = co_await join_all(st);
        }
        if (joined && st.unexpected_closes == 0) {
            st.phase = phase_kind::data;
            log_phase("data", t0);
            co_await send_all(st);
            st.phase = phase_kind::drain;
            log_phase("drain", t0);
            co_await drain(st);
        }
    }
    st.phase = phase_kind::closing;
    log_phase("close", t0);
    core::task_scope closers;
    for (client& c : st.clients) {
        c.closing = true;
        if (c.session && c.session->is_open())
            closers.spawn(close_one(c));
    }
    // g++ 12: bind a co_await result before testing it (docs/core.md).
    const auto close_deadline = core::clock::now() + std::chrono::seconds(10);
    const bool closed = co_await join_by(closers, close_deadline);
    if (!closed)
        st.note("close phase: close handshakes still running after 10 s");
    const bool ended = co_await join_by(receivers, close_deadline + std::chrono::seconds(1));
    if (!ended)
        st.note("close phase: sessions still receiving after 10 s");
    for (client& c : st.clients)
        c.session.reset();
    st.phase = phase_kind::done;
    count_lost(st);

    log_phase("settle", t0);
    if (o.server_pid > 0) {
        auto slept = co_await core::sleep_for(seconds(std::max(0.0, o.settle - 1.0)));
        (void)slept;
        st.server.cpu_after_pct = co_await cpu_over(o, std::min(1.0, o.settle), st.server.after);
    }
    sampling.request_stop();
    co_await sampling.join();
    co_return report(st, soak::self_cpu_s() - cpu0, elapsed_s(t0, core::clock::now()));
}

// ---- command line -----------------------------------------------------------------------

void usage(std::FILE* out) {
    std::fputs("usage: soak_client --mode echo|rooms|chat --port N [--host ADDR] [--clients N]\n"
               "                   [--duration S] [--rate MSGS_PER_S] [--room-size N] [--deflate]\n"
               "                   [--server-pid PID] [--idle S] [--settle S] [--drain-timeout S]\n"
               "                   [--max-size BYTES] [--connect-parallel N] [--rss-factor F]\n"
               "                   [--rss-allowance-kb KB] [--rss-report-only] [--fd-slack N]\n"
               "                   [--backend uring|epoll] [--inject drop|dup|reorder|corrupt]\n",
               out);
}

bool parse_number(const char* s, double& out) {
    char* end = nullptr;
    out = std::strtod(s, &end);
    return end != s && *end == '\0' && out >= 0;
}

bool parse_count(const char* s, std::size_t& out) {
    double d = 0;
    if (!parse_number(s, d) || d != static_cast<double>(static_cast<std::size_t>(d)))
        return false;
    out = static_cast<std::size_t>(d);
    return true;
}

/// Parses one flag with a value; false on a bad flag or value.
bool parse_flag(options& o, const std::string& a, const char* v) {
    std::size_t n = 0;
    if (a == "--mode") {
        const std::string m = v;
        if (m == "echo")
            o.mode = mode_kind::echo;
        else if (m == "rooms")
            o.mode = mode_kind::rooms;
        else if (m == "chat")
            o.mode = mode_kind::chat;
        else
            return false;
        return true;
    }
    if (a == "--host") {
        o.host = v;
        return true;
    }
    if (a == "--port") {
        const bool ok = parse_count(v, n) && n > 0 && n < 65536;
        o.port = static_cast<unsigned>(n);
        return ok;
    }
    if (a == "--clients")
        return parse_count(v, o.clients) && o.clients > 0 && o.clients < (1u << 31);
    if (a == "--duration")
        return parse_number(v, o.duration) && o.duration > 0;
    if (a == "--rate")
        return parse_number(v, o.rate) && o.rate > 0;
    if (a == "--room-size")
        return parse_count(v, o.room_size) && o.room_size >= 2;
    if (a == "--server-pid") {
        const bool ok = parse_count(v, n) && n > 0;
        o.server_pid = static_cast<long>(n);
        return ok;
    }
    if (a == "--idle")
        return parse_number(v, o.idle) && o.idle > 0;
    if (a == "--settle")
        return parse_number(v, o.settle) && o.settle > 0;
    if (a == "--drain-timeout")
        return parse_number(v, o.drain_timeout);
    if (a == "--max-size")
        return parse_count(v, o.max_size) && o.max_size >= 64 && o.max_size <= 4000;
    if (a == "--connect-parallel")
        return parse_count(v, o.connect_parallel) && o.connect_parallel > 0;
    if (a == "--rss-factor")
        return parse_number(v, o.rss_factor);
    if (a == "--rss-allowance-kb") {
        const bool ok = parse_count(v, n);
        o.rss_allowance_kb = static_cast<long>(n);
        return ok;
    }
    if (a == "--fd-slack") {
        const bool ok = parse_count(v, n);
        o.fd_slack = static_cast<long>(n);
        return ok;
    }
    if (a == "--backend") {
        const std::string b = v;
        if (b != "uring" && b != "epoll")
            return false;
        o.backend = b == "uring" ? core::backend_kind::uring : core::backend_kind::epoll;
        return true;
    }
    if (a == "--inject") {
        const std::string f = v;
        if (f == "drop")
            o.inject = fault_kind::drop;
        else if (f == "dup")
            o.inject = fault_kind::dup;
        else if (f == "reorder")
            o.inject = fault_kind::reorder;
        else if (f == "corrupt")
            o.inject = fault_kind::corrupt;
        else
            return false;
        return true;
    }
    return false;
}

} // namespace

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
