#pragma once

#include <coronet/core/tls.hpp>

#include <openssl/ssl.h>

#include <functional>
#include <string_view>
#include <system_error>
#include <vector>

namespace coronet::core {

struct tls_context::impl {
    SSL_CTX* ctx = nullptr;
    bool server = false;
    bool verify = true;
    std::vector<unsigned char> alpn_wire;
    std::function<const tls_context*(std::string_view)> sni;
    ~impl();
};

namespace detail {
/// Takes the newest error off OpenSSL's (thread-local) queue, clears the queue.
std::error_code last_tls_error() noexcept;
/// SSL_CTX new-session callback (client): hands the session to its tls_stream.
int on_new_session(SSL* ssl, SSL_SESSION* session);
} // namespace detail

} // namespace coronet::core
