// soak_client: the command line.
#include "soak_client.hpp"

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace soak = coronet::soak;

namespace coronet::soak::load {

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

namespace {

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

} // namespace

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

} // namespace coronet::soak::load
