#pragma once

// A raw HTTP/1.1 test client over any core::stream: it sends exactly the bytes a test gives it
// and reads responses back with its own small parser (independent of coronet::http, so the
// server is checked against a separate oracle). Every read has a deadline.

#include <coronet/core/endpoint.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/stream.hpp>
#include <coronet/core/task.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace coronet::testing {

/// One response as read off the wire.
struct raw_response {
    std::string version; ///< "HTTP/1.1"
    int status = 0;
    std::string reason;
    std::vector<std::pair<std::string, std::string>> headers; ///< in order, values trimmed
    std::string body;                                         ///< decoded (chunk framing removed)
    bool chunked = false; ///< the body came with Transfer-Encoding: chunked
    std::string raw_body; ///< the body bytes as sent (with chunk framing)

    /// The first header named `name` (case-insensitive), or empty.
    std::string header(std::string_view name) const;
    bool has_header(std::string_view name) const;
    /// How many headers are named `name`.
    std::size_t header_count(std::string_view name) const;
    /// True if `name`'s comma-separated value list holds `token` (case-insensitive).
    bool header_has_token(std::string_view name, std::string_view token) const;
};

/// How a connection ended when a test waited for its end.
struct raw_end {
    std::string extra;   ///< bytes that arrived before the end (a closed connection: none)
    std::error_code how; ///< end_of_stream, a reset, or timed_out if it did not end in time

    /// The peer closed (FIN or RST) rather than the wait running out.
    bool closed() const noexcept;
};

class raw_client {
public:
    static constexpr std::chrono::milliseconds default_timeout{5000};

    explicit raw_client(core::stream_ptr s) noexcept : s_(std::move(s)) {}

    /// Connects over TCP.
    static core::task<core::result<raw_client>> connect(core::endpoint ep);

    /// Writes all of `bytes`.
    core::task<core::result<void>> send(std::string bytes);

    /// Reads one response. `head_request`: the response has no body whatever its headers say.
    /// A body without Content-Length or chunked framing is read until the connection closes.
    core::task<core::result<raw_response>>
    read_response(bool head_request = false, std::chrono::milliseconds timeout = default_timeout);

    /// Reads until the connection ends or `timeout` runs out (see raw_end).
    core::task<raw_end> wait_end(std::chrono::milliseconds timeout = default_timeout);

    /// Reads at least one more byte into the buffer (with a deadline).
    core::task<core::result<std::size_t>> fill(std::chrono::milliseconds timeout = default_timeout);

    /// Bytes read but not yet taken by read_response.
    std::string& buffered() noexcept { return buf_; }
    core::stream& stream() noexcept { return *s_; }
    core::stream_ptr& stream_ptr() noexcept { return s_; }

private:
    core::task<core::result<std::size_t>> fill_once();
    core::task<core::result<void>> fill_until(core::clock::time_point deadline);

    core::stream_ptr s_;
    std::string buf_;
};

} // namespace coronet::testing
