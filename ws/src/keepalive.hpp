#pragma once

// A session's timers as bookkeeping: when to ping, when a ping went unanswered for too long,
// when the session has been idle for too long. The session's driver owns the clock and the I/O.

#include <coronet/core/loop.hpp>
#include <coronet/ws/export.hpp>

#include <chrono>
#include <cstdint>

namespace coronet::ws::detail {

/// Keepalive pings, the pong timeout and the idle timeout of one session (see
/// session_options::ping_interval, pong_timeout and idle_timeout), without a clock of its own:
/// the driver reports what happened and when, asks for the next deadline, waits for bytes until
/// then and asks what is due. A zero interval or timeout turns its part off. Not thread-safe.
class CORONET_WS_EXPORT keepalive {
public:
    keepalive(std::chrono::milliseconds ping_interval, std::chrono::milliseconds pong_timeout,
              std::chrono::milliseconds idle_timeout, core::clock::time_point now) noexcept;

    /// True if any timer is on (else the driver may wait for bytes without a deadline).
    bool timed() const noexcept { return pinging() || watches_messages(); }
    /// True if the idle timeout is on, so that messages must be reported.
    bool watches_messages() const noexcept { return idle_timeout_.count() > 0; }

    /// Bytes arrived from the peer: it is alive, and an outstanding ping is answered.
    void heard(core::clock::time_point now) noexcept {
        last_heard_ = now;
        ping_outstanding_ = false;
    }
    /// A whole message went either way (only needed when watches_messages()).
    void message_passed(core::clock::time_point now) noexcept { last_message_ = now; }

    /// When the next timer is due (time_point::max() when none is on).
    core::clock::time_point deadline() const noexcept;

    /// What is due at `now`, most severe first.
    enum class due : std::uint8_t {
        nothing,      ///< wait again until deadline()
        send_ping,    ///< send a ping (counted as sent at `now`)
        pong_overdue, ///< the ping went unanswered: close with 1011 (errc::keepalive_timeout)
        idle,         ///< no message for idle_timeout: close with 1001 (errc::idle_timeout)
    };
    due check(core::clock::time_point now) noexcept;

    /// When bytes last arrived from the peer.
    core::clock::time_point last_heard() const noexcept { return last_heard_; }

private:
    bool pinging() const noexcept { return ping_interval_.count() > 0; }

    std::chrono::milliseconds ping_interval_;
    std::chrono::milliseconds pong_timeout_;
    std::chrono::milliseconds idle_timeout_;
    core::clock::time_point last_heard_;
    core::clock::time_point last_message_;
    core::clock::time_point ping_sent_{};
    bool ping_outstanding_ = false;
};

} // namespace coronet::ws::detail
