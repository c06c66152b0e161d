// beast_ws_echo: a plain Boost.Beast + Boost.Asio WebSocket echo server, single-threaded, the
// peer coronet's examples/ws_echo_server is compared against in tests/bench/ws/run_ws_bench.sh.
//
//   beast_ws_echo [--host 127.0.0.1] [--port 0] [--deflate]
//
// Echoes every message back with its type (text as text, binary as binary), like
// ws_echo_server. permessage-deflate off (Beast's default, set explicitly) unless --deflate:
// then a client's offer is accepted (context takeover unless the client asks otherwise, 15-bit
// windows) with level 6 and memLevel 8 as coronet and node use (Beast's defaults are 8 and 4);
// Beast 1.74 has no size threshold, so every echo goes out compressed. auto_fragment off,
// so a message goes out as one frame as coronet sends it (Beast's default, on, would cut a
// 64 KiB echo into 4 KiB frames, one write each); timeouts as Beast's own examples set them
// (stream_base::timeout::suggested(server): no idle pings). TCP_NODELAY on accepted sockets
// (coronet's listener sets it too). Prints "listening on HOST:PORT" (flushed) once it accepts;
// exits 0 on SIGINT/SIGTERM. One io_context on the main thread (concurrency hint 1),
// callbacks (no coroutines), the structure of Beast's websocket_server_async example.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

class session : public std::enable_shared_from_this<session> {
public:
    session(tcp::socket s, bool deflate) : ws_(std::move(s)), deflate_(deflate) {}

    void start() {
        ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
        websocket::permessage_deflate pmd;
        pmd.server_enable = deflate_;
        pmd.client_enable = false;
        pmd.compLevel = 6;
        pmd.memLevel = 8;
        ws_.set_option(pmd);
        ws_.auto_fragment(false);
        ws_.async_accept([self = shared_from_this()](beast::error_code ec) {
            if (!ec)
                self->read();
        });
    }

private:
    void read() {
        ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            self->on_read(ec);
        });
    }

    void on_read(beast::error_code ec) {
        if (ec)
            return; // closed (the close handshake is answered by Beast) or failed
        ws_.text(ws_.got_text());
        ws_.async_write(buffer_.data(),
                        [self = shared_from_this()](beast::error_code wec, std::size_t) {
                            self->on_write(wec);
                        });
    }

    void on_write(beast::error_code ec) {
        if (ec)
            return;
        buffer_.consume(buffer_.size());
        read();
    }

    websocket::stream<tcp::socket> ws_;
    beast::flat_buffer buffer_;
    bool deflate_;
};

class listener {
public:
    listener(asio::io_context& ioc, tcp::endpoint ep, bool deflate)
        : ioc_(ioc), acceptor_(ioc), deflate_(deflate) {
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
                std::make_shared<session>(std::move(s), deflate_)->start();
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
    bool deflate_;
};

void usage(std::FILE* out) {
    std::fputs("usage: beast_ws_echo [--host ADDR] [--port N] [--deflate]\n", out);
}

} // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    unsigned long port = 0;
    bool deflate = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (std::strcmp(argv[i], "--deflate") == 0) {
            deflate = true;
            continue;
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
                   tcp::endpoint(asio::ip::make_address(host), static_cast<unsigned short>(port)),
                   deflate);
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
        std::fprintf(stderr, "beast_ws_echo: %s\n", e.what());
        return 1;
    }
    return 0;
}
