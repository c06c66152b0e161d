// The chunked transfer coding (RFC 9112 §7.1), decoded byte by byte without copying the data.
#include <coronet/http/parser.hpp>

namespace coronet::http {
namespace {

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool is_ws(char c) noexcept {
    return c == ' ' || c == '\t';
}

bool is_tchar(char c) noexcept {
    return detail::is_tchar(static_cast<unsigned char>(c));
}

// qdtext (RFC 9110 §5.6.4): HTAB, SP, VCHAR except '"' and '\\', obs-text.
bool is_qdtext(char c) noexcept {
    auto u = static_cast<unsigned char>(c);
    return u == '\t' || u == ' ' || u == 0x21 || (u >= 0x23 && u <= 0x5b) ||
           (u >= 0x5d && u != 0x7f);
}

// The byte after a backslash in a quoted-pair: HTAB, SP, VCHAR, obs-text.
bool is_quoted_pair_char(char c) noexcept {
    auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7f);
}

} // namespace

void chunked_decoder::reset() noexcept {
    state_ = state::size;
    chunk_left_ = body_ = 0;
    digits_ = ext_len_ = chunks_ = trailer_bytes_ = name_len_ = 0;
    colon_seen_ = false;
}

bool chunked_decoder::extension_byte(char c) noexcept {
    switch (state_) {
    case state::ext_name_start: // after ';': BWS, then a token
        if (is_tchar(c))
            state_ = state::ext_name;
        else if (!is_ws(c))
            return false;
        return true;
    case state::ext_name:
        if (is_tchar(c))
            return true;
        if (is_ws(c))
            state_ = state::ext_name_ws;
        else if (c == '=')
            state_ = state::ext_value_start;
        else if (c == ';')
            state_ = state::ext_name_start;
        else if (c == '\r')
            state_ = state::size_lf;
        else
            return false;
        return true;
    case state::ext_name_ws: // BWS only before '=' or ';', never before CRLF
        if (c == '=')
            state_ = state::ext_value_start;
        else if (c == ';')
            state_ = state::ext_name_start;
        else if (!is_ws(c))
            return false;
        return true;
    case state::ext_value_start:
        if (c == '"')
            state_ = state::ext_quoted;
        else if (is_tchar(c))
            state_ = state::ext_token_value;
        else if (!is_ws(c))
            return false;
        return true;
    case state::ext_token_value:
        if (is_tchar(c))
            return true;
        if (is_ws(c))
            state_ = state::ext_value_ws;
        else if (c == ';')
            state_ = state::ext_name_start;
        else if (c == '\r')
            state_ = state::size_lf;
        else
            return false;
        return true;
    case state::ext_quoted:
        if (c == '"')
            state_ = state::ext_quoted_end;
        else if (c == '\\')
            state_ = state::ext_quoted_pair;
        else if (!is_qdtext(c))
            return false;
        return true;
    case state::ext_quoted_pair:
        if (!is_quoted_pair_char(c))
            return false;
        state_ = state::ext_quoted;
        return true;
    case state::ext_quoted_end:
        if (is_ws(c))
            state_ = state::ext_value_ws;
        else if (c == ';')
            state_ = state::ext_name_start;
        else if (c == '\r')
            state_ = state::size_lf;
        else
            return false;
        return true;
    case state::ext_value_ws:
        if (c == ';')
            state_ = state::ext_name_start;
        else if (!is_ws(c))
            return false;
        return true;
    default:
        return false;
    }
}

