#include <coronet/ws/hub.hpp>

#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/ws/attachment_store.hpp>
#include <coronet/ws/server.hpp>

#include <testing/backends.hpp>
#include <testing/run_bounded.hpp>

#include "events_adapter.hpp"
#include "hub_connection_impl.hpp" // detail::frame_ring

#include <doctest/doctest.h>

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace core = coronet::core;
namespace ws = coronet::ws;
using coronet::testing::endpoint_of;
using coronet::testing::listen_local;
using coronet::testing::run_on;
using namespace std::chrono_literals;

namespace {

/// Raises the soft limit on open descriptors to at least `want` (up to the hard limit).
void raise_fd_limit(rlim_t want) {
    ::rlimit rl{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = std::min(want, rl.rlim_max);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &rl) == 0);
    REQUIRE_MESSAGE(rl.rlim_cur >= want, "the hard descriptor limit is too low for this test");
}

/// Parks the test coroutine until a handler reports that something happened (then the test
/// checks its condition again): a readiness signal, never a sleep.
struct notifier {
    std::coroutine_handle<> waiting;
    void notify() {
        if (auto h = std::exchange(waiting, {}))
            core::loop::current()->post([h] { h.resume(); });
    }
    struct awaiter {
        notifier* n;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) noexcept { n->waiting = h; }
        void await_resume() const noexcept {}
    };
    awaiter wait() noexcept { return {this}; }
};

struct close_record {
    std::uint16_t code = 0;
    std::string reason;
};

/// The rooms example's behaviour plus counters: joins the room named by the path, tells the
/// client its id, and forwards each message to the rest of its rooms (or echoes it).
struct room_handler {
    ws::hub* hub = nullptr;
    notifier* note = nullptr;
    bool echo = false;
    std::string auto_request;
    std::string auto_response;
    int opened = 0;
    int messages = 0;
    int pongs = 0;
    int closed = 0;
    std::map<std::uint64_t, close_record> closes;

    void on_open(ws::hub_connection& c) {
        ++opened;
        c.set_meta("path", std::string(c.target()));
        CHECK(c.join(std::string_view(c.target()).substr(1)));
        if (!auto_request.empty())
            c.set_auto_response(auto_request, auto_response);
        CHECK(c.try_send(ws::prepared_message::text("id:" + std::to_string(c.id()))));
        note->notify();
    }
    core::task<void> on_message(ws::hub_connection& c, ws::message& m) {
        ++messages;
        if (echo) {
            auto sent = co_await c.send_text("echo:" + m.data);
            CHECK(sent);
        } else {
            const ws::prepared_message pm(m.type, std::as_bytes(std::span(m.data)));
            for (std::string_view room : c.rooms())
                hub->broadcast_room_except(room, pm, c.id());
        }
        note->notify();
    }
    void on_pong(ws::hub_connection&, std::string_view) {
        ++pongs;
        note->notify();
    }
    void on_close(ws::hub_connection& c, std::uint16_t code, std::string_view reason) {
        CHECK(c.state() == ws::connection_state::closed);
        ++closed;
        closes[c.id()] = {code, std::string(reason)};
        note->notify();
    }
};

/// A ws::server on 127.0.0.1:0 whose sessions all go to one hub, run by `h` (either style).
class hub_server {
public:
    hub_server(core::loop& lp, ws::hub_options o, ws::hub_handler h, core::stop_token parent,
               ws::server_options so)
        : hub_(std::move(o)), listener_(listen_local(lp)), ep_(endpoint_of(listener_)),
          handler_(std::move(h)), srv_(
                                      [this](ws::session& s, ws::handshake_info& info) {
                                          return hub_.serve(s, std::move(info), handler_);
                                      },
                                      std::move(so)),
          scope_(parent) {
        scope_.spawn(srv_.serve(listener_));
    }

    ws::hub& hub() noexcept { return hub_; }
    std::string url(const std::string& path) const { return "ws://" + ep_.to_string() + path; }

    /// Closes what is left, stops the server and waits for every connection.
    core::task<void> stop() {
        co_await hub_.close_all(1001, "test over");
        scope_.request_stop();
        co_await scope_.join();
    }

    /// Stops the server alone (its graceful stop sends 1001 to every session).
    core::task<void> stop_server() {
        scope_.request_stop();
        co_await scope_.join();
    }

private:
    ws::hub hub_;
    core::tcp_listener listener_;
    core::endpoint ep_;
    ws::hub_handler handler_;
    ws::server srv_;
    core::task_scope scope_;
};

