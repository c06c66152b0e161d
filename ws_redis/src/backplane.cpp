// The hub's Redis backplane: one command connection publishes, one subscriber receives; both
// are rebuilt after any failure, with bounded jittered exponential backoff.
#include <coronet/ws_redis/backplane.hpp>

#include <coronet/core/async_event.hpp>
#include <coronet/core/error.hpp>
#include <coronet/core/scope.hpp>
#include <coronet/core/stop.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/ws_redis/cluster.hpp>
#include <coronet/ws_redis/connection.hpp>
#include <coronet/ws_redis/subscriber.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace coronet::ws_redis {

namespace detail {

namespace {

// The envelope: version, type (1 text, 2 binary), origin (8 bytes, big-endian), sequence of
// that origin in that room (8 bytes, big-endian; on the unicast channel: the connection id),
// then the payload.
constexpr unsigned char envelope_version = 1;
constexpr std::size_t envelope_header = 18;
// Publishes in flight together on the command connection (Redis answers in order).
constexpr std::size_t publish_window = 64;

void put_u64(std::string& s, std::uint64_t v) {
    for (int shift = 56; shift >= 0; shift -= 8)
        s.push_back(static_cast<char>((v >> shift) & 0xffu));
}

std::uint64_t get_u64(const char* p) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
        v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}

struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};

template <class V>
using string_map = std::unordered_map<std::string, V, string_hash, std::equal_to<>>;
using string_set = std::unordered_set<std::string, string_hash, std::equal_to<>>;

} // namespace

struct outgoing {
    std::string channel;
    std::string envelope;
};

/// One Redis server of the link: a command connection and a subscriber.
struct shard {
    std::string host;    ///< where it was reached (a CLUSTER SLOTS entry without one means it)
    std::string address; ///< "host:port" as the cluster names it (empty for one server)
    connection cmd;
    subscriber sub;
};

/// The servers of one link and which one owns each slot. One server (no cluster, or plain
/// pub/sub): `owner` is empty and the only shard serves everything.
struct topology {
    static constexpr std::uint16_t no_shard = 0xffff;

    std::vector<std::unique_ptr<shard>> shards;
    std::vector<std::uint16_t> owner; ///< per slot: an index in `shards`, or no_shard
    std::uint64_t generation = 0;     ///< maps read in place since the link started
    bool stale = false;               ///< the map names a node we have no link to: rebuild
    bool refresh_wanted = false;      ///< a redirection or a dropped channel: read the map
    std::uint16_t refresh_first = 0;  ///< the shard to ask first: the one that knows
    bool refreshing = false;          ///< the map is being read
    core::async_event refresh_ready;  ///< set with refresh_wanted
    core::task_scope* link = nullptr; ///< the link serving it, while it runs

    bool clustered() const noexcept { return !owner.empty(); }

    /// The index of the shard that owns `key` (a key or a shard channel); nullopt when no node
    /// serves its slot.
    std::optional<std::uint16_t> owner_of(std::string_view key) const noexcept {
        if (!clustered())
            return std::uint16_t{0};
        const std::uint16_t i = owner[key_slot(key)];
        return i == no_shard ? std::nullopt : std::optional<std::uint16_t>(i);
    }

    /// The shard that owns `key`; null when no node serves its slot.
    shard* for_key(std::string_view key) const noexcept {
        const auto i = owner_of(key);
        return i ? shards[*i].get() : nullptr;
    }

    std::optional<std::uint16_t> index_of(std::string_view address) const noexcept {
        for (std::size_t i = 0; i < shards.size(); ++i)
            if (shards[i]->address == address)
                return static_cast<std::uint16_t>(i);
        return std::nullopt;
    }

    /// The map may be out of date (a MOVED, a channel dropped by its node): read it again, in
    /// place, from the link's refresher, asking shard `first` first (the node that answered
    /// MOVED, or dropped the channel, knows the new owner; another may not know yet).
    void want_refresh(std::uint16_t first) {
        refresh_wanted = true;
        refresh_first = first;
        refresh_ready.set();
    }

    /// The map no longer matches the cluster: stop the link, the next one asks again.
    void mark_stale() noexcept {
        stale = true;
        if (link != nullptr)
            link->request_stop();
    }
};

/// A master of CLUSTER SLOTS: its slot ranges and where it is.
struct slot_owner {
    std::string host;
    std::uint16_t port = 0;
    std::vector<std::pair<std::uint16_t, std::uint16_t>> ranges;
    std::string address() const { return host + ":" + std::to_string(port); }
};

