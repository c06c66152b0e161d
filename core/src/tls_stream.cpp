// tls_stream: OpenSSL driven through memory BIOs. Ciphertext moves between the BIOs and the
// transport in short-lived coroutines (one per pending read or write that cannot finish at
// once); their frames come from the recycling frame allocator, so a steady state allocates
// nothing.
#include <coronet/core/async_event.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/tls.hpp>

#include "tls_impl.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include <cerrno>
#include <cstring>
#include <optional>

namespace coronet::core {

namespace {

int stream_ex_index() {
    static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return idx;
}

bool is_ip_literal(const std::string& host) {
    unsigned char buf[16];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// Largest plaintext handed to one SSL_write: one TLS record.
constexpr std::size_t max_record = 16 * 1024;
// Ciphertext copied out of the write BIO per transport write.
constexpr std::size_t tx_size = max_record + 512;

/// A coroutine that drives one stream operation and delivers its completion from its final
/// suspension (then frees its own frame).
struct tls_job {
    struct promise_type : detail::promise_base {
        stream_op* op = nullptr;
        bool* finished_inline = nullptr; // set while launch() runs the job's first steps
        tls_job get_return_object() noexcept {
            return {std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        struct final_awaiter {
            bool await_ready() const noexcept { return false; }
            std::coroutine_handle<>
            await_suspend(std::coroutine_handle<promise_type> self) noexcept {
                stream_op* o = self.promise().op;
                bool* inline_flag = self.promise().finished_inline;
                self.destroy();
                o->on_complete = nullptr;
                // Finished before launch() returned: the start function reports a synchronous
                // completion instead of resuming the waiter from inside its await_suspend.
                if (inline_flag != nullptr) {
                    *inline_flag = true;
                    return std::noop_coroutine();
                }
                return o->waiter;
            }
            void await_resume() const noexcept {}
        };
        final_awaiter final_suspend() const noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept {
            // Only allocation failure can get here; the op still completes, with an error.
            op->ec = make_error_code(std::errc::not_enough_memory);
        }
    };
    std::coroutine_handle<promise_type> h;
};

} // namespace

struct tls_stream::state {
    SSL* ssl = nullptr;
    BIO* rbio = nullptr; // ciphertext from the peer, owned by ssl
    BIO* wbio = nullptr; // ciphertext to the peer, owned by ssl
    bool client = false;
    bool verify = true;
    tls_session latest;
    std::unique_ptr<std::byte[]> tx;
    // The transport's write side is shared by the reader (alerts, tickets, key updates) and the
    // writer; it is free while this event is set.
    async_event write_free{true};
    std::optional<stop_source> read_stop;
    std::optional<stop_source> write_stop;
    stream_op* reading = nullptr;
    stream_op* writing = nullptr;

    ~state() {
        if (ssl == nullptr)
            return;
        // SSL_free of an established connection that did not send close_notify marks its
        // session not resumable (ssl_clear_bad_session), which would spoil the session() handed
        // out already, though the connection was fine. Fatal TLS errors have invalidated the
        // session when they happened, so only that legacy rule is skipped.
        SSL_set_shutdown(ssl, SSL_get_shutdown(ssl) | SSL_SENT_SHUTDOWN);
        SSL_free(ssl);
    }

    std::error_code error_of(int ret) {
        int e = SSL_get_error(ssl, ret);
        if (e == SSL_ERROR_ZERO_RETURN) {
            ERR_clear_error();
            return make_error_code(errc::end_of_stream);
        }
        if (client && verify) {
            long v = SSL_get_verify_result(ssl);
            if (v != X509_V_OK) {
                ERR_clear_error();
                return {static_cast<int>(v), tls_verify_category()};
            }
        }
        if (ERR_peek_last_error() != 0)
            return detail::last_tls_error();
        return make_error_code(errc::end_of_stream);
    }

    bool output_pending() const { return BIO_ctrl_pending(wbio) > 0; }

    // True when SSL_read could only say WANT_READ: no plaintext or ciphertext is buffered and
    // the handshake is done (so the read would not start one). Skipping that call matters:
    // with SSL_MODE_RELEASE_BUFFERS each empty SSL_read allocates and frees a record buffer.
    bool starved() const {
        return !transport_eof && SSL_is_init_finished(ssl) && BIO_ctrl_pending(rbio) == 0 &&
               SSL_has_pending(ssl) == 0;
    }

    bool transport_eof = false;
};

namespace detail {
int on_new_session(SSL* ssl, SSL_SESSION* session) {
    auto* st = static_cast<tls_stream::state*>(SSL_get_ex_data(ssl, stream_ex_index()));
    if (st == nullptr)
        return 0;
    st->latest = tls_session(std::shared_ptr<void>(
        session, [](void* p) { SSL_SESSION_free(static_cast<SSL_SESSION*>(p)); }));
    return 1; // we keep the reference
}
} // namespace detail

namespace {

/// Sends everything the write BIO holds.
task<result<void>> flush(tls_stream::state& st, stream& transport) {
    while (st.output_pending()) {
        if (!st.write_free.is_set()) {
            // Not cancellable: the holder sends one record, and its own stop cuts that short.
            // Abandoning here could drop plaintext this read already took out of OpenSSL.
            (void)co_await st.write_free.wait(stop_token());
            continue;
        }
        st.write_free.reset();
        if (!st.tx)
            st.tx = std::make_unique<std::byte[]>(tx_size);
        int n = BIO_read(st.wbio, st.tx.get(), static_cast<int>(tx_size));
        if (n <= 0) {
            st.write_free.set();
            break;
        }
        auto r =
            co_await transport.write_all(const_buffer(st.tx.get(), static_cast<std::size_t>(n)));
        st.write_free.set();
        if (!r)
            co_return r.error();
    }
    co_return result<void>{};
}

/// Feeds the read BIO with the next bytes from the transport. On end of stream the BIO reports
/// EOF to OpenSSL, which then decides between a clean close and a truncation.
task<result<void>> pull(tls_stream::state& st, stream& transport) {
    auto got = co_await transport.receive();
    if (!got) {
        if (got.error() != errc::end_of_stream)
            co_return got.error();
        BIO_set_mem_eof_return(st.rbio, 0);
        st.transport_eof = true;
        co_return result<void>{};
    }
    BIO_write(st.rbio, got->data(), static_cast<int>(got->size()));
    // Copied: a buffer lent from the loop's pool goes back at once (an idle connection holds
    // none); a stream's own receive buffer is kept for the next read.
    if (transport.lends_receive_buffers())
        transport.release_receive_buffer();
    co_return result<void>{};
}

tls_job read_job(tls_stream::state& st, stream& transport, stream_op& op) {
    for (;;) {
        if (st.starved()) {
            if (st.output_pending()) {
                if (auto f = co_await flush(st, transport); !f) {
                    op.ec = f.error();
                    break;
                }
            }
            if (auto p = co_await pull(st, transport); !p) {
                op.ec = p.error();
                break;
            }
            continue;
        }
        ERR_clear_error();
        std::size_t n = 0;
        int r = SSL_read_ex(st.ssl, op.buf, op.len, &n);
        if (r == 1) {
            if (st.output_pending()) {
                if (auto f = co_await flush(st, transport); !f) {
                    op.ec = f.error();
                    break;
                }
            }
            op.res = static_cast<std::int32_t>(n);
            break;
        }
        if (SSL_get_error(st.ssl, r) != SSL_ERROR_WANT_READ) {
            // An alert we owe the peer goes out before the error is reported.
            std::error_code e = st.error_of(r);
            if (st.output_pending())
                (void)co_await flush(st, transport);
            op.ec = e;
            break;
        }
        if (st.output_pending()) {
            if (auto f = co_await flush(st, transport); !f) {
                op.ec = f.error();
                break;
            }
        }
        if (auto p = co_await pull(st, transport); !p) {
            op.ec = p.error();
            break;
        }
    }
    st.reading = nullptr;
}

tls_job write_job(tls_stream::state& st, stream& transport, stream_op& op) {
    for (;;) {
        if (op.prepare_write_window() == 0) {
            op.res = 0;
            break;
        }
        const ::iovec& first = op.msg->msg_iov[0];
        std::size_t chunk = first.iov_len < max_record ? first.iov_len : max_record;
        ERR_clear_error();
        std::size_t n = 0;
        int r = SSL_write_ex(st.ssl, first.iov_base, chunk, &n);
        if (r != 1) {
            op.ec = SSL_get_error(st.ssl, r) == SSL_ERROR_WANT_READ
                        ? make_error_code(std::errc::not_connected) // handshake not done
                        : st.error_of(r);
            break;
        }
        // Nothing more is encrypted until this record is on its way: the back-pressure.
        if (auto f = co_await flush(st, transport); !f) {
            op.ec = f.error();
            break;
        }
        op.advance_written(n);
    }
    st.writing = nullptr;
}

tls_job shutdown_job(tls_stream::state& st, stream& transport, stream_op& op) {
    ERR_clear_error();
    SSL_shutdown(st.ssl); // queues close_notify; we do not wait for the peer's
    if (auto f = co_await flush(st, transport); !f) {
        op.ec = f.error();
    } else if (auto s = co_await transport.shutdown(); !s) {
        op.ec = s.error();
    } else {
        op.res = 0;
    }
    st.writing = nullptr;
}

// Starts a job; returns true if it already finished (a synchronous completion).
bool launch(tls_job job, stream_op& op, stop_source& src) {
    bool finished = false;
    job.h.promise().op = &op;
    job.h.promise().finished_inline = &finished;
    job.h.promise().set_token(src.token());
    job.h.resume();
    if (!finished)
        job.h.promise().finished_inline = nullptr;
    return finished;
}

} // namespace

tls_stream::tls_stream(stream_ptr transport, std::unique_ptr<state> st)
    : transport_(std::move(transport)), st_(std::move(st)) {}

tls_stream::~tls_stream() = default;

std::unique_ptr<tls_stream> tls_stream::server(const tls_context& ctx, stream_ptr transport) {
    auto st = std::make_unique<state>();
    st->ssl = SSL_new(ctx.get()->ctx);
    if (st->ssl == nullptr)
        throw std::bad_alloc();
    st->rbio = BIO_new(BIO_s_mem());
    st->wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(st->ssl, st->rbio, st->wbio);
    SSL_set_accept_state(st->ssl);
    SSL_set_ex_data(st->ssl, stream_ex_index(), st.get());
    return std::unique_ptr<tls_stream>(new tls_stream(std::move(transport), std::move(st)));
}

std::unique_ptr<tls_stream> tls_stream::client(const tls_context& ctx, stream_ptr transport,
                                               std::string host, tls_session resume) {
    auto st = std::make_unique<state>();
    st->ssl = SSL_new(ctx.get()->ctx);
    if (st->ssl == nullptr)
        throw std::bad_alloc();
    st->rbio = BIO_new(BIO_s_mem());
    st->wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(st->ssl, st->rbio, st->wbio);
    SSL_set_connect_state(st->ssl);
    st->client = true;
    st->verify = ctx.get()->verify;
    SSL_set_ex_data(st->ssl, stream_ex_index(), st.get());
    const bool ip = is_ip_literal(host);
    if (!host.empty() && !ip)
        SSL_set_tlsext_host_name(st->ssl, host.c_str());
    if (st->verify && !host.empty()) {
        if (ip)
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(st->ssl), host.c_str());
        else
            SSL_set1_host(st->ssl, host.c_str());
    }
    if (resume.valid())
        SSL_set_session(st->ssl, static_cast<SSL_SESSION*>(resume.native_handle()));
    return std::unique_ptr<tls_stream>(new tls_stream(std::move(transport), std::move(st)));
}

task<result<void>> tls_stream::handshake() {
    state& st = *st_;
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(st.ssl);
        if (r == 1)
            co_return co_await flush(st, *transport_);
        if (SSL_get_error(st.ssl, r) != SSL_ERROR_WANT_READ) {
            std::error_code e = st.error_of(r);
            if (st.output_pending())
                (void)co_await flush(st, *transport_); // our alert
            co_return e;
        }
        if (auto f = co_await flush(st, *transport_); !f)
            co_return f.error();
        if (auto p = co_await pull(st, *transport_); !p)
            co_return p.error();
    }
}

bool tls_stream::start_read(stream_op& op) {
    state& st = *st_;
    if (st.ssl == nullptr) {
        op.ec = make_error_code(errc::not_open);
        return true;
    }
    if (st.starved()) {
        st.reading = &op;
        st.read_stop.emplace();
        return launch(read_job(st, *transport_, op), op, *st.read_stop);
    }
    // Fast path: plaintext already decrypted or decryptable from buffered ciphertext.
    ERR_clear_error();
    std::size_t n = 0;
    int r = SSL_read_ex(st.ssl, op.buf, op.len, &n);
    if (r == 1 && !st.output_pending()) {
        op.res = static_cast<std::int32_t>(n);
        return true;
    }
    if (r == 1) {
        // Deliver the bytes, but first send what the read produced: a job with nothing to read.
        op.res = static_cast<std::int32_t>(n);
    }
    st.reading = &op;
    st.read_stop.emplace();
    if (r == 1) {
        auto flush_only = [](state& s, stream& t, stream_op& o) -> tls_job {
            if (auto f = co_await flush(s, t); !f)
                o.ec = f.error();
            s.reading = nullptr;
        };
        return launch(flush_only(st, *transport_, op), op, *st.read_stop);
    }
    if (SSL_get_error(st.ssl, r) != SSL_ERROR_WANT_READ && !st.output_pending()) {
        st.reading = nullptr;
        op.ec = st.error_of(r);
        return true;
    }
    return launch(read_job(st, *transport_, op), op, *st.read_stop);
}

namespace {
// Starts `job` (a write or a shutdown: the stream's one writer) for `op`.
bool launch_writer(tls_stream::state& st, stream_op& op, tls_job job) {
    st.writing = &op;
    st.write_stop.emplace();
    return launch(std::move(job), op, *st.write_stop);
}
} // namespace

bool tls_stream::start_write(stream_op& op) {
    if (st_->ssl == nullptr) {
        op.ec = make_error_code(errc::not_open);
        return true;
    }
    return launch_writer(*st_, op, write_job(*st_, *transport_, op));
}

bool tls_stream::start_shutdown(stream_op& op) {
    if (st_->ssl == nullptr) {
        op.ec = make_error_code(errc::not_open);
        return true;
    }
    return launch_writer(*st_, op, shutdown_job(*st_, *transport_, op));
}

void tls_stream::cancel(stream_op& op) noexcept {
    state& st = *st_;
    if (st.reading == &op && st.read_stop)
        st.read_stop->request_stop();
    else if (st.writing == &op && st.write_stop)
        st.write_stop->request_stop();
}

void tls_stream::close() noexcept {
    if (transport_)
        transport_->close();
}

bool tls_stream::is_open() const noexcept {
    return transport_ && transport_->is_open();
}

std::string tls_stream::alpn_protocol() const {
    const unsigned char* p = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(st_->ssl, &p, &len);
    return p != nullptr ? std::string(reinterpret_cast<const char*>(p), len) : std::string();
}

std::string tls_stream::server_name() const {
    const char* n = SSL_get_servername(st_->ssl, TLSEXT_NAMETYPE_host_name);
    return n != nullptr ? n : "";
}

std::string tls_stream::protocol_version() const {
    return SSL_get_version(st_->ssl);
}

bool tls_stream::session_reused() const noexcept {
    return SSL_session_reused(st_->ssl) == 1;
}

tls_session tls_stream::session() const {
    return st_->latest;
}

} // namespace coronet::core
