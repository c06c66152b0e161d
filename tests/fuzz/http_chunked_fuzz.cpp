// chunked_decoder alone: the input is a chunked message body (RFC 9112 §7.1), fed once in
// pseudo-random reads (fuzz/chunked_input.hpp, the caller keeping unconsumed bytes as a server
// does) and once in a single read. Both must decode the same bytes, stop at the same offset
// and reach the same verdict (done, error and which, or need more). Decoded bytes never
// outnumber input bytes nor exceed max_body_size, and body_size() counts them. Runs with the
// default limits and with small limits taken from the first input bytes (not consumed, so
// seed corpus files are plain chunked bodies).
#define FUZZ_TARGET_NAME "http_chunked_fuzz"
#include <coronet/http/error.hpp>
#include <coronet/http/parser.hpp>
#include <fuzz/chunked_input.hpp>
#include <fuzz/fuzz_check.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace coronet::http;
using coronet::fuzz::inside;
#define CHECK FUZZ_CHECK

struct outcome {
    std::string body;
    std::size_t end = 0; // input offset where decoding stopped
    bool done = false;
    int error = 0;

    bool operator==(const outcome&) const = default;
};

// Feeds `in` in reads ending at `ends`; like a server, unconsumed bytes stay in the buffer and
// are offered again with the next read.
outcome decode(std::string_view in, const std::vector<std::size_t>& ends,
               const parser_limits& limits) {
    chunked_decoder decoder(limits);
    outcome out;
    std::size_t pos = 0;
    for (std::size_t avail : ends) {
        while (pos < avail) {
            const std::string_view rest = in.substr(pos, avail - pos);
            const auto step = decoder.decode(rest);
            CHECK(step.consumed <= rest.size());
            CHECK(step.consumed > 0 || step.done || step.ec);
            CHECK(inside(step.data, rest.substr(0, step.consumed)));
            CHECK(step.data.size() <= step.consumed);
            out.body.append(step.data);
            pos += step.consumed;
            CHECK(decoder.body_size() == out.body.size());
            CHECK(out.body.size() <= pos);
            CHECK(out.body.size() <= limits.max_body_size);
            if (step.ec) {
                CHECK(step.ec.category() == http_category());
                const int status = status_of(step.ec);
                CHECK(status == 400 || status == 413 || status == 431);
                CHECK(!step.done);
                out.error = step.ec.value();
                out.end = pos;
                return out;
            }
            if (step.done) {
                CHECK(decoder.done());
                // Once done, the decoder takes nothing more.
                const auto again = decoder.decode(in.substr(pos));
                CHECK(again.consumed == 0 && again.data.empty() && again.done && !again.ec);
                out.done = true;
                out.end = pos;
                return out;
            }
            CHECK(!decoder.done());
        }
    }
    out.end = pos;
    CHECK(pos == in.size());
    return out;
}

parser_limits small_limits(std::span<const std::uint8_t> input) {
    auto byte = [&](std::size_t i) -> std::size_t { return i < input.size() ? input[i] : 0; };
    parser_limits l;
    l.max_body_size = byte(0) % 64 + byte(1) % 8;
    l.max_chunk_count = byte(1) % 8;
    l.max_chunk_extension = byte(2) % 16;
    l.max_trailer_bytes = byte(3) % 32;
    return l;
}

void compare(std::span<const std::uint8_t> input, const std::vector<std::size_t>& ends,
             const parser_limits& limits) {
    const std::string_view in = coronet::fuzz::as_chars(input);
    const outcome split = decode(in, ends, limits);
    const outcome oneshot = decode(
        in, in.empty() ? std::vector<std::size_t>{} : std::vector<std::size_t>{in.size()}, limits);
    if (!(split == oneshot)) {
        std::fprintf(stderr,
                     "http_chunked_fuzz: split and one-shot differ: split body %zu end %zu done %d "
                     "error %d; one-shot body %zu end %zu done %d error %d\n",
                     split.body.size(), split.end, split.done, split.error, oneshot.body.size(),
                     oneshot.end, oneshot.done, oneshot.error);
        __builtin_trap();
    }
    CHECK(split.body.size() <= input.size());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> input(data, size);
    std::vector<std::size_t> ends;
    std::size_t end = 0;
    coronet::fuzz::for_each_chunk(input, [&](std::span<const std::uint8_t> chunk) {
        end += chunk.size();
        ends.push_back(end);
    });
    compare(input, ends, parser_limits{});
    compare(input, ends, small_limits(input));
    return 0;
}
