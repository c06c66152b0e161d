// A hub connection's outgoing queue, its writer, unicast sends that wait for room, the
// connection-side receive and the closing paths.
#include <coronet/ws/hub.hpp>

#include <coronet/core/io_op.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/ws/attachment_store.hpp>

#include "hub_connection_impl.hpp"
#include "hub_state.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace coronet::ws {

namespace detail {

namespace {
// A cancelled sender unlinks its request only when it resumes (from the loop): until then the
// front of the list may hold requests nobody waits for, which must not make a new send or the
// writer wait behind them.
bool sends_waiting(core::intrusive_list<space_request>& waiting) noexcept {
    while (!waiting.empty() && waiting.front().abandoned())
        waiting.pop_front();
    return !waiting.empty();
}
} // namespace

void frame_ring::push_back(core::shared_buffer b) {
    if (size_ == slots_.size()) {
        std::vector<core::shared_buffer> bigger(slots_.empty() ? 8 : slots_.size() * 2);
        for (std::size_t i = 0; i < size_; ++i)
            bigger[i] = std::move((*this)[i]);
        slots_ = std::move(bigger);
        head_ = 0;
    }
    slots_[(head_ + size_) & (slots_.size() - 1)] = std::move(b);
    ++size_;
}

std::size_t frame_ring::pop_front() noexcept {
    core::shared_buffer b = std::move(slots_[head_]);
    head_ = (head_ + 1) & (slots_.size() - 1);
    --size_;
    return b.size();
}

std::size_t frame_ring::pop_back() noexcept {
    core::shared_buffer b = std::move((*this)[size_ - 1]);
    --size_;
    return b.size();
}

} // namespace detail

namespace {
// Frames handed to one send_prepared call (a writev in windows of stream_op::max_iov).
constexpr std::size_t max_batch = 64;

// A send refused before anything was queued, as the task the caller awaits.
core::task<core::result<void>> refused(std::error_code e) {
    co_return e;
}
} // namespace

namespace detail {

hub_connection_impl::hub_connection_impl(hub& h, session& s, std::uint64_t id, handshake_info& info)
    : hub_connection(h, s, id, info) {
    observer_.self = this;
}

hub_connection_impl::~hub_connection_impl() = default;

} // namespace detail

void detail::hub_connection_impl::observer::on_ping(session&, std::string_view payload) {
    self->note_activity();
    if (self->handler_ != nullptr)
        self->handler_->ping(payload);
}

void detail::hub_connection_impl::observer::on_pong(session&, std::string_view payload) {
    self->note_activity();
    if (self->handler_ != nullptr)
        self->handler_->pong(payload);
}

void detail::hub_connection_impl::note_activity() noexcept {
    detail::hub_state& st = *hub_->state_;
    if (st.opts.ping_interval.count() <= 0 || state_ == connection_state::closed)
        return;
    last_activity_ = hub_->now();
    st.heartbeat_unlink(*this);
    st.heartbeat_push(st.idle, *this);
}

// ---- queue ------------------------------------------------------------------------------

void detail::hub_connection_impl::push(core::shared_buffer frame) {
    queued_bytes_ += frame.size();
    queue_.push_back(std::move(frame));
    ++hub_->state_->stats.frames_queued;
    // Checked inline: a broadcast pushes to every connection, and a running writer needs no
    // start (it looks at the queue before it parks).
    writer_retire_ = false; // busy again: a writer woken to end goes on instead
    if (!writer_wake_.empty()) {
        writer_wake_.wake_one();
    } else if (!writer_running_ && scope_ != nullptr) {
        core::task<void> w = writer(); // its frame first: a failed allocation changes nothing
        writer_running_ = true;
        ++hub_->state_->stats.writers;
        ++hub_->state_->stats.writers_started;
        scope_->spawn(std::move(w));
    }
}

bool detail::hub_connection_impl::try_push(const core::shared_buffer& frame) {
    if (writer_done_)
        return false;
    if (queued_bytes_ > 0 && queued_bytes_ + frame.size() > hub_->state_->opts.max_queued_bytes)
        return false;
    push(frame);
    return true;
}

