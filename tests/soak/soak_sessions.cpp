// soak_client: the room layout and each client's coroutines (connect, receive, join, send,
// close).
#include "soak_client.hpp"

#include "payload.hpp"

#include <coronet/core/timer.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace soak = coronet::soak;

namespace coronet::soak::load {

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

namespace {

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

} // namespace

std::string chat_name(std::uint32_t id) {
    return "c" + std::to_string(id);
}

// ---- the clients' coroutines ------------------------------------------------------------

namespace {

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

} // namespace

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

namespace {

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

} // namespace

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

} // namespace coronet::soak::load
