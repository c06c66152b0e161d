#include "backend.hpp"

#include <cerrno>
#include <sys/socket.h>
#include <unistd.h>

namespace coronet::core::detail {

int perform_now(io_op& op) noexcept {
    const int fd = op.fds->fd;
    long r = 0;
    do {
        switch (op.code) {
        case op_code::recv:
        case op_code::recv_provided:
            r = ::recv(fd, op.buf, op.len, op.flags);
            break;
        case op_code::send:
            r = ::send(fd, op.buf, op.len, op.flags | MSG_NOSIGNAL);
            break;
        case op_code::sendmsg:
            r = ::sendmsg(fd, op.msg, op.flags | MSG_NOSIGNAL);
            break;
        case op_code::read:
            r = ::read(fd, op.buf, op.len);
            break;
        case op_code::accept:
            r = ::accept4(fd, op.addr, op.addr != nullptr ? &op.addrlen : nullptr,
                          SOCK_CLOEXEC | SOCK_NONBLOCK);
            break;
        case op_code::connect: {
            // A non-blocking connect is started once; later attempts read its outcome.
            if (op.res == 1) {
                int err = 0;
                socklen_t l = sizeof err;
                if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
                    return -errno;
                return err == 0 ? 0 : -err;
            }
            r = ::connect(fd, op.addr, op.addrlen);
            if (r < 0 && errno == EINPROGRESS) {
                op.res = 1;
                return -EAGAIN;
            }
            break;
        }
        }
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return static_cast<int>(r);
}

} // namespace coronet::core::detail
