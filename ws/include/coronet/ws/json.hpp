#pragma once

// JSON messages over WebSocket: an optional, header-only adapter on nlohmann/json (Debian's
// nlohmann-json3-dev, 3.9 or newer). libcoronet_ws neither includes nor links it: only a program
// that includes this header needs nlohmann/json. Guide: docs/ws.md "JSON".

#include <coronet/core/result.hpp>
#include <coronet/core/task.hpp>
#include <coronet/ws/frame.hpp>
#include <coronet/ws/hub.hpp>
#include <coronet/ws/session.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <exception>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

static_assert(NLOHMANN_JSON_VERSION_MAJOR > 3 ||
                  (NLOHMANN_JSON_VERSION_MAJOR == 3 && NLOHMANN_JSON_VERSION_MINOR >= 9),
              "coronet/ws/json.hpp needs nlohmann/json 3.9 or newer");

namespace coronet::ws {

/// Why a JSON helper returned no value. Malformed input is never an exception and never ends
/// the session: the caller decides what to do (answer with an error message, or close, e.g.
/// with 1007 "invalid frame payload data", RFC 6455 §7.4.1).
enum class json_errc {
    malformed = 1,     ///< not one JSON value (RFC 8259): a syntax error, trailing bytes, invalid
                       ///< UTF-8 in a string, a number too large for a double, an empty text
    too_deep,          ///< arrays and objects nested deeper than the depth limit (json_max_depth)
    not_text,          ///< a binary message where a JSON text message was expected
    conversion_failed, ///< valid JSON that `from_json` could not turn into the asked type
};

namespace detail {
class json_error_category final : public std::error_category {
public:
    const char* name() const noexcept override { return "coronet.ws.json"; }
    std::string message(int ev) const override {
        switch (static_cast<json_errc>(ev)) {
        case json_errc::malformed:
            return "malformed JSON";
        case json_errc::too_deep:
            return "JSON nested too deeply";
        case json_errc::not_text:
            return "a binary message where JSON text was expected";
        case json_errc::conversion_failed:
            return "JSON does not convert to the requested type";
        }
        return "unknown JSON error";
    }
};
} // namespace detail

/// The category of json_errc, named "coronet.ws.json". Header-only: the function has default
/// visibility, so every shared object of a program that includes this header (even one built
/// with -fvisibility=hidden -fvisibility-inlines-hidden) shares one category object and error
/// codes compare equal across them.
[[gnu::visibility("default")]] inline const std::error_category& json_category() noexcept {
    static const detail::json_error_category category;
    return category;
}

/// Makes an error_code of the JSON category (found by ADL).
inline std::error_code make_error_code(json_errc e) noexcept {
    return {static_cast<int>(e), json_category()};
}

} // namespace coronet::ws

template <>
struct std::is_error_code_enum<coronet::ws::json_errc> : std::true_type {};

