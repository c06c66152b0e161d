#pragma once

// Throwaway X.509 certificates for TLS tests, made at test time with OpenSSL's C API (EC P-256
// keys, SHA-256 signatures): no openssl CLI, no certificate files in the repository that expire.

#include <string>

namespace coronet::testing {

/// A PEM certificate and its PEM private key.
struct pem_pair {
    std::string cert_pem;
    std::string key_pem;
};

/// A small PKI: one CA and leaf certificates for the verification cases.
struct test_pki {
    /// The CA's certificate (what clients trust).
    std::string ca_pem;
    /// Signed by the CA for DNS:localhost and IP:127.0.0.1, valid from an hour ago for a day.
    pem_pair server;
    /// Signed by the CA for DNS:localhost and IP:127.0.0.1; notAfter was yesterday.
    pem_pair expired;
    /// Signed by the CA for DNS:other.example only.
    pem_pair other_host;
    /// Self-signed, for DNS:localhost and IP:127.0.0.1.
    pem_pair self_signed;
    /// For DNS:localhost and IP:127.0.0.1, signed by a second CA nobody trusts (not included).
    pem_pair untrusted;
};

/// The process's test PKI, generated on first use (thread-safe) and kept until exit. Throws
/// std::runtime_error with OpenSSL's reason if generation fails.
const test_pki& test_certificates();

/// A fresh directory under $TMPDIR (or /tmp), removed with its contents by the destructor.
/// Move-only.
class temp_dir {
public:
    /// Creates the directory; throws std::system_error on failure.
    temp_dir();
    temp_dir(temp_dir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
    temp_dir& operator=(temp_dir&&) = delete;
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir();

    const std::string& path() const noexcept { return path_; }
    /// Writes `contents` to `name` inside the directory and returns the file's full path.
    /// Throws std::system_error on failure.
    std::string write(const std::string& name, const std::string& contents) const;

private:
    std::string path_;
};

} // namespace coronet::testing
