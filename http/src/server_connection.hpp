#pragma once

// One server-side HTTP/1.1 connection, private to the http library: the steps of a request's
// life on it (read head, read body, dispatch, respond, hand over) as named member functions.

#include <coronet/core/buffered_reader.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/memory_budget.hpp>
#include <coronet/core/result.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/stream.hpp>
#include <coronet/core/task.hpp>
#include <coronet/core/with_stop.hpp>
#include <coronet/http/message.hpp>
#include <coronet/http/parser.hpp>
#include <coronet/http/router.hpp>
#include <coronet/http/server.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace coronet::http::detail {

/// Counts a connection while it runs (server::connections(), admission).
struct live_guard {
    std::size_t* n;
    explicit live_guard(std::size_t* c) noexcept : n(c) { ++*n; }
    live_guard(const live_guard&) = delete;
    live_guard& operator=(const live_guard&) = delete;
    ~live_guard() { --*n; }
};

/// Serves the requests of one connection in order (keep-alive, pipelining) until it closes or a
/// handler takes it over. What the connection keeps between requests is this object, in
/// serve()'s frame; what one request needs (parser, body, handler's view, answer) lives in
/// serve_request()'s frame, which exists while the request does. So an idle keep-alive
/// connection holds one coroutine frame and this object.
class server_connection {
public:
    /// Serves the connection until it ends, counted in the server's connections. The first
    /// head is due by `first_head_deadline` (a default time_point: header_timeout from now);
    /// `draining` fires when the server begins its graceful shutdown.
    static core::task<void> serve(server& srv, core::stream_ptr stream, core::stop_token draining,
                                  core::clock::time_point first_head_deadline = {});
    /// The TLS handshake (`server_options::tls`), then serve(); counted from the start, the
    /// first head due header_timeout after it started.
    static core::task<void> serve_tls(server& srv, core::stream_ptr stream,
                                      core::stop_token draining);

    server_connection(const server_connection&) = delete;
    server_connection& operator=(const server_connection&) = delete;

private:
    server_connection(server& srv, core::stream_ptr& owner, core::stop_token draining,
                      core::clock::time_point first_head_deadline);
    const server_options& opts() const noexcept { return srv_.opts_; }

    /// What dispatch produced for the request: a response, or a takeover of the connection.
    struct answer {
        response res;
        std::unique_ptr<connection_takeover> takeover;
        bool keep_alive = true;
        bool chunked_stream = false; ///< a streamed body goes out in chunks
    };

    /// One request, from its head to its answer: serve_request()'s frame holds it.
    struct exchange {
        explicit exchange(const server_options& opts)
            : parser(opts.limits), chunk_charge(opts.memory_budget) {}
        request_parser parser;
        std::size_t consumed = 0; ///< bytes of the reader the request occupies
        std::string_view body;
        std::string chunk_body;           ///< a chunked body, decoded
        core::memory_charge chunk_charge; ///< chunk_body's bytes
        std::optional<request> req;       ///< what the handler sees
        answer a;
    };

    /// Where a response leaves the connection once it is appended.
    enum class after_response : std::uint8_t {
        next_request,
        stream_body, ///< the head is appended; the handler writes the body
        close,       ///< the last response: flush, FIN
        abort,       ///< a streamed body broke: the connection cannot continue
    };

    /// Serves one request; true when the connection goes on to the next.
    core::task<bool> serve_request();

    // The steps of serve_request(), in order. The synchronous ones are the common case of their
    // step (a head already buffered behind the last request, routing, a response appended to
    // out_), so a request costs no coroutine frame beyond serve_request's and its handler's.
    bool head_buffered(exchange& x);
    core::task<bool> read_head(exchange& x);
    core::task<bool> read_body(exchange& x);
    const handler* dispatch(exchange& x);
    void take(answer& a, reply rep);
    void handler_failed(answer& a, std::exception_ptr e);
    after_response respond(exchange& x);
    core::task<after_response> stream_body(exchange& x);
    core::task<void> close_after_response();
    core::task<void> hand_over(exchange& x);
    core::task<void> run_takeover();

    core::task<bool> read_sized_body(exchange& x);
    core::task<bool> read_chunked_body(exchange& x);
    core::task<void> fail_body_read(std::error_code ec);
    void repoint_head(exchange& x, const std::byte* old_base);
    void finish_request(exchange& x) noexcept;
    core::task<core::result<void>> flush();
    bool send_without_waiting(core::result<void>& r);
    core::task<void> answer_and_close(int status);

    server& srv_;
    core::stream_ptr& owner_;
    core::stream& stream_;
    core::stop_token draining_;
    core::stop_token own_; ///< the connection task's: cancelled at the end of the grace period
    core::buffered_reader reader_;
    std::string out_; ///< responses gathered until the connection waits for input
    /// Ends the wait for a next request (idle timeout, cancellation, shutdown) while one runs.
    core::interrupt_slot idle_wait_;
    core::clock::time_point first_head_deadline_;
    bool first_request_ = true;
    /// A handler's takeover, once its head is out: serve() runs it after the request's frame.
    std::unique_ptr<connection_takeover> takeover_;
};

} // namespace coronet::http::detail
