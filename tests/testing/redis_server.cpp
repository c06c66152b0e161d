#include <testing/redis_server.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <thread>

namespace coronet::testing {

namespace {

// A port the kernel considers free right now (bound, read back, released). Another process
// could take it before redis-server binds it; the readiness check would then fail loudly.
std::uint16_t free_loopback_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        throw std::runtime_error("socket() failed");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        ::close(fd);
        throw std::runtime_error("bind(127.0.0.1:0) failed");
    }
    ::close(fd);
    return ntohs(a.sin_port);
}

bool accepts_unix(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

bool accepts_tcp(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

} // namespace

bool redis_server_installed() {
    const char* path = std::getenv("PATH");
    std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
    std::size_t start = 0;
    while (start <= dirs.size()) {
        std::size_t end = dirs.find(':', start);
        if (end == std::string::npos)
            end = dirs.size();
        std::string candidate = dirs.substr(start, end - start) + "/redis-server";
        if (::access(candidate.c_str(), X_OK) == 0)
            return true;
        start = end + 1;
    }
    return false;
}

bool running_in_ci() {
    const char* ci = std::getenv("CI");
    return ci != nullptr && std::string(ci) == "true";
}

redis_server::redis_server(const redis_server_options& opts)
    : socket_(dir_.path() + "/redis.sock"), password_(opts.password) {
    std::vector<std::string> argv = {"redis-server",
                                     "--port",
                                     "0",
                                     "--bind",
                                     "127.0.0.1",
                                     "--unixsocket",
                                     socket_,
                                     "--unixsocketperm",
                                     "700",
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no",
                                     "--dir",
                                     dir_.path(),
                                     "--logfile",
                                     dir_.path() + "/redis.log",
                                     "--daemonize",
                                     "no"};
    if (opts.tcp || opts.cluster) {
        port_ = free_loopback_port();
        argv[2] = std::to_string(port_);
    }
    if (opts.cluster) {
        cluster_port_ = free_loopback_port();
        argv.insert(argv.end(),
                    {"--cluster-enabled", "yes", "--cluster-port", std::to_string(cluster_port_),
                     "--cluster-config-file", dir_.path() + "/nodes.conf"});
    }
    if (opts.tls) {
        const test_pki& pki = test_certificates();
        tls_port_ = free_loopback_port();
        ca_file_ = dir_.write("ca.pem", pki.ca_pem);
        argv.insert(argv.end(), {"--tls-port", std::to_string(tls_port_), "--tls-cert-file",
                                 dir_.write("server.pem", pki.server.cert_pem), "--tls-key-file",
                                 dir_.write("server.key", pki.server.key_pem), "--tls-ca-cert-file",
                                 ca_file_, "--tls-auth-clients", "no"});
    }
    if (!opts.password.empty())
        argv.insert(argv.end(), {"--requirepass", opts.password});
    argv.insert(argv.end(), opts.args.begin(), opts.args.end());
    argv_ = std::move(argv);
    start();
}

void redis_server::start() {
    process_ = child_process::spawn_detached_io(argv_); // it logs to its file

    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
        bool ready = accepts_unix(socket_) && (port_ == 0 || accepts_tcp(port_)) &&
                     (tls_port_ == 0 || accepts_tcp(tls_port_));
        if (ready)
            return;
        if (!process_.running())
            throw std::runtime_error("redis-server exited at start: " + log_tail());
        if (std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error("redis-server did not accept connections within 10 s");
        // A readiness probe, not a wait for time to pass: each round connects again.
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

std::string redis_server::unix_url(bool with_password) const {
    std::string auth = with_password && !password_.empty() ? ":" + password_ + "@" : "";
    return "unix://" + auth + socket_;
}

std::string redis_server::tcp_url() const {
    return "redis://127.0.0.1:" + std::to_string(port_);
}

std::string redis_server::tls_url() const {
    return "rediss://127.0.0.1:" + std::to_string(tls_port_);
}

std::string redis_server::log_tail() const {
    std::ifstream in(dir_.path() + "/redis.log");
    std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return log.size() > 600 ? log.substr(log.size() - 600) : log;
}

void redis_server::kill() {
    process_.signal(SIGKILL);
    (void)process_.wait_exit(std::chrono::seconds(10));
}

void redis_server::restart() {
    if (process_.running())
        kill();
    start();
}

} // namespace coronet::testing
