// The hub group: a hub per loop, linked by a room directory and by envelopes that carry one
// prepared message to the other loops.
#include <coronet/ws/hub_group.hpp>

#include "hub_group_state.hpp"
#include "hub_state.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <utility>

namespace coronet::ws {

namespace detail {

namespace {

/// One broadcast on its way to other loops: the message (shared by them all, so its frame and
/// compressed variants are built once per process) and one post node per target loop, in one
/// allocation. The last loop to run its node frees it.
class envelope {
public:
    struct node : core::post_node {
        envelope* env = nullptr;
        std::uint16_t loop = 0;
        bool publish = false; ///< this loop holds the backplane: publish it there
    };

    /// `unicast`: `except_id` is the one connection to queue it for (room is null).
    static void send(hub_group_state& g, const std::uint16_t* targets, std::size_t count,
                     int publish_at, const std::string_view* room, const prepared_message& m,
                     std::uint64_t except_id, bool unicast = false) {
        static_assert(sizeof(envelope) % alignof(node) == 0);
        void* mem = ::operator new(sizeof(envelope) + count * sizeof(node));
        auto* e = new (mem) envelope(g, room, m, except_id, count);
        e->unicast_ = unicast;
        for (std::size_t k = 0; k < count; ++k) {
            node* n = new (e->nodes() + k) node;
            n->run = &envelope::run;
            n->env = e;
            n->loop = targets[k];
            n->publish = publish_at == static_cast<int>(targets[k]);
        }
        // Once posted, a node may run (and the envelope be freed) before post returns.
        node* first = e->nodes();
        for (std::size_t k = 0; k < count; ++k) {
            node& n = first[k];
            g.loops[n.loop]->post(n);
        }
    }

private:
    envelope(hub_group_state& g, const std::string_view* room, const prepared_message& m,
             std::uint64_t except_id, std::size_t count)
        : group_(g.shared_from_this()), msg_(m),
          room_(room != nullptr ? std::string(*room) : std::string()), all_(room == nullptr),
          except_(except_id), count_(count), pending_(count) {}

    node* nodes() noexcept { return reinterpret_cast<node*>(this + 1); }

    static void run(core::post_node* p) noexcept {
        node* n = static_cast<node*>(p);
        envelope* e = n->env;
        hub& h = *e->group_->hubs[n->loop];
        try {
            e->deliver(h, n->publish);
        } catch (...) {
            // Only zlib running out of memory while compressing a variant; the receivers of
            // this loop miss the message, as a broadcast that throws on one loop would.
        }
        if (e->pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            const std::size_t count = e->count_;
            for (std::size_t k = 0; k < count; ++k)
                e->nodes()[k].~node();
            e->~envelope(); // may free the group, when it is gone already
            ::operator delete(e);
        }
    }

    void deliver(hub& h, bool publish) {
        if (unicast_) {
            hub_group_state::receive_unicast(h, except_, msg_);
            return;
        }
        const std::string_view room = room_;
        // This loop holds the backplane when `publish`, and only its thread changes it.
        hub_group_state::receive(h, all_ ? nullptr : &room, msg_, except_,
                                 publish ? group_->bp : nullptr);
    }

