// docs/build.md, "Shared and static libraries, symbol visibility": what a layer's public header
// marks with its export macro. The names are made up; core/include/coronet/core/loop.hpp marks
// `class loop` and `uring_available()` the same way. Compiled, not linked, by the docs tests.
// [docs:begin]
#include <coronet/core/export.hpp>

#include <cstddef>

namespace coronet::core {

// A class with out-of-line members, a vtable or typeinfo: mark the class.
class CORONET_CORE_EXPORT byte_counter {
public:
    virtual ~byte_counter();
    void add(std::size_t n); // defined in core/src/
    std::size_t total() const noexcept { return total_; }

private:
    std::size_t total_ = 0;
};

// A free function defined in core/src/: mark it.
CORONET_CORE_EXPORT bool byte_counting_enabled() noexcept;

// Templates and inline functions: no mark.
template <class T>
std::size_t bytes_of(const T&) noexcept {
    return sizeof(T);
}

} // namespace coronet::core
// [docs:end]
