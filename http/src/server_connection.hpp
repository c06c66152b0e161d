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

/// Serves the requests of one connection in order (keep-alive, pipelining) until it closes or a
/// handler takes it over. Lives in the connection's task; `routes`, `opts` and `owner` must
/// outlive it. `draining` fires when the server begins its graceful shutdown.
class server_connection {
public:
    server_connection(const router& routes, const server_options& opts, core::stream_ptr& owner,
                      core::stop_token draining);
    server_connection(const server_connection&) = delete;
    server_connection& operator=(const server_connection&) = delete;

    /// Serves until the connection ends. The first head is due by `first_head_deadline`.
    core::task<void> run(core::clock::time_point first_head_deadline);

private:
    /// What dispatch produced for the request: a response, or a takeover of the connection.
    struct answer {
        response res;
        std::unique_ptr<connection_takeover> takeover;
        bool keep_alive = true;
        bool chunked_stream = false; ///< a streamed body goes out in chunks
    };

    /// Where a response leaves the connection once it is appended.
    enum class after_response : std::uint8_t {
        next_request,
        stream_body, ///< the head is appended; the handler writes the body
        close,       ///< the last response: flush, FIN
        abort,       ///< a streamed body broke: the connection cannot continue
    };

    // The steps of run(), in order. The synchronous ones are the common case of their step (a
    // head already buffered behind the last request, routing, a response appended to out_), so
    // a pipelined request costs no coroutine frame beyond its handler's.
    bool head_buffered();
    core::task<bool> read_head();
    core::task<bool> read_body();
    const handler* dispatch(answer& a);
    void take(answer& a, reply rep);
    void handler_failed(answer& a, std::exception_ptr e);
    after_response respond(answer& a);
    core::task<after_response> stream_body(answer& a);
    core::task<void> close_after_response();
    core::task<void> hand_over(connection_takeover& takeover);

    core::task<bool> read_sized_body();
    core::task<bool> read_chunked_body();
    core::task<void> fail_body_read(std::error_code ec);
    void repoint_head(const std::byte* old_base);
    void finish_request() noexcept;
    core::task<core::result<void>> flush();
    bool send_without_waiting(core::result<void>& r);
    core::task<void> answer_and_close(int status);

    const router& routes_;
    const server_options& opts_;
    core::stream_ptr& owner_;
    core::stream& stream_;
    core::stop_token draining_;
    core::stop_token own_; ///< the connection task's: cancelled at the end of the grace period
    core::buffered_reader reader_;
    core::memory_charge chunk_charge_; ///< chunk_body_'s bytes
    request_parser parser_;
    chunked_decoder chunks_;
    std::string out_; ///< responses gathered until the connection waits for input
    std::string chunk_body_;
    /// Ends the wait for a next request (idle timeout, cancellation, shutdown) while one runs.
    core::interrupt_slot idle_wait_;
    core::clock::time_point first_head_deadline_{};
    bool first_request_ = true;

    // The request being served.
    const request_head* head_ = nullptr; ///< the parser's, or moved_head_
    request_head moved_head_;            ///< the head re-pointed after its bytes moved
    std::size_t consumed_ = 0;           ///< bytes of the reader the request occupies
    std::string_view body_;
    std::optional<request> request_; ///< what the handler sees, until the next request
};

} // namespace coronet::http::detail
