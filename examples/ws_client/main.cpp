// ws_client: a small websocat-like client on coronet::ws.
//
//   ws_client URL [--binary] [--ping] [--cafile FILE] [--echo] [--no-deflate]
//             [--backend uring|epoll]
//
// Connects to a ws:// or wss:// URL (certificates verified; --cafile adds a CA to trust), sends
// each line of stdin as a message (text, or binary with --binary), prints every message it
// receives on its own line, and closes (1000) at the end of stdin. --ping sends a ping first.
// --echo sends every received message back unchanged (text as text, binary as binary) until the
// server closes, then exits 0: a handy peer for testing other servers.
#include <coronet/core/async_mutex.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/tls.hpp>
#include <coronet/core/when.hpp>
#include <coronet/ws/server.hpp>

#include <cstdio>
#include <cstring>
#include <deque>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

namespace core = coronet::core;
namespace ws = coronet::ws;

namespace {

struct options {
    std::string url;
    bool binary = false;
    bool ping = false;
    bool echo = false;
    bool deflate = true;
    std::string cafile;
    std::optional<core::backend_kind> backend;
};

void usage(std::FILE* out) {
    std::fputs("usage: ws_client URL [--binary] [--ping] [--cafile FILE] [--echo]\n"
               "                 [--backend uring|epoll] [--help]\n"
               "  --binary        send stdin lines as binary messages\n"
               "  --ping          send a ping after connecting\n"
               "  --cafile FILE   PEM CA certificates to trust for wss://\n"
               "  --echo          send every received message back until the server closes\n"
               "  --no-deflate    do not offer permessage-deflate (offered by default)\n",
               out);
}

// Lines from stdin, read on a thread and handed to the loop through post().
struct stdin_lines {
    std::deque<std::optional<std::string>> lines; // nullopt: end of input
    core::stop_source* waiting = nullptr;
};

core::task<void> print_messages(ws::session& s, bool echo, int& status) {
    for (;;) {
        auto m = co_await s.receive();
        if (!m) {
            if (m.error() != ws::errc::closed && m.error() != core::errc::operation_canceled) {
                std::fprintf(stderr, "ws_client: %s\n", m.error().message().c_str());
                status = 1;
            }
            co_return;
        }
        if (echo) {
            auto sent = m->is_text() ? co_await s.send_text(m->data)
                                     : co_await s.send_binary(std::as_bytes(std::span(m->data)));
            if (!sent)
                co_return;
            continue;
        }
        std::fwrite(m->data.data(), 1, m->data.size(), stdout);
        std::fputc('\n', stdout);
        std::fflush(stdout);
    }
}

core::task<core::result<void>> wait_a_while(std::chrono::milliseconds d) {
    co_return co_await core::sleep_for(d);
}

core::task<int> run_client(core::loop& lp, options o) {
    core::tls_context tls;
    ws::connect_options co;
    co.handshake.deflate.enabled = o.deflate;
    if (!o.cafile.empty()) {
        core::tls_client_options to;
        to.ca_file = o.cafile;
        auto ctx = core::tls_context::client(to);
        if (!ctx) {
            std::fprintf(stderr, "ws_client: %s\n", ctx.error().message().c_str());
            co_return 2;
        }
        tls = std::move(*ctx);
        co.tls = &tls;
    }
    auto s = co_await ws::connect(o.url, co);
    if (!s) {
        std::fprintf(stderr, "ws_client: cannot connect to %s: %s\n", o.url.c_str(),
                     s.error().message().c_str());
        co_return 1;
    }
    ws::session& sess = **s;
    int status = 0;
    if (o.ping) {
        auto p = co_await sess.ping("ws_client");
        (void)p;
    }
    if (o.echo) {
        co_await print_messages(sess, true, status);
        co_return status;
    }

    // Reader of stdin on its own thread; the loop gets each line through post().
    stdin_lines in;
    std::thread reader([&lp, &in] {
        std::string line;
        while (std::getline(std::cin, line)) {
            lp.post([&in, line] {
                in.lines.emplace_back(line);
                if (in.waiting != nullptr)
                    in.waiting->request_stop();
            });
        }
        lp.post([&in] {
            in.lines.emplace_back(std::nullopt);
            if (in.waiting != nullptr)
                in.waiting->request_stop();
        });
    });

    core::task_scope scope;
    scope.spawn(print_messages(sess, false, status));
    for (bool done = false; !done;) {
        while (in.lines.empty()) {
            core::stop_source wake;
            in.waiting = &wake;
            auto t = wait_a_while(std::chrono::seconds(3600));
            t.handle().promise().set_token(wake.token());
            (void)co_await std::move(t);
            in.waiting = nullptr;
        }
        auto line = std::move(in.lines.front());
        in.lines.pop_front();
        if (!line) {
            done = true;
            break;
        }
        auto sent = o.binary ? co_await sess.send_binary(std::as_bytes(std::span(*line)))
                             : co_await sess.send_text(*line);
        if (!sent) {
            std::fprintf(stderr, "ws_client: %s\n", sent.error().message().c_str());
            status = 1;
            break;
        }
    }
    auto closed = co_await sess.close();
    (void)closed;
    co_await scope.join();
    reader.join();
    co_return status;
}

} // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            usage(stdout);
            return 0;
        } else if (a == "--binary") {
            o.binary = true;
        } else if (a == "--ping") {
            o.ping = true;
        } else if (a == "--echo") {
            o.echo = true;
        } else if (a == "--no-deflate") {
            o.deflate = false;
        } else if (a == "--cafile" && i + 1 < argc) {
            o.cafile = argv[++i];
        } else if (a == "--backend" && i + 1 < argc) {
            std::string v = argv[++i];
            if (v == "uring")
                o.backend = core::backend_kind::uring;
            else if (v == "epoll")
                o.backend = core::backend_kind::epoll;
            else
                return usage(stderr), 2;
        } else if (o.url.empty() && a.rfind("--", 0) != 0) {
            o.url = a;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (o.url.empty()) {
        usage(stderr);
        return 2;
    }
    core::loop_options lo;
    lo.backend = o.backend;
    core::loop lp(lo);
    return core::run(lp, run_client(lp, o));
}
