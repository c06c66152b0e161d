#include <coronet/http_ws/upgrade_route.hpp>

#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/tls.hpp>
#include <coronet/http/parser.hpp>
#include <coronet/http/server.hpp>
#include <coronet/http_ws/upgrade_request.hpp>
#include <coronet/ws/deflate.hpp>
#include <coronet/ws/error.hpp>
#include <coronet/ws/frame.hpp>
#include <coronet/ws/handshake.hpp>
#include <coronet/ws/server.hpp>

#include <testing/backends.hpp>
#include <testing/certs.hpp>
#include <testing/http_client_raw.hpp>
#include <testing/run_bounded.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace core = coronet::core;
namespace http = coronet::http;
namespace ws = coronet::ws;
namespace http_ws = coronet::http_ws;
namespace ct = coronet::testing;
using ct::endpoint_of;
using ct::listen_local;
using ct::raw_client;
using ct::raw_response;
using ct::run_on;
using namespace std::chrono_literals;

namespace {

// Every wait has a bound far above what a loaded machine needs: the tests assert what happened,
// never how long it took.
constexpr auto case_limit = 40s;
constexpr std::chrono::milliseconds generous{10'000};

// ---- readiness signal ------------------------------------------------------------------------

core::task<core::result<void>> sleep_task(core::clock::duration d) {
    co_return co_await core::sleep_for(d);
}

/// A one-shot signal a handler sets and a test waits on (bounded, cancellable).
struct event {
    bool fired = false;
    core::stop_source* waiting = nullptr;
    void set() noexcept {
        fired = true;
        if (waiting != nullptr)
            waiting->request_stop();
    }
};

/// True once `e` is set; false if `timeout` ran out first.
core::task<bool> wait_for(event& e, core::clock::duration timeout) {
    if (e.fired)
        co_return true;
    core::stop_source src(co_await core::get_stop_token());
    e.waiting = &src;
    auto t = sleep_task(timeout);
    t.handle().promise().set_token(src.token());
    (void)co_await std::move(t);
    e.waiting = nullptr;
    co_return e.fired;
}

// ---- routes ----------------------------------------------------------------------------------

/// What the routes report to the test.
struct probe {
    // /events/:id (event style)
    std::string event_id;
    int opens = 0;
    int messages = 0;
    std::uint16_t close_code = 0;
    std::string close_reason;
    event event_closed;
    // /throw
    event thrown;
};

/// The per-connection state /rooms/... attaches in its admission check.
struct member {
    std::string session_id;
    explicit member(std::string id) : session_id(std::move(id)) {}
    member(member&&) = default;
    member(const member&) = delete; // move-only state works
};

core::task<core::result<void>> send_back(ws::session& s, const ws::message& m) {
    if (m.is_text())
        co_return co_await s.send_text(m.data);
    co_return co_await s.send_binary(std::as_bytes(std::span(m.data)));
}

core::task<void> send_back_ignoring_result(ws::session& s, ws::message& m) {
    auto sent = co_await send_back(s, m);
    (void)sent;
}

core::task<void> echo(ws::session& s, http_ws::upgrade_request&) {
    for (;;) {
        auto m = co_await s.receive();
        if (!m)
            co_return;
        auto sent = co_await send_back(s, *m);
        if (!sent)
            co_return;
    }
}

/// Tells the client everything the handler got, then echoes.
core::task<void> describe(ws::session& s, http_ws::upgrade_request& up) {
    const member* who = up.state<member>();
    std::string d =
        "room=" + std::string(up.param("room")) + " user=" + std::string(up.param("user")) +
        " cookie=" + std::string(up.header("cookie")) +
        " other=" + std::string(up.header("x-other")) +
        " kept=" + std::to_string(up.headers().size()) + " proto=" + std::string(up.subprotocol()) +
        " path=" + std::string(up.path()) + " query=" + std::string(up.query()) +
        " state=" + (who != nullptr ? who->session_id : std::string("none"));
    auto sent = co_await s.send_text(d);
    if (!sent)
        co_return;
    co_await echo(s, up);
}

core::task<std::optional<http::response>> admit_members(http::request& req,
                                                        http_ws::upgrade_request& up) {
    std::string_view cookie = req.header("cookie");
    if (cookie.substr(0, 4) != "sid=")
        co_return http::response::text("who are you?\n", 401);
    up.emplace_state<member>(std::string(cookie.substr(4)));
    co_return std::nullopt;
}

core::task<http::reply> plain_page(http::request&) {
    co_return http::response::text("plain page");
}

/// The per-connection state of the event-style route: which /events/:id it was opened as.
struct event_visit {
    explicit event_visit(ws::handshake_info& info) : id(info.param("id")) {}
    std::string id;
};

/// The event style: records every event into the probe and echoes.
auto recorder(probe& p) {
    return ws::events<>()
        .with_state<event_visit>()
        .on_open([&p](auto& c) {
            ++p.opens;
            p.event_id = c.state.id;
        })
        .on_message([&p](auto& c, ws::message& m) {
            ++p.messages;
            return send_back_ignoring_result(c.conn, m);
        })
        .on_close([&p](auto&, std::uint16_t code, std::string_view reason) {
            p.close_code = code;
            p.close_reason = std::string(reason);
            p.event_closed.set();
        });
}

http::router make_routes(probe& p) {
    http::router r;
    r.get("/", [](http::request&) -> core::task<http::reply> {
        co_return http::response::text("home");
    });
    r.get("/echo", http_ws::upgrade_route(echo, {}, plain_page));
    r.get("/only-ws", http_ws::upgrade_route(echo));

    http_ws::upgrade_options guarded;
    guarded.handshake.allowed_origins = {"https://good.example"};
    r.get("/guarded", http_ws::upgrade_route(echo, guarded));

    http_ws::upgrade_options rooms;
    rooms.keep_headers = {"Cookie"};
    rooms.handshake.subprotocols = {"chat.v1", "chat.v2"};
    rooms.admit = admit_members;
    r.get("/rooms/:room/users/:user", http_ws::upgrade_route(describe, rooms));

    http_ws::upgrade_options compressed;
    compressed.handshake.deflate.enabled = true;
    r.get("/deflate", http_ws::upgrade_route(echo, compressed));

    r.get("/events/:id", http_ws::upgrade_route(recorder(p)));

    r.get("/throw", http_ws::upgrade_route(
                        [&p](ws::session& s, http_ws::upgrade_request&) -> core::task<void> {
                            auto m = co_await s.receive();
                            (void)m;
                            p.thrown.set();
                            throw std::runtime_error("a session handler failing on purpose");
                        }));
    return r;
}

// ---- server fixture --------------------------------------------------------------------------

const core::tls_context& server_tls() {
    static const core::tls_context ctx = [] {
        core::tls_server_options so;
        so.cert_pem = ct::test_certificates().server.cert_pem;
        so.key_pem = ct::test_certificates().server.key_pem;
        so.alpn = {"http/1.1"};
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

http::server_options test_options() {
    http::server_options o;
    o.header_timeout = generous;
    o.idle_timeout = generous;
    o.write_timeout = generous;
    o.shutdown_grace = generous;
    return o;
}

/// An http::server on 127.0.0.1:0 serving in a task scope linked to the test's stop token.
class running_server {
public:
    running_server(core::loop& lp, const http::router& r, http::server_options o,
                   core::stop_token parent)
        : listener_(listen_local(lp)), ep_(endpoint_of(listener_)), srv_(r, o), scope_(parent),
          secure_(o.tls != nullptr) {
        scope_.spawn(serve());
    }

    http::server& server() noexcept { return srv_; }
    bool returned() const noexcept { return returned_; }
    std::string url(std::string_view target) const {
        return (secure_ ? "wss://" : "ws://") + ep_.to_string() + std::string(target);
    }
    /// Starts the graceful shutdown (what a signal would do).
    void stop() noexcept { scope_.request_stop(); }
    /// Waits for serve() and every connection to finish.
    core::task<void> join() { co_await scope_.join(); }

    core::task<raw_client> connect() {
        auto c = co_await raw_client::connect(ep_);
        REQUIRE_MESSAGE(c, c.error().message());
        co_return std::move(*c);
    }

private:
    core::task<void> serve() {
        co_await srv_.serve(listener_);
        returned_ = true;
    }

    core::tcp_listener listener_;
    core::endpoint ep_;
    http::server srv_;
    core::task_scope scope_;
    bool secure_;
    bool returned_ = false;
};

/// Runs `body(server, probe)` against a live server, then shuts it down gracefully and checks
/// serve() returned; the server is stopped and joined even when the body fails.
template <class F>
core::task<void> with_server(core::loop& lp, http::server_options o, F body) {
    probe p;
    http::router routes = make_routes(p);
    running_server rs(lp, routes, o, co_await core::get_stop_token());
    std::exception_ptr err;
    try {
        co_await body(rs, p);
    } catch (...) {
        err = std::current_exception();
    }
    rs.stop();
    co_await rs.join();
    if (err)
        std::rethrow_exception(err);
    CHECK(rs.returned());
    CHECK(rs.server().connections() == 0);
}

// ---- client helpers --------------------------------------------------------------------------

core::task<std::unique_ptr<ws::session>> open(std::string url, ws::connect_options co) {
    co.connect_timeout = generous;
    auto s = co_await ws::connect(std::move(url), co);
    REQUIRE_MESSAGE(s, s.error().message());
    co_return std::move(*s);
}

core::task<std::unique_ptr<ws::session>> open(std::string url) {
    return open(std::move(url), ws::connect_options());
}

core::task<ws::message> receive(ws::session& s) {
    auto m = co_await core::with_timeout(generous, s.receive());
    REQUIRE_MESSAGE(m, m.error().message());
    co_return std::move(*m);
}

/// Sends `text` and expects it back.
core::task<void> expect_echo(ws::session& s, std::string text) {
    auto sent = co_await s.send_text(text);
    REQUIRE_MESSAGE(sent, sent.error().message());
    ws::message m = co_await receive(s);
    CHECK(m.is_text());
    CHECK(m.data == text);
}

core::task<void> close_normally(ws::session& s) {
    auto c = co_await core::with_timeout(generous, s.close());
    CHECK_MESSAGE(c, c.error().message());
    CHECK(s.close_code() == 1000);
}

/// An upgrade request for `target` with the RFC 6455 §1.3 key; `extra` adds or replaces nothing,
/// it is appended before the blank line.
std::string upgrade_request(std::string_view target, std::string_view extra = "",
                            std::string_view version = "13", bool with_key = true,
                            std::string_view method = "GET", std::string_view http = "1.1") {
    std::string r = std::string(method) + " " + std::string(target) + " HTTP/" + std::string(http) +
                    "\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Version: " +
                    std::string(version) + "\r\n";
    if (with_key)
        r += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    r += std::string(extra) + "\r\n";
    return r;
}

std::string get(std::string_view target) {
    return "GET " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
}

/// Sends `bytes` and reads one response (REQUIREs both).
core::task<raw_response> exchange(raw_client& c, std::string bytes, bool head_request = false) {
    auto s = co_await c.send(std::move(bytes));
    REQUIRE_MESSAGE(s, s.error().message());
    auto r = co_await c.read_response(head_request, generous);
    REQUIRE_MESSAGE(r, r.error().message());
    co_return std::move(*r);
}

/// A masked client text frame (RFC 6455 §5.3).
std::string masked_text_frame(std::string_view text, std::uint32_t key) {
    std::byte header[14];
    std::size_t n = ws::encode_header(header, ws::opcode::text, true, text.size(), true, key);
    std::string frame(reinterpret_cast<const char*>(header), n);
    std::string payload(text);
    ws::apply_mask(std::as_writable_bytes(std::span(payload)), key);
    return frame + payload;
}

// ---- cases -----------------------------------------------------------------------------------

core::task<void> upgrade_echo_close(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto s = co_await open(rs.url("/echo"));
        CHECK(rs.server().connections() == 1); // the session runs inside the http server
        co_await expect_echo(*s, "hello");
        std::string bin = {'\0', '\x01', '\xff'};
        auto sent = co_await s->send_binary(std::as_bytes(std::span(bin)));
        REQUIRE(sent);
        ws::message m = co_await receive(*s);
        CHECK_FALSE(m.is_text());
        CHECK(m.data == bin);
        co_await close_normally(*s);
    });
}

core::task<void> first_frame_with_request(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        // The upgrade request and the first frame in one write: the frame arrives with the
        // request, so the http server has read it before the takeover.
        raw_response r = co_await exchange(c, upgrade_request("/echo") +
                                                  masked_text_frame("first frame", 0x12345678));
        REQUIRE(r.status == 101);
        CHECK(r.header_has_token("upgrade", "websocket"));
        CHECK(r.header_has_token("connection", "upgrade"));
        CHECK(r.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        CHECK_FALSE(r.has_header("sec-websocket-protocol"));
        CHECK_FALSE(r.has_header("content-length"));
        std::vector<std::byte> rest(c.buffered().size());
        if (!rest.empty())
            std::memcpy(rest.data(), c.buffered().data(), rest.size());
        ws::session s(std::move(c.stream_ptr()), ws::role::client, std::move(rest));
        ws::message m = co_await receive(s);
        CHECK(m.data == "first frame");
        co_await expect_echo(s, "second");
        co_await close_normally(s);
    });
}

core::task<void> rejected_upgrades(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        {
            auto c = co_await rs.connect();
            raw_response r = co_await exchange(c, upgrade_request("/echo", "", "13", false));
            CHECK(r.status == 400);
            CHECK(r.body.find("Sec-WebSocket-Key") != std::string::npos);
            // A refusal is an ordinary HTTP answer: the connection goes on serving HTTP.
            raw_response home = co_await exchange(c, get("/"));
            CHECK(home.status == 200);
            CHECK(home.body == "home");
        }
        {
            auto c = co_await rs.connect();
            raw_response r = co_await exchange(c, upgrade_request("/echo", "", "8"));
            CHECK(r.status == 426);
            CHECK(r.header("sec-websocket-version") == "13");
        }
        {
            auto c = co_await rs.connect();
            raw_response r = co_await exchange(
                c, upgrade_request("/guarded", "Origin: https://evil.example\r\n"));
            CHECK(r.status == 403);
            raw_response ok = co_await exchange(
                c, upgrade_request("/guarded", "Origin: https://good.example\r\n"));
            CHECK(ok.status == 101);
        }
        {
            // POST is the router's business: the route exists for GET only.
            auto c = co_await rs.connect();
            raw_response r = co_await exchange(
                c, upgrade_request("/echo", "Content-Length: 0\r\n", "13", true, "POST"));
            CHECK(r.status == 405);
            CHECK(r.header_has_token("allow", "GET"));
        }
        {
            auto c = co_await rs.connect();
            raw_response r =
                co_await exchange(c, upgrade_request("/echo", "", "13", true, "GET", "1.0"));
            CHECK(r.status == 400);
        }
        {
            // The admission check refuses with its own response.
            auto c = co_await rs.connect();
            raw_response r = co_await exchange(c, upgrade_request("/rooms/a/users/b"));
            CHECK(r.status == 401);
            CHECK(r.body == "who are you?\n");
        }
    });
}

