// Keepalive and idle bookkeeping; session.cpp waits and sends.
#include "keepalive.hpp"

#include <algorithm>

namespace coronet::ws::detail {

keepalive::keepalive(std::chrono::milliseconds ping_interval,
                     std::chrono::milliseconds pong_timeout, std::chrono::milliseconds idle_timeout,
                     core::clock::time_point now) noexcept
    : ping_interval_(ping_interval), pong_timeout_(pong_timeout), idle_timeout_(idle_timeout),
      last_heard_(now), last_message_(now) {}

core::clock::time_point keepalive::deadline() const noexcept {
    auto at = core::clock::time_point::max();
    if (pinging())
        at = std::min(at, ping_outstanding_ ? ping_sent_ + pong_timeout_
                                            : last_heard_ + ping_interval_);
    if (watches_messages())
        at = std::min(at, last_message_ + idle_timeout_);
    return at;
}

keepalive::due keepalive::check(core::clock::time_point now) noexcept {
    if (watches_messages() && now >= last_message_ + idle_timeout_)
        return due::idle;
    if (!pinging())
        return due::nothing;
    if (ping_outstanding_)
        return now >= ping_sent_ + pong_timeout_ ? due::pong_overdue : due::nothing;
    if (now < last_heard_ + ping_interval_)
        return due::nothing;
    ping_outstanding_ = true;
    ping_sent_ = now;
    return due::send_ping;
}

} // namespace coronet::ws::detail
