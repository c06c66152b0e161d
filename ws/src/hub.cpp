// The hub: registry, rooms, broadcast, heartbeats, serve and attachments.
#include <coronet/ws/deflate.hpp>
#include <coronet/ws/hub.hpp>
#include <coronet/ws/hub_group.hpp>

#include <coronet/core/loop_group.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/ws/attachment_store.hpp>

#include "hub_connection_impl.hpp"
#include "hub_group_state.hpp"
#include "hub_state.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <thread>
#include <utility>

namespace coronet::ws {

namespace {

class hub_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "coronet.ws.hub"; }
    std::string message(int ev) const override {
        switch (static_cast<hub_errc>(ev)) {
        case hub_errc::full:
            return "the hub is full";
        case hub_errc::unknown_id:
            return "no attachment with that id";
        case hub_errc::id_in_use:
            return "that id belongs to a live connection";
        case hub_errc::not_found:
            return "no live connection has that id";
        case hub_errc::queue_full:
            return "the connection's queue is full";
        }
        return "unknown hub error";
    }
};

} // namespace

namespace detail {

core::shared_buffer encode_frame(opcode op, std::span<const std::byte> payload, bool rsv1) {
    std::byte header[14];
    const std::size_t n = encode_header(header, op, true, payload.size(), false, 0, rsv1);
    core::shared_buffer b = core::shared_buffer::make(n + payload.size());
    std::memcpy(b.mutable_data(), header, n);
    if (!payload.empty())
        std::memcpy(b.mutable_data() + n, payload.data(), payload.size());
    return b;
}

} // namespace detail

const std::error_category& hub_category() noexcept {
    static const hub_category_impl c;
    return c;
}

// ---- prepared_message -------------------------------------------------------------------

prepared_message::prepared_message(opcode type, std::span<const std::byte> payload)
    : type_(type), payload_size_(payload.size()), plain_(detail::encode_frame(type, payload)) {}

prepared_message::prepared_message(const prepared_message& o)
    : type_(o.type_), payload_size_(o.payload_size_), plain_(o.plain_) {
    for (std::size_t i = 0; i < 7; ++i) {
        const std::uint8_t v = o.variant_state_[i].load(std::memory_order_acquire);
        if (v == 1 || v == 2) {
            compressed_[i] = o.compressed_[i];
            variant_state_[i].store(v, std::memory_order_relaxed);
        }
    }
}

prepared_message& prepared_message::operator=(const prepared_message& o) {
    if (this == &o)
        return *this;
    type_ = o.type_;
    payload_size_ = o.payload_size_;
    plain_ = o.plain_;
    for (std::size_t i = 0; i < 7; ++i) {
        const std::uint8_t v = o.variant_state_[i].load(std::memory_order_acquire);
        const bool built = v == 1 || v == 2;
        compressed_[i] = built ? o.compressed_[i] : core::shared_buffer();
        variant_state_[i].store(built ? v : 0, std::memory_order_relaxed);
    }
    return *this;
}

const core::shared_buffer& prepared_message::frame_for(const hub_connection& c) const {
    const session& s = *c.session_;
    const auto& agreed = s.compression();
    if (!agreed || !agreed->server_no_context_takeover || agreed->server_max_window_bits < 9)
        return plain_;
    const deflate_options& policy = s.options().deflate;
    if (payload_size_ < policy.min_size)
        return plain_;
    const std::size_t i = agreed->server_max_window_bits - 9u;
    std::atomic<std::uint8_t>& state = variant_state_[i];
    std::uint8_t v = state.load(std::memory_order_acquire);
    while (v != 1 && v != 2) {
        if (v == 3) {
            // Another loop of a hub_group is compressing it: a few microseconds.
            std::this_thread::yield();
            v = state.load(std::memory_order_acquire);
            continue;
        }
        if (!state.compare_exchange_weak(v, 3, std::memory_order_acquire))
            continue;
        // Compressed once for every receiver with this window: no context, so it inflates
        // anywhere the window is at least this large.
        try {
            const std::size_t header = plain_.size() - payload_size_;
            std::vector<std::byte> z;
            compress_message({plain_.data() + header, payload_size_}, z,
                             agreed->server_max_window_bits, policy.level, policy.mem_level);
            if (z.size() >= payload_size_ && policy.skip_incompressible) {
                v = 2;
            } else {
                compressed_[i] = detail::encode_frame(type_, z, true);
                v = 1;
            }
        } catch (...) {
            state.store(0, std::memory_order_release);
            throw;
        }
        state.store(v, std::memory_order_release);
    }
    return v == 1 ? compressed_[i] : plain_;
}