core::task<std::unique_ptr<ws::session>> connect_client(std::string url) {
    ws::connect_options o;
    auto c = co_await ws::connect(std::move(url), o);
    REQUIRE_MESSAGE(c, c.error().message());
    co_return std::move(*c);
}

/// The first message of every room_handler connection: "id:<id>".
core::task<std::uint64_t> read_id(ws::session& c) {
    auto m = co_await c.receive();
    REQUIRE(m);
    REQUIRE(m->data.starts_with("id:"));
    co_return std::stoull(m->data.substr(3));
}

/// Reads until the peer is gone, answering pings on the way.
core::task<void> drain(ws::session& c) {
    for (;;) {
        auto m = co_await c.receive();
        if (!m)
            co_return;
    }
}

int sequence_of(const std::string& data) {
    return std::stoi(data.substr(0, data.find(':')));
}

// ---- 1,000 connections in four rooms ------------------------------------------------------

core::task<void> rooms_and_broadcast(core::loop& lp) {
    constexpr int n = 1000;
    raise_fd_limit(2 * n + 64);
    notifier note;
    room_handler h;
    h.note = &note;
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(lp, ws::hub_options{}, coronet::testing::events_of<ws::hub_connection>(h), tok,
                   ws::server_options{});
    ws::hub& hub = srv.hub();
    h.hub = &hub;

    std::vector<std::unique_ptr<ws::session>> clients;
    std::vector<std::uint64_t> ids;
    for (int i = 0; i < n; ++i) {
        clients.push_back(co_await connect_client(srv.url("/r" + std::to_string(i % 4))));
        ids.push_back(co_await read_id(*clients.back()));
    }
    CHECK(hub.size() == n);
    CHECK(hub.stats().accepted == n);
    const std::set<std::uint64_t> distinct(ids.begin(), ids.end());
    CHECK(distinct.size() == n);
    CHECK_FALSE(distinct.contains(0));
    for (int r = 0; r < 4; ++r)
        CHECK(hub.room_size("r" + std::to_string(r)) == n / 4);
    CHECK(hub.room_size("nowhere") == 0);
    CHECK(hub.is_member("r1", ids[1]));
    CHECK_FALSE(hub.is_member("r0", ids[1]));
    ws::hub_connection* c1 = hub.find(ids[1]);
    REQUIRE(c1 != nullptr);
    CHECK(c1->state() == ws::connection_state::open);
    REQUIRE(c1->rooms().size() == 1);
    CHECK(c1->rooms()[0] == "r1");
    REQUIRE(c1->meta("path") != nullptr);
    CHECK(*c1->meta("path") == "/r1");

    std::vector<std::vector<std::string>> expected(n);
    auto expect = [&](const std::string& text, const std::function<bool(int)>& to) {
        for (int i = 0; i < n; ++i)
            if (to(i))
                expected[i].push_back(text);
    };

    for (int k = 0; k < 3; ++k) {
        const auto pm = ws::prepared_message::text("a" + std::to_string(k));
        CHECK(hub.broadcast_room("r0", pm) == n / 4);
        // Every receiver's queue holds the one frame (the writers have not run yet).
        CHECK(pm.frame().use_count() == 1 + n / 4);
        expect("a" + std::to_string(k), [](int i) { return i % 4 == 0; });
    }
    CHECK(hub.broadcast_room_except("r1", ws::prepared_message::text("b"), ids[1]) == n / 4 - 1);
    expect("b", [](int i) { return i % 4 == 1 && i != 1; });
    CHECK(hub.broadcast_except(ws::prepared_message::text("c"), ids[2]) == n - 1);
    expect("c", [](int i) { return i != 2; });
    const auto d = ws::prepared_message::text("d");
    CHECK(hub.broadcast(d) == n);
    CHECK(d.frame().use_count() == 1 + n);
    expect("d", [](int) { return true; });
    CHECK(hub.broadcast_room("nowhere", d) == 0);

    // A member's message reaches the rest of its room through the handler.
    auto sent = co_await clients[3]->send_text("from3");
    REQUIRE(sent);
    while (h.messages < 1)
        co_await note.wait();
    expect("from3", [](int i) { return i % 4 == 3 && i != 3; });

    // Everything after this marker is known: whatever precedes it must be exactly the expected
    // list (each frame once, in order, nothing for non-members).
    CHECK(hub.broadcast(ws::prepared_message::text("end")) == n);
    expect("end", [](int) { return true; });
    for (int i = 0; i < n; ++i) {
        std::vector<std::string> got;
        while (got.size() < expected[i].size()) {
            auto m = co_await clients[i]->receive();
            REQUIRE(m);
            got.push_back(m->data);
            if (m->data == "end")
                break;
        }
        CHECK_MESSAGE(got == expected[i], "client " << i);
    }

    // Leaving is implicit on close.
    auto closed = co_await clients[0]->close();
    CHECK(closed);
    while (h.closed < 1)
        co_await note.wait();
    CHECK(h.closes[ids[0]].code == 1000);
    CHECK(hub.find(ids[0]) == nullptr);
    CHECK(hub.size() == n - 1);
    CHECK(hub.room_size("r0") == n / 4 - 1);
    CHECK_FALSE(hub.is_member("r0", ids[0]));

    clients.clear(); // the rest vanish without a close frame
    while (h.closed < n)
        co_await note.wait();
    CHECK(hub.size() == 0);
    CHECK(hub.room_names().empty());
    CHECK(h.closes[ids[5]].code == 1006);
    co_await srv.stop();
}