// Issue 13, item 5: the bridge refuses an upgrade request with a body as the standalone server
// does (ws::check_upgrade); http has read the body by its framing, so the connection goes on
// serving HTTP and the body never reaches a session.
core::task<void> upgrade_with_body(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        const std::string frame = masked_text_frame("smuggled", 0x0badf00d);
        REQUIRE(frame.size() == 14);
        const std::string with_length = upgrade_request("/echo", "Content-Length: 14\r\n") + frame;
        const std::string chunked = upgrade_request("/echo", "Transfer-Encoding: chunked\r\n") +
                                    "e\r\n" + frame + "\r\n0\r\n\r\n";
        for (const std::string& request : {with_length, chunked}) {
            CAPTURE(request);
            auto c = co_await rs.connect();
            raw_response r = co_await exchange(c, request);
            CHECK(r.status == 400);
            CHECK(r.body.find("body") != std::string::npos);
            CHECK_FALSE(r.has_header("sec-websocket-accept"));
            // The next bytes on the connection are an HTTP answer, not an echoed frame.
            raw_response home = co_await exchange(c, get("/"));
            CHECK(home.status == 200);
            CHECK(home.body == "home");
        }
        // Content-Length: 0 announces no body: the upgrade goes on, the frame behind the head
        // is the session's first.
        auto c = co_await rs.connect();
        raw_response r =
            co_await exchange(c, upgrade_request("/echo", "Content-Length: 0\r\n") + frame);
        REQUIRE(r.status == 101);
        std::vector<std::byte> rest(c.buffered().size());
        if (!rest.empty())
            std::memcpy(rest.data(), c.buffered().data(), rest.size());
        ws::session s(std::move(c.stream_ptr()), ws::role::client, std::move(rest));
        ws::message m = co_await receive(s);
        CHECK(m.data == "smuggled");
        co_await close_normally(s);
    });
}

