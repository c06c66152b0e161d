#include <coronet/ws/error.hpp>

#include <coronet/core/error.hpp>

#include <doctest/doctest.h>

#include <ostream> // doctest prints an error_code through operator<<
#include <string>
#include <system_error>

namespace core = coronet::core;
namespace ws = coronet::ws;

TEST_SUITE("ws.handshake_error") {

    TEST_CASE("every handshake error equals bad_handshake and no other ws error") {
        for (int v = static_cast<int>(ws::handshake_errc::invalid_url);
             v <= static_cast<int>(ws::handshake_errc::invalid_extension); ++v) {
            const std::error_code ec = make_error_code(static_cast<ws::handshake_errc>(v));
            CAPTURE(ec.message());
            CHECK(ec == ws::errc::bad_handshake);
            CHECK(ws::errc::bad_handshake == ec);
            CHECK(ec != ws::errc::protocol_error);
            CHECK(ec != ws::errc::closed);
            CHECK(ec.category().name() == std::string("coronet.ws.handshake"));
            CHECK(ec.message().starts_with("WebSocket handshake: "));
            CHECK(
                ec.default_error_condition() ==
                std::error_condition(static_cast<int>(ws::errc::bad_handshake), ws::ws_category()));
        }
    }

    TEST_CASE("handshake errors compare equal only to themselves") {
        const std::error_code accept = make_error_code(ws::handshake_errc::bad_accept);
        CHECK(accept == ws::handshake_errc::bad_accept);
        CHECK(accept != ws::handshake_errc::no_upgrade_websocket);
        CHECK(accept != ws::handshake_errc::unexpected_status);
        // The plain ws code is the broader condition, not any one cause.
        const std::error_code plain = make_error_code(ws::errc::bad_handshake);
        CHECK(plain == ws::errc::bad_handshake);
        CHECK(plain != ws::handshake_errc::bad_accept);
    }

    TEST_CASE("ws codes and other layers' codes compare as before") {
        const std::error_code closed = make_error_code(ws::errc::closed);
        CHECK(closed == ws::errc::closed);
        CHECK(closed != ws::errc::bad_handshake);
        const std::error_code eof = make_error_code(core::errc::end_of_stream);
        CHECK(eof != ws::errc::bad_handshake);
        CHECK(eof != ws::handshake_errc::malformed_response);
        CHECK(std::error_code() != ws::errc::bad_handshake);
        // Same value, another category: not a ws error.
        const std::error_code sys(static_cast<int>(ws::errc::bad_handshake),
                                  std::system_category());
        CHECK(sys != ws::errc::bad_handshake);
    }

    TEST_CASE("an unexpected status travels in the error code and its message") {
        const std::error_code ec = ws::unexpected_status_error(403);
        CHECK(ec == ws::handshake_errc::unexpected_status);
        CHECK(ec == ws::errc::bad_handshake);
        CHECK(ec != ws::handshake_errc::bad_accept);
        CHECK(ws::handshake_status(ec) == 403);
        CHECK(ec.message().find("403") != std::string::npos);
        CHECK(ws::handshake_status(ws::unexpected_status_error(101)) == 101);
        CHECK(ws::handshake_status(ws::unexpected_status_error(999)) == 999);
    }

    TEST_CASE("handshake_status is zero for codes that carry no status") {
        CHECK(ws::handshake_status(make_error_code(ws::handshake_errc::unexpected_status)) == 0);
        CHECK(ws::handshake_status(make_error_code(ws::handshake_errc::bad_accept)) == 0);
        CHECK(ws::handshake_status(make_error_code(ws::errc::bad_handshake)) == 0);
        CHECK(ws::handshake_status(std::error_code(1403, std::generic_category())) == 0);
        CHECK(ws::handshake_status(std::error_code()) == 0);
        // Out of range: the cause without a status.
        const std::error_code odd = ws::unexpected_status_error(42);
        CHECK(odd == ws::handshake_errc::unexpected_status);
        CHECK(ws::handshake_status(odd) == 0);
    }

} // TEST_SUITE
