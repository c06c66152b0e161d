#pragma once

// Runs a coroutine test body on a fresh loop with a deadline, so a hung case fails instead of
// waiting for the CTest timeout; plus small socket and task helpers shared by the I/O tests.

#include <coronet/core/loop.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/when.hpp>

#include <testing/backends.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <utility>

namespace coronet::testing {

namespace detail {
inline core::task<void> expire_after(core::clock::duration d, bool& expired) {
    auto slept = co_await core::sleep_for(d);
    if (slept)
        expired = true;
}

inline core::task<void> bounded(core::task<void> body, core::clock::duration d, bool& expired) {
    (void)co_await core::when_any(std::move(body), detail::expire_after(d, expired));
}
} // namespace detail

/// Runs `make_body(loop)` (returning task<void>) on a new loop of backend B. The body is
/// cancelled, and the case fails, if it has not finished after `limit`.
template <class B, class F>
void run_on(F make_body, core::clock::duration limit = std::chrono::seconds(15)) {
    core::loop lp(options<B>());
    REQUIRE(lp.backend() == B::kind);
    bool expired = false;
    core::run(lp, detail::bounded(make_body(lp), limit, expired));
    CHECK_MESSAGE(!expired, "the test body did not finish in time");
}

/// A listener on 127.0.0.1 with a port the kernel picks.
inline core::tcp_listener listen_local(core::loop& lp, core::listen_options o = {}) {
    auto l = core::tcp_listener::bind(lp, core::endpoint::loopback_v4(0), o);
    REQUIRE_MESSAGE(l, l.error().message());
    return std::move(*l);
}

/// Where `l` listens.
inline core::endpoint endpoint_of(const core::tcp_listener& l) {
    auto e = l.local_endpoint();
    REQUIRE(e);
    return *e;
}

namespace detail {
inline core::task<core::result<core::tcp_stream>> accept_one(core::tcp_listener& l) {
    co_return co_await l.accept();
}
} // namespace detail

/// Both ends of a loopback TCP connection.
struct stream_pair {
    core::tcp_stream client;
    core::tcp_stream server;
};

/// Connects a client to `l` and accepts it.
inline core::task<stream_pair> connect_pair(core::tcp_listener& l) {
    auto [c, s] =
        co_await core::when_all(core::tcp_stream::connect(endpoint_of(l)), detail::accept_one(l));
    REQUIRE_MESSAGE(c, c.error().message());
    REQUIRE_MESSAGE(s, s.error().message());
    co_return stream_pair{std::move(*c), std::move(*s)};
}

/// Writes all of `data` to `s`.
inline core::task<core::result<void>> write_string(core::stream& s, std::string data) {
    co_return co_await s.write_all(core::as_bytes(data));
}

/// `t` with its own stop token (it keeps it when awaited).
template <class T>
core::task<T> with_token(core::task<T> t, core::stop_token tok) {
    t.handle().promise().set_token(tok);
    return t;
}

} // namespace coronet::testing