chunked_decoder::step chunked_decoder::decode(std::string_view in) noexcept {
    step s;
    std::size_t i = 0;
    auto fail = [&](errc e) {
        s.ec = make_error_code(e);
        s.consumed = i;
        return s;
    };
    while (i < in.size()) {
        const char c = in[i];
        switch (state_) {
        case state::size: {
            int v = hex_value(c);
            if (v >= 0) {
                if (digits_ == 15)
                    return fail(errc::bad_chunk); // 60 bits is plenty; no overflow
                chunk_left_ = chunk_left_ * 16 + static_cast<std::uint64_t>(v);
                ++digits_;
                ++i;
                continue;
            }
            if (digits_ == 0)
                return fail(errc::bad_chunk);
            if (c == ';') {
                state_ = state::ext_name_start;
                ext_len_ = 0;
            } else if (c == ' ' || c == '\t') {
                state_ = state::size_ws;
            } else if (c == '\r') {
                state_ = state::size_lf;
            } else {
                return fail(errc::bad_chunk);
            }
            ++i;
            continue;
        }
        case state::size_ws: // BWS is only allowed before ';'
            if (c == ';') {
                state_ = state::ext_name_start;
                ext_len_ = 0;
            } else if (c != ' ' && c != '\t') {
                return fail(errc::bad_chunk);
            }
            ++i;
            continue;
        // Chunk extensions follow the RFC 9112 §7.1.1 grammar exactly: a lenient skip-to-CRLF
        // here would accept what a stricter front end rejects, a smuggling gap.
        case state::ext_name_start:
        case state::ext_name:
        case state::ext_name_ws:
        case state::ext_value_start:
        case state::ext_token_value:
        case state::ext_quoted:
        case state::ext_quoted_pair:
        case state::ext_quoted_end:
        case state::ext_value_ws:
            if (c != '\r' && ++ext_len_ > limits_.max_chunk_extension)
                return fail(errc::bad_chunk);
            if (!extension_byte(c))
                return fail(errc::bad_chunk);
            ++i;
            continue;
        case state::size_lf:
            if (c != '\n')
                return fail(errc::bad_chunk);
            ++i;
            if (++chunks_ > limits_.max_chunk_count)
                return fail(errc::too_many_chunks);
            if (chunk_left_ == 0) {
                state_ = state::trailer_start;
            } else {
                if (chunk_left_ > limits_.max_body_size - body_)
                    return fail(errc::body_too_large);
                state_ = state::data;
            }
            continue;
        case state::data: {
            std::size_t n = in.size() - i;
            if (n > chunk_left_)
                n = static_cast<std::size_t>(chunk_left_);
            s.data = in.substr(i, n);
            i += n;
            chunk_left_ -= n;
            body_ += n;
            if (chunk_left_ == 0)
                state_ = state::data_cr;
            s.consumed = i;
            return s;
        }
        case state::data_cr:
            if (c != '\r')
                return fail(errc::bad_chunk);
            state_ = state::data_lf;
            ++i;
            continue;
        case state::data_lf:
            if (c != '\n')
                return fail(errc::bad_chunk);
            state_ = state::size;
            digits_ = 0;
            chunk_left_ = 0;
            ++i;
            continue;
        case state::trailer_start:
            if (c == '\r') {
                state_ = state::final_lf;
                ++i;
                continue;
            }
            if (c == ' ' || c == '\t')
                return fail(errc::bad_chunk); // obs-fold
            state_ = state::trailer_line;
            name_len_ = 0;
            colon_seen_ = false;
            continue; // the same byte is checked as a field-line byte
        case state::trailer_line:
            if (++trailer_bytes_ > limits_.max_trailer_bytes)
                return fail(errc::header_too_large);
            if (c == '\r') {
                if (!colon_seen_ || name_len_ == 0)
                    return fail(errc::bad_chunk);
                state_ = state::trailer_lf;
            } else if (!colon_seen_) {
                if (c == ':')
                    colon_seen_ = true;
                else if (!detail::is_tchar(static_cast<unsigned char>(c)))
                    return fail(errc::bad_chunk);
                else
                    ++name_len_;
            } else {
                auto u = static_cast<unsigned char>(c);
                if ((u < 0x20 && u != '\t') || u == 0x7f)
                    return fail(errc::bad_chunk);
            }
            ++i;
            continue;
        case state::trailer_lf:
            if (c != '\n')
                return fail(errc::bad_chunk);
            state_ = state::trailer_start;
            ++i;
            continue;
        case state::final_lf:
            if (c != '\n')
                return fail(errc::bad_chunk);
            state_ = state::done;
            ++i;
            s.done = true;
            s.consumed = i;
            return s;
        case state::done:
            s.done = true;
            s.consumed = i;
            return s;
        }
    }
    s.consumed = i;
    s.done = state_ == state::done;
    return s;
}

} // namespace coronet::http