std::size_t prepared_message::compressed_variants() const noexcept {
    std::size_t n = 0;
    for (const auto& v : variant_state_)
        n += v.load(std::memory_order_acquire) == 1 ? 1 : 0;
    return n;
}

// ---- hub_state --------------------------------------------------------------------------

namespace detail {

// Ids are random (OpenSSL's generator) rather than a counter: attachments outlive the process
// that made them, so a restarted server must not hand out an id that a leftover attachment
// still has. 64 random bits make that, and a clash between independent hubs, negligible; a
// clash with a live id of this hub is drawn again. In a hub_group the low 8 bits are the
// loop's index instead: unique across the group without coordination, and they route a unicast.
std::uint64_t hub_state::next_id() {
    for (;;) {
        if (ids_left == 0) {
            if (RAND_bytes(reinterpret_cast<unsigned char*>(ids), sizeof ids) != 1)
                throw std::runtime_error("RAND_bytes failed");
            ids_left = sizeof ids / sizeof ids[0];
        }
        std::uint64_t id = ids[--ids_left];
        if (group != nullptr)
            id = (id & ~std::uint64_t{0xff}) | group_index;
        if (id != 0 && !by_id.contains(id))
            return id;
    }
}

void hub_state::add(hub_connection_impl& c) {
    by_id.emplace(c.id_, &c);
    c.index_ = all.size();
    all.push_back(&c);
    ++stats.accepted;
    stats.connections = all.size();
    if (group != nullptr)
        group->connections.fetch_add(1, std::memory_order_relaxed);
}

void hub_state::remove(hub_connection_impl& c) noexcept {
    by_id.erase(c.id_);
    hub_connection_impl* last = all.back();
    all[c.index_] = last;
    last->index_ = c.index_;
    all.pop_back();
    stats.connections = all.size();
    if (group != nullptr)
        group->connections.fetch_sub(1, std::memory_order_relaxed);
}

bool hub_state::join(hub_connection_impl& c, std::string_view name) {
    if (c.in_room(name))
        return false;
    auto it = rooms.find(name);
    if (it == rooms.end()) {
        auto r = std::make_unique<hub_room>();
        r->name = std::string(name);
        it = rooms.emplace(r->name, std::move(r)).first;
        if (bp != nullptr)
            bp->room_opened(it->second->name);
    }
    hub_room* r = it->second.get();
    c.rooms_.emplace_back(r, r->members.size());
    r->members.push_back(&c);
    if (group != nullptr)
        group->joined(group_index, name);
    return true;
}

bool hub_state::leave(hub_connection_impl& c, std::string_view name) {
    auto mine = std::find_if(c.rooms_.begin(), c.rooms_.end(),
                             [name](const auto& m) { return m.first->name == name; });
    if (mine == c.rooms_.end())
        return false;
    hub_room* r = mine->first;
    const std::size_t at = mine->second;
    *mine = c.rooms_.back();
    c.rooms_.pop_back();
    // Swap-remove from the room; the member moved into the gap learns its new index.
    hub_connection_impl* moved = r->members.back();
    r->members[at] = moved;
    r->members.pop_back();
    if (moved != &c) {
        for (auto& m : moved->rooms_) {
            if (m.first == r) {
                m.second = at;
                break;
            }
        }
    }
    if (group != nullptr)
        group->left(group_index, name);
    if (r->members.empty()) {
        if (bp != nullptr)
            bp->room_closed(r->name);
        rooms.erase(r->name);
    }
    return true;
}

void hub_state::leave_all(hub_connection_impl& c) noexcept {
    while (!c.rooms_.empty()) {
        const std::string name = c.rooms_.back().first->name;
        leave(c, name);
    }
}

void hub_state::heartbeat_unlink(hub_connection_impl& c) noexcept {
    if (c.hb_list_ == nullptr)
        return;
    c.hb_list_->erase(c);
    c.hb_list_ = nullptr;
}

void hub_state::heartbeat_push(heartbeat_list& l, hub_connection_impl& c) noexcept {
    l.push_back(c);
    c.hb_list_ = &l;
}

} // namespace detail

