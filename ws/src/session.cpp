#include <coronet/ws/session.hpp>

#include <coronet/core/log.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/ws/utf8.hpp>

#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace coronet::ws {
namespace {

// Client masking keys come from OpenSSL's generator (RFC 6455 §5.3: unpredictable), fetched
// in batches so a send does not pay a RAND_bytes call.
std::uint32_t next_mask_key() {
    thread_local std::uint32_t keys[64];
    thread_local std::size_t left = 0;
    if (left == 0) {
        if (RAND_bytes(reinterpret_cast<unsigned char*>(keys), sizeof keys) != 1)
            throw std::runtime_error("RAND_bytes failed");
        left = 64;
    }
    return keys[--left];
}

// Releases the send lock however the holder leaves (a zlib failure throws).
struct unlock_guard {
    core::async_mutex& m;
    ~unlock_guard() { m.unlock(); }
};

// Replaces the awaiting coroutine's stop token without suspending (the I/O it awaits next
// inherits the new one).
struct swap_stop_token {
    core::stop_token token;
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) noexcept {
        h.promise().set_token(token);
        return false;
    }
    void await_resume() const noexcept {}
};

// With permessage-deflate the limits are about messages as the application sees them
// (max_message_size caps the inflated size); on the wire, data that does not compress grows by
// a few bytes per 16 KiB block, so a 16 MiB message may arrive as a slightly larger frame.
frame_limits wire_limits(const session_options& o) noexcept {
    frame_limits l = o.limits;
    if (!o.agreed_deflate)
        return l;
    auto grow = [](std::uint64_t v) {
        const std::uint64_t slack = v / 256 + 4096;
        return v > UINT64_MAX - slack ? UINT64_MAX : v + slack;
    };
    l.max_frame_size = grow(l.max_frame_size);
    l.max_message_size = grow(l.max_message_size);
    return l;
}

// A bounded write goes out in pieces of this size at most, each with the whole write timeout:
// a slow but steady reader (a big message over a slow link) is never cut off.
constexpr std::size_t write_piece = 256 * 1024;

core::task<core::result<void>> write_parts(core::stream& s,
                                           std::span<const core::const_buffer> parts) {
    co_return co_await s.writev(parts);
}

// How much to read at once: the rest of a large frame (up to 1 MiB), since a 64 KiB message in
// 4 KiB reads costs a decode step and a resumption per read. Only a hint: the reader makes at
// most buffered_reader::growth_step of room beyond what it holds, so a frame's announced length
// never turns into memory before its bytes arrive.
std::size_t read_hint(const frame_decoder& d) noexcept {
    return static_cast<std::size_t>(std::min<std::uint64_t>(d.frame_left(), 1u << 20));
}

} // namespace

session::session(core::stream_ptr stream, role r, std::vector<std::byte> prefetched,
                 session_options opts)
    : stream_(std::move(stream)), role_(r), opts_(opts),
      reader_(*stream_, static_cast<std::size_t>(opts.limits.max_frame_size) + 64 * 1024,
              opts.memory_budget),
      decoder_(r, wire_limits(opts)), zin_charge_(opts.memory_budget) {
    (void)reader_.prime(prefetched);
    last_heard_ = last_message_ = core::clock::now();
    if (opts_.agreed_deflate) {
        if (opts_.deflate.level < -1 || opts_.deflate.level > 9 || opts_.deflate.mem_level < 1 ||
            opts_.deflate.mem_level > 9)
            throw std::invalid_argument(
                "ws::session: deflate level must be -1..9 and mem_level 1..9");
        const auto& p = *opts_.agreed_deflate;
        const bool server = r == role::server;
        // Ours: what this side compresses with; theirs: what the peer compresses with.
        const int our_bits = server ? p.server_max_window_bits : p.client_max_window_bits;
        const bool our_reset = server ? p.server_no_context_takeover : p.client_no_context_takeover;
        const int their_bits = server ? p.client_max_window_bits : p.server_max_window_bits;
        const bool their_reset =
            server ? p.client_no_context_takeover : p.server_no_context_takeover;
        decoder_.allow_rsv1(true);
        inflater_ = std::make_unique<inflater>(their_bits, their_reset);
        auto d = std::make_unique<deflater>(our_bits, our_reset, opts_.deflate.level,
                                            opts_.deflate.mem_level);
        if (d->usable())
            deflater_ = std::move(d);
    }
}