void detail::hub_connection_impl::grant_waiters() noexcept {
    const std::size_t limit = hub_->state_->opts.max_queued_bytes;
    while (detail::sends_waiting(space_waiters_)) {
        detail::space_request& r = space_waiters_.front();
        if (queued_bytes_ > 0 && queued_bytes_ + r.frame.size() > limit)
            break;
        space_waiters_.pop_front();
        push(std::move(r.frame));
        r.woken.wake_one();
    }
}

void detail::hub_connection_impl::fail_waiters() noexcept {
    while (detail::space_request* r = space_waiters_.pop_front()) {
        r->outcome = make_error_code(errc::closed);
        r->woken.wake_one(); // an abandoned request has nobody to wake
    }
}

void detail::hub_connection_impl::drop_pending() noexcept {
    while (queue_.size() > in_flight_)
        queued_bytes_ -= queue_.pop_back();
}

namespace {
// Suspends the awaiting coroutine and resumes it from its loop's next round of ready work, as
// a waiter_queue wake would: the writer that push() starts runs after push's caller returned.
struct resume_from_loop {
    core::detail::io_op op;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept {
        op.waiter = h;
        core::loop::current()->complete_later(op);
    }
    void await_resume() const noexcept {}
};
} // namespace

// Started by push() when a frame arrives and no writer runs. With the queue empty it parks,
// and the hub's sweep (heartbeats()) ends a writer that stayed parked through a whole
// interval: a connection that receives often keeps its writer (no frame per burst), an idle one
// holds none. Its first step waits for the loop: push() is called inside broadcasts, which
// must not see a write (nor a failure that ends a connection) inline while they walk a room.
core::task<void> detail::hub_connection_impl::writer() {
    co_await resume_from_loop{};
    const core::stop_token tok = co_await core::get_stop_token();
    detail::hub_state& st = *hub_->state_;
    for (;;) {
        if (tok.stop_requested())
            break;
        if (queue_.empty()) {
            drained_.wake_all();
            if (writer_retire_) {
                writer_retire_ = false;
                writer_running_ = false;
                --st.stats.writers;
                co_return;
            }
            parked_sweep_ = st.sweeps;
            st.parked_writers.push_back(*this);
            const bool woke = static_cast<bool>(co_await writer_wake_.wait());
            st.parked_writers.erase(*this); // a retiring sweep took it off already
            if (!woke)
                break; // the connection's scope is stopping
            continue;
        }
        const std::size_t n = std::min(queue_.size(), max_batch);
        batch_.clear();
        for (std::size_t i = 0; i < n; ++i)
            batch_.push_back(queue_[i]);
        in_flight_ = n;
        auto sent = co_await session_->send_prepared(batch_);
        for (std::size_t i = 0; i < n; ++i)
            queued_bytes_ -= queue_.pop_front();
        in_flight_ = 0;
        if (!sent) {
            // The stream failed or the session's close went out: nothing more can be written.
            // A failure the reader cannot see yet (a peer that stopped reading and reset)
            // ends the connection here.
            const auto e = sent.error();
            if (e != errc::closed && e != core::errc::operation_canceled && !close_requested_)
                abort("write failed");
            break;
        }
        grant_waiters();
    }
    writer_running_ = false;
    --st.stats.writers;
    writer_done_ = true;
    drop_pending();
    batch_ = {};
    fail_waiters();
    drained_.wake_all();
}

core::task<core::result<void>> detail::hub_connection_impl::wait_drained() {
    while (queued_bytes_ > 0 && !writer_done_) {
        auto woke = co_await drained_.wait();
        if (!woke)
            co_return woke.error();
    }
    co_return core::result<void>{};
}

