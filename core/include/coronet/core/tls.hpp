#pragma once

#include <coronet/core/export.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/stream.hpp>
#include <coronet/core/task.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace coronet::core {

/// Errors from OpenSSL's error queue: the value is OpenSSL's packed error code and the message
/// is OpenSSL's reason text ("wrong version number", "unexpected eof while reading"...).
CORONET_CORE_EXPORT const std::error_category& tls_category() noexcept;
/// Certificate verification failures: the value is the X509_V_ERR code and the message
/// "certificate verify failed: " plus OpenSSL's text ("certificate has expired", "hostname
/// mismatch", "self-signed certificate", "unable to get local issuer certificate"...).
CORONET_CORE_EXPORT const std::error_category& tls_verify_category() noexcept;

/// How a server context is built. Certificates and keys are PEM, from files or memory.
struct tls_server_options {
    std::string cert_file; ///< certificate chain file (leaf first)
    std::string key_file;  ///< private key file
    std::string cert_pem;  ///< or: the chain in memory
    std::string key_pem;   ///< or: the key in memory
    /// ALPN protocols the server supports, in its order of preference (it picks the first it
    /// shares with the client; no overlap means no ALPN is negotiated).
    std::vector<std::string> alpn;
    /// Stateless session tickets (TLS 1.2 tickets, TLS 1.3 PSK tickets) for resumption.
    bool session_tickets = true;
};

/// How a client context is built. The peer's chain and host name (or IP address) are verified
/// by default.
struct tls_client_options {
    /// CA certificates (PEM) to trust; empty means the system store.
    std::string ca_file;
    /// ALPN protocols offered, in order of preference.
    std::vector<std::string> alpn;
    /// Skips every certificate check. For tests against throwaway certificates only: a client
    /// with this set talks to anyone who answers.
    bool danger_accept_any_certificate = false;
};

class tls_context;

/// A resumable TLS session (from a finished connection, handed to the next one to the same
/// server). Shared, immutable.
class CORONET_CORE_EXPORT tls_session {
public:
    tls_session() noexcept = default;
    /// Internal: wraps an OpenSSL SSL_SESSION reference.
    explicit tls_session(std::shared_ptr<void> handle) noexcept : handle_(std::move(handle)) {}
    bool valid() const noexcept { return static_cast<bool>(handle_); }
    /// Internal: the SSL_SESSION*.
    void* native_handle() const noexcept { return handle_.get(); }

private:
    std::shared_ptr<void> handle_;
};

/// Shared TLS configuration (an OpenSSL SSL_CTX): safe defaults (TLS 1.2 and 1.3 only, no
/// renegotiation, no compression, `SSL_MODE_RELEASE_BUFFERS`). Copies share the context.
/// Build it at setup; using it from several loops' threads at once is safe (OpenSSL's
/// SSL_CTX is, and building it fills the certificates' cached extensions, which OpenSSL 3.0
/// would otherwise write during the first handshakes), changing it (set_sni_handler) while
/// connections handshake is not. CA certificates a default verify path loads lazily (a hashed
/// directory) are filled on first use by OpenSSL itself.
class CORONET_CORE_EXPORT tls_context {
public:
    tls_context() noexcept = default;
    /// A server context. Errors (tls_category): unreadable or mismatched certificate/key.
    static result<tls_context> server(const tls_server_options& opts);
    /// A client context. Errors: unreadable CA file.
    static result<tls_context> client(const tls_client_options& opts = {});

    /// Server only: chooses the context for a ClientHello's SNI host name. Return null to keep
    /// this context. The handler runs on the loop thread during the handshake.
    void set_sni_handler(std::function<const tls_context*(std::string_view server_name)> handler);

    bool valid() const noexcept { return static_cast<bool>(impl_); }
    bool is_server() const noexcept;

    struct impl;
    /// Internal.
    impl* get() const noexcept { return impl_.get(); }

private:
    std::shared_ptr<impl> impl_;
};

/// TLS over any `core::stream` (usually a tcp_stream), through OpenSSL memory BIOs, so it works
/// the same on both backends. It is itself a `core::stream`, so HTTP and WebSocket run over it
/// unchanged. Call `handshake()` first (wrap it in `with_timeout` for a handshake deadline).
///
/// One read and one write may be pending at once, from two coroutines: a read that must write
/// (TLS 1.3 tickets, key updates, alerts) shares the transport's write side with the writer
/// through an internal lock, and the write BIO is drained before more is encrypted, so a slow
/// peer pushes back on the writer instead of growing memory. Reads give `errc::end_of_stream`
/// after the peer's close_notify; a peer that vanishes without one gives a tls_category error
/// ("unexpected eof while reading"). `shutdown()` sends close_notify, then FIN. Not
/// thread-safe (its loop's thread).
class CORONET_CORE_EXPORT tls_stream final : public stream {
public:
    /// A server-side stream over `transport`.
    static std::unique_ptr<tls_stream> server(const tls_context& ctx, stream_ptr transport);
    /// A client-side stream; `host` is sent as SNI (unless it is an IP address) and is the name
    /// (or IP address) the certificate is verified against.
    static std::unique_ptr<tls_stream> client(const tls_context& ctx, stream_ptr transport,
                                              std::string host, tls_session resume = {});
    ~tls_stream() override;

    /// Runs the handshake. Errors: tls_verify_category (client: the peer's certificate was
    /// refused, with the reason), tls_category (protocol failure, e.g. a plain-text peer:
    /// "wrong version number" / "http request"), `errc::end_of_stream` (the peer left),
    /// transport errors, `operation_canceled`.
    task<result<void>> handshake();

    /// The ALPN protocol agreed on (empty if none).
    std::string alpn_protocol() const;
    /// Server: the SNI host name the client sent (empty if none).
    std::string server_name() const;
    /// "TLSv1.2" or "TLSv1.3" after the handshake.
    std::string protocol_version() const;
    /// True if the handshake resumed a session.
    bool session_reused() const noexcept;
    /// The session to resume later (client; valid once the server sent a ticket, which in
    /// TLS 1.3 arrives after the handshake with the first read).
    tls_session session() const;
    /// The underlying stream.
    stream& transport() noexcept { return *transport_; }

    void close() noexcept override;
    bool is_open() const noexcept override;

    /// Internal (the OpenSSL connection and its BIOs).
    struct state;

protected:
    bool start_read(stream_op& op) override;
    bool start_write(stream_op& op) override;
    bool start_shutdown(stream_op& op) override;
    void cancel(stream_op& op) noexcept override;

private:
    tls_stream(stream_ptr transport, std::unique_ptr<state> st);

    stream_ptr transport_;
    std::unique_ptr<state> st_;
};

} // namespace coronet::core