/// The masters of a CLUSTER SLOTS reply (`[[first, last, [host, port, id...], replicas...]...]`);
/// an empty or "?" host is the seed's. Nullopt for a reply of another shape.
std::optional<std::vector<slot_owner>> parse_slots(const reply& r, const std::string& seed_host) {
    if (!r.is_array())
        return std::nullopt;
    std::vector<slot_owner> owners;
    for (const reply& range : r.elements) {
        if (!range.is_array() || range.elements.size() < 3 || !range.elements[0].is_integer() ||
            !range.elements[1].is_integer() || !range.elements[2].is_array())
            return std::nullopt;
        const std::int64_t first = range.elements[0].integer;
        const std::int64_t last = range.elements[1].integer;
        const reply& master = range.elements[2];
        if (first < 0 || last < first || last >= static_cast<std::int64_t>(cluster_slots) ||
            master.elements.size() < 2 || !master.elements[0].is_string() ||
            !master.elements[1].is_integer() || master.elements[1].integer <= 0 ||
            master.elements[1].integer > 65535)
            return std::nullopt;
        std::string host = master.elements[0].str;
        if (host.empty() || host == "?")
            host = seed_host;
        const auto port = static_cast<std::uint16_t>(master.elements[1].integer);
        auto it = std::find_if(owners.begin(), owners.end(), [&](const slot_owner& o) {
            return o.host == host && o.port == port;
        });
        if (it == owners.end()) {
            owners.push_back(slot_owner{std::move(host), port, {}});
            it = std::prev(owners.end());
        }
        it->ranges.emplace_back(static_cast<std::uint16_t>(first),
                                static_cast<std::uint16_t>(last));
    }
    return owners;
}

/// The owner of every slot, as indexes of `t.shards`; nullopt when a master is not among them.
std::optional<std::vector<std::uint16_t>> slot_table(const std::vector<slot_owner>& owners,
                                                     const topology& t) {
    std::vector<std::uint16_t> table(cluster_slots, topology::no_shard);
    for (const slot_owner& o : owners) {
        const std::optional<std::uint16_t> index = t.index_of(o.address());
        if (!index)
            return std::nullopt;
        for (const auto& range : o.ranges)
            std::fill(table.begin() + range.first, table.begin() + range.second + 1, *index);
    }
    return table;
}

/// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381": the address, when `r` is that
/// redirection. An address without a host (":6381", a node whose endpoint is unknown) is on
/// `host`, the host of the node that answered.
std::optional<std::string> redirection(const reply& r, std::string_view kind,
                                       const std::string& host) {
    if (!r.is_error())
        return std::nullopt;
    std::string_view text = r.str;
    if (text.size() <= kind.size() + 1 || text.substr(0, kind.size()) != kind ||
        text[kind.size()] != ' ')
        return std::nullopt;
    const auto space = text.find(' ', kind.size() + 1);
    if (space == std::string_view::npos)
        return std::nullopt;
    std::string address(text.substr(space + 1));
    if (!address.empty() && address.front() == ':')
        address.insert(0, host);
    return address;
}

struct backplane_impl {
    backplane_impl(ws::hub& h, url w, backplane_options o)
        : hub(&h), where(std::move(w)), opts(std::move(o)), rng(std::random_device{}()),
          unicast_ch(opts.key_prefix + "unicast") {
        while (origin == 0)
            origin = rng();
    }

    ws::hub* hub;
    url where;
    backplane_options opts;
    std::mt19937_64 rng;
    std::string unicast_ch;
    std::uint64_t origin = 0;
    backplane_stats st;
    bool link_up = false;

    string_set rooms; ///< rooms with local members: the subscriptions wanted
    /// Rooms whose channel a subscriber of the current link confirmed, with its shard.
    string_map<std::uint16_t> subscribed;
    core::async_event subs_changed;

    std::deque<outgoing> queue;
    std::size_t queued_bytes = 0;
    core::async_event queue_ready;

    string_map<std::uint64_t> sent_seq;                                ///< per room: last sent
    string_map<std::unordered_map<std::uint64_t, std::uint64_t>> seen; ///< room -> origin -> last

    const std::string& unicast_channel() const { return unicast_ch; }
    std::string origins_key() const { return opts.key_prefix + "origins"; }
    std::string sizes_key(std::string_view of) const {
        return opts.key_prefix + "sizes:" + std::string(of);
    }

    /// The servers of the link while it is up; shared with cluster_room_size calls (the last
    /// one holding it closes it: a call may still wait for its reply when the link ends).
    std::shared_ptr<topology> topo;
    std::vector<url> known_nodes; ///< the masters of the last cluster map: seeds after `where`
    std::optional<std::uint16_t> unicast_on; ///< the shard subscribed to the unicast channel
    /// Subscriptions in flight: room -> the shard asked (no_shard once that shard dropped the
    /// channel meanwhile: its confirmation, if any, is then not recorded).
    string_map<std::uint16_t> subscribing;
    std::optional<std::uint16_t> unicast_subscribing; ///< the same for the unicast channel
    string_set sizes_written; ///< rooms in this process's sizes hash in Redis

    std::string channel_of(std::string_view room) const {
        std::string c;
        c.reserve(opts.channel_prefix.size() + room.size());
        c += opts.channel_prefix;
        c += room;
        return c;
    }

