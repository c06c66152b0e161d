#pragma once

#include <coronet/ws/export.hpp>

#include <string>
#include <string_view>

namespace coronet::ws {

/// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64(SHA-1(key + the RFC 6455 GUID))
/// computed with OpenSSL (RFC 6455 §4.2.2). For the RFC's example key "dGhlIHNhbXBsZSBub25jZQ=="
/// it is "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
CORONET_WS_EXPORT std::string accept_key(std::string_view client_key);

/// True if `key` is a valid Sec-WebSocket-Key: base64 that decodes to exactly 16 bytes
/// (RFC 6455 §4.1).
CORONET_WS_EXPORT bool valid_client_key(std::string_view key) noexcept;

/// A fresh Sec-WebSocket-Key: 16 random bytes from OpenSSL's RAND_bytes, base64-encoded.
/// Throws std::runtime_error if the random generator fails (a broken invariant).
CORONET_WS_EXPORT std::string make_client_key();

} // namespace coronet::ws
