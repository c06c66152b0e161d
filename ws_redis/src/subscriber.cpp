#include <coronet/ws_redis/subscriber.hpp>

#include "resp.hpp"
#include "resp_link.hpp"

#include <coronet/core/async_event.hpp>
#include <coronet/core/error.hpp>
#include <coronet/core/timer.hpp>

#include <algorithm>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coronet::ws_redis {

namespace detail {

/// A (un)subscribe call waiting for the server to confirm each channel it named; lives in the
/// caller's frame.
struct confirmation {
    bool done = false;
    core::result<void> value{make_error_code(errc::closed)};
};

/// What the server still owes one (un)subscribe command.
struct owed {
    confirmation* caller;  ///< null once the caller left (the confirmations are still read)
    std::string kind;      ///< the push kind that confirms: "subscribe", "sunsubscribe"...
    std::size_t remaining; ///< channels not confirmed yet
    /// SUNSUBSCRIBE: the channels not confirmed yet (a `sunsubscribe` push for another channel
    /// is the server dropping it by itself).
    std::vector<std::string> channels;
};

struct subscriber_impl {
    explicit subscriber_impl(std::unique_ptr<resp_link> l) : link(std::move(l)) {}

    std::unique_ptr<resp_link> link;
    /// Confirmations owed, in the order the commands were queued.
    std::deque<owed> pending;
    std::deque<message> messages;
    /// Set whenever something a waiter may be waiting for happened: a confirmation, a message,
    /// the reader role given up, a failure. Few coroutines wait on one subscriber.
    core::async_event progress;

    void fail(std::error_code ec) {
        link->fail(ec);
        for (owed& o : pending) {
            if (o.caller != nullptr) {
                o.caller->value = link->error();
                o.caller->done = true;
            }
        }
        pending.clear();
        progress.set();
    }

    // The oldest command got a confirmation (or, with `refused`, an error reply: Redis refuses
    // a whole command with one error).
    void confirm(std::error_code refused) {
        if (pending.empty()) {
            fail(make_error_code(errc::protocol_error)); // nothing was asked
            return;
        }
        owed& o = pending.front();
        bool complete = refused || --o.remaining == 0;
        if (!complete)
            return;
        if (o.caller != nullptr) {
            o.caller->value = refused ? core::result<void>(refused) : core::result<void>();
            o.caller->done = true;
        }
        pending.pop_front();
        progress.set();
    }

    // One push: a message, a confirmation, or an error reply to the oldest call.
    void take(reply r) {
        if (r.is_error()) {
            confirm(make_error_code(errc::error_reply));
            return;
        }
        if (!r.is_array() || r.elements.size() < 3 || !r.elements[0].is_string()) {
            fail(make_error_code(errc::protocol_error));
            return;
        }
        std::string_view kind = r.elements[0].str;
        if (kind == "message" || kind == "smessage") {
            if (messages.size() >= link->opts().max_queued_messages) {
                fail(make_error_code(errc::queue_overflow));
                return;
            }
            message m;
            m.channel = std::move(r.elements[1].str);
            m.payload = std::move(r.elements[2].str);
            m.sharded = kind == "smessage";
            messages.push_back(std::move(m));
            progress.set();
            return;
        }
        if (kind == "subscribe" || kind == "unsubscribe" || kind == "ssubscribe" ||
            kind == "sunsubscribe") {
            if (kind == "sunsubscribe" && !answers_sunsubscribe(r.elements[1].str)) {
                // A shard channel the server dropped by itself: its cluster slot moved.
                if (messages.size() >= link->opts().max_queued_messages) {
                    fail(make_error_code(errc::queue_overflow));
                    return;
                }
                message m;
                m.channel = std::move(r.elements[1].str);
                m.sharded = true;
                m.dropped = true;
                messages.push_back(std::move(m));
                progress.set();
                return;
            }
            if (pending.empty() || pending.front().kind != kind) {
                fail(make_error_code(errc::protocol_error));
                return;
            }
            confirm(std::error_code());
            return;
        }
        // pmessage/psubscribe and later push kinds: not used by this client.
    }

    /// True when a `sunsubscribe` push for `channel` confirms the oldest call (a SUNSUBSCRIBE
    /// that named it), which then stops waiting for it.
    bool answers_sunsubscribe(const std::string& channel) {
        if (pending.empty() || pending.front().kind != "sunsubscribe")
            return false;
        auto& left = pending.front().channels;
        auto it = std::find(left.begin(), left.end(), channel);
        if (it == left.end())
            return false;
        left.erase(it);
        return true;
    }

    void deliver() {
        for (;;) {
            auto parsed = link->parse();
            if (!parsed) {
                fail(parsed.error());
                return;
            }
            if (!*parsed)
                return;
            take(std::move(**parsed));
            if (link->failed())
                return;
        }
    }