    void drop_queue() noexcept {
        st.lost_publishes += queue.size();
        queue.clear();
        queued_bytes = 0;
    }

    /// Queues an envelope (`word`: the room sequence, or the connection id of a unicast) for
    /// `channel`, or counts it lost when the link is down or the queue full.
    void enqueue(std::string channel, ws::opcode type, std::uint64_t word,
                 std::span<const std::byte> payload) {
        const std::size_t size = envelope_header + payload.size();
        if (!link_up) {
            ++st.lost_publishes;
            return;
        }
        if (queue.size() >= opts.max_queued_publishes ||
            queued_bytes + size > opts.max_queued_bytes) {
            ++st.lost_publishes;
            ++st.queue_full;
            return;
        }
        outgoing o;
        o.channel = std::move(channel);
        o.envelope.reserve(size);
        o.envelope.push_back(static_cast<char>(envelope_version));
        o.envelope.push_back(type == ws::opcode::binary ? 2 : 1);
        put_u64(o.envelope, origin);
        put_u64(o.envelope, word);
        o.envelope.append(reinterpret_cast<const char*>(payload.data()), payload.size());
        queued_bytes += size;
        queue.push_back(std::move(o));
        queue_ready.set();
    }

    std::chrono::milliseconds jittered(std::chrono::milliseconds wait) {
        const auto hi = std::max<std::int64_t>(wait.count(), 1);
        std::uniform_int_distribution<std::int64_t> d(hi / 2, hi);
        return std::chrono::milliseconds(d(rng));
    }

    void receive(const message& m) {
        std::string_view ch = m.channel;
        std::string_view env = m.payload;
        if (ch == unicast_channel()) {
            if (env.size() < envelope_header ||
                static_cast<unsigned char>(env[0]) != envelope_version ||
                (env[1] != 1 && env[1] != 2)) {
                ++st.malformed;
                return;
            }
            if (get_u64(env.data() + 2) == origin) {
                ++st.own_echoes;
                return;
            }
            const auto type = env[1] == 1 ? ws::opcode::text : ws::opcode::binary;
            // Every process reads every unicast; the one that has the connection queues it (in a
            // hub_group, on the connection's loop).
            ++st.unicasts_read;
            hub->deliver_remote_to(
                get_u64(env.data() + 10),
                ws::prepared_message(type, core::as_bytes(env.substr(envelope_header))));
            return;
        }
        if (ch.size() < opts.channel_prefix.size() ||
            ch.substr(0, opts.channel_prefix.size()) != opts.channel_prefix ||
            env.size() < envelope_header ||
            static_cast<unsigned char>(env[0]) != envelope_version ||
            (env[1] != 1 && env[1] != 2)) {
            ++st.malformed;
            return;
        }
        const std::string_view room = ch.substr(opts.channel_prefix.size());
        const std::uint64_t from = get_u64(env.data() + 2);
        const std::uint64_t seq = get_u64(env.data() + 10);
        if (from == origin) {
            ++st.own_echoes;
            return;
        }
        auto r = rooms.find(room);
        if (r == rooms.end())
            return; // left since: the unsubscribe is on its way
        auto& last = seen[*r];
        auto it = last.find(from);
        if (it == last.end()) {
            last.emplace(from, seq);
        } else {
            // A sequence that starts again (1, or not past the last one) is a new run of that
            // origin in this room (it left the room and came back): not a gap.
            if (seq > it->second + 1 && seq != 1)
                st.gaps += seq - it->second - 1;
            it->second = seq;
        }
        const auto type = env[1] == 1 ? ws::opcode::text : ws::opcode::binary;
        const ws::prepared_message pm(type, core::as_bytes(env.substr(envelope_header)));
        ++st.received;
        hub->deliver_remote(room, pm);
    }

    static core::task<void> command_into(connection& c, std::span<const std::string_view> args,
                                         core::result<reply>& out) {
        out = co_await c.command(args);
    }

    /// `args` on `c` after ASKING (the reply to an ASK redirection: the slot is being migrated
    /// there). Both are queued at once, so nothing comes between them.
    static core::task<core::result<reply>> asking(connection& c,
                                                  std::span<const std::string_view> args) {
        static constexpr std::string_view ask[] = {"ASKING"};
        core::result<reply> first = make_error_code(errc::closed);
        core::result<reply> second = make_error_code(errc::closed);
        core::task_scope both(co_await core::get_stop_token());
        both.spawn(command_into(c, ask, first)); // each queues its command as it starts
        both.spawn(command_into(c, args, second));
        co_await both.join();
        co_return second;
    }

