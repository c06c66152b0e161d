// The server side of the opening handshake. The first input byte chooses the options (not part
// of the request):
//   bits 0-1 allowed origins: none (any), {https://app.example}, {https://app.example,
//            http://example.com}, {null}
//   bits 2-3 subprotocols: none, {chat}, {superchat, chat}, {v2.proto}
//   bit 4    max_request_bytes 96 instead of the default
// The rest is an HTTP request. Two runs:
// 1. check_upgrade (I/O-free) on the request split loosely into a method, a minor version and
//    header fields (lines split at LF, fields at the first colon, values trimmed; nothing is
//    rejected here). The verdict must hold its invariants: a known status; 101 only for GET,
//    HTTP/1.x with x >= 1, one valid key whose accept value is returned, version 13 once, an
//    allowed origin, a subprotocol both offered and configured; the fields to send rebuilt from
//    the verdict alone (so no input byte reaches them except through the accept value and the
//    configured subprotocol), with a reason taken from a fixed set.
// 2. accept_upgrade over a memory stream, the request written in pseudo-random chunks
//    (fuzz/chunked_input.hpp) with a loop iteration between chunks, then end of stream. The
//    outcome must agree with the input: 101 with the prefetched bytes being the ones after the
//    head and a response equal to check_upgrade's verdict on the returned headers, written as
//    the standalone server always wrote it; 431 only for a head over the limit; end_of_stream
//    only without a complete head and with nothing answered.
#define FUZZ_TARGET_NAME "ws_handshake_fuzz"
#include <coronet/core/buffer.hpp>
#include <coronet/core/error.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/task.hpp>
#include <coronet/core/timer.hpp>
#include <coronet/core/when.hpp>
#include <coronet/ws/error.hpp>
#include <coronet/ws/handshake.hpp>
#include <coronet/ws/upgrade.hpp>
#include <fuzz/chunked_input.hpp>
#include <fuzz/fuzz_check.hpp>
#include <testing/memory_stream.hpp>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

namespace core = coronet::core;
namespace ws = coronet::ws;
#define CHECK FUZZ_CHECK

bool iequal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

ws::server_handshake_options options_from(std::uint8_t b) {
    ws::server_handshake_options o;
    switch (b & 3U) {
    case 1:
        o.allowed_origins = {"https://app.example"};
        break;
    case 2:
        o.allowed_origins = {"https://app.example", "http://example.com"};
        break;
    case 3:
        o.allowed_origins = {"null"};
        break;
    default:
        break;
    }
    switch ((b >> 2) & 3U) {
    case 1:
        o.subprotocols = {"chat"};
        break;
    case 2:
        o.subprotocols = {"superchat", "chat"};
        break;
    case 3:
        o.subprotocols = {"v2.proto"};
        break;
    default:
        break;
    }
    if ((b & 0x10U) != 0)
        o.max_request_bytes = 96;
    return o;
}

/// The loose split of run 1.
struct loose_request {
    std::string_view method;
    int minor = 1;
    std::vector<ws::field> fields;
};

loose_request split_loosely(std::string_view text) {
    loose_request r;
    bool first = true;
    while (!text.empty()) {
        auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        if (first) {
            first = false;
            r.method = line.substr(0, line.find(' '));
            if (!line.empty() && std::isdigit(static_cast<unsigned char>(line.back())) != 0)
                r.minor = line.back() - '0';
            continue;
        }
        if (line.empty())
            break;
        auto colon = line.find(':');
        if (colon == std::string_view::npos)
            r.fields.emplace_back(line, std::string_view());
        else
            r.fields.emplace_back(line.substr(0, colon), trim(line.substr(colon + 1)));
    }
    return r;
}

std::vector<std::string_view> values_of(std::span<const ws::field> fields, std::string_view name) {
    std::vector<std::string_view> out;
    for (const auto& [k, v] : fields)
        if (iequal(k, name))
            out.push_back(v);
    return out;
}

bool offered(std::span<const ws::field> fields, std::string_view proto) {
    for (auto list : values_of(fields, "sec-websocket-protocol")) {
        while (true) {
            auto comma = list.find(',');
            if (trim(list.substr(0, comma)) == proto)
                return true;
            if (comma == std::string_view::npos)
                break;
            list.remove_prefix(comma + 1);
        }
    }
    return false;
}

std::string phrase_of(int status) {
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 403:
        return "Forbidden";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    default:
        return "Bad Request";
    }
}

/// A refusal as the server must word it: nothing but the status and the reason.
std::string expected_refusal(int status, std::string_view reason) {
    const std::string body = std::string(reason) + "\n";
    std::string r = "HTTP/1.1 " + std::to_string(status) + " " + phrase_of(status) + "\r\n";
    if (status == 426)
        r += "Sec-WebSocket-Version: 13\r\n";
    r += "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
    return r;
}