// ---- hub --------------------------------------------------------------------------------

hub::hub(hub_options opts) : hub(std::move(opts), make_memory_store()) {}

hub::hub(hub_options opts, std::unique_ptr<attachment_store> store)
    : state_(std::make_unique<detail::hub_state>()) {
    if (!store)
        throw std::invalid_argument("ws::hub: null attachment store");
    state_->opts = std::move(opts);
    state_->store = std::move(store);
    const std::byte empty_ping[2] = {std::byte{0x89}, std::byte{0x00}};
    state_->ping_frame = core::shared_buffer::copy_of(empty_ping);
}

hub::~hub() {
    if (!state_->all.empty())
        std::terminate(); // connections still point at this hub
}

bool hub::can_accept() const noexcept {
    return !state_->closing_all && state_->all.size() < state_->opts.max_connections;
}

std::size_t hub::size() const noexcept {
    return state_->all.size();
}

hub_connection* hub::find(std::uint64_t id) noexcept {
    auto it = state_->by_id.find(id);
    return it == state_->by_id.end() ? nullptr : it->second;
}

void hub::for_each(const std::function<void(hub_connection&)>& f) {
    // Unregistering happens only in serve's own coroutine, never inside a hub call, so the
    // list cannot change under f.
    for (std::size_t i = 0; i < state_->all.size(); ++i)
        f(*state_->all[i]);
}

const hub_stats& hub::stats() const noexcept {
    return state_->stats;
}
const hub_options& hub::options() const noexcept {
    return state_->opts;
}
attachment_store& hub::store() noexcept {
    return *state_->store;
}

core::clock::time_point hub::now() const {
    return state_->opts.clock ? state_->opts.clock() : core::clock::now();
}

// ---- rooms ------------------------------------------------------------------------------

std::size_t hub::room_size(std::string_view room) const {
    if (state_->group != nullptr)
        return state_->group->room_size(room);
    auto it = state_->rooms.find(room);
    return it == state_->rooms.end() ? 0 : it->second->members.size();
}

bool hub::is_member(std::string_view room, std::uint64_t id) const noexcept {
    auto it = state_->by_id.find(id);
    return it != state_->by_id.end() && it->second->in_room(room);
}

std::vector<std::string> hub::room_names() const {
    if (state_->group != nullptr)
        return state_->group->room_names();
    std::vector<std::string> out;
    out.reserve(state_->rooms.size());
    for (const auto& [name, r] : state_->rooms)
        out.push_back(name);
    return out;
}

void hub::for_each_member(std::string_view room, const std::function<void(hub_connection&)>& f) {
    auto it = state_->rooms.find(room);
    if (it == state_->rooms.end())
        return;
    // A copy: f may make members leave (or the room disappear).
    const std::vector<detail::hub_connection_impl*> members = it->second->members;
    for (detail::hub_connection_impl* c : members)
        f(*c);
}

// ---- broadcast --------------------------------------------------------------------------

