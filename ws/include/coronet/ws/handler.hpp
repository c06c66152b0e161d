#pragma once
// The one WebSocket handler model (docs/ws.md, "Handlers"): a coroutine body or a set of event
// hooks, accepted alike by ws::server, http_ws upgrade routes and the hub, and checked when the
// handler is handed over, with a message that names the hook and the signature it needs.

#include <coronet/core/task.hpp>
#include <coronet/ws/handshake_info.hpp>
#include <coronet/ws/session.hpp>

#include <concepts>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>

namespace coronet::ws {

class hub_connection;

/// A hook of `ws::events` that was not set.
struct no_hook {};

/// The per-connection state of an event handler that declared none.
struct no_state {};

/// What every event hook receives: the connection, its handshake and the handler's typed
/// per-connection state. `Conn` is `ws::session` (ws::server, http_ws upgrade routes) or
/// `ws::hub_connection` (the hub); hooks written for `auto&` work on both. Valid while the
/// hook runs; a hook that keeps a reference past its own return must not outlive `on_close`.
template <class Conn, class State>
struct context {
    Conn& conn;           ///< the connection: send, close, ping; a hub connection: rooms too
    handshake_info& info; ///< path, params, kept headers, subprotocol, agreed deflate
    State& state;         ///< made when the connection opens, destroyed after on_close
};

namespace detail {

enum hook_index : std::size_t {
    open_hook,
    message_hook,
    ping_hook,
    pong_hook,
    close_hook,
    error_hook
};

template <class F>
inline constexpr bool is_set = !std::is_same_v<F, no_hook>;

template <class F, class R, class... Args>
concept hook_returning =
    std::invocable<F&, Args...> && std::same_as<std::invoke_result_t<F&, Args...>, R>;

template <class F, class... Args>
concept void_or_task_hook =
    hook_returning<F, void, Args...> || hook_returning<F, core::task<void>, Args...>;

/// An on_message hook that takes a ws::message_view (and not a ws::message&): it is handed the
/// message where the connection read it, with no copy and no allocation.
template <class F, class Ctx>
constexpr bool takes_view =
    !void_or_task_hook<F, Ctx, message&> && void_or_task_hook<F, Ctx, message_view>;

/// Calls a hook; a task-returning hook's task is returned to be awaited, a void hook runs now.
/// (Not a coroutine: a coroutine frame holding a hook of a lambda type defined in a function
/// would trip g++'s -Wsubobject-linkage in every program that includes this header.)
template <class F, class... Args>
auto call_hook(F& f, Args&&... args) {
    if constexpr (hook_returning<F, core::task<void>, Args...>) {
        return f(std::forward<Args>(args)...);
    } else {
        f(std::forward<Args>(args)...);
        return std::suspend_never();
    }
}

} // namespace detail

/// The event style of a WebSocket handler: hooks set one by one, each at most once, on a value
/// that is then handed to `ws::server`, `http_ws::upgrade_route` or `ws::hub::serve`:
///
///     auto echo = ws::events<>()
///         .on_message([](auto& c, ws::message& m) -> core::task<void> {
///             co_await c.conn.send_text(m.data);
///         });
///
/// The hooks (each takes the connection's `ws::context<Conn, State>&` first; returning
/// `core::task<void>` makes the runner await it):
/// - `on_open(ctx)` -> void or task<void>: once, before the first message;
/// - `on_message(ctx, ws::message&)` -> void or task<void>: each whole message, in order
///   (see `concurrency`); or `on_message(ctx, ws::message_view)`: the message where the
///   connection read it (valid until the hook returns, or its task completes), with no copy
///   and no allocation;
/// - `on_ping(ctx, std::string_view payload)`, `on_pong(ctx, std::string_view payload)` -> void:
///   control frames (pings are answered by the session before the hook runs);
/// - `on_error(ctx, std::error_code)` -> void: a protocol error, timeout or transport error
///   ended the connection (the session already sent the matching close code);
/// - `on_close(ctx, std::uint16_t code, std::string_view reason)` -> void: once, last: the
///   peer's close code (1006 when it left without a close frame).
///
/// A misspelled hook does not compile (there is no such member), and a hook with the wrong
/// parameters or return type, or a handler with no hook at all, is refused where it is handed
/// over, by a static_assert that names the hook and the signature it needs. `State` is the
/// per-connection state type (`with_state<T>()`): made when the connection opens — from the
/// `ws::handshake_info&` when `T` is constructible from it, else default-constructed — and
/// reached as `ctx.state`. The value is shared by every connection it serves: hooks must not
/// keep per-connection data in their captures.
template <class State = no_state, class OnOpen = no_hook, class OnMessage = no_hook,
          class OnPing = no_hook, class OnPong = no_hook, class OnClose = no_hook,
          class OnError = no_hook>
class events {
public:
    using state_type = State;
    using hooks_type = std::tuple<OnOpen, OnMessage, OnPing, OnPong, OnClose, OnError>;

