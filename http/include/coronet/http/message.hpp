#pragma once

#include <coronet/core/stop.hpp>
#include <coronet/core/stream.hpp>
#include <coronet/core/task.hpp>
#include <coronet/http/export.hpp>
#include <coronet/http/headers.hpp>
#include <coronet/http/parser.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coronet::http {

/// The standard reason phrase of `status` ("OK", "Not Found"...), or "Unknown".
CORONET_HTTP_EXPORT std::string_view reason_phrase(int status) noexcept;

/// What a route handler receives: the parsed head, the route's path parameters and the whole
/// body (read before the handler runs, up to parser_limits::max_body_size). Every view is valid
/// until the handler's task finishes.
class CORONET_HTTP_EXPORT request {
public:
    request(const request_head& head, std::string_view body) noexcept : head_(&head), body_(body) {}
    request(const request&) = default;
    request(request&&) noexcept = default;
    request& operator=(const request&) = default;
    request& operator=(request&&) noexcept = default;
    /// Gives the parameter list's storage to a per-thread cache the router's next lookup on this
    /// thread starts from: a route with parameters allocates nothing per request once warm.
    ~request();

    std::string_view method() const noexcept { return head_->method; }
    std::string_view target() const noexcept { return head_->target; }
    /// The path of the target, still percent-encoded.
    std::string_view path() const noexcept { return head_->path; }
    /// The query string without '?', still percent-encoded.
    std::string_view query() const noexcept { return head_->query; }
    int version_minor() const noexcept { return head_->version_minor; }
    const header_list& headers() const noexcept { return head_->headers; }
    /// The first header named `name` (case-insensitive), or empty.
    std::string_view header(std::string_view name) const noexcept {
        return head_->headers.get(name);
    }
    const request_head& head() const noexcept { return *head_; }
    std::string_view body() const noexcept { return body_; }

    /// A path parameter captured by the route (`:name`, or `*` for a trailing wildcard), still
    /// percent-encoded; empty if absent.
    std::string_view param(std::string_view name) const noexcept;
    /// Every captured parameter, in pattern order.
    const std::vector<std::pair<std::string_view, std::string_view>>& params() const noexcept {
        return params_;
    }
    /// Used by the router.
    void set_params(std::vector<std::pair<std::string_view, std::string_view>> p) {
        params_ = std::move(p);
    }

private:
    const request_head* head_;
    std::string_view body_;
    std::vector<std::pair<std::string_view, std::string_view>> params_;
};

class body_writer;

/// The header fields of a response, in the order added, repeats kept. A few fields (a
/// Content-Type and a short one or two: `inline_bytes`, counting 8 bytes per field) are stored
/// inside the object; more go to a block that the thread keeps for the next response once this
/// one is done, so that answering allocates nothing in steady state. Iterating yields
/// `header_field`s (views into this object, valid until it changes).
class CORONET_HTTP_EXPORT response_fields {
public:
    static constexpr std::size_t inline_bytes = 64;

    response_fields() noexcept = default;
    response_fields(const response_fields& o);
    response_fields(response_fields&& o) noexcept;
    response_fields& operator=(const response_fields& o);
    response_fields& operator=(response_fields&& o) noexcept;
    ~response_fields();

    /// Appends a field (repeats allowed).
    void add(std::string_view name, std::string_view value);
    /// The value of the first field named `name` (case-insensitive), or an empty view with
    /// `found` false.
    std::string_view get(std::string_view name, bool* found = nullptr) const noexcept;
    std::size_t size() const noexcept { return count_; }
    bool empty() const noexcept { return count_ == 0; }
    void clear() noexcept {
        used_ = 0;
        count_ = 0;
    }

    class iterator {
    public:
        using value_type = header_field;
        using difference_type = std::ptrdiff_t;
        // Dereferencing yields a value (the field's views), so for the classic categories an
        // input iterator; it is a forward iterator for the C++20 concepts.
        using iterator_category = std::input_iterator_tag;
        using iterator_concept = std::forward_iterator_tag;
        iterator() noexcept = default;
        header_field operator*() const noexcept;
        iterator& operator++() noexcept;
        iterator operator++(int) noexcept {
            iterator old = *this;
            ++*this;
            return old;
        }
        bool operator==(const iterator& o) const noexcept { return at_ == o.at_; }

