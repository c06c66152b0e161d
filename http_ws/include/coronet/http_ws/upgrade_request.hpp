#pragma once

#include <coronet/http/message.hpp>
#include <coronet/http_ws/export.hpp>

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <typeinfo>
#include <utility>
#include <vector>

namespace coronet::http_ws {

/// What a WebSocket handler knows about the HTTP request that opened its session: the target,
/// the route's path parameters, the request headers the route asked to keep
/// (`upgrade_options::keep_headers`), the negotiated subprotocol, and a slot for the
/// application's own per-connection state.
///
/// Everything is an owned copy: the HTTP request and its read buffer are gone once the
/// connection is taken over, and a session may live for hours, so only what the route asked for
/// is kept (a Cookie, not the whole head). Views returned by the accessors are valid as long as
/// this object and until the kept data is modified; the bridge keeps the object alive until the
/// session's handler has returned. Not thread-safe (the session's loop thread).
class CORONET_HTTP_WS_EXPORT upgrade_request {
public:
    /// A name and a value (header field or path parameter).
    using pair = std::pair<std::string, std::string>;

    /// An empty request (no target, parameters, headers or state), e.g. for a test.
    upgrade_request() = default;
    /// Copies from `req` its target, its path parameters and every header field whose name is
    /// in `keep_headers` (case-insensitive; repeats and request order kept), and records
    /// `subprotocol` (empty: none negotiated).
    upgrade_request(const http::request& req, std::span<const std::string> keep_headers,
                    std::string subprotocol);
    /// Movable (the state moves along); not copyable (the state may be move-only).
    upgrade_request(upgrade_request&&) noexcept = default;
    upgrade_request& operator=(upgrade_request&&) noexcept = default;
    upgrade_request(const upgrade_request&) = delete;
    upgrade_request& operator=(const upgrade_request&) = delete;
    ~upgrade_request() = default;

    /// The request-target as sent (path and query, still percent-encoded).
    std::string_view target() const noexcept { return target_; }
    /// The path part of the target, still percent-encoded.
    std::string_view path() const noexcept { return path_; }
    /// The query string without '?', still percent-encoded; empty if none.
    std::string_view query() const noexcept { return query_; }

    /// The path parameter `name` captured by the route (`:name`, or `*` for a trailing
    /// wildcard), still percent-encoded; empty if absent.
    std::string_view param(std::string_view name) const noexcept;
    /// Every captured parameter, in pattern order.
    const std::vector<pair>& params() const noexcept { return params_; }

    /// The first kept header field named `name` (case-insensitive), or empty. Only fields named
    /// in `upgrade_options::keep_headers` are kept.
    std::string_view header(std::string_view name) const noexcept;
    /// Every kept header field, in request order.
    const std::vector<pair>& headers() const noexcept { return headers_; }

    /// The subprotocol the handshake chose (RFC 6455 §4.2.2, `Sec-WebSocket-Protocol`), or
    /// empty when none was offered or none matched.
    std::string_view subprotocol() const noexcept { return subprotocol_; }

    /// Attaches per-connection state of type `T` built from `args`, replacing (and destroying)
    /// any earlier state; returns it. Typically called by `upgrade_options::admit` (e.g. the
    /// user a cookie names) or by the handler itself. Destroyed with this object, after the
    /// session's handler has returned. `T` may be move-only.
    template <class T, class... Args>
    T& emplace_state(Args&&... args) {
        auto owned = std::make_unique<T>(std::forward<Args>(args)...);
        T& ref = *owned;
        state_ = state_ptr(owned.release(), [](void* p) noexcept { delete static_cast<T*>(p); });
        state_type_ = &typeid(T);
        return ref;
    }
    /// The attached state if it is a `T`; null when there is none or it has another type.
    template <class T>
    T* state() noexcept {
        return state_ && *state_type_ == typeid(T) ? static_cast<T*>(state_.get()) : nullptr;
    }
    /// The attached state if it is a `T` (const access); null otherwise.
    template <class T>
    const T* state() const noexcept {
        return state_ && *state_type_ == typeid(T) ? static_cast<const T*>(state_.get()) : nullptr;
    }
    /// True if state is attached.
    bool has_state() const noexcept { return static_cast<bool>(state_); }
    /// Destroys the attached state, if any.
    void reset_state() noexcept {
        state_.reset();
        state_type_ = nullptr;
    }

private:
    using state_ptr = std::unique_ptr<void, void (*)(void*) noexcept>;

    std::string target_;
    std::string path_;
    std::string query_;
    std::vector<pair> params_;
    std::vector<pair> headers_;
    std::string subprotocol_;
    state_ptr state_{nullptr, [](void*) noexcept {}};
    const std::type_info* state_type_ = nullptr;
};

} // namespace coronet::http_ws
