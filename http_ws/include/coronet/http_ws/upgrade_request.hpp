#pragma once

#include <coronet/http/message.hpp>
#include <coronet/http_ws/export.hpp>
#include <coronet/ws/handshake_info.hpp>

#include <span>
#include <string>

namespace coronet::http_ws {

/// What a WebSocket handler knows about the HTTP request that opened its session: the one
/// handshake-info type of coronet (`ws::handshake_info`), here with the route's path
/// parameters and the request headers the route asked to keep (`upgrade_options::keep_headers`).
/// The bridge keeps it alive until the session's handler has finished.
using upgrade_request = ws::handshake_info;

/// The handshake info of `req`: its target, its path parameters and every header field whose
/// name is in `keep_headers` (case-insensitive; repeats and request order kept), with
/// `subprotocol` (empty: none negotiated).
CORONET_HTTP_WS_EXPORT ws::handshake_info
handshake_info_of(const http::request& req, std::span<const std::string> keep_headers,
                  std::string subprotocol);

} // namespace coronet::http_ws