    events() = default;
    events(hooks_type hooks, std::size_t concurrency)
        : hooks_(std::move(hooks)), concurrency_(concurrency) {}

    /// Sets `on_open` (see the class comment).
    template <class F>
    auto on_open(F f) && {
        return std::move(*this).template with<detail::open_hook>(std::move(f));
    }
    /// Sets `on_message`.
    template <class F>
    auto on_message(F f) && {
        return std::move(*this).template with<detail::message_hook>(std::move(f));
    }
    /// Sets `on_ping`.
    template <class F>
    auto on_ping(F f) && {
        return std::move(*this).template with<detail::ping_hook>(std::move(f));
    }
    /// Sets `on_pong`.
    template <class F>
    auto on_pong(F f) && {
        return std::move(*this).template with<detail::pong_hook>(std::move(f));
    }
    /// Sets `on_close`.
    template <class F>
    auto on_close(F f) && {
        return std::move(*this).template with<detail::close_hook>(std::move(f));
    }
    /// Sets `on_error`.
    template <class F>
    auto on_error(F f) && {
        return std::move(*this).template with<detail::error_hook>(std::move(f));
    }
    /// The same hooks with per-connection state of type `T` (set it before any hook that
    /// names the state's type).
    template <class T>
    events<T, OnOpen, OnMessage, OnPing, OnPong, OnClose, OnError> with_state() && {
        return {std::move(hooks_), concurrency_};
    }
    /// Bounded concurrent handling: up to `n` `on_message` calls of one connection run at once
    /// (each starts in arrival order; a task-returning hook that awaits lets the next one
    /// start). Sends stay serialized by the connection, and each call's own sends reach the
    /// peer in the order it made them; calls may finish, and so send, in any order. Reading
    /// pauses while `n` calls run (back-pressure reaches the peer). `on_close` runs after every
    /// call has finished. Default 1: one message at a time, in order. 0 is taken as 1.
    events concurrency(std::size_t n) && {
        concurrency_ = n == 0 ? 1 : n;
        return std::move(*this);
    }
    std::size_t max_concurrency() const noexcept { return concurrency_; }

    /// The hooks, for the runner.
    hooks_type& hooks() noexcept { return hooks_; }

private:
    template <std::size_t I, class F>
    auto with(F f) && {
        static_assert(!detail::is_set<std::tuple_element_t<I, hooks_type>>,
                      "ws::events: this hook is already set (each hook may be set once)");
        return std::move(*this).template rebuild<I>(std::move(f), std::make_index_sequence<6>());
    }
    template <std::size_t I, class F, std::size_t... K>
    auto rebuild(F f, std::index_sequence<K...>) && {
        using next =
            events<State, std::conditional_t<K == I, F, std::tuple_element_t<K, hooks_type>>...>;
        return next(typename next::hooks_type(pick<K, I>(std::move(f))...), concurrency_);
    }
    template <std::size_t K, std::size_t I, class F>
    decltype(auto) pick(F&& f) {
        if constexpr (K == I)
            return std::forward<F>(f);
        else
            return std::move(std::get<K>(hooks_));
    }

