// A few buffers kept per thread between messages: a session gives its inflate or compress
// buffer back when the message is over and takes one again for the next, so a compressed
// exchange allocates nothing per message and an idle session holds no such buffer.
#pragma once

#include <cstddef>
#include <utility>

namespace coronet::ws::detail {

/// `Buf` is a std::string or std::vector: moving it moves its memory. Up to `slots` buffers of at
/// most `max_bytes` capacity each are kept (per Buf type, per thread); larger ones are freed.
template <class Buf, int slots = 4, std::size_t max_bytes = 256 * 1024>
class thread_buffer_cache {
public:
    /// Empties `b`; its memory goes to this thread's cache (or is freed).
    static void give_back(Buf& b) noexcept {
        store& s = get();
        if (b.capacity() > Buf().capacity() && b.capacity() <= max_bytes && s.count < slots &&
            s.alive)
            s.bufs[s.count++] = std::move(b);
        Buf().swap(b);
    }
    /// Gives an empty `b` that owns no memory a cached buffer, if there is one.
    static void take(Buf& b) noexcept {
        store& s = get();
        if (b.capacity() <= Buf().capacity() && s.count > 0 && s.alive) { // (a string's 15)
            b = std::move(s.bufs[--s.count]);
            b.clear();
        }
    }

private:
    struct store {
        Buf bufs[slots];
        int count = 0;
        bool alive = true;
        store() = default;
        store(const store&) = delete;
        store& operator=(const store&) = delete;
        ~store() {
            alive = false;
            count = 0;
        }
    };
    static store& get() noexcept {
        thread_local store s;
        return s;
    }
};

} // namespace coronet::ws::detail
