// response_parser (+ chunked_decoder for chunked bodies) as a client drives it: the input is
// one connection's byte stream, split into pseudo-random reads (fuzz/chunked_input.hpp). Each
// read grows one buffer; the parser sees parse(buf[message_start, bytes_received)) until it
// answers complete or error, then the body is read (Content-Length bytes, chunked_decoder over
// the same reads, or everything until the end for a close-delimited body), and further
// responses (after 1xx, or pipelined) follow. Whether the request was HEAD comes from the last
// input byte (odd: HEAD), so plain responses in the seed corpus are GET answers.
//
// Oracle: the transcript (verdicts, error codes, head_size, status, header count, framing,
// decoded body, message ends) must equal the one obtained with the whole input in a single
// read, with default limits and with small limits derived from the input; plus invariants of
// every complete head and every error.
#define FUZZ_TARGET_NAME "http_response_fuzz"
#include <coronet/http/error.hpp>
#include <coronet/http/headers.hpp>
#include <coronet/http/parser.hpp>
#include <fuzz/chunked_input.hpp>
#include <fuzz/fuzz_check.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace coronet::http;
using coronet::fuzz::inside;
#define CHECK FUZZ_CHECK

constexpr int max_messages = 16;

bool allowed_status(int s) {
    return s == 400 || s == 413 || s == 414 || s == 417 || s == 431 || s == 501 || s == 505;
}

bool is_ows(char c) {
    return c == ' ' || c == '\t';
}

void check_error(const std::error_code& ec) {
    CHECK(static_cast<bool>(ec));
    CHECK(ec.category() == http_category());
    CHECK(allowed_status(status_of(ec)));
}

void check_head(const response_parser& p, std::string_view buf, const parser_limits& lim,
                bool head_request) {
    const response_head& h = p.head();
    CHECK(!p.error());
    CHECK(p.head_size() >= 4 && p.head_size() <= buf.size());
    CHECK(p.head_size() <= lim.max_header_bytes);
    const std::string_view head = buf.substr(0, p.head_size());
    CHECK(head.substr(head.size() - 4) == "\r\n\r\n");

    CHECK(h.status >= 100 && h.status <= 999);
    CHECK(inside(h.reason, head));
    CHECK(detail::is_field_value(h.reason));
    CHECK(h.version_minor == 0 || h.version_minor == 1);
    CHECK(h.headers.size() <= lim.max_header_count);
    for (const auto& f : h.headers.fields()) {
        CHECK(inside(f.name, head) && inside(f.value, head));
        CHECK(detail::is_token(f.name));
        CHECK(detail::is_field_value(f.value));
        CHECK(f.value.empty() || (!is_ows(f.value.front()) && !is_ows(f.value.back())));
    }

    // Message body length (RFC 9112 §6.3).
    CHECK(h.content_length <= lim.max_body_size);
    const bool bodiless = head_request || h.status < 200 || h.status == 204 || h.status == 304;
    if (bodiless) {
        CHECK(h.body == body_kind::none && h.content_length == 0);
    }
    const bool has_te = h.headers.contains("transfer-encoding");
    // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing; the client
    // MUST close the connection after processing it.
    if (has_te && h.version_minor == 0 && h.body != body_kind::none) {
        CHECK(!h.keep_alive);
    }
    switch (h.body) {
    case body_kind::none:
        CHECK(h.content_length == 0);
        CHECK(bodiless || !has_te);
        break;
    case body_kind::content_length:
        CHECK(!has_te && h.content_length > 0);
        break;
    case body_kind::chunked:
        CHECK(has_te && h.content_length == 0);
        break;
    case body_kind::until_close:
        CHECK(!h.keep_alive && h.content_length == 0);
        break;
    }
}

void append_num(std::string& out, std::uint64_t v) {
    out += std::to_string(v);
    out += ' ';
}