core::task<void> session_handler_base::on_message(session&, message&) {
    co_return;
}

core::task<void> run(session& s, session_handler_base& h) {
    s.set_observer(&h);
    h.on_open(s);
    for (;;) {
        auto m = co_await s.receive();
        if (!m) {
            if (m.error() != errc::closed)
                h.on_error(s, m.error());
            break;
        }
        co_await h.on_message(s, *m);
    }
    s.set_observer(nullptr);
    h.on_close(s, s.close_code(), s.close_reason());
}

session::~session() = default;

core::task<core::result<void>> session::send_frame(opcode op, std::span<const std::byte> payload) {
    // A slow reader: the lock is busy and enough senders wait already.
    if (send_lock_.locked() && queued_sends_ >= opts_.max_queued_sends && op != opcode::close &&
        opts_.slow_reader != slow_reader_policy::wait) {
        if (opts_.slow_reader == slow_reader_policy::close && !close_sent_) {
            close_sent_ = true; // no more sends; the peer gets 1008 if the writer ever frees
            auto sd = co_await stream_->shutdown();
            (void)sd;
        }
        co_return make_error_code(errc::queue_full);
    }
    ++queued_sends_;
    auto locked = co_await send_lock_.lock();
    --queued_sends_;
    if (!locked)
        co_return locked.error();
    unlock_guard unlock{send_lock_};
    if ((op == opcode::text || op == opcode::binary) && opts_.idle_timeout.count() > 0)
        last_message_ = core::clock::now();
    core::result<void> r;
    // permessage-deflate: under the lock, so that the compressor's context follows the order
    // in which messages reach the wire.
    bool rsv1 = false;
    // Empty messages are never compressed: a sync flush of nothing produces no bytes.
    if (deflater_ && (op == opcode::text || op == opcode::binary) && !payload.empty() &&
        payload.size() >= opts_.deflate.min_size && !close_sent_) {
        zout_.clear();
        deflater_->compress(payload, zout_);
        if (deflater_->keeps_context() || !opts_.deflate.skip_incompressible ||
            zout_.size() < payload.size()) {
            payload = zout_;
            rsv1 = true;
        }
    }
    if (close_sent_) {
        r = make_error_code(errc::closed);
    } else if (role_ == role::server) {
        std::byte header[14];
        std::size_t n = encode_header(header, op, true, payload.size(), false, 0, rsv1);
        core::const_buffer parts[2] = {{header, n}, payload};
        r = co_await write_bounded(parts);
    } else {
        // A client masks a copy: the caller's bytes stay untouched.
        const std::uint32_t key = next_mask_key();
        tx_.resize(14 + payload.size());
        std::size_t n = encode_header(tx_.data(), op, true, payload.size(), true, key, rsv1);
        if (!payload.empty())
            std::memcpy(tx_.data() + n, payload.data(), payload.size());
        apply_mask({tx_.data() + n, payload.size()}, key, 0);
        core::const_buffer whole{tx_.data(), n + payload.size()};
        r = co_await write_bounded({&whole, 1});
    }
    if (zout_.capacity() > 64 * 1024)
        std::vector<std::byte>().swap(zout_); // idle sessions stay small
    if (!r && r.error() == core::errc::timed_out)
        abandon(r.error());
    if (!r && rsv1 && deflater_->keeps_context() && !close_sent_) {
        // The compressor's window moved past a message the peer never got: every later
        // compressed message would inflate wrongly there. This session can send no more.
        close_sent_ = true;
        close_deadline_ = core::clock::now();
        auto sd = co_await stream_->shutdown();
        (void)sd;
    }
    if (op == opcode::close && r) {
        close_sent_ = true;
        close_deadline_ = core::clock::now() + opts_.close_timeout;
        if (fill_stop_ != nullptr)
            fill_stop_->request_stop(); // re-wait with the deadline
    }
    co_return r;
}