    /// Sends `args` to the server that owns `key`. In a cluster, follows one redirection: ASK
    /// goes to the named node after ASKING; MOVED goes there too and has the map read again.
    /// MOVED to a node the link does not know, or a slot that no node serves, marks the map
    /// stale (the link is rebuilt); ASK to such a node (a master being added) fails this one
    /// command with its error reply.
    core::task<core::result<reply>> routed(topology& t, std::string_view key,
                                           std::span<const std::string_view> args) {
        shard* s = t.for_key(key);
        if (s == nullptr) {
            t.mark_stale();
            co_return make_error_code(errc::closed);
        }
        auto r = co_await s->cmd.command(args);
        if (!r || !t.clustered() || !r->is_error())
            co_return r;
        const bool moved = r->str.rfind("MOVED ", 0) == 0;
        auto to = redirection(*r, moved ? "MOVED" : "ASK", s->host);
        if (!to)
            co_return r;
        ++st.redirects;
        const std::optional<std::uint16_t> target = t.index_of(*to);
        if (!target) {
            if (moved)
                t.mark_stale(); // a master this link does not know
            co_return r;
        }
        connection& there = t.shards[*target]->cmd;
        if (!moved)
            co_return co_await asking(there, args);
        t.want_refresh(*target);
        co_return co_await there.command(args);
    }

    /// How a command whose answer only needs to be a success went.
    enum class outcome { done, refused, broken };

    /// `routed` for such a command.
    core::task<outcome> routed_ok(topology& t, std::string_view key,
                                  const std::vector<std::string>& args) {
        const std::vector<std::string_view> views(args.begin(), args.end());
        auto r = co_await routed(t, key, views);
        if (!r)
            co_return outcome::broken;
        co_return r->is_error() ? outcome::refused : outcome::done;
    }

    core::task<void> publish_one(topology& t, outgoing o, core::task_scope& link) {
        // Not `cond ? co_await a : co_await b`: g++ 12 destroys the temporaries twice.
        core::result<std::int64_t> r = make_error_code(errc::closed);
        if (t.clustered()) {
            const std::string_view args[] = {"SPUBLISH", o.channel, o.envelope};
            auto answer = co_await routed(t, o.channel, args);
            if (!answer)
                r = answer.error();
            else if (!answer->is_integer())
                r = make_error_code(errc::error_reply);
            else
                r = answer->integer;
        } else if (opts.sharded) {
            r = co_await t.shards.front()->cmd.spublish(o.channel, o.envelope);
        } else {
            r = co_await t.shards.front()->cmd.publish(o.channel, o.envelope);
        }
        if (r) {
            ++st.published;
            co_return;
        }
        ++st.lost_publishes;
        if (r.error() != make_error_code(errc::error_reply))
            link.request_stop(); // the link broke under it
    }

    core::task<void> publisher(topology& t, core::task_scope& link) {
        for (;;) {
            if (queue.empty()) {
                queue_ready.reset();
                auto w = co_await queue_ready.wait();
                if (!w)
                    break;
                continue;
            }
            // A window of publishes in flight: each queues its command as it starts, in order.
            core::task_scope batch(link.token());
            for (std::size_t n = 0; n < publish_window && !queue.empty(); ++n) {
                outgoing o = std::move(queue.front());
                queue.pop_front();
                queued_bytes -= o.envelope.size();
                batch.spawn(publish_one(t, std::move(o), link));
            }
            co_await batch.join();
            if (link.token().stop_requested())
                break;
        }
        link.request_stop();
    }

    /// (Un)subscribes `channels` (sharded in a cluster: one channel, or several of one slot) on
    /// the subscriber of shard `on`, or of the shard that owns them; returns the shard's index.
    core::task<core::result<std::uint16_t>> change(topology& t, bool add,
                                                   std::vector<std::string> channels,
                                                   std::optional<std::uint16_t> on) {
        if (!on)
            on = t.owner_of(channels.front());
        if (!on || *on >= t.shards.size()) {
            t.mark_stale();
            co_return make_error_code(errc::closed);
        }
        shard* s = t.shards[*on].get();
        core::result<void> r = make_error_code(errc::closed);
        if (opts.sharded && add)
            r = co_await s->sub.ssubscribe(std::move(channels));
        else if (opts.sharded)
            r = co_await s->sub.sunsubscribe(std::move(channels));
        else if (add)
            r = co_await s->sub.subscribe(std::move(channels));
        else
            r = co_await s->sub.unsubscribe(std::move(channels));
        if (!r) {
            // Refused in a cluster: most likely MOVED (the slot moved since the map was read).
            if (t.clustered() && r.error() == make_error_code(errc::error_reply))
                t.want_refresh(*on);
            co_return r.error();
        }
        co_return *on;
    }