std::size_t hub::deliver(detail::hub_connection_impl& c, const prepared_message& m) {
    if (c.state_ != connection_state::open)
        return 0;
    if (c.try_push(m.frame_for(c)))
        return 1;
    if (c.writer_done_)
        return 0;
    // No room: a broadcast never waits for one receiver.
    if (state_->opts.on_full != backpressure_policy::close) {
        ++c.dropped_;
        ++state_->stats.dropped;
    } else {
        ++state_->stats.closed_slow;
        c.request_close(1008, "slow reader", false);
    }
    return 0;
}

std::size_t hub::deliver_local(const std::string_view* room, const prepared_message& m,
                               std::uint64_t except_id) {
    std::size_t n = 0;
    // deliver() never unregisters or resumes anyone inline, so the lists are stable here.
    if (room == nullptr) {
        for (detail::hub_connection_impl* c : state_->all)
            if (c->id_ != except_id)
                n += deliver(*c, m);
        return n;
    }
    auto it = state_->rooms.find(*room);
    if (it == state_->rooms.end())
        return 0;
    for (detail::hub_connection_impl* c : it->second->members)
        if (c->id_ != except_id)
            n += deliver(*c, m);
    return n;
}

std::size_t hub::broadcast(const prepared_message& m) {
    return broadcast_except(m, 0);
}

std::size_t hub::broadcast_except(const prepared_message& m, std::uint64_t except_id) {
    ++state_->stats.broadcasts;
    const std::size_t n = deliver_local(nullptr, m, except_id);
    // The other loops get the same message (and the variants compressed here so far).
    if (state_->group != nullptr)
        state_->group->fan_out(state_->group_index, nullptr, m, except_id, false);
    return n;
}

std::size_t hub::broadcast_room(std::string_view room, const prepared_message& m) {
    return broadcast_room_except(room, m, 0);
}

std::size_t hub::broadcast_room_except(std::string_view room, const prepared_message& m,
                                       std::uint64_t except_id) {
    detail::hub_state& st = *state_;
    ++st.stats.broadcasts;
    const std::size_t n = deliver_local(&room, m, except_id);
    if (st.group != nullptr) {
        // The group publishes it once for the process, on the backplane's loop; one look at
        // the directory (one lock) decides both.
        if (st.group->fan_out(st.group_index, &room, m, except_id, true))
            ++st.stats.published;
    } else if (st.bp != nullptr) {
        // Once per broadcast, whatever the local members.
        ++st.stats.published;
        st.bp->publish(room, m.type(), detail::payload_of(m));
    }
    return n;
}

std::size_t hub::deliver_remote(std::string_view room, const prepared_message& m) {
    ++state_->stats.remote;
    const std::size_t n = deliver_local(&room, m, 0);
    if (state_->group != nullptr)
        state_->group->fan_out(state_->group_index, &room, m, 0, false);
    return n;
}

bool hub::deliver_remote_to(std::uint64_t id, const prepared_message& m) {
    if (state_->group != nullptr)
        return state_->group->unicast_from(state_->group_index, id, m);
    return detail::hub_group_state::receive_unicast(*this, id, m);
}

void hub::set_backplane(backplane* b) {
    if (state_->group != nullptr) {
        state_->group->set_backplane(b, state_->group_index);
        return;
    }
    state_->bp = b;
    if (b == nullptr)
        return;
    for (const auto& [name, room] : state_->rooms)
        b->room_opened(name);
}

backplane* hub::current_backplane() const noexcept {
    if (state_->group != nullptr)
        return state_->group->current_backplane();
    return state_->bp;
}

// ---- unicast across loops ----------------------------------------------------------------

