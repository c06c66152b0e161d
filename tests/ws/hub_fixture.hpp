#pragma once
// What the ws.hub tests share (tests/ws/hub_*_test.cpp): a ws::server on 127.0.0.1:0 whose
// sessions all go to one hub, the rooms example's handler with counters, a readiness signal
// the handlers fire, and the client-side reads the cases make.

#include <coronet/ws/hub.hpp>

#include <coronet/core/loop.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/ws/server.hpp>

#include <testing/run_bounded.hpp>

#include "events_adapter.hpp"

#include <doctest/doctest.h>

#include <sys/resource.h>

#include <algorithm>
#include <coroutine>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace coronet::testing::hub_fixture {

/// Raises the soft limit on open descriptors to at least `want` (up to the hard limit).
inline void raise_fd_limit(rlim_t want) {
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
          handler_(std::move(h)), srv_(hub_.as_session_handler(handler_), std::move(so)),
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

/// A room_handler behind a hub_server, wired together: the usual start of a hub test.
struct room_hub {
    room_hub(core::loop& lp, core::stop_token parent, ws::hub_options o = {})
        : srv(lp, std::move(o), coronet::testing::events_of<ws::hub_connection>(h), parent,
              ws::server_options{}) {
        h.note = &note;
        h.hub = &srv.hub();
    }
    notifier note;
    room_handler h;
    hub_server srv;
};

inline core::task<std::unique_ptr<ws::session>> connect_client(std::string url) {
    ws::connect_options o;
    auto c = co_await ws::connect(std::move(url), o);
    REQUIRE_MESSAGE(c, c.error().message());
    co_return std::move(*c);
}

/// The first message of every room_handler connection: "id:<id>".
inline core::task<std::uint64_t> read_id(ws::session& c) {
    auto m = co_await c.receive();
    REQUIRE(m);
    REQUIRE(m->data.starts_with("id:"));
    co_return std::stoull(m->data.substr(3));
}

/// Reads until the peer is gone, answering pings on the way.
inline core::task<void> drain(ws::session& c) {
    for (;;) {
        auto m = co_await c.receive();
        if (!m)
            co_return;
    }
}

inline int sequence_of(const std::string& data) {
    return std::stoi(data.substr(0, data.find(':')));
}

} // namespace coronet::testing::hub_fixture
