#include <coronet/ws/server.hpp>

#include <coronet/core/accept_loop.hpp>
#include <coronet/core/log.hpp>
#include <coronet/core/resolve.hpp>
#include <coronet/core/timer.hpp>

#include <charconv>
#include <string>

namespace coronet::ws {
namespace {

using namespace std::chrono_literals;

struct live_guard {
    std::size_t& n;
    explicit live_guard(std::size_t& c) : n(c) { ++n; }
    ~live_guard() { --n; }
};

core::task<core::result<void>> write_text(core::stream& s, std::string text) {
    co_return co_await s.write_all(core::as_bytes(text));
}

struct ws_url {
    bool secure = false;
    std::string host;
    std::uint16_t port = 80;
    std::string target = "/";
};

bool parse_url(std::string_view u, ws_url& out) {
    if (u.substr(0, 5) == "ws://") {
        u.remove_prefix(5);
    } else if (u.substr(0, 6) == "wss://") {
        u.remove_prefix(6);
        out.secure = true;
        out.port = 443;
    } else {
        return false;
    }
    auto slash = u.find_first_of("/?");
    std::string_view authority = u.substr(0, slash);
    if (slash != std::string_view::npos) {
        out.target = std::string(u.substr(slash));
        if (out.target.front() == '?')
            out.target.insert(0, "/");
    }
    auto hash = out.target.find('#');
    if (hash != std::string::npos)
        out.target.resize(hash);
    std::string_view host = authority;
    std::string_view port;
    if (!authority.empty() && authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos)
            return false;
        host = authority.substr(1, close - 1);
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':')
                return false;
            port = authority.substr(close + 2);
        }
    } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (host.empty() || host.find_first_of(" \t\r\n@") != std::string_view::npos)
        return false;
    if (!port.empty()) {
        unsigned p = 0;
        auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
        if (ec != std::errc() || ptr != port.data() + port.size() || p == 0 || p > 65535)
            return false;
        out.port = static_cast<std::uint16_t>(p);
    }
    out.host = std::string(host);
    return true;
}

// After an error answer: half-close, then read (and drop) what the client still sends until it
// closes too, bounded in time and bytes. Closing with unread input would send a TCP reset, and
// a reset can destroy the answer before the client reads it (RFC 9112 §9.6).
core::task<void> linger_close(core::stream& s) {
    auto sd = co_await s.shutdown();
    if (!sd)
        co_return;
    auto drain = [](core::stream& st) -> core::task<core::result<void>> {
        std::byte buf[4096];
        for (std::size_t total = 0; total < 256 * 1024;) {
            auto n = co_await st.read_some(buf);
            if (!n)
                co_return n.error();
            total += *n;
        }
        co_return core::result<void>{};
    };
    auto r = co_await core::with_timeout(1s, drain(s));
    (void)r;
}

} // namespace

server::server(session_handler handler, server_options opts)
    : handler_(std::move(handler)), opts_(opts) {}

// What a client gets when the process is out of descriptors: refused at once, not left in the
// backlog (core::accept_loop_options::refusal).
constexpr std::string_view out_of_descriptors_response =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 26\r\nConnection: close\r\n\r\nout of descriptors: retry\n";

core::task<void> server::serve(core::tcp_listener& listener) {
    core::stop_token outer = co_await core::get_stop_token();
    core::stop_source drain;
    drain_ = &drain;
    core::task_scope conns; // not linked to `outer`: the shutdown below decides when they stop
    {
        core::task_scope acceptor(outer);
        core::accept_loop_options accept_opts;
        accept_opts.refusal = out_of_descriptors_response;
        acceptor.spawn(core::accept_loop(
            listener, conns, [this](core::tcp_stream s) { return connection(std::move(s)); },
            accept_opts));
        co_await acceptor.join();
    }
    // The accept loop logged a listener failure itself; a stop request is said here.
    if (outer.stop_requested())
        core::log(core::log_level::info, "ws server: stop requested; shutting down with " +
                                             std::to_string(live_) + " connections open");
    // Graceful shutdown: no more accepts; open sessions are sent 1001 (close_on) and get
    // shutdown_grace to finish their closing handshake; then whatever is left is cancelled.
    drain.request_stop();
    core::task_scope timer;
    timer.spawn([](core::task_scope& c, std::chrono::milliseconds grace) -> core::task<void> {
        auto slept = co_await core::sleep_for(grace);
        if (slept)
            c.request_stop();
    }(conns, opts_.shutdown_grace));
    co_await conns.join();
    timer.request_stop();
    co_await timer.join();
    drain_ = nullptr;
}

