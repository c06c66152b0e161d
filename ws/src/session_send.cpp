// The session's sending side: the send lock, the slow-reader policy, compression, framing and
// bounded writes. Receiving: session.cpp.
#include <coronet/ws/session.hpp>

#include <coronet/core/timer.hpp>

#include "buffer_cache.hpp"
#include "session_receive_side.hpp"

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

// A bounded write goes out in pieces of this size at most, each with the whole write timeout:
// a slow but steady reader (a big message over a slow link) is never cut off.
constexpr std::size_t write_piece = 256 * 1024;

// A send refused before anything was locked or written, as the task the caller awaits.
core::task<core::result<void>> refused_send(std::error_code e) {
    co_return e;
}

// True when `parts` are one window of a stream write (one sendmsg: one ring round trip) and no
// more than one write_timed piece: one deadline covers them.
bool fits_one_piece(std::span<const core::const_buffer> parts) noexcept {
    if (parts.size() > core::stream_op::max_iov)
        return false;
    std::size_t bytes = 0;
    for (const auto& p : parts)
        bytes += p.size();
    return bytes <= write_piece;
}

core::task<core::result<void>> write_parts(core::stream& s,
                                           std::span<const core::const_buffer> parts) {
    co_return co_await s.writev(parts);
}

} // namespace

// A slow reader: the lock is busy and enough senders wait already. Close frames always wait.
bool session::slow_reader_refuses(opcode op) noexcept {
    if (!send_lock_.locked() || queued_sends_ < opts_->max_queued_sends || op == opcode::close ||
        opts_->slow_reader == backpressure_policy::wait)
        return false;
    // The 1008 cannot overtake the frame being written: the lock's holder sends it next.
    if (opts_->slow_reader == backpressure_policy::close && !close_sent_)
        close_queued_ = true;
    return true;
}

// Takes the send lock in turn with the other senders, then writes a close the slow-reader
// policy queued; fails with errc::closed (lock released) once a close frame went out.
bool session::try_lock_for_send() noexcept {
    return !close_queued_ && !close_sent_ && send_lock_.try_lock();
}

core::task<core::result<void>> session::lock_for_send() {
    ++queued_sends_;
    auto locked = co_await send_lock_.lock();
    --queued_sends_;
    if (!locked)
        co_return locked.error();
    if (close_queued_ && !close_sent_)
        co_await send_queued_close();
    if (close_sent_) {
        send_lock_.unlock();
        co_return make_error_code(errc::closed);
    }
    co_return core::result<void>();
}

core::task<core::result<void>> session::send_frame(opcode op, std::span<const std::byte> payload) {
    if (slow_reader_refuses(op))
        co_return make_error_code(errc::queue_full);
    if (!try_lock_for_send()) { // one coroutine frame less when uncontended
        auto locked = co_await lock_for_send();
        if (!locked)
            co_return locked.error();
    }
    unlock_guard unlock{send_lock_};
    if ((op == opcode::text || op == opcode::binary) && rx_->alive.watches_messages())
        rx_->alive.message_passed(core::clock::now());
    // Compressed under the lock, so that the compressor's context follows the order in which
    // messages reach the wire.
    const bool rsv1 = compress(op, payload);
    std::byte header[14];
    core::const_buffer parts[2];
    const std::size_t n = lay_out(op, payload, rsv1, header, parts);
    // Most frames are small and the socket takes them at once: sent here, without another
    // coroutine frame.
    std::span<const core::const_buffer> rest;
    core::const_buffer tail;
    auto now = write_at_once({parts, n}, rest, tail);
    core::result<void> r = now ? core::result<void>{} : core::result<void>(now.error());
    if (now && !*now)
        r = co_await write_bounded(rest);
    // Sent: the compress buffer goes to the thread's cache (idle sessions hold none).
    if (spare_)
        detail::thread_buffer_cache<std::vector<std::byte>>::give_back(spare_->zout);
    if (!r && rsv1 && deflater_->keeps_context() && !close_sent_) {
        // The compressor's window moved past a message the peer never got: every later
        // compressed message would inflate wrongly there. This session can send no more.
        close_sent_ = true;
        close_deadline_ = core::clock::now();
        auto sd = co_await stream_->shutdown();
        (void)sd;
    }
    if (op == opcode::close && r)
        close_went_out();
    if (r && close_queued_ && !close_sent_)
        co_await send_queued_close(); // decided while this frame was being written
    co_return r;
}