    hooks_type hooks_;
    std::size_t concurrency_ = 1;
};

template <class T>
inline constexpr bool is_events = false;
template <class... T>
inline constexpr bool is_events<events<T...>> = true;

/// A coroutine-style handler for connections of type `Conn`: it owns the conversation and the
/// connection closes (1000) when it returns.
template <class H, class Conn>
concept coroutine_handler =
    !is_events<H> && detail::hook_returning<H, core::task<void>, Conn&, handshake_info&>;

namespace detail {

/// Whether each hook of `Ev` fits connections of type `Conn`, computed once for both the
/// concept (handler_for) and the diagnostics (check_events).
template <class Ev, class Conn>
struct events_checks {
    using S = typename Ev::state_type;
    using ctx = context<Conn, S>&;
    using H = typename Ev::hooks_type;
    template <std::size_t I>
    using hook = std::tuple_element_t<I, H>;

    static constexpr bool any_hook = is_set<hook<open_hook>> || is_set<hook<message_hook>> ||
                                     is_set<hook<ping_hook>> || is_set<hook<pong_hook>> ||
                                     is_set<hook<close_hook>> || is_set<hook<error_hook>>;
    static constexpr bool open_ok =
        !is_set<hook<open_hook>> || void_or_task_hook<hook<open_hook>, ctx>;
    static constexpr bool message_ok = !is_set<hook<message_hook>> ||
                                       void_or_task_hook<hook<message_hook>, ctx, message&> ||
                                       void_or_task_hook<hook<message_hook>, ctx, message_view>;
    static constexpr bool ping_ok =
        !is_set<hook<ping_hook>> || hook_returning<hook<ping_hook>, void, ctx, std::string_view>;
    static constexpr bool pong_ok =
        !is_set<hook<pong_hook>> || hook_returning<hook<pong_hook>, void, ctx, std::string_view>;
    static constexpr bool close_ok =
        !is_set<hook<close_hook>> ||
        hook_returning<hook<close_hook>, void, ctx, std::uint16_t, std::string_view>;
    static constexpr bool error_ok =
        !is_set<hook<error_hook>> || hook_returning<hook<error_hook>, void, ctx, std::error_code>;
    static constexpr bool state_ok =
        std::is_constructible_v<S, handshake_info&> || std::is_default_constructible_v<S>;
    static constexpr bool all =
        any_hook && open_ok && message_ok && ping_ok && pong_ok && close_ok && error_ok && state_ok;
};

/// The static_asserts behind `ws::any_handler`: each names the hook and its signature.
template <class Ev, class Conn>
consteval bool check_events() {
    using c = events_checks<Ev, Conn>;
    static_assert(c::any_hook, "ws::events: the handler has no hook; set at least one of on_open, "
                               "on_message, on_ping, on_pong, on_close, on_error");
    static_assert(c::open_ok, "ws::events: on_open must be callable as "
                              "on_open(ws::context<Conn, State>&) and return void or "
                              "core::task<void>");
    static_assert(c::message_ok, "ws::events: on_message must be callable as "
                                 "on_message(ws::context<Conn, State>&, ws::message&) or "
                                 "on_message(ws::context<Conn, State>&, ws::message_view) and "
                                 "return void or core::task<void>");
    static_assert(c::ping_ok, "ws::events: on_ping must be callable as "
                              "on_ping(ws::context<Conn, State>&, std::string_view payload) and "
                              "return void");
    static_assert(c::pong_ok, "ws::events: on_pong must be callable as "
                              "on_pong(ws::context<Conn, State>&, std::string_view payload) and "
                              "return void");
    static_assert(c::close_ok, "ws::events: on_close must be callable as "
                               "on_close(ws::context<Conn, State>&, std::uint16_t code, "
                               "std::string_view reason) and return void");
    static_assert(c::error_ok, "ws::events: on_error must be callable as "
                               "on_error(ws::context<Conn, State>&, std::error_code) and return "
                               "void");
    static_assert(c::state_ok, "ws::events: the state type must be constructible from "
                               "ws::handshake_info& or default-constructible");
    return true;
}

template <class H, class Conn>
consteval bool check_handler() {
    if constexpr (is_events<H>) {
        return check_events<H, Conn>();
    } else {
        static_assert(coroutine_handler<H, Conn>,
                      "ws handler: expected a coroutine callable as "
                      "core::task<void>(Conn&, ws::handshake_info&) (Conn: ws::session, or "
                      "ws::hub_connection on a hub), or a ws::events<...> with hooks");
        return true;
    }
}

template <class H, class Conn>
constexpr bool fits() {
    if constexpr (is_events<H>)
        return events_checks<H, Conn>::all;
    else
        return coroutine_handler<H, Conn>;
}

} // namespace detail

/// A WebSocket handler for connections of type `Conn`: a coroutine handler, or a `ws::events`
/// whose hooks fit `Conn`. Where a handler is handed over (`any_handler`), a misfit is refused
/// by a static_assert that says which hook is wrong and what it should look like.
template <class H, class Conn>
concept handler_for = detail::fits<H, Conn>();

/// One connection's run of a handler, made by `any_handler::start`: the host (server, route or
/// hub) calls `run` once, forwards the control frames it sees, then calls `closed` once. One
/// virtual call per event: message hooks are called directly inside `run`.
template <class Conn>
class connection_handler {
public:
    virtual ~connection_handler() = default;
    /// The coroutine body, or on_open and the message loop (until receive fails).
    virtual core::task<void> run() = 0;
    virtual void ping(std::string_view /*payload*/) {}
    virtual void pong(std::string_view /*payload*/) {}
    /// The connection ended with `code` / `reason` (on_close).
    virtual void closed(std::uint16_t /*code*/, std::string_view /*reason*/) {}
};

namespace detail {

template <class Conn, class H>
class coroutine_run final : public connection_handler<Conn> {
public:
    coroutine_run(H& h, Conn& c, handshake_info& info) : h_(h), c_(c), info_(info) {}
    core::task<void> run() override { return h_(c_, info_); }

private:
    H& h_;
    Conn& c_;
    handshake_info& info_;
};

template <class Conn, class Ev>
class events_run final : public connection_handler<Conn> {
public:
    using state_type = typename Ev::state_type;