    std::shared_ptr<hub_group_state> group_;
    prepared_message msg_;
    std::string room_;
    bool all_;
    bool unicast_ = false;
    std::uint64_t except_;
    std::size_t count_;
    std::atomic<std::size_t> pending_;
};

} // namespace

void hub_group_state::receive(hub& h, const std::string_view* room, const prepared_message& m,
                              std::uint64_t except_id, backplane* publish_to) {
    ++h.state_->stats.from_loops;
    if (publish_to != nullptr)
        publish_to->publish(*room, m.type(), payload_of(m));
    h.deliver_local(room, m, except_id);
}

bool hub_group_state::receive_unicast(hub& h, std::uint64_t id, const prepared_message& m) {
    hub_connection* c = h.find(id);
    if (c == nullptr || c->state() != connection_state::open || !c->try_send(m))
        return false;
    ++h.state_->stats.remote_unicasts;
    return true;
}

bool hub_group_state::unicast_from(std::size_t from, std::uint64_t id, const prepared_message& m) {
    const std::size_t to = hub_group::loop_of(id);
    if (to >= loops.size())
        return false;
    if (to == from)
        return receive_unicast(*hubs[to], id, m);
    const auto target = static_cast<std::uint16_t>(to);
    envelope::send(*this, &target, 1, -1, nullptr, m, id, true);
    return true;
}

void hub_group_state::joined(std::size_t i, std::string_view room) {
    std::lock_guard lock(mu);
    auto it = rooms.find(room);
    if (it == rooms.end()) {
        room_entry e;
        e.per_loop.assign(loops.size(), 0);
        it = rooms.emplace(std::string(room), std::move(e)).first;
    }
    ++it->second.per_loop[i];
    if (++it->second.total == 1 && bp != nullptr)
        post_reconcile_locked(room);
}

void hub_group_state::left(std::size_t i, std::string_view room) {
    std::lock_guard lock(mu);
    auto it = rooms.find(room);
    if (it == rooms.end() || it->second.per_loop[i] == 0)
        return; // cannot happen: every leave follows its join
    --it->second.per_loop[i];
    if (--it->second.total == 0) {
        rooms.erase(it);
        if (bp != nullptr)
            post_reconcile_locked(room);
    }
}

// The backplane hears of rooms on its own loop. A posted reconcile looks at the directory as it
// is when it runs, so an open and a close that cross on the way cannot leave the backplane
// subscribed to an empty room (or the reverse), whatever order they arrive in.
void hub_group_state::post_reconcile_locked(std::string_view room) {
    loops[bp_home]->post(
        [self = shared_from_this(), name = std::string(room)] { self->reconcile(name); });
}

void hub_group_state::reconcile(const std::string& room) {
    backplane* b = nullptr;
    bool open = false;
    {
        std::lock_guard lock(mu);
        b = bp;
        open = rooms.contains(room);
    }
    if (b == nullptr)
        return;
    const bool told = told_open.contains(room);
    if (open && !told) {
        told_open.insert(room);
        b->room_opened(room);
    } else if (!open && told) {
        told_open.erase(room);
        b->room_closed(room);
    }
}

void hub_group_state::set_backplane(backplane* b, std::size_t home) {
    std::vector<std::string> open;
    {
        std::lock_guard lock(mu);
        bp = b;
        bp_home = home;
        if (b != nullptr)
            for (const auto& [name, entry] : rooms)
                open.push_back(name);
    }
    told_open.clear();
    for (const std::string& name : open)
        reconcile(name);
}

backplane* hub_group_state::current_backplane() const {
    std::lock_guard lock(mu);
    return bp;
}

std::pair<backplane*, core::loop*> hub_group_state::backplane_home() const {
    std::lock_guard lock(mu);
    return {bp, bp != nullptr ? loops[bp_home] : nullptr};
}

bool hub_group_state::fan_out(std::size_t from, const std::string_view* room,
                              const prepared_message& m, std::uint64_t except_id, bool publish) {
    if (loops.size() == 1 && (!publish || room == nullptr))
        return false; // a group of one: nothing to hand over
    std::uint16_t targets[max_loops];
    std::size_t count = 0;
    int publish_at = -1;
    backplane* here = nullptr;
    {
        std::lock_guard lock(mu);
        if (room == nullptr) {
            for (std::size_t j = 0; j < loops.size(); ++j)
                if (j != from)
                    targets[count++] = static_cast<std::uint16_t>(j);
        } else if (auto it = rooms.find(*room); it != rooms.end()) {
            const auto& per_loop = it->second.per_loop;
            for (std::size_t j = 0; j < per_loop.size(); ++j)
                if (j != from && per_loop[j] > 0)
                    targets[count++] = static_cast<std::uint16_t>(j);
        }
        if (publish && room != nullptr && bp != nullptr) {
            if (bp_home == from) {
                here = bp;
            } else {
                publish_at = static_cast<int>(bp_home);
                if (std::find(targets, targets + count, bp_home) == targets + count)
                    targets[count++] = static_cast<std::uint16_t>(bp_home);
            }
        }
    }
    if (here != nullptr)
        here->publish(*room, m.type(), payload_of(m));
    if (count > 0)
        envelope::send(*this, targets, count, publish_at, room, m, except_id);
    return here != nullptr || publish_at >= 0;
}

std::size_t hub_group_state::room_size(std::string_view room) const {
    std::lock_guard lock(mu);
    auto it = rooms.find(room);
    return it == rooms.end() ? 0 : it->second.total;
}

std::vector<std::string> hub_group_state::room_names() const {
    std::lock_guard lock(mu);
    std::vector<std::string> out;
    out.reserve(rooms.size());
    for (const auto& [name, entry] : rooms)
        out.push_back(name);
    return out;
}

} // namespace detail

// ---- hub_group --------------------------------------------------------------------------

namespace {

std::vector<core::loop*> loops_of(core::loop_group& g) {
    std::vector<core::loop*> out;
    for (std::size_t i = 0; i < g.size(); ++i)
        out.push_back(&g.at(i));
    return out;
}

} // namespace

hub_group::hub_group(core::loop_group& loops, hub_options opts)
    : hub_group(std::span<core::loop* const>(loops_of(loops)), std::move(opts)) {}

hub_group::hub_group(std::span<core::loop* const> loops, hub_options opts)
    : state_(std::make_shared<detail::hub_group_state>()) {
    if (loops.empty() || loops.size() > detail::hub_group_state::max_loops)
        throw std::invalid_argument("ws::hub_group: needs 1 to 256 loops");
    for (core::loop* lp : loops)
        if (lp == nullptr)
            throw std::invalid_argument("ws::hub_group: null loop");
    state_->loops.assign(loops.begin(), loops.end());
    for (std::size_t i = 0; i < loops.size(); ++i) {
        state_->hubs.push_back(std::make_unique<hub>(opts));
        detail::hub_state& st = *state_->hubs.back()->state_;
        st.group = state_.get();
        st.group_index = i;
    }
}

// The hubs go with the last owner: this group, or an envelope or backplane update still
// queued on some loop.
hub_group::~hub_group() = default;

std::size_t hub_group::size() const noexcept {
    return state_->hubs.size();
}

hub& hub_group::at(std::size_t i) noexcept {
    return *state_->hubs[i];
}

std::size_t hub_group::connections() const noexcept {
    return state_->connections.load(std::memory_order_relaxed);
}

std::size_t hub_group::room_size(std::string_view room) const {
    return state_->room_size(room);
}

std::vector<std::string> hub_group::room_names() const {
    return state_->room_names();
}

} // namespace coronet::ws