core::task<core::result<void>> detail::hub_connection_impl::send_frame(core::shared_buffer frame) {
    if (state_ != connection_state::open && state_ != connection_state::connecting)
        co_return make_error_code(errc::closed);
    if (!detail::sends_waiting(space_waiters_) && try_push(frame))
        co_return core::result<void>{};
    if (writer_done_)
        co_return make_error_code(errc::closed);
    detail::space_request req(std::move(frame));
    space_waiters_.push_back(req);
    auto woke = co_await req.woken.wait();
    if (!woke) {
        space_waiters_.erase(req); // cancelled: the writer never took it
        co_return woke.error();
    }
    if (req.outcome)
        co_return req.outcome;
    co_return core::result<void>{};
}

core::task<core::result<void>> detail::hub_connection_impl::send_text(std::string_view text) {
    return send(prepared_message::text(text));
}

core::task<core::result<void>>
detail::hub_connection_impl::send_binary(std::span<const std::byte> data) {
    return send(prepared_message::binary(data));
}

core::task<core::result<void>> detail::hub_connection_impl::send(const prepared_message& m) {
    return send_frame(m.frame_for(*this));
}

bool detail::hub_connection_impl::try_send(const prepared_message& m) {
    if (state_ != connection_state::open && state_ != connection_state::connecting)
        return false;
    if (detail::sends_waiting(space_waiters_))
        return false; // would overtake a waiting send
    return try_push(m.frame_for(*this));
}

// Not a coroutine: the payload is encoded (copied) before the caller's view can go away.
core::task<core::result<void>> detail::hub_connection_impl::send_control(opcode op,
                                                                         std::string_view payload) {
    if (payload.size() > 125) // RFC 6455 §5.5: a control frame's payload
        return refused(make_error_code(errc::protocol_error));
    return send_frame(detail::encode_frame(op, core::as_bytes(payload)));
}

core::task<core::result<void>> detail::hub_connection_impl::ping(std::string_view payload) {
    return send_control(opcode::ping, payload);
}

core::task<core::result<void>> detail::hub_connection_impl::ping() {
    return send_frame(hub_->state_->ping_frame);
}

core::task<core::result<void>> detail::hub_connection_impl::pong(std::string_view payload) {
    return send_control(opcode::pong, payload);
}

core::task<core::result<void>> detail::hub_connection_impl::pong() {
    return send_control(opcode::pong, {});
}

// ---- receiving and closing --------------------------------------------------------------

// receive() and receive_some() differ only in the session call, so one loop serves both; it is
// instantiated for those two alone, here.
template <class T>
core::task<core::result<T>>
detail::hub_connection_impl::read_next(core::task<core::result<T>> (session::*read)()) {
    const core::stop_token outer = co_await core::get_stop_token();
    for (;;) {
        if (aborted_ || outer.stop_requested()) {
            if (state_ == connection_state::open || state_ == connection_state::connecting)
                state_ = connection_state::closing;
            co_return make_error_code(core::errc::operation_canceled);
        }
        if (close_performed_)
            co_return make_error_code(errc::closed);
        if (close_requested_) {
            // The hub or the app asked for a close: this coroutine is the session's only
            // reader, so it runs the handshake (session::close reads the peer's reply).
            co_await perform_close();
            continue;
        }
        // A close request interrupts the wait (session::interrupt_receive) without touching
        // the rest of the connection.
        auto got = co_await (session_->*read)();
        if (got) {
            note_activity();
            if (close_requested_)
                continue; // closing: late messages are dropped
            const auto match = match_auto(*got);
            if (match == auto_match::deliver)
                co_return got;
            if (match == auto_match::answer && !try_answer_auto()) {
                // No room: wait as a unicast would. Reading pauses meanwhile, which slows down
                // a peer that sends requests faster than it takes the answers.
                auto queued = co_await send_frame(extras_->auto_frame);
                if (queued)
                    ++auto_sent_;
            }
            continue;
        }
        if (got.error() == core::errc::operation_canceled && close_requested_ && !aborted_ &&
            !outer.stop_requested())
            continue;
        if (state_ == connection_state::open || state_ == connection_state::connecting)
            state_ = connection_state::closing;
        co_return got.error();
    }
}

core::task<core::result<message>> detail::hub_connection_impl::receive() {
    if (extras_)
        std::string().swap(extras_->joined); // a view receive_view() handed out is over
    return read_next(&session::receive);
}

