#pragma once

// The I/O shared by `connection` and `subscriber`: a stream, the RESP reader, the bytes queued
// for writing and the two roles (writer, reader) that waiting callers take in turn.

#include "resp.hpp"

#include <coronet/core/result.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/stream.hpp>
#include <coronet/core/task.hpp>
#include <coronet/ws_redis/options.hpp>
#include <coronet/ws_redis/reply.hpp>
#include <coronet/ws_redis/url.hpp>

#include <memory>
#include <optional>
#include <string>
#include <system_error>

namespace coronet::ws_redis::detail {

class resp_link {
public:
    resp_link(core::stream_ptr stream, const options& opts);
    resp_link(const resp_link&) = delete;
    resp_link& operator=(const resp_link&) = delete;
    ~resp_link();

    /// Appends an encoded command to what the next write sends.
    void queue(const std::string& encoded) { out_ += encoded; }
    bool has_queued() const noexcept { return !out_.empty(); }

    bool writing() const noexcept { return writing_; }
    bool reading() const noexcept { return reading_; }

    /// Takes the writer role and writes until nothing is queued (commands queued meanwhile go
    /// in the next round). Not cancelled by the caller's stop token: a write cut half-way would
    /// break the stream for every caller; it is bounded by command_timeout instead, and
    /// stopped by `fail`. Call only when `!writing()`.
    core::task<core::result<void>> flush();

    /// Takes the reader role for one receive and feeds the bytes to the RESP reader. Cancelled
    /// by the caller's stop token (nothing is lost: the bytes read so far were fed) and by
    /// `fail`. Call only when `!reading()`.
    core::task<core::result<void>> read_more();

    /// The next complete reply from what was read, if any. Errors: protocol_error,
    /// reply_too_large.
    core::result<std::optional<reply>> parse() { return reader_.next(); }

    /// Marks the link failed with `ec` (the first failure wins) and stops its I/O.
    void fail(std::error_code ec) noexcept;
    bool failed() const noexcept { return static_cast<bool>(error_); }
    std::error_code error() const noexcept { return error_; }
    /// True when `ec` came from this link's own stop (a failure), not from a caller's.
    bool stopped() const noexcept { return io_stop_.stop_requested(); }

    /// Closes the stream (no operation may be pending) and fails the link with errc::closed.
    void close() noexcept;

    const options& opts() const noexcept { return opts_; }

private:
    core::task<core::result<void>> write_queued();
    core::task<core::result<void>> receive_and_feed();

    core::stream_ptr stream_;
    options opts_;
    resp_reader reader_;
    std::string out_;                 ///< commands queued since the current write started
    std::string sending_;             ///< the bytes of the current write
    std::unique_ptr<std::byte[]> in_; ///< what one read receives before hiredis copies it
    bool writing_ = false;
    bool reading_ = false;
    core::stop_source io_stop_;
    std::error_code error_;
};

/// Opens the stream `where` names, within opts.connect_timeout, and logs in: AUTH, SELECT.
/// Errors: see `connection::connect`.
core::task<core::result<std::unique_ptr<resp_link>>> open_link(url where, options opts);

} // namespace coronet::ws_redis::detail