core::task<void> server::connection(core::tcp_stream s) {
    live_guard g(live_);
    const core::memory_budget* budget = opts_.session.memory_budget;
    const bool over_budget = budget != nullptr && budget->exhausted();
    if (over_budget)
        core::count("ws.over_budget");
    if (live_ > opts_.max_connections || over_budget) {
        // Refused before the upgrade (RFC 6455 §4.2.1 lets the server answer any HTTP status).
        auto w = co_await core::with_timeout(
            1s, write_text(s, "HTTP/1.1 503 Service Unavailable\r\nConnection: "
                              "close\r\nContent-Length: 0\r\n\r\n"));
        if (w)
            co_await linger_close(s);
        co_return;
    }
    core::stream_ptr stream = std::make_unique<core::tcp_stream>(std::move(s));
    const auto deadline = core::clock::now() + opts_.handshake_timeout;
    if (opts_.tls != nullptr) {
        auto t = core::tls_stream::server(*opts_.tls, std::move(stream));
        auto hs = co_await core::with_timeout(opts_.handshake_timeout, t->handshake());
        if (!hs)
            co_return;
        stream = std::move(t);
    }
    auto left = deadline - core::clock::now();
    if (left < core::clock::duration::zero())
        left = core::clock::duration::zero();
    auto up = co_await core::with_timeout(left, accept_upgrade(*stream, opts_.handshake));
    if (!up) {
        // Refused (already answered): let the answer reach the client before closing.
        if (up.error() == errc::bad_handshake)
            co_await linger_close(*stream);
        co_return; // refused, timed out or gone: this connection only
    }
    session_options so = opts_.session;
    so.deflate = opts_.handshake.deflate;
    so.agreed_deflate = up->deflate;
    session sess(std::move(stream), role::server, std::move(up->prefetched), so);
    if (drain_ != nullptr)
        sess.close_on(drain_->token());
    co_await handler_(sess, *up);
    if (sess.is_open()) {
        auto c = co_await sess.close();
        (void)c;
    }
}

core::task<core::result<std::unique_ptr<session>>> connect(std::string url, connect_options opts) {
    ws_url u;
    if (!parse_url(url, u))
        co_return make_error_code(errc::bad_handshake);
    auto attempt = [&]() -> core::task<core::result<std::unique_ptr<session>>> {
        auto addrs = co_await core::resolve(u.host, u.port);
        if (!addrs)
            co_return addrs.error();
        std::error_code last = make_error_code(core::errc::resolve_failed);
        for (const auto& ep : *addrs) {
            auto c = co_await core::tcp_stream::connect(ep);
            if (!c) {
                last = c.error();
                continue;
            }
            core::stream_ptr s = std::make_unique<core::tcp_stream>(std::move(*c));
            core::tls_context fallback;
            if (u.secure) {
                const core::tls_context* ctx = opts.tls;
                if (ctx == nullptr) {
                    auto made = core::tls_context::client(core::tls_client_options{});
                    if (!made)
                        co_return made.error();
                    fallback = std::move(*made);
                    ctx = &fallback;
                }
                auto t = core::tls_stream::client(*ctx, std::move(s), u.host);
                auto hs = co_await t->handshake();
                if (!hs)
                    co_return hs.error();
                s = std::move(t);
            }
            const bool default_port = u.port == (u.secure ? 443 : 80);
            std::string host = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
            if (!default_port)
                host += ":" + std::to_string(u.port);
            auto up = co_await request_upgrade(*s, host, u.target, opts.handshake);
            if (!up)
                co_return up.error();
            session_options so = opts.session;
            so.deflate = opts.handshake.deflate;
            so.agreed_deflate = up->deflate;
            co_return std::make_unique<session>(std::move(s), role::client,
                                                std::move(up->prefetched), so);
        }
        co_return last;
    };
    co_return co_await core::with_timeout(opts.connect_timeout, attempt());
}

} // namespace coronet::ws