core::task<core::result<message_chunk>> detail::hub_connection_impl::receive_some() {
    if (extras_)
        std::string().swap(extras_->joined);
    return read_next(&session::receive_some);
}

core::task<core::result<message_view>> detail::hub_connection_impl::receive_view() {
    if (extras_)
        std::string().swap(extras_->joined); // the last view is over
    return read_next(&session::receive_view);
}

detail::hub_connection_impl::auto_match detail::hub_connection_impl::match_auto(message& m) {
    if (!extras_)
        return auto_match::deliver;
    hub_connection_extras& x = *extras_;
    if (x.holding) {
        // receive_some() held this message's start before the caller switched to receive().
        x.holding = false;
        m.type = x.held_type;
        m.data.insert(0, x.held);
    }
    if (x.auto_set && m.type == x.auto_type && m.data == x.auto_request)
        return auto_match::answer;
    return auto_match::deliver;
}

detail::hub_connection_impl::auto_match detail::hub_connection_impl::match_auto(message_view& m) {
    if (!extras_)
        return auto_match::deliver;
    hub_connection_extras& x = *extras_;
    if (x.holding) {
        x.holding = false;
        x.joined = x.held;
        x.joined.append(m.data);
        m = message_view{x.held_type, x.joined};
    }
    if (x.auto_set && m.type == x.auto_type && m.data == x.auto_request)
        return auto_match::answer;
    return auto_match::deliver;
}

// A piece may be the start of the request: it is held until the message shows what it is, so
// that a request split by the network is answered just like one that came in one piece.
detail::hub_connection_impl::auto_match detail::hub_connection_impl::match_auto(message_chunk& c) {
    if (!extras_)
        return auto_match::deliver;
    hub_connection_extras& x = *extras_;
    if (c.first)
        x.holding = false;
    if (!(c.first ? (x.auto_set && c.type == x.auto_type) : x.holding))
        return auto_match::deliver;
    if (c.first)
        x.held.clear();
    const std::string_view request = x.auto_request;
    const std::size_t have = x.held.size();
    const bool still_request = x.auto_set && c.type == x.auto_type &&
                               have + c.data.size() <= request.size() &&
                               request.substr(have, c.data.size()) == c.data;
    if (still_request && c.last && have + c.data.size() == request.size()) {
        x.holding = false;
        return auto_match::answer;
    }
    if (still_request && !c.last) {
        x.held.append(c.data);
        x.holding = true;
        x.held_type = c.type;
        return auto_match::hold;
    }
    if (!x.holding)
        return auto_match::deliver;
    // Not the request after all: what was held goes out with this piece, nothing is lost.
    x.holding = false;
    x.held.append(c.data);
    c.data = x.held;
    c.first = true;
    return auto_match::deliver;
}

bool detail::hub_connection_impl::try_answer_auto() {
    if (state_ != connection_state::open || detail::sends_waiting(space_waiters_) ||
        !try_push(extras_->auto_frame))
        return false;
    ++auto_sent_;
    return true;
}

void detail::hub_connection_impl::close(std::uint16_t code, std::string reason) {
    request_close(code, std::move(reason), true);
}

void detail::hub_connection_impl::request_close(std::uint16_t code, std::string reason,
                                                bool drain_first) {
    if (close_requested_ || aborted_ ||
        (state_ != connection_state::open && state_ != connection_state::connecting))
        return;
    close_requested_ = true;
    close_code_ = code;
    if (!reason.empty())
        extras().close_reason = std::move(reason);
    drain_first_ = drain_first;
    state_ = connection_state::closing;
    if (!drain_first)
        drop_pending();
    fail_waiters();
    session_->interrupt_receive();
    if (scope_ != nullptr)
        scope_->spawn(watchdog());
}

