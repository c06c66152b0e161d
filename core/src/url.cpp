#include <coronet/core/url.hpp>

#include <charconv>
#include <string>

namespace coronet::core {
namespace {

class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "coronet.core.url"; }
    std::string message(int ev) const override {
        switch (static_cast<url_errc>(ev)) {
        case url_errc::bad_scheme:
            return "URL without a valid scheme://";
        case url_errc::bad_host:
            return "URL with an invalid host";
        case url_errc::bad_port:
            return "URL with an invalid or missing port";
        }
        return "unknown coronet.core.url error";
    }
    std::error_condition default_error_condition(int) const noexcept override {
        return std::errc::invalid_argument;
    }
};

char lower(char c) noexcept {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_alpha(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

bool is_hex(char c) noexcept {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i]))
            return false;
    return true;
}

// RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
bool valid_scheme(std::string_view s) noexcept {
    if (s.empty() || !is_alpha(s.front()))
        return false;
    for (char c : s)
        if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.')
            return false;
    return true;
}

// RFC 3986 §3.2.2: a reg-name or IPv4 address holds unreserved, pct-encoded and sub-delims
// characters; an IP literal hex digits, ':' and '.', then maybe a zone (RFC 6874). Anything
// else (the ':' of an unbracketed IPv6 address, spaces, CR/LF) is refused here, before it can
// reach a Host header or a TLS server name.
bool valid_host(std::string_view host, bool bracketed) noexcept {
    if (host.empty())
        return false;
    bool zone = false;
    for (char c : host) {
        const bool alnum = is_alpha(c) || is_digit(c);
        bool ok;
        if (!bracketed)
            ok = alnum || std::string_view("-._~%!$&'()*+,;=").find(c) != std::string_view::npos;
        else if (zone)
            ok = alnum || std::string_view("-._~%").find(c) != std::string_view::npos;
        else
            ok = is_hex(c) || c == ':' || c == '.' || (zone = c == '%');
        if (!ok)
            return false;
    }
    return true;
}

// The port after the host: digits only, 1 to 65535.
bool parse_port(std::string_view text, std::uint16_t& port) noexcept {
    unsigned p = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), p);
    if (ec != std::errc() || ptr != text.data() + text.size() || p == 0 || p > 65535)
        return false;
    port = static_cast<std::uint16_t>(p);
    return true;
}

// Splits an authority into host and port text (the port may be empty: RFC 3986 §3.2.3 allows
// "host:", which means the default). Errors: an unbalanced bracket, junk after "]".
bool split_authority(std::string_view authority, std::string_view& host, std::string_view& port,
                     bool& bracketed) noexcept {
    host = authority;
    port = {};
    bracketed = !authority.empty() && authority.front() == '[';
    if (bracketed) {
        auto close = authority.find(']');
        if (close == std::string_view::npos)
            return false;
        host = authority.substr(1, close - 1);
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':')
                return false;
            port = authority.substr(close + 2);
        }
    } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    return true;
}

} // namespace

const std::error_category& url_category() noexcept {
    static const category c;
    return c;
}

std::uint16_t default_port(std::string_view scheme) noexcept {
    if (iequals(scheme, "http") || iequals(scheme, "ws"))
        return 80;
    if (iequals(scheme, "https") || iequals(scheme, "wss"))
        return 443;
    return 0;
}

result<url> url::parse(std::string_view text) {
    const auto sep = text.find("://");
    if (sep == std::string_view::npos || !valid_scheme(text.substr(0, sep)))
        return make_error_code(url_errc::bad_scheme);
    url u;
    for (char c : text.substr(0, sep))
        u.scheme += lower(c);
    std::string_view rest = text.substr(sep + 3);
    rest = rest.substr(0, rest.find('#'));
    const auto path_at = rest.find_first_of("/?");
    const std::string_view authority = rest.substr(0, path_at);
    std::string_view host;
    std::string_view port;
    bool bracketed = false;
    // Userinfo is refused outright: it has no place in a request (RFC 9110 §4.2.4).
    if (authority.find('@') != std::string_view::npos ||
        !split_authority(authority, host, port, bracketed) || !valid_host(host, bracketed))
        return make_error_code(url_errc::bad_host);
    u.port = default_port(u.scheme);
    if (!port.empty() && !parse_port(port, u.port))
        return make_error_code(url_errc::bad_port);
    if (u.port == 0)
        return make_error_code(url_errc::bad_port);
    u.host = std::string(host);
    if (path_at != std::string_view::npos) {
        u.target = std::string(rest.substr(path_at));
        if (u.target.front() == '?')
            u.target.insert(0, "/");
    }
    return u;
}

bool url::secure() const noexcept {
    return scheme == "https" || scheme == "wss";
}

std::string url::authority() const {
    std::string a;
    const bool literal = host.find(':') != std::string::npos;
    if (literal)
        a += '[';
    a += host;
    if (literal)
        a += ']';
    if (port != default_port(scheme)) {
        a += ':';
        a += std::to_string(port);
    }
    return a;
}

} // namespace coronet::core