namespace {

/// The loop and hub that own connection `id` (this hub's own when it is not in a group), or
/// nulls when no hub of the group made it.
std::pair<core::loop*, hub*> owner_of(detail::hub_state& st, hub& self, std::uint64_t id) {
    if (st.group == nullptr)
        return {core::loop::current(), &self};
    const std::size_t i = hub_group::loop_of(id);
    if (i >= st.group->hubs.size())
        return {nullptr, nullptr};
    return {st.group->loops[i], st.group->hubs[i].get()};
}

std::error_code try_queue(hub& h, std::uint64_t id, const prepared_message& m) {
    hub_connection* c = h.find(id);
    if (c == nullptr)
        return hub_errc::not_found;
    if (c->state() != connection_state::open)
        return errc::closed;
    return c->try_send(m) ? std::error_code() : make_error_code(hub_errc::queue_full);
}

} // namespace

core::task<core::result<void>> hub::send_to(std::uint64_t id, prepared_message m) {
    detail::hub_state& st = *state_;
    core::loop* home = core::loop::current();
    std::error_code e = make_error_code(hub_errc::not_found);
    auto [where, owner] = owner_of(st, *this, id);
    if (owner != nullptr && where == home) {
        e = try_queue(*owner, id, m);
    } else if (owner != nullptr) {
        // Over there and back: nothing on the way waits, so no stop token is involved.
        co_await core::resume_on(*where);
        e = try_queue(*owner, id, m);
        co_await core::resume_on(*home);
    }
    if (e != hub_errc::not_found) {
        if (e)
            co_return e;
        co_return core::result<void>();
    }
    // Not in this process: another one may have it, through the backplane (on its own loop).
    bool forwarded = false;
    if (st.group == nullptr) {
        if (st.bp != nullptr)
            forwarded = st.bp->send_to(id, m.type(), detail::payload_of(m));
    } else if (auto [bp, bp_loop] = st.group->backplane_home(); bp != nullptr) {
        core::loop& there = *bp_loop;
        co_await core::resume_on(there);
        // Only that loop's thread changes the backplane: look again there.
        if (backplane* b = st.group->current_backplane(); b != nullptr)
            forwarded = b->send_to(id, m.type(), detail::payload_of(m));
        co_await core::resume_on(*home);
    }
    if (!forwarded)
        co_return make_error_code(hub_errc::not_found);
    ++st.stats.forwarded;
    co_return core::result<void>();
}

core::task<bool> hub::visit(std::uint64_t id, std::function<void(hub_connection&)> f) {
    // Not a structured binding: clang 14 cannot capture one in the lambda below.
    const std::pair<core::loop*, hub*> at = owner_of(*state_, *this, id);
    core::loop* where = at.first;
    hub* owner = at.second;
    if (owner == nullptr)
        co_return false;
    core::loop* home = core::loop::current();
    auto run = [&] {
        hub_connection* c = owner->find(id);
        if (c == nullptr || c->state() == connection_state::closed)
            return false;
        f(*c);
        return true;
    };
    if (where == home)
        co_return run();
    co_await core::resume_on(*where);
    std::exception_ptr failed;
    bool found = false;
    try {
        found = run();
    } catch (...) {
        failed = std::current_exception();
    }
    co_await core::resume_on(*home);
    if (failed)
        std::rethrow_exception(failed);
    co_return found;
}

backplane::~backplane() = default;

bool backplane::send_to(std::uint64_t, opcode, std::span<const std::byte>) {
    return false;
}

// ---- heartbeats -------------------------------------------------------------------------

void detail::hub_state::retire_idle_writers() noexcept {
    ++sweeps;
    // In parking order: stop at the first writer that parked since the previous sweep.
    while (!parked_writers.empty() && parked_writers.front().parked_sweep_ + 1 < sweeps) {
        hub_connection_impl& c = parked_writers.front();
        parked_writers.erase(c);
        c.writer_retire_ = true;
        c.writer_wake_.wake_one();
    }
}

