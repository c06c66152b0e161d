#include <coronet/core/accept_loop.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace coronet::core::detail {

descriptor_reserve::descriptor_reserve() noexcept
    : fd_(::open("/dev/null", O_RDONLY | O_CLOEXEC)) {}

descriptor_reserve::~descriptor_reserve() {
    if (fd_ >= 0)
        ::close(fd_);
}

// Out of descriptors the kernel keeps completing handshakes into the backlog, where clients
// would wait until one frees up. Giving up the reserve makes room for exactly one accept: the
// client gets its refusal and a FIN at once, and the reserve is taken back.
bool descriptor_reserve::refuse_one(int listener_fd, std::string_view refusal) noexcept {
    if (fd_ < 0)
        fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd_ < 0)
        return false;
    // Nothing waiting: an accept now would block on a blocking (io_uring) listener.
    ::pollfd p{listener_fd, POLLIN, 0};
    if (::poll(&p, 1, 0) != 1 || (p.revents & POLLIN) == 0)
        return false;
    ::close(fd_);
    fd_ = -1;
    const int flags = ::fcntl(listener_fd, F_GETFL);
    const bool was_blocking = flags >= 0 && (flags & O_NONBLOCK) == 0;
    if (was_blocking)
        ::fcntl(listener_fd, F_SETFL, flags | O_NONBLOCK);
    const int c = ::accept4(listener_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (was_blocking)
        ::fcntl(listener_fd, F_SETFL, flags);
    if (c >= 0) {
        if (!refusal.empty()) [[maybe_unused]]
            auto n = ::send(c, refusal.data(), refusal.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        ::shutdown(c, SHUT_WR);
        // Drop what the client already sent, so the close is a FIN after the refusal and not a
        // reset that could destroy it (best effort: whatever arrives later may still reset).
        char sink[4096];
        for (int i = 0; i < 16 && ::recv(c, sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
        }
        ::close(c);
    }
    fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    return c >= 0;
}

} // namespace coronet::core::detail
