#include <coronet/core/tls.hpp>

#include "tls_impl.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <string>

namespace coronet::core {
namespace {

class tls_error_category final : public std::error_category {
public:
    const char* name() const noexcept override { return "coronet.tls"; }
    std::string message(int ev) const override {
        const char* reason = ERR_reason_error_string(static_cast<unsigned long>(ev));
        std::string m = "TLS: ";
        m += reason != nullptr ? reason : "error " + std::to_string(ev);
        return m;
    }
};

class tls_verify_error_category final : public std::error_category {
public:
    const char* name() const noexcept override { return "coronet.tls_verify"; }
    std::string message(int ev) const override {
        return std::string("certificate verify failed: ") + X509_verify_cert_error_string(ev);
    }
};

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned inlen, void* arg) {
    auto* impl = static_cast<tls_context::impl*>(arg);
    if (impl->alpn_wire.empty())
        return SSL_TLSEXT_ERR_NOACK;
    unsigned char* selected = nullptr;
    // Server preference: SSL_select_next_proto walks its first list and takes the first match.
    if (SSL_select_next_proto(&selected, outlen, impl->alpn_wire.data(),
                              static_cast<unsigned>(impl->alpn_wire.size()), in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

int on_server_name(SSL* ssl, int*, void* arg) {
    auto* impl = static_cast<tls_context::impl*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == nullptr || !impl->sni)
        return SSL_TLSEXT_ERR_OK;
    const tls_context* chosen = impl->sni(name);
    if (chosen != nullptr && chosen->get() != nullptr && chosen->get()->ctx != impl->ctx)
        SSL_set_SSL_CTX(ssl, chosen->get()->ctx);
    return SSL_TLSEXT_ERR_OK;
}

std::vector<unsigned char> alpn_wire(const std::vector<std::string>& protos) {
    std::vector<unsigned char> w;
    for (const auto& p : protos) {
        if (p.empty() || p.size() > 255)
            continue;
        w.push_back(static_cast<unsigned char>(p.size()));
        w.insert(w.end(), p.begin(), p.end());
    }
    return w;
}

// OpenSSL 3.0 fills a certificate's cached extensions (key identifiers, purposes) the first time
// a handshake looks at it, and not under a lock that covers every reader (openssl/openssl#25202):
// a context shared by loops on several threads would race on its first handshakes. Filling the
// caches here, while one thread builds the context, leaves nothing to write later. Certificates
// a default verify path loads lazily (a hashed directory) are not covered.
void fill_certificate_caches(SSL_CTX* ctx) noexcept {
    if (X509* own = SSL_CTX_get0_certificate(ctx))
        X509_check_purpose(own, -1, 0);
    STACK_OF(X509)* chain = nullptr;
    if (SSL_CTX_get0_chain_certs(ctx, &chain) == 1 && chain != nullptr)
        for (int i = 0; i < sk_X509_num(chain); ++i)
            X509_check_purpose(sk_X509_value(chain, i), -1, 0);
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    if (store == nullptr)
        return;
    STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store);
    for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
        X509* x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i));
        if (x != nullptr)
            X509_check_purpose(x, -1, 0);
    }
}

result<std::shared_ptr<tls_context::impl>> new_impl(bool server) {
    ERR_clear_error();
    SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (ctx == nullptr)
        return detail::last_tls_error();
    auto impl = std::make_shared<tls_context::impl>();
    impl->ctx = ctx;
    impl->server = server;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    // Idle connections give their record buffers back to the allocator.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return impl;
}

} // namespace

const std::error_category& tls_category() noexcept {
    static const tls_error_category c;
    return c;
}

const std::error_category& tls_verify_category() noexcept {
    static const tls_verify_error_category c;
    return c;
}

namespace detail {

std::error_code last_tls_error() noexcept {
    unsigned long code = ERR_peek_last_error();
    ERR_clear_error();
    if (code == 0)
        return make_error_code(std::errc::protocol_error);
    if (ERR_SYSTEM_ERROR(code))
        return errno_code(ERR_GET_REASON(code));
    return {static_cast<int>(code), tls_category()};
}

} // namespace detail