core::task<void> plain_requests(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto c = co_await rs.connect();
        raw_response page = co_await exchange(c, get("/echo"));
        CHECK(page.status == 200);
        CHECK(page.body == "plain page");
        raw_response only = co_await exchange(c, get("/only-ws"));
        CHECK(only.status == 426);
        CHECK(only.header_has_token("upgrade", "websocket"));
        CHECK_FALSE(only.body.empty());
        raw_response head =
            co_await exchange(c, "HEAD /only-ws HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", true);
        CHECK(head.status == 426);
        CHECK(head.header_has_token("upgrade", "websocket"));
        // The same keep-alive connection still upgrades.
        raw_response up = co_await exchange(c, upgrade_request("/echo"));
        CHECK(up.status == 101);
    });
}

core::task<void> http_and_session_together(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        auto s = co_await open(rs.url("/echo"));
        co_await expect_echo(*s, "before");
        auto c = co_await rs.connect();
        raw_response home = co_await exchange(c, get("/"));
        CHECK(home.status == 200);
        CHECK(rs.server().connections() == 2);
        co_await expect_echo(*s, "during");
        raw_response again = co_await exchange(c, get("/echo"));
        CHECK(again.body == "plain page");
        co_await close_normally(*s);
    });
}

core::task<void> params_headers_state(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        ws::connect_options co;
        co.handshake.subprotocols = {"chat.v2", "chat.v1"};
        co.handshake.headers = {{"Cookie", "sid=42"}, {"X-Other", "not kept"}};
        auto s = co_await open(rs.url("/rooms/lobby/users/ann?lang=en"), co);
        ws::message d = co_await receive(*s);
        CHECK(d.data == "room=lobby user=ann cookie=sid=42 other= kept=1 proto=chat.v1 "
                        "path=/rooms/lobby/users/ann query=lang=en state=42");
        co_await expect_echo(*s, "still here");
        co_await close_normally(*s);
    });
}

