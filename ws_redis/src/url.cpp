#include <coronet/ws_redis/url.hpp>

#include <coronet/core/url.hpp>
#include <coronet/ws_redis/error.hpp>

#include <charconv>
#include <optional>
#include <string>

namespace coronet::ws_redis {

namespace {

constexpr std::uint16_t redis_default_port = 6379;

std::error_code bad() {
    return make_error_code(errc::bad_url);
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

std::optional<std::string> percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size())
            return std::nullopt;
        int hi = hex_value(s[i + 1]);
        int lo = hex_value(s[i + 2]);
        if (hi < 0 || lo < 0)
            return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

// "user:password" (either part may be empty, the colon is required: a lone word would be
// ambiguous between the two).
bool parse_userinfo(std::string_view info, url& u) {
    auto colon = info.find(':');
    if (colon == std::string_view::npos)
        return false;
    auto user = percent_decode(info.substr(0, colon));
    auto password = percent_decode(info.substr(colon + 1));
    if (!user || !password)
        return false;
    u.user = std::move(*user);
    u.password = std::move(*password);
    return true;
}

bool parse_database(std::string_view digits, unsigned& db) {
    if (digits.empty() || digits.size() > 9)
        return false;
    for (char c : digits) {
        if (c < '0' || c > '9')
            return false;
    }
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), db);
    return ec == std::errc() && end == digits.data() + digits.size();
}

// The part after the authority or socket path: "", "/", "/N" (redis only), "?db=N".
bool parse_tail(std::string_view path, std::string_view query, bool path_is_db, url& u) {
    if (path_is_db && path.size() > 1 && !parse_database(path.substr(1), u.database))
        return false;
    if (query.empty())
        return true;
    if (query.substr(0, 3) != "db=")
        return false;
    return parse_database(query.substr(3), u.database);
}

bool parse_network(std::string_view rest, url& u) {
    auto end = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, end);
    std::string_view tail = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    if (tail.find('#') != std::string_view::npos)
        return false;
    auto at = authority.rfind('@');
    if (at != std::string_view::npos) {
        if (!parse_userinfo(authority.substr(0, at), u))
            return false;
        authority = authority.substr(at + 1);
    }
    // The host and port are checked by core's URL parser; Redis' default port is added when
    // the authority names none (a bracketed IPv6 literal ends in ']').
    if (authority.empty())
        return false;
    std::string hostport(authority);
    auto last_colon = hostport.rfind(':');
    bool has_port = last_colon != std::string::npos &&
                    (hostport.front() != '[' || hostport.find(']') < last_colon);
    if (!has_port)
        hostport += ":" + std::to_string(redis_default_port);
    auto parsed = core::url::parse("redis://" + hostport);
    if (!parsed || parsed->target != "/")
        return false;
    u.host = std::move(parsed->host);
    u.port = parsed->port;
    auto q = tail.find('?');
    std::string_view path = tail.substr(0, q);
    std::string_view query = q == std::string_view::npos ? std::string_view() : tail.substr(q + 1);
    return parse_tail(path, query, true, u);
}

bool parse_unix(std::string_view rest, url& u) {
    if (rest.find('#') != std::string_view::npos)
        return false;
    if (!rest.empty() && rest.front() != '/') {
        auto at = rest.find('@');
        if (at == std::string_view::npos || !parse_userinfo(rest.substr(0, at), u))
            return false;
        rest = rest.substr(at + 1);
    }
    auto q = rest.find('?');
    std::string_view path = rest.substr(0, q);
    std::string_view query = q == std::string_view::npos ? std::string_view() : rest.substr(q + 1);
    if (path.size() < 2 || path.front() != '/')
        return false;
    auto decoded = percent_decode(path);
    if (!decoded)
        return false;
    u.path = std::move(*decoded);
    return parse_tail(path, query, false, u);
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

} // namespace

core::result<url> url::parse(std::string_view text) {
    auto sep = text.find("://");
    if (sep == std::string_view::npos)
        return bad();
    std::string scheme = lower(text.substr(0, sep));
    std::string_view rest = text.substr(sep + 3);
    url u;
    bool ok = false;
    if (scheme == "redis" || scheme == "rediss") {
        u.transport = scheme == "redis" ? transport_kind::tcp : transport_kind::tls;
        ok = parse_network(rest, u);
    } else if (scheme == "unix") {
        u.transport = transport_kind::unix_socket;
        ok = parse_unix(rest, u);
    }
    if (!ok)
        return bad();
    return u;
}

} // namespace coronet::ws_redis