    /// (Un)subscribes one batch of rooms; false when a call failed (`why` tells how).
    core::task<bool> change_rooms(topology& t, bool add, std::vector<std::string>& rooms_,
                                  std::error_code& why) {
        // Sharded: one shard channel per call (a cluster wants one slot per command).
        const std::size_t step = opts.sharded ? 1 : 256;
        for (std::size_t i = 0; i < rooms_.size(); i += step) {
            const std::size_t end = std::min(rooms_.size(), i + step);
            std::vector<std::string> channels;
            for (std::size_t k = i; k < end; ++k)
                channels.push_back(channel_of(rooms_[k]));
            // Joining: the slot's owner, noted while in flight (a drop meanwhile cancels it).
            // Leaving: where it was subscribed. Sharded, one channel per call: one shard.
            std::optional<std::uint16_t> on;
            if (add) {
                on = t.owner_of(channels.front());
                for (std::size_t k = i; k < end && on; ++k)
                    subscribing.insert_or_assign(rooms_[k], *on);
            } else {
                auto it = subscribed.find(rooms_[i]);
                if (it != subscribed.end())
                    on = it->second;
            }
            auto r = co_await change(t, add, std::move(channels), on);
            for (std::size_t k = i; k < end; ++k) {
                if (!add) {
                    if (r)
                        subscribed.erase(rooms_[k]);
                    continue;
                }
                auto it = subscribing.find(rooms_[k]);
                // Recorded only if the shard still owns it and did not drop it meanwhile.
                const bool holds = r && it != subscribing.end() && it->second == *r &&
                                   t.owner_of(channel_of(rooms_[k])) == *r;
                if (it != subscribing.end())
                    subscribing.erase(it);
                if (holds)
                    subscribed.insert_or_assign(rooms_[k], *r);
                else if (r)
                    subs_changed.set(); // subscribe it again where it is now
            }
            if (!r) {
                why = r.error();
                co_return false;
            }
        }
        co_return true;
    }

    core::task<void> subscriptions(topology& t, core::task_scope& link) {
        // The map's generation at the last refusal: a second one on the same map ends the link.
        std::optional<std::uint64_t> refused_on;
        for (;;) {
            std::error_code why;
            bool ok = true;
            // The unicast channel, for as long as the link lives.
            if (!unicast_on) {
                std::vector<std::string> channels{unicast_channel()};
                unicast_subscribing = t.owner_of(unicast_channel());
                auto r = co_await change(t, true, std::move(channels), unicast_subscribing);
                ok = static_cast<bool>(r);
                if (ok && unicast_subscribing == *r && t.owner_of(unicast_channel()) == *r)
                    unicast_on = *r; // else dropped or moved meanwhile: the next round again
                if (!ok)
                    why = r.error();
                unicast_subscribing.reset();
            }
            std::vector<std::string> add;
            std::vector<std::string> drop;
            for (const std::string& r : rooms)
                if (subscribed.count(r) == 0)
                    add.push_back(r);
            for (const auto& entry : subscribed)
                if (rooms.count(entry.first) == 0)
                    drop.push_back(entry.first);
            if (ok && add.empty() && drop.empty()) {
                subs_changed.reset();
                auto w = co_await subs_changed.wait();
                if (!w)
                    break;
                continue;
            }
            if (ok)
                ok = co_await change_rooms(t, true, add, why);
            if (ok)
                ok = co_await change_rooms(t, false, drop, why);
            if (ok)
                continue;
            // Refused in a cluster: change() asked for the map again. Retry once it is read;
            // refused again on the same map, give up the link.
            if (!t.clustered() || why != make_error_code(errc::error_reply) ||
                refused_on == t.generation)
                break;
            refused_on = t.generation;
            bool stopped = false;
            while (!stopped && (t.refresh_wanted || t.refreshing)) {
                subs_changed.reset();
                auto w = co_await subs_changed.wait();
                stopped = !w;
            }
            if (stopped)
                break;
        }
        link.request_stop();
    }

    /// Shard `from` dropped a shard channel by itself: its slot moved. If that is where the
    /// channel is subscribed (or being subscribed), forget the subscription and read the map
    /// (then it is subscribed again on its new owner); a drop by a shard it already left
    /// changes nothing.
    void dropped(topology& t, std::uint16_t from, const std::string& channel) {
        if (channel == unicast_channel()) {
            if (unicast_on == from)
                unicast_on.reset();
            else if (unicast_subscribing == from)
                unicast_subscribing = topology::no_shard;
            else
                return;
        } else {
            if (channel.size() < opts.channel_prefix.size() ||
                channel.compare(0, opts.channel_prefix.size(), opts.channel_prefix) != 0)
                return;
            const std::string_view room =
                std::string_view(channel).substr(opts.channel_prefix.size());
            auto it = subscribed.find(room);
            auto pending = subscribing.find(room);
            if (it != subscribed.end() && it->second == from)
                subscribed.erase(it);
            else if (pending != subscribing.end() && pending->second == from)
                pending->second = topology::no_shard;
            else
                return;
        }
        if (t.clustered())
            t.want_refresh(from);
        else
            subs_changed.set();
    }

    /// What reading the map again found.
    enum class refreshed { done, stale, broken };

