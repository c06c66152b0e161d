#pragma once

// A real redis-server for tests: started on a private Unix socket (and, on request, a free
// loopback TCP or TLS port) in a temporary directory, with persistence off, and stopped (killed
// and reaped) by the destructor. Tests that need it start with CORONET_REQUIRE_REDIS().

#include <testing/certs.hpp>
#include <testing/process.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace coronet::testing {

/// True when `redis-server` is on PATH.
bool redis_server_installed();

/// True when the environment variable CI is "true" (a missing peer is then a failure).
bool running_in_ci();

/// How to start a test server. Every field has a default that starts a plain server.
struct redis_server_options {
    /// --requirepass (the default user's password).
    std::string password;
    /// Extra configuration arguments, one token each ("--user", "alice", "on", ">pw", "~*"...).
    std::vector<std::string> args;
    /// Also listen on a free loopback TCP port (otherwise --port 0: Unix socket only).
    bool tcp = false;
    /// Also listen with TLS on a free loopback port, with test_certificates().server.
    bool tls = false;
    /// A Redis Cluster node (--cluster-enabled, its bus on another free port), with no slots
    /// and no peers yet: the test forms the cluster (CLUSTER ADDSLOTSRANGE, CLUSTER MEET).
    /// Implies `tcp`.
    bool cluster = false;
};

/// One redis-server process owned by a test. Move-only; the destructor kills it (SIGKILL) and
/// reaps it, and removes its directory.
class redis_server {
public:
    /// Starts redis-server and waits (at most 10 s) until it accepts connections on its Unix
    /// socket (and its TCP / TLS port). Throws std::runtime_error when it does not start.
    explicit redis_server(const redis_server_options& opts);
    redis_server(redis_server&&) noexcept = default;
    redis_server& operator=(redis_server&&) = delete;
    ~redis_server() = default;

    /// `unix:///.../redis.sock` (with `:password@` when `with_password`).
    std::string unix_url(bool with_password = true) const;
    /// `redis://127.0.0.1:port` (tcp only).
    std::string tcp_url() const;
    /// `rediss://127.0.0.1:port` (tls only).
    std::string tls_url() const;
    /// The PEM file of the CA that signed the TLS certificate (tls only).
    std::string ca_file() const { return ca_file_; }
    const std::string& socket_path() const noexcept { return socket_; }
    /// The TCP port (tcp only).
    std::uint16_t port() const noexcept { return port_; }
    /// The cluster bus port (cluster only).
    std::uint16_t cluster_port() const noexcept { return cluster_port_; }

    /// Kills the server at once (SIGKILL) and reaps it: connections see a reset or EOF.
    void kill();
    /// Kills the server if it runs, then starts it again with the same arguments: the same Unix
    /// socket, TCP and TLS ports and password, an empty data set (persistence is off). Waits
    /// as the constructor does; throws std::runtime_error when it does not come back.
    void restart();
    /// True while the process runs.
    bool running() { return process_.running(); }

private:
    std::string log_tail() const;
    void start();

    temp_dir dir_;
    std::string socket_;
    std::string password_;
    std::uint16_t port_ = 0;
    std::uint16_t tls_port_ = 0;
    std::uint16_t cluster_port_ = 0;
    std::string ca_file_;
    std::vector<std::string> argv_;
    child_process process_;
};

} // namespace coronet::testing

/// First statement of a test that needs redis-server: fails when CI=true and it is missing,
/// otherwise skips with a message.
#define CORONET_REQUIRE_REDIS()                                                                    \
    do {                                                                                           \
        if (!coronet::testing::redis_server_installed()) {                                         \
            if (coronet::testing::running_in_ci())                                                 \
                FAIL("redis-server is not installed (scripts/deps installs it; CI=true)");         \
            MESSAGE("redis-server not installed: skipped");                                        \
            return;                                                                                \
        }                                                                                          \
    } while (false)
