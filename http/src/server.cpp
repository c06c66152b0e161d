// The HTTP/1.1 connection loop: parse a head from the buffered reader, read the body, route,
// answer, repeat. Responses to pipelined requests are gathered and written together.
#include <coronet/http/server.hpp>

#include <coronet/core/accept_loop.hpp>
#include <coronet/core/buffered_reader.hpp>
#include <coronet/core/log.hpp>
#include <coronet/core/timer.hpp>

#include "wire.hpp"

#include <exception>
#include <string>

namespace coronet::http {
namespace {

using namespace std::chrono_literals;

core::task<core::result<void>> write_out(core::stream& s, std::string& out) {
    auto r = co_await s.write_all(core::as_bytes(out));
    out.clear();
    co_return r;
}

// Bytes the reader may hold: a head and a body at their limits, the framing of a chunked body
// (bounded through the chunk count), trailers, and room for a pipelined request behind them.
std::size_t reader_capacity(const parser_limits& l) {
    std::size_t framing = l.max_chunk_count < (1u << 19) ? l.max_chunk_count * 32 : (16u << 20);
    return l.max_header_bytes + l.max_body_size + framing + l.max_trailer_bytes + 64 * 1024;
}

struct live_guard {
    std::size_t& n;
    explicit live_guard(std::size_t& c) : n(c) { ++n; }
    ~live_guard() { --n; }
};

// Time left until `deadline` (zero once it has passed).
core::clock::duration time_left(core::clock::time_point deadline) {
    auto now = core::clock::now();
    return deadline > now ? deadline - now : core::clock::duration::zero();
}

// Sleeps through the grace period, then cancels whatever is still running.
core::task<void> grace_timer(core::task_scope& conns, std::chrono::milliseconds grace) {
    auto slept = co_await core::sleep_for(grace);
    if (slept)
        conns.request_stop();
}

bool append_response(std::string& out, response& r, const request_head& req, bool keep_alive,
                     bool& streamed_chunked) {
    for (const auto& [name, value] : r.headers)
        if (!detail::is_token(name) || !detail::safe_field(value))
            return false;
    if (!detail::safe_field(r.reason))
        return false;
    detail::append_status_line(out, r.status, r.reason);
    for (const auto& [name, value] : r.headers) {
        out += name;
        out += ": ";
        out += value;
        out += "\r\n";
    }
    const bool no_body = r.status < 200 || r.status == 204 || r.status == 304;
    streamed_chunked = false;
    if (!no_body) {
        if (r.stream_body && r.stream_length < 0) {
            if (req.version_minor == 1) {
                out += "Transfer-Encoding: chunked\r\n";
                streamed_chunked = true;
            }
        } else {
            out += "Content-Length: ";
            detail::append_uint(out, r.stream_body
                                         ? static_cast<unsigned long long>(r.stream_length)
                                         : r.body.size());
            out += "\r\n";
        }
    }
    if (!keep_alive)
        out += "Connection: close\r\n";
    else if (req.version_minor == 0)
        out += "Connection: keep-alive\r\n";
    out += "\r\n";
    if (!no_body && req.method != "HEAD" && !r.stream_body)
        out += r.body;
    return true;
}

} // namespace

server::server(const router& routes, server_options opts) : routes_(routes), opts_(opts) {}

// What a client gets when the process is out of descriptors: refused at once, not left in the
// backlog (core::accept_loop_options::refusal).
constexpr std::string_view out_of_descriptors_response =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 26\r\nConnection: close\r\n\r\nout of descriptors: retry\n";

core::task<void> server::serve(core::tcp_listener& listener) {
    core::stop_token outer = co_await core::get_stop_token();
    core::stop_source drain;
    drain_signal_ = &drain;
    core::task_scope conns; // not linked to `outer`: shutdown below decides when they stop
    {
        core::task_scope acceptor(outer);
        core::accept_loop_options accept_opts;
        accept_opts.refusal = out_of_descriptors_response;
        acceptor.spawn(core::accept_loop(
            listener, conns, [this](core::tcp_stream s) { return connection(std::move(s)); },
            accept_opts));
        co_await acceptor.join();
    }
    // The accept loop logged a listener failure itself; a stop request is said here.
    if (outer.stop_requested())
        core::log(core::log_level::info, "http server: stop requested; shutting down with " +
                                             std::to_string(live_) + " connections open");
    // Graceful shutdown: no more accepts; idle connections close now, busy ones finish their
    // request (answered with Connection: close) or are cancelled when the grace period ends.
    draining_ = true;
    drain.request_stop();
    core::task_scope timer;
    timer.spawn(grace_timer(conns, opts_.shutdown_grace));
    co_await conns.join();
    timer.request_stop();
    co_await timer.join();
    drain_signal_ = nullptr;
}

core::task<void> server::serve_connection(core::stream_ptr stream) {
    live_guard g(live_);
    // The first head is due header_timeout after the accept, TLS handshake included, so a
    // client that connects and stays silent is gone long before the idle timeout.
    const auto first_head_deadline = core::clock::now() + opts_.header_timeout;
    if (opts_.tls != nullptr) {
        auto t = core::tls_stream::server(*opts_.tls, std::move(stream));
        auto hs = co_await core::with_timeout(opts_.handshake_timeout, t->handshake());
        if (!hs)
            co_return; // plain-text client, bad hello, timeout: this connection only
        stream = std::move(t);
    }
    co_await run_http(*stream, stream, first_head_deadline);
}

core::task<void> server::connection(core::tcp_stream s) {
    // Out of connections or out of memory budget: refused at once, before a byte is read.
    const bool over_budget = opts_.memory_budget != nullptr && opts_.memory_budget->exhausted();
    if (live_ >= opts_.max_connections || over_budget) {
        core::count("http.connections_refused");
        if (over_budget)
            core::count("http.over_budget");
        std::string out;
        detail::append_error(out, 503);
        auto w = co_await core::with_timeout(1s, write_out(s, out));
        (void)w;
        co_return;
    }
    co_await serve_connection(std::make_unique<core::tcp_stream>(std::move(s)));
}

core::task<void> server::run_http(core::stream& s, core::stream_ptr& owner,
                                  core::clock::time_point first_head_deadline) {
    const parser_limits& lim = opts_.limits;
    core::buffered_reader rd(s, reader_capacity(lim), opts_.memory_budget);
    core::memory_charge chunk_charge(opts_.memory_budget); // chunk_body's bytes
    request_parser parser(lim);
    chunked_decoder chunks(lim);
    std::string out;
    out.reserve(1024);
    std::string chunk_body;
    core::stop_token own = co_await core::get_stop_token();

    // Sends what is gathered in `out`, with the write deadline.
    auto flush = [&]() -> core::task<core::result<void>> {
        if (out.empty())
            co_return core::result<void>{};
        // Most answers fit in the socket buffer: send them at once and arm the write deadline
        // only for what has to wait.
        auto sent = s.try_write(core::as_bytes(out));
        if (!sent) {
            out.clear();
            co_return sent.error();
        }
        if (*sent == out.size()) {
            out.clear();
            co_return core::result<void>{};
        }
        out.erase(0, *sent);
        co_return co_await core::with_timeout(opts_.write_timeout, write_out(s, out));
    };

    // After an error answer: send it, FIN, then read and drop what the client is still sending
    // (bounded in bytes and time), so that closing with unread input does not turn into a reset
    // that destroys the answer on its way (the "lingering close" of RFC 9112 §9.6).
    auto answer_and_close = [&](int status) -> core::task<void> {
        detail::append_error(out, status);
        auto f = co_await flush();
        if (!f)
            co_return;
        auto sd = co_await s.shutdown();
        if (!sd)
            co_return;
        const auto deadline = core::clock::now() + 2s;
        std::size_t dropped = 0;
        while (dropped < 256 * 1024) {
            dropped += rd.buffered().size();
            rd.consume(rd.buffered().size());
            auto r = co_await core::with_timeout(time_left(deadline), rd.fill());
            if (!r)
                break;
        }
    };

    // Waiting for a next request must end on the idle timeout, on this connection's cancellation
    // and on server shutdown. Both stop signals are hooked once per connection (not per request:
    // registering on the server-wide sources touches every other connection's list nodes).
    core::stop_source* idle_wait = nullptr;
    auto stop_idle = [&idle_wait]() noexcept {
        if (idle_wait != nullptr)
            idle_wait->request_stop();
    };
    core::stop_callback<decltype(stop_idle)> on_cancel(own, stop_idle);
    core::stop_callback<decltype(stop_idle)> on_drain(
        drain_signal_ != nullptr ? drain_signal_->token() : core::stop_token(), stop_idle);

    bool first_request = true;
    for (;;) {
        parser.reset();
        parse_status st = rd.buffered().empty() ? parse_status::need_more
                                                : parser.parse(core::as_string(rd.buffered()));
        // The header timeout covers the whole head, not each read (a client sending a byte now
        // and then must not hold the connection forever): the first head's from the accept, a
        // later head's from its first byte (between requests the idle timeout applies).
        bool head_started = first_request;
        core::clock::time_point head_deadline = first_head_deadline;
        first_request = false;
        while (st == parse_status::need_more) {
            // Nothing more to parse: answers to earlier pipelined requests go out first.
            if (auto f = co_await flush(); !f)
                co_return;
            const bool idle = rd.buffered().empty(); // no byte of this request yet
            if (idle && draining_)
                co_return;
            core::result<std::size_t> got = std::size_t{0};
            if (idle) {
                // Waiting for a request: the header deadline for the first one, the idle
                // timeout for later ones; shutdown closes us.
                core::stop_source idle_stop;
                if (own.stop_requested())
                    co_return;
                idle_wait = &idle_stop;
                auto w = core::with_timeout(
                    head_started ? time_left(head_deadline) : opts_.idle_timeout, rd.fill());
                w.handle().promise().set_token(idle_stop.token());
                got = co_await std::move(w);
                idle_wait = nullptr;
            } else {
                if (!head_started) {
                    head_started = true;
                    head_deadline = core::clock::now() + opts_.header_timeout;
                }
                got = co_await core::with_timeout(time_left(head_deadline), rd.fill());
            }
            if (!got) {
                if (got.error() == core::errc::over_budget) {
                    core::count("http.over_budget");
                    co_await answer_and_close(503);
                    co_return;
                }
                // A connection that sent nothing is closed without a 408: it may be a client's
                // unused preconnection, which would read the 408 as its next request's answer.
                if (got.error() == core::errc::timed_out && !idle)
                    co_await answer_and_close(408);
                co_return; // EOF, reset, idle or header timeout with no byte, shutdown
            }
            st = parser.parse(core::as_string(rd.buffered()));
        }
        if (st == parse_status::error) {
            core::count("http.protocol_errors");
            co_await answer_and_close(status_of(parser.error()));
            co_return;
        }

        // The body, read whole before the handler runs. Reading may move the buffer, so the
        // head is parsed again afterwards to point into it.
        std::size_t head_size = parser.head_size();
        std::size_t consumed = head_size;
        std::string_view body;
        const body_kind kind = parser.head().body;
        if (kind != body_kind::none) {
            if (parser.head().expect_continue) {
                out += "HTTP/1.1 100 Continue\r\n\r\n";
                if (auto f = co_await flush(); !f)
                    co_return;
            }
            bool read_more = false;
            if (kind == body_kind::content_length) {
                std::size_t need =
                    head_size + static_cast<std::size_t>(parser.head().content_length);
                if (rd.buffered().size() < need) {
                    read_more = true;
                    auto r = co_await core::with_timeout(opts_.body_timeout, rd.read_exactly(need));
                    if (!r) {
                        if (r.error() == core::errc::over_budget) {
                            core::count("http.over_budget");
                            co_await answer_and_close(503);
                            co_return;
                        }
                        if (r.error() == core::errc::timed_out) {
                            detail::append_error(out, 408);
                            (void)co_await flush();
                        }
                        co_return;
                    }
                }
                consumed = need;
                body = core::as_string(rd.buffered()).substr(head_size, need - head_size);
            } else {
                chunks.reset();
                chunk_body.clear();
                std::size_t pos = head_size;
                // The body timeout covers the whole body, not each read.
                const auto body_deadline = core::clock::now() + opts_.body_timeout;
                for (;;) {
                    auto step = chunks.decode(core::as_string(rd.buffered()).substr(pos));
                    pos += step.consumed;
                    if (!chunk_charge.resize(chunk_body.size() + step.data.size())) {
                        core::count("http.over_budget");
                        co_await answer_and_close(503);
                        co_return;
                    }
                    chunk_body.append(step.data);
                    if (step.ec) {
                        core::count("http.protocol_errors");
                        co_await answer_and_close(status_of(step.ec));
                        co_return;
                    }
                    if (step.done)
                        break;
                    if (pos < rd.buffered().size())
                        continue;
                    read_more = true;
                    auto r = co_await core::with_timeout(time_left(body_deadline), rd.fill());
                    if (!r) {
                        if (r.error() == core::errc::over_budget) {
                            core::count("http.over_budget");
                            co_await answer_and_close(503);
                            co_return;
                        }
                        if (r.error() == core::errc::timed_out) {
                            detail::append_error(out, 408);
                            (void)co_await flush();
                        }
                        co_return;
                    }
                }
                consumed = pos;
                body = chunk_body;
            }
            if (read_more) {
                parser.reset();
                (void)parser.parse(core::as_string(rd.buffered()));
                if (kind == body_kind::content_length)
                    body = core::as_string(rd.buffered()).substr(head_size, consumed - head_size);
            }
        }

        const request_head& head = parser.head();
        request req(head, body);
        router::match m = routes_.find(head.method, head.path);
        bool keep_alive = head.keep_alive && !draining_;
        std::unique_ptr<connection_takeover> takeover;
        response res;
        if (m.target == nullptr) {
            res = response::text(std::string(reason_phrase(m.status)) + "\n", m.status);
            if (m.status == 405)
                res.set("Allow", m.allow);
        } else {
            req.set_params(std::move(m.params));
            try {
                reply rep = co_await (*m.target)(req);
                if (rep.is_takeover())
                    takeover = std::move(rep.takeover());
                else
                    res = std::move(rep.get_response());
            } catch (const std::exception& e) {
                core::log(core::log_level::error, std::string("http handler threw: ") + e.what());
                res = response::text("Internal Server Error\n", 500);
                keep_alive = false;
            } catch (...) {
                core::log(core::log_level::error, "http handler threw a non-exception");
                res = response::text("Internal Server Error\n", 500);
                keep_alive = false;
            }
        }

        if (takeover) {
            // The head the takeover asks for, then the connection is no longer HTTP's.
            response head_res = takeover->head();
            bool unused = false;
            head_res.body.clear();
            head_res.stream_body = nullptr;
            std::string head_out;
            if (!append_response(head_out, head_res, head, true, unused)) {
                detail::append_error(out, 500);
                (void)co_await flush();
                co_return;
            }
            // A 101 carries no Content-Length; other takeover heads say their body is empty.
            out += head_out;
            if (auto f = co_await flush(); !f)
                co_return;
            rd.consume(consumed);
            takeover_context ctx{std::move(owner), rd.release_prefetched(),
                                 drain_signal_ != nullptr ? drain_signal_->token()
                                                          : core::stop_token()};
            co_await takeover->run(std::move(ctx));
            co_return;
        }

        // Shutdown may have begun while the handler ran: this response is the connection's last.
        if (draining_)
            keep_alive = false;
        // An HTTP/1.0 client gets an unsized streamed body unframed: the close ends it, so the
        // head must say Connection: close rather than keep-alive.
        if (res.stream_body && res.stream_length < 0 && head.version_minor == 0 &&
            head.method != "HEAD")
            keep_alive = false;
        bool chunked_stream = false;
        if (!append_response(out, res, head, keep_alive, chunked_stream)) {
            core::log(core::log_level::error, "http: response header with CR/LF refused");
            // append_response wrote nothing; answers to earlier pipelined requests stay in `out`.
            detail::append_error(out, 500);
            keep_alive = false;
        } else if (res.stream_body && head.method != "HEAD") {
            if (auto f = co_await flush(); !f)
                co_return;
            body_writer bw(s, chunked_stream);
            auto r = co_await res.stream_body(bw);
            if (!r || (res.stream_length >= 0 &&
                       bw.written() != static_cast<std::size_t>(res.stream_length)))
                co_return; // the body is broken: the connection cannot continue
            if (chunked_stream)
                out += "0\r\n\r\n";
            if (!chunked_stream && res.stream_length < 0)
                keep_alive = false; // HTTP/1.0
        }
        rd.consume(consumed);
        // The decoded body is not needed any more: a large one goes back (as the reader's
        // buffer does), and its bytes leave the budget.
        if (chunk_body.capacity() > 2 * core::buffered_reader::growth_step)
            std::string().swap(chunk_body);
        chunk_charge.reset();
        if (!keep_alive) {
            (void)co_await flush();
            (void)co_await s.shutdown();
            co_return;
        }
    }
}

} // namespace coronet::http