    /// Reads the cluster's map again and applies it in place: the rooms whose slot changed
    /// owner are subscribed again on the new one. Asks `t.refresh_first` first, then the other
    /// masters, until one has a map that differs (a master can lag behind a change): `done`
    /// also when none does. `stale` when a map names a master this link has no connection to,
    /// or an answer makes no sense (rebuild the link); `broken` when no master answered.
    core::task<refreshed> refresh(topology& t) {
        bool answered = false;
        for (std::size_t n = 0; n < t.shards.size(); ++n) {
            const std::size_t i = (t.refresh_first + n) % t.shards.size();
            const std::string_view args[] = {"CLUSTER", "SLOTS"};
            auto r = co_await t.shards[i]->cmd.command(args);
            if (!r)
                continue; // that connection failed: its tasks end the link
            answered = true;
            if (r->is_error())
                co_return refreshed::stale;
            auto owners = parse_slots(*r, t.shards[i]->host);
            if (!owners)
                co_return refreshed::stale;
            auto fresh = slot_table(*owners, t);
            if (!fresh)
                co_return refreshed::stale;
            if (*fresh == t.owner)
                continue;
            // Channels subscribed on a shard that no longer owns them: their old owner dropped
            // them (or will; that drop is then ignored). Subscribe them on the new one.
            auto elsewhere = [&fresh](const std::string& channel, std::uint16_t on) {
                return (*fresh)[key_slot(channel)] != on;
            };
            for (auto it = subscribed.begin(); it != subscribed.end();)
                it = elsewhere(channel_of(it->first), it->second) ? subscribed.erase(it)
                                                                  : std::next(it);
            if (unicast_on && elsewhere(unicast_channel(), *unicast_on))
                unicast_on.reset();
            t.owner = std::move(*fresh);
            ++t.generation;
            ++st.topology_changes;
            co_return refreshed::done;
        }
        co_return answered ? refreshed::done : refreshed::broken;
    }

    core::task<void> refresher(topology& t, core::task_scope& link) {
        for (;;) {
            if (!t.refresh_wanted) {
                t.refresh_ready.reset();
                auto w = co_await t.refresh_ready.wait();
                if (!w)
                    break;
                continue;
            }
            t.refresh_wanted = false;
            t.refreshing = true;
            const refreshed found = co_await refresh(t);
            t.refreshing = false;
            subs_changed.set();
            if (found == refreshed::stale)
                t.mark_stale();
            if (found != refreshed::done)
                break;
        }
        link.request_stop();
    }

    core::task<void> reader(std::uint16_t index, topology& t, core::task_scope& link) {
        subscriber& s = t.shards[index]->sub;
        for (;;) {
            auto m = co_await s.next();
            if (!m)
                break;
            if (m->dropped)
                dropped(t, index, m->channel);
            else
                receive(*m);
        }
        link.request_stop();
    }

    static std::int64_t wall_ms() {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }

    /// One write of this process's room sizes: HSET the rooms it has, HDEL those it no longer
    /// has, refresh the hash's expiry and this origin's entry among the live ones.
    core::task<outcome> write_sizes(topology& t) {
        const std::string key = sizes_key(std::to_string(origin));
        const std::int64_t ttl = 3 * std::max<std::int64_t>(opts.size_interval.count(), 1);
        std::vector<std::string> set{"HSET", key};
        for (const std::string& r : rooms) {
            set.push_back(r);
            set.push_back(std::to_string(hub->room_size(r)));
        }
        std::vector<std::string> gone{"HDEL", key};
        for (const std::string& r : sizes_written)
            if (rooms.count(r) == 0)
                gone.push_back(r);
        // Each outcome in a variable: see sizes() about g++ 12 and `!co_await`.
        if (set.size() > 2) {
            const outcome o = co_await routed_ok(t, key, set);
            if (o != outcome::done)
                co_return o;
        }
        if (gone.size() > 2) {
            const outcome o = co_await routed_ok(t, key, gone);
            if (o != outcome::done)
                co_return o;
        }
        sizes_written = rooms;
        const std::int64_t now = wall_ms();
        const std::string origins = origins_key();
        // Vectors built first: g++ 12 cannot compile a braced list inside `co_await`.
        const std::vector<std::string> expire{"PEXPIRE", key, std::to_string(ttl)};
        const std::vector<std::string> add{"ZADD", origins, std::to_string(now + ttl),
                                           std::to_string(origin)};
        const std::vector<std::string> prune{"ZREMRANGEBYSCORE", origins, "-inf",
                                             std::to_string(now)};
        const outcome expiring = co_await routed_ok(t, key, expire);
        const outcome live = co_await routed_ok(t, origins, add);
        const outcome pruned = co_await routed_ok(t, origins, prune);
        co_return std::max({expiring, live, pruned}); // the worst of the three
    }

