#pragma once

#include <coronet/core/stop.hpp>
#include <coronet/core/task.hpp>

#include <array>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace coronet::core {

namespace detail {

template <class T>
using non_void_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

struct join_state {
    std::size_t remaining = 0;
    std::coroutine_handle<> parent;
    stop_source* stop = nullptr;
    bool stop_on_first = false; // when_any: the first to finish stops the others
    std::size_t winner = static_cast<std::size_t>(-1);
    std::exception_ptr error;
};

struct join_child_promise;
struct join_child {
    using promise_type = join_child_promise;
    std::coroutine_handle<promise_type> h;
};
struct join_child_promise : promise_base {
    join_state* state = nullptr;
    join_child get_return_object() noexcept {
        return {std::coroutine_handle<join_child_promise>::from_promise(*this)};
    }
    struct final_awaiter {
        bool await_ready() const noexcept { return false; }
        std::coroutine_handle<>
        await_suspend(std::coroutine_handle<join_child_promise> h) noexcept {
            join_state* s = h.promise().state;
            if (--s->remaining == 0)
                return s->parent;
            return std::noop_coroutine();
        }
        void await_resume() const noexcept {}
    };
    final_awaiter final_suspend() const noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
};

template <class T>
join_child run_join_child(task<T> t, std::optional<non_void_t<T>>& slot, join_state& s,
                          std::size_t index) {
    try {
        if constexpr (std::is_void_v<T>) {
            co_await std::move(t);
            slot.emplace();
        } else {
            slot.emplace(co_await std::move(t));
        }
    } catch (...) {
        if (!s.error)
            s.error = std::current_exception();
        if (s.stop != nullptr)
            s.stop->request_stop();
    }
    if (s.stop_on_first && s.winner == static_cast<std::size_t>(-1)) {
        s.winner = index;
        if (s.stop != nullptr)
            s.stop->request_stop();
    }
}

template <class... T>
class join_awaitable {
public:
    static constexpr std::size_t count = sizeof...(T);

    join_awaitable(join_state& s, stop_source& src, std::tuple<task<T>...>& tasks,
                   std::tuple<std::optional<non_void_t<T>>...>& slots)
        : state_(s), src_(src), tasks_(tasks), slots_(slots) {}

    ~join_awaitable() {
        for (auto h : children_)
            if (h)
                h.destroy();
    }

    bool await_ready() const noexcept { return count == 0; }
    bool await_suspend(std::coroutine_handle<> parent) {
        state_.parent = parent;
        state_.remaining = count + 1;
        state_.stop = &src_;
        start(std::index_sequence_for<T...>{});
        return --state_.remaining != 0;
    }
    void await_resume() const noexcept {}

private:
    template <std::size_t... I>
    void start(std::index_sequence<I...>) {
        (start_one<I>(), ...);
    }
    template <std::size_t I>
    void start_one() {
        join_child c =
            run_join_child(std::move(std::get<I>(tasks_)), std::get<I>(slots_), state_, I);
        c.h.promise().state = &state_;
        c.h.promise().set_token(src_.token());
        children_[I] = c.h;
        c.h.resume();
    }

    join_state& state_;
    stop_source& src_;
    std::tuple<task<T>...>& tasks_;
    std::tuple<std::optional<non_void_t<T>>...>& slots_;
    std::array<std::coroutine_handle<join_child_promise>, count> children_{};
};

} // namespace detail

/// Runs every task concurrently on the current loop and returns all their values (void as
/// std::monostate) once every one has finished. The children inherit the caller's stop token
/// (through a source linked to it). If a child throws, the others are asked to stop, all are
/// awaited, and the first exception is rethrown.
template <class... T>
task<std::tuple<detail::non_void_t<T>...>> when_all(task<T>... tasks) {
    stop_token parent = co_await get_stop_token();
    stop_source src(parent);
    detail::join_state state;
    std::tuple<task<T>...> ts(std::move(tasks)...);
    std::tuple<std::optional<detail::non_void_t<T>>...> slots;
    {
        detail::join_awaitable<T...> aw(state, src, ts, slots);
        co_await aw;
    }
    if (state.error)
        std::rethrow_exception(state.error);
    co_return std::apply(
        [](auto&... s) { return std::tuple<detail::non_void_t<T>...>(std::move(*s)...); }, slots);
}

/// Runs every task concurrently and returns the value of the first to finish, as a variant
/// whose index is that task's position (void as std::monostate). The others are cancelled
/// through their stop token and awaited to completion before when_any returns. If a child
/// throws, the first exception is rethrown (after all finished).
template <class... T>
task<std::variant<detail::non_void_t<T>...>> when_any(task<T>... tasks) {
    static_assert(sizeof...(T) > 0, "when_any needs at least one task");
    stop_token parent = co_await get_stop_token();
    stop_source src(parent);
    detail::join_state state;
    state.stop_on_first = true;
    std::tuple<task<T>...> ts(std::move(tasks)...);
    std::tuple<std::optional<detail::non_void_t<T>>...> slots;
    {
        detail::join_awaitable<T...> aw(state, src, ts, slots);
        co_await aw;
    }
    if (state.error)
        std::rethrow_exception(state.error);
    std::optional<std::variant<detail::non_void_t<T>...>> out;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        ((I == state.winner
              ? (out.emplace(std::in_place_index<I>, std::move(*std::get<I>(slots))), 0)
              : 0),
         ...);
    }
    (std::index_sequence_for<T...>{});
    co_return std::move(*out);
}

} // namespace coronet::core
