// A hub connection's outgoing queue, its writer, unicast sends that wait for room, the
// connection-side receive and the closing paths.
#include <coronet/ws/hub.hpp>

#include <coronet/core/timer.hpp>
#include <coronet/ws/attachment_store.hpp>

#include "hub_state.hpp"

#include <algorithm>
#include <utility>

namespace coronet::ws {

namespace detail {

void wake_slot::wake() noexcept {
    if (!waiting || scheduled)
        return;
    scheduled = true;
    op.buf = this;
    op.on_complete = [](core::detail::io_op* o) noexcept {
        auto* slot = static_cast<wake_slot*>(o->buf);
        slot->scheduled = false;
        auto h = std::exchange(slot->waiting, {});
        if (h)
            h.resume();
    };
    core::loop::current()->complete_later(op);
}

/// A unicast send waiting for room in a connection's queue. It lives in the sending coroutine's
/// frame; when room frees up the writer queues its frame (so nothing can take the room first)
/// and resumes it from the loop.
struct space_waiter {
    hub_connection* conn;
    core::shared_buffer frame;
    space_waiter* next = nullptr;
    space_waiter* prev = nullptr;
    std::error_code outcome;
    core::detail::io_op resume;
    struct canceller : core::stop_callback_base {
        explicit canceller(space_waiter* w) noexcept : stop_callback_base(&on_stop), self(w) {}
        space_waiter* self;
    } cancel{this};

    space_waiter(hub_connection& c, core::shared_buffer f) noexcept
        : conn(&c), frame(std::move(f)) {}
    space_waiter(const space_waiter&) = delete;
    space_waiter& operator=(const space_waiter&) = delete;

    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
        return suspend(h, core::detail::token_of(h));
    }
    core::result<void> await_resume() noexcept {
        cancel.detach();
        if (outcome)
            return outcome;
        return {};
    }

    bool suspend(std::coroutine_handle<> h, core::stop_token tok) noexcept {
        resume.waiter = h;
        if (tok.stop_requested()) {
            outcome = make_error_code(core::errc::operation_canceled);
            return false;
        }
        prev = conn->waiters_tail_;
        if (prev != nullptr)
            prev->next = this;
        else
            conn->waiters_head_ = this;
        conn->waiters_tail_ = this;
        cancel.attach(tok.source());
        return true;
    }
    void unlink() noexcept {
        if (prev != nullptr)
            prev->next = next;
        else
            conn->waiters_head_ = next;
        if (next != nullptr)
            next->prev = prev;
        else
            conn->waiters_tail_ = prev;
        next = prev = nullptr;
    }
    /// Leaves the queue and resumes the sender (from the loop) with `e` (zero: queued).
    void finish(std::error_code e) noexcept {
        unlink();
        cancel.detach();
        outcome = e;
        core::loop::current()->complete_later(resume);
    }
    static void on_stop(core::stop_callback_base* cb) noexcept {
        static_cast<canceller*>(cb)->self->finish(make_error_code(core::errc::operation_canceled));
    }
};

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
} // namespace

hub_connection::hub_connection(hub& h, session& s, std::uint64_t id, std::string target)
    : hub_(&h), session_(&s), id_(id), target_(std::move(target)) {
    observer_.self = this;
}

hub_connection::~hub_connection() = default;

void hub_connection::observer::on_ping(session&, std::string_view) {
    self->note_activity();
}

void hub_connection::observer::on_pong(session&, std::string_view payload) {
    self->note_activity();
    if (self->handler_ != nullptr)
        self->handler_->on_pong(*self, payload);
}

void hub_connection::note_activity() noexcept {
    detail::hub_state& st = *hub_->state_;
    if (st.opts.ping_interval.count() <= 0 || state_ == connection_state::closed)
        return;
    last_activity_ = hub_->now();
    st.heartbeat_unlink(*this);
    st.heartbeat_push(st.idle, *this);
}