// permessage-deflate per the policy: true, with `payload` pointed at spare().zout, when the message
// goes compressed. Empty messages never are: a sync flush of nothing produces no bytes.
bool session::compress(opcode op, std::span<const std::byte>& payload) {
    if (!deflater_ || (op != opcode::text && op != opcode::binary) || payload.empty() ||
        payload.size() < opts_->deflate.min_size)
        return false;
    std::vector<std::byte>& zout = spare().zout;
    zout.clear();
    detail::thread_buffer_cache<std::vector<std::byte>>::take(zout);
    deflater_->compress(payload, zout);
    if (!deflater_->keeps_context() && opts_->deflate.skip_incompressible &&
        zout.size() >= payload.size())
        return false;
    payload = zout;
    return true;
}

// One frame as write_bounded takes it: a server's header and payload as they are, a client's
// masked copy in spare().tx (the caller's bytes stay untouched).
std::size_t session::lay_out(opcode op, std::span<const std::byte> payload, bool rsv1,
                             std::byte (&header)[14], core::const_buffer (&parts)[2]) {
    if (role_ == role::server) {
        const std::size_t n = encode_header(header, op, true, payload.size(), false, 0, rsv1);
        parts[0] = {header, n};
        parts[1] = payload;
        return 2;
    }
    const std::uint32_t key = next_mask_key();
    std::vector<std::byte>& tx = spare().tx;
    tx.resize(14 + payload.size());
    const std::size_t n = encode_header(tx.data(), op, true, payload.size(), true, key, rsv1);
    if (!payload.empty())
        std::memcpy(tx.data() + n, payload.data(), payload.size());
    apply_mask({tx.data() + n, payload.size()}, key, 0);
    parts[0] = {tx.data(), n + payload.size()};
    return 1;
}

// The slow-reader policy's 1008, written by whoever holds the send lock: right after the frame
// that was being written, before any sender still waiting (those then fail with errc::closed).
core::task<void> session::send_queued_close() {
    close_queued_ = false;
    const std::byte code[2] = {std::byte{1008 >> 8}, std::byte{1008 & 0xFF}};
    std::byte header[14];
    core::const_buffer parts[2];
    const std::size_t n = lay_out(opcode::close, code, false, header, parts);
    auto r = co_await write_bounded({parts, n});
    close_went_out();
    if (!r)
        close_deadline_ = core::clock::now(); // no close frame went out: none will come back
}

// Our close frame is out: the peer has close_timeout to answer with its own, and a receive
// waiting without that deadline is woken to wait with it.
void session::close_went_out() noexcept {
    close_sent_ = true;
    close_deadline_ = core::clock::now() + opts_->close_timeout;
    fill_wait_.interrupt();
}

// Not a coroutine: a prepared send on io_uring runs in send_started's frame alone, the one
// frame each receiver of a broadcast holds until its write completes.
core::task<core::result<void>> session::send_prepared(std::span<const core::const_buffer> frames) {
    if (role_ != role::server)
        return refused_send(make_error_code(errc::protocol_error));
    if (stream_->batches_writes() && fits_one_piece(frames))
        return send_started(frames);
    return send_at_once(frames);
}

// A broadcast writes to many sessions in one loop iteration: on io_uring, starting each write
// (handed to the kernel with all the others at the loop's next submission) costs less than a
// send syscall per session. The deadline is a timer, not a task.
core::task<core::result<void>> session::send_started(std::span<const core::const_buffer> frames) {
    if (!try_lock_for_send()) {
        auto locked = co_await lock_for_send();
        if (!locked)
            co_return locked.error();
    }
    unlock_guard unlock{send_lock_};
    const bool bounded = opts_->write_timeout.count() > 0;
    const bool watched = rx_->alive.watches_messages();
    const auto now = bounded || watched ? core::clock::now() : core::clock::time_point();
    if (watched)
        rx_->alive.message_passed(now);
    // One operation in this frame, awaited with or without its deadline (two write
    // expressions would give g++ two slots of its size).
    core::write_awaitable write = stream_->writev(frames);
    core::result<void> r;
    if (!bounded) {
        r = co_await write;
    } else {
        r = co_await core::with_deadline(now + opts_->write_timeout, write);
        if (!r && r.error() == core::errc::timed_out)
            abandon(r.error());
    }
    if (r && close_queued_ && !close_sent_)
        co_await send_queued_close();
    co_return r;
}