// ---- a slow reader ------------------------------------------------------------------------

core::task<void> slow_reader(core::loop& lp, ws::backpressure_policy policy) {
    notifier note;
    room_handler h;
    h.note = &note;
    ws::hub_options o;
    o.max_queued_bytes = 256 * 1024;
    o.on_full = policy;
    o.close_timeout = 20s;
    ws::server_options so;
    so.session.close_timeout = 20s; // the slow one starts reading only after the policy acted
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(lp, o, coronet::testing::events_of<ws::hub_connection>(h), tok, so);
    ws::hub& hub = srv.hub();
    h.hub = &hub;

    auto fast1 = co_await connect_client(srv.url("/r"));
    (void)co_await read_id(*fast1);
    auto fast2 = co_await connect_client(srv.url("/r"));
    (void)co_await read_id(*fast2);
    auto slow = co_await connect_client(srv.url("/r"));
    const std::uint64_t slow_id = co_await read_id(*slow);

    // Broadcast 64 KiB messages; the fast members read each one before the next goes out, the
    // slow one reads nothing until the policy has acted.
    const std::array<ws::session*, 2> fasts = {fast1.get(), fast2.get()};
    const std::string pad(64 * 1024, 'x');
    int sent = 0;
    int after_effect = 0;
    bool effect = false;
    while (sent < 4000 && after_effect < 20) {
        const auto pm = ws::prepared_message::text(std::to_string(sent) + ":" + pad);
        hub.broadcast_room("r", pm);
        ++sent;
        if (ws::hub_connection* c = hub.find(slow_id))
            CHECK(c->queued_bytes() <= o.max_queued_bytes);
        for (ws::session* f : fasts) {
            auto m = co_await f->receive();
            REQUIRE(m);
            CHECK(sequence_of(m->data) == sent - 1);
        }
        effect = policy == ws::backpressure_policy::close ? hub.stats().closed_slow > 0
                                                          : hub.stats().dropped > 0;
        if (effect)
            ++after_effect;
    }
    REQUIRE(effect);
    CHECK(hub.stats().closed_slow == (policy == ws::backpressure_policy::close ? 1u : 0u));

    if (policy == ws::backpressure_policy::close) {
        // An in-order prefix of the messages, then the 1008 close.
        int next = 0;
        for (;;) {
            auto m = co_await slow->receive();
            if (!m) {
                CHECK(m.error() == ws::errc::closed);
                break;
            }
            CHECK(sequence_of(m->data) == next);
            ++next;
        }
        CHECK(slow->close_code() == 1008);
        CHECK(next < sent);
        while (h.closed < 1)
            co_await note.wait();
        CHECK(h.closes[slow_id].code == 1008);
    } else {
        ws::hub_connection* c = hub.find(slow_id);
        REQUIRE(c != nullptr);
        CHECK(c->state() == ws::connection_state::open);
        const std::uint64_t dropped = c->dropped();
        CHECK(dropped == hub.stats().dropped);
        CHECK(dropped > 0);
        // Everything that was not dropped arrives, in order.
        std::uint64_t received = 0;
        int last = -1;
        while (received + dropped < static_cast<std::uint64_t>(sent)) {
            auto m = co_await slow->receive();
            REQUIRE(m);
            const int seq = sequence_of(m->data);
            CHECK(seq > last);
            last = seq;
            ++received;
        }
        CHECK(h.closed == 0);
    }
    fast1.reset();
    fast2.reset();
    slow.reset();
    while (hub.size() > 0)
        co_await note.wait();
    co_await srv.stop();
}