    private:
        friend class response_fields;
        explicit iterator(const char* at) noexcept : at_(at) {}
        const char* at_ = nullptr;
    };
    iterator begin() const noexcept { return iterator(data_); }
    iterator end() const noexcept { return iterator(data_ + used_); }

private:
    void release() noexcept;

    // Each field: its name's and its value's length (4 bytes each), then both, unpadded.
    char* data_ = inline_;
    std::uint32_t used_ = 0;
    std::uint32_t capacity_ = inline_bytes;
    std::uint32_t count_ = 0;
    char inline_[inline_bytes];
};

/// A response to send. The server adds Date, Content-Length or Transfer-Encoding, and
/// Connection; set any other header here. A body is either a string (`body`) or streamed by
/// `stream_body` after the head is written (with Content-Length when `stream_length` is set,
/// chunked otherwise).
class CORONET_HTTP_EXPORT response {
public:
    response() = default;
    explicit response(int status_code) : status(status_code) {}

    /// text/plain (UTF-8).
    static response text(std::string body, int status_code = 200);
    /// application/json: `body` must already be JSON.
    static response json(std::string body, int status_code = 200);

    /// Adds a header (repeats allowed). Names and values must be valid field content; the
    /// server refuses to send CR or LF in either (it answers 500 instead).
    response& set(std::string_view name, std::string_view value) {
        headers.add(name, value);
        return *this;
    }

    int status = 200;
    std::string reason; ///< empty: the standard phrase
    response_fields headers;
    std::string body;
    /// Streams the body instead of `body`: called once the head is out. Its result ends the
    /// response; an error closes the connection.
    std::function<core::task<core::result<void>>(body_writer&)> stream_body;
    /// With stream_body: the exact body length (Content-Length), or -1 for chunked.
    long long stream_length = -1;
};

/// Writes a streamed response body: raw bytes under Content-Length, chunk framing otherwise.
class CORONET_HTTP_EXPORT body_writer {
public:
    body_writer(core::stream& s, bool chunked) noexcept : stream_(&s), chunked_(chunked) {}
    /// Writes `data` (one chunk when chunked; empty data writes nothing).
    core::task<core::result<void>> write(core::const_buffer data);
    core::task<core::result<void>> write(std::string_view s) { return write(core::as_bytes(s)); }
    /// Bytes of body written so far.
    std::size_t written() const noexcept { return written_; }

private:
    core::stream* stream_;
    bool chunked_;
    std::size_t written_ = 0;
};

/// What a handler gives the connection when it takes it over: the stream and every byte the
/// server had already read past the request.
struct takeover_context {
    core::stream_ptr stream;
    std::vector<std::byte> prefetched;
    /// The server is shutting down: end politely within `server_options::shutdown_grace` (e.g.
    /// say goodbye in the taken-over protocol and close), after which `run` is cancelled through
    /// its stop token. Never stops when the connection was handed to `serve_connection` outside
    /// `serve`. Valid while `run` runs.
    core::stop_token draining;
};

/// The virtual connection-takeover interface. A handler returns one instead of an ordinary
/// response; the server writes `head()` (e.g. 101 Switching Protocols with its headers; no
/// body), stops HTTP processing on the connection, and awaits `run` with the stream and the
/// bytes read past the request, inside the connection's own task (so connection limits and
/// graceful shutdown count it; `run` inherits the server's stop token). http knows nothing
/// about what takes the connection over.
class CORONET_HTTP_EXPORT connection_takeover {
public:
    explicit connection_takeover(response head) : head_(std::move(head)) {}
    virtual ~connection_takeover() = default;
    const response& head() const noexcept { return head_; }

    /// Runs the protocol that takes over. The stream is the takeover's from now on.
    virtual core::task<void> run(takeover_context ctx) = 0;

private:
    response head_;
};

/// A handler's answer: a response, or a connection takeover.
class CORONET_HTTP_EXPORT reply {
public:
    reply(response r) : response_(std::move(r)) {}
    reply(std::unique_ptr<connection_takeover> t) : takeover_(std::move(t)) {}
    bool is_takeover() const noexcept { return static_cast<bool>(takeover_); }
    response& get_response() noexcept { return response_; }
    std::unique_ptr<connection_takeover>& takeover() noexcept { return takeover_; }

private:
    response response_;
    std::unique_ptr<connection_takeover> takeover_;
};

} // namespace coronet::http