void hub::sweep() {
    detail::hub_state& st = *state_;
    st.retire_idle_writers();
    const auto interval = st.opts.ping_interval;
    if (interval.count() <= 0)
        return;
    const auto now = this->now();
    // Both lists are in deadline order, so each loop stops at the first connection that has
    // not expired: the work is proportional to the expired ones.
    while (!st.pinged.empty()) {
        detail::hub_connection_impl& c = st.pinged.front();
        if (c.ping_sent_ + st.opts.pong_timeout > now)
            break;
        st.heartbeat_unlink(c);
        if (c.state_ != connection_state::open)
            continue;
        ++st.stats.timed_out;
        c.abort("pong timeout");
    }
    while (!st.idle.empty()) {
        detail::hub_connection_impl& c = st.idle.front();
        if (c.last_activity_ + interval > now)
            break;
        st.heartbeat_unlink(c);
        if (c.state_ != connection_state::open)
            continue; // its close is bounded on its own
        // The hub's own auto-responses are activity already; a rule set on the session itself
        // (conn.ws()) is answered inside the session without waking the hub, so a peer that
        // sent one since the last look is alive (checked lazily, here).
        const std::uint64_t answered = c.session_->auto_responses_sent();
        if (answered != c.auto_seen_) {
            c.auto_seen_ = answered;
            c.last_activity_ = now;
            st.heartbeat_push(st.idle, c);
            continue;
        }
        // A queue too full even for a ping still counts as pinged: a peer that cannot take two
        // bytes within pong_timeout is as good as gone.
        c.ping_sent_ = now;
        if (c.try_push(st.ping_frame))
            ++st.stats.pings_sent;
        st.heartbeat_push(st.pinged, c);
    }
}

core::task<void> hub::heartbeats() {
    for (;;) {
        auto slept = co_await core::sleep_for(state_->opts.sweep_interval);
        if (!slept)
            co_return;
        sweep();
    }
}

// ---- serving ----------------------------------------------------------------------------

core::task<void> hub::serve(session& s, handshake_info info, hub_handler h) {
    co_await run_member(s, info, h);
}

// Not a coroutine: a refused session costs no member frame, and the member's frame holds
// neither the refusal's nor the teardown's locals (refuse, end_member) for its whole life.
core::task<void> hub::run_member(session& s, handshake_info& info, const hub_handler& h) {
    if (!can_accept())
        return refuse(s);
    return serve_member(s, info, h);
}

core::task<void> hub::refuse(session& s) {
    detail::hub_state& st = *state_;
    ++st.stats.refused;
    const bool going_away = st.closing_all;
    const std::uint16_t code = going_away ? 1001 : 1013;
    std::string reason = going_away ? "going away" : "try again later";
    auto r = co_await s.close(code, std::move(reason));
    (void)r;
}

core::task<void> hub::serve_member(session& s, handshake_info& info, const hub_handler& h) {
    detail::hub_state& st = *state_;
    detail::hub_connection_impl c(*this, s, st.next_id(), info);
    st.add(c);
    auto run = h.start(c, info);
    c.handler_ = run.get();
    s.set_observer(&c.observer_);
    {
        const core::stop_token outer = co_await core::get_stop_token();
        core::task_scope scope(outer);
        c.scope_ = &scope;
        c.state_ = connection_state::open;
        c.note_activity();
        // The writer starts with the first queued frame (push) and ends when the queue is
        // empty: an idle member holds no writer.
        scope.spawn(run_handler(c, *run));
        co_await scope.join();
        c.scope_ = nullptr;
        c.writer_done_ = true; // nothing queued from here on can be written
    }
    std::exception_ptr failed; // the registry must not keep a dangling connection
    if (end_member(c, *run, failed)) {
        ++st.finishing; // close_all waits for this too
        auto removed = co_await st.store->remove(c.id_);
        (void)removed;
        --st.finishing;
    }
    if (st.all.empty() && st.finishing == 0)
        st.empty.wake_all();
    if (failed)
        std::rethrow_exception(failed);
}

