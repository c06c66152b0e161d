#include <coronet/core/endpoint.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <charconv>
#include <cstddef>
#include <cstring>

namespace coronet::core {

endpoint::endpoint() noexcept : addr_{}, len_(0) {
    addr_.ss_family = AF_UNSPEC;
}

endpoint::endpoint(const ::sockaddr* sa, ::socklen_t len) noexcept : addr_{}, len_(0) {
    if (len > sizeof addr_)
        len = sizeof addr_;
    std::memcpy(&addr_, sa, len);
    len_ = len;
}

result<endpoint> endpoint::from_ip(std::string_view address, std::uint16_t port) {
    char buf[INET6_ADDRSTRLEN + 1];
    if (address.size() >= sizeof buf)
        return errc::invalid_address;
    if (!address.empty())
        std::memcpy(buf, address.data(), address.size());
    buf[address.size()] = '\0';
    endpoint e;
    ::sockaddr_in v4{};
    if (::inet_pton(AF_INET, buf, &v4.sin_addr) == 1) {
        v4.sin_family = AF_INET;
        v4.sin_port = htons(port);
        return endpoint(reinterpret_cast<::sockaddr*>(&v4), sizeof v4);
    }
    ::sockaddr_in6 v6{};
    if (::inet_pton(AF_INET6, buf, &v6.sin6_addr) == 1) {
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons(port);
        return endpoint(reinterpret_cast<::sockaddr*>(&v6), sizeof v6);
    }
    return errc::invalid_address;
}

result<endpoint> endpoint::from_unix_path(std::string_view path) {
    ::sockaddr_un un{};
    if (path.empty() || path.size() >= sizeof un.sun_path)
        return errc::invalid_address;
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path.data(), path.size());
    ::socklen_t len = static_cast<::socklen_t>(offsetof(::sockaddr_un, sun_path) + path.size());
    if (path[0] == '@')
        un.sun_path[0] = '\0'; // abstract namespace: no trailing NUL
    else
        len += 1;
    return endpoint(reinterpret_cast<::sockaddr*>(&un), len);
}

result<endpoint> endpoint::parse(std::string_view text) {
    if (text.substr(0, 5) == "unix:")
        return from_unix_path(text.substr(5));
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return errc::invalid_address;
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos)
            return errc::invalid_address;
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos)
            return errc::invalid_address;
    }
    unsigned p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || ptr != port.data() + port.size() || p > 65535 || port.empty())
        return errc::invalid_address;
    return from_ip(host, static_cast<std::uint16_t>(p));
}

endpoint endpoint::loopback_v4(std::uint16_t port) noexcept {
    ::sockaddr_in v4{};
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return endpoint(reinterpret_cast<::sockaddr*>(&v4), sizeof v4);
}

std::uint16_t endpoint::port() const noexcept {
    if (family() == AF_INET)
        return ntohs(reinterpret_cast<const ::sockaddr_in*>(&addr_)->sin_port);
    if (family() == AF_INET6)
        return ntohs(reinterpret_cast<const ::sockaddr_in6*>(&addr_)->sin6_port);
    return 0;
}

std::string endpoint::host_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    if (family() == AF_INET) {
        ::inet_ntop(AF_INET, &reinterpret_cast<const ::sockaddr_in*>(&addr_)->sin_addr, buf,
                    sizeof buf);
        return buf;
    }
    if (family() == AF_INET6) {
        ::inet_ntop(AF_INET6, &reinterpret_cast<const ::sockaddr_in6*>(&addr_)->sin6_addr, buf,
                    sizeof buf);
        return buf;
    }
    if (family() == AF_UNIX) {
        const auto* un = reinterpret_cast<const ::sockaddr_un*>(&addr_);
        std::size_t n =
            len_ > offsetof(::sockaddr_un, sun_path) ? len_ - offsetof(::sockaddr_un, sun_path) : 0;
        std::string path(un->sun_path, n);
        if (!path.empty() && path[0] == '\0')
            path[0] = '@';
        while (!path.empty() && path.back() == '\0')
            path.pop_back();
        return path;
    }
    return {};
}

std::string endpoint::to_string() const {
    if (family() == AF_INET)
        return host_string() + ":" + std::to_string(port());
    if (family() == AF_INET6)
        return "[" + host_string() + "]:" + std::to_string(port());
    if (family() == AF_UNIX)
        return "unix:" + host_string();
    return {};
}

} // namespace coronet::core
