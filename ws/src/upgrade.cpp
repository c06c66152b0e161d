// The opening handshake (RFC 6455 §4) for the standalone server and the client, with a small
// strict reader of the one HTTP/1.1 message each side needs: ws does not depend on http.
#include <coronet/ws/error.hpp>
#include <coronet/ws/handshake.hpp>
#include <coronet/ws/upgrade.hpp>

#include "text.hpp"

#include <algorithm>
#include <cctype>

namespace coronet::ws {
namespace {

using detail::iequal;

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

// Tokens are case-insensitive, except subprotocol names: the client compares the echoed name
// byte for byte, so the server must only echo an exact match.
bool has_token(std::string_view list, std::string_view token, bool exact = false) noexcept {
    while (!list.empty()) {
        auto comma = list.find(',');
        std::string_view item = trim(list.substr(0, comma));
        if (exact ? item == token : iequal(item, token))
            return true;
        if (comma == std::string_view::npos)
            break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

std::string_view get(std::span<const field> headers, std::string_view name,
                     std::size_t* count = nullptr) {
    std::string_view v;
    std::size_t n = 0;
    for (const auto& [k, val] : headers) {
        if (!iequal(k, name))
            continue;
        if (n == 0)
            v = val;
        ++n;
    }
    if (count != nullptr)
        *count = n;
    return v;
}

// A list-valued field may be split over several field lines (RFC 9110 §5.3).
bool any_has_token(std::span<const field> headers, std::string_view name, std::string_view token,
                   bool exact = false) noexcept {
    return std::any_of(headers.begin(), headers.end(), [&](const field& f) {
        return iequal(f.first, name) && has_token(f.second, token, exact);
    });
}

// A body on the upgrade request: any Transfer-Encoding, or a Content-Length that is not one
// field of zeros. Bytes after the head are frames, so a body would be frames to one reader and
// content to another (request smuggling through the upgrade).
bool has_body(std::span<const field> headers) noexcept {
    std::size_t lengths = 0;
    for (const auto& [k, val] : headers) {
        if (iequal(k, "transfer-encoding"))
            return true;
        if (!iequal(k, "content-length"))
            continue;
        if (++lengths > 1 || val.empty() || val.find_first_not_of('0') != std::string_view::npos)
            return true;
    }
    return false;
}

// CR, LF and NUL would end or split a line of the message being built.
bool breaks_line(std::string_view s) noexcept {
    return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

std::string_view phrase_of(int status) noexcept {
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

upgrade_verdict refusal(int status, std::string why) {
    upgrade_verdict v;
    v.status = status;
    v.reason = std::move(why);
    // RFC 6455 §4.4: a 426 names the version the server speaks.
    if (status == 426)
        v.fields.emplace_back("Sec-WebSocket-Version", "13");
    return v;
}

// The standalone server's answer. A refusal ends the connection, so it carries its own framing
// and the reason as a body a person can read.
std::string serialize(const upgrade_verdict& v) {
    std::string r = "HTTP/1.1 " + std::to_string(v.status) + " ";
    r += phrase_of(v.status);
    r += "\r\n";
    for (const auto& [name, value] : v.fields)
        r += name + ": " + value + "\r\n";
    if (v.status == 101)
        return r + "\r\n";
    const std::string body = v.reason + "\n";
    r += "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
    return r;
}

// Splits a head ("start line CRLF fields CRLF CRLF") into its start line and fields; false if
// a line is malformed (bare LF, obs-fold, no colon, whitespace before the colon).
bool split_head(std::string_view head, std::string_view& start, std::vector<field>& fields) {
    auto eol = head.find("\r\n");
    if (eol == std::string_view::npos)
        return false;
    start = head.substr(0, eol);
    std::string_view rest = head.substr(eol + 2);
    while (!rest.empty()) {
        eol = rest.find("\r\n");
        if (eol == std::string_view::npos)
            return false;
        std::string_view line = rest.substr(0, eol);
        rest.remove_prefix(eol + 2);
        if (line.empty())
            break;
        if (line.find('\n') != std::string_view::npos || line.find('\r') != std::string_view::npos)
            return false;
        if (line.front() == ' ' || line.front() == '\t')
            return false;
        auto colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0)
            return false;
        std::string_view name = line.substr(0, colon);
        if (name.back() == ' ' || name.back() == '\t')
            return false;
        fields.emplace_back(name, trim(line.substr(colon + 1)));
    }
    return true;
}

// The 101 for a request that passed every check: the subprotocol is the server's first
// preference that the client offered (RFC 6455 §4.2.2).
upgrade_verdict acceptance(std::string_view key, std::span<const field> headers,
                           const server_handshake_options& opts,
                           std::optional<deflate_agreement> agreed) {
    upgrade_verdict v;
    v.status = 101;
    v.accept = accept_key(key);
    for (const auto& mine : opts.subprotocols) {
        if (any_has_token(headers, "sec-websocket-protocol", mine, true)) {
            v.subprotocol = mine;
            break;
        }
    }
    v.fields = {
        {"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Accept", v.accept}};
    if (!v.subprotocol.empty())
        v.fields.emplace_back("Sec-WebSocket-Protocol", v.subprotocol);
    if (agreed) {
        v.fields.emplace_back("Sec-WebSocket-Extensions", std::move(agreed->response));
        v.deflate = agreed->params;
    }
    return v;
}

// "GET /path HTTP/1.1": no control characters (a bare CR or LF or a NUL would reach the
// target), single spaces, a non-empty target, and a one-digit minor version.
bool split_request_line(std::string_view start, std::string_view& method, std::string_view& target,
                        int& minor) {
    auto sp1 = start.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : start.find(' ', sp1 + 1);
    const bool visible = std::all_of(start.begin(), start.end(), [](char c) {
        return c == ' ' || (static_cast<unsigned char>(c) > 0x20 && c != 0x7f);
    });
    if (!visible || sp2 == std::string_view::npos || sp2 == sp1 + 1 ||
        start.substr(sp2 + 1, 7) != "HTTP/1." || start.size() != sp2 + 9 ||
        std::isdigit(static_cast<unsigned char>(start.back())) == 0)
        return false;
    method = start.substr(0, sp1);
    target = start.substr(sp1 + 1, sp2 - sp1 - 1);
    minor = start.back() - '0';
    return true;
}

// The verdict on the request head accept_upgrade read; `fields` and `target` are filled as far
// as the head parses.
upgrade_verdict judge_request(std::string_view head, const server_handshake_options& opts,
                              std::vector<field>& fields, std::string& target) {
    std::string_view start;
    if (!split_head(head, start, fields))
        return refusal(400, "malformed request");
    std::string_view method;
    std::string_view path;
    int minor = 0;
    if (!split_request_line(start, method, path, minor))
        return refusal(400, "malformed request line");
    target = std::string(path);
    return check_upgrade(method, minor, fields, opts);
}

// The client's request head, refused before anything is sent when a field would end or split
// a line.
core::result<std::string> build_request(std::string_view host, std::string_view target,
                                        std::string_view key,
                                        const client_handshake_options& opts) {
    bool bad_field = breaks_line(host) || breaks_line(target) || breaks_line(opts.origin);
    for (const auto& p : opts.subprotocols)
        bad_field = bad_field || breaks_line(p);
    for (const auto& [k, v] : opts.headers)
        bad_field = bad_field || breaks_line(k) || breaks_line(v);
    if (bad_field)
        return make_error_code(handshake_errc::invalid_request_field);
    std::string req =
        "GET " + std::string(target) + " HTTP/1.1\r\nHost: " + std::string(host) +
        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + std::string(key) +
        "\r\nSec-WebSocket-Version: 13\r\n";
    if (!opts.origin.empty())
        req += "Origin: " + opts.origin + "\r\n";
    if (!opts.subprotocols.empty()) {
        req += "Sec-WebSocket-Protocol: ";
        for (std::size_t i = 0; i < opts.subprotocols.size(); ++i) {
            if (i > 0)
                req += ", ";
            req += opts.subprotocols[i];
        }
        req += "\r\n";
    }
    if (opts.deflate.enabled)
        req += "Sec-WebSocket-Extensions: " + deflate_offer(opts.deflate) + "\r\n";
    for (const auto& [k, v] : opts.headers)
        req += k + ": " + v + "\r\n";
    return req + "\r\n";
}

// "HTTP/1.1 101 Switching Protocols" (the reason phrase may be missing): the status, 100-999,
// or nullopt if the line is not a status line. `http11` tells whether the version is 1.1.
std::optional<int> status_of(std::string_view line, bool& http11) noexcept {
    const auto digit = [](char c) { return c >= '0' && c <= '9'; };
    if (line.size() < 12 || line.substr(0, 5) != "HTTP/" || !digit(line[5]) || line[6] != '.' ||
        !digit(line[7]) || line[8] != ' ' || line[9] < '1' || line[9] > '9' || !digit(line[10]) ||
        !digit(line[11]) || (line.size() > 12 && line[12] != ' '))
        return std::nullopt;
    http11 = line.substr(5, 3) == "1.1";
    return (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
}

// The client's checks on the response head (RFC 6455 §4.1), in the order request_upgrade
// documents: each failure names what the server got wrong.
core::result<client_upgrade> check_response(std::string_view head, std::string_view key,
                                            const client_handshake_options& opts) {
    std::string_view start;
    std::vector<field> fields;
    if (!split_head(head, start, fields))
        return make_error_code(handshake_errc::malformed_response);
    bool http11 = false;
    const auto status = status_of(start, http11);
    if (!status)
        return make_error_code(handshake_errc::malformed_response);
    if (*status != 101)
        return unexpected_status_error(*status);
    // Switching protocols is HTTP/1.1's (RFC 9110 §7.8): a 101 of another version is broken.
    if (!http11)
        return make_error_code(handshake_errc::malformed_response);
    if (!any_has_token(fields, "upgrade", "websocket"))
        return make_error_code(handshake_errc::no_upgrade_websocket);
    if (!any_has_token(fields, "connection", "upgrade"))
        return make_error_code(handshake_errc::no_connection_upgrade);
    std::size_t accepts = 0;
    if (get(fields, "sec-websocket-accept", &accepts) != accept_key(key) || accepts != 1)
        return make_error_code(handshake_errc::bad_accept);
    // Nothing we did not ask for (RFC 6455 §4.1, points 5 and 6; RFC 7692 §5).
    client_upgrade out;
    std::vector<std::string_view> ext_values;
    for (const auto& [k, val] : fields)
        if (iequal(k, "sec-websocket-extensions"))
            ext_values.push_back(val);
    if (!ext_values.empty()) {
        auto answer = accept_deflate_answer(ext_values, opts.deflate);
        if (!answer)
            return answer.error();
        out.deflate = *answer;
    }
    std::string_view proto = get(fields, "sec-websocket-protocol");
    if (!proto.empty()) {
        if (std::find(opts.subprotocols.begin(), opts.subprotocols.end(), proto) ==
            opts.subprotocols.end())
            return make_error_code(handshake_errc::unoffered_subprotocol);
        out.subprotocol = std::string(proto);
    }
    return out;
}

} // namespace

upgrade_verdict check_upgrade(std::string_view method, int version_minor,
                              std::span<const field> headers,
                              const server_handshake_options& opts) {
    if (method != "GET")
        return refusal(400, "a WebSocket handshake must be a GET");
    if (version_minor < 1)
        return refusal(400, "a WebSocket handshake needs HTTP/1.1");
    // RFC 9110 §9.3.1: a GET's content has no defined meaning; here it would be read as frames.
    if (has_body(headers))
        return refusal(400, "a WebSocket handshake must not carry a body");
    std::size_t hosts = 0;
    (void)get(headers, "host", &hosts);
    if (hosts != 1)
        return refusal(400, "a WebSocket handshake needs one Host"); // RFC 6455 §4.2.1
    if (!any_has_token(headers, "upgrade", "websocket"))
        return refusal(400, "missing Upgrade: websocket");
    if (!any_has_token(headers, "connection", "upgrade"))
        return refusal(400, "missing Connection: upgrade");
    std::size_t versions = 0;
    std::string_view version = get(headers, "sec-websocket-version", &versions);
    if (versions != 1 || version != "13")
        return refusal(426, "only Sec-WebSocket-Version 13 is supported");
    std::size_t keys = 0;
    std::string_view key = get(headers, "sec-websocket-key", &keys);
    if (keys != 1 || !valid_client_key(key))
        return refusal(400, "invalid Sec-WebSocket-Key");
    if (!opts.allowed_origins.empty()) {
        std::size_t origins = 0;
        std::string_view origin = get(headers, "origin", &origins);
        // A second Origin could be the one another hop acts on: refuse rather than pick one.
        bool ok =
            origins <= 1 && std::any_of(opts.allowed_origins.begin(), opts.allowed_origins.end(),
                                        [&](const std::string& o) { return iequal(o, origin); });
        if (!ok)
            return refusal(403, "origin not allowed");
    }
    // Extensions: the list must parse (RFC 6455 §9.1) even when we support none of them.
    std::vector<std::string_view> ext_values;
    for (const auto& [k, val] : headers)
        if (iequal(k, "sec-websocket-extensions"))
            ext_values.push_back(val);
    std::optional<deflate_agreement> agreed;
    if (!ext_values.empty()) {
        auto offers = parse_extensions(ext_values);
        if (!offers)
            return refusal(400, "malformed Sec-WebSocket-Extensions");
        agreed = negotiate_deflate(*offers, opts.deflate);
    }
    return acceptance(key, headers, opts, std::move(agreed));
}

core::task<core::result<accepted_upgrade>> accept_upgrade(core::stream& s,
                                                          server_handshake_options opts) {
    core::buffered_reader rd(s, opts.max_request_bytes + 1);
    auto head = co_await rd.read_until("\r\n\r\n", opts.max_request_bytes);
    if (!head) {
        if (head.error() == core::errc::limit_exceeded) {
            std::string r = serialize(refusal(431, "handshake request too large"));
            auto w = co_await s.write_all(core::as_bytes(r));
            (void)w;
            co_return make_error_code(errc::bad_handshake);
        }
        co_return head.error();
    }
    std::vector<field> fields;
    std::string target;
    upgrade_verdict v = judge_request(core::as_string(*head), opts, fields, target);
    auto w = co_await s.write_all(core::as_bytes(serialize(v)));
    if (!w)
        co_return w.error();
    if (v.status != 101)
        co_return make_error_code(errc::bad_handshake);
    accepted_upgrade a;
    a.target = std::move(target);
    a.subprotocol = std::move(v.subprotocol);
    a.deflate = v.deflate;
    for (const auto& [k, val] : fields)
        a.headers.emplace_back(k, val);
    rd.consume(head->size());
    a.prefetched = rd.release_prefetched();
    co_return a;
}

core::task<core::result<client_upgrade>> request_upgrade(core::stream& s, std::string host,
                                                         std::string target,
                                                         client_handshake_options opts) {
    const std::string key = make_client_key();
    auto req = build_request(host, target, key, opts);
    if (!req)
        co_return req.error();
    auto w = co_await s.write_all(core::as_bytes(*req));
    if (!w)
        co_return w.error();

    core::buffered_reader rd(s, opts.max_response_bytes + 1);
    auto head = co_await rd.read_until("\r\n\r\n", opts.max_response_bytes);
    if (!head) {
        if (head.error() == core::errc::limit_exceeded)
            co_return make_error_code(handshake_errc::response_too_large);
        co_return head.error();
    }
    auto out = check_response(core::as_string(*head), key, opts);
    if (!out)
        co_return out.error();
    rd.consume(head->size());
    out->prefetched = rd.release_prefetched();
    co_return std::move(out);
}

} // namespace coronet::ws
