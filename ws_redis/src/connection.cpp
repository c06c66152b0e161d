#include <coronet/ws_redis/connection.hpp>

#include "resp.hpp"
#include "resp_link.hpp"

#include <coronet/core/async_event.hpp>
#include <coronet/core/error.hpp>
#include <coronet/core/timer.hpp>

#include <algorithm>
#include <deque>
#include <utility>

namespace coronet::ws_redis {

namespace detail {

/// A caller's place in the reply order; lives in the caller's frame.
struct reply_slot {
    core::async_event ready;
    bool done = false;
    core::result<reply> value{errc::closed};
};

struct connection_impl {
    explicit connection_impl(std::unique_ptr<resp_link> l) : link(std::move(l)) {}

    std::unique_ptr<resp_link> link;
    /// Callers waiting for replies, in the order their commands were queued; null for a caller
    /// that left (its reply is read and dropped).
    std::deque<reply_slot*> pending;

    void complete(reply_slot& s, core::result<reply> v) {
        s.value = std::move(v);
        s.done = true;
        s.ready.set();
    }

    void fail(std::error_code ec) {
        link->fail(ec);
        for (reply_slot* s : pending) {
            if (s != nullptr)
                complete(*s, link->error());
        }
        pending.clear();
    }

    // A caller that stops waiting keeps its place in the reply order, empty.
    void leave(reply_slot& s) {
        std::replace(pending.begin(), pending.end(), &s, static_cast<reply_slot*>(nullptr));
    }

    // Whoever reads next: the first caller still waiting, woken to take the reader role.
    void hand_over_reading() {
        for (reply_slot* s : pending) {
            if (s != nullptr) {
                s->ready.set();
                return;
            }
        }
    }

    // Hands every complete reply to its caller, in order.
    void deliver() {
        for (;;) {
            auto parsed = link->parse();
            if (!parsed) {
                fail(parsed.error());
                return;
            }
            if (!*parsed)
                return;
            if (pending.empty()) {
                fail(errc::protocol_error); // a reply nobody asked for
                return;
            }
            reply_slot* s = pending.front();
            pending.pop_front();
            if (s != nullptr)
                complete(*s, std::move(**parsed));
        }
    }

    core::task<core::result<reply>> drive(reply_slot& s);
    core::task<core::result<reply>> run(std::string encoded);
};

core::task<core::result<reply>> connection_impl::drive(reply_slot& s) {
    for (;;) {
        if (s.done)
            co_return std::move(s.value);
        if (link->failed())
            co_return link->error();
        if (link->has_queued() && !link->writing()) {
            auto flushed = co_await link->flush();
            if (!flushed)
                fail(flushed.error());
            continue;
        }
        if (!link->reading()) {
            auto more = co_await link->read_more();
            if (!more) {
                if (more.error() == core::errc::operation_canceled && !link->stopped()) {
                    leave(s);
                    hand_over_reading(); // our caller gave up; the next one reads
                    co_return more.error();
                }
                fail(more.error());
                continue;
            }
            deliver();
            if (!s.done)
                continue;
            hand_over_reading();
            continue;
        }
        s.ready.reset();
        auto woken = co_await s.ready.wait();
        if (!woken)
            co_return woken.error();
    }
}

core::task<core::result<reply>> connection_impl::run(std::string encoded) {
    if (link->failed())
        co_return link->error();
    reply_slot slot;
    pending.push_back(&slot);
    link->queue(encoded);
    auto waited = co_await core::with_timeout(link->opts().command_timeout, drive(slot));
    if (!slot.done) {
        // Cancelled or timed out before the reply: keep the place, drop the reply later.
        leave(slot);
        if (!waited && waited.error() == core::errc::timed_out)
            fail(core::errc::timed_out);
    }
    co_return waited;
}

} // namespace detail

namespace {

core::task<core::result<reply>> failed_with(std::error_code ec) {
    co_return ec;
}

} // namespace

connection::connection() noexcept = default;
connection::connection(std::unique_ptr<detail::connection_impl> impl) noexcept
    : impl_(std::move(impl)) {}
connection::connection(connection&& o) noexcept = default;
connection& connection::operator=(connection&& o) noexcept = default;
connection::~connection() = default;

core::task<core::result<connection>> connection::connect(url where, options opts) {
    auto link = co_await detail::open_link(std::move(where), opts);
    if (!link)
        co_return link.error();
    co_return connection(std::make_unique<detail::connection_impl>(std::move(*link)));
}

core::task<core::result<connection>> connection::connect(url where) {
    options opts;
    co_return co_await connect(std::move(where), opts);
}

core::task<core::result<reply>> connection::command(std::span<const std::string_view> args) {
    std::string encoded = detail::encode_command(args);
    if (encoded.empty())
        return failed_with(errc::invalid_argument);
    return queue_and_wait(std::move(encoded));
}

core::task<core::result<reply>> connection::command(const std::vector<std::string>& args) {
    std::vector<std::string_view> views(args.begin(), args.end());
    std::string encoded = detail::encode_command(views);
    if (encoded.empty())
        return failed_with(errc::invalid_argument);
    return queue_and_wait(std::move(encoded));
}

core::task<core::result<reply>> connection::queue_and_wait(std::string encoded) {
    if (!impl_)
        co_return make_error_code(errc::closed);
    co_return co_await impl_->run(std::move(encoded));
}

core::task<core::result<std::int64_t>> connection::integer_of(std::string encoded) {
    auto r = co_await queue_and_wait(std::move(encoded));
    if (!r)
        co_return r.error();
    if (r->is_error())
        co_return make_error_code(errc::error_reply);
    if (!r->is_integer())
        co_return make_error_code(errc::protocol_error);
    co_return r->integer;
}

core::task<core::result<std::int64_t>> connection::publish(std::string_view channel,
                                                           std::string_view message) {
    std::string_view args[] = {"PUBLISH", channel, message};
    return integer_of(detail::encode_command(args));
}

core::task<core::result<std::int64_t>> connection::spublish(std::string_view channel,
                                                            std::string_view message) {
    std::string_view args[] = {"SPUBLISH", channel, message};
    return integer_of(detail::encode_command(args));
}

bool connection::is_open() const noexcept {
    return impl_ && !impl_->link->failed();
}

std::error_code connection::error() const noexcept {
    if (!impl_)
        return make_error_code(errc::closed);
    return impl_->link->error();
}

void connection::close() noexcept {
    if (impl_)
        impl_->link->close();
}

} // namespace coronet::ws_redis