std::string receive_responses(std::string_view in, const std::vector<std::size_t>& ends,
                              const parser_limits& limits, bool head_request) {
    std::string log;
    std::size_t next = 0;
    std::size_t avail = 0;
    auto receive = [&]() {
        if (next == ends.size()) {
            return false;
        }
        CHECK(ends[next] > avail);
        avail = ends[next++];
        return true;
    };
    receive();

    std::size_t offset = 0;
    response_parser parser(limits);
    for (int message = 0; message < max_messages; ++message) {
        parser.reset();
        parser.set_head_request(head_request);
        parse_status st = parse_status::need_more;
        std::string_view buf;
        for (;;) {
            buf = in.substr(offset, avail - offset);
            st = parser.parse(buf);
            if (st != parse_status::need_more) {
                break;
            }
            CHECK(!parser.error());
            if (!receive()) {
                break;
            }
        }
        CHECK(parser.parse(buf) == st);

        if (st == parse_status::need_more) {
            log += offset == in.size() ? "end\n" : "eof-in-head\n";
            return log;
        }
        if (st == parse_status::error) {
            check_error(parser.error());
            log += "error ";
            append_num(log, static_cast<std::uint64_t>(parser.error().value()));
            log += '\n';
            return log;
        }

        check_head(parser, buf, limits, head_request);
        const response_head& h = parser.head();
        log += "head ";
        append_num(log, parser.head_size());
        append_num(log, static_cast<std::uint64_t>(h.status));
        log += h.reason;
        log += ' ';
        append_num(log, h.headers.size());
        append_num(log, static_cast<std::uint64_t>(h.body));
        append_num(log, h.content_length);
        append_num(log, h.version_minor);
        append_num(log, h.keep_alive);
        log += '\n';

        std::size_t pos = offset + parser.head_size();
        switch (h.body) {
        case body_kind::none:
            break;
        case body_kind::content_length:
            if (in.size() - pos < h.content_length) {
                log += "eof-in-body\n";
                return log;
            }
            pos += static_cast<std::size_t>(h.content_length);
            break;
        case body_kind::until_close:
            log += "until-close ";
            append_num(log, in.size() - pos);
            log += '\n';
            return log;
        case body_kind::chunked: {
            chunked_decoder decoder(limits);
            std::string body;
            for (;;) {
                if (pos == avail && !receive()) {
                    log += "eof-in-chunked ";
                    append_num(log, body.size());
                    log += '\n';
                    return log;
                }
                const std::string_view rest = in.substr(pos, avail - pos);
                const auto step = decoder.decode(rest);
                CHECK(step.consumed <= rest.size());
                CHECK(step.consumed > 0 || step.done || step.ec);
                CHECK(inside(step.data, rest.substr(0, step.consumed)));
                body.append(step.data);
                CHECK(decoder.body_size() == body.size());
                CHECK(body.size() <= limits.max_body_size);
                pos += step.consumed;
                if (step.ec) {
                    check_error(step.ec);
                    log += "chunk-error ";
                    append_num(log, static_cast<std::uint64_t>(step.ec.value()));
                    append_num(log, pos);
                    log += body;
                    log += '\n';
                    return log;
                }
                if (step.done) {
                    CHECK(decoder.done());
                    break;
                }
            }
            log += "chunked ";
            append_num(log, body.size());
            log += body;
            log += '\n';
            break;
        }
        }
        log += "next ";
        append_num(log, pos);
        log += '\n';
        // 101 switches protocols; a closing response ends the connection.
        if (h.status == 101 || (!h.keep_alive && h.status >= 200)) {
            return log;
        }
        offset = pos;
        while (avail < offset) {
            receive();
        }
    }
    return log;
}

std::uint64_t hash_of(std::span<const std::uint8_t> data) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (std::uint8_t b : data) {
        h = (h ^ b) * 0x100000001b3ULL;
    }
    return h;
}

parser_limits small_limits(std::uint64_t h) {
    parser_limits l;
    l.max_request_line = 4 + h % 96;
    l.max_header_bytes = 8 + (h >> 8) % 320;
    l.max_header_count = (h >> 18) % 8;
    l.max_body_size = (h >> 22) % 200;
    l.max_chunk_count = (h >> 30) % 12;
    l.max_chunk_extension = (h >> 34) % 24;
    l.max_trailer_bytes = (h >> 40) % 48;
    return l;
}

void compare(std::string_view in, const std::vector<std::size_t>& ends, const parser_limits& limits,
             bool head_request) {
    const std::string split = receive_responses(in, ends, limits, head_request);
    const std::vector<std::size_t> whole{in.size()};
    const std::string oneshot = receive_responses(
        in, in.empty() ? std::vector<std::size_t>{} : whole, limits, head_request);
    if (std::getenv("CORONET_FUZZ_PRINT") != nullptr) { // debugging a reproducer
        std::fprintf(stderr, "--- transcript:\n%s", split.c_str());
    }
    if (split != oneshot) {
        std::fprintf(stderr,
                     "http_response_fuzz: split and one-shot verdicts differ\n"
                     "--- split:\n%s--- one-shot:\n%s---\n",
                     split.c_str(), oneshot.c_str());
        __builtin_trap();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> input(data, size);
    const std::string_view in = coronet::fuzz::as_chars(input);
    const bool head_request = size > 0 && (data[size - 1] & 1U) != 0;

    std::vector<std::size_t> ends;
    std::size_t end = 0;
    coronet::fuzz::for_each_chunk(input, [&](std::span<const std::uint8_t> chunk) {
        end += chunk.size();
        ends.push_back(end);
    });

    compare(in, ends, parser_limits{}, head_request);
    compare(in, ends, small_limits(hash_of(input)), head_request);
    return 0;
}