namespace coronet::ws {

/// The default nesting limit of arrays and objects in received JSON (`[[1]]` is depth 2;
/// scalars are depth 0). nlohmann's parser keeps its own stack, but `dump`, comparison,
/// `from_json` and `to_json` recurse once per level: the limit keeps every later use of a parsed
/// value within the stack (a 100000-deep `[[[...` is refused before it is parsed). 128 as
/// serde_json's default.
inline constexpr std::size_t json_max_depth = 128;

namespace detail {
/// True when `text` opens more than `max_depth` arrays and objects at once. Brackets inside
/// strings do not count; a malformed text is left to the parser.
inline bool json_nesting_exceeds(std::string_view text, std::size_t max_depth) noexcept {
    std::size_t depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return true;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return false;
}
} // namespace detail

/// Parses one JSON value (RFC 8259; any value at the top, no comments) without exceptions.
/// Errors: `json_errc::too_deep` (more than `max_depth` levels of arrays and objects),
/// `json_errc::malformed`. Only `std::bad_alloc` is thrown. For event-style handlers
/// (`on_message`) and for a depth other than json_max_depth.
inline core::result<nlohmann::json> parse_json(std::string_view text,
                                               std::size_t max_depth = json_max_depth) {
    if (detail::json_nesting_exceeds(text, max_depth))
        return make_error_code(json_errc::too_deep);
    auto value = nlohmann::json::parse(text.data(), text.data() + text.size(), nullptr,
                                       /*allow_exceptions=*/false, /*ignore_comments=*/false);
    if (value.is_discarded())
        return make_error_code(json_errc::malformed);
    return value;
}

/// Parses a received message: `json_errc::not_text` for a binary message, otherwise as
/// parse_json(m.data).
inline core::result<nlohmann::json> parse_json(const message& m) {
    if (!m.is_text())
        return make_error_code(json_errc::not_text);
    return parse_json(m.data);
}

/// Converts `value` to `T` through nlohmann's `from_json` (or `adl_serializer<T>`) without
/// letting an exception escape: nlohmann's type_error and out_of_range (a wrong type, a missing
/// key), and any other std::exception a user's `from_json` throws to refuse a value, give
/// `json_errc::conversion_failed` (call `value.get<T>()` yourself to see the message). Only
/// `std::bad_alloc` is rethrown.
template <class T>
core::result<T> convert_json(const nlohmann::json& value) {
    try {
        return value.get<T>();
    } catch (const std::bad_alloc&) {
        throw;
    } catch (const std::exception&) {
        return make_error_code(json_errc::conversion_failed);
    }
}

/// parse_json, then convert_json<T>: the errors of both.
template <class T>
core::result<T> parse_json(std::string_view text, std::size_t max_depth = json_max_depth) {
    auto value = parse_json(text, max_depth);
    if (!value)
        return value.error();
    return convert_json<T>(*value);
}

/// parse_json(m), then convert_json<T>: the errors of both.
template <class T>
core::result<T> parse_json(const message& m) {
    auto value = parse_json(m);
    if (!value)
        return value.error();
    return convert_json<T>(*value);
}

/// The text every send below puts on the wire: compact (no spaces), non-ASCII characters as
/// UTF-8 (not \u escapes), and with `error_handler_t::replace`: a string holding invalid UTF-8
/// is sent with U+FFFD in place of each bad byte sequence, so the message is always valid UTF-8
/// (a peer would otherwise fail the connection with 1007) and dumping never throws
/// `type_error` 316. Only `std::bad_alloc` is thrown. Recurses once per nesting level.
inline std::string dump_json(const nlohmann::json& value) {
    return value.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
}

/// A prepared text message holding dump_json(value), for `hub::broadcast` and friends
/// (encoded once, shared by every receiver).
inline prepared_message prepare_json(const nlohmann::json& value) {
    return prepared_message::text(dump_json(value));
}

namespace detail {
template <class Connection>
core::task<core::result<void>> send_json_text(Connection& c, std::string text) {
    co_return co_await c.send_text(text);
}

template <class Connection>
core::task<core::result<nlohmann::json>> receive_json_from(Connection& c) {
    auto m = co_await c.receive();
    if (!m)
        co_return m.error();
    co_return parse_json(*m);
}

template <class T, class Connection>
core::task<core::result<T>> receive_json_as(Connection& c) {
    auto value = co_await receive_json_from(c);
    if (!value)
        co_return value.error();
    co_return convert_json<T>(*value);
}
} // namespace detail

/// Sends `value` as one text message (dump_json). The value is serialized when this is called,
/// so it need not outlive the call; the task owns the text. A type with a `to_json` converts
/// implicitly (`send_json(s, my_struct)`); an exception from that `to_json` is thrown at the
/// call. Errors: as session::send_text. `s` must outlive the task.
inline core::task<core::result<void>> send_json(session& s, const nlohmann::json& value) {
    return detail::send_json_text(s, dump_json(value));
}

/// As send_json(session&, ...), queued on a hub connection in order with its broadcasts.
/// Errors: as hub_connection::send_text. `c` must outlive the task.
inline core::task<core::result<void>> send_json(hub_connection& c, const nlohmann::json& value) {
    return detail::send_json_text(c, dump_json(value));
}

/// The next message, parsed (json_max_depth). Errors: the session's receive errors, then
/// `json_errc::not_text`, `too_deep` or `malformed`. A JSON error consumed that one message
/// only: the session stays open and the next call returns the next message. `s` must outlive
/// the task.
inline core::task<core::result<nlohmann::json>> receive_json(session& s) {
    return detail::receive_json_from(s);
}

/// As receive_json(session&), from a hub connection (coroutine-style body of `hub::serve`).
inline core::task<core::result<nlohmann::json>> receive_json(hub_connection& c) {
    return detail::receive_json_from(c);
}

/// The next message, parsed and converted to `T` (convert_json). Errors: those of
/// receive_json(session&), then `json_errc::conversion_failed`; the session stays usable.
template <class T>
core::task<core::result<T>> receive_json(session& s) {
    return detail::receive_json_as<T>(s);
}

/// As receive_json<T>(session&), from a hub connection.
template <class T>
core::task<core::result<T>> receive_json(hub_connection& c) {
    return detail::receive_json_as<T>(c);
}

} // namespace coronet::ws