// ---- auto-responses -----------------------------------------------------------------------

core::task<void> auto_response(core::loop& lp) {
    notifier note;
    room_handler h;
    h.note = &note;
    h.echo = true;
    h.auto_request = "ping";
    h.auto_response = "pong";
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(lp, ws::hub_options{}, coronet::testing::events_of<ws::hub_connection>(h), tok,
                   ws::server_options{});
    h.hub = &srv.hub();
    auto client = co_await connect_client(srv.url("/auto"));
    const std::uint64_t id = co_await read_id(*client);
    for (int i = 0; i < 3; ++i) {
        auto sent = co_await client->send_text("ping");
        REQUIRE(sent);
        auto m = co_await client->receive();
        REQUIRE(m);
        CHECK(m->data == "pong");
    }
    CHECK(h.messages == 0);
    ws::hub_connection* c = srv.hub().find(id);
    REQUIRE(c != nullptr);
    CHECK(c->auto_responses_sent() == 3);

    auto other = co_await client->send_text("hello");
    REQUIRE(other);
    auto echoed = co_await client->receive();
    REQUIRE(echoed);
    CHECK(echoed->data == "echo:hello");
    CHECK(h.messages == 1);

    c->clear_auto_response();
    auto again = co_await client->send_text("ping");
    REQUIRE(again);
    auto handled = co_await client->receive();
    REQUIRE(handled);
    CHECK(handled->data == "echo:ping");
    CHECK(h.messages == 2);
    client.reset();
    while (h.closed < 1)
        co_await note.wait();
    co_await srv.stop();
}

// ---- heartbeats ---------------------------------------------------------------------------

core::task<void> heartbeat(core::loop& lp) {
    notifier note;
    room_handler h;
    h.note = &note;
    core::clock::time_point fake = core::clock::now();
    ws::hub_options o;
    o.ping_interval = 10s;
    o.pong_timeout = 5s;
    o.clock = [&fake] { return fake; };
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(lp, o, coronet::testing::events_of<ws::hub_connection>(h), tok,
                   ws::server_options{});
    ws::hub& hub = srv.hub();
    h.hub = &hub;

    auto answers = co_await connect_client(srv.url("/hb"));
    const std::uint64_t answers_id = co_await read_id(*answers);
    auto silent = co_await connect_client(srv.url("/hb"));
    const std::uint64_t silent_id = co_await read_id(*silent);
    core::task_scope readers(tok);
    readers.spawn(drain(*answers)); // answers pings; `silent` never reads

    fake += 9s;
    hub.sweep();
    CHECK(hub.stats().pings_sent == 0);
    fake += 1s; // interval
    hub.sweep();
    CHECK(hub.stats().pings_sent == 2);
    while (h.pongs < 1)
        co_await note.wait();

    fake += 5s; // interval + timeout: the silent one is dropped, the other answered
    hub.sweep();
    CHECK(hub.stats().timed_out == 1);
    while (h.closed < 1)
        co_await note.wait();
    CHECK(h.closes[silent_id].code == 1006);
    CHECK(h.closes[silent_id].reason == "pong timeout");
    CHECK(hub.find(silent_id) == nullptr);
    REQUIRE(hub.find(answers_id) != nullptr);

    fake += 5s; // ten seconds after its pong: pinged again
    hub.sweep();
    CHECK(hub.stats().pings_sent == 3);
    while (h.pongs < 2)
        co_await note.wait();
    fake += 5s;
    hub.sweep();
    CHECK(hub.stats().timed_out == 1);
    REQUIRE(hub.find(answers_id) != nullptr);
    CHECK(hub.find(answers_id)->state() == ws::connection_state::open);

    auto closed = co_await answers->close();
    CHECK(closed);
    co_await readers.join();
    while (h.closed < 2)
        co_await note.wait();
    CHECK(h.closes[answers_id].code == 1000);
    silent.reset();
    co_await srv.stop();
}

// ---- the server's own graceful stop ---------------------------------------------------------

core::task<void> server_stop(core::loop& lp) {
    notifier note;
    room_handler h;
    h.note = &note;
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(lp, ws::hub_options{}, coronet::testing::events_of<ws::hub_connection>(h), tok,
                   ws::server_options{});
    h.hub = &srv.hub();
    auto client = co_await connect_client(srv.url("/s"));
    const std::uint64_t id = co_await read_id(*client);
    core::task_scope readers(tok);
    readers.spawn(drain(*client));
    co_await srv.stop_server();
    CHECK(srv.hub().size() == 0);
    CHECK(h.closes[id].code == 1001);
    co_await readers.join();
    CHECK(client->close_code() == 1001);
}