core::task<void> detail::hub_connection_impl::perform_close() {
    close_performed_ = true;
    state_ = connection_state::closing;
    const auto timeout = hub_->state_->opts.close_timeout;
    if (drain_first_ && queued_bytes_ > 0 && !writer_done_) {
        auto waited = co_await core::with_timeout(timeout, wait_drained());
        (void)waited;
    }
    // Not a conditional inside the co_await: g++ 12 mishandles its temporary there.
    std::string reason;
    if (extras_)
        reason = extras_->close_reason;
    auto r = co_await session_->close(close_code_, std::move(reason));
    // The close frame could not go out (a writer stuck behind a peer that stopped reading) or
    // the peer never answered: nothing more to say to it.
    if (!r && session_->close_code() == 0)
        abort(!extras_ || extras_->close_reason.empty() ? "close timeout"
                                                        : extras_->close_reason.c_str());
}

core::task<void> detail::hub_connection_impl::watchdog() {
    auto slept = co_await core::sleep_for(2 * hub_->state_->opts.close_timeout);
    if (slept)
        abort("close timeout");
}

void detail::hub_connection_impl::abort(const char* reason) noexcept {
    if (aborted_)
        return;
    aborted_ = true;
    abort_reason_ = reason;
    ++hub_->state_->stats.aborted;
    if (state_ == connection_state::open || state_ == connection_state::connecting)
        state_ = connection_state::closing;
    fail_waiters();
    if (scope_ != nullptr)
        scope_->request_stop();
}

// ---- rooms and metadata -----------------------------------------------------------------

bool detail::hub_connection_impl::join(std::string_view room) {
    if (state_ != connection_state::open && state_ != connection_state::connecting)
        return false;
    return hub_->state_->join(*this, room);
}

bool detail::hub_connection_impl::leave(std::string_view room) {
    return hub_->state_->leave(*this, room);
}

bool detail::hub_connection_impl::in_room(std::string_view room) const noexcept {
    return std::any_of(rooms_.begin(), rooms_.end(),
                       [room](const auto& r) { return r.first->name == room; });
}

std::vector<std::string_view> detail::hub_connection_impl::rooms() const {
    std::vector<std::string_view> out;
    out.reserve(rooms_.size());
    for (const auto& r : rooms_)
        out.emplace_back(r.first->name);
    return out;
}

void detail::hub_connection_impl::set_meta(std::string key, std::string value) {
    extras().meta.insert_or_assign(std::move(key), std::move(value));
}

const std::string* detail::hub_connection_impl::meta(std::string_view key) const noexcept {
    if (!extras_)
        return nullptr;
    auto it = extras_->meta.find(key);
    return it == extras_->meta.end() ? nullptr : &it->second;
}

bool detail::hub_connection_impl::erase_meta(std::string_view key) {
    if (!extras_)
        return false;
    auto it = extras_->meta.find(key);
    if (it == extras_->meta.end())
        return false;
    extras_->meta.erase(it);
    return true;
}

// ---- auto-responses and attachments -----------------------------------------------------

// Matched here rather than in the session: the answer then takes the outgoing queue like every
// other frame (in order, within max_queued_bytes), and the reader sees the whole message.
void detail::hub_connection_impl::set_auto_response(std::string request, std::string response,
                                                    opcode type) {
    if (type != opcode::text && type != opcode::binary)
        throw std::invalid_argument(
            "ws::detail::hub_connection_impl::set_auto_response: text or binary only");
    const prepared_message answer(type, core::as_bytes(response));
    hub_connection_extras& x = extras();
    x.auto_frame = answer.frame_for(*this);
    x.auto_request = std::move(request);
    x.auto_type = type;
    x.auto_set = true;
}

void detail::hub_connection_impl::clear_auto_response() noexcept {
    if (!extras_)
        return;
    extras_->auto_set = false;
    extras_->auto_request.clear();
    extras_->auto_frame = {};
}

core::task<core::result<void>>
detail::hub_connection_impl::set_attachment(std::vector<std::byte> data) {
    has_attachment_ = true; // before the put: a put that fails half-way may still have stored
    co_return co_await hub_->store().put(id_, std::move(data));
}

core::task<core::result<std::optional<std::vector<std::byte>>>>
detail::hub_connection_impl::attachment() {
    return hub_->store().get(id_);
}

core::task<core::result<void>> detail::hub_connection_impl::clear_attachment() {
    auto r = co_await hub_->store().remove(id_);
    if (r)
        has_attachment_ = false;
    co_return r;
}