    core::task<void> sizes(topology& t, core::task_scope& link) {
        // Not `if (!co_await write_sizes(c)) break;`: g++ 12 compiled that into a task that
        // never saw the link's stop (the backplane's run() then never returned).
        sizes_written.clear(); // the hash may be gone (expired, Redis restarted): write it all
        bool stopped = false;
        while (!stopped) {
            // Refused (an ACL, a full Redis, a slot migrating to a node the link does not
            // know): written again next time.
            const outcome written = co_await write_sizes(t);
            if (written == outcome::broken)
                break;
            auto slept = co_await core::sleep_for(opts.size_interval);
            stopped = !slept;
        }
        if (!stopped)
            link.request_stop(); // the link broke
    }

    /// Runs the servers of one link until one of them fails, the map goes stale or the caller
    /// stops.
    core::task<void> serve_link(topology& t) {
        core::stop_token parent = co_await core::get_stop_token();
        core::task_scope link(parent);
        t.link = &link;
        for (std::size_t i = 0; i < t.shards.size(); ++i)
            link.spawn(reader(static_cast<std::uint16_t>(i), t, link));
        link.spawn(subscriptions(t, link));
        if (t.clustered())
            link.spawn(refresher(t, link));
        link.spawn(publisher(t, link));
        if (opts.size_interval.count() > 0)
            link.spawn(sizes(t, link));
        co_await link.join();
        t.link = nullptr;
    }

    /// `where` with another TCP (or TLS) address: a node of the cluster.
    url node_url(const std::string& host, std::uint16_t port) const {
        url u = where;
        if (u.transport == url::transport_kind::unix_socket) {
            u.transport = url::transport_kind::tcp;
            u.path.clear();
        }
        u.host = host;
        u.port = port;
        return u;
    }

    /// The servers of a new link. Connects to `where` (or, when that fails, to a node of the
    /// last cluster map). Sharded, it asks that server for the cluster's map (CLUSTER SLOTS)
    /// and connects to every master; a server that is not in a cluster (its error reply) is
    /// the only one, as without `sharded`.
    core::task<core::result<std::shared_ptr<topology>>> connect_link() {
        std::vector<url> seeds{where};
        seeds.insert(seeds.end(), known_nodes.begin(), known_nodes.end());
        std::error_code failure = make_error_code(errc::closed);
        for (const url& seed : seeds) {
            auto c = co_await connection::connect(seed, opts.redis);
            if (!c) {
                failure = c.error();
                continue;
            }
            std::optional<std::vector<slot_owner>> owners;
            if (opts.sharded) {
                auto slots = co_await c->command("CLUSTER", "SLOTS");
                if (!slots) {
                    failure = slots.error();
                    continue;
                }
                if (!slots->is_error()) {
                    owners = parse_slots(*slots, seed.host);
                    if (!owners || owners->empty() || owners->size() >= topology::no_shard) {
                        failure = make_error_code(errc::protocol_error);
                        continue;
                    }
                }
            }
            auto t = std::make_shared<topology>();
            if (!owners) {
                auto sub = co_await subscriber::connect(seed, opts.redis);
                if (!sub) {
                    failure = sub.error();
                    continue;
                }
                auto one = std::make_unique<shard>();
                one->host = seed.host;
                one->cmd = std::move(*c);
                one->sub = std::move(*sub);
                t->shards.push_back(std::move(one));
                co_return t;
            }
            c->close();
            std::vector<url> nodes;
            for (const slot_owner& o : *owners) {
                const url u = node_url(o.host, o.port);
                auto cmd = co_await connection::connect(u, opts.redis);
                core::result<subscriber> sub = make_error_code(errc::closed);
                if (cmd)
                    sub = co_await subscriber::connect(u, opts.redis);
                if (!cmd || !sub) {
                    failure = !cmd ? cmd.error() : sub.error();
                    break;
                }
                auto node = std::make_unique<shard>();
                node->host = o.host;
                node->address = o.address();
                node->cmd = std::move(*cmd);
                node->sub = std::move(*sub);
                t->shards.push_back(std::move(node));
                nodes.push_back(u);
            }
            if (t->shards.size() != owners->size())
                continue;
            auto table = slot_table(*owners, *t);
            if (!table) {
                failure = make_error_code(errc::protocol_error);
                continue;
            }
            t->owner = std::move(*table);
            known_nodes = std::move(nodes);
            co_return t;
        }
        co_return failure;
    }
};

} // namespace detail

redis_backplane::redis_backplane(ws::hub& h, url where, backplane_options opts)
    : impl_(std::make_unique<detail::backplane_impl>(h, std::move(where), std::move(opts))) {
    h.set_backplane(this);
}

redis_backplane::redis_backplane(ws::hub& h, url where)
    : redis_backplane(h, std::move(where), backplane_options{}) {}

redis_backplane::~redis_backplane() {
    if (impl_->hub->current_backplane() == this)
        impl_->hub->set_backplane(nullptr);
}