// ---- limits, ids, metadata ----------------------------------------------------------------

core::task<void> max_connections(core::loop& lp) {
    notifier note;
    room_handler h;
    h.note = &note;
    ws::hub_options o;
    o.max_connections = 2;
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(lp, o, coronet::testing::events_of<ws::hub_connection>(h), tok,
                   ws::server_options{});
    ws::hub& hub = srv.hub();
    h.hub = &hub;

    CHECK(hub.can_accept());
    auto a = co_await connect_client(srv.url("/m"));
    const std::uint64_t a_id = co_await read_id(*a);
    auto b = co_await connect_client(srv.url("/m"));
    const std::uint64_t b_id = co_await read_id(*b);
    CHECK(a_id != b_id);
    CHECK_FALSE(hub.can_accept());

    auto refused = co_await connect_client(srv.url("/m"));
    auto m = co_await refused->receive();
    REQUIRE_FALSE(m);
    CHECK(m.error() == ws::errc::closed);
    CHECK(refused->close_code() == 1013);
    CHECK(hub.stats().refused == 1);
    CHECK(hub.size() == 2);
    CHECK(h.opened == 2);

    ws::hub_connection* c = hub.find(a_id);
    REQUIRE(c != nullptr);
    c->set_meta("user", "ada");
    c->set_meta("user", "grace");
    REQUIRE(c->meta("user") != nullptr);
    CHECK(*c->meta("user") == "grace");
    CHECK(c->metadata().size() == 2); // and "path"
    CHECK(c->erase_meta("user"));
    CHECK_FALSE(c->erase_meta("user"));
    CHECK(c->meta("user") == nullptr);
    CHECK(c->join("second"));
    CHECK_FALSE(c->join("second"));
    CHECK(c->in_room("second"));
    CHECK(c->leave("second"));
    CHECK_FALSE(c->leave("second"));
    CHECK(hub.room_size("second") == 0);

    int visited = 0;
    hub.for_each([&](ws::hub_connection&) { ++visited; });
    CHECK(visited == 2);
    visited = 0;
    hub.for_each_member("m", [&](ws::hub_connection& member) {
        ++visited;
        member.leave("m"); // allowed while iterating a room
    });
    CHECK(visited == 2);
    CHECK(hub.room_size("m") == 0);

    auto closed = co_await a->close();
    CHECK(closed);
    while (hub.size() > 1)
        co_await note.wait();
    CHECK(hub.can_accept());
    refused.reset();
    b.reset();
    while (hub.size() > 0)
        co_await note.wait();
    co_await srv.stop();
}

// ---- coroutine style and closing from the server ------------------------------------------

struct body_state {
    notifier note;
    int messages = 0;
    int ended = 0;
    std::vector<std::string> replies;
};

core::task<void> echo_body(ws::hub_connection& c, body_state* st) {
    for (;;) {
        auto m = co_await c.receive();
        if (!m)
            break;
        ++st->messages;
        if (m->data == "close me") {
            c.close(4000, "bye");
            continue;
        }
        auto sent = co_await c.send_text("echo:" + m->data);
        CHECK(sent);
    }
    ++st->ended;
    st->note.notify();
}

core::task<void> coroutine_style(core::loop& lp) {
    body_state st;
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(
        lp, ws::hub_options{},
        [&st](ws::hub_connection& c, ws::handshake_info&) { return echo_body(c, &st); }, tok,
        ws::server_options{});
    auto client = co_await connect_client(srv.url("/co"));
    auto sent = co_await client->send_text("x");
    REQUIRE(sent);
    auto m = co_await client->receive();
    REQUIRE(m);
    CHECK(m->data == "echo:x");
    CHECK(srv.hub().size() == 1);

    auto bye = co_await client->send_text("close me");
    REQUIRE(bye);
    auto end = co_await client->receive();
    REQUIRE_FALSE(end);
    CHECK(end.error() == ws::errc::closed);
    CHECK(client->close_code() == 4000);
    CHECK(client->close_reason() == "bye");
    while (st.ended < 1)
        co_await st.note.wait();
    CHECK(st.messages == 2);
    co_await srv.stop();
}

// ---- a unicast waits for room --------------------------------------------------------------

struct unicast_state {
    notifier note;
    int sent = 0;
    bool done = false;
    std::size_t max_queued = 0;
};