core::task<void> event_style(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe& p) -> core::task<void> {
        auto s = co_await open(rs.url("/events/7"));
        co_await expect_echo(*s, "one");
        co_await expect_echo(*s, "two");
        auto c = co_await core::with_timeout(generous, s->close(4000, std::string("bye")));
        CHECK(c);
        CHECK(s->close_code() == 4000);
        bool closed = co_await wait_for(p.event_closed, generous);
        REQUIRE(closed);
        CHECK(p.event_id == "7");
        CHECK(p.opens == 1);
        CHECK(p.messages == 2);
        CHECK(p.close_code == 4000);
        CHECK(p.close_reason == "bye");
    });
}

core::task<void> throwing_handler(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe& p) -> core::task<void> {
        auto s = co_await open(rs.url("/throw"));
        auto sent = co_await s->send_text("trigger");
        REQUIRE(sent);
        auto m = co_await core::with_timeout(generous, s->receive());
        REQUIRE_FALSE(m);
        CHECK(m.error() == ws::errc::closed);
        CHECK(s->close_code() == 1011);
        CHECK(p.thrown.fired);
        // The server goes on.
        auto again = co_await open(rs.url("/echo"));
        co_await expect_echo(*again, "after");
        co_await close_normally(*again);
    });
}

core::task<void> shutdown_going_away(core::loop& lp) {
    probe p;
    http::router routes = make_routes(p);
    running_server rs(lp, routes, test_options(), co_await core::get_stop_token());
    std::exception_ptr err;
    try {
        auto s = co_await open(rs.url("/echo"));
        co_await expect_echo(*s, "before shutdown");
        rs.stop();
        // The session is told the server is going away long before shutdown_grace runs out
        // (a cancelled session would leave without a close frame: 1006).
        auto m = co_await core::with_timeout(generous, s->receive());
        REQUIRE_FALSE(m);
        CHECK(m.error() == ws::errc::closed);
        CHECK(s->close_code() == 1001);
    } catch (...) {
        err = std::current_exception();
    }
    rs.stop();
    co_await rs.join();
    if (err)
        std::rethrow_exception(err);
    CHECK(rs.returned());
    CHECK(rs.server().connections() == 0);
}

