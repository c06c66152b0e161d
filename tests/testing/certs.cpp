#include <testing/certs.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <stdlib.h> // mkdtemp
#include <string>
#include <system_error>
#include <vector>

namespace coronet::testing {

namespace {

struct pkey_deleter {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct x509_deleter {
    void operator()(X509* p) const noexcept { X509_free(p); }
};
struct bio_deleter {
    void operator()(BIO* p) const noexcept { BIO_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;
using x509_ptr = std::unique_ptr<X509, x509_deleter>;
using bio_ptr = std::unique_ptr<BIO, bio_deleter>;

[[noreturn]] void fail(const char* what) {
    unsigned long code = ERR_get_error();
    char reason[256] = "no OpenSSL error";
    if (code != 0)
        ERR_error_string_n(code, reason, sizeof reason);
    ERR_clear_error();
    throw std::runtime_error(std::string("test certificates: ") + what + ": " + reason);
}

void check(bool ok, const char* what) {
    if (!ok)
        fail(what);
}

pkey_ptr new_key() {
    pkey_ptr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    check(k != nullptr, "EC P-256 key generation");
    return k;
}

/// One certificate to make. Validity is relative to now, in seconds.
struct cert_spec {
    const char* common_name;
    const char* subject_alt_names; // X509v3 config syntax, or null
    bool ca = false;
    long not_before = -3600;
    long not_after = 24 * 3600;
};

void add_ext(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
    check(ext != nullptr, "X509V3_EXT_conf_nid");
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    check(ok == 1, "X509_add_ext");
}

/// Makes a certificate for `key`, signed by `issuer`/`issuer_key` (both null: self-signed).
x509_ptr make_cert(const cert_spec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
    static std::int64_t serial = 1000;
    x509_ptr cert(X509_new());
    check(cert != nullptr, "X509_new");
    check(X509_set_version(cert.get(), X509_VERSION_3) == 1, "X509_set_version");
    check(ASN1_INTEGER_set_int64(X509_get_serialNumber(cert.get()), ++serial) == 1, "serial");
    check(X509_gmtime_adj(X509_getm_notBefore(cert.get()), spec.not_before) != nullptr,
          "notBefore");
    check(X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.not_after) != nullptr, "notAfter");
    check(X509_set_pubkey(cert.get(), key) == 1, "X509_set_pubkey");

    X509_NAME* name = X509_get_subject_name(cert.get());
    check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                     reinterpret_cast<const unsigned char*>("coronet tests"), -1,
                                     -1, 0) == 1,
          "subject O");
    check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                     reinterpret_cast<const unsigned char*>(spec.common_name), -1,
                                     -1, 0) == 1,
          "subject CN");
    X509* signer = issuer != nullptr ? issuer : cert.get();
    check(X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) == 1, "issuer name");

    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, signer, cert.get(), nullptr, nullptr, 0);
    add_ext(cert.get(), &ctx, NID_subject_key_identifier, "hash");
    if (spec.ca) {
        add_ext(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(cert.get(), &ctx, NID_basic_constraints, "CA:FALSE");
        add_ext(cert.get(), &ctx, NID_ext_key_usage, "serverAuth");
        // A self-signed leaf keeps no keyUsage: one without keyCertSign would make OpenSSL stop
        // treating it as self-signed (and report a different verification error).
        if (issuer != nullptr) {
            add_ext(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature");
            add_ext(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
        }
    }
    if (spec.subject_alt_names != nullptr)
        add_ext(cert.get(), &ctx, NID_subject_alt_name, spec.subject_alt_names);

    check(X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) > 0,
          "X509_sign");
    return cert;
}

std::string drain(BIO* bio) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(len));
}

std::string cert_pem(X509* cert) {
    bio_ptr bio(BIO_new(BIO_s_mem()));
    check(bio != nullptr && PEM_write_bio_X509(bio.get(), cert) == 1, "PEM_write_bio_X509");
    return drain(bio.get());
}

std::string key_pem(EVP_PKEY* key) {
    bio_ptr bio(BIO_new(BIO_s_mem()));
    check(bio != nullptr &&
              PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
          "PEM_write_bio_PrivateKey");
    return drain(bio.get());
}

constexpr const char* localhost_names = "DNS:localhost,IP:127.0.0.1";

pem_pair leaf(const cert_spec& spec, X509* issuer, EVP_PKEY* issuer_key) {
    pkey_ptr key = new_key();
    x509_ptr cert = make_cert(spec, key.get(), issuer, issuer_key);
    return {cert_pem(cert.get()), key_pem(key.get())};
}

test_pki generate() {
    test_pki pki;
    pkey_ptr ca_key = new_key();
    x509_ptr ca = make_cert({"coronet test CA", nullptr, true, -3600, 7 * 24 * 3600}, ca_key.get(),
                            nullptr, nullptr);
    pki.ca_pem = cert_pem(ca.get());

    pki.server = leaf({"localhost", localhost_names}, ca.get(), ca_key.get());
    pki.expired = leaf({"localhost", localhost_names, false, -2 * 24 * 3600, -24 * 3600}, ca.get(),
                       ca_key.get());
    pki.other_host = leaf({"other.example", "DNS:other.example"}, ca.get(), ca_key.get());
    pki.self_signed = leaf({"localhost", localhost_names}, nullptr, nullptr);

    pkey_ptr rogue_key = new_key();
    x509_ptr rogue = make_cert({"coronet untrusted CA", nullptr, true, -3600, 7 * 24 * 3600},
                               rogue_key.get(), nullptr, nullptr);
    pki.untrusted = leaf({"localhost", localhost_names}, rogue.get(), rogue_key.get());
    return pki;
}

} // namespace

const test_pki& test_certificates() {
    static const test_pki pki = generate();
    return pki;
}

temp_dir::temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/coronet-test-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr)
        throw std::system_error(errno, std::generic_category(), "mkdtemp " + tmpl);
    path_ = buf.data();
}

temp_dir::~temp_dir() {
    if (path_.empty())
        return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::string temp_dir::write(const std::string& name, const std::string& contents) const {
    std::string file = path_ + "/" + name;
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << contents;
    out.close();
    if (!out)
        throw std::system_error(EIO, std::generic_category(), "writing " + file);
    return file;
}

} // namespace coronet::testing
