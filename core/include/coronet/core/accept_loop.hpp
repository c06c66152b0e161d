#pragma once

#include <coronet/core/log.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/task.hpp>
#include <coronet/core/timer.hpp>

#include <coronet/core/export.hpp>

#include <cerrno>
#include <chrono>
#include <string>
#include <string_view>
#include <utility>

namespace coronet::core {

/// Options of `accept_loop`.
struct accept_loop_options {
    /// First pause after running out of descriptors or memory; doubles up to max_backoff.
    std::chrono::milliseconds min_backoff{10};
    std::chrono::milliseconds max_backoff{1000};
    /// Out of descriptors (EMFILE/ENFILE), waiting connections are refused at once through a
    /// descriptor held in reserve: each gets these bytes (best effort; e.g. an HTTP 503) and a
    /// close instead of waiting in the backlog. Empty: just the close. Must outlive the loop.
    std::string_view refusal;
    /// While refusing, how often the loop looks for more waiting connections.
    std::chrono::milliseconds refusal_interval{20};
};

namespace detail {
/// True for accept errors that mean "out of a resource, wait and retry".
inline bool accept_needs_backoff(const std::error_code& ec) noexcept {
    if (ec.category() != std::system_category())
        return false;
    int e = ec.value();
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}
/// True for accept errors that concern only the connection being accepted.
inline bool accept_error_is_transient(const std::error_code& ec) noexcept {
    if (ec.category() != std::system_category())
        return false;
    int e = ec.value();
    return e == ECONNABORTED || e == EPROTO || e == EPERM || e == EINTR || e == ENETDOWN ||
           e == ENOPROTOOPT || e == EHOSTDOWN || e == ENONET || e == EHOSTUNREACH ||
           e == EOPNOTSUPP || e == ENETUNREACH;
}
/// True for accept errors that mean "out of descriptors".
inline bool accept_out_of_descriptors(const std::error_code& ec) noexcept {
    return ec.category() == std::system_category() &&
           (ec.value() == EMFILE || ec.value() == ENFILE);
}

/// A descriptor (on /dev/null) an accept loop keeps in reserve, so that out of descriptors it
/// can still take a waiting connection off the backlog and refuse it at once.
class CORONET_CORE_EXPORT descriptor_reserve {
public:
    descriptor_reserve() noexcept;
    ~descriptor_reserve();
    descriptor_reserve(const descriptor_reserve&) = delete;
    descriptor_reserve& operator=(const descriptor_reserve&) = delete;
    /// Gives up the reserve, accepts one waiting connection on `listener_fd` without blocking,
    /// sends it `refusal` (best effort), closes it and takes the reserve back. False when no
    /// connection was waiting or no reserve could be had.
    bool refuse_one(int listener_fd, std::string_view refusal) noexcept;

private:
    int fd_;
};
} // namespace detail

/// Accepts connections on `l` until the caller's stop token fires or the listener is closed,
/// and spawns `handler(tcp_stream)` (a callable returning task<void>) for each in `scope`.
/// Running out of descriptors (EMFILE/ENFILE) or memory is survived: it is logged once per
/// episode (warn), counted as `core.accept_errors`; out of descriptors, each waiting connection
/// is refused at once through a reserve descriptor (`opts.refusal`, counted as
/// `core.connections_refused`), and otherwise the loop pauses with exponential backoff instead
/// of spinning; then it recovers. Returns once stopped; the caller joins `scope`.
/// It also returns when the listener fails (EINVAL, EBADF: logged once, error) or is closed
/// (logged once, info); a stop through the token is not logged.
template <class Handler>
task<void> accept_loop(tcp_listener& l, task_scope& scope, Handler handler,
                       accept_loop_options opts) {
    auto backoff = opts.min_backoff;
    bool starving = false;
    detail::descriptor_reserve reserve;
    for (;;) {
        auto s = co_await l.accept();
        if (s) {
            if (starving) {
                log(log_level::info, "accept: descriptors available again, accepting");
                starving = false;
            }
            backoff = opts.min_backoff;
            count("core.connections_accepted");
            scope.spawn(handler(std::move(*s)));
            continue;
        }
        const std::error_code ec = s.error();
        if (ec == errc::operation_canceled)
            co_return;
        if (ec == std::errc::bad_file_descriptor || ec == std::errc::invalid_argument ||
            !l.is_open()) {
            // Nothing else knows why accepting stopped: say it once.
            if (!l.is_open())
                log(log_level::info, "accept: the listener was closed; stopped accepting");
            else
                log(log_level::error, "accept: " + ec.message() + "; stopped accepting");
            co_return;
        }
        count("core.accept_errors");
        if (detail::accept_error_is_transient(ec))
            continue;
        if (!starving) {
            log(log_level::warn, "accept: " + ec.message() +
                                     (detail::accept_out_of_descriptors(ec)
                                          ? "; refusing new connections until descriptors free up"
                                          : "; backing off until it clears"));
            starving = true;
        }
        if (detail::accept_out_of_descriptors(ec)) {
            // A bounded batch per round, so a flood of connects cannot hold the loop.
            bool refused = false;
            for (int i = 0; i < 64 && reserve.refuse_one(l.native_handle(), opts.refusal); ++i) {
                count("core.connections_refused");
                refused = true;
            }
            // Refusing works: look for the next waiting client soon rather than backing off.
            if (refused || backoff > opts.refusal_interval)
                backoff = opts.refusal_interval;
        }
        if (!detail::accept_needs_backoff(ec))
            backoff = opts.max_backoff;
        auto slept = co_await sleep_for(backoff);
        if (!slept)
            co_return;
        backoff = backoff * 2 > opts.max_backoff ? opts.max_backoff : backoff * 2;
    }
}

/// `accept_loop` with the default `accept_loop_options`. An overload that builds the default
/// itself rather than a default argument: g++ 12 destroys an aggregate default argument twice
/// when the call is part of a `co_await` expression (docs/core.md, "Compiler pitfalls").
template <class Handler>
task<void> accept_loop(tcp_listener& l, task_scope& scope, Handler handler) {
    return accept_loop(l, scope, std::move(handler), accept_loop_options{});
}

} // namespace coronet::core
