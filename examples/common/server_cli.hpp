#pragma once

// The command line every example server shares: --host, --port, --backend, --threads,
// --tls-cert, --tls-key, --help (README: "Examples").

#include <coronet/core/endpoint.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/tls.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace coronet::examples {

struct server_cli {
    std::string host = "127.0.0.1";
    unsigned port = 0;
    std::optional<core::backend_kind> backend;
    /// Event loops, one thread each (0: one per core); 1 serves on the main thread alone.
    std::size_t threads = 1;
    std::string tls_cert;
    std::string tls_key;

    /// How many loops --threads means (0: one per core, as core::loop_group counts them).
    std::size_t loops() const {
        return threads != 0 ? threads
                            : std::max<std::size_t>(1, std::thread::hardware_concurrency());
    }

    /// The loop options the flags ask for.
    core::loop_options loop_options() const {
        core::loop_options o;
        o.backend = backend;
        return o;
    }
};

/// Prints the usage of `name` (default port `port`, what TLS does: `tls_what`; `multi_loop`:
/// it takes --threads).
inline void print_usage(std::FILE* out, const char* name, unsigned port, const char* tls_what,
                        bool multi_loop) {
    std::fprintf(out,
                 "usage: %s [--host ADDR] [--port N] [--backend uring|epoll]%s\n"
                 "       %*s [--tls-cert FILE --tls-key FILE] [--help]\n"
                 "  --host ADDR      address to listen on (default 127.0.0.1)\n"
                 "  --port N         port (default %u; 0 picks a free one)\n"
                 "  --backend NAME   force the loop backend (same as CORONET_BACKEND)\n"
                 "%s"
                 "  --tls-cert FILE  PEM certificate chain: %s\n"
                 "  --tls-key FILE   PEM private key of that certificate\n",
                 name, multi_loop ? " [--threads N]" : "", static_cast<int>(std::strlen(name)), "",
                 port,
                 multi_loop ? "  --threads N      event loops, one thread and SO_REUSEPORT "
                              "listener each\n"
                              "                   (default 1; 0: one per core)\n"
                            : "",
                 tls_what);
}

/// Parses the shared flags; prints usage and exits on --help (0) or a bad flag (2).
/// `multi_loop`: the server runs on a loop group (serve_loops.hpp) and takes --threads N.
inline server_cli parse_server_cli(int argc, char** argv, const char* name, unsigned default_port,
                                   const char* tls_what, bool multi_loop = false) {
    server_cli o;
    o.port = default_port;
    auto fail = [&] {
        print_usage(stderr, name, default_port, tls_what, multi_loop);
        std::exit(2);
    };
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            print_usage(stdout, name, default_port, tls_what, multi_loop);
            std::exit(0);
        }
        if (i + 1 >= argc)
            fail();
        const char* v = argv[++i];
        if (a == "--host") {
            o.host = v;
        } else if (a == "--port") {
            char* end = nullptr;
            unsigned long p = std::strtoul(v, &end, 10);
            if (*end != '\0' || p > 65535)
                fail();
            o.port = static_cast<unsigned>(p);
        } else if (a == "--backend") {
            if (std::strcmp(v, "uring") == 0)
                o.backend = core::backend_kind::uring;
            else if (std::strcmp(v, "epoll") == 0)
                o.backend = core::backend_kind::epoll;
            else
                fail();
        } else if (a == "--threads" && multi_loop) {
            char* end = nullptr;
            unsigned long n = std::strtoul(v, &end, 10);
            if (*end != '\0' || n > 1024)
                fail();
            o.threads = n;
        } else if (a == "--tls-cert") {
            o.tls_cert = v;
        } else if (a == "--tls-key") {
            o.tls_key = v;
        } else {
            fail();
        }
    }
    if (o.tls_cert.empty() != o.tls_key.empty())
        fail();
    return o;
}

/// The server TLS context the flags ask for (invalid when no certificate was given); prints the
/// reason and exits 2 when the files cannot be used.
inline core::tls_context server_tls(const server_cli& o, const char* name,
                                    std::vector<std::string> alpn = {}) {
    if (o.tls_cert.empty())
        return {};
    core::tls_server_options so;
    so.cert_file = o.tls_cert;
    so.key_file = o.tls_key;
    so.alpn = std::move(alpn);
    auto ctx = core::tls_context::server(so);
    if (!ctx) {
        std::fprintf(stderr, "%s: TLS setup failed: %s\n", name, ctx.error().message().c_str());
        std::exit(2);
    }
    return std::move(*ctx);
}

} // namespace coronet::examples