bool hub::end_member(detail::hub_connection_impl& c, connection_handler<hub_connection>& run,
                     std::exception_ptr& failed) {
    detail::hub_state& st = *state_;
    session& s = *c.session_;
    s.set_observer(nullptr);
    // No closing handshake with a peer we gave up on: close the stream so that whoever owns
    // the session afterwards (the server's own close) fails fast instead of waiting for it.
    if (c.aborted_ && s.stream().is_open())
        s.stream().close();
    const bool handshake_done = s.close_code() != 0 && s.close_code() != 1006;
    std::uint16_t code = s.close_code();
    std::string reason = s.close_reason();
    if (!handshake_done) {
        code = 1006;
        reason = c.aborted_ ? c.abort_reason_ : "";
    }
    c.state_ = connection_state::closed;
    st.heartbeat_unlink(c);
    c.fail_waiters();
    try {
        run.closed(code, reason);
    } catch (...) {
        failed = std::current_exception();
    }
    st.leave_all(c);
    st.remove(c);
    // Whether its attachment is to be removed from the store.
    return c.has_attachment_ && (handshake_done || !st.opts.keep_attachment_after_abnormal_close);
}

// An exception from the application's code drops the connection (so that its writer and
// watchdog stop and serve can clean up) and then goes on to the scope's error handler.
session_handler hub::as_session_handler(hub_handler h) {
    // Not a coroutine: the returned task is run_member's, which keeps references to `h` (this
    // lambda's) and to the host's `info`, both alive for the connection's life.
    return [this, h = std::move(h)](session& s, handshake_info& info) {
        return run_member(s, info, h);
    };
}

// The coroutine body, or on_open and the message loop; either way a connection still open when
// it returns is closed with 1000 after its queued frames (an event loop returns only once the
// session is closed).
core::task<void> hub::run_handler(detail::hub_connection_impl& c,
                                  connection_handler<hub_connection>& run) {
    std::exception_ptr failed;
    try {
        co_await run.run();
    } catch (...) {
        failed = std::current_exception();
    }
    if (failed) {
        c.abort("handler threw");
    } else if (!c.aborted_ && !c.close_performed_ && c.session_->is_open()) {
        if (!c.close_requested_) {
            c.close_requested_ = true;
            c.close_code_ = 1000;
            c.drain_first_ = true;
        }
        co_await c.perform_close();
    }
    c.scope_->request_stop();
    if (failed)
        std::rethrow_exception(failed);
}

// ---- shutdown ---------------------------------------------------------------------------

core::task<void> hub::close_all(std::uint16_t code, std::string reason) {
    detail::hub_state& st = *state_;
    st.closing_all = true;
    for (detail::hub_connection_impl* c : st.all)
        c->close(code, reason);
    while (!st.all.empty() || st.finishing > 0) {
        // A failed wait is the caller's stop token: stop waiting, the closes go on without us.
        if (!co_await st.empty.wait())
            co_return;
    }
}

// ---- attachments ------------------------------------------------------------------------

core::task<core::result<std::vector<std::uint64_t>>> hub::leftover_attachments() {
    auto ids = co_await state_->store->list();
    if (!ids)
        co_return ids.error();
    std::vector<std::uint64_t> out;
    for (std::uint64_t id : *ids)
        if (!state_->by_id.contains(id))
            out.push_back(id);
    co_return out;
}

core::task<core::result<void>> hub::adopt(hub_connection& conn, std::uint64_t old_id) {
    detail::hub_connection_impl& c = detail::hub_connection_impl::of(conn);
    if (c.state_ != connection_state::open)
        co_return make_error_code(errc::closed);
    if (state_->by_id.contains(old_id))
        co_return make_error_code(hub_errc::id_in_use);
    auto got = co_await state_->store->get(old_id);
    if (!got)
        co_return got.error();
    if (!got->has_value())
        co_return make_error_code(hub_errc::unknown_id);
    // Copy first, then remove: a crash in between leaves two copies, never none.
    c.has_attachment_ = true;
    auto put = co_await state_->store->put(c.id_, std::move(**got));
    if (!put)
        co_return put.error();
    co_return co_await state_->store->remove(old_id);
}

} // namespace coronet::ws