core::task<void> deflate_passed_through(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        ws::deflate_options offer;
        offer.enabled = true;
        const std::string offered =
            "Sec-WebSocket-Extensions: " + ws::deflate_offer(offer) + "\r\n";
        {
            // Off unless the route enables it.
            auto c = co_await rs.connect();
            raw_response r = co_await exchange(c, upgrade_request("/echo", offered));
            CHECK(r.status == 101);
            CHECK_FALSE(r.has_header("sec-websocket-extensions"));
        }
        auto c = co_await rs.connect();
        raw_response r = co_await exchange(c, upgrade_request("/deflate", offered));
        REQUIRE(r.status == 101);
        const std::string answer = r.header("sec-websocket-extensions");
        CHECK(answer.find("permessage-deflate") == 0);
        const std::string_view values[] = {answer};
        auto agreed = ws::accept_deflate_answer(values, offer);
        REQUIRE_MESSAGE(agreed, agreed.error().message());
        REQUIRE(agreed->has_value());
        ws::session_options so;
        so.agreed_deflate = **agreed;
        so.deflate = offer;
        std::vector<std::byte> rest(c.buffered().size());
        if (!rest.empty())
            std::memcpy(rest.data(), c.buffered().data(), rest.size());
        ws::session s(std::move(c.stream_ptr()), ws::role::client, std::move(rest), so);
        // Compressed both ways (over min_size): the server session inflates and deflates it.
        std::string text;
        for (int i = 0; i < 200; ++i)
            text += "compress me " + std::to_string(i % 7) + " ";
        co_await expect_echo(s, text);
        co_await expect_echo(s, "short");
        co_await close_normally(s);
    });
}