/// The fields a verdict may send: the 101's, or a 426's version.
std::vector<ws::response_field> expected_fields(int status, const std::string& accept,
                                                const std::string& subprotocol) {
    if (status == 426)
        return {{"Sec-WebSocket-Version", "13"}};
    if (status != 101)
        return {};
    std::vector<ws::response_field> f = {
        {"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Accept", accept}};
    if (!subprotocol.empty())
        f.emplace_back("Sec-WebSocket-Protocol", subprotocol);
    return f;
}

std::string expected_101(std::string_view accept, std::string_view subprotocol) {
    std::string r =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " +
        std::string(accept) + "\r\n";
    if (!subprotocol.empty())
        r += "Sec-WebSocket-Protocol: " + std::string(subprotocol) + "\r\n";
    return r + "\r\n";
}

/// Every reason check_upgrade gives, collected once from canned refusals, so that a reason can
/// be shown to hold no input byte whatever the wording.
const std::set<std::string>& known_reasons() {
    static const std::set<std::string> reasons = [] {
        const std::vector<ws::field> good = {{"Host", "h"},
                                             {"Upgrade", "websocket"},
                                             {"Connection", "Upgrade"},
                                             {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                                             {"Sec-WebSocket-Version", "13"}};
        ws::server_handshake_options strict;
        strict.allowed_origins = {"https://app.example"};
        std::set<std::string> out;
        out.insert(ws::check_upgrade("POST", 1, good, {}).reason);
        out.insert(ws::check_upgrade("GET", 0, good, {}).reason);
        out.insert(ws::check_upgrade("GET", 1, good, strict).reason);
        for (std::size_t drop = 0; drop < good.size(); ++drop) {
            auto fields = good;
            fields.erase(fields.begin() + static_cast<std::ptrdiff_t>(drop));
            out.insert(ws::check_upgrade("GET", 1, fields, {}).reason);
        }
        out.insert("malformed request");
        out.insert("malformed Sec-WebSocket-Extensions");
        out.insert("malformed request line");
        out.insert("handshake request too large");
        return out;
    }();
    return reasons;
}

void check_verdict(const ws::upgrade_verdict& v, std::string_view method, int minor,
                   std::span<const ws::field> fields, const ws::server_handshake_options& opts) {
    CHECK(v.status == 101 || v.status == 400 || v.status == 403 || v.status == 426);
    if (v.status != 101) {
        CHECK(v.accept.empty());
        CHECK(v.subprotocol.empty());
        CHECK(known_reasons().count(v.reason) == 1);
        CHECK(v.fields == expected_fields(v.status, v.accept, v.subprotocol));
        return;
    }
    CHECK(method == "GET");
    CHECK(minor >= 1);
    const auto keys = values_of(fields, "sec-websocket-key");
    CHECK(keys.size() == 1);
    CHECK(ws::valid_client_key(keys[0]));
    CHECK(v.accept == ws::accept_key(keys[0]));
    const auto versions = values_of(fields, "sec-websocket-version");
    CHECK(versions.size() == 1 && versions[0] == "13");
    CHECK(values_of(fields, "host").size() == 1);
    if (!opts.allowed_origins.empty()) {
        const auto origins = values_of(fields, "origin");
        CHECK(origins.size() == 1);
        CHECK(std::any_of(opts.allowed_origins.begin(), opts.allowed_origins.end(),
                          [&](const std::string& o) { return iequal(o, origins[0]); }));
    }
    if (v.subprotocol.empty()) {
        for (const auto& p : opts.subprotocols)
            CHECK(!offered(fields, p));
    } else {
        // The first configured one that was offered.
        auto it = std::find(opts.subprotocols.begin(), opts.subprotocols.end(), v.subprotocol);
        CHECK(it != opts.subprotocols.end());
        CHECK(offered(fields, v.subprotocol));
        for (auto p = opts.subprotocols.begin(); p != it; ++p)
            CHECK(!offered(fields, *p));
    }
    CHECK(v.fields == expected_fields(v.status, v.accept, v.subprotocol));
}

// ---- run 2: accept_upgrade over a memory stream

core::task<core::result<ws::accepted_upgrade>> serve(core::stream& s,
                                                     ws::server_handshake_options opts) {
    auto r = co_await ws::accept_upgrade(s, std::move(opts));
    (void)co_await s.shutdown();
    co_return r;
}

/// Writes `input` in chunks with a loop iteration between them, ends the stream, then reads
/// every byte the server wrote.
core::task<std::string> client(core::stream& s, std::span<const std::uint8_t> input) {
    coronet::fuzz::chunked_input chunks(input, 256);
    while (!chunks.done()) {
        auto chunk = coronet::fuzz::as_chars(chunks.next());
        auto w = co_await s.write_all(core::as_bytes(chunk));
        CHECK(w.has_value());
        (void)co_await core::sleep_for(core::clock::duration::zero());
    }
    CHECK(co_await s.shutdown());
    std::string got;
    char buf[512];
    for (;;) {
        auto n = co_await s.read_some(
            core::mutable_buffer(reinterpret_cast<std::byte*>(buf), sizeof buf));
        if (!n) {
            CHECK(n.error() == core::errc::end_of_stream);
            co_return got;
        }
        got.append(buf, *n);
    }
}

struct stream_outcome {
    std::optional<core::result<ws::accepted_upgrade>> accepted;
    std::string response;
};

core::task<void> exchange(core::loop& lp, std::span<const std::uint8_t> input,
                          ws::server_handshake_options opts, stream_outcome& out) {
    auto [client_end, server_end] = coronet::testing::memory_stream_pair(lp);
    auto [accepted, response] =
        co_await core::when_all(serve(*server_end, std::move(opts)), client(*client_end, input));
    out.accepted = std::move(accepted);
    out.response = std::move(response);
}

core::loop& fuzz_loop() {
    static core::loop lp([] {
        core::loop_options o;
        o.backend = core::backend_kind::epoll; // cheap to run; the stream never touches the kernel
        return o;
    }());
    return lp;
}

void check_stream(std::span<const std::uint8_t> input, const ws::server_handshake_options& opts) {
    const std::string_view text = coronet::fuzz::as_chars(input);
    stream_outcome out;
    core::run(fuzz_loop(), exchange(fuzz_loop(), input, opts, out));
    CHECK(out.accepted.has_value());
    const auto& r = *out.accepted;
    const auto end_of_head = text.find("\r\n\r\n");
    const std::size_t head_size = end_of_head == std::string_view::npos ? 0 : end_of_head + 4;

    if (!r) {
        if (r.error() == core::errc::end_of_stream) {
            CHECK(out.response.empty());
            CHECK(head_size == 0 || head_size > opts.max_request_bytes);
            CHECK(text.size() <= opts.max_request_bytes + 1);
            return;
        }
        CHECK(r.error() == ws::errc::bad_handshake);
        CHECK(out.response.starts_with("HTTP/1.1 "));
        const int status = std::atoi(out.response.substr(9, 3).c_str());
        CHECK(status == 400 || status == 403 || status == 426 || status == 431);
        if (status == 431)
            CHECK(head_size == 0 || head_size > opts.max_request_bytes);
        else
            CHECK(head_size != 0 && head_size <= opts.max_request_bytes);
        // The reason is the body: the response is exactly a refusal with a known reason.
        auto body_at = out.response.find("\r\n\r\n");
        CHECK(body_at != std::string::npos && out.response.back() == '\n');
        std::string reason = out.response.substr(body_at + 4, out.response.size() - body_at - 5);
        CHECK(known_reasons().count(reason) == 1);
        CHECK(out.response == expected_refusal(status, reason));
        return;
    }
    CHECK(head_size != 0 && head_size <= opts.max_request_bytes);
    // The prefetched bytes are the ones right after the head, as many as were read.
    const std::string_view after = text.substr(head_size);
    CHECK(r->prefetched.size() <= after.size());
    CHECK(core::as_string(r->prefetched) == after.substr(0, r->prefetched.size()));
    // A request-target without controls or spaces.
    CHECK(!r->target.empty());
    CHECK(std::none_of(r->target.begin(), r->target.end(),
                       [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; }));
    // The same verdict as the I/O-free check on the fields it parsed.
    std::vector<ws::field> fields;
    for (const auto& [k, v] : r->headers)
        fields.emplace_back(k, v);
    // Exactly "GET <target> HTTP/1.<digit>".
    const std::string_view line = text.substr(0, text.find("\r\n"));
    CHECK(line.size() == r->target.size() + 13);
    CHECK(line.substr(0, line.size() - 1) == "GET " + r->target + " HTTP/1.");
    CHECK(line.back() >= '1' && line.back() <= '9');
    const auto v = ws::check_upgrade("GET", line.back() - '0', fields, opts);
    CHECK(v.status == 101);
    check_verdict(v, "GET", line.back() - '0', fields, opts);
    CHECK(out.response == expected_101(v.accept, v.subprotocol));
    CHECK(r->subprotocol == v.subprotocol);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return 0;
    const ws::server_handshake_options opts = options_from(data[0]);
    const std::span<const std::uint8_t> input(data + 1, size - 1);
    const std::string_view text = coronet::fuzz::as_chars(input);

    const loose_request req = split_loosely(text);
    const auto v = ws::check_upgrade(req.method, req.minor, req.fields, opts);
    check_verdict(v, req.method, req.minor, req.fields, opts);

    if (input.size() <= 64 * 1024)
        check_stream(input, opts);
    return 0;
}