tls_context::impl::~impl() {
    if (ctx != nullptr)
        SSL_CTX_free(ctx);
}

bool tls_context::is_server() const noexcept {
    return impl_ && impl_->server;
}

result<tls_context> tls_context::server(const tls_server_options& opts) {
    auto impl = new_impl(true);
    if (!impl)
        return impl.error();
    SSL_CTX* ctx = (*impl)->ctx;
    ERR_clear_error();
    if (!opts.cert_file.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx, opts.cert_file.c_str()) != 1)
            return detail::last_tls_error();
    } else if (!opts.cert_pem.empty()) {
        BIO* bio = BIO_new_mem_buf(opts.cert_pem.data(), static_cast<int>(opts.cert_pem.size()));
        X509* leaf = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
        bool ok = leaf != nullptr && SSL_CTX_use_certificate(ctx, leaf) == 1;
        X509_free(leaf);
        while (ok) {
            X509* extra = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
            if (extra == nullptr)
                break;
            if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
                X509_free(extra);
                ok = false;
            }
        }
        BIO_free(bio);
        if (!ok)
            return detail::last_tls_error();
        ERR_clear_error(); // the end of the chain leaves a "no start line" behind
    } else {
        return make_error_code(std::errc::invalid_argument);
    }
    if (!opts.key_file.empty()) {
        if (SSL_CTX_use_PrivateKey_file(ctx, opts.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
            return detail::last_tls_error();
    } else if (!opts.key_pem.empty()) {
        BIO* bio = BIO_new_mem_buf(opts.key_pem.data(), static_cast<int>(opts.key_pem.size()));
        EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
        BIO_free(bio);
        bool ok = key != nullptr && SSL_CTX_use_PrivateKey(ctx, key) == 1;
        EVP_PKEY_free(key);
        if (!ok)
            return detail::last_tls_error();
    } else {
        return make_error_code(std::errc::invalid_argument);
    }
    if (SSL_CTX_check_private_key(ctx) != 1)
        return detail::last_tls_error();
    if (!opts.session_tickets) {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
    }
    (*impl)->alpn_wire = alpn_wire(opts.alpn);
    SSL_CTX_set_alpn_select_cb(ctx, &select_alpn, impl->get());
    SSL_CTX_set_tlsext_servername_callback(ctx, &on_server_name);
    SSL_CTX_set_tlsext_servername_arg(ctx, impl->get());
    fill_certificate_caches(ctx);
    tls_context c;
    c.impl_ = std::move(*impl);
    return c;
}

result<tls_context> tls_context::client(const tls_client_options& opts) {
    auto impl = new_impl(false);
    if (!impl)
        return impl.error();
    SSL_CTX* ctx = (*impl)->ctx;
    ERR_clear_error();
    if (opts.danger_accept_any_certificate) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
        (*impl)->verify = false;
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        int ok = opts.ca_file.empty()
                     ? SSL_CTX_set_default_verify_paths(ctx)
                     : SSL_CTX_load_verify_locations(ctx, opts.ca_file.c_str(), nullptr);
        if (ok != 1)
            return detail::last_tls_error();
    }
    (*impl)->alpn_wire = alpn_wire(opts.alpn);
    if (!(*impl)->alpn_wire.empty() &&
        SSL_CTX_set_alpn_protos(ctx, (*impl)->alpn_wire.data(),
                                static_cast<unsigned>((*impl)->alpn_wire.size())) != 0)
        return detail::last_tls_error();
    // Sessions are kept per connection (tls_stream::session), not in OpenSSL's cache.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, &detail::on_new_session);
    fill_certificate_caches(ctx);
    tls_context c;
    c.impl_ = std::move(*impl);
    return c;
}

void tls_context::set_sni_handler(std::function<const tls_context*(std::string_view)> handler) {
    if (impl_)
        impl_->sni = std::move(handler);
}

} // namespace coronet::core