core::task<void> redis_backplane::run() {
    detail::backplane_impl& d = *impl_;
    const core::stop_token tok = co_await core::get_stop_token();
    std::chrono::milliseconds wait = d.opts.reconnect_min;
    bool failed_before = false;
    while (!tok.stop_requested()) {
        auto t = co_await d.connect_link();
        bool moved = false;
        if (t) {
            wait = d.opts.reconnect_min;
            ++d.st.connects;
            if (failed_before)
                ++d.st.reconnects;
            d.link_up = true;
            d.subscribed.clear();
            d.subs_changed.set();
            d.topo = *t;
            co_await d.serve_link(**t);
            moved = (*t)->stale;
            d.topo.reset();
            d.link_up = false;
            d.unicast_on.reset();
            d.subscribed.clear();
            d.drop_queue();
            for (const auto& s : (*t)->shards)
                s->sub.close();
        }
        if (tok.stop_requested())
            break;
        if (moved) {
            // The cluster's map changed (a slot moved): not a failure, but still a short wait,
            // so that a cluster in the middle of a change is not asked in a tight loop.
            ++d.st.topology_changes;
        } else {
            ++d.st.failures;
            failed_before = true;
        }
        (void)co_await core::sleep_for(d.jittered(wait));
        wait = std::min(wait * 2, d.opts.reconnect_max);
    }
    d.link_up = false;
    d.unicast_on.reset();
    d.subscribed.clear();
    d.drop_queue();
}

backplane_stats redis_backplane::stats() const noexcept {
    backplane_stats s = impl_->st;
    s.connected = impl_->link_up;
    s.rooms = impl_->rooms.size();
    s.queued = impl_->queue.size();
    s.shards = impl_->topo ? impl_->topo->shards.size() : 0;
    return s;
}

std::uint64_t redis_backplane::origin() const noexcept {
    return impl_->origin;
}

bool redis_backplane::subscribed(std::string_view room) const noexcept {
    return impl_->subscribed.find(room) != impl_->subscribed.end();
}

std::string redis_backplane::channel_of(std::string_view room) const {
    return impl_->channel_of(room);
}

void redis_backplane::room_opened(std::string_view room) {
    impl_->rooms.emplace(room);
    impl_->subs_changed.set();
}

void redis_backplane::room_closed(std::string_view room) {
    detail::backplane_impl& d = *impl_;
    auto it = d.rooms.find(room);
    if (it == d.rooms.end())
        return;
    d.sent_seq.erase(*it);
    d.seen.erase(*it);
    d.rooms.erase(it);
    d.subs_changed.set();
}

bool redis_backplane::send_to(std::uint64_t id, ws::opcode type,
                              std::span<const std::byte> payload) {
    ++impl_->st.unicasts;
    impl_->enqueue(impl_->unicast_channel(), type, id, payload);
    return true;
}

core::task<core::result<std::size_t>> redis_backplane::cluster_room_size(std::string room) {
    detail::backplane_impl& d = *impl_;
    const std::shared_ptr<detail::topology> t = d.topo;
    if (!t)
        co_return make_error_code(errc::closed);
    const std::string origins = d.origins_key();
    const std::string now = std::to_string(detail::backplane_impl::wall_ms());
    const std::string_view range[] = {"ZRANGEBYSCORE", origins, now, "+inf"};
    auto live = co_await d.routed(*t, origins, range);
    if (!live)
        co_return live.error();
    if (!live->is_array())
        co_return make_error_code(errc::error_reply);
    // This process's own count is exact now; the others' are as fresh as their last write.
    std::size_t total = d.hub->room_size(room);
    const std::string self = std::to_string(d.origin);
    for (const reply& o : live->elements) {
        if (!o.is_string() || o.str == self)
            continue;
        const std::string key = d.sizes_key(o.str);
        const std::string_view get[] = {"HGET", key, room};
        auto n = co_await d.routed(*t, key, get);
        if (!n)
            co_return n.error();
        if (n->is_error())
            co_return make_error_code(errc::error_reply);
        if (n->is_string())
            total += static_cast<std::size_t>(std::strtoull(n->str.c_str(), nullptr, 10));
    }
    co_return total;
}

void redis_backplane::publish(std::string_view room, ws::opcode type,
                              std::span<const std::byte> payload) {
    detail::backplane_impl& d = *impl_;
    // The sequence advances for every broadcast, lost or not: receivers see what they missed.
    auto seq_it = d.sent_seq.find(room);
    if (seq_it == d.sent_seq.end()) {
        // Rooms without local members keep a counter too; forget those now and then.
        if (d.sent_seq.size() >= 4 * d.rooms.size() + 1024) {
            for (auto i = d.sent_seq.begin(); i != d.sent_seq.end();)
                i = d.rooms.count(i->first) == 0 ? d.sent_seq.erase(i) : std::next(i);
        }
        seq_it = d.sent_seq.emplace(std::string(room), 0).first;
    }
    const std::uint64_t seq = ++seq_it->second;
    d.enqueue(d.channel_of(room), type, seq, payload);
}

} // namespace coronet::ws_redis
