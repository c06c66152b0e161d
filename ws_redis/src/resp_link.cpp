#include "resp_link.hpp"

#include <coronet/core/buffer.hpp>
#include <coronet/core/connect.hpp>
#include <coronet/core/endpoint.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/tls.hpp>
#include <coronet/core/with_stop.hpp>
#include <coronet/ws_redis/error.hpp>

#include <string_view>
#include <utility>
#include <vector>

namespace coronet::ws_redis::detail {

namespace {
constexpr std::size_t read_chunk = 16 * 1024;
}

resp_link::resp_link(core::stream_ptr stream, const options& opts)
    : stream_(std::move(stream)), opts_(opts), reader_(opts.max_reply_bytes),
      in_(std::make_unique<std::byte[]>(read_chunk)) {
    opts_.tls = nullptr; // only connect uses it, and it need not outlive that call
}

resp_link::~resp_link() = default;

void resp_link::fail(std::error_code ec) noexcept {
    if (!error_)
        error_ = ec;
    io_stop_.request_stop();
}

void resp_link::close() noexcept {
    if (stream_)
        stream_->close();
    fail(errc::closed);
}

core::task<core::result<void>> resp_link::write_queued() {
    co_return co_await stream_->write_all(core::as_bytes(sending_));
}

core::task<core::result<void>> resp_link::flush() {
    writing_ = true;
    while (!out_.empty() && !failed()) {
        sending_.clear();
        sending_.swap(out_);
        auto write = core::with_timeout(opts_.command_timeout, write_queued());
        write.handle().promise().set_token(io_stop_.token());
        auto written = co_await std::move(write);
        if (!written) {
            fail(written.error());
            break;
        }
    }
    writing_ = false;
    sending_.clear();
    if (failed())
        co_return error_;
    co_return core::result<void>();
}

core::task<core::result<void>> resp_link::receive_and_feed() {
    auto n = co_await stream_->read_some(core::mutable_buffer{in_.get(), read_chunk});
    if (!n)
        co_return n.error();
    co_return reader_.feed(std::span<const std::byte>(in_.get(), *n));
}

core::task<core::result<void>> resp_link::read_more() {
    if (failed())
        co_return error_;
    reading_ = true;
    auto fed = co_await core::with_stop(io_stop_.token(), receive_and_feed());
    reading_ = false;
    if (failed())
        co_return error_;
    co_return fed;
}

namespace {

core::task<core::result<core::stream_ptr>> open_stream(url where, const core::tls_context* tls) {
    if (where.transport == url::transport_kind::unix_socket) {
        auto ep = core::endpoint::from_unix_path(where.path);
        if (!ep)
            co_return ep.error();
        auto s = co_await core::tcp_stream::connect(*ep);
        if (!s)
            co_return s.error();
        co_return core::stream_ptr(std::make_unique<core::tcp_stream>(std::move(*s)));
    }
    if (where.transport == url::transport_kind::tcp)
        co_return co_await core::connect(where.host, where.port, nullptr);
    core::tls_context system_store;
    if (tls == nullptr) {
        auto made = core::tls_context::client();
        if (!made)
            co_return made.error();
        system_store = std::move(*made);
        tls = &system_store;
    }
    co_return co_await core::connect(where.host, where.port, tls);
}

// One request and its reply on a link nobody else uses yet (the login).
core::task<core::result<reply>> roundtrip(resp_link& link, std::string encoded) {
    link.queue(encoded);
    auto flushed = co_await link.flush();
    if (!flushed)
        co_return flushed.error();
    for (;;) {
        auto parsed = link.parse();
        if (!parsed) {
            link.fail(parsed.error());
            co_return parsed.error();
        }
        if (*parsed)
            co_return std::move(**parsed);
        auto more = co_await link.read_more();
        if (!more) {
            link.fail(more.error());
            co_return more.error();
        }
    }
}

core::task<core::result<void>> login(resp_link& link, const url& where) {
    if (!where.password.empty()) {
        std::vector<std::string_view> args{"AUTH"};
        if (!where.user.empty())
            args.emplace_back(where.user);
        args.emplace_back(where.password);
        auto r = co_await roundtrip(link, encode_command(args));
        if (!r)
            co_return r.error();
        if (!r->is_ok())
            co_return make_error_code(errc::auth_failed);
    }
    if (where.database != 0) {
        std::string db = std::to_string(where.database);
        std::string_view args[] = {"SELECT", db};
        auto r = co_await roundtrip(link, encode_command(args));
        if (!r)
            co_return r.error();
        if (!r->is_ok())
            co_return make_error_code(errc::select_failed);
    }
    co_return core::result<void>();
}

core::task<core::result<std::unique_ptr<resp_link>>> open_and_login(url where, options opts) {
    auto stream = co_await open_stream(where, opts.tls);
    if (!stream)
        co_return stream.error();
    auto link = std::make_unique<resp_link>(std::move(*stream), opts);
    auto in = co_await login(*link, where);
    if (!in)
        co_return in.error();
    co_return std::move(link);
}

} // namespace

core::task<core::result<std::unique_ptr<resp_link>>> open_link(url where, options opts) {
    auto d = opts.connect_timeout;
    co_return co_await core::with_timeout(d, open_and_login(std::move(where), opts));
}

} // namespace coronet::ws_redis::detail
