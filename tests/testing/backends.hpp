#pragma once

// Test helpers that run a test body once per loop backend.

#include <coronet/core/loop.hpp>

#include <doctest/doctest.h>

namespace coronet::testing {

/// Tag types for TEST_CASE_TEMPLATE: one test case per backend.
struct epoll_backend {
    static constexpr core::backend_kind kind = core::backend_kind::epoll;
};
struct uring_backend {
    static constexpr core::backend_kind kind = core::backend_kind::uring;
};

/// True if the backend can run here (io_uring may be missing or forbidden).
template <class B>
bool available() {
    return B::kind == core::backend_kind::epoll || core::uring_available();
}

/// Loop options forcing the backend of `B`.
template <class B>
core::loop_options options() {
    core::loop_options o;
    o.backend = B::kind;
    return o;
}

} // namespace coronet::testing

TYPE_TO_STRING(coronet::testing::epoll_backend);
TYPE_TO_STRING(coronet::testing::uring_backend);

/// The backend list for TEST_CASE_TEMPLATE.
#define CORONET_BACKENDS coronet::testing::epoll_backend, coronet::testing::uring_backend

/// First statement of a backend-templated test: skips cleanly (with a message the test summary
/// counts) when the backend is unavailable on this kernel.
#define CORONET_REQUIRE_BACKEND(B)                                                                 \
    do {                                                                                           \
        if (!coronet::testing::available<B>()) {                                                   \
            MESSAGE("io_uring unavailable: skipped");                                              \
            return;                                                                                \
        }                                                                                          \
    } while (false)
