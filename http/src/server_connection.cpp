// The life of a server-side HTTP/1.1 connection: read a head from the buffered reader, read the
// body, route, answer, repeat; or hand the connection over. Responses to pipelined requests are
// gathered and written together.
#include "server_connection.hpp"

#include <coronet/core/log.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/with_stop.hpp>

#include "spare_list.hpp"
#include "wire.hpp"

#include <cstdint>
#include <exception>
#include <utility>

namespace coronet::http::detail {
namespace {

using namespace std::chrono_literals;

core::task<core::result<void>> write_out(core::stream& s, std::string& out) {
    auto r = co_await s.write_all(core::as_bytes(out));
    out.clear();
    co_return r;
}

// The output buffers of connections that wait for a next request, kept for the next connection
// that answers one (as buffered_reader keeps read buffers): an idle keep-alive connection holds
// no output buffer, and answering allocates nothing in steady state (a connection takes a
// buffer when a request arrives and gives it back before it waits again, within the same
// resumption unless its answer had to wait for the socket).
constexpr std::size_t first_out_size = 1024;
using spare_out = detail::spare_list<std::string, 64 * 1024>;

// `out` is empty: its buffer goes to the cache (or is freed).
void give_up_out(std::string& out) noexcept {
    if (out.capacity() < first_out_size)
        return; // nothing worth keeping (a short string lives inside the object)
    if (!spare_out::give(out))
        std::string().swap(out);
}

// Makes sure `out` has a buffer of first_out_size or more, from the cache when it has one.
void take_out(std::string& out) {
    if (out.capacity() >= first_out_size)
        return;
    if (out.empty())
        out = spare_out::take();
    if (out.capacity() < first_out_size)
        out.reserve(first_out_size);
}

// Bytes the reader may hold: a head and a body at their limits, the framing of a chunked body
// (bounded through the chunk count), trailers, and room for a pipelined request behind them.
std::size_t reader_capacity(const parser_limits& l) {
    std::size_t framing = l.max_chunk_count < (1u << 19) ? l.max_chunk_count * 32 : (16u << 20);
    return l.max_header_bytes + l.max_body_size + framing + l.max_trailer_bytes + 64 * 1024;
}

// Time left until `deadline` (zero once it has passed).
core::clock::duration time_left(core::clock::time_point deadline) {
    auto now = core::clock::now();
    return deadline > now ? deadline - now : core::clock::duration::zero();
}

// Where the buffered bytes start: compared before and after a read to see whether they moved.
const std::byte* buffer_start(const core::buffered_reader& rd) noexcept {
    return rd.buffered().data();
}

bool append_response(std::string& out, const response& r, const request_head& req, bool keep_alive,
                     bool& streamed_chunked) {
    for (const auto& [name, value] : r.headers)
        if (!is_token(name) || !safe_field(value))
            return false;
    if (!safe_field(r.reason))
        return false;
    append_status_line(out, r.status, r.reason);
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
            append_uint(out, r.stream_body ? static_cast<unsigned long long>(r.stream_length)
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

server_connection::server_connection(server& srv, core::stream_ptr& owner,
                                     core::stop_token draining,
                                     core::clock::time_point first_head_deadline)
    : srv_(srv), owner_(owner), stream_(*owner), draining_(draining),
      reader_(*owner, reader_capacity(srv.opts_.limits), srv.opts_.memory_budget),
      first_head_deadline_(first_head_deadline) {}

core::task<void> server_connection::serve(server& srv, core::stream_ptr stream,
                                          core::stop_token draining,
                                          core::clock::time_point first_head_deadline) {
    live_guard counted(&srv.live_);
    if (first_head_deadline == core::clock::time_point{})
        first_head_deadline = core::clock::now() + srv.opts_.header_timeout;
    server_connection c(srv, stream, draining, first_head_deadline);
    // Waiting for a next request must end on the idle timeout, on this connection's cancellation
    // and on server shutdown. Both stop signals are hooked once per connection (not per request:
    // registering on the server-wide sources touches every other connection's list nodes).
    auto stop_idle = [&c]() noexcept { c.idle_wait_.interrupt(); };
    c.own_ = co_await core::get_stop_token();
    core::stop_callback<decltype(stop_idle)> on_cancel(c.own_, stop_idle);
    core::stop_callback<decltype(stop_idle)> on_drain(c.draining_, stop_idle);

    for (;;) {
        if (c.reader_.fills_lent(0)) {
            // Idle between requests (or before the first), with nothing buffered: the wait runs
            // here, an operation in this frame, so that an idle keep-alive connection holds this
            // frame alone. read_head() does the same wait for a stream that does not lend
            // buffers (TLS).
            core::result<void> f;
            if (!c.send_without_waiting(f))
                f = co_await c.flush();
            if (!f || c.draining_.stop_requested() || c.own_.stop_requested())
                co_return;
            give_up_out(c.out_); // empty: everything answered went out
            const auto until = c.first_request_ ? c.first_head_deadline_
                                                : core::clock::now() + c.opts().idle_timeout;
            // A lent wait charges nothing to the memory budget: it cannot fail with over_budget.
            auto got =
                co_await c.idle_wait_.run_op(core::with_deadline(until, c.reader_.fill_lent()));
            if (!got)
                co_return; // EOF, reset, idle or first-head timeout with no byte, shutdown
        }
        const bool next = co_await c.serve_request();
        if (!next)
            break;
    }
    if (c.takeover_)
        co_await c.run_takeover();
}

core::task<void> server_connection::serve_tls(server& srv, core::stream_ptr stream,
                                              core::stop_token draining) {
    // The first head is due header_timeout after the accept, the handshake included.
    const auto first_head_deadline = core::clock::now() + srv.opts_.header_timeout;
    auto t = core::tls_stream::server(*srv.opts_.tls, std::move(stream));
    core::result<void> hs;
    {
        live_guard counted(&srv.live_); // serve() counts it once the handshake is done
        hs = co_await core::with_timeout(srv.opts_.handshake_timeout, t->handshake());
    }
    if (!hs)
        co_return; // plain-text client, bad hello, timeout: this connection only
    co_await serve(srv, std::move(t), draining, first_head_deadline);
}

core::task<bool> server_connection::serve_request() {
    exchange x(opts());
    if (!head_buffered(x)) {
        const bool read = co_await read_head(x);
        if (!read)
            co_return false;
    }
    take_out(out_);
    if (x.parser.head().body != body_kind::none) {
        const bool body = co_await read_body(x);
        if (!body)
            co_return false;
    }
    if (const handler* h = dispatch(x)) {
        try {
            take(x.a, co_await (*h)(*x.req));
        } catch (...) {
            handler_failed(x.a, std::current_exception());
        }
    }
    if (x.a.takeover) {
        co_await hand_over(x);
        co_return false;
    }
    after_response next = respond(x);
    if (next == after_response::stream_body)
        next = co_await stream_body(x);
    if (next == after_response::close)
        co_await close_after_response();
    co_return next == after_response::next_request;
}

// True when the request's whole head is already buffered (pipelined behind the last one, or
// read by the idle wait) and parsed. Otherwise read_head() goes on from where the parser
// stopped.
bool server_connection::head_buffered(exchange& x) {
    if (reader_.buffered().empty() ||
        x.parser.parse(core::as_string(reader_.buffered())) != parse_status::complete)
        return false;
    first_request_ = false;
    x.consumed = x.parser.head_size();
    return true;
}

// Reads until the head head_buffered() began is complete. False when the connection is done
// (closed, timed out, refused with an error answer).
core::task<bool> server_connection::read_head(exchange& x) {
    // head_buffered() parsed what was buffered; a parser that failed stays failed.
    parse_status st = x.parser.error() ? parse_status::error : parse_status::need_more;
    // The header timeout covers the whole head, not each read (a client sending a byte now
    // and then must not hold the connection forever): the first head's from the accept, a
    // later head's from its first byte (between requests the idle timeout applies).
    bool head_started = first_request_;
    core::clock::time_point head_deadline = first_head_deadline_;
    first_request_ = false;
    while (st == parse_status::need_more) {
        // Nothing more to parse: answers to earlier pipelined requests go out first.
        core::result<void> f;
        if (!send_without_waiting(f))
            f = co_await flush();
        if (!f)
            co_return false;
        const bool idle = reader_.buffered().empty(); // no byte of this request yet
        if (idle && draining_.stop_requested())
            co_return false;
        core::result<std::size_t> got = std::size_t{0};
        if (idle) {
            // Waiting for a request: the header deadline for the first one, the idle timeout
            // for later ones; shutdown closes us.
            if (own_.stop_requested())
                co_return false;
            got = co_await idle_wait_.run(core::with_timeout(
                head_started ? time_left(head_deadline) : opts().idle_timeout, reader_.fill()));
        } else {
            if (!head_started) {
                head_started = true;
                head_deadline = core::clock::now() + opts().header_timeout;
            }
            got = co_await core::with_timeout(time_left(head_deadline), reader_.fill());
        }
        if (!got) {
            if (got.error() == core::errc::over_budget) {
                core::count("http.over_budget");
                co_await answer_and_close(503);
            } else if (got.error() == core::errc::timed_out && !idle) {
                // A connection that sent nothing is closed without a 408: it may be a client's
                // unused preconnection, which would read the 408 as its next request's answer.
                co_await answer_and_close(408);
            }
            co_return false; // EOF, reset, idle or header timeout with no byte, shutdown
        }
        st = x.parser.parse(core::as_string(reader_.buffered()));
    }
    if (st == parse_status::error) {
        core::count("http.protocol_errors");
        co_await answer_and_close(status_of(x.parser.error()));
        co_return false;
    }
    x.consumed = x.parser.head_size();
    co_return true;
}

// Reads the whole body before the handler runs. False when the connection is done.
core::task<bool> server_connection::read_body(exchange& x) {
    if (x.parser.head().expect_continue) {
        out_ += "HTTP/1.1 100 Continue\r\n\r\n";
        auto f = co_await flush();
        if (!f)
            co_return false;
    }
    const std::byte* head_at = buffer_start(reader_);
    bool read = false;
    if (x.parser.head().body == body_kind::content_length)
        read = co_await read_sized_body(x);
    else
        read = co_await read_chunked_body(x);
    if (!read)
        co_return false;
    if (buffer_start(reader_) != head_at)
        repoint_head(x, head_at);
    co_return true;
}

core::task<bool> server_connection::read_sized_body(exchange& x) {
    const std::size_t head_size = x.parser.head_size();
    const std::size_t need = head_size + static_cast<std::size_t>(x.parser.head().content_length);
    if (reader_.buffered().size() < need) {
        auto r = co_await core::with_timeout(opts().body_timeout, reader_.read_exactly(need));
        if (!r) {
            co_await fail_body_read(r.error());
            co_return false;
        }
    }
    x.consumed = need;
    x.body = core::as_string(reader_.buffered()).substr(head_size, need - head_size);
    co_return true;
}

core::task<bool> server_connection::read_chunked_body(exchange& x) {
    chunked_decoder chunks(opts().limits);
    x.chunk_body.clear();
    std::size_t pos = x.parser.head_size();
    // The body timeout covers the whole body, not each read.
    const auto body_deadline = core::clock::now() + opts().body_timeout;
    for (;;) {
        auto step = chunks.decode(core::as_string(reader_.buffered()).substr(pos));
        pos += step.consumed;
        if (!x.chunk_charge.resize(x.chunk_body.size() + step.data.size())) {
            core::count("http.over_budget");
            co_await answer_and_close(503);
            co_return false;
        }
        x.chunk_body.append(step.data);
        if (step.ec) {
            core::count("http.protocol_errors");
            co_await answer_and_close(status_of(step.ec));
            co_return false;
        }
        if (step.done)
            break;
        if (pos < reader_.buffered().size())
            continue;
        auto r = co_await core::with_timeout(time_left(body_deadline), reader_.fill());
        if (!r) {
            co_await fail_body_read(r.error());
            co_return false;
        }
    }
    x.consumed = pos;
    x.body = x.chunk_body;
    co_return true;
}

// A body read failed: past the memory budget the request gets 503, a body that came too slowly
// 408; any other failure (EOF, reset, shutdown) leaves nobody to answer.
core::task<void> server_connection::fail_body_read(std::error_code ec) {
    if (ec == core::errc::over_budget) {
        core::count("http.over_budget");
        co_await answer_and_close(503);
    } else if (ec == core::errc::timed_out) {
        append_error(out_, 408);
        (void)co_await flush();
    }
}

// Reading the body may have moved the reader's buffer, and with it the bytes the parsed head's
// views point into. The head still starts the buffer, so each view moves by the same distance
// (request_parser::rebase); translating them beats parsing the head a second time.
void server_connection::repoint_head(exchange& x, const std::byte* old_base) {
    x.parser.rebase(reinterpret_cast<const char*>(old_base),
                    core::as_string(reader_.buffered()).data());
}

// Routes the request: the handler for serve_request() to await (directly, so that a request
// costs no frame of dispatch's own), with x.req ready for it; or none, and the 404/405 answer.
const handler* server_connection::dispatch(exchange& x) {
    answer& a = x.a;
    const request_head& head = x.parser.head();
    router::match m = srv_.routes_.find(head.method, head.path);
    a.keep_alive = head.keep_alive && !draining_.stop_requested();
    if (m.target == nullptr) {
        a.res = response::text(std::string(reason_phrase(m.status)) + "\n", m.status);
        if (m.status == 405)
            a.res.set("Allow", m.allow);
        return nullptr;
    }
    x.req.emplace(head, x.body).set_params(std::move(m.params));
    return m.target;
}

void server_connection::take(answer& a, reply rep) {
    if (rep.is_takeover())
        a.takeover = std::move(rep.takeover());
    else
        a.res = std::move(rep.get_response());
}

// A handler that throws gets a 500, and the connection closes after it; the server goes on.
void server_connection::handler_failed(answer& a, std::exception_ptr e) {
    try {
        std::rethrow_exception(std::move(e));
    } catch (const std::exception& x) {
        core::log(core::log_level::error, std::string("http handler threw: ") + x.what());
    } catch (...) {
        core::log(core::log_level::error, "http handler threw a non-exception");
    }
    a.res = response::text("Internal Server Error\n", 500);
    a.keep_alive = false;
}

// Appends the response to out_. A streamed body is the next step's; otherwise the request is
// done here.
server_connection::after_response server_connection::respond(exchange& x) {
    answer& a = x.a;
    const request_head& head = x.parser.head();
    const response& res = a.res;
    // Shutdown may have begun while the handler ran: this response is the connection's last.
    if (draining_.stop_requested())
        a.keep_alive = false;
    // An HTTP/1.0 client gets an unsized streamed body unframed: the close ends it, so the head
    // must say Connection: close rather than keep-alive.
    if (res.stream_body && res.stream_length < 0 && head.version_minor == 0 &&
        head.method != "HEAD")
        a.keep_alive = false;
    if (!append_response(out_, res, head, a.keep_alive, a.chunked_stream)) {
        core::log(core::log_level::error, "http: response header with CR/LF refused");
        // append_response wrote nothing; answers to earlier pipelined requests stay in out_.
        append_error(out_, 500);
        a.keep_alive = false;
    } else if (res.stream_body && head.method != "HEAD") {
        return after_response::stream_body;
    }
    finish_request(x);
    return a.keep_alive ? after_response::next_request : after_response::close;
}

// Sends the head gathered so far, then lets the handler write the body.
core::task<server_connection::after_response> server_connection::stream_body(exchange& x) {
    answer& a = x.a;
    auto f = co_await flush();
    if (!f)
        co_return after_response::abort;
    response& res = a.res;
    body_writer bw(stream_, a.chunked_stream);
    auto r = co_await res.stream_body(bw);
    if (!r ||
        (res.stream_length >= 0 && bw.written() != static_cast<std::size_t>(res.stream_length)))
        co_return after_response::abort;
    if (a.chunked_stream)
        out_ += "0\r\n\r\n";
    if (!a.chunked_stream && res.stream_length < 0)
        a.keep_alive = false; // HTTP/1.0
    finish_request(x);
    co_return a.keep_alive ? after_response::next_request : after_response::close;
}

// The connection's last response goes out, then a FIN.
core::task<void> server_connection::close_after_response() {
    (void)co_await flush();
    (void)co_await stream_.shutdown();
}

void server_connection::finish_request(exchange& x) noexcept {
    reader_.consume(x.consumed);
    // A decoded chunked body is not needed any more: it leaves the budget now, not when the
    // request's frame ends (after a last answer has gone out to a slow client).
    std::string().swap(x.chunk_body);
    x.chunk_charge.reset();
}

// Writes the head the takeover asks for; then the connection is no longer HTTP's: takeover_
// runs once this request's frame is gone.
core::task<void> server_connection::hand_over(exchange& x) {
    response head_res = x.a.takeover->head();
    head_res.body.clear();
    head_res.stream_body = nullptr;
    std::string head_out;
    bool unused = false;
    if (!append_response(head_out, head_res, x.parser.head(), true, unused)) {
        append_error(out_, 500);
        (void)co_await flush();
        co_return;
    }
    // A 101 carries no Content-Length; other takeover heads say their body is empty.
    out_ += head_out;
    auto f = co_await flush();
    if (!f)
        co_return;
    reader_.consume(x.consumed);
    takeover_ = std::move(x.a.takeover);
}

core::task<void> server_connection::run_takeover() {
    takeover_context ctx{std::move(owner_), reader_.release_prefetched(), draining_};
    co_await takeover_->run(std::move(ctx));
}

// Sends what is gathered in out_, with the write deadline.
core::task<core::result<void>> server_connection::flush() {
    core::result<void> r;
    if (send_without_waiting(r))
        co_return r;
    co_return co_await core::with_timeout(opts().write_timeout, write_out(stream_, out_));
}

// Most answers fit in the socket buffer: they go out at once, and only what has to wait gets a
// write deadline (and a coroutine frame).
bool server_connection::send_without_waiting(core::result<void>& r) {
    r = core::result<void>{};
    if (out_.empty())
        return true;
    auto sent = stream_.try_write(core::as_bytes(out_));
    if (!sent) {
        out_.clear();
        r = sent.error();
        return true;
    }
    if (*sent == out_.size()) {
        out_.clear();
        return true;
    }
    out_.erase(0, *sent);
    return false;
}

// After an error answer: send it, FIN, then read and drop what the client is still sending
// (bounded in bytes and time), so that closing with unread input does not turn into a reset
// that destroys the answer on its way (the "lingering close" of RFC 9112 §9.6).
core::task<void> server_connection::answer_and_close(int status) {
    append_error(out_, status);
    auto f = co_await flush();
    if (!f)
        co_return;
    auto sd = co_await stream_.shutdown();
    if (!sd)
        co_return;
    const auto deadline = core::clock::now() + 2s;
    std::size_t dropped = 0;
    while (dropped < 256 * 1024) {
        dropped += reader_.buffered().size();
        reader_.consume(reader_.buffered().size());
        auto r = co_await core::with_timeout(time_left(deadline), reader_.fill());
        if (!r)
            break;
    }
}

} // namespace coronet::http::detail