core::task<void> unicast_body(ws::hub_connection& c, unicast_state* st) {
    const std::string chunk(64 * 1024, 'u');
    for (int i = 0; i < 256; ++i) {
        auto sent = co_await c.send_text(std::to_string(i) + ":" + chunk);
        REQUIRE(sent);
        ++st->sent;
        st->max_queued = std::max(st->max_queued, c.queued_bytes());
    }
    st->done = true;
    st->note.notify();
    auto m = co_await c.receive(); // until the client closes
    CHECK_FALSE(m);
}

core::task<void> unicast_waits(core::loop& lp) {
    unicast_state st;
    ws::hub_options o;
    o.max_queued_bytes = 128 * 1024;
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(
        lp, o, [&st](ws::hub_connection& c, ws::handshake_info&) { return unicast_body(c, &st); },
        tok, ws::server_options{});
    // 16 MiB to a client that reads only now and then: far more than the socket buffers hold,
    // so the sender must have waited for room to keep its queue within 128 KiB.
    auto client = co_await connect_client(srv.url("/u"));
    for (int i = 0; i < 256; ++i) {
        auto m = co_await client->receive();
        REQUIRE(m);
        CHECK(sequence_of(m->data) == i);
    }
    while (!st.done)
        co_await st.note.wait();
    CHECK(st.sent == 256);
    CHECK(st.max_queued <= o.max_queued_bytes);
    CHECK(srv.hub().stats().dropped == 0);
    CHECK(srv.hub().stats().closed_slow == 0);
    auto closed = co_await client->close();
    CHECK(closed);
    co_await srv.stop();
}

// ---- a handler that throws ------------------------------------------------------------------

core::task<void> throwing_body(ws::hub_connection& c, body_state* st) {
    auto m = co_await c.receive();
    ++st->ended;
    st->note.notify();
    if (m)
        throw std::runtime_error("handler failure (expected by the test)");
}

core::task<void> handler_throws(core::loop& lp) {
    body_state st;
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(
        lp, ws::hub_options{},
        [&st](ws::hub_connection& c, ws::handshake_info&) { return throwing_body(c, &st); }, tok,
        ws::server_options{});
    auto client = co_await connect_client(srv.url("/t"));
    auto sent = co_await client->send_text("boom");
    REQUIRE(sent);
    // The connection is dropped without a close frame; the hub forgets it.
    auto m = co_await client->receive();
    REQUIRE_FALSE(m);
    CHECK(client->close_code() == 1006);
    co_await srv.hub().close_all(1001, "test over");
    CHECK(srv.hub().size() == 0);
    CHECK(srv.hub().stats().aborted == 1);
    co_await srv.stop();
}

// ---- attachments and adoption -------------------------------------------------------------

std::vector<std::byte> bytes_of(std::string_view s) {
    const auto b = std::as_bytes(std::span(s.data(), s.size()));
    return {b.begin(), b.end()};
}