// The bridge answers with the verdict's fields as they are (no text parsed back): each of ws's
// fields once and in ws's order, next to http's own framing once.
core::task<void> verdict_fields_answered(core::loop& lp) {
    co_await with_server(lp, test_options(), [](running_server& rs, probe&) -> core::task<void> {
        {
            auto c = co_await rs.connect();
            raw_response r = co_await exchange(c, upgrade_request("/echo", "", "8"));
            CHECK(r.status == 426);
            CHECK(r.header_count("sec-websocket-version") == 1);
            CHECK(r.header("sec-websocket-version") == "13");
            CHECK(r.header_count("content-type") == 1);
            CHECK(r.header_count("content-length") == 1);
            CHECK(r.header_count("connection") <= 1);
            CHECK(r.body == "only Sec-WebSocket-Version 13 is supported\n");
        }
        ws::deflate_options offer;
        offer.enabled = true;
        auto c = co_await rs.connect();
        raw_response r = co_await exchange(
            c, upgrade_request("/deflate",
                               "Sec-WebSocket-Extensions: " + ws::deflate_offer(offer) + "\r\n"));
        REQUIRE(r.status == 101);
        const std::vector<std::string> ws_fields = {"upgrade", "connection", "sec-websocket-accept",
                                                    "sec-websocket-extensions"};
        std::vector<std::string> seen;
        for (const auto& [name, value] : r.headers) {
            std::string lower = name;
            for (char& ch : lower)
                ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            if (std::find(ws_fields.begin(), ws_fields.end(), lower) != ws_fields.end())
                seen.push_back(lower);
        }
        CHECK(seen == ws_fields);
        CHECK(r.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        CHECK(r.header("sec-websocket-extensions").starts_with("permessage-deflate"));
        CHECK_FALSE(r.has_header("content-length"));
        CHECK_FALSE(r.has_header("content-type"));
    });
}

core::task<void> wss_session(core::loop& lp) {
    http::server_options o = test_options();
    o.tls = &server_tls();
    co_await with_server(lp, o, [](running_server& rs, probe&) -> core::task<void> {
        ws::connect_options co;
        co.tls = &client_tls();
        co.handshake.subprotocols = {"chat.v1"};
        co.handshake.headers = {{"Cookie", "sid=tls"}};
        auto s = co_await open(rs.url("/rooms/secure/users/bob"), co);
        ws::message d = co_await receive(*s);
        CHECK(d.data.find("room=secure user=bob") == 0);
        CHECK(d.data.find("state=tls") != std::string::npos);
        co_await expect_echo(*s, "over TLS");
        co_await close_normally(*s);
    });
}

} // namespace

#define HTTP_WS_CASE(name, body)                                                                   \
    TEST_CASE_TEMPLATE(name, B, CORONET_BACKENDS) {                                                \
        CORONET_REQUIRE_BACKEND(B);                                                                \
        run_on<B>([](core::loop& lp) { return body(lp); }, case_limit);                            \
    }

