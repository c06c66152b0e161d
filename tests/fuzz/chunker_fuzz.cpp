// Self-test of the fuzz infrastructure: chunked_input must hand out non-empty chunks, within
// the size bound, that concatenate back to the input, and the same partition every time.
#include <fuzz/chunked_input.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

void require(bool condition) {
    if (!condition) {
        std::abort();
    }
}

std::vector<std::size_t> partition(std::span<const std::uint8_t> input, std::size_t max_chunk,
                                   std::vector<std::uint8_t>& joined) {
    std::vector<std::size_t> sizes;
    coronet::fuzz::for_each_chunk(
        input,
        [&](std::span<const std::uint8_t> chunk) {
            require(!chunk.empty());
            require(chunk.size() <= max_chunk);
            joined.insert(joined.end(), chunk.begin(), chunk.end());
            sizes.push_back(chunk.size());
        },
        max_chunk);
    return sizes;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> input(data, size);
    const std::size_t max_chunk = size == 0 ? 1 : 1 + data[size - 1] % 64;

    std::vector<std::uint8_t> joined;
    const auto sizes = partition(input, max_chunk, joined);
    require(joined.size() == size);
    require(size == 0 || std::memcmp(joined.data(), data, size) == 0);
    require(sizes.size() <= size);

    std::vector<std::uint8_t> again;
    require(partition(input, max_chunk, again) == sizes);

    // Early stop: returning false ends the walk after the first chunk.
    std::size_t calls = 0;
    coronet::fuzz::for_each_chunk(input, [&](std::span<const std::uint8_t>) {
        ++calls;
        return false;
    });
    require(calls == (size == 0 ? 0U : 1U));
    return 0;
}