std::string string_of(const std::vector<std::byte>& b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

core::task<void> attachment_body(ws::hub_connection& c, body_state* st) {
    ws::hub& hub = c.owner();
    for (;;) {
        auto m = co_await c.receive();
        if (!m)
            break;
        std::string reply;
        if (m->data.starts_with("adopt ")) {
            auto r = co_await hub.adopt(c, std::stoull(m->data.substr(6)));
            reply = r ? "adopted" : "error:" + r.error().message();
        } else if (m->data.starts_with("set ")) {
            auto r = co_await c.set_attachment(bytes_of(m->data.substr(4)));
            reply = r ? "ok" : "error";
        } else if (m->data == "get") {
            auto r = co_await c.attachment();
            REQUIRE(r);
            reply = r->has_value() ? "got:" + string_of(**r) : "none";
        } else if (m->data == "id") {
            reply = std::to_string(c.id());
        }
        auto sent = co_await c.send_text(reply);
        CHECK(sent);
    }
    ++st->ended;
    st->note.notify();
}

core::task<std::string> ask(ws::session& c, std::string what) {
    auto sent = co_await c.send_text(what);
    REQUIRE(sent);
    auto m = co_await c.receive();
    REQUIRE(m);
    co_return m->data;
}

core::task<void> attachments(core::loop& lp) {
    body_state st;
    ws::hub_options o;
    o.keep_attachment_after_abnormal_close = true;
    const core::stop_token tok = co_await core::get_stop_token();
    hub_server srv(
        lp, o,
        [&st](ws::hub_connection& c, ws::handshake_info&) { return attachment_body(c, &st); }, tok,
        ws::server_options{});
    ws::hub& hub = srv.hub();

    // What a crashed process left.
    auto put = co_await hub.store().put(777, bytes_of("old state"));
    REQUIRE(put);
    auto left = co_await hub.leftover_attachments();
    REQUIRE(left);
    CHECK(*left == std::vector<std::uint64_t>{777});

    auto first = co_await connect_client(srv.url("/a"));
    const std::uint64_t first_id = std::stoull(co_await ask(*first, "id"));
    std::string reply = co_await ask(*first, "get");
    CHECK(reply == "none");
    reply = co_await ask(*first, "adopt 777");
    CHECK(reply == "adopted");
    reply = co_await ask(*first, "get");
    CHECK(reply == "got:old state");
    auto old = co_await hub.store().get(777);
    REQUIRE(old);
    CHECK_FALSE(old->has_value());

    auto second = co_await connect_client(srv.url("/a"));
    const std::uint64_t second_id = std::stoull(co_await ask(*second, "id"));
    reply = co_await ask(*second, "adopt 777");
    CHECK(reply == "error:" + make_error_code(ws::hub_errc::unknown_id).message());
    reply = co_await ask(*second, "adopt " + std::to_string(first_id));
    CHECK(reply == "error:" + make_error_code(ws::hub_errc::id_in_use).message());
    reply = co_await ask(*second, "set fresh");
    CHECK(reply == "ok");
    left = co_await hub.leftover_attachments();
    REQUIRE(left);
    CHECK(left->empty()); // both attachments belong to live connections

    // A clean close removes the attachment; a connection that vanished keeps it for adoption.
    auto closed = co_await first->close();
    CHECK(closed);
    second.reset();
    while (st.ended < 2)
        co_await st.note.wait();
    co_await hub.close_all(1001, "test over"); // returns once every connection has ended
    CHECK(hub.size() == 0);
    auto all = co_await hub.store().list();
    REQUIRE(all);
    CHECK(*all == std::vector<std::uint64_t>{second_id});
    co_await srv.stop();
}

} // namespace

