#pragma once

#include <coronet/ws/deflate.hpp>
#include <coronet/ws/export.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <typeinfo>
#include <utility>
#include <vector>

namespace coronet::ws {

/// What a WebSocket handler knows about the opening handshake of its connection, the same on a
/// standalone `ws::server`, an http_ws upgrade route and a hub connection: the request-target,
/// the route's path parameters (an upgrade route's `:name` captures; none on a standalone
/// server), the request header fields the server was asked to keep, the negotiated subprotocol
/// and permessage-deflate parameters, and a slot for the application's own per-connection
/// state.
///
/// Everything is an owned copy: the request and its read buffer are gone once the session
/// starts, and a session may live for hours, so only what was asked for is kept (a Cookie,
/// not the whole head). Views returned by the accessors are valid as long as this object and
/// until the kept data is modified. The server or route that made it keeps it alive until the
/// handler has finished. Not thread-safe (the connection's loop thread).
class CORONET_WS_EXPORT handshake_info {
public:
    /// A name and a value (header field or path parameter).
    using pair = std::pair<std::string, std::string>;

    /// An empty handshake (no target, parameters, headers or state), e.g. for a test.
    handshake_info() = default;
    /// A handshake for `target` (path and query split at the first '?').
    explicit handshake_info(std::string target);
    /// Movable (the state moves along); not copyable (the state may be move-only).
    handshake_info(handshake_info&&) noexcept = default;
    handshake_info& operator=(handshake_info&&) noexcept = default;
    handshake_info(const handshake_info&) = delete;
    handshake_info& operator=(const handshake_info&) = delete;
    ~handshake_info() = default;

    /// The request-target as sent (path and query, still percent-encoded).
    std::string_view target() const noexcept { return target_; }
    /// The path part of the target, still percent-encoded.
    std::string_view path() const noexcept { return std::string_view(target_).substr(0, path_); }
    /// The query string without '?', still percent-encoded; empty if none.
    std::string_view query() const noexcept;

    /// The path parameter `name` (`:name`, or `*` for a trailing wildcard, of an upgrade route),
    /// still percent-encoded; empty if absent.
    std::string_view param(std::string_view name) const noexcept;
    /// Every captured parameter, in pattern order.
    const std::vector<pair>& params() const noexcept;
    /// Appends a path parameter (the server or route that accepted the handshake does this).
    void add_param(std::string name, std::string value) {
        more().params.emplace_back(std::move(name), std::move(value));
    }

    /// The first kept header field named `name` (case-insensitive), or empty.
    std::string_view header(std::string_view name) const noexcept;
    /// Every kept header field, in request order.
    const std::vector<pair>& headers() const noexcept;
    /// Appends a kept header field (the server or route that accepted the handshake does this).
    void add_header(std::string name, std::string value) {
        more().headers.emplace_back(std::move(name), std::move(value));
    }

    /// The subprotocol the handshake chose (RFC 6455 §4.2.2, `Sec-WebSocket-Protocol`), or
    /// empty when none was offered or none matched.
    std::string_view subprotocol() const noexcept {
        return more_ ? std::string_view(more_->subprotocol) : std::string_view();
    }
    void set_subprotocol(std::string p) {
        if (more_ || !p.empty())
            more().subprotocol = std::move(p);
    }

    /// permessage-deflate as agreed (RFC 7692), or nullopt: the one extension coronet speaks.
    const std::optional<deflate_params>& deflate() const noexcept { return deflate_; }
    void set_deflate(std::optional<deflate_params> d) noexcept { deflate_ = d; }

    /// Attaches per-connection state of type `T` built from `args`, replacing (and destroying)
    /// any earlier state; returns it. E.g. an http_ws admission check stores the user a cookie
    /// names, and the handler reads it back with `state<T>()`. Destroyed with this object, after
    /// the handler has finished. `T` may be move-only. (Event handlers built with `ws::events`
    /// also get a typed state of their own: `context::state`.)
    template <class T, class... Args>
    T& emplace_state(Args&&... args) {
        auto owned = std::make_unique<T>(std::forward<Args>(args)...);
        T& ref = *owned;
        extras& m = more();
        m.state = state_ptr(owned.release(), [](void* p) noexcept { delete static_cast<T*>(p); });
        m.state_type = &typeid(T);
        return ref;
    }
    /// The attached state if it is a `T`; null when there is none or it has another type.
    template <class T>
    T* state() noexcept {
        return has_state() && *more_->state_type == typeid(T) ? static_cast<T*>(more_->state.get())
                                                              : nullptr;
    }
    /// The attached state if it is a `T` (const access); null otherwise.
    template <class T>
    const T* state() const noexcept {
        return has_state() && *more_->state_type == typeid(T)
                   ? static_cast<const T*>(more_->state.get())
                   : nullptr;
    }
    /// True if state is attached.
    bool has_state() const noexcept { return more_ && more_->state; }
    /// Destroys the attached state, if any.
    void reset_state() noexcept {
        if (more_) {
            more_->state.reset();
            more_->state_type = nullptr;
        }
    }

private:
    using state_ptr = std::unique_ptr<void, void (*)(void*) noexcept>;
    // What many connections never have, allocated on first use: a handshake_info lives as
    // long as its connection, and an idle connection should cost little more than its target.
    struct extras {
        std::vector<pair> params;
        std::vector<pair> headers;
        std::string subprotocol;
        state_ptr state{nullptr, [](void*) noexcept {}};
        const std::type_info* state_type = nullptr;
    };
    extras& more();

    std::string target_;
    std::size_t path_ = 0; ///< the path's length within target_
    std::optional<deflate_params> deflate_;
    std::unique_ptr<extras> more_;
};

} // namespace coronet::ws
