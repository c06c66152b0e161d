#pragma once
// The loop's operation interface, for core's own sources only (not installed): starting and
// cancelling operations, descriptors, timers and provided buffers. Public headers never need
// it, so `loop.hpp` keeps these members private.

#include <coronet/core/loop.hpp>

namespace coronet::core::detail {

struct loop_access {
    static bool start(loop& lp, io_op& op) { return lp.start(op); }
    static void cancel(loop& lp, io_op& op) noexcept { lp.cancel(op); }
    static void remove_fd(loop& lp, fd_state& fds) noexcept { lp.remove_fd(fds); }
    static void add_timer(loop& lp, timer_node& t) { lp.add_timer(t); }
    static void remove_timer(loop& lp, timer_node& t) noexcept { lp.remove_timer(t); }
    static std::span<std::byte> provided_buffer(const loop& lp, std::uint32_t cqe_flags,
                                                unsigned& id) noexcept {
        return lp.provided_buffer(cqe_flags, id);
    }
    static void recycle_provided_buffer(loop& lp, unsigned id) noexcept {
        lp.recycle_provided_buffer(id);
    }
};

} // namespace coronet::core::detail
