// The session's driver for receiving: the I/O and the timers around the sans-I/O message reader
// (message_reader.cpp) and the keepalive bookkeeping (keepalive.cpp). Sending: session_send.cpp.
#include <coronet/ws/session.hpp>

#include <coronet/core/log.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/with_stop.hpp>
#include <coronet/ws/utf8.hpp>

#include "session_receive_side.hpp"

#include <algorithm>
#include <stdexcept>
#include <type_traits>

namespace coronet::ws {

static_assert(session::max_inflated_chunk <= core::memory_charge::default_allowance,
              "an inflated chunk is not charged to the memory budget");

session::session(core::stream_ptr stream, role r, std::vector<std::byte> prefetched,
                 session_options opts)
    : session(std::make_shared<const session_options>(std::move(opts)), std::move(stream), r,
              std::move(prefetched)) {}

session::session(std::shared_ptr<const session_options> opts, core::stream_ptr stream, role r,
                 std::vector<std::byte> prefetched)
    : stream_(std::move(stream)),
      opts_(opts ? std::move(opts) : throw std::invalid_argument("ws::session: no options")),
      reader_(*stream_, static_cast<std::size_t>(opts_->limits.max_frame_size) + 64 * 1024,
              opts_->memory_budget),
      role_(r) {
    if (opts_->agreed_deflate && (opts_->deflate.level < -1 || opts_->deflate.level > 9 ||
                                  opts_->deflate.mem_level < 1 || opts_->deflate.mem_level > 9))
        throw std::invalid_argument("ws::session: deflate level must be -1..9 and mem_level 1..9");
    rx_ = std::make_unique<receive_side>(r, *opts_);
    (void)reader_.prime(prefetched);
    if (opts_->agreed_deflate) {
        // Ours: what this side compresses with (the peer's side is the message reader's).
        const auto& p = *opts_->agreed_deflate;
        const bool server = r == role::server;
        const int our_bits = server ? p.server_max_window_bits : p.client_max_window_bits;
        const bool our_reset = server ? p.server_no_context_takeover : p.client_no_context_takeover;
        auto d = std::make_unique<deflater>(our_bits, our_reset, opts_->deflate.level,
                                            opts_->deflate.mem_level);
        if (d->usable())
            deflater_ = std::move(d);
    }
}

session::~session() = default;

session::spare_parts& session::spare() {
    if (!spare_)
        spare_ = std::make_unique<spare_parts>();
    return *spare_;
}

const std::string& session::close_reason() const noexcept {
    static const std::string none;
    return spare_ ? spare_->close_reason : none;
}

std::uint64_t session::auto_responses_sent() const noexcept {
    return rx_->reader.auto_responses();
}

core::clock::time_point session::last_heard() const noexcept {
    return rx_->alive.last_heard();
}

void session::set_auto_response(std::string request, std::string response, opcode type) {
    if (type != opcode::text && type != opcode::binary)
        throw std::invalid_argument("ws::session::set_auto_response: text or binary only");
    rx_->reader.set_auto_response(std::move(request), std::move(response), type);
}

void session::clear_auto_response() noexcept {
    rx_->reader.clear_auto_response();
}

// A protocol error: tell the peer why, then drop the connection (RFC 6455 §7.1.7).
core::task<void> session::fail(std::error_code ec) {
    // Called from inside the receive's wait for bytes (timeouts): our own close frame must not
    // cut that wait's stop token, which the shutdown below runs under.
    fill_wait_.detach();
    if (!close_sent_) {
        auto sent =
            co_await core::with_timeout(opts_->close_timeout, send_close(close_code_of(ec), {}));
        (void)sent;
    }
    if (close_code_ == 0)
        close_code_ = 1006;
    auto sd = co_await stream_->shutdown();
    (void)sd;
}

// The budget refused this session's bytes: shed it with 1013 (try again later).
core::task<std::error_code> session::fail_over_budget() {
    core::count("ws.over_budget");
    const auto ec = make_error_code(errc::over_budget);
    co_await fail(ec);
    co_return ec;
}

// ---------------------------------------------------------------------------------------------
// Receiving

void session::close_on(core::stop_token going_away) noexcept {
    going_away_ = going_away;
    // One registration for the session's life, not one per wait. A token that already fired
    // interrupts a receive waiting now (which then sends 1001) or, with none waiting, is seen
    // by the next receive through plain_wait().
    away_.attach(going_away.source());
}

void session::away_hook::fire(core::stop_callback_base* cb) noexcept {
    static_cast<away_hook*>(cb)->self->fill_wait_.interrupt();
}

core::task<core::result<message>> session::receive() {
    return assemble<message>();
}

core::task<core::result<message_view>> session::receive_view() {
    return assemble<message_view>();
}

// The receive's common steps only: a whole message in one frame of at most the free memory
// allowance, or a wait for bytes. GCC keeps every local and every awaiter of a coroutine in its
// frame for the coroutine's whole run, so a session waiting for its next message holds this
// small frame and at most wait_for_bytes()'s (TLS, keepalive timers); pieces, control frames,
// errors and a failed plain wait go on in assemble_rest(), whose frame exists only while they
// do.
template <class Out>
core::task<core::result<Out>> session::assemble() {
    if (close_received_)
        co_return make_error_code(errc::closed);
    receiving_ = true;
    if (spare_) // the last view is over: an idle session holds nothing
        std::string().swap(spare_->assembled);
    pending_event pending;
    for (;;) {
        const quick_step step = next_quick(pending);
        if (step == quick_step::message) {
            if constexpr (std::is_same_v<Out, message_view>)
                co_return message_view{pending.ev.chunk.type, pending.ev.chunk.data};
            else
                co_return message{pending.ev.chunk.type, std::string(pending.ev.chunk.data)};
        }
        if (step == quick_step::other)
            break;
        if (step == quick_step::wait_any) {
            // Any other wait (a stream that lends no buffer, keepalive timers, our close sent,
            // part of a frame held): a coroutine of its own, as next_data() would await it, so
            // that an idle TLS or keepalive session does not wait inside assemble_rest().
            auto waited = co_await wait_for_bytes();
            if (!waited) {
                receiving_ = false;
                co_return waited.error();
            }
            continue;
        }
        // An operation in this frame (no frame of its own) that fill_wait_.interrupt() cancels:
        // our close going out, abandon, going away, interrupt_receive().
        auto got = co_await fill_wait_.run_op(reader_.fill_lent());
        if (!got) {
            pending.fill_error = got.error();
            break;
        }
        rx_->alive.heard(core::clock::now());
    }
    co_return co_await assemble_rest<Out>(pending);
}

session::quick_step session::next_quick(pending_event& p) {
    using kind = detail::message_reader::kind;
    p.ev = rx_->reader.next(reader_.mutable_buffered());
    reader_.consume(p.ev.consumed);
    const message_chunk& c = p.ev.chunk;
    if (p.ev.what == kind::data && c.first && c.last &&
        c.data.size() <= core::memory_charge::default_allowance) {
        // Within every holder's free allowance, the memory budget has no say.
        if (rx_->alive.watches_messages())
            rx_->alive.message_passed(core::clock::now());
        receiving_ = false;
        return quick_step::message;
    }
    if (p.ev.what == kind::need_more)
        return plain_wait() && reader_.fills_lent(rx_->reader.read_hint()) ? quick_step::wait
                                                                           : quick_step::wait_any;
    return quick_step::other;
}

// Everything assemble() leaves: `pending` holds a decoded event not yet acted on, or the error
// of the plain wait that failed.
template <class Out>
core::task<core::result<Out>> session::assemble_rest(pending_event& pending) {
    constexpr bool view = std::is_same_v<Out, message_view>;
    message msg;
    // Where the pieces go: receive_view()'s buffer is taken only for a message in pieces.
    std::string* out = view ? nullptr : &msg.data;
    // The message's bytes beyond its first 64 KiB (a small message never touches the budget);
    // given back when the message is handed over or dropped.
    core::memory_charge charge(opts_->memory_budget);
    using kind = detail::message_reader::kind;
    bool decoded = !pending.fill_error;
    for (;;) {
        if (pending.fill_error) {
            const std::error_code failed = pending.fill_error;
            pending.fill_error = std::error_code();
            const core::stop_token outer = co_await core::get_stop_token();
            const bool interrupted = fill_wait_.interrupted() && !outer.stop_requested();
            auto r = co_await fill_failed(failed, interrupted);
            if (!r) {
                receiving_ = false;
                co_return r.error();
            }
        }
        if (!decoded) {
            pending.ev = rx_->reader.next(reader_.mutable_buffered());
            reader_.consume(pending.ev.consumed);
        }
        decoded = false;
        if (pending.ev.what == kind::need_more && plain_wait() &&
            reader_.fills_lent(rx_->reader.read_hint())) {
            auto got = co_await fill_wait_.run_op(reader_.fill_lent());
            if (!got)
                pending.fill_error = got.error();
            else
                rx_->alive.heard(core::clock::now());
            continue;
        }
        core::result<message_chunk> chunk = message_chunk{};
        if (pending.ev.what == kind::data) {
            if (pending.ev.chunk.last && rx_->alive.watches_messages())
                rx_->alive.message_passed(core::clock::now());
            chunk = pending.ev.chunk;
        } else {
            chunk = co_await next_data(&pending);
        }
        if (!chunk) {
            receiving_ = false;
            co_return chunk.error();
        }
        const std::size_t held = out != nullptr ? out->size() : 0;
        if (!charge.resize(held + chunk->data.size())) {
            auto ec = co_await fail_over_budget();
            receiving_ = false;
            co_return ec;
        }
        if (chunk->first) {
            msg.type = chunk->type;
            if (chunk->last) { // one frame, one read: one copy, or none
                receiving_ = false;
                if constexpr (view) {
                    co_return message_view{msg.type, chunk->data};
                } else {
                    msg.data.assign(chunk->data);
                    co_return msg;
                }
            }
            // No reserve from the frame's announced length: the message grows (geometrically)
            // with the bytes that arrive, so a peer announcing 16 MiB and sending 5 KB costs 5 KB.
        }
        if (out == nullptr)
            out = &spare().assembled;
        out->append(chunk->data);
        if (chunk->last) {
            receiving_ = false;
            if constexpr (view)
                co_return message_view{msg.type, spare_->assembled};
            else
                co_return msg;
        }
    }
}

core::task<core::result<message_chunk>> session::receive_some() {
    if (spare_) // a view receive_view() handed out is over
        std::string().swap(spare_->assembled);
    if (close_received_)
        co_return make_error_code(errc::closed);
    receiving_ = true;
    auto r = co_await next_data(nullptr);
    receiving_ = false;
    co_return r;
}

// The receive loop's table of contents: the message reader says what the bytes held so far
// mean, and this does what it says.
core::task<core::result<message_chunk>> session::next_data(const pending_event* first) {
    using kind = detail::message_reader::kind;
    for (;;) {
        detail::message_reader::event ev;
        if (first != nullptr) {
            ev = first->ev; // decoded and consumed by the caller
            first = nullptr;
        } else {
            ev = rx_->reader.next(reader_.mutable_buffered());
            // The event's views into the read buffer stay valid until the next fill: consume()
            // only moves an index.
            reader_.consume(ev.consumed);
        }
        core::result<void> r;
        switch (ev.what) {
        case kind::data:
            if (ev.chunk.last && rx_->alive.watches_messages())
                rx_->alive.message_passed(core::clock::now());
            co_return ev.chunk;
        case kind::need_more:
            if (!plain_wait()) {
                r = co_await wait_for_bytes();
                break;
            }
            {
                // wait_for_bytes' common case, inline: one coroutine frame less per read.
                const core::stop_token outer = co_await core::get_stop_token();
                core::result<std::size_t> got = std::size_t{0};
                if (reader_.fills_lent(rx_->reader.read_hint()))
                    got = co_await fill_wait_.run_op(reader_.fill_lent());
                else
                    got = co_await fill_wait_.run(reader_.fill(rx_->reader.read_hint()));
                if (got) {
                    if (*got > 0)
                        rx_->alive.heard(core::clock::now());
                } else {
                    r = co_await fill_failed(got.error(),
                                             fill_wait_.interrupted() && !outer.stop_requested());
                }
            }
            break;
        case kind::ping:
            r = co_await answer_ping(ev.payload);
            break;
        case kind::pong:
            if (observer_ != nullptr)
                observer_->on_pong(*this, ev.payload);
            break;
        case kind::auto_response:
            r = co_await answer_auto_response(ev.chunk.type, ev.payload);
            break;
        case kind::close:
            co_return co_await answer_close(ev.close_code, ev.payload);
        case kind::error:
            co_await fail(ev.ec);
            co_return ev.ec;
        }
        if (!r)
            co_return r.error();
    }
}

bool session::plain_wait() const noexcept {
    return !abandoned_ && !close_sent_ && !going_away_.stop_requested() && !rx_->alive.timed() &&
           !receive_interrupted_;
}

void session::interrupt_receive() noexcept {
    receive_interrupted_ = true;
    fill_wait_.interrupt(); // the wait running now, if any; otherwise plain_wait() is false
}

// A wait for bytes that failed: `interrupted` when the session itself cut it short (shutdown,
// our close frame going out), not the caller's cancellation.
core::task<core::result<void>> session::fill_failed(std::error_code ec, bool interrupted) {
    if (ec == core::errc::operation_canceled && interrupted && receive_interrupted_) {
        receive_interrupted_ = false; // interrupt_receive(): the caller takes the reader back
        co_return ec;
    }
    if (ec == core::errc::operation_canceled && interrupted)
        co_return co_await answer_going_away();
    if (ec == core::errc::over_budget)
        co_return co_await fail_over_budget();
    if (ec == core::errc::end_of_stream && close_code_ == 0)
        close_code_ = 1006;
    co_return ec;
}

// Waits for more bytes from the peer. The wait runs under a stop source of its own, so that a
// close sent meanwhile (close() from another coroutine), a write that timed out or the
// going-away signal can cut it short; the caller's cancellation still reaches it through the
// link.
core::task<core::result<void>> session::wait_for_bytes() {
    if (abandoned_) {
        stream_->close(); // no read is pending (this is the reader), nor any write
        co_return abandoned_;
    }
    if (receive_interrupted_) { // asked before this wait began
        receive_interrupted_ = false;
        co_return make_error_code(core::errc::operation_canceled);
    }
    core::result<std::size_t> got = std::size_t{0};
    if (close_sent_) {
        got = co_await fill_until_close_deadline();
    } else {
        // The wait ends early on shutdown (going_away_, through away_), on our own close frame
        // going out and on abandon(): each interrupts fill_wait_.
        core::stop_token outer = co_await core::get_stop_token();
        if (going_away_.stop_requested() && !outer.stop_requested())
            co_return co_await answer_going_away();
        if (rx_->alive.timed())
            got = co_await fill_wait_.run(fill_with_timers());
        else // one coroutine frame less
            got = co_await fill_wait_.run(reader_.fill(rx_->reader.read_hint()));
        if (!got)
            co_return co_await fill_failed(got.error(),
                                           fill_wait_.interrupted() && !outer.stop_requested());
    }
    if (!got)
        co_return co_await fill_failed(got.error(), false);
    if (*got > 0)
        rx_->alive.heard(core::clock::now()); // any traffic from the peer proves it alive
    co_return core::result<void>{};
}

// The wait for bytes was cut short by the session itself: our close went out (the next wait is
// bounded by close_deadline_), a write timed out, or the going-away signal fired: 1001 now.
core::task<core::result<void>> session::answer_going_away() {
    if (!close_sent_ && going_away_.stop_requested()) {
        going_away_ = core::stop_token();
        away_.detach();
        auto sent =
            co_await core::with_timeout(opts_->close_timeout, send_close(1001, "going away"));
        if (!sent && sent.error() != errc::closed)
            co_return sent.error();
    }
    co_return core::result<void>{};
}

// Waits for more bytes from the peer, sending keepalive pings and enforcing the pong and idle
// timeouts on the way (only while someone receives, which is when the session is alive).
core::task<core::result<std::size_t>> session::fill_with_timers() {
    auto& alive = rx_->alive;
    const std::size_t expected = rx_->reader.read_hint();
    for (;;) {
        const auto deadline = alive.deadline();
        if (deadline == core::clock::time_point::max())
            co_return co_await reader_.fill(expected);
        const auto now = core::clock::now();
        if (deadline > now) {
            auto got = co_await core::with_timeout(deadline - now, reader_.fill(expected));
            if (got || got.error() != core::errc::timed_out)
                co_return got;
        }
        switch (alive.check(core::clock::now())) {
        case detail::keepalive::due::idle:
            co_await fail(make_error_code(errc::idle_timeout));
            co_return make_error_code(errc::idle_timeout);
        case detail::keepalive::due::pong_overdue:
            co_await fail(make_error_code(errc::keepalive_timeout));
            co_return make_error_code(errc::keepalive_timeout);
        case detail::keepalive::due::send_ping: {
            auto p = co_await send_frame(opcode::ping, {});
            if (!p)
                co_return p.error();
            break;
        }
        case detail::keepalive::due::nothing:
            break;
        }
    }
}

// Our close frame is out: the peer has until close_deadline_ to answer with its own.
core::task<core::result<std::size_t>> session::fill_until_close_deadline() {
    const auto now = core::clock::now();
    core::result<std::size_t> got = make_error_code(core::errc::timed_out);
    if (now < close_deadline_)
        got = co_await core::with_timeout(close_deadline_ - now,
                                          reader_.fill(rx_->reader.read_hint()));
    if (got || got.error() != core::errc::timed_out)
        co_return got;
    if (close_code_ == 0)
        close_code_ = 1006;
    close_received_ = true; // give up on the peer's close: the session is over
    auto sd = co_await stream_->shutdown();
    (void)sd;
    co_return make_error_code(errc::closed);
}

core::task<core::result<void>> session::answer_ping(std::string_view payload) {
    if (observer_ != nullptr)
        observer_->on_ping(*this, payload);
    // Copy out: the pong's send may wait, and the payload lives in the read buffer.
    std::string copy(payload);
    auto pong = co_await send_frame(opcode::pong, core::as_bytes(copy));
    if (!pong && pong.error() != errc::closed && pong.error() != errc::queue_full)
        co_return pong.error();
    co_return core::result<void>{};
}

// Answered here; the application never sees the message.
core::task<core::result<void>> session::answer_auto_response(opcode type, std::string_view reply) {
    if (rx_->alive.watches_messages())
        rx_->alive.message_passed(core::clock::now());
    // A copy: the pair may change while the send waits.
    std::string copy(reply);
    auto sent = co_await send_frame(type, core::as_bytes(copy));
    if (!sent && sent.error() != errc::closed && sent.error() != errc::queue_full)
        co_return sent.error();
    rx_->reader.count_auto_response();
    co_return core::result<void>{};
}

// The peer's close: record its code and reason, answer (echoing the code) unless we started
// the closing handshake, and end. The server closes TCP first (RFC 6455 §7.1.1).
core::task<std::error_code> session::answer_close(std::uint16_t code, std::string_view reason) {
    close_received_ = true;
    close_code_ = code;
    if (spare_ || !reason.empty())
        spare().close_reason.assign(reason);
    if (!close_sent_) {
        const std::uint16_t echo = code == 1005 ? 0 : code;
        auto sent = co_await core::with_timeout(opts_->close_timeout, send_close(echo, {}));
        (void)sent;
    }
    if (role_ == role::server) {
        auto sd = co_await stream_->shutdown();
        (void)sd;
    }
    co_return make_error_code(errc::closed);
}

core::task<core::result<void>> session::close(std::uint16_t code, std::string reason) {
    if (code != 0 && !valid_close_code(code))
        co_return make_error_code(errc::invalid_close_code);
    if (reason.size() > 123 || !is_valid_utf8(reason))
        co_return make_error_code(errc::invalid_payload);
    receive_interrupted_ = false; // the peer's close is read now, whoever reads it
    if (!close_sent_) {
        auto sent = co_await core::with_timeout(opts_->close_timeout, send_close(code, reason));
        if (!sent)
            co_return sent.error();
    }
    if (receiving_ || close_received_)
        co_return core::result<void>{};
    // Nobody is reading: wait here for the peer's close, bounded. Late messages are dropped
    // piece by piece (next_data), never assembled.
    auto drain = [this]() -> core::task<core::result<void>> {
        for (;;) {
            auto c = co_await next_data(nullptr);
            if (!c)
                co_return c.error() == errc::closed ? core::result<void>{}
                                                    : core::result<void>(c.error());
        }
    };
    receiving_ = true; // a send timing out meanwhile leaves the stream to this reader
    auto r = co_await core::with_timeout(opts_->close_timeout, drain());
    receiving_ = false;
    auto sd = co_await stream_->shutdown();
    (void)sd;
    co_return r;
}

} // namespace coronet::ws