// Tried at once, as send_text: a syscall that usually takes everything.
core::task<core::result<void>> session::send_at_once(std::span<const core::const_buffer> frames) {
    if (!try_lock_for_send()) { // one coroutine frame less when uncontended
        auto locked = co_await lock_for_send();
        if (!locked)
            co_return locked.error();
    }
    unlock_guard unlock{send_lock_};
    if (rx_->alive.watches_messages())
        rx_->alive.message_passed(core::clock::now());
    std::span<const core::const_buffer> rest;
    core::const_buffer tail;
    auto now = write_at_once(frames, rest, tail);
    core::result<void> r = now ? core::result<void>{} : core::result<void>(now.error());
    if (now && !*now)
        r = co_await write_bounded(rest);
    if (r && close_queued_ && !close_sent_)
        co_await send_queued_close();
    co_return r;
}

// Most frames are small and fit in the socket buffer: such a frame is gathered and sent at
// once, without an operation that suspends and without write_bounded's coroutine frame; the
// deadline (a timer per send) is armed only for what has to wait. True when every byte went
// out. Otherwise `rest` is what is left, in buffers that stay put until it is written: all of
// `parts` when they are not small or nothing went out, else the unsent tail, moved into
// spare().tx (where a client's frame already is).
core::result<bool> session::write_at_once(std::span<const core::const_buffer> parts,
                                          std::span<const core::const_buffer>& rest,
                                          core::const_buffer& tail) {
    constexpr std::size_t small_frame = 1024;
    thread_local std::byte small[small_frame];
    rest = parts;
    std::size_t total = 0;
    for (const auto& p : parts)
        total += p.size();
    if (total > small_frame)
        return false;
    const std::byte* from = parts.size() == 1 ? parts[0].data() : small;
    if (parts.size() != 1) {
        std::size_t at = 0;
        for (const auto& p : parts) {
            if (!p.empty())
                std::memcpy(small + at, p.data(), p.size());
            at += p.size();
        }
    }
    auto w = stream_->try_write({from, total});
    if (!w)
        return w.error();
    if (*w == total)
        return true;
    if (*w == 0) // (always so on TLS): the caller's parts outlive the wait, no copy needed
        return false;
    if (spare_ == nullptr || from != spare_->tx.data()) {
        std::vector<std::byte>& tx = spare().tx;
        tx.assign(from + *w, from + total);
        tail = core::const_buffer(tx.data(), tx.size());
    } else {
        tail = core::const_buffer(from + *w, total - *w);
    }
    rest = {&tail, 1};
    return false;
}

// Writes `parts` in order under the send lock; with a write timeout, in pieces of at most
// write_piece bytes, each of which the peer must take within the timeout.
core::task<core::result<void>> session::write_bounded(std::span<const core::const_buffer> parts) {
    auto r = co_await write_timed(parts);
    // It held write_at_once's tail: idle sessions stay small.
    if (role_ == role::server && spare_ && !spare_->tx.empty())
        std::vector<std::byte>().swap(spare_->tx);
    co_return r;
}

core::task<core::result<void>> session::write_timed(std::span<const core::const_buffer> parts) {
    if (opts_->write_timeout.count() <= 0)
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
            co_await core::with_timeout(opts_->write_timeout, write_parts(*stream_, {piece, n}));
        if (!r) {
            if (r.error() == core::errc::timed_out)
                abandon(r.error());
            co_return r;
        }
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
    else
        fill_wait_.interrupt();
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

} // namespace coronet::ws
