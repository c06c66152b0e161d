#pragma once

#include <coronet/core/export.hpp>
#include <coronet/core/intrusive_list.hpp>

#include <utility>

namespace coronet::core {

class stop_source;

/// A registration that is invoked once when its stop_source is asked to stop. The base of every
/// cancellation hook: I/O operations, timers and waits embed one, so registering allocates
/// nothing. Single-threaded: a stop_source and its callbacks belong to one loop thread (cross-
/// thread cancellation goes through `loop::post`).
class CORONET_CORE_EXPORT stop_callback_base : private intrusive_list_hook<stop_source> {
public:
    using function_type = void (*)(stop_callback_base*) noexcept;

    explicit stop_callback_base(function_type fn) noexcept : fn_(fn) {}
    stop_callback_base(const stop_callback_base&) = delete;
    stop_callback_base& operator=(const stop_callback_base&) = delete;
    ~stop_callback_base() { detach(); }

    /// Registers with `src`. If stop was already requested, invokes the function at once and
    /// returns false; otherwise returns true. A null `src` registers nothing and returns true.
    bool attach(stop_source* src) noexcept;
    /// Unregisters (no-op if not registered or already invoked).
    void detach() noexcept;
    /// True while registered and not yet invoked.
    bool attached() const noexcept { return src_ != nullptr; }

private:
    friend class stop_source;
    // The list hook is tagged, so a class deriving from this one keeps the untagged hook free.
    friend class intrusive_list<stop_callback_base, stop_source>;
    function_type fn_;
    stop_source* src_ = nullptr;
};

/// A read-only view of a stop_source, passed down from a task to its children and the I/O
/// operations it awaits. A default-constructed token can never be stopped. The source must
/// outlive every token and registration made from it.
class stop_token {
public:
    stop_token() noexcept = default;
    explicit stop_token(stop_source* src) noexcept : src_(src) {}

    /// True when the source asked to stop.
    bool stop_requested() const noexcept;
    /// True when the token has a source at all.
    bool stop_possible() const noexcept { return src_ != nullptr; }
    /// The source, for registering a stop_callback_base (null when none).
    stop_source* source() const noexcept { return src_; }

private:
    stop_source* src_ = nullptr;
};

/// The owner of a stop request. Not movable (tokens and registrations point at it).
/// `request_stop()` invokes every registered callback once, in registration order. A source
/// may be linked to a parent token: when the parent stops, so does this source.
class CORONET_CORE_EXPORT stop_source {
public:
    stop_source() noexcept = default;
    /// A source that also stops when `parent` stops.
    explicit stop_source(stop_token parent) noexcept;
    stop_source(const stop_source&) = delete;
    stop_source& operator=(const stop_source&) = delete;
    ~stop_source();

    /// Requests stop; returns false if it had already been requested.
    bool request_stop() noexcept;
    bool stop_requested() const noexcept { return requested_; }
    stop_token token() noexcept { return stop_token(this); }

private:
    friend class stop_callback_base;
    static void on_parent_stop(stop_callback_base* cb) noexcept;

    struct parent_link : stop_callback_base {
        explicit parent_link(stop_source* o) noexcept
            : stop_callback_base(&on_parent_stop), owner(o) {}
        stop_source* owner;
    };

    bool requested_ = false;
    intrusive_list<stop_callback_base, stop_source> callbacks_;
    parent_link parent_link_{this};
};

inline bool stop_token::stop_requested() const noexcept {
    return src_ != nullptr && src_->stop_requested();
}

/// A stop callback that calls `F` (a callable with no arguments, noexcept) on stop.
template <class F>
class stop_callback : private stop_callback_base {
public:
    /// Registers `f` with `tok`'s source; invokes it at once if stop was already requested.
    stop_callback(stop_token tok, F f) noexcept : stop_callback_base(&invoke), f_(std::move(f)) {
        attach(tok.source());
    }

private:
    static void invoke(stop_callback_base* self) noexcept {
        static_cast<stop_callback*>(self)->f_();
    }
    F f_;
};

} // namespace coronet::core