TEST_SUITE("ws.hub") {

    namespace {

    // ---- permessage-deflate: a broadcast compressed once per window size ------------------------

    core::task<void> compressed_broadcast(core::loop& lp) {
        notifier note;
        room_handler h;
        h.note = &note;
        ws::server_options so;
        so.handshake.deflate.enabled = true;
        so.handshake.deflate.server_no_context_takeover = true;
        hub_server srv(lp, ws::hub_options{}, coronet::testing::events_of<ws::hub_connection>(h),
                       co_await core::get_stop_token(), so);
        h.hub = &srv.hub();
        // Receivers asking for windows 9, 12, 15 and 15, one without deflate.
        std::vector<std::unique_ptr<ws::session>> clients;
        for (int bits : {9, 12, 15, 15, 0}) {
            ws::connect_options o;
            o.handshake.deflate.enabled = bits != 0;
            if (bits != 0)
                o.handshake.deflate.server_max_window_bits = static_cast<std::uint8_t>(bits);
            auto c = co_await ws::connect(srv.url("/z"), o);
            REQUIRE(c);
            CHECK((*c)->compression().has_value() == (bits != 0));
            if (bits != 0) {
                CHECK((*c)->compression()->server_no_context_takeover);
                CHECK((*c)->compression()->server_max_window_bits == bits);
            }
            (void)co_await read_id(**c);
            clients.push_back(std::move(*c));
        }
        std::string body;
        for (int i = 0; i < 100; ++i)
            body += R"({"seq":)" + std::to_string(i) + R"(,"text":"the same words again"})";
        const auto pm = ws::prepared_message::text(body);
        CHECK(srv.hub().broadcast_room("z", pm) == clients.size());
        CHECK(pm.compressed_variants() == 3); // one per distinct window, not per receiver
        for (auto& c : clients) {
            auto m = co_await c->receive();
            REQUIRE(m);
            CHECK(m->data == body);
        }
        // A short message stays uncompressed (under min_size) and still arrives.
        const auto small = ws::prepared_message::text("hi");
        CHECK(srv.hub().broadcast_room("z", small) == clients.size());
        CHECK(small.compressed_variants() == 0);
        for (auto& c : clients) {
            auto m = co_await c->receive();
            REQUIRE(m);
            CHECK(m->data == "hi");
        }
        for (auto& c : clients)
            CHECK(co_await c->close());
        co_await srv.stop();
    }

    } // namespace

    TEST_CASE_TEMPLATE(
        "a compressed broadcast is built once per window size and inflates everywhere", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return compressed_broadcast(lp); });
    }

    TEST_CASE("a frame ring keeps frames in order while it wraps and grows") {
        ws::detail::frame_ring ring;
        CHECK(ring.empty());
        std::size_t next_in = 1;
        std::size_t next_out = 1;
        for (int round = 0; round < 5; ++round) {
            for (int i = 0; i < 7; ++i)
                ring.push_back(core::shared_buffer::make(next_in++));
            for (int i = 0; i < 4; ++i)
                CHECK(ring.pop_front() == next_out++);
        }
        CHECK(ring.size() == next_in - next_out);
        CHECK(ring[0].size() == next_out);
        CHECK(ring.pop_back() == next_in - 1);
        while (!ring.empty())
            CHECK(ring.pop_front() == next_out++);
    }

    TEST_CASE("a prepared message is one unmasked frame with its header") {
        const auto small = ws::prepared_message::text("hi");
        REQUIRE(small.frame().size() == 4);
        const auto* p = reinterpret_cast<const unsigned char*>(small.frame().data());
        CHECK(p[0] == 0x81);
        CHECK(p[1] == 0x02);
        CHECK(p[2] == 'h');
        std::vector<std::byte> big(200, std::byte{7});
        const auto bin = ws::prepared_message::binary(big);
        CHECK(bin.type() == ws::opcode::binary);
        CHECK(bin.payload_size() == 200);
        REQUIRE(bin.frame().size() == 204);
        const auto* q = reinterpret_cast<const unsigned char*>(bin.frame().data());
        CHECK(q[0] == 0x82);
        CHECK(q[1] == 126);
        CHECK(((q[2] << 8) | q[3]) == 200);
        const auto empty = ws::prepared_message::text("");
        CHECK(empty.frame().size() == 2);
        const auto copy = small;
        CHECK(copy.frame().data() == small.frame().data());
    }

    TEST_CASE("an empty hub has no rooms and accepts connections") {
        ws::hub hub;
        CHECK(hub.can_accept());
        CHECK(hub.size() == 0);
        CHECK(hub.find(1) == nullptr);
        CHECK(hub.room_size("x") == 0);
        CHECK(hub.broadcast(ws::prepared_message::text("nobody")) == 0);
        CHECK(hub.stats().broadcasts == 1);
        hub.sweep();
        CHECK(std::string(ws::hub_category().name()) == "coronet.ws.hub");
        std::error_code ec = ws::hub_errc::full;
        CHECK(ec.category() == ws::hub_category());
    }

    TEST_CASE_TEMPLATE("a thousand connections in four rooms get every broadcast once and in order",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return rooms_and_broadcast(lp); }, 50s);
    }

    TEST_CASE_TEMPLATE("a slow reader is closed with 1008 while the other members get everything",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return slow_reader(lp, ws::backpressure_policy::close); },
                  50s);
    }

    TEST_CASE_TEMPLATE(
        "a slow reader loses only the dropped messages while the others get everything", B,
        CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return slow_reader(lp, ws::backpressure_policy::drop); },
                  50s);
    }

    TEST_CASE_TEMPLATE("an auto-response is answered without calling the handler", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return auto_response(lp); }, 30s);
    }

    TEST_CASE_TEMPLATE("a peer that stops answering pings is dropped after interval plus timeout",
                       B, CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return heartbeat(lp); }, 30s);
    }

    TEST_CASE_TEMPLATE("stopping the server closes hub connections with 1001", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return server_stop(lp); }, 30s);
    }

    TEST_CASE_TEMPLATE("a connection over max_connections is closed with 1013", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return max_connections(lp); }, 30s);
    }

    TEST_CASE_TEMPLATE("a coroutine-style connection echoes and closes from the server", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return coroutine_style(lp); }, 30s);
    }

    TEST_CASE_TEMPLATE("a unicast send waits for room instead of overfilling the queue", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return unicast_waits(lp); }, 40s);
    }

    TEST_CASE_TEMPLATE("a handler that throws drops its connection and the hub stays consistent", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return handler_throws(lp); }, 30s);
    }

    TEST_CASE_TEMPLATE("a leftover attachment is adopted once and removed on a clean close", B,
                       CORONET_BACKENDS) {
        CORONET_REQUIRE_BACKEND(B);
        run_on<B>([](core::loop& lp) { return attachments(lp); }, 30s);
    }

} // TEST_SUITE