    events_run(Ev& ev, Conn& c, handshake_info& info)
        : ev_(ev), state_(make_state(info)), ctx_{c, info, state_} {}

    core::task<void> run() override;
    void ping(std::string_view payload) override {
        if constexpr (is_set<std::tuple_element_t<ping_hook, typename Ev::hooks_type>>)
            std::get<ping_hook>(ev_.hooks())(ctx_, payload);
    }
    void pong(std::string_view payload) override {
        if constexpr (is_set<std::tuple_element_t<pong_hook, typename Ev::hooks_type>>)
            std::get<pong_hook>(ev_.hooks())(ctx_, payload);
    }
    void closed(std::uint16_t code, std::string_view reason) override {
        if constexpr (is_set<std::tuple_element_t<close_hook, typename Ev::hooks_type>>)
            std::get<close_hook>(ev_.hooks())(ctx_, code, reason);
    }

private:
    static state_type make_state(handshake_info& info) {
        if constexpr (std::is_constructible_v<state_type, handshake_info&>)
            return state_type(info);
        else
            return state_type();
    }
    /// on_open, then one message at a time (or up to max_concurrency() at once).
    core::task<void> message_loop();
    core::task<void> concurrent_loop();
    void report(std::error_code ec);

    Ev& ev_;
    state_type state_;
    context<Conn, state_type> ctx_;
};

/// Whether a receive error is worth an on_error: a clean close or a cancellation is not.
CORONET_WS_EXPORT bool reportable(std::error_code ec) noexcept;

/// Runs message handlers of one connection concurrently, at most `limit` at once.
class CORONET_WS_EXPORT concurrent_calls {
public:
    explicit concurrent_calls(std::size_t limit);
    concurrent_calls(const concurrent_calls&) = delete;
    concurrent_calls& operator=(const concurrent_calls&) = delete;
    ~concurrent_calls();
    /// Waits for a free place (false: cancelled), then starts `call` in it.
    core::task<bool> start(core::task<void> call);
    /// Waits for every started call.
    core::task<void> join();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// Not a coroutine: the loop's own frame runs on_open first, so an idle connection holds one
// frame here rather than two.
template <class Conn, class Ev>
core::task<void> events_run<Conn, Ev>::run() {
    if (ev_.max_concurrency() > 1)
        return concurrent_loop();
    return message_loop();
}

template <class Conn, class Ev>
void events_run<Conn, Ev>::report(std::error_code ec) {
    using H = typename Ev::hooks_type;
    if constexpr (is_set<std::tuple_element_t<error_hook, H>>)
        if (reportable(ec))
            std::get<error_hook>(ev_.hooks())(ctx_, ec);
}

template <class Conn, class Ev>
core::task<void> events_run<Conn, Ev>::message_loop() {
    using H = typename Ev::hooks_type;
    using M = std::tuple_element_t<message_hook, H>;
    if constexpr (is_set<std::tuple_element_t<open_hook, H>>)
        co_await call_hook(std::get<open_hook>(ev_.hooks()), ctx_);
    for (;;) {
        if constexpr (!is_set<M> || takes_view<M, context<Conn, state_type>&>) {
            auto m = co_await ctx_.conn.receive_view();
            if (!m) {
                report(m.error());
                co_return;
            }
            if constexpr (is_set<M>)
                co_await call_hook(std::get<message_hook>(ev_.hooks()), ctx_, *m);
        } else {
            auto m = co_await ctx_.conn.receive();
            if (!m) {
                report(m.error());
                co_return;
            }
            co_await call_hook(std::get<message_hook>(ev_.hooks()), ctx_, *m);
        }
    }
}

template <class Conn, class Ev>
core::task<void> events_run<Conn, Ev>::concurrent_loop() {
    using H = typename Ev::hooks_type;
    if constexpr (is_set<std::tuple_element_t<open_hook, H>>)
        co_await call_hook(std::get<open_hook>(ev_.hooks()), ctx_);
    concurrent_calls calls(ev_.max_concurrency());
    for (;;) {
        auto m = co_await ctx_.conn.receive();
        if (!m) {
            report(m.error());
            break;
        }
        if constexpr (is_set<std::tuple_element_t<message_hook, H>>) {
            // The message moves into the call's own frame: the next receive reuses nothing.
            auto one = [](Ev& ev, context<Conn, state_type>& ctx, message msg) -> core::task<void> {
                using M = std::tuple_element_t<message_hook, H>;
                if constexpr (takes_view<M, context<Conn, state_type>&>)
                    co_await call_hook(std::get<message_hook>(ev.hooks()), ctx,
                                       message_view{msg.type, msg.data});
                else
                    co_await call_hook(std::get<message_hook>(ev.hooks()), ctx, msg);
            };
            if (!co_await calls.start(one(ev_, ctx_, std::move(*m))))
                break;
        }
    }
    co_await calls.join();
}

} // namespace detail

/// A handler for connections of type `Conn` with its type erased: what servers, routes and the
/// hub keep. Made from any `handler_for<H, Conn>`; copies share the one handler value (hooks
/// and coroutine callables must therefore be safe to call for many connections at once on one
/// loop). Starting a connection costs one allocation; messages cost no virtual call.
template <class Conn>
class any_handler {
public:
    /// An empty handler (`start` must not be called on it).
    any_handler() = default;
    /// Wraps `h`; refused at compile time, with a message naming the problem, unless `H` is a
    /// coroutine handler or a `ws::events` whose hooks fit `Conn`.
    template <class H>
    requires(!std::same_as<std::remove_cvref_t<H>, any_handler>)
        any_handler(H h) // NOLINT(google-explicit-constructor): handlers convert where handed over
        : impl_(make(std::move(h))) {}

