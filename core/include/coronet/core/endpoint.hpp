#pragma once

#include <coronet/core/export.hpp>
#include <coronet/core/result.hpp>

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace coronet::core {

/// A socket address: IPv4, IPv6 or a Unix-domain path. A plain value type.
class CORONET_CORE_EXPORT endpoint {
public:
    /// An empty endpoint (family AF_UNSPEC).
    endpoint() noexcept;
    /// Copies `len` bytes of a sockaddr.
    endpoint(const ::sockaddr* sa, ::socklen_t len) noexcept;

    /// Parses "1.2.3.4:80", "[::1]:80" or "unix:/path". No name resolution (see `resolve`).
    static result<endpoint> parse(std::string_view text);
    /// A numeric IPv4/IPv6 address (no brackets) and a port.
    static result<endpoint> from_ip(std::string_view address, std::uint16_t port);
    /// A Unix-domain socket path (up to 107 bytes); a leading '@' makes an abstract socket.
    static result<endpoint> from_unix_path(std::string_view path);
    /// 127.0.0.1:port.
    static endpoint loopback_v4(std::uint16_t port) noexcept;

    int family() const noexcept { return addr_.ss_family; }
    bool is_ip() const noexcept { return family() == AF_INET || family() == AF_INET6; }
    /// The port of an IP endpoint (0 otherwise).
    std::uint16_t port() const noexcept;
    /// "1.2.3.4:80", "[::1]:80" or "unix:/path".
    std::string to_string() const;
    /// The numeric host part without brackets ("::1"), or the path for Unix sockets.
    std::string host_string() const;

    const ::sockaddr* data() const noexcept { return reinterpret_cast<const ::sockaddr*>(&addr_); }
    ::sockaddr* data() noexcept { return reinterpret_cast<::sockaddr*>(&addr_); }
    ::socklen_t size() const noexcept { return len_; }
    void set_size(::socklen_t len) noexcept { len_ = len; }
    static constexpr ::socklen_t capacity() noexcept { return sizeof(::sockaddr_storage); }

private:
    ::sockaddr_storage addr_;
    ::socklen_t len_;
};

} // namespace coronet::core
