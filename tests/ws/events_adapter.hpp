#pragma once
// Tests keep their recording handlers as plain classes with on_* member functions; this turns
// one into a ws::events whose hooks forward to the members it has.

#include <coronet/ws/handler.hpp>
#include <coronet/ws/hub.hpp>

namespace coronet::testing {

/// A handler for connections of type `Conn` (ws::session or ws::hub_connection) forwarding to
/// `obj`'s on_open / on_message / on_ping / on_pong / on_error / on_close members (each one only
/// when `T` has it). `obj` must outlive the handler.
template <class Conn, class T>
auto events_of(T& obj) {
    using conn = Conn;
    return ws::events<>()
        .on_open([&obj](auto& c) {
            if constexpr (requires(conn & k) { obj.on_open(k); })
                obj.on_open(c.conn);
        })
        .on_message([&obj](auto& c, ws::message& m) -> core::task<void> {
            if constexpr (requires(conn & k, ws::message & x) { obj.on_message(k, x); })
                return obj.on_message(c.conn, m);
            else
                return [](ws::message&) -> core::task<void> { co_return; }(m);
        })
        .on_ping([&obj](auto& c, std::string_view p) {
            if constexpr (requires(conn & k) { obj.on_ping(k, p); })
                obj.on_ping(c.conn, p);
        })
        .on_pong([&obj](auto& c, std::string_view p) {
            if constexpr (requires(conn & k) { obj.on_pong(k, p); })
                obj.on_pong(c.conn, p);
        })
        .on_error([&obj](auto& c, std::error_code ec) {
            if constexpr (requires(conn & k) { obj.on_error(k, ec); })
                obj.on_error(c.conn, ec);
        })
        .on_close([&obj](auto& c, std::uint16_t code, std::string_view reason) {
            if constexpr (requires(conn & k) { obj.on_close(k, code, reason); })
                obj.on_close(c.conn, code, reason);
        });
}

} // namespace coronet::testing