// clang-format off
TEST_SUITE("http_ws.upgrade_route") {
    HTTP_WS_CASE("an upgrade request becomes a session that echoes and closes",
                 upgrade_echo_close)
    HTTP_WS_CASE("a first frame written together with the upgrade request reaches the session",
                 first_frame_with_request)
    HTTP_WS_CASE("rejected upgrades get 400 or 426 or 403 or 405 or 401 as ordinary responses",
                 rejected_upgrades)
    HTTP_WS_CASE("an upgrade request with a Content-Length or chunked body gets 400 and its "
                 "body never reaches a session while Content-Length 0 is accepted",
                 upgrade_with_body)
    HTTP_WS_CASE("a plain GET is served by the route's HTTP handler or answered 426",
                 plain_requests)
    HTTP_WS_CASE("an HTTP request is served while a session runs on the same server",
                 http_and_session_together)
    HTTP_WS_CASE("path parameters and kept headers and subprotocol and state reach the handler",
                 params_headers_state)
    HTTP_WS_CASE("an event-style handler object per connection sees open and messages and close",
                 event_style)
    HTTP_WS_CASE("a session handler that throws closes with 1011 and the server keeps serving",
                 throwing_handler)
    HTTP_WS_CASE("graceful shutdown closes a live session with 1001 going away",
                 shutdown_going_away)
    HTTP_WS_CASE("permessage-deflate is negotiated per the route's handshake options",
                 deflate_passed_through)
    HTTP_WS_CASE("the bridge answers with each field of ws's verdict once and in ws's order",
                 verdict_fields_answered)
    HTTP_WS_CASE("an HTTPS server's upgrade routes give wss sessions", wss_session)
} // clang-format on

TEST_SUITE("http_ws.upgrade_request") {
    TEST_CASE("an upgrade request keeps the target and params and only the headers asked for") {
        const std::string raw =
            "GET /rooms/r1?x=1 HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nUser-Agent: t\r\n"
            "cookie: b=2\r\n\r\n";
        http::request_parser parser;
        REQUIRE(parser.parse(raw) == http::parse_status::complete);
        http::request req(parser.head(), "");
        req.set_params({{"room", "r1"}});
        const std::vector<std::string> keep = {"COOKIE"};
        http_ws::upgrade_request up = http_ws::handshake_info_of(req, keep, "chat");
        CHECK(up.target() == "/rooms/r1?x=1");
        CHECK(up.path() == "/rooms/r1");
        CHECK(up.query() == "x=1");
        CHECK(up.param("room") == "r1");
        CHECK(up.param("nope").empty());
        REQUIRE(up.headers().size() == 2);
        CHECK(up.header("Cookie") == "a=1");
        CHECK(up.headers()[1].second == "b=2");
        CHECK(up.header("user-agent").empty());
        CHECK(up.subprotocol() == "chat");
        CHECK_FALSE(http_ws::is_websocket_upgrade(req));
    }

    TEST_CASE("per-connection state is typed and replaceable and may be move-only") {
        http_ws::upgrade_request up;
        CHECK_FALSE(up.has_state());
        CHECK(up.state<int>() == nullptr);
        up.emplace_state<member>(std::string("s1"));
        REQUIRE(up.state<member>() != nullptr);
        CHECK(up.state<member>()->session_id == "s1");
        CHECK(up.state<int>() == nullptr);
        up.emplace_state<int>(5);
        CHECK(up.state<member>() == nullptr);
        REQUIRE(up.state<int>() != nullptr);
        CHECK(*up.state<int>() == 5);
        http_ws::upgrade_request moved(std::move(up));
        CHECK(*moved.state<int>() == 5);
        moved.reset_state();
        CHECK_FALSE(moved.has_state());
    }

    TEST_CASE("a request is an upgrade attempt with Upgrade websocket or a WebSocket key") {
        auto attempt = [](const std::string& fields) {
            const std::string raw = "GET / HTTP/1.1\r\nHost: h\r\n" + fields + "\r\n";
            http::request_parser parser;
            REQUIRE(parser.parse(raw) == http::parse_status::complete);
            http::request req(parser.head(), "");
            return http_ws::is_websocket_upgrade(req);
        };
        CHECK(attempt("Upgrade: WebSocket\r\nConnection: upgrade\r\n"));
        CHECK(attempt("Upgrade: h2c, websocket\r\n"));
        CHECK(attempt("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        CHECK_FALSE(attempt("Upgrade: h2c\r\nConnection: upgrade\r\n"));
        CHECK_FALSE(attempt("Accept: text/html\r\n"));
    }
}