// ---- queue ------------------------------------------------------------------------------

void hub_connection::push(core::shared_buffer frame) {
    queued_bytes_ += frame.size();
    queue_.push_back(std::move(frame));
    ++hub_->state_->stats.frames_queued;
    writer_wake_.wake();
}

bool hub_connection::try_push(const core::shared_buffer& frame) {
    if (writer_done_)
        return false;
    if (queued_bytes_ > 0 && queued_bytes_ + frame.size() > hub_->state_->opts.max_queued_bytes)
        return false;
    push(frame);
    return true;
}

void hub_connection::grant_waiters() noexcept {
    const std::size_t limit = hub_->state_->opts.max_queued_bytes;
    while (waiters_head_ != nullptr) {
        detail::space_waiter* w = waiters_head_;
        if (queued_bytes_ > 0 && queued_bytes_ + w->frame.size() > limit)
            break;
        push(std::move(w->frame));
        w->finish({});
    }
}

void hub_connection::fail_waiters() noexcept {
    while (waiters_head_ != nullptr)
        waiters_head_->finish(make_error_code(errc::closed));
}

void hub_connection::drop_pending() noexcept {
    while (queue_.size() > in_flight_)
        queued_bytes_ -= queue_.pop_back();
}

core::task<void> hub_connection::writer() {
    const core::stop_token tok = co_await core::get_stop_token();
    for (;;) {
        if (tok.stop_requested())
            break;
        if (queue_.empty()) {
            if (drained_.waiting)
                drained_.wake();
            co_await detail::slot_wait{writer_wake_, tok, false};
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
    writer_done_ = true;
    drop_pending();
    batch_ = {};
    fail_waiters();
    drained_.wake();
}

core::task<core::result<void>> hub_connection::wait_drained() {
    const core::stop_token tok = co_await core::get_stop_token();
    while (queued_bytes_ > 0 && !writer_done_) {
        if (tok.stop_requested())
            co_return make_error_code(core::errc::operation_canceled);
        co_await detail::slot_wait{drained_, tok, false};
    }
    co_return core::result<void>{};
}

core::task<core::result<void>> hub_connection::send_frame(core::shared_buffer frame) {
    if (state_ != connection_state::open && state_ != connection_state::connecting)
        co_return make_error_code(errc::closed);
    if (waiters_head_ == nullptr && try_push(frame))
        co_return core::result<void>{};
    if (writer_done_)
        co_return make_error_code(errc::closed);
    detail::space_waiter w(*this, std::move(frame));
    co_return co_await w;
}

core::task<core::result<void>> hub_connection::send_text(std::string_view text) {
    return send(prepared_message::text(text));
}

core::task<core::result<void>> hub_connection::send_binary(std::span<const std::byte> data) {
    return send(prepared_message::binary(data));
}

core::task<core::result<void>> hub_connection::send(const prepared_message& m) {
    return send_frame(m.frame_for(*this));
}

bool hub_connection::try_send(const prepared_message& m) {
    if (state_ != connection_state::open && state_ != connection_state::connecting)
        return false;
    if (waiters_head_ != nullptr)
        return false; // would overtake a waiting send
    return try_push(m.frame_for(*this));
}

// ---- receiving and closing --------------------------------------------------------------

core::task<core::result<message>> hub_connection::receive() {
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
        // The wait runs under a stop source of its own so that a close request can interrupt
        // it without touching the rest of the connection.
        core::stop_source stop(outer);
        receive_stop_ = &stop;
        auto t = session_->receive();
        t.handle().promise().set_token(stop.token());
        auto m = co_await std::move(t);
        receive_stop_ = nullptr;
        if (m) {
            note_activity();
            if (close_requested_)
                continue; // closing: late messages are dropped
            co_return m;
        }
        if (m.error() == core::errc::operation_canceled && close_requested_ && !aborted_ &&
            !outer.stop_requested())
            continue;
        if (state_ == connection_state::open || state_ == connection_state::connecting)
            state_ = connection_state::closing;
        co_return m.error();
    }
}

void hub_connection::close(std::uint16_t code, std::string reason) {
    request_close(code, std::move(reason), true);
}

void hub_connection::request_close(std::uint16_t code, std::string reason, bool drain_first) {
    if (close_requested_ || aborted_ ||
        (state_ != connection_state::open && state_ != connection_state::connecting))
        return;
    close_requested_ = true;
    close_code_ = code;
    close_reason_ = std::move(reason);
    drain_first_ = drain_first;
    state_ = connection_state::closing;
    if (!drain_first)
        drop_pending();
    fail_waiters();
    if (receive_stop_ != nullptr)
        receive_stop_->request_stop();
    if (scope_ != nullptr)
        scope_->spawn(watchdog());
}

core::task<void> hub_connection::perform_close() {
    close_performed_ = true;
    state_ = connection_state::closing;
    const auto timeout = hub_->state_->opts.close_timeout;
    if (drain_first_ && queued_bytes_ > 0 && !writer_done_) {
        auto waited = co_await core::with_timeout(timeout, wait_drained());
        (void)waited;
    }
    auto r = co_await session_->close(close_code_, close_reason_);
    // The close frame could not go out (a writer stuck behind a peer that stopped reading) or
    // the peer never answered: nothing more to say to it.
    if (!r && session_->close_code() == 0)
        abort(close_reason_.empty() ? "close timeout" : close_reason_.c_str());
}

core::task<void> hub_connection::watchdog() {
    auto slept = co_await core::sleep_for(2 * hub_->state_->opts.close_timeout);
    if (slept)
        abort("close timeout");
}

void hub_connection::abort(const char* reason) noexcept {
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

bool hub_connection::join(std::string_view room) {
    if (state_ != connection_state::open && state_ != connection_state::connecting)
        return false;
    return hub_->state_->join(*this, room);
}

bool hub_connection::leave(std::string_view room) {
    return hub_->state_->leave(*this, room);
}

bool hub_connection::in_room(std::string_view room) const noexcept {
    return std::any_of(rooms_.begin(), rooms_.end(),
                       [room](const auto& r) { return r.first->name == room; });
}

std::vector<std::string_view> hub_connection::rooms() const {
    std::vector<std::string_view> out;
    out.reserve(rooms_.size());
    for (const auto& r : rooms_)
        out.emplace_back(r.first->name);
    return out;
}

void hub_connection::set_meta(std::string key, std::string value) {
    meta_.insert_or_assign(std::move(key), std::move(value));
}

const std::string* hub_connection::meta(std::string_view key) const noexcept {
    auto it = meta_.find(key);
    return it == meta_.end() ? nullptr : &it->second;
}

bool hub_connection::erase_meta(std::string_view key) {
    auto it = meta_.find(key);
    if (it == meta_.end())
        return false;
    meta_.erase(it);
    return true;
}

// ---- auto-responses and attachments -----------------------------------------------------

void hub_connection::set_auto_response(std::string request, std::string response) {
    session_->set_auto_response(std::move(request), std::move(response));
}

void hub_connection::clear_auto_response() {
    session_->clear_auto_response();
}

std::uint64_t hub_connection::auto_responses_sent() const noexcept {
    return session_->auto_responses_sent();
}

core::task<core::result<void>> hub_connection::set_attachment(std::vector<std::byte> data) {
    has_attachment_ = true; // before the put: a put that fails half-way may still have stored
    co_return co_await hub_->store().put(id_, std::move(data));
}

core::task<core::result<std::optional<std::vector<std::byte>>>> hub_connection::attachment() {
    return hub_->store().get(id_);
}

core::task<core::result<void>> hub_connection::clear_attachment() {
    auto r = co_await hub_->store().remove(id_);
    if (r)
        has_attachment_ = false;
    co_return r;
}

} // namespace coronet::ws
