// Runs the one handler model on a session (ws::server and http_ws routes share this), and the
// bounded concurrency of event handlers.
#include <coronet/ws/handler.hpp>

#include <coronet/core/async_semaphore.hpp>
#include <coronet/core/scope.hpp>

#include <exception>
#include <string>

namespace coronet::ws {

namespace detail {

bool reportable(std::error_code ec) noexcept {
    return ec != errc::closed && ec != core::errc::operation_canceled;
}

struct concurrent_calls::impl {
    explicit impl(std::size_t limit) : places(limit) {}
    core::async_semaphore places;
    core::task_scope scope;
};

concurrent_calls::concurrent_calls(std::size_t limit) : impl_(std::make_unique<impl>(limit)) {}
concurrent_calls::~concurrent_calls() = default;

namespace {

core::task<void> release_after(core::async_semaphore& places, core::task<void> call) {
    struct release_on_exit {
        core::async_semaphore& s;
        ~release_on_exit() { s.release(); }
    } guard{places};
    co_await std::move(call);
}

} // namespace

core::task<bool> concurrent_calls::start(core::task<void> call) {
    auto got = co_await impl_->places.acquire();
    if (!got)
        co_return false;
    impl_->scope.spawn(release_after(impl_->places, std::move(call)));
    co_return true;
}

core::task<void> concurrent_calls::join() {
    co_await impl_->scope.join();
}

} // namespace detail

session_options session_options_for(session_options base, const deflate_options& policy,
                                    const std::optional<deflate_params>& agreed) {
    base.deflate = policy;
    base.agreed_deflate = agreed;
    return base;
}

namespace detail {

session_run::session_run(const session_handler& h, session& s, handshake_info& info)
    : s_(s), run_(h.start(s, info)) {
    s_.set_observer(this);
}

session_run::~session_run() {
    s_.set_observer(nullptr);
}

core::task<core::result<void>> session_run::close(const std::exception_ptr& failed) {
    if (failed)
        return s_.close(1011, std::string("internal error"));
    return s_.close(1000, std::string());
}

void session_run::finish(std::exception_ptr failed) {
    s_.set_observer(nullptr);
    if (!failed) {
        try {
            run_->closed(s_.close_code(), s_.close_reason());
        } catch (...) {
            failed = std::current_exception();
        }
    }
    if (failed)
        std::rethrow_exception(failed);
}

} // namespace detail

core::task<void> serve_session(const session_handler& h, session& s, handshake_info& info) {
    detail::session_run run(h, s, info);
    std::exception_ptr failed;
    try {
        co_await run.handler();
    } catch (...) {
        failed = std::current_exception();
    }
    if (s.is_open()) {
        // A handler that returned without closing ends normally; one that threw tells the peer
        // the server failed before the error reaches the host.
        auto closed = co_await run.close(failed);
        (void)closed;
    }
    run.finish(failed);
}

} // namespace coronet::ws