    // One step toward whatever the caller waits for: write what is queued, read once, or wait
    // for whoever holds those roles. Errors: the caller's cancellation only (a failure of the
    // link is reported through link->error()).
    core::task<core::result<void>> step() {
        if (link->has_queued() && !link->writing()) {
            auto flushed = co_await link->flush();
            if (!flushed)
                fail(flushed.error());
            co_return core::result<void>();
        }
        if (!link->reading()) {
            auto more = co_await link->read_more();
            if (!more) {
                if (more.error() == core::errc::operation_canceled && !link->stopped()) {
                    progress.set(); // the reader role is free again
                    co_return more.error();
                }
                fail(more.error());
                co_return core::result<void>();
            }
            deliver();
            co_return core::result<void>();
        }
        progress.reset();
        co_return co_await progress.wait();
    }

    core::task<core::result<void>> await_confirmation(confirmation& c) {
        for (;;) {
            if (c.done)
                co_return std::move(c.value);
            if (link->failed())
                co_return link->error();
            auto stepped = co_await step();
            if (!stepped)
                co_return stepped.error();
        }
    }

    core::task<core::result<void>> change(std::string encoded, std::string kind,
                                          std::vector<std::string> channels) {
        if (link->failed())
            co_return link->error();
        confirmation c;
        const std::size_t n = channels.size();
        if (kind != "sunsubscribe")
            channels.clear();
        pending.push_back(owed{&c, std::move(kind), n, std::move(channels)});
        link->queue(encoded);
        auto waited =
            co_await core::with_timeout(link->opts().command_timeout, await_confirmation(c));
        if (!c.done) {
            for (owed& o : pending) {
                if (o.caller == &c)
                    o.caller = nullptr;
            }
            if (!waited && waited.error() == core::errc::timed_out)
                fail(core::errc::timed_out);
        }
        co_return waited;
    }

    core::task<core::result<message>> next() {
        for (;;) {
            if (!messages.empty()) {
                message m = std::move(messages.front());
                messages.pop_front();
                co_return m;
            }
            if (link->failed())
                co_return link->error();
            auto stepped = co_await step();
            if (!stepped)
                co_return stepped.error();
        }
    }
};

} // namespace detail

subscriber::subscriber() noexcept = default;
subscriber::subscriber(std::unique_ptr<detail::subscriber_impl> impl) noexcept
    : impl_(std::move(impl)) {}
subscriber::subscriber(subscriber&& o) noexcept = default;
subscriber& subscriber::operator=(subscriber&& o) noexcept = default;
subscriber::~subscriber() = default;

core::task<core::result<subscriber>> subscriber::connect(url where, options opts) {
    auto link = co_await detail::open_link(std::move(where), opts);
    if (!link)
        co_return link.error();
    co_return subscriber(std::make_unique<detail::subscriber_impl>(std::move(*link)));
}

core::task<core::result<subscriber>> subscriber::connect(url where) {
    options opts;
    co_return co_await connect(std::move(where), opts);
}

core::task<core::result<void>> subscriber::change(const char* verb,
                                                  std::vector<std::string> channels) {
    if (!impl_)
        co_return make_error_code(errc::closed);
    if (channels.empty())
        co_return make_error_code(errc::invalid_argument);
    std::vector<std::string_view> args{verb};
    args.insert(args.end(), channels.begin(), channels.end());
    std::string kind(verb);
    std::transform(kind.begin(), kind.end(), kind.begin(),
                   [](char ch) { return static_cast<char>(ch - 'A' + 'a'); });
    std::string encoded = detail::encode_command(args);
    co_return co_await impl_->change(std::move(encoded), std::move(kind), std::move(channels));
}

core::task<core::result<void>> subscriber::subscribe(std::vector<std::string> channels) {
    return change("SUBSCRIBE", std::move(channels));
}

core::task<core::result<void>> subscriber::unsubscribe(std::vector<std::string> channels) {
    return change("UNSUBSCRIBE", std::move(channels));
}

core::task<core::result<void>> subscriber::ssubscribe(std::vector<std::string> channels) {
    return change("SSUBSCRIBE", std::move(channels));
}

core::task<core::result<void>> subscriber::sunsubscribe(std::vector<std::string> channels) {
    return change("SUNSUBSCRIBE", std::move(channels));
}

core::task<core::result<message>> subscriber::next() {
    if (!impl_)
        co_return make_error_code(errc::closed);
    co_return co_await impl_->next();
}

std::size_t subscriber::queued() const noexcept {
    return impl_ ? impl_->messages.size() : 0;
}

bool subscriber::is_open() const noexcept {
    return impl_ && !impl_->link->failed();
}

std::error_code subscriber::error() const noexcept {
    if (!impl_)
        return make_error_code(errc::closed);
    return impl_->link->error();
}

void subscriber::close() noexcept {
    if (impl_)
        impl_->link->close();
}

} // namespace coronet::ws_redis
