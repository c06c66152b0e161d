#pragma once

#include <coronet/core/buffered_reader.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/stream.hpp>
#include <coronet/core/task.hpp>
#include <coronet/core/tls.hpp>
#include <coronet/core/url.hpp>
#include <coronet/http/export.hpp>
#include <coronet/http/parser.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coronet::http {

/// A request to send. The client adds Host (unless `headers` has one), Content-Length (when
/// there is a body or the method is POST/PUT/PATCH) and nothing else; a Content-Length or
/// Transfer-Encoding in `headers` is refused (`errc::bad_header`), since the client frames the
/// body itself.
struct client_request {
    std::string method = "GET";
    std::string target = "/"; ///< origin-form: path and query
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
};

/// A received response; owns its bytes.
struct CORONET_HTTP_EXPORT client_response {
    int status = 0;
    std::string reason;
    int version_minor = 1;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    bool keep_alive = false;
    /// The first header named `name` (case-insensitive), or empty.
    std::string_view header(std::string_view name) const noexcept;
};

/// Client settings; every limit has a safe default.
struct client_options {
    parser_limits limits;
    std::chrono::milliseconds connect_timeout{10'000};  ///< resolve + connect + TLS handshake
    std::chrono::milliseconds response_timeout{30'000}; ///< sending the request to the body's end
    /// For https:// URLs; null means a context verifying against the system store. Verification
    /// of the certificate and host name is always on unless the context was built with
    /// `danger_accept_any_certificate`.
    const core::tls_context* tls = nullptr;
    /// Idle keep-alive connections kept per origin.
    std::size_t max_idle_per_origin = 4;
};

/// A parsed http:// or https:// URL: a `core::url` (scheme "http" or "https", host without
/// brackets for IPv6 literals, port, target) whose scheme the client speaks.
struct CORONET_HTTP_EXPORT url : core::url {
    /// `core::url::parse` restricted to http and https. Errors: `errc::bad_request` for anything
    /// else than http(s)://host[:port][/path][?query][#fragment] (`core::url::parse` says which
    /// part is wrong).
    static core::result<url> parse(std::string_view text);
};

/// One client-side HTTP/1.1 connection over any core::stream (plain or TLS): sends requests one
/// at a time and reads Content-Length, chunked and close-delimited bodies, skipping 100
/// Continue. Not thread-safe.
class CORONET_HTTP_EXPORT client_connection {
public:
    /// `host` is the Host header to send (with the port when it is not the default).
    client_connection(core::stream_ptr stream, std::string host, client_options opts = {});

    /// Sends `req` and reads the response. Errors: the stream's, `errc::unexpected_eof` (the
    /// server closed inside the response), parser errors (`errc::bad_status_line`,
    /// `body_too_large`...), `timed_out` (response_timeout).
    core::task<core::result<client_response>> send(client_request req);
    /// True if another request may follow on this connection.
    bool reusable() const noexcept { return reusable_; }

private:
    core::task<core::result<client_response>> exchange(const client_request& req);
    core::task<core::result<void>> read_final_head(response_parser& p, bool head_request);
    core::task<core::result<void>> read_body(body_kind kind, std::uint64_t length,
                                             client_response& res);
    core::task<core::result<void>> read_chunked_body(std::string& body);
    core::task<core::result<void>> read_body_until_close(std::string& body);
    core::stream_ptr stream_;
    std::string host_;
    client_options opts_;
    core::buffered_reader reader_;
    bool reusable_ = true;
};

/// Fetches URLs: resolves the host (system resolver), connects with a deadline, speaks TLS for
/// https:// (verification on by default), and keeps idle connections per origin for reuse. A
/// GET/HEAD that fails on a reused connection before any response byte is retried once on a
/// new one. Single-threaded: one client per loop.
class CORONET_HTTP_EXPORT client {
public:
    explicit client(client_options opts = {});
    ~client();

    /// Sends `req` (its target is replaced by the URL's) to `url_text`.
    core::task<core::result<client_response>> fetch(std::string url_text, client_request req);
    /// GET `url_text`. (Not a default argument: g++ 12 destroys a coroutine's defaulted
    /// class-type argument twice.)
    core::task<core::result<client_response>> fetch(std::string url_text) {
        return fetch(std::move(url_text), client_request{});
    }

private:
    core::task<core::result<std::unique_ptr<client_connection>>> open(url u);
    client_options opts_;
    core::tls_context default_tls_;
    std::map<std::string, std::vector<std::unique_ptr<client_connection>>> idle_;
};

} // namespace coronet::http