    explicit operator bool() const noexcept { return static_cast<bool>(impl_); }

    /// One connection's run. `c` and `info` must outlive it.
    std::unique_ptr<connection_handler<Conn>> start(Conn& c, handshake_info& info) const {
        return impl_->start(c, info);
    }

private:
    struct model_base {
        virtual ~model_base() = default;
        virtual std::unique_ptr<connection_handler<Conn>> start(Conn& c, handshake_info& info) = 0;
    };
    template <class H>
    struct model final : model_base {
        explicit model(H h) : handler(std::move(h)) {}
        std::unique_ptr<connection_handler<Conn>> start(Conn& c, handshake_info& info) override {
            if constexpr (is_events<H>)
                return std::make_unique<detail::events_run<Conn, H>>(handler, c, info);
            else
                return std::make_unique<detail::coroutine_run<Conn, H>>(handler, c, info);
        }
        H handler;
    };
    template <class H>
    static std::shared_ptr<model_base> make(H h) {
        static_assert(detail::check_handler<H, Conn>());
        return std::make_shared<model<H>>(std::move(h));
    }

    std::shared_ptr<model_base> impl_;
};

/// A handler for `ws::session`s: what `ws::server` and `http_ws::upgrade_route` take.
using session_handler = any_handler<session>;

/// The options of a session opened by a handshake: `base` (limits, timeouts, keepalive...)
/// compressing as the handshake agreed (`agreed`, e.g. `handshake_info::deflate()`), with the
/// server's or client's compression `policy` (level, memory, thresholds). The one place where
/// ws::server, ws::connect and the http_ws bridge fill in `session_options`' deflate fields.
CORONET_WS_EXPORT session_options session_options_for(session_options base,
                                                      const deflate_options& policy,
                                                      const std::optional<deflate_params>& agreed);

namespace detail {

/// What `serve_session` does around a handler's run, for a host that runs the handler in a
/// frame of its own (ws::server: one frame per connection instead of two):
///
///     detail::session_run run(h, s, info);
///     std::exception_ptr failed;
///     try { co_await run.handler(); } catch (...) { failed = std::current_exception(); }
///     if (s.is_open()) co_await run.close(failed);
///     run.finish(failed); // rethrows `failed`
class CORONET_WS_EXPORT session_run final : control_observer {
public:
    /// Starts `h` on `s` and forwards the session's pings and pongs to it.
    session_run(const session_handler& h, session& s, handshake_info& info);
    session_run(const session_run&) = delete;
    session_run& operator=(const session_run&) = delete;
    ~session_run() override;
    /// The handler's run: the coroutine body, or on_open and the message loop.
    core::task<void> handler() { return run_->run(); }
    /// The close owed by a handler that ended with the session still open: 1000, or 1011 when
    /// it threw (RFC 6455 §7.4.1).
    core::task<core::result<void>> close(const std::exception_ptr& failed);
    /// Stops forwarding, then on_close with the peer's code unless the handler threw; rethrows
    /// what it (or on_close) threw.
    void finish(std::exception_ptr failed);

private:
    void on_ping(session&, std::string_view payload) override { run_->ping(payload); }
    void on_pong(session&, std::string_view payload) override { run_->pong(payload); }

    session& s_;
    std::unique_ptr<connection_handler<session>> run_;
};

} // namespace detail

/// Runs `h` on `s` until the session ends: on_open, each message, control frames, on_error,
/// then on_close with the peer's code (coroutine style: the body; the session is closed with
/// 1000 when it returns while still open). `s` and `info` must outlive the returned task.
/// ws::server and http_ws routes call this; a program that makes its own sessions may too.
CORONET_WS_EXPORT core::task<void> serve_session(const session_handler& h, session& s,
                                                 handshake_info& info);

} // namespace coronet::ws
