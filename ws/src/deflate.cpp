// permessage-deflate (RFC 7692): negotiation and the zlib codec.
#include <coronet/ws/deflate.hpp>
#include <coronet/ws/error.hpp>

#include "text.hpp"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <new>

namespace coronet::ws {
namespace {

// ------------------------------------------------------------------------------------------
// Sec-WebSocket-Extensions grammar (RFC 6455 §9.1, RFC 9110 §5.6)

bool is_tchar(char c) noexcept {
    if (std::isalnum(static_cast<unsigned char>(c)) != 0)
        return true;
    return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

using detail::iequal;

struct lexer {
    std::string_view s;
    std::size_t i = 0;
    void ows() noexcept {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t'))
            ++i;
    }
    bool at(char c) const noexcept { return i < s.size() && s[i] == c; }
    bool done() const noexcept { return i >= s.size(); }
    std::optional<std::string> token() {
        const std::size_t b = i;
        while (i < s.size() && is_tchar(s[i]))
            ++i;
        if (i == b)
            return std::nullopt;
        return std::string(s.substr(b, i - b));
    }
    // quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE; §9.1 wants a token inside.
    std::optional<std::string> quoted() {
        if (!at('"'))
            return std::nullopt;
        ++i;
        std::string out;
        for (;;) {
            if (i >= s.size())
                return std::nullopt;
            char c = s[i++];
            if (c == '"')
                break;
            if (c == '\\') {
                if (i >= s.size())
                    return std::nullopt;
                c = s[i++];
            }
            out += c;
        }
        if (out.empty() || !std::all_of(out.begin(), out.end(), is_tchar))
            return std::nullopt;
        return out;
    }
};

// "8".."15" with no sign, no leading zero.
std::optional<std::uint8_t> window_bits(const std::optional<std::string>& v) noexcept {
    if (!v || v->empty() || v->size() > 2 || (*v)[0] == '0')
        return std::nullopt;
    int n = 0;
    for (char c : *v) {
        if (c < '0' || c > '9')
            return std::nullopt;
        n = n * 10 + (c - '0');
    }
    if (n < 8 || n > 15)
        return std::nullopt;
    return static_cast<std::uint8_t>(n);
}

// One permessage-deflate element's parameters, checked (RFC 7692 §7.1): known names, each at
// most once, values where they belong.
struct deflate_offer_params {
    bool server_no_context_takeover = false;
    bool client_no_context_takeover = false;
    std::optional<std::uint8_t> server_max_window_bits;
    bool client_max_window_bits = false; ///< present (with or without a value)
    std::optional<std::uint8_t> client_max_window_bits_value;
};

std::optional<deflate_offer_params> check_params(const extension& e) {
    deflate_offer_params p;
    bool seen[4] = {};
    for (const auto& prm : e.params) {
        if (prm.name == "server_no_context_takeover") {
            if (seen[0] || prm.value)
                return std::nullopt;
            seen[0] = p.server_no_context_takeover = true;
        } else if (prm.name == "client_no_context_takeover") {
            if (seen[1] || prm.value)
                return std::nullopt;
            seen[1] = p.client_no_context_takeover = true;
        } else if (prm.name == "server_max_window_bits") {
            if (seen[2])
                return std::nullopt;
            seen[2] = true;
            p.server_max_window_bits = window_bits(prm.value);
            if (!p.server_max_window_bits)
                return std::nullopt;
        } else if (prm.name == "client_max_window_bits") {
            if (seen[3])
                return std::nullopt;
            seen[3] = p.client_max_window_bits = true;
            if (prm.value) {
                p.client_max_window_bits_value = window_bits(prm.value);
                if (!p.client_max_window_bits_value)
                    return std::nullopt;
            }
        } else {
            return std::nullopt;
        }
    }
    return p;
}

std::uint8_t clamp_bits(std::uint8_t b) noexcept {
    return std::clamp<std::uint8_t>(b, 8, 15);
}

// ------------------------------------------------------------------------------------------
// zlib state pools: a connection whose side keeps no context borrows a z_stream per message.

struct pooled {
    z_stream* z;
    int key;
};

constexpr std::size_t pool_cap = 16;

struct z_pool {
    std::vector<pooled> free;
    bool deflating;
    explicit z_pool(bool d) : deflating(d) { free.reserve(pool_cap); }
    ~z_pool() {
        for (auto& p : free) {
            if (deflating)
                deflateEnd(p.z);
            else
                inflateEnd(p.z);
            delete p.z;
        }
    }
    z_stream* take(int key) noexcept {
        for (std::size_t i = 0; i < free.size(); ++i) {
            if (free[i].key != key)
                continue;
            z_stream* z = free[i].z;
            free[i] = free.back();
            free.pop_back();
            return z;
        }
        return nullptr;
    }
    void give(z_stream* z, int key) {
        if (free.size() < pool_cap) {
            free.push_back({z, key});
            return;
        }
        if (deflating)
            deflateEnd(z);
        else
            inflateEnd(z);
        delete z;
    }
};

z_pool& deflate_pool() {
    thread_local z_pool p(true);
    return p;
}
z_pool& inflate_pool() {
    thread_local z_pool p(false);
    return p;
}

int deflate_key(int bits, int level, int mem) noexcept {
    return ((level + 1) * 16 + mem) * 16 + bits;
}

z_stream* new_deflate(int bits, int level, int mem) {
    auto* z = new z_stream{};
    // Raw deflate (negative window bits): no zlib header or trailer (RFC 7692 §7.2.1).
    if (deflateInit2(z, level, Z_DEFLATED, -bits, mem, Z_DEFAULT_STRATEGY) != Z_OK) {
        delete z;
        throw std::bad_alloc();
    }
    return z;
}

z_stream* new_inflate(int bits) {
    auto* z = new z_stream{};
    if (inflateInit2(z, -bits) != Z_OK) {
        delete z;
        throw std::bad_alloc();
    }
    return z;
}

const std::byte tail[4] = {std::byte{0}, std::byte{0}, std::byte{0xff}, std::byte{0xff}};

void run_deflate(z_stream* z, std::span<const std::byte> in, std::vector<std::byte>& out) {
    const std::size_t start = out.size();
    z->next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
    z->avail_in = static_cast<uInt>(in.size());
    std::size_t room = deflateBound(z, static_cast<uLong>(in.size())) + 16;
    for (;;) {
        const std::size_t used = out.size();
        out.resize(used + room);
        z->next_out = reinterpret_cast<Bytef*>(out.data() + used);
        z->avail_out = static_cast<uInt>(room);
        int rc = deflate(z, Z_SYNC_FLUSH);
        out.resize(out.size() - z->avail_out);
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            throw std::bad_alloc();
        if (z->avail_out != 0 && z->avail_in == 0)
            break;
        room = 4096 + in.size() / 4;
    }
    // A sync flush ends with an empty stored block, 00 00 ff ff, which the wire omits.
    if (out.size() - start >= 4 && std::memcmp(out.data() + out.size() - 4, tail, 4) == 0)
        out.resize(out.size() - 4);
}

} // namespace

// ------------------------------------------------------------------------------------------
// Negotiation

std::optional<std::vector<extension>>
parse_extensions(std::span<const std::string_view> field_values) {
    std::vector<extension> out;
    for (std::string_view v : field_values) {
        lexer lx{v};
        for (;;) {
            lx.ows();
            if (lx.done())
                break;
            if (lx.at(',')) { // an empty list element
                ++lx.i;
                continue;
            }
            auto name = lx.token();
            if (!name)
                return std::nullopt;
            extension e;
            e.name = std::move(*name);
            lx.ows();
            while (lx.at(';')) {
                ++lx.i;
                lx.ows();
                auto pname = lx.token();
                if (!pname)
                    return std::nullopt;
                extension_param p;
                p.name = std::move(*pname);
                lx.ows();
                if (lx.at('=')) {
                    ++lx.i;
                    lx.ows();
                    p.value = lx.at('"') ? lx.quoted() : lx.token();
                    if (!p.value)
                        return std::nullopt;
                    lx.ows();
                }
                e.params.push_back(std::move(p));
            }
            out.push_back(std::move(e));
            if (lx.done())
                break;
            if (!lx.at(','))
                return std::nullopt;
            ++lx.i;
        }
    }
    return out;
}

std::optional<deflate_agreement> negotiate_deflate(std::span<const extension> offers,
                                                   const deflate_options& opts) {
    if (!opts.enabled)
        return std::nullopt;
    for (const auto& e : offers) {
        if (!iequal(e.name, "permessage-deflate"))
            continue;
        auto offer = check_params(e);
        if (!offer)
            continue; // declined; maybe a later offer fits
        deflate_agreement a;
        auto& p = a.params;
        p.server_no_context_takeover =
            offer->server_no_context_takeover || opts.server_no_context_takeover;
        p.client_no_context_takeover =
            offer->client_no_context_takeover || opts.client_no_context_takeover;
        p.server_max_window_bits = clamp_bits(opts.server_max_window_bits);
        if (offer->server_max_window_bits)
            p.server_max_window_bits =
                std::min(p.server_max_window_bits, *offer->server_max_window_bits);
        p.client_max_window_bits = 15;
        bool answer_client_bits = false;
        if (offer->client_max_window_bits) {
            p.client_max_window_bits = clamp_bits(opts.client_max_window_bits);
            if (offer->client_max_window_bits_value)
                p.client_max_window_bits =
                    std::min(p.client_max_window_bits, *offer->client_max_window_bits_value);
            answer_client_bits =
                p.client_max_window_bits < 15 || offer->client_max_window_bits_value.has_value();
        }
        a.response = "permessage-deflate";
        if (p.server_no_context_takeover)
            a.response += "; server_no_context_takeover";
        if (p.client_no_context_takeover)
            a.response += "; client_no_context_takeover";
        if (offer->server_max_window_bits || p.server_max_window_bits < 15)
            a.response += "; server_max_window_bits=" + std::to_string(p.server_max_window_bits);
        if (answer_client_bits)
            a.response += "; client_max_window_bits=" + std::to_string(p.client_max_window_bits);
        return a;
    }
    return std::nullopt;
}

std::string deflate_offer(const deflate_options& opts) {
    std::string s = "permessage-deflate";
    if (opts.server_no_context_takeover)
        s += "; server_no_context_takeover";
    if (opts.client_no_context_takeover)
        s += "; client_no_context_takeover";
    const auto sbits = clamp_bits(opts.server_max_window_bits);
    if (sbits < 15)
        s += "; server_max_window_bits=" + std::to_string(sbits);
    // Always offered: it tells the server we can compress with a smaller window (§7.1.2.2).
    s += "; client_max_window_bits";
    const auto cbits = clamp_bits(opts.client_max_window_bits);
    if (cbits < 15)
        s += "=" + std::to_string(cbits);
    return s;
}

core::result<std::optional<deflate_params>>
accept_deflate_answer(std::span<const std::string_view> field_values, const deflate_options& opts) {
    auto list = parse_extensions(field_values);
    if (!list)
        return make_error_code(handshake_errc::invalid_extension);
    if (list->empty())
        return std::optional<deflate_params>();
    // RFC 6455 §4.1 item 5: anything we did not offer fails the connection.
    for (const auto& e : *list)
        if (!opts.enabled || !iequal(e.name, "permessage-deflate"))
            return make_error_code(handshake_errc::unoffered_extension);
    if (list->size() != 1)
        return make_error_code(handshake_errc::invalid_extension);
    auto got = check_params((*list)[0]);
    if (!got)
        return make_error_code(handshake_errc::invalid_extension);
    deflate_params p;
    p.server_no_context_takeover = got->server_no_context_takeover;
    p.client_no_context_takeover =
        got->client_no_context_takeover || opts.client_no_context_takeover;
    if (opts.server_no_context_takeover && !got->server_no_context_takeover)
        return make_error_code(handshake_errc::invalid_extension);
    const auto asked_sbits = clamp_bits(opts.server_max_window_bits);
    if (got->server_max_window_bits) {
        if (*got->server_max_window_bits > asked_sbits)
            return make_error_code(handshake_errc::invalid_extension);
        p.server_max_window_bits = *got->server_max_window_bits;
    } else if (asked_sbits < 15) {
        return make_error_code(handshake_errc::invalid_extension);
    }
    const auto offered_cbits = clamp_bits(opts.client_max_window_bits);
    p.client_max_window_bits = offered_cbits;
    if (got->client_max_window_bits) {
        // The answer needs a value (§7.1.2.2), no larger than the one offered.
        if (!got->client_max_window_bits_value ||
            *got->client_max_window_bits_value > offered_cbits)
            return make_error_code(handshake_errc::invalid_extension);
        p.client_max_window_bits = *got->client_max_window_bits_value;
    }
    return std::optional<deflate_params>(p);
}

// ------------------------------------------------------------------------------------------
// Codec

deflater::deflater(int window_bits, bool no_context_takeover, int level, int mem_level) noexcept
    : window_bits_(window_bits), no_context_takeover_(no_context_takeover), level_(level),
      mem_level_(mem_level) {}

deflater::~deflater() {
    if (z_ == nullptr)
        return;
    deflateEnd(z_);
    delete z_;
}

void deflater::compress(std::span<const std::byte> in, std::vector<std::byte>& out) {
    if (!no_context_takeover_) {
        if (z_ == nullptr)
            z_ = new_deflate(window_bits_, level_, mem_level_);
        run_deflate(z_, in, out);
        return;
    }
    compress_message(in, out, window_bits_, level_, mem_level_);
}

void compress_message(std::span<const std::byte> in, std::vector<std::byte>& out, int window_bits,
                      int level, int mem_level) {
    const int key = deflate_key(window_bits, level, mem_level);
    z_stream* z = deflate_pool().take(key);
    if (z == nullptr)
        z = new_deflate(window_bits, level, mem_level);
    try {
        run_deflate(z, in, out);
    } catch (...) {
        deflateEnd(z);
        delete z;
        throw;
    }
    deflateReset(z);
    deflate_pool().give(z, key);
}

inflater::inflater(int window_bits, bool no_context_takeover) noexcept
    : window_bits_(std::max(window_bits, 9)), no_context_takeover_(no_context_takeover) {
    // A window of 8 is inflated with 9: zlib-based senders that agreed to 8 compress with 9.
}

inflater::~inflater() {
    if (z_ == nullptr)
        return;
    inflateEnd(z_);
    delete z_;
}

// Inflates `in` into `out` until zlib has used all of it and has nothing more to give (false),
// or `out` grew by `max_append` bytes past `start` (true: call again). `used`: the bytes of `in`
// zlib took.
core::result<bool> inflater::pump(std::span<const std::byte> in, std::string& out,
                                  std::size_t start, std::size_t max_append, std::size_t& used) {
    if (!in.empty())
        ended_ = false;
    z_->next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
    z_->avail_in = static_cast<uInt>(in.size());
    for (;;) {
        used = in.size() - z_->avail_in;
        const std::size_t produced = out.size() - start;
        if (produced == max_append)
            return true;
        // Guess the output size, so that a small message does not clear a big buffer.
        const std::size_t room = std::min<std::size_t>(std::max<std::size_t>(in.size() * 3, 1024),
                                                       max_append - produced);
        const std::size_t at = out.size();
        out.resize(at + room);
        z_->next_out = reinterpret_cast<Bytef*>(out.data() + at);
        z_->avail_out = static_cast<uInt>(room);
        const int rc = ::inflate(z_, Z_SYNC_FLUSH);
        out.resize(out.size() - z_->avail_out);
        used = in.size() - z_->avail_in;
        if (rc == Z_STREAM_END) {
            // A block with BFINAL set (RFC 7692 §7.2.3.4): what follows starts a new stream
            // (typically an empty stored block); the window does not survive it.
            inflateReset(z_);
            if (z_->avail_in == 0) {
                ended_ = true; // at the very end of the data: the tail is not fed
                return false;
            }
            continue;
        }
        if (rc == Z_MEM_ERROR)
            throw std::bad_alloc();
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return make_error_code(errc::invalid_payload);
        if (z_->avail_in == 0 && z_->avail_out != 0)
            return false;
        if (rc == Z_BUF_ERROR && z_->avail_out != 0)
            return false; // no progress possible: needs input
    }
}

void inflater::finish_message() noexcept {
    ended_ = false;
    fed_ = false;
    in_tail_ = false;
    tail_used_ = 0;
    if (z_ == nullptr)
        return;
    if (no_context_takeover_) {
        inflateReset(z_);
        inflate_pool().give(z_, window_bits_);
        z_ = nullptr;
    }
}

void inflater::discard_message() noexcept {
    if (z_ != nullptr)
        inflateReset(z_);
    finish_message();
}

core::result<inflater::progress> inflater::inflate_some(std::span<const std::byte> in, bool last,
                                                        std::string& out, std::size_t max_append) {
    if (z_ == nullptr) {
        if (no_context_takeover_)
            z_ = inflate_pool().take(window_bits_);
        if (z_ == nullptr)
            z_ = new_inflate(window_bits_);
    }
    const std::size_t start = out.size();
    progress p;
    if (!in_tail_) {
        if (!in.empty())
            fed_ = true;
        auto full = pump(in, out, start, max_append, p.consumed);
        if (!full) {
            discard_message(); // the stream is broken: start the next message from scratch
            return full.error();
        }
        if (*full)
            return p; // `out` is full: more to come from what is left
        p.done = true;
        if (!last)
            return p;
        // An empty compressed message (no payload bytes at all) is empty: the tail alone would
        // open a stored block that never ends.
        if (ended_ || !fed_) {
            finish_message();
            return p;
        }
        p.done = false;
        in_tail_ = true;
    }
    // The 00 00 ff ff tail, over several calls when `out` fills up meanwhile.
    std::size_t used = 0;
    auto full = pump(std::span(tail).subspan(tail_used_), out, start, max_append, used);
    if (!full) {
        discard_message();
        return full.error();
    }
    tail_used_ = static_cast<std::uint8_t>(tail_used_ + used);
    if (*full)
        return p;
    finish_message();
    p.done = true;
    return p;
}

core::result<void> inflater::inflate(std::span<const std::byte> in, bool last, std::string& out,
                                     std::size_t max_out) {
    const std::size_t start = out.size();
    for (;;) {
        // One byte past the cap proves the excess.
        const std::size_t left = max_out - (out.size() - start);
        auto p = inflate_some(in, last, out, left == SIZE_MAX ? left : left + 1);
        // The excess wins over bad data that zlib found in the same step.
        if (out.size() - start > max_out) {
            out.resize(start + max_out); // the byte that proved the excess goes
            discard_message();
            return make_error_code(errc::message_too_big);
        }
        if (!p)
            return p.error();
        if (p->done)
            return {};
        in = in.subspan(p->consumed);
    }
}

} // namespace coronet::ws
