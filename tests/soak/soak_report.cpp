// soak_client: the figures and the verdict: lost messages counted, limits checked, and why
// the client fell behind when it did.
#include "soak_client.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>

namespace soak = coronet::soak;

namespace coronet::soak::load {

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

namespace {

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

} // namespace

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

} // namespace coronet::soak::load
