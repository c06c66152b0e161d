#include <coronet/ws/server.hpp>

#include <coronet/core/error.hpp>
#include <coronet/core/log.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/tls.hpp>
#include <coronet/core/url.hpp>
#include <coronet/core/when.hpp>
#include <coronet/ws/frame.hpp>

#include <testing/backends.hpp>
#include <testing/certs.hpp>
#include <testing/http_client_raw.hpp>
#include <testing/log_capture.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
namespace ct = coronet::testing;
using ct::endpoint_of;
using ct::listen_local;
using ct::raw_client;
using ct::run_on;
using namespace std::chrono_literals;

namespace {

// Every wait below has a bound far above what a loaded machine needs: the tests assert what
// happened, never how long it took.
constexpr std::chrono::milliseconds short_handshake_timeout{200};
constexpr std::chrono::milliseconds generous{10'000};
constexpr auto case_limit = 40s;

/// A valid upgrade request (RFC 6455 §1.2, with the RFC's key).
constexpr std::string_view upgrade_request = "GET /chat HTTP/1.1\r\n"
                                             "Host: 127.0.0.1\r\n"
                                             "Upgrade: websocket\r\n"
                                             "Connection: Upgrade\r\n"
                                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                             "Sec-WebSocket-Version: 13\r\n"
                                             "\r\n";

/// The first 105 bytes of a ClientHello whose record header announces 512.
std::string half_client_hello() {
    std::string h = {0x16, 0x03, 0x01, 0x02,       0x00,        // handshake record, 512 bytes
                     0x01, 0x00, 0x01, char(0xfc), 0x03, 0x03}; // ClientHello, 508, TLS 1.2
    for (int i = 0; i < 94; ++i)
        h.push_back(static_cast<char>(i * 7));
    return h;
}

const core::tls_context& server_tls() {
    static const core::tls_context ctx = [] {
        core::tls_server_options so;
        so.cert_pem = ct::test_certificates().server.cert_pem;
        so.key_pem = ct::test_certificates().server.key_pem;
        auto c = core::tls_context::server(so);
        REQUIRE_MESSAGE(c, c.error().message());
        return std::move(*c);
    }();
    return ctx;
}

/// A client context trusting the test CA (and nothing else).
const core::tls_context& client_tls() {
    static const ct::temp_dir dir;
    static const core::tls_context ctx = [] {
        core::tls_client_options co;
        co.ca_file = dir.write("ca.pem", ct::test_certificates().ca_pem);
        auto c = core::tls_context::client(co);
        REQUIRE_MESSAGE(c, c.error().message());
        return std::move(*c);
    }();
    return ctx;
}

core::task<void> echo(ws::session& s, ws::handshake_info&) {
    for (;;) {
        auto m = co_await s.receive();
        if (!m)
            co_return;
        auto sent = m->is_text() ? co_await s.send_text(m->data)
                                 : co_await s.send_binary(std::as_bytes(std::span(m->data)));
        if (!sent)
            co_return;
    }
}

/// A ws::server with the echo handler on 127.0.0.1:0, serving in a task scope linked to the
/// test's stop token.
class running_server {
public:
    running_server(core::loop& lp, ws::server_options o, core::stop_token parent)
        : listener_(listen_local(lp)), ep_(endpoint_of(listener_)), srv_(echo, o), scope_(parent) {
        scope_.spawn(srv_.serve(listener_));
    }
    /// With another handler.
    running_server(core::loop& lp, ws::server_options o, core::stop_token parent,
                   ws::session_handler handler)
        : listener_(listen_local(lp)), ep_(endpoint_of(listener_)), srv_(std::move(handler), o),
          scope_(parent) {
        scope_.spawn(srv_.serve(listener_));
    }

    ws::server& server() noexcept { return srv_; }
    const core::endpoint& endpoint() const noexcept { return ep_; }
    std::string url(bool secure) const {
        return (secure ? "wss://" : "ws://") + ep_.to_string() + "/chat";
    }

    /// Stops serve() and waits for it and every connection to finish.
    core::task<void> stop() {
        scope_.request_stop();
        co_await scope_.join();
    }

    core::task<raw_client> connect() {
        auto c = co_await raw_client::connect(ep_);
        REQUIRE_MESSAGE(c, c.error().message());
        co_return std::move(*c);
    }

private:
    core::tcp_listener listener_;
    core::endpoint ep_;
    ws::server srv_;
    core::task_scope scope_;
};

/// Runs `body(server)` against a live server, then stops and joins it, also when the body
/// fails.
template <class F>
core::task<void> with_server(core::loop& lp, ws::server_options o, F body) {
    running_server rs(lp, o, co_await core::get_stop_token());
    std::exception_ptr err;
    try {
        co_await body(rs);
    } catch (...) {
        err = std::current_exception();
    }
    co_await rs.stop();
    if (err)
        std::rethrow_exception(err);
    CHECK(rs.server().connections() == 0);
}

/// Waits until `srv` counts `n` connections. The server signals nothing when a connection
/// ends, so this looks again every few milliseconds; false if `limit` ran out first.
core::task<bool> connections_become(const ws::server& srv, std::size_t n,
                                    core::clock::duration limit) {
    const auto deadline = core::clock::now() + limit;
    while (srv.connections() != n) {
        if (core::clock::now() >= deadline)
            co_return false;
        auto slept = co_await core::sleep_for(5ms);
        if (!slept)
            co_return false;
    }
    co_return true;
}

/// How a stalled client's connection ended.
struct drop_seen {
    std::string extra;   ///< bytes the server sent before the end (a silent drop: none)
    std::error_code how; ///< the read's error; timed_out if the server kept the connection
};

core::task<core::result<std::size_t>> read_once(core::stream& s, std::span<std::byte> buf) {
    co_return co_await s.read_some(buf);
}

/// Reads from `s` until the server ends the connection (or `limit` runs out).
core::task<drop_seen> wait_dropped(core::stream& s, core::clock::duration limit) {
    drop_seen seen;
    const auto deadline = core::clock::now() + limit;
    std::byte buf[512];
    for (;;) {
        auto left = deadline - core::clock::now();
        if (left <= core::clock::duration::zero()) {
            seen.how = core::errc::timed_out;
            co_return seen;
        }
        auto n = co_await core::with_timeout(left, read_once(s, buf));
        if (!n) {
            seen.how = n.error();
            co_return seen;
        }
        seen.extra.append(reinterpret_cast<const char*>(buf), *n);
    }
}

/// The TCP connection under `c` was closed by the server (FIN or RST), with nothing said.
void check_tcp_dropped(const drop_seen& d, const char* who) {
    INFO(who, ": ", d.how.message());
    CHECK((d.how == core::errc::end_of_stream || d.how == std::errc::connection_reset));
    CHECK(d.extra.empty());
}

/// A well-behaved client: connects, has one message echoed, closes with 1000.
core::task<void> good_client(std::string url, const core::tls_context* tls, std::string text) {
    ws::connect_options co;
    co.tls = tls;
    co.connect_timeout = generous;
    auto s = co_await ws::connect(std::move(url), co);
    REQUIRE_MESSAGE(s, s.error().message());
    auto sent = co_await (*s)->send_text(text);
    REQUIRE_MESSAGE(sent, sent.error().message());
    auto back = co_await core::with_timeout(generous, (*s)->receive());
    REQUIRE_MESSAGE(back, back.error().message());
    CHECK(back->is_text());
    CHECK(back->data == text);
    auto closed = co_await (*s)->close();
    CHECK(closed);
    CHECK((*s)->close_code() == 1000);
}

core::task<drop_seen> wait_dropped_raw(raw_client& c) {
    co_return co_await wait_dropped(c.stream(), generous);
}

// ---- handshake timeout ---------------------------------------------------------------------

core::task<void> stalled_plain_clients(core::loop& lp) {
    ws::server_options o;
    o.handshake_timeout = short_handshake_timeout;
    co_await with_server(lp, o, [](running_server& rs) -> core::task<void> {
        auto silent = co_await rs.connect();
        auto half = co_await rs.connect();
        auto sent = co_await half.send(std::string(upgrade_request.substr(0, 50)));
        REQUIRE(sent);
        auto [silent_end, half_end, good] = co_await core::when_all(
            wait_dropped_raw(silent), wait_dropped_raw(half),
            good_client(rs.url(false), nullptr, "served while two clients stall"));
        (void)good;
        check_tcp_dropped(silent_end, "a client that sends nothing");
        check_tcp_dropped(half_end, "a client that sends half a request");
        const bool all_gone = co_await connections_become(rs.server(), 0, generous);
        CHECK(all_gone);
    });
}

/// A TLS client that completes the TLS handshake and then sends no upgrade request.
core::task<drop_seen> tls_then_silence(core::endpoint ep) {
    auto tcp = co_await core::tcp_stream::connect(ep);
    REQUIRE(tcp);
    auto t = core::tls_stream::client(
        client_tls(), std::make_unique<core::tcp_stream>(std::move(*tcp)), "127.0.0.1");
    auto hs = co_await core::with_timeout(generous, t->handshake());
    REQUIRE_MESSAGE(hs, hs.error().message());
    co_return co_await wait_dropped(*t, generous);
}

core::task<void> stalled_tls_clients(core::loop& lp) {
    ws::server_options o;
    o.handshake_timeout = short_handshake_timeout;
    o.tls = &server_tls();
    co_await with_server(lp, o, [](running_server& rs) -> core::task<void> {
        auto silent = co_await rs.connect();
        auto half_hello = co_await rs.connect();
        auto sent = co_await half_hello.send(half_client_hello());
        REQUIRE(sent);
        auto [silent_end, half_end, tls_end, good] = co_await core::when_all(
            wait_dropped_raw(silent), wait_dropped_raw(half_hello), tls_then_silence(rs.endpoint()),
            good_client(rs.url(true), &client_tls(), "served over TLS while three clients stall"));
        (void)good;
        check_tcp_dropped(silent_end, "a client that sends nothing");
        check_tcp_dropped(half_end, "a client that sends half a ClientHello");
        // Dropped without close_notify: end of stream or OpenSSL's "unexpected eof".
        INFO("a TLS client that sends no upgrade request: ", tls_end.how.message());
        CHECK(tls_end.how != core::errc::timed_out);
        CHECK(tls_end.extra.empty());
        const bool all_gone = co_await connections_become(rs.server(), 0, generous);
        CHECK(all_gone);
    });
}

core::task<void> slow_but_in_time(core::loop& lp) {
    ws::server_options o;
    o.handshake_timeout = 60s; // never reached here
    co_await with_server(lp, o, [](running_server& rs) -> core::task<void> {
        auto c = co_await rs.connect();
        const std::size_t split = 50;
        auto first = co_await c.send(std::string(upgrade_request.substr(0, split)));
        REQUIRE(first);
        // A pause in the middle of the request does not end the connection...
        auto end = co_await c.wait_end(300ms);
        CHECK(end.how == core::errc::timed_out);
        CHECK(end.extra.empty());
        // ...and the rest completes the handshake.
        auto rest = co_await c.send(std::string(upgrade_request.substr(split)));
        REQUIRE(rest);
        auto r = co_await c.read_response(false, generous);
        REQUIRE_MESSAGE(r, r.error().message());
        CHECK(r->status == 101);
        CHECK(r->header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        CHECK(rs.server().connections() == 1);
    });
}

// ---- refusals ------------------------------------------------------------------------------

core::task<void> oversized_request(core::loop& lp) {
    ws::server_options o;
    o.handshake.max_request_bytes = 256;
    co_await with_server(lp, o, [](running_server& rs) -> core::task<void> {
        auto c = co_await rs.connect();
        std::string request(upgrade_request);
        request.insert(request.find("\r\n") + 2, "X-Padding: " + std::string(400, 'p') + "\r\n");
        // The server may answer and close before it read everything: only the answer counts.
        (void)co_await c.send(std::move(request));
        auto r = co_await c.read_response(false, generous);
        REQUIRE_MESSAGE(r, r.error().message());
        CHECK(r->status == 431);
        CHECK_FALSE(r->has_header("sec-websocket-accept"));
        auto end = co_await c.wait_end(generous);
        CHECK(end.closed());
        const bool all_gone = co_await connections_become(rs.server(), 0, generous);
        CHECK(all_gone);
        // The server goes on: a good client is served.
        co_await good_client(rs.url(false), nullptr, "after a 431");
    });
}

core::task<void> bad_version(core::loop& lp) {
    co_await with_server(lp, {}, [](running_server& rs) -> core::task<void> {
        auto c = co_await rs.connect();
        std::string request(upgrade_request);
        request.replace(request.find("Version: 13"), 11, "Version: 8");
        auto sent = co_await c.send(std::move(request));
        REQUIRE(sent);
        auto r = co_await c.read_response(false, generous);
        REQUIRE_MESSAGE(r, r.error().message());
        CHECK(r->status == 426);
        CHECK(r->header("sec-websocket-version") == "13");
        CHECK_FALSE(r->has_header("sec-websocket-accept"));
        auto end = co_await c.wait_end(generous);
        CHECK(end.closed());
        const bool all_gone = co_await connections_become(rs.server(), 0, generous);
        CHECK(all_gone);
    });
}

core::task<void> over_max_connections(core::loop& lp) {
    ws::server_options o;
    o.max_connections = 1;
    co_await with_server(lp, o, [](running_server& rs) -> core::task<void> {
        ws::connect_options co;
        co.connect_timeout = generous;
        auto first = co_await ws::connect(rs.url(false), co);
        REQUIRE_MESSAGE(first, first.error().message());
        CHECK(rs.server().connections() == 1);

        auto excess = co_await rs.connect();
        // The 503 goes out before the request is read; the send may meet a closed socket.
        (void)co_await excess.send(std::string(upgrade_request));
        auto r = co_await excess.read_response(false, generous);
        REQUIRE_MESSAGE(r, r.error().message());
        CHECK(r->status == 503);
        CHECK(r->header_has_token("connection", "close"));
        CHECK_FALSE(r->has_header("sec-websocket-accept"));
        auto end = co_await excess.wait_end(generous);
        CHECK(end.closed());

        // The admitted session is unaffected and still counted alone.
        auto sent = co_await (*first)->send_text("still here");
        REQUIRE(sent);
        auto back = co_await core::with_timeout(generous, (*first)->receive());
        REQUIRE_MESSAGE(back, back.error().message());
        CHECK(back->data == "still here");
        const bool only_first = co_await connections_become(rs.server(), 1, generous);
        CHECK(only_first);
        auto closed = co_await (*first)->close();
        CHECK(closed);
        const bool slot_free = co_await connections_become(rs.server(), 0, generous);
        CHECK(slot_free);
        // With the slot free again, the next client is admitted.
        co_await good_client(rs.url(false), nullptr, "admitted once the slot is free");
    });
}

// Graceful shutdown: a live session is sent 1001 and its client sees it; serve() returns
// well within the grace period because the client answers the close.
core::task<void> shutdown_says_going_away(core::loop& lp) {
    ws::server_options o;
    o.shutdown_grace = 30s;
    running_server rs(lp, o, co_await core::get_stop_token());
    ws::connect_options co; // named: g++ 12 destroys a braced temporary coroutine argument twice
    auto c = co_await ws::connect(rs.url(false), co);
    REQUIRE(c);
    ws::session& client = **c;
    REQUIRE(co_await client.send_text("before shutdown"));
    auto echoed = co_await client.receive();
    REQUIRE(echoed);
    core::task_scope reader;
    std::uint16_t seen = 0;
    reader.spawn([](ws::session& cl, std::uint16_t& code) -> core::task<void> {
        auto m = co_await cl.receive(); // answers the server's close
        CHECK_FALSE(m);
        code = cl.close_code();
    }(client, seen));
    const auto t0 = core::clock::now();
    co_await rs.stop();
    co_await reader.join();
    CHECK(seen == 1001);
    CHECK(client.close_reason() == "going away");
    CHECK(rs.server().connections() == 0);
    // Not a timing assertion on the code: the grace period (30 s) bounds the case limit; the
    // client's answer ended it long before.
    CHECK(core::clock::now() - t0 < 20s);
}

// permessage-deflate through ws::server and ws::connect: negotiated when both enable it,
// compressed messages echo, and nothing is negotiated when either side leaves it off.
core::task<void> deflate_end_to_end(core::loop& lp) {
    for (bool server_on : {true, false}) {
        for (bool client_on : {true, false}) {
            CAPTURE(server_on);
            CAPTURE(client_on);
            ws::server_options o;
            o.handshake.deflate.enabled = server_on;
            running_server rs(lp, o, co_await core::get_stop_token());
            ws::connect_options co;
            co.handshake.deflate.enabled = client_on;
            co.handshake.deflate.client_max_window_bits = 10;
            auto c = co_await ws::connect(rs.url(false), co);
            REQUIRE(c);
            const auto& agreed = (*c)->compression();
            CHECK(agreed.has_value() == (server_on && client_on));
            if (agreed)
                CHECK(agreed->client_max_window_bits == 10);
            const std::string big(100000, 'q');
            for (int i = 0; i < 20; ++i) {
                const std::string msg = i % 2 == 0 ? big : "small message " + std::to_string(i);
                REQUIRE(co_await (*c)->send_text(msg));
                auto m = co_await (*c)->receive();
                REQUIRE(m);
                CHECK(m->data == msg);
            }
            CHECK(co_await (*c)->close());
            co_await rs.stop();
        }
    }
}

// ---- request smuggling through the upgrade (issue 13, item 5) ----------------------------

/// A masked client text frame (RFC 6455 §5.3).
std::string masked_text_frame(std::string_view text, std::uint32_t key) {
    std::byte header[14];
    std::size_t n = ws::encode_header(header, ws::opcode::text, true, text.size(), true, key);
    std::string frame(reinterpret_cast<const char*>(header), n);
    std::string payload(text);
    ws::apply_mask(std::as_writable_bytes(std::span(payload)), key);
    return frame + payload;
}

/// upgrade_request with `fields` added before the blank line.
std::string upgrade_request_with(std::string_view fields) {
    std::string r(upgrade_request.substr(0, upgrade_request.size() - 2));
    return r + std::string(fields) + "\r\n";
}

core::task<void> upgrade_with_body(core::loop& lp) {
    co_await with_server(lp, {}, [](running_server& rs) -> core::task<void> {
        const std::string frame = masked_text_frame("smuggled", 0x0badf00d);
        REQUIRE(frame.size() == 14);
        const std::string with_length = upgrade_request_with("Content-Length: 14\r\n") + frame;
        const std::string chunked = upgrade_request_with("Transfer-Encoding: chunked\r\n") +
                                    "e\r\n" + frame + "\r\n0\r\n\r\n";
        for (const std::string& request : {with_length, chunked}) {
            CAPTURE(request);
            auto c = co_await rs.connect();
            (void)co_await c.send(request);
            auto r = co_await c.read_response(false, generous);
            REQUIRE_MESSAGE(r, r.error().message());
            CHECK(r->status == 400);
            CHECK(r->body.find("body") != std::string::npos);
            CHECK_FALSE(r->has_header("sec-websocket-accept"));
            // Refused and closed: the body was never read as a frame (nothing is echoed).
            auto end = co_await c.wait_end(generous);
            CHECK(end.closed());
            CHECK(end.extra.empty());
        }
        // Content-Length: 0 announces no body: the handshake goes on and the bytes after the
        // head are the first frame.
        auto c = co_await rs.connect();
        auto sent = co_await c.send(upgrade_request_with("Content-Length: 0\r\n") + frame);
        REQUIRE(sent);
        auto r = co_await c.read_response(false, generous);
        REQUIRE_MESSAGE(r, r.error().message());
        REQUIRE(r->status == 101);
        std::vector<std::byte> rest(c.buffered().size());
        if (!rest.empty())
            std::memcpy(rest.data(), c.buffered().data(), rest.size());
        ws::session s(std::move(c.stream_ptr()), ws::role::client, std::move(rest));
        auto m = co_await core::with_timeout(generous, s.receive());
        REQUIRE_MESSAGE(m, m.error().message());
        CHECK(m->data == "smuggled");
        CHECK(co_await s.close());
    });
}

// ---- a peer that never reads (issue 13, item 7) ----------------------------------------------

/// What the flooding handler saw.
struct flood_report {
    std::size_t size = 0;          ///< of each message
    bool prepared = false;         ///< sent as a prepared frame (send_prepared, as the hub does)
    std::size_t sent = 0;          ///< messages written
    std::error_code send_error;    ///< why sending stopped
    std::error_code receive_error; ///< why the concurrent receive() ended
    std::uint16_t close_code = 0;
    bool open_after = true;
};

core::task<void> send_until_failure(ws::session& s, flood_report& rep) {
    const std::string big(rep.size, 'x');
    std::byte head[14];
    const std::size_t head_size = ws::encode_header(head, ws::opcode::binary, true, big.size());
    const core::const_buffer frame[] = {{head, head_size}, std::as_bytes(std::span(big))};
    for (;;) {
        core::result<void> r;
        if (rep.prepared)
            r = co_await s.send_prepared(frame);
        else
            r = co_await s.send_binary(std::as_bytes(std::span(big)));
        if (!r) {
            rep.send_error = r.error();
            co_return;
        }
        ++rep.sent;
    }
}

core::task<void> receive_until_end(ws::session& s, flood_report& rep) {
    auto m = co_await s.receive();
    rep.receive_error = m ? std::error_code() : m.error();
}

core::task<void> flood(ws::session& s, flood_report& rep) {
    (void)co_await core::when_all(send_until_failure(s, rep), receive_until_end(s, rep));
    rep.close_code = s.close_code();
    rep.open_after = s.is_open();
}

core::task<void> never_reading_peer(core::loop& lp, std::size_t message_size, bool prepared) {
    CAPTURE(message_size);
    CAPTURE(prepared);
    ws::server_options o;
    o.session.write_timeout = 200ms;
    flood_report rep;
    rep.size = message_size;
    rep.prepared = prepared;
    const core::stop_token parent = co_await core::get_stop_token();
    ws::session_handler handler = [&rep](ws::session& s, ws::handshake_info&) {
        return flood(s, rep);
    };
    running_server rs(lp, o, parent, std::move(handler));
    auto c = co_await rs.connect();
    REQUIRE(co_await c.send(std::string(upgrade_request)));
    auto r = co_await c.read_response(false, generous);
    REQUIRE_MESSAGE(r, r.error().message());
    REQUIRE(r->status == 101);
    // The peer reads nothing more. The sends fill the socket buffers, one waits past the write
    // timeout, and the session ends: far below "forever" (generous is only the test's bound).
    const bool ended = co_await connections_become(rs.server(), 0, generous);
    CHECK(ended);
    CHECK(rep.send_error == core::errc::timed_out);
    CHECK(rep.receive_error == core::errc::timed_out);
    CHECK(rep.close_code == 1006);
    CHECK_FALSE(rep.open_after);
    co_await rs.stop();
}

core::task<void> never_reading_peers(core::loop& lp) {
    // Large messages take the write path in pieces; small ones are first tried at once; a
    // prepared frame (the hub's) is started through the ring on io_uring, with a deadline.
    co_await never_reading_peer(lp, 1 << 20, false);
    co_await never_reading_peer(lp, 512, false);
    co_await never_reading_peer(lp, 512, true);
}

// ---- why serving stopped (issue 13, item 9) --------------------------------------------------

using coronet::testing::capture_sink;
using coronet::testing::sink_installed;

core::task<void> stop_is_logged(core::loop& lp) {
    capture_sink sink;
    sink_installed on(sink);
    running_server rs(lp, {}, co_await core::get_stop_token());
    co_await rs.stop();
    REQUIRE(sink.lines.size() == 1);
    CHECK(sink.lines[0].first == core::log_level::info);
    CHECK(sink.lines[0].second.find("stop requested") != std::string::npos);
}

core::task<void> serve_and_flag(ws::server& srv, core::tcp_listener& l, bool& returned) {
    co_await srv.serve(l);
    returned = true;
}

core::task<void> listener_failure_is_logged(core::loop& lp) {
    capture_sink sink;
    sink_installed on(sink);
    core::tcp_listener l = listen_local(lp);
    ws::server srv(echo, {});
    bool returned = false;
    core::task_scope scope(co_await core::get_stop_token());
    scope.spawn(serve_and_flag(srv, l, returned));
    // A listening socket shut down for reading fails every accept with EINVAL.
    REQUIRE(::shutdown(l.native_handle(), SHUT_RD) == 0);
    co_await scope.join(); // serve() returns by itself: nobody asked it to stop
    CHECK(returned);
    REQUIRE(sink.lines.size() == 1);
    CHECK(sink.lines[0].first == core::log_level::error);
    CHECK(sink.lines[0].second.find(std::make_error_code(std::errc::invalid_argument).message()) !=
          std::string::npos);
}

// ---- ws::connect and its URL (issue 14: core::url, core::connect) ---------------------------

core::task<void> malformed_urls_fail_with_url_errors(core::loop&) {
    const std::vector<std::pair<std::string, core::url_errc>> cases = {
        {"http://127.0.0.1/", core::url_errc::bad_scheme},
        {"127.0.0.1/chat", core::url_errc::bad_scheme},
        {"ws://[::1/chat", core::url_errc::bad_host},
        {"ws://user@127.0.0.1/", core::url_errc::bad_host},
        {"ws://::1/", core::url_errc::bad_host},
        {"ws://127.0.0.1:0/", core::url_errc::bad_port},
        {"wss://127.0.0.1:70000/", core::url_errc::bad_port}};
    for (const auto& [text, why] : cases) {
        CAPTURE(text);
        ws::connect_options co;
        co.connect_timeout = generous;
        auto s = co_await ws::connect(text, co);
        REQUIRE_FALSE(s);
        CHECK(s.error() == why);
        CHECK(s.error() != ws::errc::bad_handshake);
    }
}

/// Answers with the request's target and Host, then closes.
core::task<void> tell_target(ws::session& s, ws::handshake_info& info) {
    (void)co_await s.send_text(std::string(info.target()) + " " + std::string(info.header("host")));
}

core::task<void> connect_by_url(core::loop& lp, bool secure) {
    ws::server_options o;
    o.tls = secure ? &server_tls() : nullptr;
    o.keep_headers = {"Host"};
    running_server rs(lp, o, co_await core::get_stop_token(), tell_target);
    const std::string authority = "localhost:" + std::to_string(rs.endpoint().port());
    ws::connect_options co;
    co.tls = &client_tls();
    co.connect_timeout = generous;
    // The fragment is never sent; the query is; the port is named since it is not the default.
    auto s =
        co_await ws::connect((secure ? "wss://" : "ws://") + authority + "/chat?room=1#top", co);
    REQUIRE_MESSAGE(s, s.error().message());
    auto m = co_await core::with_timeout(generous, (*s)->receive());
    REQUIRE_MESSAGE(m, m.error().message());
    CHECK(m->data == "/chat?room=1 " + authority);
    // Read on to the server's close frame and answer it: otherwise the server's session waits
    // its close_timeout (5 s) for the answer before the server can stop.
    auto end = co_await core::with_timeout(generous, (*s)->receive());
    REQUIRE_FALSE(end);
    CHECK(end.error() == ws::errc::closed);
    co_await rs.stop();
}

core::task<void> connect_plain_by_url(core::loop& lp) {
    co_await connect_by_url(lp, false);
}

core::task<void> connect_tls_by_url(core::loop& lp) {
    co_await connect_by_url(lp, true);
}

} // namespace

#define WS_SERVER_CASE(name, body)                                                                 \
    TEST_CASE_TEMPLATE(name, B, CORONET_BACKENDS) {                                                \
        CORONET_REQUIRE_BACKEND(B);                                                                \
        run_on<B>([](core::loop& lp) { return body(lp); }, case_limit);                            \
    }

TEST_SUITE("ws.server") {
    WS_SERVER_CASE("graceful shutdown sends live sessions 1001 going away",
                   shutdown_says_going_away)
    WS_SERVER_CASE(
        "permessage-deflate is negotiated by ws::server and ws::connect only when both enable it",
        deflate_end_to_end)
    WS_SERVER_CASE("clients that stall before or inside the upgrade request are dropped after "
                   "handshake_timeout while a good client echoes",
                   stalled_plain_clients)
    WS_SERVER_CASE("TLS clients that stall before or inside the ClientHello or before the "
                   "upgrade request are dropped after handshake_timeout while a good wss client "
                   "echoes",
                   stalled_tls_clients)
    WS_SERVER_CASE("a pause inside the upgrade request within handshake_timeout keeps the "
                   "connection and the handshake completes",
                   slow_but_in_time)
    WS_SERVER_CASE("a request over max_request_bytes gets 431 and the connection closes",
                   oversized_request)
    WS_SERVER_CASE("a request with Sec-WebSocket-Version 8 gets 426 naming version 13", bad_version)
    WS_SERVER_CASE("a connection over max_connections gets 503 and the admitted one goes on",
                   over_max_connections)
    WS_SERVER_CASE("an upgrade request with a Content-Length or chunked body gets 400 and its "
                   "body is never read as a frame while Content-Length 0 is accepted",
                   upgrade_with_body)
    WS_SERVER_CASE("a peer that never reads makes a send fail with timed_out after write_timeout "
                   "and the session ends",
                   never_reading_peers)
    WS_SERVER_CASE("serve logs one line when it is asked to stop", stop_is_logged)
    WS_SERVER_CASE("ws::connect refuses a malformed URL or another scheme with core's url error",
                   malformed_urls_fail_with_url_errors)
    WS_SERVER_CASE("ws::connect to a ws:// URL sends its target without the fragment and Host "
                   "with the port",
                   connect_plain_by_url)
    WS_SERVER_CASE("ws::connect to a wss:// URL verifies the certificate against the URL's host",
                   connect_tls_by_url)
    WS_SERVER_CASE("serve logs the listener's error once when accepting fails and returns",
                   listener_failure_is_logged)
} // TEST_SUITE