core::task<core::result<void>> session::send_prepared(std::span<const core::const_buffer> frames) {
    if (role_ != role::server)
        co_return make_error_code(errc::protocol_error);
    ++queued_sends_;
    auto locked = co_await send_lock_.lock();
    --queued_sends_;
    if (!locked)
        co_return locked.error();
    unlock_guard unlock{send_lock_};
    core::result<void> r;
    if (close_sent_) {
        r = make_error_code(errc::closed);
    } else {
        if (opts_.idle_timeout.count() > 0)
            last_message_ = core::clock::now();
        r = co_await write_bounded(frames);
        if (!r && r.error() == core::errc::timed_out)
            abandon(r.error());
    }
    co_return r;
}

// Writes `parts` in order under the send lock; with a write timeout, in pieces of at most
// write_piece bytes, each of which the peer must take within the timeout.
core::task<core::result<void>> session::write_bounded(std::span<const core::const_buffer> parts) {
    // Most frames are small and fit in the socket buffer: such a frame is gathered and sent at
    // once, without an operation that suspends, and the deadline (a timer per send) is armed
    // only for what has to wait.
    std::byte small[1024];
    core::const_buffer rest;
    std::size_t total = 0;
    for (const auto& p : parts)
        total += p.size();
    if (total <= sizeof small) {
        std::size_t at = 0;
        for (const auto& p : parts) {
            if (!p.empty())
                std::memcpy(small + at, p.data(), p.size());
            at += p.size();
        }
        auto sent = stream_->try_write({small, total});
        if (!sent)
            co_return sent.error();
        if (*sent == total)
            co_return core::result<void>{};
        rest = core::const_buffer(small + *sent, total - *sent);
        parts = {&rest, 1};
    }
    if (opts_.write_timeout.count() <= 0)
        co_return co_await stream_->writev(parts);
    core::const_buffer piece[16];
    std::size_t i = 0;
    std::size_t off = 0;
    while (i < parts.size()) {
        std::size_t n = 0;
        std::size_t bytes = 0;
        while (i < parts.size() && n < std::size(piece) && bytes < write_piece) {
            const std::size_t take = std::min(parts[i].size() - off, write_piece - bytes);
            piece[n++] = parts[i].subspan(off, take);
            bytes += take;
            off += take;
            if (off == parts[i].size()) {
                ++i;
                off = 0;
            }
        }
        auto r =
            co_await core::with_timeout(opts_.write_timeout, write_parts(*stream_, {piece, n}));
        if (!r)
            co_return r;
    }
    co_return core::result<void>{};
}

// A write ran out of time: the peer stopped reading. Part of a frame may be on the wire, so no
// close frame can follow and the session is over. The stream is closed by whoever has no
// operation pending on it: here when nobody receives, else by the receiver, woken for it.
void session::abandon(std::error_code ec) noexcept {
    abandoned_ = ec;
    close_sent_ = true;
    if (close_code_ == 0)
        close_code_ = 1006;
    if (!receiving_)
        stream_->close();
    else if (fill_stop_ != nullptr)
        fill_stop_->request_stop();
}

void session::set_auto_response(std::string request, std::string response) {
    auto_request_ = std::move(request);
    auto_response_ = std::move(response);
    auto_respond_ = true;
}

void session::clear_auto_response() noexcept {
    auto_respond_ = false;
    auto_request_.clear();
    auto_response_.clear();
}

// Plain functions, not coroutines: the caller awaits send_frame's own frame directly.
core::task<core::result<void>> session::send_text(std::string_view text) {
    return send_frame(opcode::text, core::as_bytes(text));
}

core::task<core::result<void>> session::send_binary(std::span<const std::byte> data) {
    return send_frame(opcode::binary, data);
}

core::task<core::result<void>> session::ping(std::string_view payload) {
    if (payload.size() > 125)
        co_return make_error_code(errc::protocol_error);
    co_return co_await send_frame(opcode::ping, core::as_bytes(payload));
}

core::task<core::result<void>> session::send_close(std::uint16_t code, std::string_view reason) {
    std::byte payload[125];
    std::size_t n = 0;
    if (code != 0) {
        payload[0] = static_cast<std::byte>(code >> 8);
        payload[1] = static_cast<std::byte>(code & 0xFF);
        std::size_t r = reason.size() > 123 ? 123 : reason.size();
        if (r > 0)
            std::memcpy(payload + 2, reason.data(), r);
        n = 2 + r;
    }
    co_return co_await send_frame(opcode::close, {payload, n});
}

