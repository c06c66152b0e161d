// beast_hello: a plain Boost.Beast + Boost.Asio HTTP/1.1 server, single-threaded, the peer
// coronet's examples/http_hello is compared against in tests/bench/http/run_http_bench.sh.
//
//   beast_hello [--host 127.0.0.1] [--port 0]
//
// Every request is answered with 200 and "Hello, World!" (13 bytes), the same headers as
// http_hello's GET / (Date, Content-Type: text/plain; charset=utf-8, Content-Length; no
// Server). Keep-alive by default (HTTP/1.1), closes when the request asks or for HTTP/1.0
// without keep-alive. Pipelining: Beast's flat_buffer keeps bytes read past a request, so the
// next request is parsed from it without a read; each response is its own async_write (this is
// how Beast servers are usually written: no gathering of pipelined responses).
// Prints "listening on HOST:PORT" (flushed) once it accepts; exits 0 on SIGINT/SIGTERM.
// One io_context on the main thread (concurrency hint 1), callbacks (no coroutines), the
// structure of Beast's own advanced/async server examples.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

namespace {

// The Date header, formatted once per second (coronet caches it the same way).
const std::string& http_date() {
    static std::time_t last = 0;
    static std::string cached;
    std::time_t now = std::time(nullptr);
    if (now != last) {
        last = now;
        char buf[64];
        std::tm tm{};
        gmtime_r(&now, &tm);
        std::size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached.assign(buf, n);
    }
    return cached;
}

class session : public std::enable_shared_from_this<session> {
public:
    explicit session(tcp::socket s) : stream_(std::move(s)) {}

    void start() { read(); }

private:
    void read() {
        req_ = {};
        bhttp::async_read(
            stream_, buffer_, req_,
            [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
    }

    void on_read(beast::error_code ec) {
        if (ec) {
            // end_of_stream: the client closed between requests. Anything else: drop it.
            beast::error_code ignored;
            stream_.shutdown(tcp::socket::shutdown_send, ignored);
            return;
        }
        res_ = {};
        res_.result(bhttp::status::ok);
        res_.version(req_.version());
        res_.set(bhttp::field::date, http_date());
        res_.set(bhttp::field::content_type, "text/plain; charset=utf-8");
        res_.body() = "Hello, World!";
        res_.keep_alive(req_.keep_alive());
        res_.prepare_payload();
        bhttp::async_write(stream_, res_,
                           [self = shared_from_this()](beast::error_code wec, std::size_t) {
                               self->on_write(wec);
                           });
    }

    void on_write(beast::error_code ec) {
        if (ec)
            return;
        if (res_.need_eof()) {
            beast::error_code ignored;
            stream_.shutdown(tcp::socket::shutdown_send, ignored);
            return;
        }
        read();
    }

    tcp::socket stream_;
    beast::flat_buffer buffer_;
    bhttp::request<bhttp::empty_body> req_;
    bhttp::response<bhttp::string_body> res_;
};

class listener {
public:
    listener(asio::io_context& ioc, tcp::endpoint ep) : ioc_(ioc), acceptor_(ioc) {
        acceptor_.open(ep.protocol());
        acceptor_.set_option(asio::socket_base::reuse_address(true));
        acceptor_.bind(ep);
        acceptor_.listen(asio::socket_base::max_listen_connections);
    }

    tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

    void accept() {
        acceptor_.async_accept(ioc_, [this](beast::error_code ec, tcp::socket s) {
            if (!ec) {
                s.set_option(tcp::no_delay(true));
                std::make_shared<session>(std::move(s))->start();
            } else if (ec == asio::error::operation_aborted) {
                return;
            }
            accept();
        });
    }

    void close() {
        beast::error_code ignored;
        acceptor_.close(ignored);
    }

private:
    asio::io_context& ioc_;
    tcp::acceptor acceptor_;
};

void usage(std::FILE* out) {
    std::fputs("usage: beast_hello [--host ADDR] [--port N]\n", out);
}

} // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    unsigned long port = 0;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        if (std::strcmp(argv[i], "--host") == 0) {
            host = argv[++i];
        } else if (std::strcmp(argv[i], "--port") == 0) {
            char* end = nullptr;
            port = std::strtoul(argv[++i], &end, 10);
            if (*end != '\0' || port > 65535) {
                usage(stderr);
                return 2;
            }
        } else {
            usage(stderr);
            return 2;
        }
    }
    try {
        asio::io_context ioc(1);
        listener l(ioc,
                   tcp::endpoint(asio::ip::make_address(host), static_cast<unsigned short>(port)));
        asio::signal_set signals(ioc, SIGINT, SIGTERM);
        signals.async_wait([&](beast::error_code, int) {
            l.close();
            ioc.stop();
        });
        l.accept();
        tcp::endpoint ep = l.local_endpoint();
        std::printf("listening on %s:%u\n", ep.address().to_string().c_str(),
                    static_cast<unsigned>(ep.port()));
        std::fflush(stdout);
        ioc.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "beast_hello: %s\n", e.what());
        return 1;
    }
    return 0;
}