// ---- hub_connection: the public face forwards to the connection's implementation ------------

using detail::hub_connection_impl;

bool hub_connection::join(std::string_view room) {
    return hub_connection_impl::of(*this).join(room);
}
bool hub_connection::leave(std::string_view room) {
    return hub_connection_impl::of(*this).leave(room);
}
bool hub_connection::in_room(std::string_view room) const noexcept {
    return hub_connection_impl::of(*this).in_room(room);
}
std::vector<std::string_view> hub_connection::rooms() const {
    return hub_connection_impl::of(*this).rooms();
}
void hub_connection::set_meta(std::string key, std::string value) {
    hub_connection_impl::of(*this).set_meta(std::move(key), std::move(value));
}
const std::string* hub_connection::meta(std::string_view key) const noexcept {
    return hub_connection_impl::of(*this).meta(key);
}
bool hub_connection::erase_meta(std::string_view key) {
    return hub_connection_impl::of(*this).erase_meta(key);
}
const std::map<std::string, std::string, std::less<>>& hub_connection::metadata() const noexcept {
    static const std::map<std::string, std::string, std::less<>> none;
    const auto& c = hub_connection_impl::of(*this);
    return c.extras_ ? c.extras_->meta : none;
}
core::task<core::result<void>> hub_connection::send_text(std::string_view text) {
    return hub_connection_impl::of(*this).send_text(text);
}
core::task<core::result<void>> hub_connection::send_binary(std::span<const std::byte> data) {
    return hub_connection_impl::of(*this).send_binary(data);
}
core::task<core::result<void>> hub_connection::send(const prepared_message& m) {
    return hub_connection_impl::of(*this).send(m);
}
bool hub_connection::try_send(const prepared_message& m) {
    return hub_connection_impl::of(*this).try_send(m);
}
core::task<core::result<void>> hub_connection::ping(std::string_view payload) {
    return hub_connection_impl::of(*this).ping(payload);
}
core::task<core::result<void>> hub_connection::ping() {
    return hub_connection_impl::of(*this).ping();
}
core::task<core::result<void>> hub_connection::pong(std::string_view payload) {
    return hub_connection_impl::of(*this).pong(payload);
}
core::task<core::result<void>> hub_connection::pong() {
    return hub_connection_impl::of(*this).pong();
}
std::size_t hub_connection::queued_bytes() const noexcept {
    return hub_connection_impl::of(*this).queued_bytes_;
}
std::uint64_t hub_connection::dropped() const noexcept {
    return hub_connection_impl::of(*this).dropped_;
}
core::task<core::result<message>> hub_connection::receive() {
    return hub_connection_impl::of(*this).receive();
}
core::task<core::result<message_chunk>> hub_connection::receive_some() {
    return hub_connection_impl::of(*this).receive_some();
}
core::task<core::result<message_view>> hub_connection::receive_view() {
    return hub_connection_impl::of(*this).receive_view();
}
void hub_connection::close(std::uint16_t code, std::string reason) {
    hub_connection_impl::of(*this).close(code, std::move(reason));
}
void hub_connection::set_auto_response(std::string request, std::string response, opcode type) {
    hub_connection_impl::of(*this).set_auto_response(std::move(request), std::move(response), type);
}
void hub_connection::clear_auto_response() noexcept {
    hub_connection_impl::of(*this).clear_auto_response();
}
std::uint64_t hub_connection::auto_responses_sent() const noexcept {
    return hub_connection_impl::of(*this).auto_sent_;
}
core::task<core::result<void>> hub_connection::set_attachment(std::vector<std::byte> data) {
    return hub_connection_impl::of(*this).set_attachment(std::move(data));
}
core::task<core::result<std::optional<std::vector<std::byte>>>> hub_connection::attachment() {
    return hub_connection_impl::of(*this).attachment();
}
core::task<core::result<void>> hub_connection::clear_attachment() {
    return hub_connection_impl::of(*this).clear_attachment();
}

} // namespace coronet::ws