// A protocol error: tell the peer why, then drop the connection (RFC 6455 §7.1.7).
core::task<void> session::fail(std::error_code ec) {
    // Called from inside the receive's wait for bytes (timeouts): our own close frame must not
    // cut that wait's stop source, which the shutdown below runs under.
    fill_stop_ = nullptr;
    if (!close_sent_) {
        auto sent =
            co_await core::with_timeout(opts_.close_timeout, send_close(close_code_of(ec), {}));
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

core::task<core::result<message>> session::receive() {
    if (close_received_)
        co_return make_error_code(errc::closed);
    receiving_ = true;
    message msg;
    // The message's bytes beyond its first 64 KiB (a small message never touches the budget);
    // given back when the message is handed over or dropped.
    core::memory_charge charge(opts_.memory_budget);
    for (;;) {
        auto chunk = co_await next_data();
        if (!chunk) {
            receiving_ = false;
            co_return chunk.error();
        }
        if (!charge.resize(msg.data.size() + chunk->data.size())) {
            auto ec = co_await fail_over_budget();
            receiving_ = false;
            co_return ec;
        }
        if (chunk->first) {
            msg.type = chunk->type;
            if (chunk->last) {
                msg.data.assign(chunk->data); // the common case: one frame, one copy
                receiving_ = false;
                co_return msg;
            }
            // No reserve from the frame's announced length: the message grows (geometrically)
            // with the bytes that arrive, so a peer announcing 16 MiB and sending 5 KB costs 5 KB.
        }
        msg.data.append(chunk->data);
        if (chunk->last) {
            receiving_ = false;
            co_return msg;
        }
    }
}

core::task<core::result<message_chunk>> session::receive_some() {
    if (close_received_)
        co_return make_error_code(errc::closed);
    receiving_ = true;
    auto r = co_await next_data();
    receiving_ = false;
    co_return r;
}

// Waits for more bytes from the peer, sending keepalive pings and enforcing the pong and idle
// timeouts on the way (only while someone receives, which is when the session is alive).
core::task<core::result<std::size_t>> session::fill_with_timers() {
    const auto& o = opts_;
    const std::size_t expected = read_hint(decoder_);
    if (o.ping_interval.count() <= 0 && o.idle_timeout.count() <= 0)
        co_return co_await reader_.fill(expected);
    for (;;) {
        const auto now = core::clock::now();
        core::clock::time_point deadline = core::clock::time_point::max();
        if (o.ping_interval.count() > 0) {
            if (ping_outstanding_)
                deadline = std::min(deadline, ping_sent_ + o.pong_timeout);
            else
                deadline = std::min(deadline, last_heard_ + o.ping_interval);
        }
        if (o.idle_timeout.count() > 0)
            deadline = std::min(deadline, last_message_ + o.idle_timeout);
        if (deadline == core::clock::time_point::max())
            co_return co_await reader_.fill(expected);
        if (deadline > now) {
            auto got = co_await core::with_timeout(deadline - now, reader_.fill(expected));
            if (got || got.error() != core::errc::timed_out)
                co_return got;
        }
        const auto at = core::clock::now();
        if (o.idle_timeout.count() > 0 && at >= last_message_ + o.idle_timeout) {
            co_await fail(make_error_code(errc::idle_timeout));
            co_return make_error_code(errc::idle_timeout);
        }
        if (o.ping_interval.count() > 0) {
            if (ping_outstanding_ && at >= ping_sent_ + o.pong_timeout) {
                co_await fail(make_error_code(errc::keepalive_timeout));
                co_return make_error_code(errc::keepalive_timeout);
            }
            if (!ping_outstanding_ && at >= last_heard_ + o.ping_interval) {
                ping_outstanding_ = true;
                ping_sent_ = at;
                auto p = co_await send_frame(opcode::ping, {});
                if (!p)
                    co_return p.error();
            }
        }
    }
}

// Our close frame is out: the peer has until close_deadline_ to answer with its own.
core::task<core::result<std::size_t>> session::fill_until_close_deadline() {
    const auto now = core::clock::now();
    core::result<std::size_t> got = make_error_code(core::errc::timed_out);
    if (now < close_deadline_)
        got = co_await core::with_timeout(close_deadline_ - now, reader_.fill(read_hint(decoder_)));
    if (got || got.error() != core::errc::timed_out)
        co_return got;
    if (close_code_ == 0)
        close_code_ = 1006;
    close_received_ = true; // give up on the peer's close: the session is over
    auto sd = co_await stream_->shutdown();
    (void)sd;
    co_return make_error_code(errc::closed);
}

core::task<core::result<message_chunk>> session::next_data() {
    if (release_zin_) {
        // The last inflated message was handed over: an idle session keeps no big buffer.
        release_zin_ = false;
        if (zin_.capacity() > 4096)
            std::string().swap(zin_);
        zin_charge_.reset();
    }
    for (;;) {
        auto step = decoder_.decode(reader_.mutable_buffered());
        // The payload view stays valid until the next fill: consume() only moves an index.
        reader_.consume(step.consumed);
        switch (step.what) {
        case frame_decoder::kind::need_more: {
            if (abandoned_) {
                stream_->close(); // no read is pending (this is the reader), nor any write
                co_return abandoned_;
            }
            core::result<std::size_t> got = std::size_t{0};
            if (close_sent_) {
                got = co_await fill_until_close_deadline();
            } else {
                // The wait for bytes runs under a stop source of its own, so that a close sent
                // meanwhile (close() from another coroutine) or the going-away signal can cut
                // it short; the caller's cancellation still reaches it through the link.
                core::stop_token outer = co_await core::get_stop_token();
                core::stop_source local(outer);
                auto wake = [&local]() noexcept { local.request_stop(); };
                core::stop_callback<decltype(wake)> on_away(going_away_, wake);
                fill_stop_ = &local;
                struct clear_on_exit {
                    core::stop_source*& p;
                    ~clear_on_exit() { p = nullptr; }
                } clear_fill_stop{fill_stop_};
                co_await swap_stop_token{local.token()};
                if (opts_.ping_interval.count() <= 0 && opts_.idle_timeout.count() <= 0) {
                    // No timers: straight to the reader, one coroutine frame less per read.
                    got = co_await reader_.fill(read_hint(decoder_));
                } else {
                    got = co_await fill_with_timers();
                }
                co_await swap_stop_token{outer};
                fill_stop_ = nullptr;
                if (!got && got.error() == core::errc::operation_canceled &&
                    local.stop_requested() && !outer.stop_requested()) {
                    if (!close_sent_ && going_away_.stop_requested()) {
                        going_away_ = core::stop_token();
                        auto sent = co_await core::with_timeout(opts_.close_timeout,
                                                                send_close(1001, "going away"));
                        if (!sent && sent.error() != errc::closed)
                            co_return sent.error();
                    }
                    continue; // decode again; the next wait is bounded by close_deadline_
                }
            }
            if (!got) {
                if (got.error() == core::errc::over_budget)
                    co_return co_await fail_over_budget();
                if (got.error() == core::errc::end_of_stream && close_code_ == 0)
                    close_code_ = 1006;
                co_return got.error();
            }
            if (*got > 0) {
                last_heard_ = core::clock::now();
                ping_outstanding_ = false; // any traffic from the peer proves it alive
            }
            continue;
        }
        case frame_decoder::kind::error:
            co_await fail(step.ec);
            co_return step.ec;
        case frame_decoder::kind::data: {
            if (step.message_end && opts_.idle_timeout.count() > 0)
                last_message_ = core::clock::now();
            std::string_view data(reinterpret_cast<const char*>(step.payload.data()),
                                  step.payload.size());
            if (step.compressed) {
                // Inflated piece by piece; the cap on the inflated size is max_message_size, so
                // a decompression bomb ends with 1009 holding at most that much.
                if (step.message_start) {
                    inflated_size_ = 0;
                    zutf8_.reset();
                }
                zin_.clear();
                const auto left = static_cast<std::size_t>(std::min<std::uint64_t>(
                    opts_.limits.max_message_size - inflated_size_, SIZE_MAX - 1));
                auto in = inflater_->inflate(step.payload, step.message_end, zin_, left);
                if (!in) {
                    co_await fail(in.error());
                    co_return in.error();
                }
                // Charged after the fact (the inflater cannot ask first): a piece the budget
                // refuses ends the session, and the piece is let go at once.
                if (!zin_charge_.resize(zin_.size())) {
                    std::string().swap(zin_);
                    co_return co_await fail_over_budget();
                }
                inflated_size_ += zin_.size();
                if (step.op == opcode::text &&
                    (!zutf8_.feed(zin_) || (step.message_end && !zutf8_.complete()))) {
                    co_await fail(make_error_code(errc::invalid_payload));
                    co_return make_error_code(errc::invalid_payload);
                }
                data = zin_;
                release_zin_ = step.message_end;
            }
            if (auto_respond_ && step.message_start && step.message_end &&
                step.op == opcode::text && data == auto_request_) {
                // Answered here; the application never sees it. A copy: the pair may change
                // while the send waits.
                std::string reply = auto_response_;
                auto sent = co_await send_frame(opcode::text, core::as_bytes(reply));
                if (!sent && sent.error() != errc::closed && sent.error() != errc::queue_full)
                    co_return sent.error();
                ++auto_responses_sent_;
                continue;
            }
            message_chunk c;
            c.type = step.op;
            c.data = data;
            c.first = step.message_start;
            c.last = step.message_end;
            co_return c;
        }
        case frame_decoder::kind::control:
            break;
        }
        std::string_view payload(reinterpret_cast<const char*>(step.payload.data()),
                                 step.payload.size());
        if (step.op == opcode::ping) {
            if (observer_ != nullptr)
                observer_->on_ping(*this, payload);
            // Copy out: the pong's send may wait, and the payload lives in the read buffer.
            std::string copy(payload);
            auto pong = co_await send_frame(opcode::pong, core::as_bytes(copy));
            if (!pong && pong.error() != errc::closed && pong.error() != errc::queue_full)
                co_return pong.error();
            continue;
        }
        if (step.op == opcode::pong) {
            if (observer_ != nullptr)
                observer_->on_pong(*this, payload);
            continue;
        }
        // Close: record the peer's code and reason, answer (echoing the code) unless we started
        // the closing handshake, and end. The server closes TCP first (RFC 6455 §7.1.1).
        close_received_ = true;
        if (step.payload.size() >= 2) {
            const auto* p = reinterpret_cast<const unsigned char*>(step.payload.data());
            close_code_ = static_cast<std::uint16_t>((p[0] << 8) | p[1]);
            close_reason_.assign(payload.substr(2));
        } else {
            close_code_ = 1005;
        }
        if (!close_sent_) {
            const std::uint16_t echo = close_code_ == 1005 ? 0 : close_code_;
            auto sent = co_await core::with_timeout(opts_.close_timeout, send_close(echo, {}));
            (void)sent;
        }
        if (role_ == role::server) {
            auto sd = co_await stream_->shutdown();
            (void)sd;
        }
        co_return make_error_code(errc::closed);
    }
}

core::task<core::result<void>> session::close(std::uint16_t code, std::string reason) {
    if (code != 0 && !valid_close_code(code))
        co_return make_error_code(errc::invalid_close_code);
    if (reason.size() > 123 || !is_valid_utf8(reason))
        co_return make_error_code(errc::invalid_payload);
    if (!close_sent_) {
        auto sent = co_await core::with_timeout(opts_.close_timeout, send_close(code, reason));
        if (!sent)
            co_return sent.error();
    }
    if (receiving_ || close_received_)
        co_return core::result<void>{};
    // Nobody is reading: wait here for the peer's close, bounded. Late messages are dropped
    // piece by piece (next_data), never assembled.
    auto drain = [this]() -> core::task<core::result<void>> {
        for (;;) {
            auto c = co_await next_data();
            if (!c)
                co_return c.error() == errc::closed ? core::result<void>{}
                                                    : core::result<void>(c.error());
        }
    };
    receiving_ = true; // a send timing out meanwhile leaves the stream to this reader
    auto r = co_await core::with_timeout(opts_.close_timeout, drain());
    receiving_ = false;
    auto sd = co_await stream_->shutdown();
    (void)sd;
    co_return r;
}

} // namespace coronet::ws
